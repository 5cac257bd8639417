package rate_test

import (
	"errors"
	"flag"
	"maps"
	"testing"
	"time"

	"pushsms.io/lib/rate"
)

func TestParseOverrides(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want rate.Overrides
		err  bool
	}{
		{"", rate.Overrides{}, false},
		{"36000=20", rate.Overrides{"36000": 20}, false},
		{" 36000 = 20 , 36001=50 ", rate.Overrides{"36000": 20, "36001": 50}, false},
		{"36000=1000", rate.Overrides{"36000": 1000}, false},
		{"36000=1001", nil, true},
		{"36000=0", nil, true},
		{"36000", nil, true},
		{"abc=10", nil, true},
		{"36000=10,36000=20", nil, true},
		{"36000=x", nil, true},
		{"36000=10,", nil, true},
	} {
		got, err := rate.ParseOverrides(tc.in)
		if tc.err {
			if !errors.Is(err, rate.ErrRate) {
				t.Errorf("ParseOverrides(%q) err = %v, want ErrRate", tc.in, err)
			}
			continue
		}
		if err != nil || !maps.Equal(got, tc.want) {
			t.Errorf("ParseOverrides(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestOverridesFlag(t *testing.T) {
	var o rate.Overrides
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Var(&o, "rates", "")
	if err := fs.Parse([]string{"-rates", "36001=50,36000=20"}); err != nil {
		t.Fatal(err)
	}
	if got := o.String(); got != "36000=20,36001=50" {
		t.Errorf("String = %q", got)
	}
}

func TestPacing(t *testing.T) {
	for _, tc := range []struct {
		rate   int
		slack  time.Duration
		period time.Duration
	}{
		{10, 20 * time.Millisecond, 102 * time.Millisecond},
		{100, 0, 10 * time.Millisecond},
		{150, 20 * time.Millisecond, 6800 * time.Microsecond},
	} {
		if p := rate.Pacing(tc.rate, tc.slack); p != tc.period {
			t.Errorf("Pacing(%d, %v) = %v, want %v", tc.rate, tc.slack, p, tc.period)
		}
	}
}

// FuzzParseOverrides: the flag is outside input; whatever it accepts must
// print back to itself and hold only valid rates.
func FuzzParseOverrides(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		o, err := rate.ParseOverrides(s)
		if err != nil {
			return
		}
		for c, r := range o {
			if !rate.ValidShortCode(c) || r < 1 || r > rate.MaxRate {
				t.Fatalf("accepted %s=%d", c, r)
			}
		}
		again, err := rate.ParseOverrides(o.String())
		if err != nil || !maps.Equal(o, again) {
			t.Fatalf("round trip of %q: %v, %v", s, again, err)
		}
	})
}
