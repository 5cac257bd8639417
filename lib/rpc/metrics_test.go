package rpc

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"pushsms.io/lib/telemetry"
	"pushsms.io/lib/telemetry/telemetrytest"
)

// TestStatsHandlerMetrics calls a real gRPC server over TCP and reads the
// RED series Prometheus would scrape: a count per method and status code,
// durations, and error_type only on a server-side failure.
func TestStatsHandlerMetrics(t *testing.T) {
	tel, err := telemetry.Setup(context.Background(), "rpc-test", telemetry.Config{LogLevel: "error", LogFormat: "text"})
	if err != nil {
		t.Fatal(err)
	}
	metrics := httptest.NewServer(tel.Metrics)
	defer metrics.Close()

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.StatsHandler(statsHandler(tel, false)),
		// Every other method fails as a broken handler would.
		grpc.UnknownServiceHandler(func(any, grpc.ServerStream) error { return status.Error(codes.Internal, "broken") }))
	hs := health.NewServer()
	hs.SetServingStatus("up", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(lis)
	defer srv.Stop()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	calls := []struct {
		service string
		want    codes.Code
	}{{"up", codes.OK}, {"up", codes.OK}, {"missing", codes.NotFound}}
	for _, c := range calls {
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: c.service})
		if got := status.Code(err); got != c.want {
			t.Fatalf("Check(%s): %v, want %v", c.service, got, c.want)
		}
	}
	if err := conn.Invoke(ctx, "/pushsms.test.v1.Broken/Call", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{}); status.Code(err) != codes.Internal {
		t.Fatalf("broken method: %v, want Internal", err)
	}

	const name = "rpc_server_call_duration_seconds_count"
	tests := []struct {
		method, code, errorType string
		want                    float64
	}{
		{"grpc.health.v1.Health/Check", "OK", "", 2},
		{"grpc.health.v1.Health/Check", "NOT_FOUND", "", 1},
		{"pushsms.test.v1.Broken/Call", "INTERNAL", "INTERNAL", 1},
	}
	// The server records after the client has its answer: poll.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := telemetrytest.ScrapeURL(t, metrics.URL)
		var errs []error
		for _, tt := range tests {
			f := s.Find(name, "rpc_method", tt.method, "rpc_response_status_code", tt.code)
			switch {
			case len(f) != 1:
				errs = append(errs, fmt.Errorf("%s %s: %d series", tt.method, tt.code, len(f)))
			case f[0].Value != tt.want || f[0].Labels["error_type"] != tt.errorType:
				errs = append(errs, fmt.Errorf("%s %s: count %v error_type %q, want %v %q", tt.method, tt.code, f[0].Value, f[0].Labels["error_type"], tt.want, tt.errorType))
			}
		}
		if len(errs) == 0 {
			if _, ok := s.Value("rpc_server_call_duration_seconds_bucket", "rpc_method", "grpc.health.v1.Health/Check", "rpc_response_status_code", "OK", "le", "+Inf"); !ok {
				t.Errorf("no duration buckets:\n%s", s.Text)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v\n%s", errs, s.Text)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
