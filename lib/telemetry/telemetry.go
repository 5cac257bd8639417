// Package telemetry builds a service's logger, tracer provider and meter
// provider once, so that every service logs, traces and counts the same
// way. Nothing here is global: the result is passed to whatever needs it,
// and each service's metrics live in its own Prometheus registry (so that
// the one-machine mode can run five services in one process).
package telemetry

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Config selects log level and format and where traces go.
type Config struct {
	LogLevel  string
	LogFormat string
	// OTLPEndpoint, when set, exports traces over OTLP/gRPC (e.g.
	// http://jaeger-collector:4317). Read from OTEL_EXPORTER_OTLP_ENDPOINT.
	OTLPEndpoint string
	// TraceRatio is the share of new traces recorded and exported, 0 to 1.
	// The decision is taken once, where a message enters (ingest), and
	// every later span of the message follows its parent's: a message is
	// traced through the five services or not at all. At thousands of
	// SMS/s a full trace of every segment costs the platform a few per cent
	// of its CPU and Jaeger far more; 1 suits a test or a small platform.
	// Without an exporter no trace starts here (span contexts, hence the
	// trace ids in the logs, are kept); a sampled parent is still followed.
	TraceRatio float64
	// MetricsAddr serves the service's metrics in Prometheus format at
	// /metrics (e.g. ":9464"); empty: not served.
	MetricsAddr string
	// Pprof also serves Go's runtime profiles at /debug/pprof/ on
	// MetricsAddr (the CPU profile of one service among the others, for
	// loadbench's figures). Off by default: a profile costs CPU while it
	// runs and shows the process's internals to whoever reaches the port.
	Pprof bool

	// Set by tests and by the one-machine mode to share one provider or
	// logger between in-process services; never from flags.
	TracerProvider trace.TracerProvider `json:"-"`
	Logger         *slog.Logger         `json:"-"`
}

// DefaultMetricsAddr is the port OpenTelemetry's Prometheus exporters
// use by convention; each pod has its own address.
const DefaultMetricsAddr = ":9464"

// DefaultConfig logs JSON at info level, exports no traces (every trace
// when an endpoint is set) and serves metrics on DefaultMetricsAddr.
func DefaultConfig() Config {
	return Config{LogLevel: "info", LogFormat: "json", MetricsAddr: DefaultMetricsAddr, TraceRatio: 1}
}

// RegisterFlags adds -log-level, -log-format, -otel-exporter-otlp-endpoint,
// -trace-ratio, -metrics-addr and -pprof.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: json or text")
	fs.StringVar(&c.OTLPEndpoint, "otel-exporter-otlp-endpoint", c.OTLPEndpoint, "OTLP/gRPC endpoint for traces (e.g. http://localhost:4317); empty: no export")
	fs.Float64Var(&c.TraceRatio, "trace-ratio", c.TraceRatio, "share of messages traced (0 to 1; the decision is taken where a message enters and followed by every service)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "listen address of the Prometheus metrics (GET /metrics); empty: not served")
	fs.BoolVar(&c.Pprof, "pprof", c.Pprof, "also serve Go's profiles at /debug/pprof/ on the metrics address")
}

// Validate checks the trace ratio.
func (c Config) Validate() error {
	if !(c.TraceRatio >= 0 && c.TraceRatio <= 1) {
		return fmt.Errorf("trace-ratio %v: want 0 to 1", c.TraceRatio)
	}
	return nil
}

// sampler records a share cfg.TraceRatio of new traces and follows the
// parent's decision otherwise. Without an exporter it starts no trace of
// its own, but still follows a sampled parent: a hop that exports nothing
// must not cut the trace for the services after it.
func (c Config) sampler() sdktrace.Sampler {
	if c.OTLPEndpoint == "" {
		return sdktrace.ParentBased(sdktrace.NeverSample())
	}
	return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.TraceRatio))
}

