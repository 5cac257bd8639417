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
	"time"

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
	// Workers is how many batches a replica records at once, each in its
	// own transaction.
	Workers int
	// Batch is the most final reports recorded in one transaction.
	Batch int
	// BatchWait is how long a batch waits to fill after its first report:
	// the longest a report waits for its row when the traffic is low.
	BatchWait time.Duration
	// AckWait is how long the bus waits for a batch's acks before it
	// hands its events to another replica: above the slowest commit.
	AckWait time.Duration
}

// DefaultConfig listens on :9094 and records batches of up to 2000
// reports, 4 at once (one batch's commit waits for its fsync while the
// others are written), gathered for at most 50 ms; the database URL has
// no default. BenchmarkIngest chose these (docs/billing-ledger.md).
func DefaultConfig() Config {
	return Config{
		Config:    service.DefaultConfig(":9094"),
		DB:        pgdb.Config{MaxConns: 10},
		Workers:   4,
		Batch:     2000,
		BatchWait: 50 * time.Millisecond,
		AckWait:   30 * time.Second,
	}
}

// MaxBatch bounds Config.Batch: a transaction holds locks on that many
// ledger keys, and the bus that many unacknowledged events per batch.
const MaxBatch = 10000

// RegisterFlags adds the flags of the bus, telemetry and database,
// -grpc-addr, -workers, -batch, -batch-wait and -ack-wait.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	c.DB.RegisterFlags(fs)
	fs.IntVar(&c.Workers, "workers", c.Workers, "batches of reports recorded at once by this replica")
	fs.IntVar(&c.Batch, "batch", c.Batch, "most final reports recorded in one transaction")
	fs.DurationVar(&c.BatchWait, "batch-wait", c.BatchWait, "how long a batch waits to fill after its first report")
	fs.DurationVar(&c.AckWait, "ack-wait", c.AckWait, "how long a batch in hand may stay unacknowledged before the bus hands it to another replica")
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
	if err := service.ValidateWorkers(c.Workers, 64); err != nil {
		errs = append(errs, fmt.Errorf("billing: %w", err))
	}
	if c.Batch < 1 || c.Batch > MaxBatch {
		errs = append(errs, fmt.Errorf("billing: batch %d: want 1 to %d", c.Batch, MaxBatch))
	}
	if c.BatchWait <= 0 || c.BatchWait > 10*time.Second {
		errs = append(errs, fmt.Errorf("billing: batch-wait %v: want above 0 and at most 10s", c.BatchWait))
	}
	if c.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("billing: ack-wait %v: want at least 1s", c.AckWait))
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
	s := &Service{Core: core, cfg: cfg}
	if err := s.registerAPI(core.RPC.Server); err != nil {
		core.Close()
		return nil, err
	}
	registerCredit(core)
	return s, nil
}

// Serve records final segment reports, keeps the prepaid credit and
// serves gRPC until ctx is done.
func (s *Service) Serve(ctx context.Context) error {
	if err := consumeCredit(ctx, s.Core); err != nil {
		return service.Starting(ctx, err)
	}
	// Close stops it after gRPC, before the bus is drained and the pool
	// closed: its batches in hand are committed and acked.
	_, err := s.ConsumeBatch(ctx, bus.ConsumerSpec{
		Stream:         bus.StreamReports,
		Durable:        Name,
		FilterSubjects: bus.FinalReportSubjects,
		Workers:        s.cfg.Workers,
		AckWait:        s.cfg.AckWait,
		// A lost ack would redeliver a batch whose rows are committed:
		// harmless thanks to the primary key, but it costs a transaction.
		// One round trip confirms a whole batch's acks.
		DoubleAck: true,
	}, s.cfg.Batch, s.cfg.BatchWait, s.handleBatch)
	if err != nil {
		return service.Starting(ctx, err)
	}
	return s.Core.Serve(ctx)
}
