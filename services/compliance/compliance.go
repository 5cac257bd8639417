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
	"time"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/service"
)

// Name is the service's name: its client name on the bus, its durable
// consumer and its telemetry service name.
const Name = "compliance"

// Config is the service's configuration.
type Config struct {
	service.Config
	// Workers is how many accepted messages a replica checks at once.
	Workers int
}

// DefaultConfig listens on :9091 with 8 workers.
func DefaultConfig() Config {
	return Config{
		Config:  service.DefaultConfig(":9091"),
		Workers: 8,
	}
}

// RegisterFlags adds the flags of the bus, telemetry, -grpc-addr and -workers.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	fs.IntVar(&c.Workers, "workers", c.Workers, "accepted messages checked at once by this replica")
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
	cfg   Config
	rules []Rule
	now   func() time.Time
}

// New connects to the bus and binds the gRPC address; nothing is consumed
// before Serve.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	core, err := service.Open(ctx, service.Options{Name: Name, Config: cfg.Config})
	if err != nil {
		return nil, err
	}
	return &Service{Core: core, cfg: cfg, rules: DefaultRules(), now: time.Now}, nil
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
		return err
	}
	return s.Core.Serve(ctx)
}
