package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"pushsms.io/lib/pgcluster"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// errInvariants is returned, after the report is written, when an
// invariant does not hold: the command then exits 1.
var errInvariants = errors.New("chaos: an invariant does not hold (see the report)")

// retryFor bounds the retries of one SendMessage: a message the API has
// not accepted after this is abandoned (and invariant 2 fails).
const retryFor = 3 * time.Minute

// RunChaos runs the chaos suite (docs/chaos.md): the platform as separate
// processes, with several replicas where a service supports them, driven
// through SendMessage at cfg.Pace while faults are injected at seeded
// random times; then it waits for the platform to settle and checks the
// invariants of issue 8. It writes the report (Markdown to out, JSON to
// cfg.JSON) and returns errInvariants when one fails.
func RunChaos(ctx context.Context, cfg Config, out io.Writer) (err error) {
	if cfg.Pace <= 0 {
		return fmt.Errorf("chaos: pace %v: want a rate (messages/s), the faults are placed over the drive", cfg.Pace)
	}
	if cfg.Unthrottled {
		return errors.New("chaos: -unthrottled: the run checks the contracted rates (violations), give -rate")
	}
	if cfg.ShortCodes < 1 || cfg.ShortCodes > 100 || cfg.Rate < 1 || cfg.Messages < cfg.ShortCodes {
		return fmt.Errorf("chaos: shortcodes %d (1–100), rate %d (≥ 1), messages %d (≥ one per short code)", cfg.ShortCodes, cfg.Rate, cfg.Messages)
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Int64N(1<<31) + 1
	}
	span := time.Duration(float64(cfg.Messages) / cfg.Pace * float64(time.Second))
	p, root, err := newPlatform(cfg)
	if err != nil {
		return err
	}
	defer func() { err = p.finish(err) }()
	cfg.Log.Info("chaos run", "seed", cfg.Seed, "messages", cfg.Messages, "pace", cfg.Pace, "drive", span, "dir", p.dir)

	cfg.Log.Info("building binaries", "dir", p.bin)
	if err := build(ctx, root, p.bin); err != nil {
		return err
	}
	rep := &ChaosReport{Seed: cfg.Seed, Started: time.Now().UTC(), Machine: machine(), ShortCodes: cfg.ShortCodes,
		Messages: cfg.Messages, Rate: cfg.Rate, Pace: cfg.Pace, Window: cfg.Window, ResendAfter: cfg.ResendAfter, CutFor: cfg.CutFor}
	if err := p.startAll(ctx); err != nil {
		return err
	}
	var names []string
	for _, s := range p.specs {
		names = append(names, s.name)
	}
	plan, err := schedule(cfg.Seed, span, faultTargets(names))
	if err != nil {
		return err
	}
	for _, s := range p.specs {
		rep.Processes = append(rep.Processes, s.name)
	}

	c := &chaos{p: p, accepted: map[string]struct{}{}}
	start := time.Now()
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		rep.Faults = c.inject(ctx, start, plan)
	}()
	driveErr := c.drive(ctx, mix(cfg.Messages, 0))
	rep.DriveTime = time.Since(start)
	<-faultsDone
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if driveErr != nil {
		// Abandoned requests are a finding (invariant 2), not a reason to
		// skip the checks.
		rep.Notes = append(rep.Notes, "driver: "+driveErr.Error())
	}

	cfg.Log.Info("waiting for the platform to settle", "timeout", cfg.Settle)
	settleStart := time.Now()
	rep.Settled, rep.SettleNote = c.settle(ctx, cfg.Settle, cfg.Quiet)
	rep.SettleTime = time.Since(settleStart)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	fig, err := c.figures(ctx, start, rep.Faults)
	if err != nil {
		return err
	}
	rep.Figures = fig
	rep.Invariants = checkInvariants(fig)
	rep.Pass = rep.Settled
	for _, f := range rep.Faults {
		rep.Pass = rep.Pass && f.Error == ""
	}
	for _, inv := range rep.Invariants {
		rep.Pass = rep.Pass && inv.OK
	}
	if err := writeChaosMarkdown(out, rep); err != nil {
		return err
	}
	if cfg.JSON != "" {
		if err := writeJSON(cfg.JSON, rep); err != nil {
			return err
		}
	}
	if !rep.Pass {
		return errInvariants
	}
	return nil
}

