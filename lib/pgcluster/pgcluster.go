// Package pgcluster runs a private PostgreSQL cluster from the server binaries
// installed on the machine: throwaway clusters for tests (see pgtest) and the
// persistent one of the one-machine mode.
//
// The server listens on 127.0.0.1 only and trusts every local connection, so
// it is meant for a developer's machine and CI, never for production.
//
// initdb and postgres refuse to run as root, so when the caller is root every
// server program runs as the "postgres" system user, which then owns the data
// directory.
package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNotFound reports that no PostgreSQL server binaries were found.
var ErrNotFound = errors.New("pgcluster: PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in PATH nor in /usr/lib/postgresql/*/bin; install them: apt-get install postgresql")

// Superuser is the role that initdb creates; Start's URL connects as it.
const Superuser = "postgres"

// defaultWait bounds pg_ctl when the context has no deadline.
const defaultWait = 60 * time.Second

// Cluster is one PostgreSQL cluster: a data directory and the server that
// runs on it. The zero value of every field but DataDir is usable.
type Cluster struct {
	// DataDir holds the cluster. It is created and initialised by the first
	// Init or Start; an existing cluster is kept.
	DataDir string
	// Port is the loopback TCP port; 0 picks a free one at each start.
	Port int
	// BinDir holds initdb, pg_ctl and postgres. Empty means the binaries of
	// the PostgreSQL version that made DataDir, or else Find.
	BinDir string
	// SocketDir is where the server puts its unix socket. Empty means no unix
	// socket, so the cluster never contends with the distribution's
	// /var/run/postgresql.
	SocketDir string
	// NoSync trades crash safety for speed: fsync, synchronous_commit and
	// full_page_writes are off. For clusters whose data may be lost.
	NoSync bool
	// Settings are further server settings ("max_connections=200") applied
	// at each start.
	Settings []string
}

// Init initialises the cluster in dataDir unless one is already there.
func Init(ctx context.Context, dataDir string) error {
	return (&Cluster{DataDir: dataDir}).Init(ctx)
}

// Start starts the cluster in dataDir on port (0: a free port), initialising
// it first if needed, and returns a URL for its "postgres" database.
func Start(ctx context.Context, dataDir string, port int) (url string, err error) {
	return (&Cluster{DataDir: dataDir, Port: port}).Start(ctx)
}

// Stop stops the cluster in dataDir if it runs.
func Stop(ctx context.Context, dataDir string) error {
	return (&Cluster{DataDir: dataDir}).Stop(ctx)
}

// Find returns the directory holding the PostgreSQL server binaries: the one
// in PATH, else the newest of /usr/lib/postgresql/*/bin (Debian, Ubuntu) and
// /usr/pgsql-*/bin (RHEL). It returns ErrNotFound when there is none.
func Find() (binDir string, err error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if dir := filepath.Dir(p); hasServer(dir) {
			return dir, nil
		}
	}
	var dirs []string
	for _, pattern := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"} {
		m, _ := filepath.Glob(pattern) // the patterns are well formed
		dirs = append(dirs, m...)
	}
	// Newest first: compare the version in the path numerically, "9.6" < "15".
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, dir := range dirs {
		if hasServer(dir) {
			return dir, nil
		}
	}
	return "", ErrNotFound
}

