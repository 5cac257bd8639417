package smsclink

import (
	"context"
	"fmt"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/telemetry"
)

func TestRefCache(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	ref := func(id string) segmentRef { return segmentRef{MessageID: id, Index: 1, Count: 1} }
	type put struct {
		key, id string
		at      time.Duration // after t0
	}
	tests := []struct {
		name   string
		max    int
		keep   time.Duration // 0: an hour
		maxAge time.Duration
		puts   []put
		at     time.Duration     // lookups at t0 + at
		want   map[string]string // key: message id, "" for a miss
	}{
		{
			name: "off", max: 0, maxAge: time.Hour,
			puts: []put{{"k1", "m1", 0}},
			want: map[string]string{"k1": ""},
		},
		{
			name: "first ref stays", max: 10, maxAge: time.Hour,
			puts: []put{{"k1", "m1", 0}, {"k1", "m2", time.Second}},
			at:   2 * time.Second,
			want: map[string]string{"k1": "m1"},
		},
		{
			name: "oldest evicted first", max: 2, maxAge: time.Hour,
			puts: []put{{"k1", "m1", 0}, {"k2", "m2", 0}, {"k3", "m3", 0}, {"k4", "m4", 0}},
			want: map[string]string{"k1": "", "k2": "", "k3": "m3", "k4": "m4"},
		},
		{
			name: "read many times, still evicted in order", max: 2, maxAge: time.Hour,
			puts: []put{{"k1", "m1", 0}, {"k1", "m1", 0}, {"k2", "m2", 0}, {"k3", "m3", 0}},
			want: map[string]string{"k1": "", "k2": "m2", "k3": "m3"},
		},
		{
			name: "too old", max: 10, maxAge: time.Minute,
			puts: []put{{"k1", "m1", 0}, {"k2", "m2", 30 * time.Second}},
			at:   time.Minute,
			want: map[string]string{"k1": "", "k2": "m2"},
		},
		{
			name: "kept no longer than keep", max: 10, keep: time.Minute, maxAge: time.Hour,
			puts: []put{{"k1", "m1", 0}, {"k2", "m2", 30 * time.Second}, {"k3", "m3", 61 * time.Second}},
			at:   61 * time.Second,
			want: map[string]string{"k1": "", "k2": "m2", "k3": "m3"},
		},
		{
			name: "written again after its age, then evicted once", max: 2, maxAge: time.Minute,
			puts: []put{{"k1", "m1", 0}, {"k1", "m2", 2 * time.Minute}, {"k2", "m3", 2 * time.Minute}, {"k3", "m4", 2 * time.Minute}},
			at:   2 * time.Minute,
			want: map[string]string{"k1": "", "k2": "m3", "k3": "m4"},
		},
		{
			name: "written again after its age", max: 10, maxAge: time.Minute,
			puts: []put{{"k1", "m1", 0}, {"k1", "m2", 2 * time.Minute}},
			at:   2 * time.Minute,
			want: map[string]string{"k1": "m2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keep := tt.keep
			if keep == 0 {
				keep = time.Hour
			}
			c := newRefCache(tt.max, keep, tt.maxAge)
			for _, p := range tt.puts {
				c.put(p.key, ref(p.id), t0.Add(p.at))
			}
			for key, want := range tt.want {
				got, ok := c.get(key, t0.Add(tt.at))
				if ok != (want != "") || got.MessageID != want {
					t.Errorf("get(%s) = %q, %v; want %q", key, got.MessageID, ok, want)
				}
			}
			if n := c.len(); n > tt.max {
				t.Errorf("%d entries, want at most %d", n, tt.max)
			}
		})
	}
}

// The ring keeps its bound over many turns.
func TestRefCacheBound(t *testing.T) {
	c := newRefCache(100, time.Hour, time.Hour)
	now := time.Now()
	for i := range 1000 {
		c.put(fmt.Sprintf("k%d", i), segmentRef{MessageID: fmt.Sprint(i)}, now)
	}
	if n := c.len(); n != 100 {
		t.Errorf("%d entries, want 100", n)
	}
	for _, i := range []int{0, 899} {
		if _, ok := c.get(fmt.Sprintf("k%d", i), now); ok {
			t.Errorf("k%d still cached", i)
		}
	}
	for _, i := range []int{900, 999} {
		if got, ok := c.get(fmt.Sprintf("k%d", i), now); !ok || got.MessageID != fmt.Sprint(i) {
			t.Errorf("k%d: got %q, %v", i, got.MessageID, ok)
		}
	}
}

// BenchmarkLookupRef is a DR's lookup of the segment it reports on, from
// the bucket (a direct get and a JSON decode) and from the cache of the
// process that stored it. cpu-µs/op counts the embedded server's side too.
func BenchmarkLookupRef(b *testing.B) {
	for _, bc := range []struct {
		name  string
		cache int
	}{{"bucket", 0}, {"cache", DefaultRefCache}} {
		b.Run(bc.name, func(b *testing.B) {
			srv := bustest.Start(b)
			cfg := DefaultConfig()
			cfg.Bus.URL = srv.URL()
			cfg.GRPCAddr, cfg.Telemetry.MetricsAddr = "127.0.0.1:0", "127.0.0.1:0"
			cfg.SMSCAddr = "127.0.0.1:1"
			cfg.Accounts = AccountList{{ShortCode: "36000", Password: "p"}}
			cfg.Telemetry = telemetry.Config{Logger: slog.New(slog.DiscardHandler)}
			cfg.RefCache = bc.cache
			s, err := New(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			key := corrKey("+33612345678", "281126120000")
			ref := segmentRef{MessageID: "0190a8e2-0000-7000-8000-000000000001", TenantID: "acme", CampaignID: "camp-1", ShortCode: "36000", Index: 1, Count: 1,
				ValidUntil: time.Now().Add(48 * time.Hour), Trace: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
			if _, err := s.storeRef(ctx, key, ref); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			cpu0 := processCPU(b)
			for b.Loop() {
				if got, found, err := s.lookupRef(ctx, key); err != nil || !found || got.MessageID != ref.MessageID {
					b.Fatalf("lookup: %+v, %v, %v", got, found, err)
				}
			}
			b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
		})
	}
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
