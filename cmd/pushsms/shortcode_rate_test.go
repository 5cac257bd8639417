package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/rate"
)

// The aggregator sets a short code's contracted rate; a replica's rate
// table (as the throttle and smsc-link hold it) follows without a restart.
// A rate that is not a number, or out of range, changes nothing.
func TestShortCodeRate(t *testing.T) {
	ns := bustest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	table, err := rate.WatchTable(ctx, bustest.Connect(t, ns), 10, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer table.Stop()
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		c := &cli{out: &out, err: &errOut, getenv: func(k string) string {
			if k == "NATS_URL" {
				return ns.URL()
			}
			return ""
		}}
		err := c.runShortCodeRate(ctx, args)
		return out.String(), err
	}
	if got := table.Rate("36002"); got != 10 {
		t.Fatalf("before: rate %d, want the default 10", got)
	}
	out, err := run("36002", "50")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "36002: 50 SMS/s") {
		t.Errorf("printed %q", out)
	}
	bustest.Eventually(t, 5*time.Second, func() error {
		if got := table.Rate("36002"); got != 50 {
			return fmt.Errorf("rate %d, want 50", got)
		}
		return nil
	})
	for _, args := range [][]string{{"36002", "fast"}, {"36002", "5000"}, {"36-02", "20"}, {"36002"}} {
		if _, err := run(args...); err == nil {
			t.Errorf("shortcode rate %v: got nil error", args)
		}
	}
	if got := table.Rate("36002"); got != 50 {
		t.Errorf("after refused commands: rate %d, want 50 still", got)
	}
}
