package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"pushsms.io/cmd/stack"
	"pushsms.io/lib/bus"
	"pushsms.io/lib/policy"
	"pushsms.io/lib/rate"
	"pushsms.io/lib/telemetry"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
	"pushsms.io/services/throttle"
)

// ErrFeature marks a scenario whose platform feature is not there yet: the
// run stops instead of reporting a meaningless figure.
var ErrFeature = errors.New("feature not available")

// ErrThresholds is returned, after the report, when the must-show
// thresholds do not hold: scripts see it in the exit status.
var ErrThresholds = errors.New("must-show thresholds not met")

// Report is what a run prints.
type Report struct {
	Scenario string        `json:"scenario"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	Results  []Result      `json:"short_codes"`
	// Extra holds the scenario's own figures (latencies, shares, failover).
	Extra map[string]any `json:"extra,omitempty"`
	// Pass tells whether the must-show thresholds hold.
	Pass     bool     `json:"pass"`
	Failures []string `json:"failures,omitempty"`
}

// Run runs cfg.Scenario and writes its report to out.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	sc, ok := scenarios[cfg.Scenario]
	if !ok {
		return fmt.Errorf("unknown scenario %q (rates, many, priority, weights, failover, accept)", cfg.Scenario)
	}
	if cfg.Path != "full" && cfg.Path != "pacing" {
		return fmt.Errorf("path %q: want full or pacing", cfg.Path)
	}
	backlog := cfg.Scenario == "rates" || cfg.Scenario == "many"
	if cfg.Path == "pacing" && !backlog {
		return fmt.Errorf("path pacing: only the backlog scenarios (rates, many) can be fed cleared events")
	}
	if cfg.NATSProcess && !backlog {
		// The others report the process's CPU or peak RSS as the whole
		// platform's.
		return fmt.Errorf("nats-process: only the backlog scenarios (rates, many) count the server's process")
	}
	rep := &Report{Scenario: cfg.Scenario, Started: time.Now().UTC(), Extra: map[string]any{"path": cfg.Path, "nats": natsWhere(cfg)}}
	if err := sc(ctx, cfg, rep); err != nil {
		return fmt.Errorf("scenario %s: %w", cfg.Scenario, err)
	}
	rep.Duration = time.Since(rep.Started)
	rep.Pass = len(rep.Failures) == 0
	if err := writeReport(out, cfg, rep); err != nil {
		return err
	}
	if !rep.Pass {
		return ErrThresholds
	}
	return nil
}

func writeReport(out io.Writer, cfg Config, rep *Report) error {
	if cfg.JSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	if len(rep.Results) > 0 {
		if err := printTable(out, rep.Results); err != nil {
			return err
		}
	}
	keys := make([]string, 0, len(rep.Extra))
	for k := range rep.Extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(out, "%s: %v\n", k, rep.Extra[k])
	}
	for _, f := range rep.Failures {
		fmt.Fprintln(out, "FAIL:", f)
	}
	if rep.Pass {
		fmt.Fprintln(out, "PASS")
	}
	return nil
}

// bench is a running platform and a client of its local partner.
type bench struct {
	cfg    Config
	st     *stack.Stack
	sc     stack.Config
	client partnerv1.MessagingServiceClient
	conn   *grpc.ClientConn
	// bus is the bench's own connection, for rates, policy and the
	// pacing path's events.
	bus *bus.Bus
	// natsProc is the JetStream server's process with Config.NATSProcess;
	// nil when it runs in the bench's.
	natsProc *natsProcess
	dir      string
	temp     bool
	next     int // next recipient
	mu       sync.Mutex
}

// startBench starts the platform with the given short codes and rates.
//
// statsOnly: the scenario reads the simulator's statistics only, so the
// simulator keeps no record of each submit. It runs in the bench's
// process, and hundreds of bytes held per segment (300 000 on a 60 s
// backlog of 200 short codes) would be marked by the collector that the
// platform's own services share, a cost that an SMSC on another machine
// does not put on them.
func startBench(ctx context.Context, cfg Config, rates throttle.RateTable, replicas int, statsOnly bool) (*bench, error) {
	b := &bench{cfg: cfg, dir: cfg.Dir}
	if b.dir == "" {
		d, err := os.MkdirTemp("", "ratebench-")
		if err != nil {
			return nil, err
		}
		// As root the private PostgreSQL runs as postgres: it must enter.
		if err := os.Chmod(d, 0o755); err != nil {
			return nil, err
		}
		b.dir, b.temp = d, true
	}
	sc := stack.DefaultConfig()
	sc.Dir = b.dir
	sc.APIPort, sc.NATSPort, sc.PGPort, sc.SMSCPort, sc.SimHTTPPort, sc.NATSMonitor, sc.CompliancePort, sc.BillingPort = 0, 0, 0, 0, 0, 0, 0, 0
	sc.ShortCodes = slices.Sorted(func(yield func(string) bool) {
		for c := range rates {
			if !yield(c) {
				return
			}
		}
	})
	sc.Rates = rates
	sc.ThrottleReplicas = replicas
	sc.DRDelay = 50 * time.Millisecond
	sc.PacingOnly = cfg.Path == "pacing"
	sc.SimNoRecords = statsOnly
	sc.Logger = slog.New(slog.DiscardHandler)
	if cfg.Verbose {
		sc.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if cfg.NATSProcess {
		logs := io.Discard
		if cfg.Verbose {
			logs = os.Stderr
		}
		var err error
		if b.natsProc, err = startNATSProcess(startCtx, filepath.Join(b.dir, "nats"), logs); err != nil {
			b.cleanup()
			return nil, err
		}
		sc.NATSURL = b.natsProc.url
	}
	st, err := stack.Start(startCtx, sc)
	if err != nil {
		b.cleanup()
		return nil, fmt.Errorf("start platform: %w", err)
	}
	b.st, b.sc = st, sc
	if !sc.PacingOnly {
		b.conn, err = grpc.NewClient(st.APIAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.close()
			return nil, err
		}
		b.client = partnerv1.NewMessagingServiceClient(b.conn)
	}
	if err := b.configure(ctx, rates); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

// configure writes each short code's rate where the platform reads rates
// as data (bucket SHORT_CODES, key "<sc>.rate", lib/rate), on top of the
// stack's static table: the same figures, whichever is read. It also gives
// the short codes' contracts a sending window of the whole day (policy),
// so that the marketing scenarios measure the throttle at any hour of a
// working day.
func (b *bench) configure(ctx context.Context, rates throttle.RateTable) error {
	tel, err := telemetry.Setup(ctx, "ratebench", telemetry.Config{LogLevel: "error", LogFormat: "text", Logger: b.sc.Logger})
	if err != nil {
		return err
	}
	bb, err := bus.Connect(ctx, bus.Config{URL: b.st.NATSURL(), Replicas: 1}, "ratebench", tel)
	if err != nil {
		return fmt.Errorf("connect bus: %w", err)
	}
	b.bus = bb
	for c, r := range rates {
		if err := rate.PutRate(ctx, bb, c, r); err != nil {
			return err
		}
	}
	if err := policy.Put(ctx, bb, allDay(slices.Collect(maps.Keys(rates)))); err != nil {
		return err
	}
	// Compliance and throttle apply a policy within a second.
	return sleep(ctx, 1500*time.Millisecond)
}

// allDay is the default policy with a sending window of the whole day in
// the contracts of codes (Sundays and holidays stay closed by law).
func allDay(codes []string) policy.Policy {
	p := policy.Default()
	p.Version = "ratebench-all-day"
	if p.ShortCodes == nil {
		p.ShortCodes = map[string]policy.ShortCode{}
	}
	for _, c := range codes {
		sc := p.ShortCodes[c]
		sc.Window = &policy.Window{Open: 0, Close: policy.Clock(24 * time.Hour)}
		p.ShortCodes[c] = sc
	}
	return p
}

func (b *bench) close() {
	if b.conn != nil {
		b.conn.Close()
	}
	if b.bus != nil {
		b.bus.Close()
	}
	if b.st != nil {
		b.st.Stop()
	}
	b.cleanup()
}

// natsWhere says where the JetStream server runs, for the report.
func natsWhere(cfg Config) string {
	if cfg.NATSProcess {
		return "a process of its own"
	}
	return "the bench's process"
}

// cpu is the CPU time the platform used so far: the bench's process, and
// the JetStream server's when it runs in its own.
func (b *bench) cpu() (time.Duration, error) {
	cpu := processCPU()
	if b.natsProc != nil {
		n, err := b.natsProc.cpu()
		if err != nil {
			return 0, err
		}
		cpu += n
	}
	return cpu, nil
}

func (b *bench) cleanup() {
	if b.natsProc != nil {
		if err := b.natsProc.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "ratebench:", err)
		}
	}
	if b.temp {
		_ = os.RemoveAll(b.dir)
	}
}

func (b *bench) auth(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+b.st.APIKey())
}

// recipient returns a new Orange mobile number (blocks 0607, 0608, 0630,
// 0631 of the numbering plan): every message of a run goes to its own
// recipient, so that no frequency cap refuses any.
func (b *bench) recipient() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := b.next
	b.next++
	blocks := []string{"0607", "0608", "0630", "0631"}
	return blocks[(k/1_000_000)%len(blocks)] + fmt.Sprintf("%06d", k%1_000_000)
}

// campaign describes a backlog to submit.
type campaign struct {
	shortCode string
	category  partnerv1.TrafficCategory
	messages  int
	weight    uint32
	name      string
}

// submitted is what a campaign put in: its id and its segments.
type submitted struct {
	id         string
	segments   int
	recipients []string
}

// submit streams a campaign of mixed 1–3-segment texts (one in three of
// each) through the partner API.
func (b *bench) submit(ctx context.Context, c campaign) (submitted, error) {
	stream, err := b.client.SubmitCampaign(b.auth(ctx))
	if err != nil {
		return submitted{}, fmt.Errorf("SubmitCampaign %s: %w", c.shortCode, err)
	}
	marketing := c.category == partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING
	spec := &partnerv1.CampaignSpec{
		ShortCode: c.shortCode, Brand: "Acme", Category: c.category,
		TextTemplate: "{{body}}", Name: c.name, ClientReference: fmt.Sprintf("%s-%d", c.name, time.Now().UnixNano()),
		AppendStopMention: marketing, Weight: c.weight,
	}
	if err := stream.Send(&partnerv1.SubmitCampaignRequest{Item: &partnerv1.SubmitCampaignRequest_Spec{Spec: spec}}); err != nil {
		return submitted{}, fmt.Errorf("campaign spec: %w", err)
	}
	var s submitted
	const batch = 500
	for i := 0; i < c.messages; i += batch {
		var rs []*partnerv1.Recipient
		for j := i; j < min(i+batch, c.messages); j++ {
			n := j%3 + 1
			to := b.recipient()
			s.recipients = append(s.recipients, to)
			rs = append(rs, &partnerv1.Recipient{Msisdn: to, Variables: map[string]string{"body": segmentText("Acme", n, j)}})
			s.segments += n
		}
		if err := stream.Send(&partnerv1.SubmitCampaignRequest{Item: &partnerv1.SubmitCampaignRequest_Recipients{Recipients: &partnerv1.RecipientBatch{Recipients: rs}}}); err != nil {
			return s, fmt.Errorf("campaign recipients: %w", err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return s, fmt.Errorf("campaign %s: %w", c.shortCode, err)
	}
	if errs := resp.GetErrors(); len(errs) > 0 {
		return s, fmt.Errorf("campaign %s: %d recipients refused, first: %v %s", c.shortCode, len(errs), errs[0].GetReason(), errs[0].GetDetail())
	}
	s.id = resp.GetCampaign().GetCampaignId()
	return s, nil
}

// submitAll submits the campaigns at once, one stream each.
func (b *bench) submitAll(ctx context.Context, cs []campaign) ([]submitted, error) {
	out := make([]submitted, len(cs))
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, c := range cs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i], errs[i] = b.submit(ctx, c)
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// accepted is the submits the SMSC ACKed, per short code.
func (b *bench) accepted() map[string]int64 {
	m := map[string]int64{}
	for c, a := range b.st.Sim().Stats().Accounts {
		m[c] = a.Accepted
	}
	return m
}

// drain waits until the SMSC accepted want segments per short code (or
// timeout), with a progress bar of the segments.
func (b *bench) drain(ctx context.Context, want map[string]int64, timeout time.Duration) error {
	var total int64
	for _, n := range want {
		total += n
	}
	var bar *progressbar.ProgressBar
	if b.cfg.Progress && !b.cfg.JSON {
		bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(os.Stderr), progressbar.OptionSetDescription("segments at the SMSC"),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("SMS"), progressbar.OptionThrottle(500*time.Millisecond))
		defer bar.Finish()
	}
	deadline := time.Now().Add(timeout)
	for {
		got := b.accepted()
		var done int64
		short := []string{}
		for c, n := range want {
			done += min(got[c], n)
			if got[c] < n {
				short = append(short, c)
			}
		}
		if bar != nil {
			_ = bar.Set64(done)
		}
		if len(short) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			slices.Sort(short)
			return fmt.Errorf("after %v the SMSC accepted %d of %d segments; short codes behind: %v", timeout, done, total, short[:min(len(short), 10)])
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// results reads the simulator's per-second statistics of every short code.
func (b *bench) results(rates throttle.RateTable) []Result {
	st := b.st.Sim().Stats()
	var out []Result
	for _, c := range b.sc.ShortCodes {
		out = append(out, analyze(c, rates[c], st.Accounts[c]))
	}
	return out
}

// check adds a failure per short code below minRatio or with violations.
func check(rep *Report, minRatio float64) {
	for _, r := range rep.Results {
		if r.Violations > 0 || r.OverSeconds > 0 {
			rep.Failures = append(rep.Failures, fmt.Sprintf("%s: %d violations, %d over-rate seconds, want 0", r.ShortCode, r.Violations, r.OverSeconds))
		}
		if r.Ratio < minRatio {
			rep.Failures = append(rep.Failures, fmt.Sprintf("%s: achieved %.2f/s = %.1f %% of %d/s, want ≥ %.0f %%", r.ShortCode, r.Achieved, 100*r.Ratio, r.Contracted, 100*minRatio))
		}
	}
}
