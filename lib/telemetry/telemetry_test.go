package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func TestLoggerCarriesTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	log.InfoContext(ctx, "campaign accepted", "campaign", "c1")
	span.End()

	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("log line is not JSON: %v: %s", err, buf.String())
	}
	if got, want := rec["trace_id"], span.SpanContext().TraceID().String(); got != want {
		t.Errorf("trace_id = %v, want %v", got, want)
	}
}

func TestSetupRejectsBadLevel(t *testing.T) {
	if _, err := Setup(context.Background(), "x", Config{LogLevel: "loud", LogFormat: "json"}); err == nil {
		t.Fatal("got nil error for log level 'loud'")
	}
	tel, err := Setup(context.Background(), "x", DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestTraceRatio(t *testing.T) {
	ctx := context.Background()
	sampledParent := trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled, Remote: true,
	}))
	tests := []struct {
		name     string
		cfg      Config
		parent   context.Context
		recorded bool
	}{
		{"no exporter: nothing recorded", Config{TraceRatio: 1}, ctx, false},
		// The services after this one export: the trace goes on.
		{"no exporter, sampled parent: followed", Config{TraceRatio: 1}, sampledParent, true},
		{"every trace", Config{TraceRatio: 1, OTLPEndpoint: "http://127.0.0.1:1"}, ctx, true},
		{"no new trace", Config{TraceRatio: 0, OTLPEndpoint: "http://127.0.0.1:1"}, ctx, false},
		{"a traced message stays traced", Config{TraceRatio: 0, OTLPEndpoint: "http://127.0.0.1:1"}, sampledParent, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := NewLogger(&buf, "info", "json")
			if err != nil {
				t.Fatal(err)
			}
			tt.cfg.Logger = log
			tel, err := Setup(ctx, "x", tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				// The endpoint is unreachable: do not wait for the export.
				sctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
				defer cancel()
				_ = tel.Shutdown(sctx)
			}()
			sctx, span := tel.Tracer("test").Start(tt.parent, "op")
			defer span.End()
			if got := span.IsRecording(); got != tt.recorded {
				t.Errorf("recording = %v, want %v", got, tt.recorded)
			}
			// Logs lead to the trace whether or not it is recorded.
			log.InfoContext(sctx, "x")
			if want := span.SpanContext().TraceID().String(); !span.SpanContext().IsValid() || !bytes.Contains(buf.Bytes(), []byte(want)) {
				t.Errorf("log line %s: want trace_id %s", buf.String(), want)
			}
		})
	}
	if err := (Config{TraceRatio: 1.5}).Validate(); err == nil {
		t.Error("trace ratio 1.5: got nil error")
	}
}

// TestTraceparentRoundTrip: what Traceparent writes, ContextWithTraceparent
// continues: the same trace, the caller's span as the remote parent, the
// sampling decision kept; no span writes nothing.
func TestTraceparentRoundTrip(t *testing.T) {
	for _, flags := range []trace.TraceFlags{trace.FlagsSampled, 0} {
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0xab, 1}, SpanID: trace.SpanID{0xcd, 2}, TraceFlags: flags})
		tp := Traceparent(trace.ContextWithSpanContext(context.Background(), sc))
		want := "00-ab010000000000000000000000000000-cd02000000000000-0" + map[bool]string{true: "1", false: "0"}[flags.IsSampled()]
		if tp != want {
			t.Errorf("flags %v: Traceparent = %q, want %q", flags, tp, want)
		}
		got := trace.SpanContextFromContext(ContextWithTraceparent(context.Background(), tp))
		if got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() || got.IsSampled() != sc.IsSampled() || !got.IsRemote() {
			t.Errorf("flags %v: continued as %v, want %v as remote", flags, got, sc)
		}
	}
	if tp := Traceparent(context.Background()); tp != "" {
		t.Errorf("no span: Traceparent = %q, want empty", tp)
	}
}

// A trace carried in an event's field continues there, and only there: an
// empty or malformed one leaves no parent, not the caller's span.
func TestContextWithTraceparent(t *testing.T) {
	const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	caller := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled,
	}))
	tests := []struct {
		name, traceparent string
		wantTrace         string // "" for no span
	}{
		{"valid", valid, "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"empty", "", ""},
		{"malformed", "00-zz-00f067aa0ba902b7-01", ""},
	}
	for _, tt := range tests {
		sc := trace.SpanContextFromContext(ContextWithTraceparent(caller, tt.traceparent))
		got := ""
		if sc.IsValid() {
			got = sc.TraceID().String()
			if !sc.IsRemote() || sc.SpanID().String() != "00f067aa0ba902b7" {
				t.Errorf("%s: span %v remote %v, want 00f067aa0ba902b7, remote", tt.name, sc.SpanID(), sc.IsRemote())
			}
		}
		if got != tt.wantTrace {
			t.Errorf("%s: trace %q, want %q", tt.name, got, tt.wantTrace)
		}
	}
}
