// Package stack runs the whole platform in one process: an embedded NATS
// JetStream server, a private PostgreSQL cluster, the SMSC simulator and
// the five services. It is the one-machine mode behind `make run`
// (cmd/devstack) and the platform the end-to-end tests drive. State lives
// under Config.Dir and survives a restart.
package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/embeddednats"
	"pushsms.io/lib/pgcluster"
	"pushsms.io/lib/pgdb"
	"pushsms.io/lib/smscsim"
	"pushsms.io/lib/telemetry"
	"pushsms.io/services/billing"
	"pushsms.io/services/compliance"
	"pushsms.io/services/ingest"
	smsclink "pushsms.io/services/smsc-link"
	"pushsms.io/services/throttle"
)

// Config of the one-machine platform.
type Config struct {
	// Dir holds NATS's files, PostgreSQL's cluster and the local API key.
	Dir  string
	Host string
	// Ports; 0 picks a free one (tests). CompliancePort and BillingPort
	// are the internal (admin) gRPC ports, where pushsms ported, invoice,
	// credit… connect by default.
	APIPort        int
	CompliancePort int
	BillingPort    int
	NATSPort       int
	PGPort         int
	SMSCPort       int
	SimHTTPPort    int
	NATSMonitor    int
	// DatabaseURL, when set, is used instead of the private cluster.
	DatabaseURL string
	// ShortCodes the local partner may send from; each is an account of the
	// simulator and of smsc-link.
	ShortCodes []string
	// Rate of every short code at the throttle and the simulator.
	Rate int
	// Rates overrides Rate per short code (a bought 20, 50, 100 or 150
	// SMS/s, or a quoted custom rate), at the throttle and the simulator
	// alike: the simulator NACKs what goes over, as the operator's SMSC.
	// The simulator keeps these figures until restarted, whatever the
	// SHORT_CODES bucket says later.
	Rates throttle.RateTable
	// ThrottleReplicas is how many throttle replicas share the short codes
	// (default 1); StopThrottle stops one while the platform runs on.
	ThrottleReplicas int
	// DRDelay is how long the simulator waits before a delivery report.
	DRDelay time.Duration
	// SimNoRecords has the simulator keep its statistics only, no record
	// of each submit (smscsim.Config.NoRecords): for benchmarks that read
	// only the statistics.
	SimNoRecords bool
	// NATSURL, when set, is a JetStream server in another process that the
	// services use instead of the stack's embedded one (NATSPort and
	// NATSMonitor are then unused), as in production, where NATS runs on
	// its own: a benchmark so keeps the server's collector and goroutines
	// out of the runtime that paces the short codes.
	NATSURL string
	// SpanProcessor, when set, receives every service's spans (tests).
	SpanProcessor sdktrace.SpanProcessor
	// OTLPEndpoint exports every service's traces (e.g. to Jaeger).
	OTLPEndpoint string
	Logger       *slog.Logger
	// PacingOnly starts only the pacing path: throttle and smsc-link with
	// NATS and the simulator; no PostgreSQL, ingest, compliance or billing,
	// hence no partner API. A benchmark feeds it cleared events itself, so
	// that it measures the throttle rather than the machine's room for the
	// whole pipeline.
	PacingOnly bool
}

// DefaultConfig is what `make run` starts.
func DefaultConfig() Config {
	return Config{
		Dir:              "var",
		Host:             "127.0.0.1",
		APIPort:          9090,
		CompliancePort:   9091,
		BillingPort:      9094,
		NATSPort:         4222,
		PGPort:           5433,
		SMSCPort:         2775,
		SimHTTPPort:      8025,
		NATSMonitor:      8222,
		ShortCodes:       []string{"36000", "38000"},
		Rate:             10,
		ThrottleReplicas: 1,
		DRDelay:          100 * time.Millisecond,
	}
}

// LocalPartner is the tenant the one-machine mode creates for local use.
const LocalPartner = "local"

// simPassword is the local accounts' password; the simulator and smsc-link
// are both local, so it protects nothing and says so.
const simPassword = "local-only"

// Stack is the running platform.
type Stack struct {
	cfg         Config
	log         *slog.Logger
	nats        *embeddednats.Server
	pgDir       string
	dbURL       string
	sim         *smscsim.Sim
	simHTTP     *http.Server
	simHTTPAddr string
	apiKey      string
	apiAddr     string
	// complianceAddr serves the aggregator's admin API (ported numbers).
	complianceAddr string
	// billingAddr serves billing's internal APIs (prepaid credit).
	billingAddr string

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	services []closer
	// throttles are the throttle replicas, nil once stopped.
	throttles []*throttle.Service
	errs      chan error
	tps       []*sdktrace.TracerProvider
}

