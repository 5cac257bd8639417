package rpc

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"pushsms.io/lib/telemetry"
)

// A caller inside the platform continues its trace in the server; a
// partner calling a public server does not: the call starts a trace of the
// server's own, linked to the partner's, so that a partner sending
// "sampled" on every call cannot have every message traced.
func TestPublicServerStartsItsOwnTrace(t *testing.T) {
	remote := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0xaa, 1}, SpanID: trace.SpanID{0xbb, 1}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	for _, tt := range []struct {
		name      string
		public    bool
		sameTrace bool
	}{
		{"internal", false, true},
		{"public", true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			// The server records every trace, so that its span is seen.
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec),
				sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
			tel, err := telemetry.Setup(context.Background(), "rpc-test", telemetry.Config{LogLevel: "error", LogFormat: "text", TracerProvider: tp})
			if err != nil {
				t.Fatal(err)
			}
			srv, err := Listen("127.0.0.1:0", tel, Options{Public: tt.public})
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve()
			defer srv.Stop(0)
			conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			carrier := propagation.MapCarrier{}
			propagation.TraceContext{}.Inject(trace.ContextWithRemoteSpanContext(context.Background(), remote), carrier)
			ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", carrier.Get("traceparent"))
			if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
				t.Fatal(err)
			}
			spans := rec.Ended()
			if len(spans) != 1 {
				t.Fatalf("%d server spans, want 1", len(spans))
			}
			s := spans[0]
			if got := s.SpanContext().TraceID() == remote.TraceID(); got != tt.sameTrace {
				t.Errorf("server span in the caller's trace: %v, want %v", got, tt.sameTrace)
			}
			if tt.public {
				links := s.Links()
				if len(links) != 1 || links[0].SpanContext.TraceID() != remote.TraceID() {
					t.Errorf("public server span links %v, want one to the caller's span", links)
				}
			}
		})
	}
}