// Telemetry is what a service logs, traces and counts with.
type Telemetry struct {
	Logger         *slog.Logger
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
	// MeterProvider records into the service's own registry, which
	// Metrics serves.
	MeterProvider metric.MeterProvider
	// Metrics serves the registry in Prometheus text format.
	Metrics http.Handler
	// Registerer is the same registry, for the hot-path instruments that
	// use client_golang directly (lib/bus's consumer metrics).
	Registerer prometheus.Registerer
	shutdown   []func(context.Context) error
}

// Tracer returns the tracer a component of the service uses.
func (t *Telemetry) Tracer(name string) trace.Tracer { return t.TracerProvider.Tracer(name) }

// Meter returns the meter a component of the service uses.
func (t *Telemetry) Meter(name string) metric.Meter { return t.MeterProvider.Meter(name) }

// Shutdown flushes pending spans and stops the meter provider.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}

// Setup builds the logger and tracer provider of service.
func Setup(ctx context.Context, service string, cfg Config) (*Telemetry, error) {
	t := &Telemetry{
		Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
	t.Logger = cfg.Logger
	if t.Logger == nil {
		l, err := NewLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat)
		if err != nil {
			return nil, err
		}
		t.Logger = l
	}
	t.Logger = t.Logger.With("service", service)

	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(SchemaURL, semconv.ServiceName(service)))
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	// A registry of the service's own: no collision between the
	// services of the one-machine mode, nothing global.
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
	t.MeterProvider = mp
	t.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	t.Registerer = reg
	t.shutdown = append(t.shutdown, mp.Shutdown)

	t.TracerProvider = cfg.TracerProvider
	if t.TracerProvider == nil {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithSampler(cfg.sampler())}
		if cfg.OTLPEndpoint != "" {
			exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(cfg.OTLPEndpoint))
			if err != nil {
				return nil, fmt.Errorf("otlp exporter: %w", err)
			}
			opts = append(opts, sdktrace.WithBatcher(exp))
		}
		tp := sdktrace.NewTracerProvider(opts...)
		t.TracerProvider = tp
		t.shutdown = append(t.shutdown, tp.Shutdown)
	}
	return t, nil
}

// NewLogger builds the JSON (or text) logger every service uses. Records
// logged with a context carry its trace_id and span_id.
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	switch strings.ToLower(format) {
	case "json", "":
		h = slog.NewJSONHandler(w, opts)
	case "text":
		h = slog.NewTextHandler(w, opts)
	default:
		return nil, errors.New("telemetry: log format must be json or text")
	}
	return slog.New(traceHandler{h}), nil
}

// traceHandler adds the trace and span ids of the record's context, so that
// a log line leads to its trace in Jaeger.
type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(as)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}

// ContextWithTraceparent returns ctx whose span is the remote one that a
// W3C traceparent names (a trace carried in an event's field rather than
// its headers, such as MessageAccepted.traceparent), in place of any span
// ctx holds: without one if traceparent is empty or malformed. A
// traceparent is always in the W3C format, whatever the propagators.
func ContextWithTraceparent(ctx context.Context, traceparent string) context.Context {
	ctx = trace.ContextWithSpanContext(ctx, trace.SpanContext{})
	if traceparent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, &traceparentCarrier{value: traceparent})
}

// Traceparent is the W3C traceparent of ctx's span, "" without a valid
// one: the form in which a trace goes into an event's field or a stored
// record, for ContextWithTraceparent to continue it.
func Traceparent(ctx context.Context) string {
	var c traceparentCarrier
	propagation.TraceContext{}.Inject(ctx, &c)
	return c.value
}

// traceparentCarrier carries the traceparent alone: a string where a
// propagation.MapCarrier would allocate a map, which smsc-link would then
// keep for each of the last 100 000 submits it can match a report to.
type traceparentCarrier struct{ value string }

const traceparentKey = "traceparent"

func (c *traceparentCarrier) Get(key string) string {
	if key == traceparentKey {
		return c.value
	}
	return ""
}

func (c *traceparentCarrier) Set(key, value string) {
	if key == traceparentKey {
		c.value = value
	}
}

func (c *traceparentCarrier) Keys() []string { return []string{traceparentKey} }
