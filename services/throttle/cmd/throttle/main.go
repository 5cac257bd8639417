// Command throttle paces each short code's SMS-MTs to its subscribed rate.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"pushsms.io/lib/config"
	"pushsms.io/services/throttle"
)

func main() {
	cfg := throttle.DefaultConfig()
	fs := flag.NewFlagSet("throttle", flag.ExitOnError)
	cfg.RegisterFlags(fs)
	if err := config.Parse(fs, "THROTTLE", os.Args[1:]); err != nil {
		slog.Error("throttle configuration", "err", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := throttle.Run(ctx, cfg); err != nil {
		slog.Error("throttle stopped", "err", err)
		os.Exit(1)
	}
}
