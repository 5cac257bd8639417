// Package throttle paces the SMS-MTs of each short code to the throughput
// the operator sold for it: it consumes MessageCleared from SMS_CLEARED
// (one durable per short code, "throttle-<short_code>") and releases each
// segment as a SegmentSubmit on sms.submit.<short_code>, with Nats-Msg-Id
// "<message_id>/<index>".
//
// # Replicas
//
// Several replicas share the short codes: each short code has one owner at
// a time, which holds its lease in THROTTLE_LEASES and alone runs its
// consumer. Leases are timed so that two owners' releases never share a
// 1-second window (owner.go); a dead owner's short codes are released again
// within 2.5 s, a stopping one's are owned again at once.
//
// # Rate
//
// A short code's rate R (submits per second, from a RateSource) means: at
// most R segments released in any 1-second window. Every segment counts,
// so a 3-part message uses 3. It is enforced by a schedule and a count:
// releases are scheduled at a regular spacing, and a lane remembers its
// last releases (rate.History) so that no 1-second window of its clock ever
// holds more than R, late releases caught up included. Consequences:
//
//   - a half-open window [t, t+1s) holds at most R releases;
//   - after a rate decrease, the next release waits until the last second
//     holds fewer than the new rate;
//   - what the SMSC sees is exact by smsc-link's guard, which counts a
//     segment until one second after its ACK (lib/rate.Guard): R segments
//     take 1 s plus the link's round trip there. Releasing faster would
//     only queue segments in smsc-link, where they would wait behind each
//     other and delay a customer message. So releases are scheduled every
//     (1s + slack)/R, slack being the link's grant-to-ACK time that
//     smsc-link publishes in LINK_STATE (ack_ms, the mean of the last
//     3 s), at least -rate-guard (2 ms by default: 99.8 % of R);
//   - the schedule is a fixed clock: a release made late (timer, scheduler,
//     a busy machine) by less than 100 ms does not push the next ones
//     back, they follow at once within the second's R; later than that
//     (an idle spell, a stall) the schedule restarts from now and the time
//     is lost rather than spent in a burst.
//
// # Scheduling
//
// Each short code has its own lane, so one short code's backlog never waits
// behind another's. A lane holds in memory about -lookahead of work (R ×
// lookahead segments); a message beyond that is given back to the server
// (NAK with delay) to return about when its turn nears, each parked message
// one slot after the previous one. Within a lane, customer-relationship and
// other functional traffic goes before marketing, FIFO within a class, and a
// message whose first segment is out is finished before a new one starts.
//
// not_before in the future: held in memory if within the lookahead, else
// given back to the server until then. expires_at passed: no submit; each
// unsent segment is reported EXPIRED (final). A campaign paused or
// cancelled in the CAMPAIGNS bucket stops releasing at once; its unsent
// messages are held (paused) or reported CANCELLED.
//
// A marketing message is checked against its short code's sending window
// (the compliance policy in force) when it arrives and when its first
// segment is granted: if the window is closed, nothing is published and
// the event waits on the server for the next opening, or the message is
// reported EXPIRED if its validity ends first. docs/throttle.md has the
// details and the limits.
package throttle

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/policy"
	"pushsms.io/lib/rate"
	"pushsms.io/lib/service"
)

// Name is the service's name: its client name on the bus and its
// telemetry service name.
const Name = "throttle"

// LegacyDurable is the single consumer on SMS_CLEARED of the versions
// before per-short-code consumers; a replica retires it (migrate.go).
const LegacyDurable = "throttle"