// chaos is one chaos run's state: the platform and what the driver got.
type chaos struct {
	p *platform

	mu        sync.Mutex
	accepted  map[string]struct{} // message ids SendMessage returned
	abandoned int
	// simPast are the simulator's records and statistics of its previous
	// incarnations: a link cut restarts it, and it keeps both in memory.
	simPast  []simSubmit
	statPast []simStats
}

// FaultRecord is a fault as injected: when it started and how long the
// target took to come back.
type FaultRecord struct {
	Fault
	Started time.Duration `json:"started_ns"`
	Took    time.Duration `json:"took_ns"`
	Error   string        `json:"error,omitempty"`
}

// inject applies the plan's faults at their times, one at a time: each
// restart waits until the process is back (listening) before the next.
func (c *chaos) inject(ctx context.Context, start time.Time, plan []Fault) []FaultRecord {
	var out []FaultRecord
	for _, f := range plan {
		if err := sleep(ctx, time.Until(start.Add(f.At))); err != nil {
			return out
		}
		r := FaultRecord{Fault: f, Started: time.Since(start)}
		c.p.log.Info("fault", "at", r.Started.Round(time.Millisecond), "kind", f.Kind, "target", f.Target)
		t0 := time.Now()
		if err := c.apply(ctx, f); err != nil {
			r.Error = err.Error()
			c.p.log.Error("fault", "kind", f.Kind, "target", f.Target, "err", err)
		}
		r.Took = time.Since(t0)
		out = append(out, r)
	}
	return out
}

func (c *chaos) apply(ctx context.Context, f Fault) error {
	p := c.p
	switch f.Kind {
	case FaultKill:
		for i, s := range p.specs {
			if s.name != f.Target {
				continue
			}
			if err := p.services[i].kill(10 * time.Second); err != nil {
				return err
			}
			pr, err := p.startService(ctx, s)
			if err != nil {
				return fmt.Errorf("restart %s: %w", s.name, err)
			}
			p.services[i] = pr
			return nil
		}
		return fmt.Errorf("no process %q", f.Target)
	case FaultNATS:
		if err := p.nats.kill(10 * time.Second); err != nil {
			return err
		}
		if err := p.runNATS(ctx); err != nil {
			return fmt.Errorf("restart nats-server: %w", err)
		}
		return nil
	case FaultPostgres:
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := pgcluster.Stop(sctx, p.pgDir); err != nil {
			return fmt.Errorf("stop postgresql: %w", err)
		}
		if _, err := (&pgcluster.Cluster{DataDir: p.pgDir, Port: p.pgPort}).Start(sctx); err != nil {
			return fmt.Errorf("start postgresql: %w", err)
		}
		return nil
	case FaultLinkCut:
		return c.cutLink(ctx)
	}
	return fmt.Errorf("unknown fault %q", f.Kind)
}

// cutLink stops the simulator for CutFor and starts it again on the same
// ports and state file. Its records and statistics live in its memory, so
// they are read before it stops. smsc-link logs in again within 150 ms
// of a dropped session, faster than the records are read, so the
// simulator is first told to drop every submit (no ACK, no rate count:
// the link sees a dead SMSC, the segments go in doubt) and only then are
// the sessions closed and the records read: nothing it ACKs or counts as
// a violation can arrive after the read. SIGTERM, not SIGKILL: the
// simulator then writes the DRs it still owes to its state file, as a real
// SMSC keeps them across a cut; a kill -9 would lose them, a fault of the
// simulator, not of the link.
func (c *chaos) cutLink(ctx context.Context) error {
	p := c.p
	if err := request(ctx, http.MethodPut, "http://"+p.simHTTP+"/faults", `{"drop_submits":true}`, nil); err != nil {
		return err
	}
	if err := request(ctx, http.MethodPost, "http://"+p.simHTTP+"/drop", "", nil); err != nil {
		return err
	}
	var subs []simSubmit
	if err := getJSON(ctx, "http://"+p.simHTTP+"/submits", &subs); err != nil {
		return err
	}
	st, err := p.stats(ctx)
	if err != nil {
		return err
	}
	c.simPast = append(c.simPast, subs...)
	c.statPast = append(c.statPast, st)
	if err := p.sim.stop(15 * time.Second); err != nil {
		return err
	}
	if err := sleep(ctx, p.cfg.CutFor); err != nil {
		return err
	}
	// The new simulator starts without faults (-faults is not given).
	return p.runSim(ctx)
}

