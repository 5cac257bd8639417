// Package compliance checks every accepted message before it may be sent:
// the recipient must be a French metropolitan mobile number (normalised to
// E.164), the message still valid, and the later rules of rule.go satisfied.
// A message that passes is split into segments and published as
// MessageCleared; one that does not is published as MessageRejected with
// the first failing rule's reason.
package compliance

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"sync"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/rpc"
	"pushsms.io/lib/telemetry"
)

// Name is the service's name: its client name on the bus, its durable
// consumer and its telemetry service name.
const Name = "compliance"

// Config is the service's configuration.
type Config struct {
	Bus       bus.Config
	Telemetry telemetry.Config
	// GRPCAddr serves gRPC health and reflection.
	GRPCAddr string
	// Workers is how many accepted messages a replica checks at once.
	Workers int
}

// DefaultConfig listens on :9091 with 8 workers.
func DefaultConfig() Config {
	return Config{
		Bus:       bus.DefaultConfig(),
		Telemetry: telemetry.DefaultConfig(),
		GRPCAddr:  ":9091",
		Workers:   8,
	}
}

// RegisterFlags adds the flags of the bus, telemetry, -grpc-addr and -workers.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Bus.RegisterFlags(fs)
	c.Telemetry.RegisterFlags(fs)
	fs.StringVar(&c.GRPCAddr, "grpc-addr", c.GRPCAddr, "gRPC listen address (health, reflection)")
	fs.IntVar(&c.Workers, "workers", c.Workers, "accepted messages checked at once by this replica")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if err := c.Bus.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.GRPCAddr == "" {
		errs = append(errs, errors.New("compliance: grpc-addr is empty"))
	}
	if c.Workers < 1 || c.Workers > 1024 {
		errs = append(errs, fmt.Errorf("compliance: workers %d: want 1 to 1024", c.Workers))
	}
	return errors.Join(errs...)
}

// Run runs the service until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	s, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Serve(ctx)
}

// Service is a running compliance service.
type Service struct {
	cfg   Config
	tel   *telemetry.Telemetry
	log   *slog.Logger
	bus   *bus.Bus
	rpc   *rpc.Server
	rules []Rule
	now   func() time.Time

	mu     sync.Mutex
	cons   *bus.Consumer
	closed bool
}

// New connects to the bus and binds the gRPC address; nothing is consumed
// before Serve.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tel, err := telemetry.Setup(ctx, Name, cfg.Telemetry)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, tel: tel, log: tel.Logger, rules: DefaultRules(), now: time.Now}
	s.bus, err = bus.Connect(ctx, cfg.Bus, Name, tel)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.rpc, err = rpc.Listen(cfg.GRPCAddr, tel, nil, nil)
	if err != nil {
		s.Close()
		return nil, err
	}
	// Not serving until the consumer runs.
	s.rpc.Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	return s, nil
}

// Addr is the bound gRPC address.
func (s *Service) Addr() string { return s.rpc.Addr() }

// Serve consumes accepted messages and serves gRPC until ctx is done.
func (s *Service) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("compliance: serve after close")
	}
	cons, err := s.bus.Consume(ctx, bus.ConsumerSpec{
		Stream:         bus.StreamAccepted,
		Durable:        Name,
		FilterSubjects: []string{bus.SubjectAccepted},
		Workers:        s.cfg.Workers,
	}, s.handle)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.cons = cons
	s.mu.Unlock()

	s.rpc.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.log.InfoContext(ctx, "compliance serving", "grpc_addr", s.Addr(), "workers", s.cfg.Workers)
	errc := make(chan error, 1)
	go func() { errc <- s.rpc.Serve() }()
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("grpc server: %w", err)
		}
		// Stopped by Close: keep to the contract of returning when ctx is done.
		<-ctx.Done()
		return nil
	}
}

// Close stops gRPC, then the consumer (the message in hand is finished),
// then drains the bus and flushes telemetry.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	cons := s.cons
	s.mu.Unlock()

	if s.rpc != nil {
		s.rpc.Stop(5 * time.Second)
	}
	if cons != nil {
		cons.Stop()
	}
	var errs []error
	if s.bus != nil {
		errs = append(errs, s.bus.Close())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errs = append(errs, s.tel.Shutdown(ctx))
	return errors.Join(errs...)
}
