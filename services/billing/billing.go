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
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/pgdb"
	"pushsms.io/lib/rpc"
	"pushsms.io/lib/telemetry"
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
	Bus       bus.Config
	Telemetry telemetry.Config
	DB        pgdb.Config
	// GRPCAddr serves gRPC health and reflection.
	GRPCAddr string
	// Workers is how many reports a replica records at once.
	Workers int
}

// DefaultConfig listens on :9094 with 4 workers; the database URL has no
// default.
func DefaultConfig() Config {
	return Config{
		Bus:       bus.DefaultConfig(),
		Telemetry: telemetry.DefaultConfig(),
		DB:        pgdb.Config{MaxConns: 10},
		GRPCAddr:  ":9094",
		Workers:   4,
	}
}

// RegisterFlags adds the flags of the bus, telemetry and database,
// -grpc-addr and -workers.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Bus.RegisterFlags(fs)
	c.Telemetry.RegisterFlags(fs)
	c.DB.RegisterFlags(fs)
	fs.StringVar(&c.GRPCAddr, "grpc-addr", c.GRPCAddr, "gRPC listen address (health, reflection)")
	fs.IntVar(&c.Workers, "workers", c.Workers, "reports recorded at once by this replica")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if err := c.Bus.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.DB.URL == "" {
		errs = append(errs, pgdb.ErrNoURL)
	}
	if c.GRPCAddr == "" {
		errs = append(errs, errors.New("billing: grpc-addr is empty"))
	}
	if c.Workers < 1 || c.Workers > 1024 {
		errs = append(errs, fmt.Errorf("billing: workers %d: want 1 to 1024", c.Workers))
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

// Service is a running billing service.
type Service struct {
	cfg  Config
	tel  *telemetry.Telemetry
	log  *slog.Logger
	bus  *bus.Bus
	pool *pgxpool.Pool
	rpc  *rpc.Server

	mu     sync.Mutex
	cons   *bus.Consumer
	closed bool
}

// New connects to the bus and the database, migrates the ledger and binds
// the gRPC address; nothing is consumed before Serve.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tel, err := telemetry.Setup(ctx, Name, cfg.Telemetry)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, tel: tel, log: tel.Logger}
	if s.bus, err = bus.Connect(ctx, cfg.Bus, Name, tel); err != nil {
		s.Close()
		return nil, err
	}
	if s.pool, err = pgdb.Open(ctx, cfg.DB, tel.TracerProvider); err != nil {
		s.Close()
		return nil, err
	}
	if err = pgdb.Migrate(ctx, s.pool, Schema, Migrations()); err != nil {
		s.Close()
		return nil, err
	}
	if s.rpc, err = rpc.Listen(cfg.GRPCAddr, tel, nil, nil); err != nil {
		s.Close()
		return nil, err
	}
	// Not serving until the consumer runs.
	s.rpc.Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	return s, nil
}

// Addr is the bound gRPC address.
func (s *Service) Addr() string { return s.rpc.Addr() }

// Pool is the service's database pool, for the one-machine mode's queries
// (DeliveredCount, Entries).
func (s *Service) Pool() *pgxpool.Pool { return s.pool }

// Serve records final segment reports and serves gRPC until ctx is done.
func (s *Service) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("billing: serve after close")
	}
	cons, err := s.bus.Consume(ctx, bus.ConsumerSpec{
		Stream:         bus.StreamReports,
		Durable:        Name,
		FilterSubjects: bus.FinalReportSubjects,
		Workers:        s.cfg.Workers,
		// A lost ack would redeliver a report whose row is committed:
		// harmless thanks to the primary key, but it costs a round trip.
		DoubleAck: true,
	}, s.handle)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.cons = cons
	s.mu.Unlock()

	s.rpc.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.log.InfoContext(ctx, "billing serving", "grpc_addr", s.Addr(), "workers", s.cfg.Workers)
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

// Close stops gRPC, then the consumer (the report in hand is recorded and
// acked), then drains the bus, closes the pool and flushes telemetry.
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
	if s.pool != nil {
		s.pool.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errs = append(errs, s.tel.Shutdown(ctx))
	return errors.Join(errs...)
}
