package rate_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/rate"
)

func TestTable(t *testing.T) {
	b := bustest.Connect(t, bustest.Start(t))
	ctx := context.Background()
	// A value already in the bucket is there when WatchTable returns.
	if err := rate.PutRate(ctx, b, "36000", 50); err != nil {
		t.Fatal(err)
	}
	tab, err := rate.WatchTable(ctx, b, 10, map[string]int{"36000": 20, "36001": 100}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Stop()

	for _, tc := range []struct {
		code string
		want int
	}{
		{"36000", 50},  // bucket over override
		{"36001", 100}, // override over default
		{"36002", 10},  // default
	} {
		if got := tab.Rate(tc.code); got != tc.want {
			t.Errorf("at start: Rate(%s) = %d, want %d", tc.code, got, tc.want)
		}
	}

	kv, err := b.JS.KeyValue(ctx, bus.BucketShortCodes)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name   string
		change func() error
		code   string
		want   int
	}{
		{"put", func() error { return rate.PutRate(ctx, b, "36002", 150) }, "36002", 150},
		{"hold", func() error { return rate.PutRate(ctx, b, "36001", 0) }, "36001", 0},
		{"delete falls back to override", func() error { return kv.Delete(ctx, "36000.rate") }, "36000", 20},
		{"garbage falls back to default", func() error { _, err := kv.PutString(ctx, "36002.rate", "fast"); return err }, "36002", 10},
		{"other keys ignored", func() error { _, err := kv.PutString(ctx, "36003.control", `{"state":"paused"}`); return err }, "36003", 10},
	}
	for _, s := range steps {
		if err := s.change(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		// The contract: a change is seen within a second.
		bustest.Eventually(t, time.Second, func() error {
			if got := tab.Rate(s.code); got != s.want {
				return fmt.Errorf("%s: Rate(%s) = %d, want %d", s.name, s.code, got, s.want)
			}
			return nil
		})
	}
}

func TestWatchTableRejectsBadConfig(t *testing.T) {
	b := bustest.Connect(t, bustest.Start(t))
	for _, tc := range []struct {
		name string
		def  int
		ov   map[string]int
	}{
		{"zero default", 0, nil},
		{"default too high", rate.MaxRate + 1, nil},
		{"override zero", 10, map[string]int{"36000": 0}},
		{"override not digits", 10, map[string]int{"36a": 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rate.WatchTable(context.Background(), b, tc.def, tc.ov, slog.New(slog.DiscardHandler))
			if !errors.Is(err, rate.ErrRate) {
				t.Fatalf("err = %v, want ErrRate", err)
			}
		})
	}
}

func TestPutRateRejects(t *testing.T) {
	b := bustest.Connect(t, bustest.Start(t))
	for _, tc := range []struct {
		code string
		r    int
	}{{"36000", -1}, {"36000", rate.MaxRate + 1}, {"", 10}, {"36 00", 10}} {
		if err := rate.PutRate(context.Background(), b, tc.code, tc.r); !errors.Is(err, rate.ErrRate) {
			t.Errorf("PutRate(%q, %d) = %v, want ErrRate", tc.code, tc.r, err)
		}
	}
}
