// Package compliance checks every accepted message before it may be sent:
// the recipient must be a French metropolitan mobile number (normalised to
// E.164), sent from a short code whose range may carry its category, still
// valid, on the operator's network, and the later rules of rule.go satisfied.
// The rules are data: a lib/policy document, hot-reloaded from the POLICY
// bucket. A message that passes is split into segments and published as
// MessageCleared; one that does not is published as MessageRejected with
// the first failing rule's reason. A marketing message outside the sending
// window is not rejected but cleared with a not_before at the next opening.
package compliance

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	// The window is French time wherever the binary runs, also in an
	// image without /usr/share/zoneinfo.
	_ "time/tzdata"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/numplan"
	"pushsms.io/lib/optout"
	"pushsms.io/lib/pgdb"
	"pushsms.io/lib/policy"
	"pushsms.io/lib/service"
	"pushsms.io/services/compliance/ported"
)

// Zone is where the sending window is evaluated: the offer's "French
// time", metropolitan recipients only.
const Zone = policy.Zone

// Name is the service's name: its client name on the bus, its durable
// consumer and its telemetry service name.
const Name = "compliance"

// Config is the service's configuration.
type Config struct {
	service.Config
	// Workers is how many accepted messages a replica checks at once.
	Workers int
	// Policy is the rule set used until the POLICY bucket holds one: the
	// sending window, short-code ranges and options, network check,
	// frequency cap, sender and content rules (lib/policy). The bucket's
	// document, when there is one, wins at start and on every change, so
	// that every replica decides with the same version.
	Policy policy.Policy
	// NetworkLookup, when set, is asked before the ARCEP block holder: a
	// ported-numbers table or a real-time lookup. Not a flag: the binary
	// that has one sets it.
	NetworkLookup NetworkLookup
	// Sessions, when set, turns the MO-session rule on (34ABC replies need
	// an MO from the recipient within the policy's mo_session). Not a
	// flag: the binary that has the store sets it.
	Sessions SessionLookup
	// DB holds the ported-numbers table (schema compliance_ported), which
	// the aggregator imports through the admin PortedNumbersService on
	// GRPCAddr. Without a URL there is no table: the ARCEP block holder
	// (and NetworkLookup) decide alone.
	DB pgdb.Config
}

// DefaultConfig listens on :9091 with 128 workers and the platform's default
// policy (policy.Default: the offer's window, ranges, Orange network check,
// one marketing message per recipient, brand and day…).
func DefaultConfig() Config {
	return Config{
		Config: service.DefaultConfig(":9091"),
		// A decision mostly waits for the frequency cap's round trip to
		// NATS: many in flight amortise the writes and wake-ups
		// (BenchmarkDecide: 64 in flight per core decide twice as many per
		// CPU-second as 4).
		Workers: 128,
		Policy:  policy.Default(),
	}
}

// RegisterFlags adds the flags of the bus, telemetry, -grpc-addr, -workers
// and -policy.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	fs.IntVar(&c.Workers, "workers", c.Workers, "accepted messages checked at once by this replica")
	c.DB.RegisterFlags(fs)
	fs.Var(&policy.FileFlag{P: &c.Policy}, "policy", "policy JSON `file` used until the POLICY bucket holds one (default: the embedded policy; see docs/rules.md)")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if err := c.Config.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("compliance: %w", err))
	}
	if err := service.ValidateWorkers(c.Workers, 1024); err != nil {
		errs = append(errs, fmt.Errorf("compliance: %w", err))
	}
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("compliance: %w", err))
	}
	return errors.Join(errs...)
}

// Run runs the service until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	s, err := New(ctx, cfg)
	return service.Run(ctx, s, err)
}

// Service is a running compliance service.
type Service struct {
	*service.Core
	cfg    Config
	deps   ruleDeps
	policy *policy.Watcher
	// rules is the current policy compiled; a decision loads it once.
	rules atomic.Pointer[ruleSet]
	// reload serialises compilations, so that the last policy seen is the
	// last stored.
	reload sync.Mutex
	now    func() time.Time
	// issuers records which brand last sent to a recipient from a short
	// code, for the STOPs that answer it.
	issuers *optout.LastIssuer
	mo      *moConsumer
	// ported is the ported-numbers table, nil without a database.
	ported *ported.Table
	// tracer starts the trace of each message of a campaign batch.
	tracer trace.Tracer
}

// New connects to the bus, loads the policy (the bucket's, else
// cfg.Policy) and binds the gRPC address; nothing is consumed before
// Serve.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// The plan is loaded even when the policy does not check the network:
	// a pushed policy may turn the check on without a restart.
	plan, err := numplan.Load()
	if err != nil {
		return nil, fmt.Errorf("compliance: numbering plan: %w", err)
	}
	opts := service.Options{Name: Name, Config: cfg.Config}
	if cfg.DB.URL != "" {
		opts.DB, opts.Schema, opts.Migrations = &cfg.DB, ported.Schema, ported.Migrations()
	}
	core, err := service.Open(ctx, opts)
	if err != nil {
		return nil, err
	}
	s, err := open(ctx, core, cfg, plan)
	if err != nil {
		core.Close()
		return nil, err
	}
	return s, nil
}