// hasServer reports whether dir holds every program a cluster needs.
func hasServer(dir string) bool {
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// versionOf extracts a sortable major version from a path such as
// /usr/lib/postgresql/15/bin or /usr/pgsql-9.6/bin (9.6 sorts as 9).
func versionOf(dir string) int {
	base := filepath.Base(filepath.Dir(dir))
	base = strings.TrimPrefix(base, "pgsql-")
	major, _, _ := strings.Cut(base, ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		return -1
	}
	return n
}

// Init initialises the cluster unless DataDir already holds one.
func (c *Cluster) Init(ctx context.Context) error {
	dir, err := c.dataDir()
	if err != nil {
		return err
	}
	if initialised(dir) {
		return nil
	}
	bin, err := c.binDir(dir)
	if err != nil {
		return err
	}
	as, err := serverUser()
	if err != nil {
		return err
	}
	if err := as.mkdir(dir); err != nil {
		return err
	}
	args := []string{
		"-D", dir,
		"-U", Superuser,
		"--auth=trust",
		"--encoding=UTF8",
		"--no-locale",
	}
	if c.NoSync {
		args = append(args, "--no-sync")
	}
	if out, err := as.run(ctx, filepath.Join(bin, "initdb"), args...); err != nil {
		return fmt.Errorf("pgcluster: initdb %s: %w\n%s", dir, err, out)
	}
	return nil
}

// Start starts the server, initialising the cluster first if needed, and
// returns a URL for its "postgres" database. When the server already runs
// (a previous process did not stop it), Start returns its URL. A
// postmaster.pid left by a killed server is removed.
func (c *Cluster) Start(ctx context.Context) (url string, err error) {
	if err := c.Init(ctx); err != nil {
		return "", err
	}
	dir, err := c.dataDir()
	if err != nil {
		return "", err
	}
	bin, err := c.binDir(dir)
	if err != nil {
		return "", err
	}
	as, err := serverUser()
	if err != nil {
		return "", err
	}

	pid, err := readPIDFile(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return "", err
	case postmasterAlive(pid.pid, dir):
		if pid.status != "ready" {
			return "", fmt.Errorf("pgcluster: server on %s is %q (pid %d); stop it or wait", dir, pid.status, pid.pid)
		}
		if c.Port != 0 && pid.port != c.Port {
			return "", fmt.Errorf("pgcluster: server on %s already runs on port %d, not %d; stop it first", dir, pid.port, c.Port)
		}
		return urlFor(pid.port), nil
	default:
		// The children of a killed postmaster still hold its shared memory,
		// and a new server refuses to start until they have gone.
		if err := waitOrphans(ctx, dir); err != nil {
			return "", err
		}
		if err := removeStale(dir, pid); err != nil {
			return "", err
		}
	}

	sock := c.SocketDir
	if sock != "" {
		if sock, err = filepath.Abs(sock); err != nil {
			return "", fmt.Errorf("pgcluster: socket dir: %w", err)
		}
		if err := as.mkdir(sock); err != nil {
			return "", err
		}
	}

	// A port picked free may be taken before the server binds it: try again.
	for attempt := 1; ; attempt++ {
		port := c.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				return "", err
			}
		}
		err := c.startOn(ctx, as, bin, dir, sock, port)
		if err == nil {
			return urlFor(port), nil
		}
		if c.Port != 0 || attempt == 3 || !errors.Is(err, errAddrInUse) {
			return "", err
		}
	}
}

var errAddrInUse = errors.New("address in use")

func (c *Cluster) startOn(ctx context.Context, as *osUser, bin, dir, sock string, port int) error {
	settings := []string{
		"listen_addresses=127.0.0.1",
		"unix_socket_directories=" + sock,
	}
	if c.NoSync {
		settings = append(settings, "fsync=off", "synchronous_commit=off", "full_page_writes=off")
	}
	settings = append(settings, c.Settings...)
	// pg_ctl hands -o to /bin/sh, hence the quoting.
	opts := []string{"-p", strconv.Itoa(port)}
	for _, s := range settings {
		opts = append(opts, "-c", shellQuote(s))
	}
	logFile := filepath.Join(dir, "server.log")
	before := fileSize(logFile)
	out, err := as.run(ctx, filepath.Join(bin, "pg_ctl"), "start",
		"-D", dir,
		"-l", logFile,
		"-w", "-t", waitSeconds(ctx),
		"-o", strings.Join(opts, " "),
	)
	if err == nil {
		return nil
	}
	log := tail(logFile, before)
	if bytes.Contains(log, []byte("could not bind")) || bytes.Contains(log, []byte("Address already in use")) {
		err = fmt.Errorf("%w: %w", errAddrInUse, err)
	}
	return fmt.Errorf("pgcluster: start %s on port %d: %w\n%s%s", dir, port, err, out, log)
}