// drive offers msgs through SendMessage at the configured pace. Each
// request is retried with the same client reference until the API answers
// (SendMessage is idempotent by client reference: a retry of a message
// accepted before a crash returns the same message), for retryFor at most.
func (c *chaos) drive(ctx context.Context, msgs []message) error {
	p := c.p
	client, ctx, closeConn, err := p.partner(ctx)
	if err != nil {
		return err
	}
	defer closeConn()
	codes := ourCodes(p.cfg.ShortCodes)
	run := time.Now().UnixNano()
	return drive(ctx, len(msgs), p.cfg.Pace, p.cfg.Parallel, func(ctx context.Context, i int) error {
		req := &partnerv1.SendMessageRequest{
			ShortCode: codes[i%len(codes)], Brand: "Acme", Category: partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP,
			Recipient: msgs[i].to, Text: msgs[i].text, ClientReference: fmt.Sprintf("chaos-%d-%d", run, i),
		}
		id, err := sendRetrying(ctx, client, req)
		c.mu.Lock()
		defer c.mu.Unlock()
		if err != nil {
			c.abandoned++
			return err
		}
		c.accepted[id] = struct{}{}
		return nil
	})
}

func sendRetrying(ctx context.Context, client partnerv1.MessagingServiceClient, req *partnerv1.SendMessageRequest) (string, error) {
	deadline := time.Now().Add(retryFor)
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := client.SendMessage(actx, req)
		cancel()
		if err == nil {
			return resp.GetMessage().GetMessageId(), nil
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		// A refusal of the request itself will not change with a retry.
		if status.Code(err) == grpccodes.InvalidArgument {
			return "", fmt.Errorf("SendMessage: %w", err)
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("SendMessage: not accepted after %v: %w", retryFor, err)
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return "", err
		}
	}
}

// settle waits until the platform is at rest: every JetStream consumer's
// lag 0, every message of the run in the status view and terminal, and
// still so quiet later (a DR could still be on its way while every figure
// reads 0 for an instant). It reports whether it got there within timeout,
// and otherwise what was still moving.
func (c *chaos) settle(ctx context.Context, timeout, quiet time.Duration) (bool, string) {
	p := c.p
	deadline := time.Now().Add(timeout)
	var since time.Time
	last, lastLog := "", time.Now()
	for {
		state, ok := c.atRest(ctx)
		switch {
		case !ok:
			since = time.Time{}
		case since.IsZero():
			since = time.Now()
		case time.Since(since) >= quiet:
			return true, ""
		}
		last = state
		if time.Since(lastLog) >= 10*time.Second {
			p.log.Info("settling", "state", state)
			lastLog = time.Now()
		}
		if time.Now().After(deadline) {
			return false, fmt.Sprintf("not settled after %v: %s", timeout, last)
		}
		if err := sleep(ctx, time.Second); err != nil {
			return false, err.Error()
		}
	}
}

func (c *chaos) atRest(ctx context.Context) (string, bool) {
	p := c.p
	lags, err := p.lag(ctx)
	if err != nil {
		return "lag: " + err.Error(), false
	}
	var lag uint64
	busy := ""
	for _, l := range lags {
		if n := l.Pending + uint64(l.AckPending); n > 0 {
			lag += n
			busy += fmt.Sprintf(" %s/%s:%d", l.Stream, l.Consumer, n)
		}
	}
	var rows, open int64
	err = p.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE state <> ALL($2)) FROM ingest.messages WHERE tenant_id = $1`,
		partnerID, terminalStates).Scan(&rows, &open)
	if err != nil {
		return "status view: " + err.Error(), false
	}
	c.mu.Lock()
	accepted := len(c.accepted)
	c.mu.Unlock()
	state := fmt.Sprintf("lag %d%s; %d rows of %d accepted, %d not terminal", lag, busy, rows, accepted, open)
	return state, lag == 0 && open == 0 && rows >= int64(accepted)
}