// open builds the service on an open core; the caller closes the core on
// error.
func open(ctx context.Context, core *service.Core, cfg Config, plan *numplan.Plan) (*Service, error) {
	kv, err := core.Bus.JS.KeyValue(ctx, bus.BucketFrequency)
	if err != nil {
		return nil, fmt.Errorf("compliance: frequency bucket: %w", err)
	}
	optKV, err := core.Bus.JS.KeyValue(ctx, bus.BucketOptOuts)
	if err != nil {
		return nil, fmt.Errorf("compliance: opt-out bucket: %w", err)
	}
	idx, err := optout.WatchIndex(ctx, core.Bus)
	if err != nil {
		return nil, fmt.Errorf("compliance: %w", err)
	}
	core.OnClose(idx.Stop)
	issuers, err := optout.OpenLastIssuer(ctx, core.Bus)
	if err != nil {
		return nil, fmt.Errorf("compliance: %w", err)
	}
	sessions, err := optout.OpenSessions(ctx, core.Bus)
	if err != nil {
		return nil, fmt.Errorf("compliance: %w", err)
	}
	var lookup SessionLookup = sessions
	if cfg.Sessions != nil {
		lookup = cfg.Sessions
	}
	var table *ported.Table
	network := cfg.NetworkLookup
	if core.Pool != nil {
		table = ported.NewTable(core.Log)
		if err := table.Load(ctx, core.Pool); err != nil {
			return nil, fmt.Errorf("compliance: %w", err)
		}
		ported.NewServer(core.Pool, core.Log).Register(core.RPC)
		// The table knows every declared port; a real-time lookup, when
		// the binary has one, answers for the rest.
		network = Lookups{table, cfg.NetworkLookup}
	} else {
		core.Log.Warn("no ported-numbers table (no -database-url): the ARCEP block holder decides for every number")
	}
	s := &Service{
		Core:    core,
		cfg:     cfg,
		deps:    ruleDeps{plan: plan, lookup: network, freq: kv, conn: core.Bus.Conn, sessions: lookup, optOuts: idx},
		now:     time.Now,
		issuers: issuers,
		ported:  table,
		tracer:  core.Tel.Tracer("pushsms.io/services/compliance"),
	}
	// The file's policy must compile: a replica that cannot decide with its
	// fallback would stop at the first bucket deletion.
	if _, err := compileRules(&cfg.Policy, s.deps); err != nil {
		return nil, fmt.Errorf("compliance: policy %s: %w", cfg.Policy.Version, err)
	}
	w, err := policy.Watch(ctx, core.Bus, cfg.Policy, core.Log)
	if err != nil {
		return nil, fmt.Errorf("compliance: %w", err)
	}
	s.policy = w
	core.OnClose(w.Stop)
	s.mo = newMOConsumer(core.Bus, optout.NewStore(optKV), issuers, sessions, w, core.Log)
	w.OnChange(func(*policy.Policy) { s.recompile() })
	// A change between Watch and OnChange is not lost: recompile reads
	// Current, not the hook's argument.
	s.recompile()
	if s.rules.Load() == nil {
		return nil, fmt.Errorf("compliance: policy %s: does not compile", w.Current().Version)
	}
	return s, nil
}

// recompile compiles the watcher's current policy and swaps it in. A
// policy that validates but does not compile (it cannot, today: Validate
// checks what compiling needs) keeps the previous rules.
func (s *Service) recompile() {
	s.reload.Lock()
	defer s.reload.Unlock()
	p := s.policy.Current()
	if cur := s.rules.Load(); cur != nil && cur.policy == p {
		return
	}
	rs, err := compileRules(p, s.deps)
	if err != nil {
		s.Log.Error("policy does not compile, the previous rules stay", "version", p.Version, "error", err)
		return
	}
	s.rules.Store(rs)
	names := make([]string, len(rs.rules))
	for i, r := range rs.rules {
		names[i] = r.Name
	}
	s.Log.Info("rules in force", "policy_version", p.Version, "rules", strings.Join(names, ","))
}

// Serve consumes accepted messages and serves gRPC until ctx is done.
func (s *Service) Serve(ctx context.Context) error {
	_, err := s.Consume(ctx, bus.ConsumerSpec{
		Stream:         bus.StreamAccepted,
		Durable:        Name,
		FilterSubjects: []string{bus.SubjectAccepted},
		Workers:        s.cfg.Workers,
	}, s.handle)
	if err != nil {
		return service.Starting(ctx, err)
	}
	if _, err := s.Consume(ctx, s.mo.spec(), s.mo.handle); err != nil {
		return service.Starting(ctx, err)
	}
	if s.ported != nil {
		// The table follows imports committed by any replica; the watch
		// ends before the pool closes (OnClose runs first).
		wctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := s.ported.Watch(wctx, s.Pool); err != nil && wctx.Err() == nil {
				s.Log.Error("ported-numbers table watch ended", "err", err)
			}
		}()
		s.OnClose(func() { stop(); <-done })
	}
	return s.Core.Serve(ctx)
}
