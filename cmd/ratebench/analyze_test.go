package main

import (
	"strings"
	"testing"

	"pushsms.io/lib/smscsim"
)

func TestAnalyze(t *testing.T) {
	sec := func(s, submits, accepted int64) smscsim.SecondStats {
		return smscsim.SecondStats{Second: s, Submits: submits, Accepted: accepted}
	}
	tests := []struct {
		name      string
		rate      int
		secs      []smscsim.SecondStats
		viol      int64
		achieved  float64
		steady    int
		over      int
		minSecond int64
	}{
		{
			name:     "partial first and last seconds are left out",
			rate:     10,
			secs:     []smscsim.SecondStats{sec(100, 3, 3), sec(101, 10, 10), sec(102, 10, 10), sec(103, 4, 4)},
			achieved: 10, steady: 2, minSecond: 10,
		},
		{
			name:     "a second without traffic counts as zero",
			rate:     10,
			secs:     []smscsim.SecondStats{sec(100, 5, 5), sec(101, 10, 10), sec(103, 10, 10), sec(104, 1, 1)},
			achieved: 20.0 / 3, steady: 3, minSecond: 0,
		},
		{
			name:     "refused submits count against the second, not as achieved",
			rate:     10,
			secs:     []smscsim.SecondStats{sec(100, 5, 5), sec(101, 14, 10), sec(102, 10, 10), sec(103, 1, 1)},
			viol:     4,
			achieved: 10, steady: 2, over: 1, minSecond: 10,
		},
		{
			name: "too short to have a steady second",
			rate: 10,
			secs: []smscsim.SecondStats{sec(100, 5, 5), sec(101, 5, 5)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := analyze("36000", tt.rate, smscsim.AccountStats{PerSecond: tt.secs, Violations: tt.viol})
			if r.Achieved != tt.achieved || r.SteadySeconds != tt.steady || r.OverSeconds != tt.over || r.Violations != tt.viol {
				t.Errorf("achieved %.3f over %d s, %d over-rate s, %d violations; want %.3f over %d s, %d, %d",
					r.Achieved, r.SteadySeconds, r.OverSeconds, r.Violations, tt.achieved, tt.steady, tt.over, tt.viol)
			}
			if tt.steady > 0 && r.MinSecond != tt.minSecond {
				t.Errorf("min second %d, want %d", r.MinSecond, tt.minSecond)
			}
		})
	}
}

func TestSegmentText(t *testing.T) {
	// GSM 7-bit: 160 characters in one segment, 153 per part beyond; a
	// STOP mention of up to 30 characters must not add a segment.
	segments := func(chars int) int {
		if chars <= 160 {
			return 1
		}
		return (chars + 152) / 153
	}
	for _, n := range []int{1, 2, 3} {
		s := segmentText("Acme", n, 12345)
		if got, withStop := segments(len(s)), segments(len(s)+30); got != n || withStop != n {
			t.Errorf("%d-segment text is %d characters: %d segments, %d with a STOP mention", n, len(s), got, withStop)
		}
	}
}

func TestLeaseOwner(t *testing.T) {
	tests := []struct{ value, want string }{
		{`{"owner":"host-1a2b","until":"2026-11-27T20:00:00Z"}`, "host-1a2b"},
		{`{"owner":"","until":"2026-11-27T20:00:00Z"}`, ""},
		{`{"owner":"?","until":"2026-11-27T20:00:00Z"}`, ""},
		{`replica-2`, "replica-2"},
	}
	for _, tt := range tests {
		if got := leaseOwner([]byte(tt.value)); got != tt.want {
			t.Errorf("leaseOwner(%s) = %q, want %q", tt.value, got, tt.want)
		}
	}
}

// The summary line gives the lowest short code and the mean of all: the
// mean is what moves between two runs of the many scenario.
func TestPrintTableSummary(t *testing.T) {
	var b strings.Builder
	err := printTable(&b, []Result{
		{ShortCode: "36000", Contracted: 10, Achieved: 9.8, Ratio: 0.98},
		{ShortCode: "36001", Contracted: 10, Achieved: 10, Ratio: 1, Violations: 2, OverSeconds: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := "2 short codes: lowest achieved 98.0 % of contract (mean 99.00 %), 1 over-rate seconds, 2 violations"
	if got := lines[len(lines)-1]; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
}
