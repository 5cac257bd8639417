// Package service is what the five services have in common: telemetry, the
// bus, an optional PostgreSQL pool with its migrations, a gRPC server with
// health and reflection, durable consumers, and the shutdown order. A
// service's New calls Open, registers its own gRPC APIs and consumers, and
// its Serve and Close are the Core's.
package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/pgdb"
	"pushsms.io/lib/rpc"
	"pushsms.io/lib/telemetry"
)

// Options says what a service needs.
type Options struct {
	Name string
	Config
	// DB, when non-nil, opens a pool and migrates Schema with Migrations.
	DB         *pgdb.Config
	Schema     string
	Migrations fs.FS
	// ManagedHealth leaves the health status to the service (e.g. SERVING
	// only while its SMSC sessions are up) instead of SERVING from Serve.
	ManagedHealth bool
	// Interceptors run after the error mapping (e.g. authentication).
	Unary  []grpc.UnaryServerInterceptor
	Stream []grpc.StreamServerInterceptor
	// PublicAPI: the gRPC callers are outside the platform (rpc.Options).
	PublicAPI bool
}

// Core is a service's running infrastructure.
type Core struct {
	Name string
	Tel  *telemetry.Telemetry
	Log  *slog.Logger
	Bus  *bus.Bus
	Pool *pgxpool.Pool
	RPC  *rpc.Server

	// metrics serves /metrics when Telemetry.MetricsAddr is set.
	metrics     *http.Server
	metricsAddr string

	managedHealth bool
	stopping      context.Context
	stop          context.CancelFunc

	mu        sync.Mutex
	consumers []*bus.Consumer
	onClose   []func()
	closed    bool
}

// Open does every step that can fail early, in order: telemetry, bus
// (streams ensured), database and migrations, gRPC listener. Health says
// NOT_SERVING until Serve.
func Open(ctx context.Context, o Options) (*Core, error) {
	if o.GRPCAddr == "" {
		return nil, fmt.Errorf("%s: grpc-addr is empty", o.Name)
	}
	tel, err := telemetry.Setup(ctx, o.Name, o.Telemetry)
	if err != nil {
		return nil, err
	}
	c := &Core{Name: o.Name, Tel: tel, Log: tel.Logger, managedHealth: o.ManagedHealth}
	c.stopping, c.stop = context.WithCancel(context.Background())
	if c.Bus, err = bus.Connect(ctx, o.Bus, o.Name, tel); err != nil {
		c.Close()
		return nil, err
	}
	if o.DB != nil {
		if c.Pool, err = pgdb.Open(ctx, *o.DB, tel.TracerProvider); err != nil {
			c.Close()
			return nil, err
		}
		if err = pgdb.Migrate(ctx, c.Pool, o.Schema, o.Migrations); err != nil {
			c.Close()
			return nil, err
		}
	}
	if c.RPC, err = rpc.Listen(o.GRPCAddr, tel, rpc.Options{Unary: o.Unary, Stream: o.Stream, Public: o.PublicAPI}); err != nil {
		c.Close()
		return nil, err
	}
	if o.Telemetry.MetricsAddr != "" {
		if err = c.serveMetrics(o.Telemetry.MetricsAddr, o.Telemetry.Pprof); err != nil {
			c.Close()
			return nil, err
		}
	}
	c.SetServing(false)
	return c, nil
}

// serveMetrics listens on addr and serves the service's metrics at
// /metrics until Close: from Open on, so that a service still connecting
// to its SMSC or catching up is already observable. With profiles, Go's
// runtime profiles too, at /debug/pprof/.
func (c *Core) serveMetrics(addr string, profiles bool) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: metrics listener: %w", c.Name, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", c.Tel.Metrics)
	if profiles {
		HandleProfiles(mux)
	}
	c.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	c.metricsAddr = ln.Addr().String()
	go func() {
		if err := c.metrics.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.Log.Error("metrics server", "err", err)
		}
	}()
	return nil
}