// Config of the throttle service.
type Config struct {
	service.Config

	// DefaultRate is the rate of a short code without an override, in
	// SMS-MT per second (the offer's default is 10).
	DefaultRate int
	// Rates overrides DefaultRate per short code: "36000=20,36001=50".
	Rates RateTable
	// RateSource, when set, replaces DefaultRate and Rates (tests; a source
	// backed by a KV bucket later). Never from flags.
	RateSource RateSource `json:"-"`
	// RateGuard is the least slack added to each second of schedule:
	// releases are spaced (1s + max(RateGuard, link round trip))/R.
	RateGuard time.Duration

	// Lookahead is how much work (in time at the short code's rate) a lane
	// holds in memory; beyond it messages wait on the server. It is also
	// the longest not_before wait held in memory.
	Lookahead time.Duration
	// Workers is how many events of one short code are handled at once
	// (each short code has its own consumer): enough for its lane's
	// lookahead (rate × lookahead, in messages) plus the events being
	// parked.
	Workers int
	// MaxAckPending bounds the events of one short code delivered and not
	// yet acked, parked ones included: backlogs and scheduled campaigns waiting for their
	// not_before (ingest allows 6 days ahead). When they exceed it, all
	// short codes together, new events of every short code wait.
	MaxAckPending int
	// AckWait is how long a crashed replica's events wait before
	// redelivery; held events are kept alive with InProgress meanwhile.
	AckWait time.Duration
	// PauseRecheck is how often an event of a paused campaign is looked at
	// again (±10 %).
	PauseRecheck time.Duration

	// Policy is the policy in force until the POLICY bucket holds one
	// (flag -policy FILE; default policy.Default). Give it the same file as
	// compliance, so that both see the same window.
	Policy policy.Policy
	// PolicySource, when set, replaces the watch of the POLICY bucket
	// (tests). Never from flags.
	PolicySource PolicySource `json:"-"`
	// WindowRecheck is the longest a marketing message held for a closed
	// sending window waits before it is looked at again: a policy change
	// that opens the window earlier applies at worst this late.
	WindowRecheck time.Duration
	// ScheduleAfter: a message held longer than this (its not_before, its
	// window's opening) is handed to the server's message scheduler and
	// its event acked (bus.Schedule), instead of staying an event the
	// short code's consumer holds. Shorter holds are delayed NAKs.
	ScheduleAfter time.Duration

	// ReplicaID names this replica in the leases bucket; empty: host name
	// and a random suffix (a restarted process is a new owner).
	ReplicaID string
}

// DefaultConfig is the offer's default rate and settings for one machine.
func DefaultConfig() Config {
	return Config{
		Config:        service.DefaultConfig(":9092"),
		DefaultRate:   10,
		Rates:         RateTable{},
		RateGuard:     2 * time.Millisecond,
		Lookahead:     5 * time.Second,
		Workers:       1024,
		MaxAckPending: 1_000_000,
		AckWait:       30 * time.Second,
		PauseRecheck:  30 * time.Second,
		WindowRecheck: time.Hour,
		ScheduleAfter: time.Minute,
		Policy:        policy.Default(),
	}
}

// RegisterFlags adds the service's flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	if c.Rates == nil {
		c.Rates = RateTable{}
	}
	fs.IntVar(&c.DefaultRate, "default-rate", c.DefaultRate, "SMS-MT per second of a short code without an override")
	fs.Var(&c.Rates, "rates", `per short code rates, e.g. "36000=20,36001=50"`)
	fs.DurationVar(&c.RateGuard, "rate-guard", c.RateGuard, "least slack added to each second of schedule: releases are spaced (1s + max(guard, the link's grant-to-ACK time))/rate")
	fs.DurationVar(&c.Lookahead, "lookahead", c.Lookahead, "work held in memory per short code; beyond it messages wait on the server")
	fs.IntVar(&c.Workers, "workers", c.Workers, "events of one short code handled at once (at least rate × lookahead)")
	fs.IntVar(&c.MaxAckPending, "max-ack-pending", c.MaxAckPending, "events of one short code delivered and not yet acked, parked ones included")
	fs.DurationVar(&c.AckWait, "ack-wait", c.AckWait, "redelivery delay of the events of a crashed replica")
	fs.DurationVar(&c.PauseRecheck, "pause-recheck", c.PauseRecheck, "how often a paused campaign's message is looked at again")
	fs.Var(&policy.FileFlag{P: &c.Policy}, "policy", "compliance policy JSON `file` used until the POLICY bucket holds one (default: the embedded policy; see docs/rules.md)")
	fs.StringVar(&c.ReplicaID, "replica-id", c.ReplicaID, "name of this replica in the leases bucket (letters, digits, - and _); empty: host name and a random suffix")
	fs.DurationVar(&c.WindowRecheck, "window-recheck", c.WindowRecheck, "longest wait of a marketing message held for a closed sending window before it is looked at again")
	fs.DurationVar(&c.ScheduleAfter, "schedule-after", c.ScheduleAfter, "a message held longer than this (not_before, closed window) goes to the server's message scheduler instead of staying with the consumer")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("throttle: "+format, args...)) }
	if err := c.Config.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("throttle: %w", err))
	}
	if c.RateSource == nil && (c.DefaultRate < 1 || c.DefaultRate > MaxRate) {
		add("default-rate %d: want 1 to %d", c.DefaultRate, MaxRate)
	}
	for code, r := range c.Rates {
		if !isShortCode(code) || r < 1 || r > MaxRate {
			add("rates: %s=%d: want digits=1 to %d", code, r, MaxRate)
		}
	}
	if c.RateGuard < 0 || c.RateGuard > time.Second {
		add("rate-guard %v: want 0 to 1s", c.RateGuard)
	}
	if c.AckWait < time.Second {
		add("ack-wait %v: want at least 1s", c.AckWait)
	}
	if c.Lookahead < 10*time.Millisecond || c.Lookahead > c.AckWait/2 {
		add("lookahead %v: want 10ms to half of ack-wait (%v)", c.Lookahead, c.AckWait/2)
	}
	if c.Workers < 1 {
		add("workers %d: want at least 1", c.Workers)
	}
	if c.PolicySource == nil {
		if err := c.Policy.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("throttle: %w", err))
		}
	}
	if c.MaxAckPending != -1 && c.MaxAckPending < c.Workers {
		add("max-ack-pending %d: want at least workers (%d), or -1 for no limit", c.MaxAckPending, c.Workers)
	}
	if c.PauseRecheck < 100*time.Millisecond {
		add("pause-recheck %v: want at least 100ms", c.PauseRecheck)
	}
	if c.ScheduleAfter < time.Second {
		add("schedule-after %v: want at least 1s (the schedules' resolution)", c.ScheduleAfter)
	}
	if c.WindowRecheck < 100*time.Millisecond {
		add("window-recheck %v: want at least 100ms", c.WindowRecheck)
	}
	if c.ReplicaID != "" && !replicaIDPattern.MatchString(c.ReplicaID) {
		add("replica-id %q: want 1 to 64 letters, digits, - or _", truncate(c.ReplicaID, 64))
	}
	return errors.Join(errs...)
}

