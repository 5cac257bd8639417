package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	msd := func(ns ...int) []time.Duration {
		var out []time.Duration
		for _, n := range ns {
			out = append(out, time.Duration(n)*time.Millisecond)
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(100-i) * time.Millisecond // reversed: sorting is the function's job
	}
	tests := []struct {
		name string
		in   []time.Duration
		want Percentiles
	}{
		{"empty", nil, Percentiles{}},
		{"one", msd(7), Percentiles{N: 1, P50: 7, P90: 7, P99: 7, Max: 7}},
		{"two", msd(10, 20), Percentiles{N: 2, P50: 10, P90: 20, P99: 20, Max: 20}},
		{"1..100", hundred, Percentiles{N: 100, P50: 50, P90: 90, P99: 99, Max: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentiles(tt.in); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestThroughput(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	every := func(n int, step time.Duration) []time.Time {
		out := make([]time.Time, n)
		for i := range out {
			out[i] = t0.Add(time.Duration(i) * step)
		}
		return out
	}
	// 101 events 10 ms apart, then a straggler 5 s later: the steady rate
	// ignores it, the overall one does not.
	straggler := append(every(101, 10*time.Millisecond), t0.Add(6*time.Second))
	tests := []struct {
		name        string
		in          []time.Time
		wantSteady  float64
		wantOverall float64
	}{
		{"none", nil, 0, 0},
		{"one", every(1, time.Second), 0, 0},
		{"even 100/s", every(101, 10*time.Millisecond), 100, 100},
		{"straggler", straggler, 100, 101.0 / 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := throughput(tt.in)
			if !near(got.PerSecond, tt.wantSteady) || !near(got.Overall, tt.wantOverall) {
				t.Errorf("got steady %.3f overall %.3f, want %.3f and %.3f", got.PerSecond, got.Overall, tt.wantSteady, tt.wantOverall)
			}
			if got.Events != len(tt.in) {
				t.Errorf("got %d events, want %d", got.Events, len(tt.in))
			}
		})
	}
}

func TestAcceptance(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	// Two chunks of 500 sharing a time each, the last 2 s after the start.
	var ts []time.Time
	for i := range 1000 {
		ts = append(ts, t0.Add(time.Duration(1+i/500)*time.Second))
	}
	got := acceptance(t0, ts)
	if got.Events != 1000 || !near(got.PerSecond, 500) || got.Window != 2*time.Second {
		t.Errorf("got %+v, want 1000 events at 500/s over 2s", got)
	}
	if got := acceptance(t0, nil); got.PerSecond != 0 {
		t.Errorf("got %+v for no events, want 0/s", got)
	}
}

func TestDrive(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name     string
		n        int
		fail     map[int]bool
		wantErr  bool
		parallel int
	}{
		{"all succeed", 50, nil, false, 4},
		{"two fail", 50, map[int]bool{3: true, 40: true}, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			seen := map[int]int{}
			err := drive(t.Context(), tt.n, 0, tt.parallel, func(_ context.Context, i int) error {
				mu.Lock()
				seen[i]++
				mu.Unlock()
				if tt.fail[i] {
					return boom
				}
				return nil
			})
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, boom)) {
				t.Errorf("got %v, want error %v", err, tt.wantErr)
			}
			if len(seen) != tt.n {
				t.Errorf("got %d distinct calls, want %d", len(seen), tt.n)
			}
			for i, c := range seen {
				if c != 1 {
					t.Errorf("call %d made %d times, want 1", i, c)
				}
			}
		})
	}
}

func near(a, b float64) bool { return a-b < 0.01 && b-a < 0.01 }

