package main

import (
	"io"
	"os"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestMain lets the test binary be the child that -nats-process starts,
// as ratebench's main does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == natsCommand {
		if err := serveNATS(os.Args[2:]); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestNATSProcess: the server in its own process stores what it is sent,
// its CPU time counts, and it stops cleanly with its store closed.
func TestNATSProcess(t *testing.T) {
	p, err := startNATSProcess(t.Context(), t.TempDir(), os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = p.stop()
		}
	}()
	nc, err := nats.Connect(p.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	for i := range n {
		if _, err := js.Publish(ctx, "t.x", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := js.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().State.Msgs; got != n {
		t.Errorf("stream holds %d messages, want %d", got, n)
	}
	// USER_HZ ticks: 2 000 stored publishes take more than one. A child's
	// CPU time is read in /proc: without it, the rest still holds.
	if _, err := os.Stat("/proc/self/stat"); err == nil {
		if cpu, err := p.cpu(); err != nil || cpu <= 0 {
			t.Errorf("server CPU %v, %v after %d stored publishes, want some", cpu, err, n)
		}
	}
	nc.Close()
	stopped = true
	if err := p.stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	// It stopped on its own after SIGTERM: exit status 0, not a kill.
	if st := p.cmd.ProcessState; st == nil || !st.Exited() || st.ExitCode() != 0 {
		t.Errorf("the server's process after stop: %v, want exited with status 0", st)
	}
}

// TestNATSProcessFailsWithItsReason: a server that cannot start says why
// in the bench's error, not only its exit status.
func TestNATSProcessFailsWithItsReason(t *testing.T) {
	p, err := startNATSProcess(t.Context(), "", io.Discard)
	if err == nil {
		_ = p.stop()
		t.Fatal("the server started without a store")
	}
	if !strings.Contains(err.Error(), "exited at start: exit status 1") || !strings.Contains(err.Error(), "embeddednats: Dir is empty") {
		t.Errorf("error %q, want the exit status and the server's reason", err)
	}
}

// TestTail keeps the last bytes written, across writes.
func TestTail(t *testing.T) {
	tl := &tail{max: 5}
	for _, w := range []string{"abc", "defg", "h"} {
		if n, err := tl.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	if got := string(tl.bytes()); got != "defgh" {
		t.Errorf("tail %q, want %q", got, "defgh")
	}
}
