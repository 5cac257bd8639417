// Command ratebench measures the throttle as the operator sees it: it
// starts the one-machine platform (cmd/stack) in a temporary directory,
// queues a backlog through the partner API and reads the SMSC simulator's
// per-second statistics: per short code the contracted rate, the rate
// achieved in the steady seconds, and the violations (submits the SMSC
// refused for exceeding the rate in a one-second window).
//
//	go run ./cmd/ratebench -scenario rates -duration 60s
//	go run ./cmd/ratebench -scenario many -json
//
// Scenarios: rates, many, priority, weights, failover (docs/throughput.md).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"pushsms.io/cmd/stack"
	"pushsms.io/lib/service"
)

// Config of a run.
type Config struct {
	Scenario string
	// Duration is the backlog per short code, in time at its rate.
	Duration time.Duration
	// Rate is the short code's rate in the priority, weights and failover
	// scenarios.
	Rate int
	// ManyRate, when above 0, is the rate of each of the many scenario's
	// 200 short codes instead of the offer's mix (6 000 SMS/s in all).
	ManyRate int
	// ManyMix is the many scenario's mix of rates: "6000" (10 ×80, 20 ×60,
	// 50 ×40, 100 ×20) or "5000" (10 ×120, 20 ×40, 50 ×20, 100 ×20).
	ManyMix string
	// Marketing is the marketing backlog of the priority scenario.
	Marketing int
	// Priority is how many customer-relationship messages it measures.
	Priority int
	// RaiseTo is the rate the raise scenario raises -rate to.
	RaiseTo int
	// Recipients is the campaign size of the accept and cancel scenarios.
	Recipients int
	JSON       bool
	// Path is what runs: "full", the whole platform fed through the
	// partner API; "pacing", throttle and smsc-link only, fed cleared
	// events directly (backlog scenarios).
	Path string
	// Dir holds the platform's data; empty means a temporary directory,
	// removed at the end.
	Dir      string
	Progress bool
	Verbose  bool
	// NATSProcess runs the JetStream server in a child process rather
	// than in the bench's, where its collector and goroutines share the
	// runtime of the services it serves.
	NATSProcess bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == natsCommand {
		// Started by the bench itself for -nats-process (natsproc.go).
		if err := serveNATS(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "ratebench nats-server:", err)
			os.Exit(1)
		}
		return
	}
	// The services' deployment setting (deploy/k8s): the bench measures
	// the platform as it runs.
	stack.TuneGC()
	cfg := Config{Scenario: "rates", Duration: 60 * time.Second, Rate: 50, Marketing: 100_000, Priority: 100, Recipients: 1_000_000, RaiseTo: 100, Progress: true, Path: "full"}
	flag.StringVar(&cfg.Scenario, "scenario", cfg.Scenario, "rates, many, priority, weights, failover, accept, cancel or raise")
	flag.DurationVar(&cfg.Duration, "duration", cfg.Duration, "backlog per short code, in time at its rate (rates, many, weights, failover)")
	flag.IntVar(&cfg.Rate, "rate", cfg.Rate, "rate of the short code of the priority, weights and failover scenarios, SMS/s")
	flag.StringVar(&cfg.ManyMix, "many-mix", "6000", "rates of the many scenario's 200 short codes: 6000 (10 ×80, 20 ×60, 50 ×40, 100 ×20 SMS/s) or 5000 (10 ×120, 20 ×40, 50 ×20, 100 ×20)")
	flag.IntVar(&cfg.ManyRate, "many-rate", cfg.ManyRate, "rate of each of the 200 short codes of the many scenario (0: the offer's mix, 6 000 SMS/s in all)")
	flag.IntVar(&cfg.Marketing, "marketing", cfg.Marketing, "marketing messages queued before the customer-relationship ones (priority)")
	flag.IntVar(&cfg.Priority, "priority", cfg.Priority, "customer-relationship messages measured (priority)")
	flag.IntVar(&cfg.RaiseTo, "raise-to", cfg.RaiseTo, "rate the raise scenario raises -rate to, SMS/s")
	flag.IntVar(&cfg.Recipients, "recipients", cfg.Recipients, "recipients of the accept and cancel scenarios' campaign")
	flag.BoolVar(&cfg.JSON, "json", cfg.JSON, "print the results as JSON")
	flag.StringVar(&cfg.Path, "path", cfg.Path, `"full": the whole platform, fed through the partner API; "pacing": throttle and smsc-link only, fed cleared events (rates, many)`)
	flag.BoolVar(&cfg.NATSProcess, "nats-process", cfg.NATSProcess, "run the JetStream server in a process of its own, as in production, rather than in the bench's")
	flag.StringVar(&cfg.Dir, "dir", cfg.Dir, "platform data directory (default: a temporary one, removed)")
	flag.BoolVar(&cfg.Progress, "progress", cfg.Progress, "show a progress bar on stderr")
	flag.BoolVar(&cfg.Verbose, "v", cfg.Verbose, "log the platform's messages to stderr")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (the five services, the simulator and the bench share the process) to this file")
	pprofAddr := flag.String("pprof", "", "serve Go's profiles of the process at /debug/pprof/ on this address while it runs (a heap profile in the middle of a backlog shows what the collector marks)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *pprofAddr != "" {
		if err := servePprof(ctx, *pprofAddr); err != nil {
			fmt.Fprintln(os.Stderr, "ratebench:", err)
			os.Exit(1)
		}
	}
	if err := profiled(*cpuProfile, func() error { return Run(ctx, cfg, os.Stdout) }); err != nil {
		fmt.Fprintln(os.Stderr, "ratebench:", err)
		os.Exit(1)
	}
}

// servePprof serves the runtime's profiles on addr until ctx ends.
func servePprof(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("pprof: %w", err)
	}
	mux := http.NewServeMux()
	service.HandleProfiles(mux)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	context.AfterFunc(ctx, func() { _ = srv.Close() })
	return nil
}

// profiled runs f, with the CPU profiled into path unless it is empty.
func profiled(path string, f func() error) error {
	if path == "" {
		return f()
	}
	out, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	defer out.Close()
	if err := pprof.StartCPUProfile(out); err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	defer pprof.StopCPUProfile()
	return f()
}
