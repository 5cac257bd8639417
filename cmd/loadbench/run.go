package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"pushsms.io/cmd/procstat"
)

// Config of a run.
type Config struct {
	ShortCodes int
	Messages   int
	// Duration, when above 0, sets Messages to this much traffic at Rate on
	// every short code (2 segments a message on average); ignored when
	// unthrottled.
	Duration time.Duration
	// Rate is each short code's contracted rate (segments per second) at
	// the simulator, the throttle and the link, and Kannel's throughput.
	Rate int
	// Unthrottled removes the simulator's rate limit and sets the short
	// codes at the highest rate the platform allows, to measure capacity.
	Unthrottled bool
	// Window is the UCP window of every session, both systems alike.
	Window  int
	DRDelay time.Duration
	// Timeout bounds the wait for every segment to be submitted, reported
	// and billed, for each system.
	Timeout time.Duration
	// Pace is the offered load in messages per second, both systems alike:
	// one SendMessage (ours) or sendsms request (Kannel) at a time, with
	// Parallel in flight at most. 0 offers everything at once: ours as one
	// campaign per short code, Kannel's as fast as sendsms answers.
	Pace     float64
	Parallel int
	// Warmup leaves out of the latency percentiles the messages accepted
	// (Kannel: sent) in the run's first Warmup: connections, pools, caches
	// and lanes made on the first messages are a start-up's cost, not the
	// steady load's. Throughput and CPU still count every message.
	Warmup time.Duration
	// HalfCapacity measures the capacity through SendMessage first
	// (unthrottled, more offered than taken), then the latencies at half of
	// it on a fresh platform (half.go): issue 8's latency figure.
	HalfCapacity bool
	Kannel       bool
	JSON         string
	// Keep keeps the work directory (logs, data, kannel.conf).
	Keep bool
	// Profile, when above 0, takes a CPU profile of each service over
	// this long from the start of the measured run, into the work
	// directory, which is then kept.
	Profile time.Duration
	// AcceptWatch, when above 0, measures the acceptance only: how long the
	// campaigns (one per short code, Messages in all) take to be accepted,
	// then this long of the platform working on them, after which every
	// process's CPU and peak RSS are read. No wait for delivery, no Kannel.
	AcceptWatch time.Duration
	Log         *slog.Logger

	// Chaos runs the chaos suite instead of the benchmark (chaos.go):
	// faults at seeded random times during the run, then the invariants.
	Chaos bool
	// Seed of the fault schedule; 0 picks one (printed, to replay it).
	Seed int64
	// ResendAfter is smsc-link's -smsc-unknown-resend-after under chaos.
	ResendAfter time.Duration
	// Settle bounds the wait, after the last fault and the last
	// acceptance, for every consumer's lag 0 and every message terminal.
	Settle time.Duration
	// Quiet is how long the platform must stay settled to count as such.
	Quiet time.Duration
	// CutFor is how long the SMSC link stays cut (simulator stopped).
	CutFor time.Duration
}

// warm tells whether a message accepted (sent) at at, in a run started at
// start, counts in the latencies (Warmup).
func (c Config) warm(start, at time.Time) bool { return at.Sub(start) >= c.Warmup }

// Run builds the binaries, starts the platform as separate processes,
// drives it, then Kannel if asked, and writes the report to out (Markdown)
// and cfg.JSON. Every process it started is stopped before it returns.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	if cfg.Chaos {
		return RunChaos(ctx, cfg, out)
	}
	if cfg.HalfCapacity {
		return runHalfCapacity(ctx, cfg, out)
	}
	rep, err := measure(ctx, cfg)
	if err != nil {
		return err
	}
	return writeReport(out, cfg.JSON, rep)
}

// writeReport prints rep as Markdown to out and, with file, as JSON there.
func writeReport(out io.Writer, file string, rep *Report) error {
	if err := writeMarkdown(out, rep); err != nil {
		return err
	}
	if file != "" {
		return writeJSON(file, rep)
	}
	return nil
}