// Stop stops the server with a fast shutdown (clients are disconnected,
// then a checkpoint) and waits for it to exit. A server that does not run is
// no error.
func (c *Cluster) Stop(ctx context.Context) error {
	dir, err := c.dataDir()
	if err != nil {
		return err
	}
	pid, err := readPIDFile(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !postmasterAlive(pid.pid, dir) {
		return removeStale(dir, pid)
	}
	bin, err := c.binDir(dir)
	if err != nil {
		return err
	}
	as, err := serverUser()
	if err != nil {
		return err
	}
	out, err := as.run(ctx, filepath.Join(bin, "pg_ctl"), "stop", "-D", dir, "-m", "fast", "-w", "-t", waitSeconds(ctx))
	if err != nil {
		return fmt.Errorf("pgcluster: stop %s: %w\n%s", dir, err, out)
	}
	return nil
}

func (c *Cluster) dataDir() (string, error) {
	if c.DataDir == "" {
		return "", errors.New("pgcluster: no data dir")
	}
	dir, err := filepath.Abs(c.DataDir)
	if err != nil {
		return "", fmt.Errorf("pgcluster: data dir: %w", err)
	}
	return dir, nil
}

// binDir prefers the binaries of the version that made dataDir: a server of
// another major version cannot run it.
func (c *Cluster) binDir(dataDir string) (string, error) {
	if c.BinDir != "" {
		if !hasServer(c.BinDir) {
			return "", fmt.Errorf("pgcluster: %s lacks initdb, pg_ctl or postgres", c.BinDir)
		}
		return c.BinDir, nil
	}
	b, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION"))
	if err != nil {
		return Find()
	}
	want := strings.TrimSpace(string(b))
	if dir := "/usr/lib/postgresql/" + want + "/bin"; hasServer(dir) {
		return dir, nil
	}
	dir, err := Find()
	if err != nil {
		return "", err
	}
	got, err := serverVersion(dir)
	if err != nil {
		return "", err
	}
	if got != want {
		return "", fmt.Errorf("pgcluster: %s was made by PostgreSQL %s but %s holds PostgreSQL %s; install postgresql-%s or remove the data dir", dataDir, want, dir, got, want)
	}
	return dir, nil
}

// serverVersion returns the major version of the postgres in dir, as
// PG_VERSION spells it ("15", "9.6").
func serverVersion(dir string) (string, error) {
	out, err := exec.Command(filepath.Join(dir, "postgres"), "--version").Output()
	if err != nil {
		return "", fmt.Errorf("pgcluster: postgres --version: %w", err)
	}
	// "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"
	_, v, ok := strings.Cut(string(out), ") ")
	if !ok {
		return "", fmt.Errorf("pgcluster: postgres --version: unexpected %q", out)
	}
	v, _, _ = strings.Cut(v, " ")
	parts := strings.Split(strings.TrimSpace(v), ".")
	if n, err := strconv.Atoi(parts[0]); err == nil && n < 10 && len(parts) > 1 {
		return parts[0] + "." + parts[1], nil
	}
	return parts[0], nil
}

func initialised(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "PG_VERSION"))
	return err == nil
}

func urlFor(port int) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable", Superuser, port)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgcluster: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitSeconds turns the context's deadline into pg_ctl's -t.
func waitSeconds(ctx context.Context) string {
	d := defaultWait
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl)
	}
	return strconv.Itoa(max(1, int(d.Seconds())))
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func fileSize(name string) int64 {
	fi, err := os.Stat(name)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// tail returns what the server logged since offset, at most the last 4 KiB.
func tail(name string, offset int64) []byte {
	b, err := os.ReadFile(name)
	if err != nil || int64(len(b)) < offset {
		return nil
	}
	b = b[offset:]
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return b
}

// pidFile is what postmaster.pid says about a server.
type pidFile struct {
	pid       int
	port      int
	socketDir string
	status    string // "starting", "ready", "stopping", "standby"
}

func readPIDFile(dataDir string) (pidFile, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return pidFile{}, err
	}
	// Lines: pid, data dir, start time, port, socket dir, listen address,
	// shared memory key, status. A server still starting may not have
	// written them all.
	lines := strings.Split(string(b), "\n")
	field := func(i int) string {
		if i < len(lines) {
			return strings.TrimSpace(lines[i])
		}
		return ""
	}
	var f pidFile
	if f.pid, err = strconv.Atoi(field(0)); err != nil {
		return pidFile{}, fmt.Errorf("pgcluster: %s/postmaster.pid: bad pid %q", dataDir, field(0))
	}
	f.port, _ = strconv.Atoi(field(3))
	f.socketDir = field(4)
	f.status = field(7)
	return f, nil
}

