// Package bustest runs a real JetStream server for tests: embedded, one per
// test, its files in the test's temp dir. Nothing about the bus is mocked.
package bustest

import (
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"context"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/embeddednats"
	"pushsms.io/lib/telemetry"
)

// Server is a test's NATS server.
type Server struct {
	*embeddednats.Server
	cfg embeddednats.Config
}

// Start runs a server for t and shuts it down when t ends. Set
// BUS_TEST_LOG=1 to see the server's log.
func Start(t testing.TB) *Server {
	t.Helper()
	cfg := embeddednats.Config{Dir: t.TempDir(), Port: -1, Logs: os.Getenv("BUS_TEST_LOG") == "1"}
	s, err := embeddednats.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Keep the port so that Restart comes back at the same URL.
	cfg.Port = s.Addr().(*net.TCPAddr).Port
	srv := &Server{Server: s, cfg: cfg}
	t.Cleanup(func() { srv.Stop() })
	return srv
}

// Restart stops the server and starts it again on the same port and files,
// as a crash and restart of the NATS server would.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	n, err := embeddednats.Start(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Server = n
}

// Connect returns a Bus on s for t, with streams ensured, closed when t ends.
func Connect(t testing.TB, s *Server) *bus.Bus {
	t.Helper()
	// The test publishes as an upstream service that traces every message
	// (sampled, so that the service under test records its spans), without
	// exporting them anywhere.
	tel, err := telemetry.Setup(context.Background(), "test", telemetry.Config{LogLevel: "error", LogFormat: "text", TracerProvider: sdktrace.NewTracerProvider()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, bus.Config{URL: s.URL(), Replicas: 1}, "test", tel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// Eventually calls f until it returns nil, failing t with f's last error
// after d. Tests wait with it instead of sleeping.
func Eventually(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", d, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitIdle waits until the durable consumer of stream has been handed at
// least delivered events (redeliveries included) and holds none pending or
// unacknowledged: the service under test has finished with its input.
func WaitIdle(t testing.TB, b *bus.Bus, stream, durable string, delivered uint64, d time.Duration) {
	t.Helper()
	Eventually(t, d, func() error {
		c, err := b.JS.Consumer(context.Background(), stream, durable)
		if err != nil {
			return err
		}
		ci, err := c.Info(context.Background())
		if err != nil {
			return err
		}
		if ci.Delivered.Consumer < delivered || ci.NumPending != 0 || ci.NumAckPending != 0 {
			return fmt.Errorf("%s: delivered %d (want %d), pending %d, ack pending %d", durable, ci.Delivered.Consumer, delivered, ci.NumPending, ci.NumAckPending)
		}
		return nil
	})
}
