package config

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Flagger is a configuration that registers its own flags.
type Flagger interface {
	RegisterFlags(fs *flag.FlagSet)
}

// Main is the body of every service's main: it fills cfg from the command
// line and the environment (prefix: the name in upper case, "-" as "_"),
// then calls run with a context cancelled by SIGINT or SIGTERM. A bad flag
// exits 2, an error from run exits 1.
func Main(name string, cfg Flagger, run func(ctx context.Context) error) {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	cfg.RegisterFlags(fs)
	prefix := strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	if err := Parse(fs, prefix, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		slog.Error(name+" stopped", "err", err)
		os.Exit(1)
	}
}