// measure is one run: the platform, then Kannel if asked.
func measure(ctx context.Context, cfg Config) (_ *Report, err error) {
	if cfg.ShortCodes < 1 || cfg.ShortCodes > 100 {
		return nil, fmt.Errorf("shortcodes %d: want 1 to 100", cfg.ShortCodes)
	}
	if !cfg.Unthrottled && cfg.Rate < 1 {
		return nil, fmt.Errorf("rate %d: want at least 1, or -unthrottled", cfg.Rate)
	}
	if cfg.Duration > 0 && !cfg.Unthrottled {
		cfg.Messages = int(cfg.Duration.Seconds() * float64(cfg.Rate*cfg.ShortCodes) / 2)
	}
	if cfg.Messages < cfg.ShortCodes {
		return nil, fmt.Errorf("messages %d: want at least one per short code", cfg.Messages)
	}
	p, root, err := newPlatform(cfg)
	if err != nil {
		return nil, err
	}
	defer func() { err = p.finish(err) }()

	cfg.Log.Info("building binaries", "dir", p.bin)
	if err := build(ctx, root, p.bin); err != nil {
		return nil, err
	}
	rep := &Report{Started: time.Now().UTC(), Machine: machine(), ShortCodes: cfg.ShortCodes, Messages: cfg.Messages, Rate: cfg.simRate(), Unthrottled: cfg.Unthrottled, Pace: cfg.Pace, Warmup: cfg.Warmup}
	msgs := mix(cfg.Messages, 0)
	segments := 0
	for _, m := range msgs {
		segments += m.segments
	}

	cfg.Log.Info("starting the platform")
	if err := p.startAll(ctx); err != nil {
		return nil, err
	}
	run := p.runOurs
	if cfg.AcceptWatch > 0 {
		run, cfg.Kannel = p.runAccept, false
	}
	ours, err := run(ctx, msgs, segments)
	if err != nil {
		return nil, err
	}
	rep.Systems = append(rep.Systems, ours)
	// Kannel gets the machine to itself: our services, NATS and PostgreSQL
	// stop first; the simulator stays, the same process for both.
	if err := p.stopPlatform(); err != nil {
		return nil, err
	}
	if cfg.Kannel {
		k, err := p.runKannel(ctx, msgs, segments)
		if err != nil {
			return nil, err
		}
		rep.Systems = append(rep.Systems, k)
	}
	rep.computeRatio()
	return rep, nil
}

// newPlatform creates the work directory of a run; finish removes it.
func newPlatform(cfg Config) (*platform, string, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, "", err
	}
	dir, err := os.MkdirTemp("", "loadbench-")
	if err != nil {
		return nil, "", fmt.Errorf("work dir: %w", err)
	}
	// As root the private PostgreSQL runs as postgres: it must enter.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, "", fmt.Errorf("work dir: %w", err)
	}
	return &platform{cfg: cfg, log: cfg.Log, dir: dir, bin: filepath.Join(dir, "bin"), procs: &procs{log: cfg.Log, dir: dir}}, root, nil
}

// finish stops whatever still runs (error, Ctrl-C: nothing is left
// running) and removes the work directory unless asked to keep it or the
// run failed.
func (p *platform) finish(err error) error {
	err = errors.Join(err, p.close())
	if p.cfg.Keep || p.cfg.Profile > 0 || err != nil {
		p.log.Info("work directory kept (logs, data)", "dir", p.dir)
		return err
	}
	_ = os.RemoveAll(p.dir)
	return nil
}

func (p *platform) startAll(ctx context.Context) error {
	if err := p.startNATS(ctx); err != nil {
		return err
	}
	if err := p.startPostgres(ctx); err != nil {
		return err
	}
	if err := p.startSim(ctx); err != nil {
		return err
	}
	if err := p.startServices(ctx); err != nil {
		return err
	}
	if err := p.configure(ctx); err != nil {
		return err
	}
	return p.waitSessions(ctx, ourCodes(p.cfg.ShortCodes), 30*time.Second)
}

// watched is a process whose cost is measured.
type watched struct {
	name string
	pid  int
	tree bool
}

func (p *platform) ourProcesses() ([]watched, error) {
	ws := []watched{{name: "nats-server", pid: p.nats.pid()}}
	pg, err := postmasterPID(p.pgDir)
	if err != nil {
		return nil, err
	}
	ws = append(ws, watched{name: "postgresql", pid: pg, tree: true})
	for _, s := range p.services {
		ws = append(ws, watched{name: s.name, pid: s.pid()})
	}
	return ws, nil
}

func sample(ws []watched) (map[string]procstat.Usage, error) {
	m := map[string]procstat.Usage{}
	for _, w := range ws {
		u, err := procstat.TreeUsage("/proc", w.pid, w.tree)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", w.name, err)
		}
		m[w.name] = u
	}
	return m, nil
}

