package main

import (
	"math"
	"slices"
	"time"
)

// Percentiles of a latency sample, in milliseconds.
type Percentiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// percentiles uses the nearest-rank method: every figure is a latency that
// was measured, never an interpolation between two.
func percentiles(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		i = min(max(i, 0), len(s)-1)
		return ms(s[i])
	}
	return Percentiles{N: len(s), P50: rank(0.50), P90: rank(0.90), P99: rank(0.99), Max: ms(s[len(s)-1])}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// steadyTrim is the share of events left out at each end of a series when
// its rate is computed: the first events wait for the pipeline to fill and
// the last ones trickle in behind it, neither is the system's pace.
const steadyTrim = 0.05

// Throughput of one series of events (segments accepted, submitted, ...).
type Throughput struct {
	Events int `json:"events"`
	// PerSecond is the events per second over the steady window: from the
	// event at 5 % of the series to the one at 95 %, so ramp-up and tail
	// do not count.
	PerSecond float64 `json:"per_second"`
	// Overall is every event over the time from the first to the last.
	Overall float64 `json:"overall_per_second"`
	// Window is the steady window's length.
	Window time.Duration `json:"window_ns"`
}

// throughput computes the steady rate from event times (any order).
func throughput(ts []time.Time) Throughput {
	t := Throughput{Events: len(ts)}
	if len(ts) < 2 {
		return t
	}
	s := slices.Clone(ts)
	slices.SortFunc(s, func(a, b time.Time) int { return a.Compare(b) })
	if span := s[len(s)-1].Sub(s[0]); span > 0 {
		t.Overall = float64(len(s)-1) / span.Seconds()
	}
	lo := int(math.Floor(steadyTrim * float64(len(s)-1)))
	hi := int(math.Ceil((1 - steadyTrim) * float64(len(s)-1)))
	t.Window = s[hi].Sub(s[lo])
	if t.Window > 0 {
		t.PerSecond = float64(hi-lo) / t.Window.Seconds()
	} else {
		t.PerSecond = t.Overall
	}
	return t
}

// acceptance is the rate at which a system accepted the load: every
// segment over the time from the first request to the last acceptance.
// Not a steady window: ingest accepts a campaign's recipients by chunks of
// 500 that share one time, so the acceptances bunch up.
func acceptance(start time.Time, ts []time.Time) Throughput {
	t := Throughput{Events: len(ts)}
	if len(ts) == 0 {
		return t
	}
	t.Window = slices.MaxFunc(ts, func(a, b time.Time) int { return a.Compare(b) }).Sub(start)
	if t.Window > 0 {
		t.PerSecond = float64(len(ts)) / t.Window.Seconds()
		t.Overall = t.PerSecond
	}
	return t
}