// postmasterAlive reports whether pid is a live server on dataDir, rather
// than a dead one whose pid the kernel gave to another process.
func postmasterAlive(pid int, dataDir string) bool {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		// No procfs: signal 0 tells whether pid exists at all.
		err := syscall.Kill(pid, 0)
		return err == nil || errors.Is(err, syscall.EPERM)
	}
	if zombie(pid) {
		return false // dead, whether reaped or not
	}
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err == nil {
		// The postmaster runs in its data directory.
		real, err := filepath.EvalSymlinks(dataDir)
		if err != nil {
			real = dataDir
		}
		return cwd == real || cwd == dataDir
	}
	// Another user's process: trust its name.
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	name := strings.TrimSpace(string(comm))
	return name == "postgres" || name == "postmaster"
}

// waitOrphans waits for every process working in dataDir to exit.
func waitOrphans(ctx context.Context, dataDir string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		pids := inDir(dataDir)
		if len(pids) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgcluster: processes %v of a dead server on %s still run: %w", pids, dataDir, ctx.Err())
		case <-tick.C:
		}
	}
}

// inDir lists the live processes whose working directory is dir; where
// procfs or permissions hide them, it finds none.
func inDir(dir string) []int {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		real = dir
	}
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd")
		if err != nil || (cwd != real && cwd != dir) {
			continue
		}
		if !zombie(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// zombie reports whether pid is gone or dead.
func zombie(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name, which may itself hold ") ".
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return false
	}
	st := bytes.Fields(stat[i+1:])
	return len(st) > 0 && (st[0][0] == 'Z' || st[0][0] == 'X')
}

// removeStale deletes what a killed server left behind, which would
// otherwise stop the next one if its pid was reused.
func removeStale(dataDir string, pid pidFile) error {
	if pid.socketDir != "" && pid.port != 0 {
		sock := filepath.Join(pid.socketDir, ".s.PGSQL."+strconv.Itoa(pid.port))
		for _, name := range []string{sock, sock + ".lock"} {
			if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("pgcluster: remove stale socket: %w", err)
			}
		}
	}
	if err := os.Remove(filepath.Join(dataDir, "postmaster.pid")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pgcluster: remove stale postmaster.pid: %w", err)
	}
	return nil
}

// osUser is who runs the server programs.
type osUser struct {
	name     string
	uid, gid int
	cred     *syscall.Credential // nil: the current user
}

// serverUser is the current user, or "postgres" when that is root.
func serverUser() (*osUser, error) {
	if os.Geteuid() != 0 {
		return &osUser{uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: PostgreSQL cannot run as root and there is no postgres user to run it as (apt-get install postgresql creates one): %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: postgres uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: postgres gid %q: %w", u.Gid, err)
	}
	return &osUser{
		name: u.Username,
		uid:  uid,
		gid:  gid,
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
	}, nil
}

// mkdir makes dir for the server: its own, mode 0700 as initdb wants.
func (u *osUser) mkdir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if u.cred == nil {
		return nil
	}
	if err := os.Chown(dir, u.uid, u.gid); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return u.reach(dir)
}

// reach checks that u can walk down to dir, so that a root-owned 0700
// parent (a home directory, a fresh temp dir) fails here with a clear
// message rather than deep inside initdb.
func (u *osUser) reach(dir string) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		perm := fi.Mode().Perm()
		switch {
		case !ok:
		case int(st.Uid) == u.uid && perm&0o100 != 0:
		case int(st.Gid) == u.gid && perm&0o010 != 0:
		case perm&0o001 != 0:
		default:
			return fmt.Errorf("pgcluster: user %s, which runs PostgreSQL because we are root, cannot enter %s (mode %v); choose a directory under a world-searchable path", u.name, p, perm)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// run runs a server program as u and returns its output.
func (u *osUser) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	// The caller's working directory may be closed to the postgres user.
	cmd.Dir = "/"
	cmd.WaitDelay = 5 * time.Second
	if u.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.cred}
	}
	return cmd.CombinedOutput()
}
