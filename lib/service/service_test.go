package service_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/service"
	"pushsms.io/lib/telemetry"
)

func open(t *testing.T, managed bool) *service.Core {
	t.Helper()
	srv := bustest.Start(t)
	cfg := service.DefaultConfig("127.0.0.1:0")
	cfg.Bus.URL = srv.URL()
	cfg.Telemetry = telemetry.Config{LogLevel: "error", LogFormat: "text"}
	c, err := service.Open(context.Background(), service.Options{Name: "test", Config: cfg, ManagedHealth: managed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func health(t *testing.T, addr, svc string) func() (healthpb.HealthCheckResponse_ServingStatus, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return func() (healthpb.HealthCheckResponse_ServingStatus, error) {
		resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		return resp.GetStatus(), err
	}
}

// A service is NOT_SERVING until its consumers run, then SERVING, for
// Kubernetes probes and for the load balancer; a service that manages its
// own health (smsc-link, up only with its SMSC sessions) decides alone.
func TestHealthFollowsServe(t *testing.T) {
	for _, managed := range []bool{false, true} {
		t.Run(fmt.Sprint("managed=", managed), func(t *testing.T) {
			c := open(t, managed)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go c.Serve(ctx)
			check := health(t, c.Addr(), "test")
			want := healthpb.HealthCheckResponse_SERVING
			if managed {
				want = healthpb.HealthCheckResponse_NOT_SERVING
			}
			bustest.Eventually(t, 5*time.Second, func() error {
				st, err := check()
				if err != nil || st != want {
					return fmt.Errorf("status %v (%v), want %v", st, err, want)
				}
				return nil
			})
			if managed {
				c.SetServing(true)
				if st, err := check(); err != nil || st != healthpb.HealthCheckResponse_SERVING {
					t.Errorf("after SetServing(true): %v %v", st, err)
				}
			}
		})
	}
}

// Close stops the consumers before the bus drains, runs OnClose callbacks
// in reverse order, and may be called twice.
func TestCloseOrder(t *testing.T) {
	c := open(t, false)
	var order []string
	c.OnClose(func() { order = append(order, "first registered") })
	c.OnClose(func() { order = append(order, "second registered") })
	cons, err := c.Consume(context.Background(), bus.ConsumerSpec{Stream: bus.StreamMO, Durable: "t"}, func(context.Context, *bus.Msg) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if fmt.Sprint(order) != "[second registered first registered]" {
		t.Errorf("OnClose order %v", order)
	}
	if _, err := cons.Pending(context.Background()); err == nil {
		t.Error("consumer still answers after Close: the bus was not drained")
	}
	if _, err := c.Consume(context.Background(), bus.ConsumerSpec{Stream: bus.StreamMO, Durable: "u"}, nil); err == nil {
		t.Error("Consume after Close: got no error")
	}
}

// The metrics port serves Go's profiles only when asked to: they cost CPU
// and show the process's internals.
func TestProfilesOnlyWhenAsked(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprint("pprof=", on), func(t *testing.T) {
			srv := bustest.Start(t)
			cfg := service.DefaultConfig("127.0.0.1:0")
			cfg.Bus.URL = srv.URL()
			cfg.Telemetry = telemetry.Config{LogLevel: "error", LogFormat: "text", MetricsAddr: "127.0.0.1:0", Pprof: on}
			c, err := service.Open(context.Background(), service.Options{Name: "test", Config: cfg})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for path, want := range map[string]int{"/metrics": http.StatusOK, "/debug/pprof/goroutine?debug=1": http.StatusNotFound} {
				if on && path != "/metrics" {
					want = http.StatusOK
				}
				resp, err := http.Get("http://" + c.MetricsAddr() + path)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
				}
			}
		})
	}
}

// A start cut by the stop is a stop; any other failure to start is one.
func TestStarting(t *testing.T) {
	failed := errors.New("consumer: context canceled")
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want error
	}{
		{"stopped while starting", stopped, failed, nil},
		{"failed while running", context.Background(), failed, failed},
		{"started", context.Background(), nil, nil},
	}
	for _, tt := range tests {
		if got := service.Starting(tt.ctx, tt.err); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
