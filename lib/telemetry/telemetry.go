// Package telemetry builds a service's logger and tracer provider once, so
// that every service logs and traces the same way. Nothing here is global:
// the result is passed to whatever needs it.
package telemetry

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
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

	// Set by tests and by the one-machine mode to share one provider or
	// logger between in-process services; never from flags.
	TracerProvider trace.TracerProvider `json:"-"`
	Logger         *slog.Logger         `json:"-"`
}

// DefaultConfig logs JSON at info level and exports no traces.
func DefaultConfig() Config { return Config{LogLevel: "info", LogFormat: "json"} }

// RegisterFlags adds -log-level, -log-format and -otel-exporter-otlp-endpoint.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: json or text")
	fs.StringVar(&c.OTLPEndpoint, "otel-exporter-otlp-endpoint", c.OTLPEndpoint, "OTLP/gRPC endpoint for traces (e.g. http://localhost:4317); empty: no export")
}

// Telemetry is what a service logs and traces with.
type Telemetry struct {
	Logger         *slog.Logger
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
	shutdown       func(context.Context) error
}

// Tracer returns the tracer a component of the service uses.
func (t *Telemetry) Tracer(name string) trace.Tracer { return t.TracerProvider.Tracer(name) }

// Shutdown flushes pending spans.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
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

	t.TracerProvider = cfg.TracerProvider
	if t.TracerProvider == nil {
		res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(SchemaURL, semconv.ServiceName(service)))
		if err != nil {
			return nil, fmt.Errorf("telemetry resource: %w", err)
		}
		opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
		if cfg.OTLPEndpoint != "" {
			exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(cfg.OTLPEndpoint))
			if err != nil {
				return nil, fmt.Errorf("otlp exporter: %w", err)
			}
			opts = append(opts, sdktrace.WithBatcher(exp))
		}
		tp := sdktrace.NewTracerProvider(opts...)
		t.TracerProvider = tp
		t.shutdown = tp.Shutdown
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