// rates returns the configured RateSource.
func (c Config) rates() RateSource {
	if c.RateSource != nil {
		return c.RateSource
	}
	return StaticRates{Default: c.DefaultRate, Overrides: c.Rates}
}

// Service is a running throttle.
type Service struct {
	*service.Core
	cfg       Config
	campaigns *campaigns
	controls  *controls
	lanes     *lanes
	watcher   *bus.Watcher
	windows   *windows
	owner     *owner
	// now is the clock of every release and time limit (tests move it).
	now func() time.Time
}

// New checks cfg, connects to the bus and binds the gRPC address.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	core, err := service.Open(ctx, service.Options{Name: Name, Config: cfg.Config})
	if err != nil {
		return nil, err
	}
	if cfg.ReplicaID == "" {
		cfg.ReplicaID = newReplicaID()
	}
	s := &Service{Core: core, cfg: cfg, now: time.Now}
	src := cfg.PolicySource
	if src == nil {
		w, err := policy.Watch(ctx, core.Bus, cfg.Policy, core.Log)
		if err != nil {
			_ = core.Close()
			return nil, fmt.Errorf("throttle: %w", err)
		}
		core.OnClose(w.Stop)
		src = w
	}
	s.windows = &windows{src: src}
	if s.owner, err = newOwner(ctx, cfg.ReplicaID, core.Bus, core.Log, s.consume); err != nil {
		_ = core.Close()
		return nil, fmt.Errorf("throttle: %w", err)
	}
	rates := cfg.RateSource
	if rates == nil {
		// Rates are data (SHORT_CODES "<sc>.rate"), over the flags.
		tbl, err := rate.WatchTable(ctx, core.Bus, cfg.DefaultRate, cfg.Rates, core.Log)
		if err != nil {
			_ = core.Close()
			return nil, fmt.Errorf("throttle: %w", err)
		}
		core.OnClose(tbl.Stop)
		rates = tbl
	}
	s.controls = newControls(core.Log, func(sc string) { s.lanes.poke(sc) }, func(sc string, before time.Time) { s.lanes.evictShortCode(sc, before) })
	lanesCtx, stopLanes := context.WithCancel(context.Background())
	s.lanes = &lanes{ctx: lanesCtx, rates: s.controls.rates(rates), contracted: rates, guard: cfg.RateGuard, roundTrip: s.controls.roundTrip, lookahead: cfg.Lookahead, m: map[string]*lane{},
		now: func() time.Time { return s.now() }, weights: s.controls.weight, dropped: s.controls.dropped}
	s.campaigns = newCampaigns(s.Log, s.lanes.evictCampaign)
	s.lanes.running = s.campaigns.running
	s.lanes.paused = s.campaigns.paused
	s.campaigns.changed = s.lanes.pokeAll
	// At Close, after the consumer stopped (events not yet started were
	// given back to the server, started messages finished): the lanes.
	core.OnClose(func() {
		stopLanes()
		s.lanes.wg.Wait()
	})
	return s, nil
}

