// Package billing keeps the ledger: one row per segment that reached a
// final state (delivered, failed, expired), written from the final segment
// reports on the bus. Delivered segments are billable, the others are kept
// for reconciliation with the operator's statements.
package billing

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io/fs"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/pgdb"
	"pushsms.io/lib/service"
)

// Name is the service's name: its client name on the bus, its durable
// consumer and its telemetry service name.
const Name = "billing"

// Schema is the PostgreSQL schema of the ledger.
const Schema = "billing"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the tern migrations of Schema, for pgdb.Migrate and
// pgtest.Migrated.
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the directory is embedded: cannot happen
	}
	return sub
}

// Config is the service's configuration.
type Config struct {
	service.Config
	DB pgdb.Config
	// Workers is how many reports a replica records at once.
	Workers int
}

// DefaultConfig listens on :9094 with 4 workers; the database URL has no
// default.
func DefaultConfig() Config {
	return Config{
		Config:  service.DefaultConfig(":9094"),
		DB:      pgdb.Config{MaxConns: 10},
		Workers: 4,
	}
}

// RegisterFlags adds the flags of the bus, telemetry and database,
// -grpc-addr and -workers.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	c.DB.RegisterFlags(fs)
	fs.IntVar(&c.Workers, "workers", c.Workers, "reports recorded at once by this replica")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if err := c.Config.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("billing: %w", err))
	}
	if c.DB.URL == "" {
		errs = append(errs, pgdb.ErrNoURL)
	}
	if err := service.ValidateWorkers(c.Workers, 1024); err != nil {
		errs = append(errs, fmt.Errorf("billing: %w", err))
	}
	return errors.Join(errs...)
}

// Run runs the service until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	s, err := New(ctx, cfg)
	return service.Run(ctx, s, err)
}

// Service is a running billing service.
type Service struct {
	*service.Core
	cfg Config
}

// New connects to the bus and the database, migrates the ledger and binds
// the gRPC address; nothing is consumed before Serve.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	core, err := service.Open(ctx, service.Options{
		Name: Name, Config: cfg.Config,
		DB: &cfg.DB, Schema: Schema, Migrations: Migrations(),
	})
	if err != nil {
		return nil, err
	}
	return &Service{Core: core, cfg: cfg}, nil
}

// Serve records final segment reports and serves gRPC until ctx is done.
func (s *Service) Serve(ctx context.Context) error {
	_, err := s.Consume(ctx, bus.ConsumerSpec{
		Stream:         bus.StreamReports,
		Durable:        Name,
		FilterSubjects: bus.FinalReportSubjects,
		Workers:        s.cfg.Workers,
		// A lost ack would redeliver a report whose row is committed:
		// harmless thanks to the primary key, but it costs a round trip.
		DoubleAck: true,
	}, s.handle)
	if err != nil {
		return err
	}
	return s.Core.Serve(ctx)
}
