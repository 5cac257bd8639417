package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// proc is one process of the run, in a process group of its own: a
// terminal's Ctrl-C reaches only loadbench, which then stops every group
// in order, and a process that forks (Kannel's boxes may) is stopped with
// all it started.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // after done
}

// procs are the processes started, in order; stop goes in reverse.
type procs struct {
	log  *slog.Logger
	dir  string // logs go to dir/<name>.log
	list []*proc
}

// start runs bin with args and env (added to the environment), output in
// dir/<name>.log.
func (ps *procs) start(name, bin string, args, env []string) (*proc, error) {
	// Appended to: a process restarted by the chaos run keeps the log of
	// its previous life, where the reason for a finding may be.
	out, err := os.OpenFile(filepath.Join(ps.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// A backstop for when loadbench itself is killed with SIGKILL and
		// cannot stop anything: the kernel then kills the child.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		out.Close()
		close(p.done)
	}()
	ps.list = append(ps.list, p)
	ps.log.Debug("process started", "name", name, "pid", cmd.Process.Pid)
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has stopped, and why.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM to the process's group, and SIGKILL after grace.
func (p *proc) stop(grace time.Duration) error {
	if done, _ := p.exited(); done {
		return nil
	}
	pgid := p.pid() // Setpgid: the group id is the leader's pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-p.done:
		return fmt.Errorf("%s: killed after %v", p.name, grace)
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s: pid %d still running after SIGKILL", p.name, pgid)
	}
}

// kill sends SIGKILL to the process's group and waits until it is gone.
func (p *proc) kill(timeout time.Duration) error {
	if done, _ := p.exited(); done {
		return nil
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s: pid %d still running %v after SIGKILL", p.name, p.pid(), timeout)
	}
}

// stopAll stops every process still running, the last started first
// (producers before the consumers and the servers they need).
func (ps *procs) stopAll(grace time.Duration) error {
	var errs []error
	for i := len(ps.list) - 1; i >= 0; i-- {
		if err := ps.list[i].stop(grace); err != nil {
			errs = append(errs, err)
		}
	}
	ps.list = nil
	return errors.Join(errs...)
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before ours binds it; on this machine nothing else races us.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// waitListening polls until addr accepts TCP connections, p exits (its log
// then says why), or timeout.
func waitListening(ctx context.Context, p *proc, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if p != nil {
			if done, perr := p.exited(); done {
				return fmt.Errorf("%s exited before listening on %s (see %s.log): %v", p.name, addr, p.name, perr)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening on %s after %v", nameOf(p), addr, timeout)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

func nameOf(p *proc) string {
	if p == nil {
		return "server"
	}
	return p.name
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// repoRoot is the directory holding go.work, from the working directory up:
// the binaries are built from the workspace, as `make` does.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.work not found above the working directory: run loadbench from the repository")
		}
		dir = parent
	}
}

// build compiles every binary into dir in one go command: the workspace
// resolves each module, and one invocation shares the build cache's work.
func build(ctx context.Context, root, dir string) error {
	args := []string{"build", "-o", dir + string(os.PathSeparator),
		// The binaries take their names from the packages' last elements:
		// nats-server, smsc-sim and the five services.
		"github.com/nats-io/nats-server/v2",
		"./cmd/smsc-sim",
		"./services/ingest/cmd/ingest",
		"./services/compliance/cmd/compliance",
		"./services/throttle/cmd/throttle",
		"./services/smsc-link/cmd/smsc-link",
		"./services/billing/cmd/billing",
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	return nil
}
