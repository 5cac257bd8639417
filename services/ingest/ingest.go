// Package ingest is the partner-facing side of the platform: the gRPC
// MessagingService that accepts messages and campaigns (publishing
// MessageAccepted), the SuppressionService of partners' opt-out lists, and
// the status view that follows every message through
// the events of the other services (SMS_CLEARED, SMS_REPORTS) so that
// GetMessage, GetCampaign and StreamEvents can tell partners what happened.
package ingest

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/optout"
	"pushsms.io/lib/pgdb"
	"pushsms.io/lib/service"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// Name is the service's name: its client name on the bus and its telemetry
// service name.
const Name = "ingest"

// Schema is the PostgreSQL schema of the service's tables.
const Schema = "ingest"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the tern migrations of Schema, for pgdb.Migrate (and
// pgtest.Migrated in tests of other packages).
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the directory is embedded: it is there
	}
	return sub
}

// Config is the service's configuration.
type Config struct {
	service.Config
	DB pgdb.Config
	// Workers is how many events of each status-view consumer a replica
	// applies at once.
	Workers int
	// CreditAddr is billing's gRPC address, for prepaid credit; empty:
	// no tenant is checked (docs/billing-prepaid.md).
	CreditAddr string
	// CreditTTL is how long the list of prepaid tenants is trusted.
	CreditTTL time.Duration
	// Release paces a campaign's messages to compliance (campaign.go).
	Release ReleaseConfig
	// OrphanAfter is how long a campaign may stay RECEIVING without its
	// upload marking it alive before it is cancelled (orphans.go).
	OrphanAfter time.Duration
}

// DefaultConfig listens on :9090 with 8 status-view workers.
func DefaultConfig() Config {
	return Config{
		Config:      service.DefaultConfig(":9090"),
		DB:          pgdb.Config{MaxConns: 20},
		Workers:     8,
		CreditTTL:   DefaultCreditTTL,
		Release:     DefaultReleaseConfig(),
		OrphanAfter: DefaultOrphanAfter,
	}
}

// RegisterFlags adds the flags of the bus, telemetry and database, then
// -grpc-addr and -workers.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	c.DB.RegisterFlags(fs)
	fs.IntVar(&c.Workers, "workers", c.Workers, "status-view events applied at once by this replica, per consumer")
	fs.StringVar(&c.CreditAddr, "credit-addr", c.CreditAddr, "billing's gRPC address: prepaid tenants' messages reserve credit there (empty: no prepaid check)")
	fs.DurationVar(&c.CreditTTL, "credit-cache-ttl", c.CreditTTL, "how long the list of prepaid tenants is trusted")
	fs.IntVar(&c.Release.Rate, "campaign-release-rate", c.Release.Rate, "a campaign's messages go to compliance at most this many segments a second, beyond the lead; below it, at their short code's rate (segments/s)")
	fs.DurationVar(&c.Release.Span, "campaign-release-span", c.Release.Span, "time at that pace one scheduled batch covers: longer means fewer schedules, and more for the throttle to park at once")
	fs.DurationVar(&c.Release.Lead, "campaign-release-lead", c.Release.Lead, "how far ahead of that pace a campaign is released: its first rate × lead segments go at once")
	fs.DurationVar(&c.OrphanAfter, "campaign-orphan-after", c.OrphanAfter, "a campaign whose upload has not marked it alive for this long (its process died) is cancelled")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if err := c.Config.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("ingest: %w", err))
	}
	if c.DB.URL == "" {
		errs = append(errs, pgdb.ErrNoURL)
	}
	if err := service.ValidateWorkers(c.Workers, 256); err != nil {
		errs = append(errs, fmt.Errorf("ingest: %w", err))
	}
	if err := c.Release.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("ingest: %w", err))
	}
	if c.OrphanAfter < time.Second {
		errs = append(errs, fmt.Errorf("ingest: campaign-orphan-after %v: want 1s or more", c.OrphanAfter))
	}
	if c.CreditAddr != "" && (c.CreditTTL <= 0 || c.CreditTTL > 5*time.Minute) {
		errs = append(errs, fmt.Errorf("ingest: %w", errNoCreditTTL))
	}
	return errors.Join(errs...)
}