// costs fills sys.Processes with the CPU spent between before and after
// and the peak RSS at the end, and the sums.
func costs(sys *System, ws []watched, before, after map[string]procstat.Usage) {
	for _, w := range ws {
		pr := Process{Name: w.name, PID: w.pid, CPU: after[w.name].CPU - before[w.name].CPU, PeakRSS: after[w.name].PeakRSS}
		sys.Processes = append(sys.Processes, pr)
		sys.CPU += pr.CPU
		sys.PeakRSS += pr.PeakRSS
	}
}

// simCost notes the simulator's CPU, which belongs to neither system.
func (p *platform) simCost(sys *System, before procstat.Usage) {
	after, err := procstat.TreeUsage("/proc", p.sim.pid(), false)
	if err != nil {
		return
	}
	sys.Notes = append(sys.Notes, fmt.Sprintf("the simulator (not in the totals) used %.2f CPU s", after.CPU-before.CPU))
}

// ourStart begins a run of ours: its System, the processes it watches and
// their figures before.
func (p *platform) ourStart(msgs []message, segments int, guarantee string) (System, []watched, map[string]procstat.Usage, error) {
	sys := System{Name: "pushsms", Messages: len(msgs), Segments: segments, Guarantee: guarantee}
	ws, err := p.ourProcesses()
	if err != nil {
		return sys, nil, nil, err
	}
	before, err := sample(ws)
	return sys, ws, before, err
}

// servicesRSS sums the peak RSS of the five services (not NATS, not
// PostgreSQL) in u.
func servicesRSS(ws []watched, u map[string]procstat.Usage) int64 {
	var n int64
	for _, w := range ws {
		if w.name != "nats-server" && w.name != "postgresql" {
			n += u[w.name].PeakRSS
		}
	}
	return n
}

func (p *platform) runOurs(ctx context.Context, msgs []message, segments int) (System, error) {
	sys, ws, before, err := p.ourStart(msgs, segments,
		"every accepted message is in JetStream file storage before SendMessage/SubmitCampaign answers; billed once (ledger primary key)")
	if err != nil {
		return sys, err
	}
	simBefore, _ := procstat.TreeUsage("/proc", p.sim.pid(), false)
	profiled := p.profile(ctx)
	p.log.Info("driving the platform", "messages", len(msgs), "segments", segments)
	start := time.Now()
	if err := p.submitOurs(ctx, msgs); err != nil {
		return sys, err
	}
	ok, pr, err := p.waitOurs(ctx, int64(segments), p.cfg.Timeout)
	if err != nil && ctx.Err() != nil {
		return sys, err
	}
	sys.Wall, sys.Complete = time.Since(start), ok
	if !ok {
		sys.Notes = append(sys.Notes, fmt.Sprintf("incomplete after %v: %d segments at the simulator, %d reported, %d billed of %d", p.cfg.Timeout, pr.simAccepted, pr.done, pr.billed, segments))
	}
	after, err := sample(ws)
	if err != nil {
		return sys, err
	}
	costs(&sys, ws, before, after)
	p.simCost(&sys, simBefore)
	if note := profiled(); note != "" {
		sys.Notes = append(sys.Notes, note)
	}
	if err := p.collectOurs(ctx, &sys, start); err != nil {
		return sys, err
	}
	if sys.Lag, err = p.lag(ctx); err != nil {
		return sys, err
	}
	st, err := p.stats(ctx)
	if err != nil {
		return sys, err
	}
	sys.ShortCodes = shortCodeFigures(st, ourCodes(p.cfg.ShortCodes), p.cfg.simRate())
	return sys, nil
}

