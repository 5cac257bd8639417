package throttle

import (
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/rate"
)

func TestParseRates(t *testing.T) {
	tests := []struct {
		in      string
		want    RateTable
		wantErr bool
	}{
		{in: "", want: RateTable{}},
		{in: "  ", want: RateTable{}},
		{in: "36000=20", want: RateTable{"36000": 20}},
		{in: "36000=20,36001=50", want: RateTable{"36000": 20, "36001": 50}},
		{in: " 36000 = 20 , 36001=150 ", want: RateTable{"36000": 20, "36001": 150}},
		{in: "36000", wantErr: true},
		{in: "36000=", wantErr: true},
		{in: "=20", wantErr: true},
		{in: "36000=0", wantErr: true},
		{in: "36000=-5", wantErr: true},
		{in: "36000=1001", wantErr: true},
		{in: "36000=ten", wantErr: true},
		{in: "36.00=10", wantErr: true},
		{in: "36000=10,36000=20", wantErr: true},
		{in: "36000=10,", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseRates(tt.in)
		if tt.wantErr {
			if !errors.Is(err, ErrRates) {
				t.Errorf("ParseRates(%q): got %v, %v, want an ErrRates", tt.in, got, err)
			}
			continue
		}
		if err != nil || !maps.Equal(got, tt.want) {
			t.Errorf("ParseRates(%q): got %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestStaticRates(t *testing.T) {
	r := StaticRates{Default: 10, Overrides: RateTable{"36000": 50}}
	tests := []struct {
		code string
		want int
	}{{"36000", 50}, {"36001", 10}, {"", 10}}
	for _, tt := range tests {
		if got := r.Rate(tt.code); got != tt.want {
			t.Errorf("Rate(%q): got %d, want %d", tt.code, got, tt.want)
		}
	}
}

// FuzzParseRates: the -rates value (or RATES from the environment) is
// typed by people. Whatever parses prints back to the same table.
func FuzzParseRates(f *testing.F) {
	for _, s := range []string{"", "36000=20", "36000=20,36001=50", " 36000 = 20 ", "36000=", "a=b,c", "36000=10,36000=10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseRates(s)
		if err != nil {
			return
		}
		again, err := ParseRates(got.String())
		if err != nil {
			t.Fatalf("ParseRates(%q) printed %q, which does not parse: %v", s, got.String(), err)
		}
		if !maps.Equal(got, again) {
			t.Fatalf("ParseRates(%q) = %v, printed and parsed again = %v", s, got, again)
		}
		for code, r := range got {
			if !isShortCode(code) || r < 1 || r > MaxRate {
				t.Fatalf("ParseRates(%q) accepted %s=%d", s, code, r)
			}
		}
	})
}

// A rate written in the SHORT_CODES bucket applies to a lane from its next
// release, without a restart: the lane asks its RateSource every time.
func TestRateFromBucketAppliesWithoutRestart(t *testing.T) {
	srv := bustest.Start(t)
	b := bustest.Connect(t, srv)
	ctx := t.Context()
	tbl, err := rate.WatchTable(ctx, b, 10, RateTable{"36001": 20}, discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tbl.Stop)
	l := newLane("36000", tbl, 0, time.Hour, allRunning, t0)
	tk := newTicket(classBulk, "", 1, 1000)
	l.admit(tk, t0)
	now := t0
	releasesIn := func(d time.Duration) int {
		end, n := now.Add(d), 0
		for now.Before(end) {
			wait, progressed := l.step(now)
			if !progressed {
				now = now.Add(min(wait, end.Sub(now)))
				continue
			}
			<-tk.grant
			l.request(tk)
			n++
		}
		return n
	}
	if got := releasesIn(2 * time.Second); got < 19 || got > 20 {
		t.Fatalf("default rate: %d releases in 2s, want 20", got)
	}
	if err := rate.PutRate(ctx, b, "36000", 50); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 5*time.Second, func() error {
		if r := tbl.Rate("36000"); r != 50 {
			return fmt.Errorf("rate %d, want 50", r)
		}
		return nil
	})
	if got := releasesIn(2 * time.Second); got < 99 || got > 100 {
		t.Errorf("after the bucket said 50: %d releases in 2s, want 100", got)
	}
	if err := rate.PutRate(ctx, b, "36000", 0); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 5*time.Second, func() error {
		if r := tbl.Rate("36000"); r != 0 {
			return fmt.Errorf("rate %d, want 0", r)
		}
		return nil
	})
	if got := releasesIn(2 * time.Second); got != 0 {
		t.Errorf("held by a 0 rate: %d releases in 2s", got)
	}
}
