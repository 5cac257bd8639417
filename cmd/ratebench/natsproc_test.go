package main

import (
	"os"
	"testing"
	"time"

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
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc: a child's CPU time is read there")
	}
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
	// USER_HZ ticks: 2 000 stored publishes take more than one.
	if cpu := p.cpu(); cpu <= 0 {
		t.Errorf("server CPU %v after %d stored publishes, want some", cpu, n)
	}
	nc.Close()
	stopped = true
	if err := p.stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	select {
	case <-p.exited:
	case <-time.After(time.Second):
		t.Error("the server's process still runs after stop")
	}
}