type closer interface{ Close() error }

// Start starts everything and returns once the partner API accepts calls.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Rate == 0 {
		cfg.Rate = 10
	}
	if cfg.ThrottleReplicas <= 0 {
		cfg.ThrottleReplicas = 1
	}
	if len(cfg.ShortCodes) == 0 {
		return nil, errors.New("stack: no short codes")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	cfg.Dir = dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("stack dir: %w", err)
	}
	s := &Stack{cfg: cfg, log: cfg.Logger, errs: make(chan error, 8)}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()

	if cfg.NATSURL == "" {
		s.nats, err = embeddednats.Start(embeddednats.Config{Dir: filepath.Join(dir, "nats"), Host: cfg.Host, Port: portOr(cfg.NATSPort, -1), MonitorPort: cfg.NATSMonitor})
		if err != nil {
			return nil, err
		}
		s.log.Info("nats jetstream ready", "url", s.nats.URL())
	}

	s.dbURL = cfg.DatabaseURL
	if s.dbURL == "" && !cfg.PacingOnly {
		s.pgDir = filepath.Join(dir, "pg")
		s.dbURL, err = pgcluster.Start(ctx, s.pgDir, cfg.PGPort)
		if err != nil {
			return nil, fmt.Errorf("postgresql: %w", err)
		}
		s.log.Info("postgresql ready", "data", s.pgDir)
	}

	if err := s.startSim(ctx); err != nil {
		return nil, err
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	if err := s.startServices(ctx, runCtx); err != nil {
		return nil, err
	}
	if cfg.PacingOnly {
		return s, nil
	}
	if err := s.ensurePartner(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// simAccount is the simulator's account of a short code at rate r.
func simAccount(sc string, r int) smscsim.Account {
	return smscsim.Account{ShortCode: sc, Password: simPassword, Window: 100, Rate: r}
}

// SetSimRate changes the rate the simulator enforces for sc, as the
// operator does when a contract changes.
func (s *Stack) SetSimRate(sc string, r int) { s.sim.AddAccount(simAccount(sc, r)) }

func (s *Stack) startSim(ctx context.Context) error {
	accounts := make([]smscsim.Account, len(s.cfg.ShortCodes))
	for i, sc := range s.cfg.ShortCodes {
		accounts[i] = simAccount(sc, s.cfg.RateOf(sc))
	}
	// The SMSC's clock and smsc-link's agree on French time, as the
	// operator's do: UCP timestamps carry no zone.
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		return fmt.Errorf("smsc-sim timezone: %w", err)
	}
	s.sim = smscsim.New(smscsim.Config{
		Location:  paris,
		Addr:      net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.SMSCPort)),
		Accounts:  accounts,
		DR:        smscsim.DRConfig{Delay: s.cfg.DRDelay, Delivered: 1},
		StateFile: filepath.Join(s.cfg.Dir, "smsc-sim.json"),
		NoRecords: s.cfg.SimNoRecords,
		Logger:    s.log.With("component", "smsc-sim"),
	})
	// The simulator lives until Stop, after the services, not until a
	// signal cancels ctx.
	if err := s.sim.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.SimHTTPPort)))
	if err != nil {
		return fmt.Errorf("smsc-sim http: %w", err)
	}
	s.simHTTP = &http.Server{Handler: s.sim.Handler(), ReadHeaderTimeout: 5 * time.Second}
	s.simHTTPAddr = ln.Addr().String()
	go s.simHTTP.Serve(ln)
	s.log.Info("smsc simulator ready", "ucp", s.sim.Addr(), "http", ln.Addr().String())
	return nil
}

// telemetryFor gives each service its own tracer provider, named after the
// service as in production, all feeding the same processor or exporter.
func (s *Stack) telemetryFor(ctx context.Context, service string) (telemetry.Config, error) {
	tc := telemetry.Config{LogLevel: "info", LogFormat: "text", Logger: s.log, OTLPEndpoint: s.cfg.OTLPEndpoint, TraceRatio: 1}
	if s.cfg.SpanProcessor == nil {
		return tc, nil
	}
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(telemetry.SchemaURL, semconv.ServiceName(service)))
	if err != nil {
		return tc, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSpanProcessor(s.cfg.SpanProcessor))
	s.tps = append(s.tps, tp)
	tc.TracerProvider = tp
	return tc, nil
}