// Serve loads the campaigns' states, starts the consumer and the gRPC
// server, and blocks until ctx is done.
func (s *Service) Serve(ctx context.Context) error {
	w, err := s.Bus.WatchBucket(ctx, bus.BucketCampaigns, s.campaigns.set)
	if err != nil {
		return service.Starting(ctx, err)
	}
	s.campaigns.loaded.Store(true)
	s.OnClose(w.Stop)
	// Short codes' pauses, cancels, weights and links are loaded before
	// the first event: a paused short code releases nothing at start.
	cws, err := s.controls.watch(ctx, s.Bus)
	if err != nil {
		return service.Starting(ctx, err)
	}
	for _, cw := range cws {
		s.OnClose(cw.Stop)
	}
	if err := s.migrateLegacy(ctx); err != nil {
		return service.Starting(ctx, err)
	}
	ow := s.owner
	lw, err := s.Bus.WatchBucket(ctx, bus.BucketThrottleLeases, ow.setLease)
	if err != nil {
		return service.Starting(ctx, err)
	}
	s.OnClose(lw.Stop)
	cw, err := s.Bus.WatchBucket(ctx, bus.BucketShortCodes, ow.setShortCode)
	if err != nil {
		return service.Starting(ctx, err)
	}
	s.OnClose(cw.Stop)
	for sc := range s.cfg.Rates {
		ow.setShortCode(sc, []byte{})
	}
	// Registered after the lanes' stop, so run before it: the consumers
	// stop (events not started go back, started ones too: the next owner
	// finishes them under the same ids), then the leases are given back.
	ownerCtx, stopOwner := context.WithCancel(context.WithoutCancel(ctx))
	ownerDone := make(chan struct{})
	go func() { defer close(ownerDone); ow.run(ownerCtx) }()
	s.OnClose(func() {
		stopOwner()
		<-ownerDone
		ow.close()
	})
	s.Log.InfoContext(ctx, "throttle serving", "replica", s.cfg.ReplicaID, "default_rate", s.cfg.DefaultRate, "rates", s.cfg.Rates.String(),
		"lookahead", s.cfg.Lookahead, "workers", s.cfg.Workers)

	errc := make(chan error, 1)
	go func() { errc <- s.Core.Serve(ctx) }()
	select {
	case err := <-errc:
		return err
	case <-w.Done():
		if ctx.Err() != nil || s.Stopping().Err() != nil {
			return <-errc
		}
		return errors.New("throttle: campaigns watch ended")
	}
}

// Owned returns the short codes this replica owns now, sorted (tests,
// benchmarks: which replica to kill to move a busy short code).
func (s *Service) Owned() []string { return s.owner.owned() }

// consume starts the consumer of o's short code. Workers is per short
// code: a lane holds at most its lookahead of work, plus the events being
// parked.
func (s *Service) consume(ctx context.Context, o *ownership) (*bus.Consumer, error) {
	start := s.owner.startSequence()
	if f := o.floor.Load(); f > 0 {
		// A consumer that is not there (new, or lost with the servers'
		// memory) starts after the floor its last owner recorded.
		start = max(start, f+1)
	}
	after, err := s.stateToMemory(ctx, o.shortCode)
	if err != nil {
		return nil, err
	}
	start = max(start, after)
	return s.Bus.Consume(ctx, bus.ConsumerSpec{
		Stream:         bus.StreamCleared,
		Durable:        ConsumerName(o.shortCode),
		FilterSubjects: []string{clearedFilter(o.shortCode)},
		AckWait:        s.cfg.AckWait,
		MaxAckPending:  s.cfg.MaxAckPending,
		MemoryState:    true,
		Workers:        s.cfg.Workers,
		StartSequence:  start,
	}, func(ctx context.Context, m *bus.Msg) error { return s.handle(ctx, m, o) })
}

// stateToMemory moves the state of a short code's durable created on file
// (by versions before memory state) to the servers' memory: the server
// cannot change it in place, so the durable is deleted and created again
// after its ack floor, which loses nothing only while it holds no event
// (delivered, not acked: parked ones included). A durable that holds some
// stays on file, and is looked at again at the short code's next owner.
// It returns the sequence the new durable starts at (0: no change).
func (s *Service) stateToMemory(ctx context.Context, shortCode string) (uint64, error) {
	pos, err := s.Bus.ConsumerPosition(ctx, bus.StreamCleared, ConsumerName(shortCode))
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return 0, nil
	case err != nil:
		return 0, err
	case pos.Memory:
		return 0, nil
	case pos.AckPending > 0:
		s.Log.Info("short code consumer keeps its state on file while it holds events", "short_code", shortCode, "ack_pending", pos.AckPending)
		return 0, nil
	}
	if err := s.Bus.DeleteConsumer(ctx, bus.StreamCleared, ConsumerName(shortCode)); err != nil {
		return 0, err
	}
	s.Log.Info("short code consumer moved to memory state", "short_code", shortCode, "start_sequence", pos.AckFloor+1)
	return pos.AckFloor + 1, nil
}

// Run runs the service until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	s, err := New(ctx, cfg)
	return service.Run(ctx, s, err)
}
