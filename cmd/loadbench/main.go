// Command loadbench measures the platform end to end as separate
// processes (nats-server, PostgreSQL, the five services, smsc-sim), driven
// through the partner gRPC API, and with -kannel drives Kannel 1.4.5
// against the same simulator in the same run (docs/loadbench.md).
//
//	cd cmd && go run ./loadbench -shortcodes 4 -messages 2000 -unthrottled -kannel
//	cd cmd && go run ./loadbench -shortcodes 2 -rate 50 -duration 10s -json out.json
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	cfg := Config{ShortCodes: 4, Messages: 1000, Rate: 100, Window: 100, DRDelay: 50 * time.Millisecond,
		Timeout: 60 * time.Second, Parallel: 64}
	flag.IntVar(&cfg.ShortCodes, "shortcodes", cfg.ShortCodes, "short codes of the partner (and as many for Kannel)")
	flag.IntVar(&cfg.Messages, "messages", cfg.Messages, "messages of 1, 2 and 3 segments in turn (about 2 segments each)")
	flag.DurationVar(&cfg.Duration, "duration", cfg.Duration, "instead of -messages: this much traffic at -rate on every short code")
	flag.IntVar(&cfg.Rate, "rate", cfg.Rate, "contracted rate per short code, segments/s (simulator, throttle, smsc-link, Kannel's throughput)")
	flag.BoolVar(&cfg.Unthrottled, "unthrottled", cfg.Unthrottled, "simulator without rate limit, short codes at the platform's highest rate: raw capacity")
	flag.IntVar(&cfg.Window, "window", cfg.Window, "UCP window of every session, both systems")
	flag.DurationVar(&cfg.DRDelay, "dr-delay", cfg.DRDelay, "simulator's delay between a submit's ACK and its DR")
	flag.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "wait at most this for every segment to be submitted, reported and billed, per system")
	flag.BoolVar(&cfg.Kannel, "kannel", cfg.Kannel, "then drive Kannel 1.4.5 (bearerbox + smsbox) against the same simulator")
	flag.Float64Var(&cfg.Pace, "pace", cfg.Pace, "offered load, messages/s, both systems (0: all at once, ours as one campaign per short code)")
	flag.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "leave the messages accepted in the run's first this long out of the latency percentiles, both systems (throughput and CPU count them all)")
	flag.BoolVar(&cfg.HalfCapacity, "half-capacity", cfg.HalfCapacity, "measure SendMessage's capacity (unthrottled), then the latencies at half of it on a fresh platform, and say whether p99 accept→submit is within 50 ms")
	flag.IntVar(&cfg.Parallel, "parallel", cfg.Parallel, "requests in flight at most: SendMessage with -pace, Kannel's sendsms always")
	flag.DurationVar(&cfg.AcceptWatch, "accept-watch", cfg.AcceptWatch, "measure the acceptance only: the campaigns' SubmitCampaign time, then this long of the platform working on them, then each process's CPU and peak RSS (0: the full run)")
	flag.DurationVar(&cfg.Profile, "profile", cfg.Profile, "a CPU profile of each service over this long from the start of the measured run, into the work directory (then kept)")
	flag.StringVar(&cfg.JSON, "json", cfg.JSON, "also write the report as JSON to this file")
	flag.BoolVar(&cfg.Keep, "keep", cfg.Keep, "keep the work directory (logs, data, kannel.conf)")
	flag.BoolVar(&cfg.Chaos, "chaos", cfg.Chaos, "the chaos suite: faults at random times during the run, then the invariants (docs/chaos.md)")
	flag.Int64Var(&cfg.Seed, "seed", cfg.Seed, "chaos: seed of the fault schedule (0: a random one, printed)")
	flag.DurationVar(&cfg.ResendAfter, "resend-after", 10*time.Second, "chaos: smsc-link's -smsc-unknown-resend-after")
	flag.DurationVar(&cfg.Settle, "settle", 5*time.Minute, "chaos: wait at most this for every lag 0 and every message terminal")
	flag.DurationVar(&cfg.Quiet, "quiet", 5*time.Second, "chaos: the platform must stay settled this long")
	flag.DurationVar(&cfg.CutFor, "cut-for", 3*time.Second, "chaos: how long the SMSC link stays cut")
	verbose := flag.Bool("v", false, "debug logs")
	flag.Parse()
	if cfg.Chaos {
		chaosDefaults(&cfg, setFlags())
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.Chaos {
		cfg.Log.Info("chaos seed (replay with -seed)", "seed", cfg.Seed)
	}
	if err := Run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

func setFlags() map[string]bool {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}
