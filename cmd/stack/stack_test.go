package stack_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"pushsms.io/cmd/stack"
	"pushsms.io/lib/bus"
	"pushsms.io/lib/embeddednats"
)

// TestExternalNATS: given a server's URL, the stack's services use that
// server, and stopping the stack leaves it running: the stack stops only
// what it started.
func TestExternalNATS(t *testing.T) {
	srv, err := embeddednats.Start(embeddednats.Config{Dir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()

	cfg := stack.DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.APIPort, cfg.NATSPort, cfg.PGPort, cfg.SMSCPort, cfg.SimHTTPPort, cfg.NATSMonitor, cfg.CompliancePort, cfg.BillingPort = 0, 0, 0, 0, 0, 0, 0, 0
	cfg.PacingOnly = true
	cfg.NATSURL = srv.URL()
	cfg.Logger = slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	st, err := stack.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.NATSURL(); got != srv.URL() {
		st.Stop()
		t.Fatalf("NATSURL() = %s, want the given %s", got, srv.URL())
	}
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		st.Stop()
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		st.Stop()
		t.Fatal(err)
	}
	// smsc-link consumes SMS_SUBMIT: the stream is on the given server.
	if _, err := js.Stream(ctx, bus.StreamSubmit); err != nil {
		t.Errorf("stream %s on the given server: %v", bus.StreamSubmit, err)
	}
	st.Stop()
	if !srv.Running() {
		t.Fatal("the stack stopped a server it did not start")
	}
	if _, err := js.Stream(ctx, bus.StreamSubmit); err != nil {
		t.Errorf("after the stack's stop, stream %s: %v", bus.StreamSubmit, err)
	}
}