func (s *Stack) addr(port int) string {
	return net.JoinHostPort(s.cfg.Host, strconv.Itoa(port))
}

func (s *Stack) startServices(ctx, runCtx context.Context) error {
	busCfg := bus.Config{URL: s.NATSURL(), Replicas: 1}
	if s.nats != nil {
		busCfg.InProcess = s.nats.Server
	}
	start := func(name string, svc interface {
		closer
		Serve(context.Context) error
	}) {
		s.services = append(s.services, svc)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := svc.Serve(runCtx); err != nil {
				s.errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}

	// Consumers first, producers last: billing, ingest's status view and
	// smsc-link are listening before anything is accepted.
	if !s.cfg.PacingOnly {
		bc := billing.DefaultConfig()
		bc.Bus, bc.DB = busCfg, pgdb.Config{URL: s.dbURL, MaxConns: 5}
		bc.GRPCAddr = s.addr(s.cfg.BillingPort)
		tc, err := s.telemetryFor(ctx, billing.Name)
		if err != nil {
			return err
		}
		bc.Telemetry = tc
		bsvc, err := billing.New(ctx, bc)
		if err != nil {
			return fmt.Errorf("billing: %w", err)
		}
		start(billing.Name, bsvc)
		s.billingAddr = bsvc.Addr()
	}

	lc := smsclink.DefaultConfig()
	lc.Bus, lc.GRPCAddr = busCfg, s.addr(0)
	lc.SMSCAddr = s.sim.Addr()
	lc.DefaultRate, lc.Rates = s.cfg.Rate, maps.Clone(s.cfg.Rates)
	for _, sc := range s.cfg.ShortCodes {
		lc.Accounts = append(lc.Accounts, smsclink.Account{ShortCode: sc, Password: simPassword})
	}
	var err error
	if lc.Telemetry, err = s.telemetryFor(ctx, smsclink.Name); err != nil {
		return err
	}
	lsvc, err := smsclink.New(ctx, lc)
	if err != nil {
		return fmt.Errorf("smsc-link: %w", err)
	}
	start(smsclink.Name, lsvc)

	for i := range s.cfg.ThrottleReplicas {
		tcfg := throttle.DefaultConfig()
		tcfg.Bus, tcfg.GRPCAddr, tcfg.DefaultRate = busCfg, s.addr(0), s.cfg.Rate
		// Every short code of the stack, so that each is owned from the
		// start rather than when its first event is listed.
		tcfg.Rates = throttle.RateTable{}
		for _, sc := range s.cfg.ShortCodes {
			tcfg.Rates[sc] = s.cfg.RateOf(sc)
		}
		if tcfg.Telemetry, err = s.telemetryFor(ctx, throttle.Name); err != nil {
			return err
		}
		tsvc, err := throttle.New(ctx, tcfg)
		if err != nil {
			return fmt.Errorf("throttle replica %d: %w", i, err)
		}
		start(throttle.Name, tsvc)
		s.throttles = append(s.throttles, tsvc)
	}

	if s.cfg.PacingOnly {
		return nil
	}
	cc := compliance.DefaultConfig()
	cc.Bus, cc.GRPCAddr = busCfg, s.addr(s.cfg.CompliancePort)
	cc.DB = pgdb.Config{URL: s.dbURL, MaxConns: 5}
	if cc.Telemetry, err = s.telemetryFor(ctx, compliance.Name); err != nil {
		return err
	}
	csvc, err := compliance.New(ctx, cc)
	if err != nil {
		return fmt.Errorf("compliance: %w", err)
	}
	start(compliance.Name, csvc)
	s.complianceAddr = csvc.Addr()

	ic := ingest.DefaultConfig()
	ic.Bus, ic.DB = busCfg, pgdb.Config{URL: s.dbURL, MaxConns: 10}
	ic.GRPCAddr = s.addr(s.cfg.APIPort)
	// Billing was started above: ingest reserves prepaid tenants' credit
	// there from its first message on.
	ic.CreditAddr = s.billingAddr
	if ic.Telemetry, err = s.telemetryFor(ctx, ingest.Name); err != nil {
		return err
	}
	isvc, err := ingest.New(ctx, ic)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	start(ingest.Name, isvc)
	s.apiAddr = isvc.Addr()
	return nil
}

// ensurePartner creates the local partner once and keeps its API key in
// Dir/api-key, so that the key printed stays valid across restarts.
func (s *Stack) ensurePartner(ctx context.Context) error {
	keyFile := filepath.Join(s.cfg.Dir, "api-key")
	if b, err := os.ReadFile(keyFile); err == nil && len(b) > 0 {
		s.apiKey = string(b)
		return nil
	}
	pool, err := pgxpool.New(ctx, s.dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	key, err := ingest.CreatePartner(ctx, pool, LocalPartner, "Local partner", s.cfg.ShortCodes)
	if err != nil {
		return fmt.Errorf("create local partner: %w", err)
	}
	if err := os.WriteFile(keyFile, []byte(key), 0o600); err != nil {
		return err
	}
	s.apiKey = key
	return nil
}

// RateOf is the contracted rate of a short code: its override, else Rate.
func (c Config) RateOf(shortCode string) int {
	if r, ok := c.Rates[shortCode]; ok {
		return r
	}
	return c.Rate
}

// ThrottleReplicas is how many throttle replicas were started.
func (s *Stack) ThrottleReplicas() int { return len(s.throttles) }

// StopThrottle stops throttle replica i (0-based) while the rest of the
// platform runs on: a clean stop (Close), the in-process stand-in for a
// replica going away; the others must take its short codes over.
func (s *Stack) StopThrottle(i int) error {
	if i < 0 || i >= len(s.throttles) || s.throttles[i] == nil {
		return fmt.Errorf("stack: no running throttle replica %d", i)
	}
	t := s.throttles[i]
	s.throttles[i] = nil
	s.services = slices.DeleteFunc(s.services, func(c closer) bool { return c == closer(t) })
	return t.Close()
}

// APIAddr is where the partner gRPC API listens.
func (s *Stack) APIAddr() string { return s.apiAddr }

// APIKey is the local partner's API key.
func (s *Stack) APIKey() string { return s.apiKey }

// ComplianceAddr is compliance's internal gRPC address: the aggregator's
// admin API (ported-numbers import).
func (s *Stack) ComplianceAddr() string { return s.complianceAddr }

// BillingAddr is billing's internal gRPC address: prepaid credit
// (CreditService).
func (s *Stack) BillingAddr() string { return s.billingAddr }

// SimHTTPAddr serves the simulator's statistics and MO injection.
func (s *Stack) SimHTTPAddr() string { return s.simHTTPAddr }

// DatabaseURL is the platform's database.
func (s *Stack) DatabaseURL() string { return s.dbURL }

// Sim is the SMSC simulator.
func (s *Stack) Sim() *smscsim.Sim { return s.sim }

// NATSURL is the JetStream server's client URL: the embedded server's, or
// Config.NATSURL.
func (s *Stack) NATSURL() string {
	if s.nats == nil {
		return s.cfg.NATSURL
	}
	return s.nats.URL()
}

// Err reports the first service that stopped on its own.
func (s *Stack) Err() <-chan error { return s.errs }

// Stop stops the services (producers first), then the simulator, NATS and
// PostgreSQL. Everything accepted is on disk and resumes at the next Start.
func (s *Stack) Stop() {
	if s.cancel != nil {
		s.cancel()
	}
	for i := len(s.services) - 1; i >= 0; i-- {
		if err := s.services[i].Close(); err != nil {
			s.log.Warn("service close", "err", err)
		}
	}
	s.wg.Wait()
	for _, tp := range s.tps {
		_ = tp.Shutdown(context.Background())
	}
	if s.simHTTP != nil {
		_ = s.simHTTP.Close()
	}
	if s.sim != nil {
		_ = s.sim.Close()
	}
	if s.nats != nil {
		s.nats.Stop()
	}
	if s.pgDir != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := pgcluster.Stop(ctx, s.pgDir); err != nil {
			s.log.Warn("postgresql stop", "err", err)
		}
	}
}

func portOr(p, def int) int {
	if p == 0 {
		return def
	}
	return p
}

// DeploymentGOGC is the Go collector's target of the pacing path's
// services in deploy/k8s (throttle and smsc-link; the others keep the
// default, 100, for their memory): the one-machine process, which holds
// that path, runs with it too.
const DeploymentGOGC = 200

// PacingServices are the services deploy/k8s runs with DeploymentGOGC.
var PacingServices = []string{throttle.Name, smsclink.Name}

// TuneGC sets the process's collector target to DeploymentGOGC, unless
// GOGC in the environment says otherwise.
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(DeploymentGOGC)
	}
}