// Run runs the service until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	s, err := New(ctx, cfg)
	return service.Run(ctx, s, err)
}

// Service is a running ingest service.
type Service struct {
	*service.Core
	cfg       Config
	campaigns jetstream.KeyValue
	optouts   *optout.Store
	now       func() time.Time
	// credit is nil when no prepaid check is configured.
	credit *creditCheck
	// tracer starts the trace of each campaign message (campaign.go).
	tracer trace.Tracer
	// releases works on campaigns' scheduled batches (release.go).
	releases releases
}

// New checks cfg, sets up telemetry, connects to the bus (ensuring streams
// and buckets), opens and migrates the database and binds the gRPC address.
// Nothing is consumed or served before Serve.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// The authenticator gets its pool once Open made it; no call is served
	// before Serve.
	auth := &authenticator{}
	core, err := service.Open(ctx, service.Options{
		Name: Name, Config: cfg.Config,
		DB: &cfg.DB, Schema: Schema, Migrations: Migrations(),
		Unary:  []grpc.UnaryServerInterceptor{auth.unary},
		Stream: []grpc.StreamServerInterceptor{auth.stream},
		// Partners call it: their trace context must not decide ours.
		PublicAPI: true,
	})
	if err != nil {
		return nil, err
	}
	auth.pool = core.Pool
	s := &Service{Core: core, cfg: cfg, now: time.Now, tracer: core.Tel.Tracer("pushsms.io/services/ingest")}
	if s.campaigns, err = core.Bus.JS.KeyValue(ctx, bus.BucketCampaigns); err != nil {
		core.Close()
		return nil, fmt.Errorf("bucket %s: %w", bus.BucketCampaigns, err)
	}
	optouts, err := core.Bus.JS.KeyValue(ctx, bus.BucketOptOuts)
	if err != nil {
		core.Close()
		return nil, fmt.Errorf("bucket %s: %w", bus.BucketOptOuts, err)
	}
	s.optouts = optout.NewStore(optouts)
	// Before the bus drains: work on scheduled batches stops at its next
	// step once Close began.
	core.OnClose(s.releases.wg.Wait)
	if cfg.CreditAddr != "" {
		credit, conn, err := newCreditCheck(cfg.CreditAddr, cfg.CreditTTL, core.Log)
		if err != nil {
			core.Close()
			return nil, err
		}
		s.credit = credit
		core.OnClose(func() { conn.Close() })
	}
	// The authenticator's interceptors are the server's: both services
	// get the same API keys and tenant scoping.
	partnerv1.RegisterMessagingServiceServer(core.RPC.Server, &api{s: s})
	partnerv1.RegisterSuppressionServiceServer(core.RPC.Server, &suppressionAPI{s: s})
	for _, name := range servedServices() {
		core.RPC.Health.SetServingStatus(name, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	return s, nil
}

// Serve starts the status view's consumers and serves gRPC until ctx is
// done.
func (s *Service) Serve(ctx context.Context) error {
	if err := s.startProjection(ctx); err != nil {
		return service.Starting(ctx, err)
	}
	if err := s.watchRates(ctx); err != nil {
		return service.Starting(ctx, err)
	}
	s.reapOrphans()
	for _, name := range servedServices() {
		s.RPC.Health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	return s.Core.Serve(ctx)
}

// servedServices are the partner API's gRPC services, by health name.
func servedServices() []string {
	return []string{
		partnerv1.MessagingService_ServiceDesc.ServiceName,
		partnerv1.SuppressionService_ServiceDesc.ServiceName,
	}
}

// api is the MessagingService; its methods live next to their concern
// (send.go, message.go, campaign.go, events.go, preview.go).
type api struct {
	partnerv1.UnimplementedMessagingServiceServer
	s *Service
}
