package pgcluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// needServer skips (or, in CI, fails) a test on a machine without PostgreSQL.
func needServer(t *testing.T) {
	t.Helper()
	if _, err := Find(); errors.Is(err, ErrNotFound) {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

// dataDir returns a fresh directory that the postgres user can reach when the
// test runs as root (t.TempDir makes 0700 directories).
func dataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "pg")
}

func stopAtEnd(t *testing.T, c *Cluster) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
}

func exec1(t *testing.T, url, sql string) {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func count(t *testing.T, url string) int {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM kept").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestFind(t *testing.T) {
	needServer(t)
	dir, err := Find()
	if err != nil {
		t.Fatal(err)
	}
	if !hasServer(dir) {
		t.Errorf("Find() = %s, which lacks a server program", dir)
	}
	if _, err := serverVersion(dir); err != nil {
		t.Error(err)
	}
}

func TestVersionOf(t *testing.T) {
	tests := []struct {
		dir  string
		want int
	}{
		{"/usr/lib/postgresql/15/bin", 15},
		{"/usr/lib/postgresql/9.6/bin", 9},
		{"/usr/pgsql-16/bin", 16},
		{"/usr/bin", -1},
	}
	for _, tt := range tests {
		if got := versionOf(tt.dir); got != tt.want {
			t.Errorf("versionOf(%q) = %d, want %d", tt.dir, got, tt.want)
		}
	}
}

// TestPersistent checks that data survives a stop and a start, as the
// one-machine mode needs.
func TestPersistent(t *testing.T) {
	needServer(t)
	ctx := t.Context()
	c := &Cluster{DataDir: dataDir(t)}
	stopAtEnd(t, c)

	url, err := c.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exec1(t, url, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (1), (2)")

	again, err := c.Start(ctx)
	if err != nil {
		t.Fatalf("Start on a running cluster: %v", err)
	}
	if again != url {
		t.Errorf("Start on a running cluster = %s, want %s", again, url)
	}

	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Errorf("Stop on a stopped cluster: %v", err)
	}
	url, err = c.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := count(t, url); got != 2 {
		t.Errorf("after restart: got %d rows, want 2", got)
	}
}

func TestStartOtherPortWhileRunning(t *testing.T) {
	needServer(t)
	ctx := t.Context()
	c := &Cluster{DataDir: dataDir(t), NoSync: true}
	stopAtEnd(t, c)
	url, err := c.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	other := &Cluster{DataDir: c.DataDir, Port: port}
	if got, err := other.Start(ctx); err == nil {
		t.Errorf("Start on port %d while running at %s = %s, want an error", port, url, got)
	}
}

// TestStalePID checks that a cluster starts again after its server was
// killed, and when the pid in postmaster.pid now belongs to another process.
func TestStalePID(t *testing.T) {
	needServer(t)
	ctx := t.Context()
	// Durable: with NoSync the kill could lose the committed row.
	c := &Cluster{DataDir: dataDir(t), SocketDir: filepath.Join(t.TempDir(), "s")}
	if err := os.Chmod(filepath.Dir(c.SocketDir), 0o755); err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, c)
	url, err := c.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exec1(t, url, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (1)")
	pid, err := readPIDFile(c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(10 * time.Second); !zombie(pid.pid); <-tick.C {
		if time.Now().After(deadline) {
			t.Fatalf("postmaster %d still alive 10s after SIGKILL", pid.pid)
		}
	}

	url, err = c.Start(ctx)
	if err != nil {
		t.Fatalf("Start after SIGKILL: %v", err)
	}
	if got := count(t, url); got != 1 {
		t.Errorf("after SIGKILL: got %d rows, want 1", got)
	}

	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// A live process that is no postmaster: this test binary.
	fake := strconv.Itoa(os.Getpid()) + "\n" + c.DataDir + "\n0\n5432\n\n127.0.0.1\n0\nready\n"
	if err := os.WriteFile(filepath.Join(c.DataDir, "postmaster.pid"), []byte(fake), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Start(ctx); err != nil {
		t.Fatalf("Start with a reused pid: %v", err)
	}
}

func TestStartBadSetting(t *testing.T) {
	needServer(t)
	c := &Cluster{DataDir: dataDir(t), NoSync: true, Settings: []string{"no_such_setting=1"}}
	stopAtEnd(t, c)
	_, err := c.Start(t.Context())
	if err == nil {
		t.Fatal("Start with a bad setting: no error")
	}
	// The error carries the server's own complaint.
	if !strings.Contains(err.Error(), "no_such_setting") {
		t.Errorf("got %v, want the server log about no_such_setting", err)
	}
}

func TestUnreachableDataDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root hands the cluster to another user")
	}
	needServer(t)
	dir := t.TempDir() // 0700, root's
	err := Init(t.Context(), filepath.Join(dir, "pg"))
	if err == nil || !strings.Contains(err.Error(), "cannot enter") {
		t.Errorf("Init under a 0700 root dir: got %v, want a cannot-enter error", err)
	}
}

func TestShellQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a=b", "'a=b'"},
		{"dir=/tmp/a b", "'dir=/tmp/a b'"},
		{"x='y'", `'x='\''y'\'''`},
	}
	for _, tt := range tests {
		if got := shellQuote(tt.in); got != tt.want {
			t.Errorf("shellQuote(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