// HandleProfiles serves Go's runtime profiles on mux at /debug/pprof/, as
// `go tool pprof` and `go tool trace` read them.
func HandleProfiles(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}

// MetricsAddr is the bound address of /metrics, empty when not served.
func (c *Core) MetricsAddr() string { return c.metricsAddr }

// Addr is the bound gRPC address.
func (c *Core) Addr() string { return c.RPC.Addr() }

// Stopping is cancelled when Close begins, before consumers stop: a
// handler waiting for something (a token, a start time) gives its event
// back instead of holding the shutdown.
func (c *Core) Stopping() context.Context { return c.stopping }

// Consume starts a durable consumer that Close stops before the bus is
// drained.
func (c *Core) Consume(ctx context.Context, spec bus.ConsumerSpec, h bus.Handler) (*bus.Consumer, error) {
	return c.consume(func() (*bus.Consumer, error) { return c.Bus.Consume(ctx, spec, h) })
}

// ConsumeBatch is Consume for a handler of batches (bus.ConsumeBatch).
func (c *Core) ConsumeBatch(ctx context.Context, spec bus.ConsumerSpec, size int, maxWait time.Duration, h bus.BatchHandler) (*bus.Consumer, error) {
	return c.consume(func() (*bus.Consumer, error) { return c.Bus.ConsumeBatch(ctx, spec, size, maxWait, h) })
}

func (c *Core) consume(start func() (*bus.Consumer, error)) (*bus.Consumer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("%s: consume after close", c.Name)
	}
	cons, err := start()
	if err != nil {
		return nil, err
	}
	c.consumers = append(c.consumers, cons)
	return cons, nil
}

// OnClose runs f at Close, after the consumers stopped and before the bus
// is drained (e.g. to end sessions or watchers that publish). Callbacks run
// in reverse order of registration.
func (c *Core) OnClose(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onClose = append(c.onClose, f)
}

// SetServing sets the health status of the service ("" and its name).
func (c *Core) SetServing(ok bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	c.RPC.Health.SetServingStatus("", st)
	c.RPC.Health.SetServingStatus(c.Name, st)
}

// Serve marks the service SERVING and serves gRPC until ctx is done. The
// service starts its consumers before calling it.
func (c *Core) Serve(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("%s: serve after close", c.Name)
	}
	c.mu.Unlock()
	if !c.managedHealth {
		c.SetServing(true)
	}
	c.Log.InfoContext(ctx, "serving", "grpc_addr", c.Addr())
	errc := make(chan error, 1)
	go func() { errc <- c.RPC.Serve() }()
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("grpc server: %w", err)
		}
		// Stopped by Close: return when ctx is done, as promised.
		<-ctx.Done()
		return nil
	}
}

// Close shuts down in order: Stopping cancelled, gRPC (calls in flight
// finish), consumers (the
// event in hand is finished and acked), OnClose callbacks, bus drain,
// database pool, metrics server, telemetry flush. It is safe to call more than once.
func (c *Core) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	consumers, onClose := c.consumers, c.onClose
	c.mu.Unlock()
	c.stop()

	if c.RPC != nil {
		c.RPC.Stop(5 * time.Second)
	}
	for _, cons := range consumers {
		cons.Stop()
	}
	for i := len(onClose) - 1; i >= 0; i-- {
		onClose[i]()
	}
	var errs []error
	if c.Bus != nil {
		errs = append(errs, c.Bus.Close())
	}
	if c.Pool != nil {
		c.Pool.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c.metrics != nil {
		errs = append(errs, c.metrics.Shutdown(ctx))
	}
	errs = append(errs, c.Tel.Shutdown(ctx))
	return errors.Join(errs...)
}

// Starting is what a Serve whose start failed with err returns: nil when
// ctx ended meanwhile (a step cut by the stop, a stop rather than a
// failure), err otherwise.
func Starting(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Run is New, Serve and Close for a service of any shape.
func Run[S interface {
	Serve(context.Context) error
	Close() error
}](ctx context.Context, s S, err error) error {
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Serve(ctx)
}
