package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"pushsms.io/cmd/procstat"
	"pushsms.io/lib/embeddednats"
)

// natsCommand is the first argument with which ratebench runs as the
// JetStream server rather than as the bench. For -nats-process the bench
// starts a copy of itself with it: the server is then the platform's
// embedded one (the same version and options), in a process of its own,
// without a build step.
const natsCommand = "nats-server"

// serveNATS is the body of "ratebench nats-server -dir D": it runs the
// server until SIGINT or SIGTERM, and writes its client URL on a line of
// stdout once it accepts connections.
func serveNATS(args []string) error {
	fs := flag.NewFlagSet(natsCommand, flag.ContinueOnError)
	dir := fs.String("dir", "", "JetStream's store")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Before the server starts: a stop asked for while it starts must
	// still close its store.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := embeddednats.Start(embeddednats.Config{Dir: *dir, Host: "127.0.0.1", Port: -1})
	if err != nil {
		return err
	}
	defer srv.Stop()
	if _, err := fmt.Println(srv.URL()); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// natsProcess is the JetStream server in a child process. In production
// NATS runs on its own; inside the bench's process its collector (which
// marks every stored message's buffers) and its goroutines would delay
// smsc-link's rate guard, whose every place waits for the SMSC's answer.
type natsProcess struct {
	cmd    *exec.Cmd
	url    string
	exited chan struct{}
	err    error // how the process ended, once exited is closed
}

// startNATSProcess starts the server with its store in dir and waits
// until it reports its URL.
func startNATSProcess(ctx context.Context, dir string, logs io.Writer) (*natsProcess, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("nats-server: %w", err)
	}
	p := &natsProcess{cmd: exec.Command(self, natsCommand, "-dir", dir), exited: make(chan struct{})}
	// What it said last goes into the error if it fails to start.
	said := &tail{max: 4 << 10}
	p.cmd.Stderr = io.MultiWriter(logs, said)
	p.cmd.SysProcAttr = childAttr()
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("nats-server: %w", err)
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("nats-server: %w", err)
	}
	url := make(chan string, 1)
	go func() {
		// The URL, then nothing: the rest of stdout is drained so that the
		// server never blocks on a write.
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			url <- strings.TrimSpace(sc.Text())
		}
		_, _ = io.Copy(io.Discard, out)
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	select {
	case p.url = <-url:
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("nats-server exited at start: %v: %s", p.err, bytes.TrimSpace(said.bytes()))
	case <-ctx.Done():
		_ = p.stop()
		return nil, fmt.Errorf("nats-server: %w", ctx.Err())
	case <-time.After(30 * time.Second):
		_ = p.stop()
		return nil, errors.New("nats-server: no URL after 30s")
	}
}

// cpu is the CPU time the server's process used so far.
func (p *natsProcess) cpu() (time.Duration, error) {
	s, err := procstat.Read("/proc", p.cmd.Process.Pid)
	if err != nil {
		return 0, fmt.Errorf("nats-server CPU: %w", err)
	}
	return time.Duration(s.CPU * float64(time.Second)), nil
}

// stop ends the server: SIGTERM (it closes its store), SIGKILL after 10 s.
func (p *natsProcess) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return errors.New("nats-server: killed, 10s after SIGTERM")
	}
	if p.err != nil {
		return fmt.Errorf("nats-server: %w", p.err)
	}
	return nil
}

// tail keeps the last max bytes written to it: what a child said before it
// failed, without keeping all it says.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tail) bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.b)
}
