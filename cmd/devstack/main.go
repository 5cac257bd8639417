// Command devstack runs the whole platform on one machine (make run): an
// embedded NATS JetStream, a private PostgreSQL from the system's binaries,
// the SMSC simulator and the five services, with state under -dir.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"pushsms.io/cmd/stack"
	"pushsms.io/lib/config"
	"pushsms.io/lib/telemetry"
)

func main() {
	stack.TuneGC()
	cfg := stack.DefaultConfig()
	config.Main("devstack", &cfg, func(ctx context.Context) error {
		log, err := telemetry.NewLogger(os.Stderr, "info", "text")
		if err != nil {
			return err
		}
		cfg.Logger = log
		s, err := stack.Start(ctx, cfg)
		if err != nil {
			return err
		}
		defer s.Stop()
		fmt.Printf(`
pushsms is running.
  partner gRPC API  %s
  API key           %s
  SMSC simulator    %s (UCP), stats at http://%s/stats
  compliance admin  %s (pushsms ported; no API key: keep it internal)
  billing admin     %s (pushsms invoice, statement, credit…; no API key)
  NATS              %s (policy push/show)
  data              %s

Send a first SMS:
  export PUSHSMS_ADDR=%s PUSHSMS_API_KEY=%s
  go run ./cmd/pushsms send -short-code %s -to 0607123456 -text "Hello from pushsms"
  go run ./cmd/pushsms status <message id>

Ctrl-C stops everything; state survives a restart.
`, s.APIAddr(), s.APIKey(), s.Sim().Addr(), s.SimHTTPAddr(), s.ComplianceAddr(), s.BillingAddr(), s.NATSURL(), cfg.Dir, s.APIAddr(), s.APIKey(), cfg.ShortCodes[0])
		select {
		case <-ctx.Done():
			slog.Info("stopping")
			return nil
		case err := <-s.Err():
			return err
		}
	})
}