func TestMix(t *testing.T) {
	msgs := mix(6, 999_998)
	seen := map[string]bool{}
	for i, m := range msgs {
		if want := i%3 + 1; m.segments != want {
			t.Errorf("message %d: got %d segments, want %d", i, m.segments, want)
		}
		// GSM 7-bit: 160 characters in one segment, 153 per part beyond.
		if max := map[int]int{1: 160, 2: 306, 3: 459}[m.segments]; len(m.text) > max || (m.segments > 1 && len(m.text) <= map[int]int{2: 160, 3: 306}[m.segments]) {
			t.Errorf("message %d: %d characters do not make %d segments", i, len(m.text), m.segments)
		}
		if seen[m.to] {
			t.Errorf("message %d: recipient repeated", i)
		}
		seen[m.to] = true
		if _, err := e164Hash(m.to); err != nil {
			t.Errorf("message %d: %v", i, err)
		}
	}
	// The simulator's form of Kannel's recipient hashes as ours does.
	a, err := e164Hash(msgs[0].to)
	if err != nil {
		t.Fatal(err)
	}
	b, err := simHash(kannelRecipient(msgs[0]))
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("national and simulator forms hash differently: %s, %s", a, b)
	}
}

func TestShortCodeFigures(t *testing.T) {
	var a simAccount
	a.Submits, a.Accepted, a.Violations = 25, 24, 1
	for _, s := range []struct{ sec, n int64 }{{100, 2}, {101, 10}, {103, 10}, {104, 2}} {
		a.PerSecond = append(a.PerSecond, struct {
			Second     int64 `json:"second"`
			Submits    int64 `json:"submits"`
			Accepted   int64 `json:"accepted"`
			Violations int64 `json:"violations"`
		}{Second: s.sec, Submits: s.n, Accepted: s.n})
	}
	got := shortCodeFigures(simStats{Accounts: map[string]simAccount{"36000": a}}, []string{"36000"}, 10)
	// Steady seconds 101, 102 (none: 0) and 103.
	want := ShortCode{Code: "36000", Rate: 10, Submits: 25, Accepted: 24, Violations: 1, Achieved: 20.0 / 3, Utilisation: 2.0 / 3, MaxSecond: 10}
	if len(got) != 1 || !near(got[0].Achieved, want.Achieved) || !near(got[0].Utilisation, want.Utilisation) || got[0].MaxSecond != want.MaxSecond || got[0].Violations != 1 {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestMarkdown(t *testing.T) {
	ours := System{Name: "pushsms", Segments: 20, Submitted: Throughput{Events: 20, PerSecond: 300}, DRs: Throughput{Events: 20, PerSecond: 290},
		Billed: &Throughput{Events: 20, PerSecond: 280}, CPU: 2, PeakRSS: 100 << 20, Complete: true,
		AcceptToSubmit: Percentiles{N: 20, P50: 5, P90: 9, P99: 12, Max: 13},
		Processes:      []Process{{Name: "ingest", CPU: 2, PeakRSS: 100 << 20}},
		Lag:            []Lag{{Stream: "SMS_ACCEPTED", Consumer: "compliance", Pending: 0, AckPending: 1}}}
	kannel := System{Name: "kannel", Segments: 20, Submitted: Throughput{Events: 20, PerSecond: 100}, DRs: Throughput{Events: 20, PerSecond: 100}, CPU: 1, Complete: true,
		ShortCodes: []ShortCode{{Code: "38000", Rate: 0, Submits: 20, Accepted: 20}}}
	r := &Report{Started: time.Date(2026, 11, 28, 4, 0, 0, 0, time.UTC), Machine: "test", ShortCodes: 1, Messages: 10, Unthrottled: true, Systems: []System{ours, kannel}}
	r.computeRatio()
	var b strings.Builder
	if err := writeMarkdown(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| pushsms | 20 | – | 300 | 290 | 280 | 5 / 9 / 12 / 13 | – | 2.00 | 100000 | 100.0 | true |",
		"| kannel | 20 | – | 100 | 100 | – |",
		"ours / Kannel: submitted/s ×3.00, DR/s ×2.90, CPU per segment ×2.00",
		"| kannel | 38000 | ∞ | 20 | 20 | 0 | 0.0 | – | 0 |",
		"| SMS_ACCEPTED | compliance | 0 | 1 |",
		"| pushsms | **total** | **2.00** | **100.0** |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
}

// TestWarmup: a message accepted in the run's first Warmup stays out of the
// latencies, and the report says so; without Warmup every message counts.
func TestWarmup(t *testing.T) {
	start := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		warmup time.Duration
		at     time.Duration
		want   bool
	}{
		{0, 0, true},
		{0, time.Millisecond, true},
		{2 * time.Second, 0, false},
		{2 * time.Second, 1999 * time.Millisecond, false},
		{2 * time.Second, 2 * time.Second, true},
		{2 * time.Second, 10 * time.Second, true},
	} {
		if got := (Config{Warmup: tc.warmup}).warm(start, start.Add(tc.at)); got != tc.want {
			t.Errorf("warmup %v, accepted %v after the start: counted %v, want %v", tc.warmup, tc.at, got, tc.want)
		}
	}
	r := &Report{Started: start, Machine: "test", ShortCodes: 1, Messages: 10, Unthrottled: true, Pace: 400, Warmup: 2 * time.Second}
	var b strings.Builder
	if err := writeMarkdown(&b, r); err != nil {
		t.Fatal(err)
	}
	if want := "offered at 400 messages/s (SendMessage; Kannel: sendsms); latencies of the messages accepted (Kannel: sent) after the first 2s."; !strings.Contains(b.String(), want) {
		t.Errorf("report lacks %q:\n%s", want, b.String())
	}
}

// TestHalfCapacity: the latency run is paced at half the messages per
// second the capacity run submitted, and its report says whether p99
// accept→submit is within the 50 ms the issue asks for there.
func TestHalfCapacity(t *testing.T) {
	capRep := &Report{Messages: 10000, Systems: []System{{Name: "pushsms", Segments: 20000, Complete: true,
		Submitted: Throughput{Events: 20000, PerSecond: 2040}}}}
	h, err := halfOf(capRep)
	if err != nil {
		t.Fatal(err)
	}
	if h.CapacitySegments != 2040 || h.CapacityMessages != 1020 || h.Target != 50 {
		t.Errorf("capacity %+v, want 2040 segments/s, 1020 messages/s, target 50 ms", h)
	}
	for _, bad := range []*Report{
		{Messages: 10000},
		{Messages: 10000, Systems: []System{{Segments: 20000, Complete: false, Submitted: Throughput{PerSecond: 1500}}}},
		{Messages: 10000, Systems: []System{{Segments: 20000, Complete: true}}},
	} {
		if _, err := halfOf(bad); err == nil {
			t.Errorf("halfOf(%+v): no error, want one (no capacity to halve)", bad)
		}
	}
	for _, tc := range []struct {
		p99  float64
		want string
	}{
		{42, "p99 accept→submit 42.0 ms, target ≤ 50 ms: **met**"},
		{50, "p99 accept→submit 50.0 ms, target ≤ 50 ms: **met**"},
		{68.4, "p99 accept→submit 68.4 ms, target ≤ 50 ms: **not met**"},
	} {
		r := &Report{Started: time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC), Machine: "test", ShortCodes: 4, Messages: 7000,
			Unthrottled: true, Pace: 510, HalfOf: &h,
			Systems: []System{{Name: "pushsms", Segments: 14000, AcceptToSubmit: Percentiles{N: 14000, P50: 9, P90: 20, P99: tc.p99, Max: 90}}}}
		var b strings.Builder
		if err := writeMarkdown(&b, r); err != nil {
			t.Fatal(err)
		}
		want := "Half capacity: SendMessage capacity 1020 messages/s (2040 segments/s); offered 510 messages/s: " + tc.want
		if !strings.Contains(b.String(), want) {
			t.Errorf("p99 %v: report lacks %q:\n%s", tc.p99, want, b.String())
		}
	}
}