// runAccept submits the campaigns and times their acceptance, then lets
// the platform work on them for AcceptWatch before reading each process's
// figures: the peak RSS is the high-water mark of the whole run.
func (p *platform) runAccept(ctx context.Context, msgs []message, segments int) (System, error) {
	sys, ws, before, err := p.ourStart(msgs, segments,
		"every accepted message is in JetStream file storage and PostgreSQL before SubmitCampaign answers")
	if err != nil {
		return sys, err
	}
	profiled := p.profile(ctx)
	p.log.Info("submitting the campaigns", "recipients", len(msgs))
	start := time.Now()
	if err := p.submitOurs(ctx, msgs); err != nil {
		return sys, err
	}
	sys.Wall = time.Since(start)
	sys.Complete = true
	sys.Accepted = Throughput{Events: len(msgs), PerSecond: float64(len(msgs)) / sys.Wall.Seconds(), Overall: float64(len(msgs)) / sys.Wall.Seconds(), Window: sys.Wall}
	accepted, err := sample(ws)
	if err != nil {
		return sys, err
	}
	sys.Notes = append(sys.Notes, fmt.Sprintf("%d recipients accepted in %v (%.0f/s); the five services' peak RSS then: %d MB together",
		len(msgs), sys.Wall.Round(time.Millisecond), sys.Accepted.PerSecond, servicesRSS(ws, accepted)>>20))
	p.log.Info("accepted; the platform works on", "took", sys.Wall, "watch", p.cfg.AcceptWatch)
	select {
	case <-ctx.Done():
		return sys, ctx.Err()
	case <-time.After(p.cfg.AcceptWatch):
	}
	after, err := sample(ws)
	if err != nil {
		return sys, err
	}
	costs(&sys, ws, before, after)
	if note := profiled(); note != "" {
		sys.Notes = append(sys.Notes, note)
	}
	sys.Notes = append(sys.Notes, fmt.Sprintf("after %v more of the platform working on them: the five services' peak RSS %d MB together", p.cfg.AcceptWatch, servicesRSS(ws, after)>>20))
	if sys.Lag, err = p.lag(ctx); err != nil {
		return sys, err
	}
	return sys, nil
}

func (p *platform) runKannel(ctx context.Context, msgs []message, segments int) (System, error) {
	sys := System{Name: "kannel", Messages: len(msgs), Segments: segments,
		Guarantee: "no store file: a message is in bearerbox's memory only once sendsms answers; lost if bearerbox stops"}
	p.log.Info("starting kannel")
	k, err := p.startKannel(ctx)
	if k != nil {
		defer k.close()
	}
	if err != nil {
		return sys, err
	}
	ws := []watched{{name: "bearerbox", pid: k.bearerbox.pid()}, {name: "smsbox", pid: k.smsbox.pid()}}
	before, err := sample(ws)
	if err != nil {
		return sys, err
	}
	simBefore, _ := procstat.TreeUsage("/proc", p.sim.pid(), false)
	p.log.Info("driving kannel", "messages", len(msgs), "segments", segments)
	start := time.Now()
	sentAt, acceptedAt, err := k.send(ctx, msgs, p.cfg.Pace, p.cfg.Parallel)
	if err != nil {
		return sys, err
	}
	ok, n, err := k.wait(ctx, int64(segments), int64(len(msgs)), 5*time.Second, p.cfg.Timeout)
	if err != nil && ctx.Err() != nil {
		return sys, err
	}
	sys.Wall, sys.Complete = time.Since(start), ok
	sys.Notes = append(sys.Notes, fmt.Sprintf("of %d segments (%d messages): %d submits at the simulator, %d accepted, %d DRs sent, %d final DLR callbacks from smsbox", segments, len(msgs), n[0], n[1], n[2], n[3]))
	if !ok {
		sys.Notes = append(sys.Notes, "incomplete: Kannel drops a submit the SMSC NACKs (no resend), or the wait timed out")
	}
	after, err := sample(ws)
	if err != nil {
		return sys, err
	}
	costs(&sys, ws, before, after)
	p.simCost(&sys, simBefore)
	if err := k.collect(ctx, &sys, start, msgs, sentAt, acceptedAt); err != nil {
		return sys, err
	}
	st, err := p.stats(ctx)
	if err != nil {
		return sys, err
	}
	sys.ShortCodes = shortCodeFigures(st, kannelCodes(p.cfg.ShortCodes), p.cfg.simRate())
	return sys, nil
}

// stopPlatform stops the services (producers first), NATS and PostgreSQL;
// the simulator keeps running.
func (p *platform) stopPlatform() error {
	if p.bus != nil {
		p.bus.Close()
		p.bus = nil
	}
	if p.pool != nil {
		p.pool.Close()
		p.pool = nil
	}
	var errs []error
	for i := len(p.services) - 1; i >= 0; i-- {
		errs = append(errs, p.services[i].stop(15*time.Second))
	}
	if p.nats != nil {
		errs = append(errs, p.nats.stop(15*time.Second))
	}
	errs = append(errs, p.stopPostgres())
	return errors.Join(errs...)
}

// close stops everything still running.
func (p *platform) close() error {
	return errors.Join(p.stopPlatform(), p.procs.stopAll(15*time.Second))
}

// machine describes where the run happened, for the report's heading.
func machine() string {
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = ", load " + strings.Join(strings.Fields(string(b))[:3], " ")
	}
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":")) + ", "
				break
			}
		}
	}
	return fmt.Sprintf("%s%d cores, %s%s", model, runtime.NumCPU(), runtime.Version(), load)
}
