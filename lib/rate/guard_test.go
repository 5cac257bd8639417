package rate

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// virtualClock makes a Guard run on simulated time: sleeping advances the
// clock at once, so minutes of traffic are checked in milliseconds.
type virtualClock struct{ t time.Time }

func (c *virtualClock) install(g *Guard) {
	c.t = time.Date(2026, 11, 27, 20, 0, 0, 0, time.UTC)
	g.now = func() time.Time { return c.t }
	g.sleep = func(ctx context.Context, d time.Duration) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		c.t = c.t.Add(d)
		return nil
	}
}

type grant struct {
	at   time.Time
	rate int
}

// checkWindows fails t if a grant made at rate r has, counting itself, more
// than r grants in the window that ends with it. Every window [s, s+W)
// that holds a grant is checked this way through its last grant, so this is
// "never more than R in any window" with R the rate of the latest decision.
func checkWindows(t *testing.T, grants []grant, window time.Duration) {
	t.Helper()
	lo := 0
	for i, g := range grants {
		for !grants[lo].at.After(g.at.Add(-window)) {
			lo++
		}
		if n := i - lo + 1; n > g.rate {
			t.Fatalf("grant %d at +%v (rate %d): %d grants in the window (%v, %v]",
				i, g.at.Sub(grants[0].at), g.rate, n, grants[lo].at.Sub(grants[0].at), g.at.Sub(grants[0].at))
		}
	}
}

// TestGuardNeverExceeds: random arrivals (bursts, trickles, idle spells)
// and random rate changes (including holds) never put more than R grants
// in a window.
func TestGuardNeverExceeds(t *testing.T) {
	for seed := range uint64(200) {
		rnd := rand.New(rand.NewPCG(seed, 42))
		var r atomic.Int64
		rates := []int{1, 2, 10, 20, 50, 100, 150, 1000, 0}
		r.Store(int64(rates[rnd.IntN(len(rates)-1)]))
		slack := time.Duration(rnd.IntN(3)) * 10 * time.Millisecond
		g := NewGuard(func() int { return int(r.Load()) }, slack)
		var clk virtualClock
		clk.install(g)

		var grants []grant
		for range 3000 {
			switch x := rnd.IntN(100); {
			case x < 2: // rate change, sometimes a hold
				r.Store(int64(rates[rnd.IntN(len(rates))]))
			case x < 4: // idle spell
				clk.t = clk.t.Add(time.Duration(rnd.IntN(3000)) * time.Millisecond)
			case x < 30: // trickle
				clk.t = clk.t.Add(time.Duration(rnd.IntN(50)) * time.Millisecond)
			}
			if r.Load() == 0 {
				// A hold: time passes, nothing may go; then a rate
				// comes back (one goroutine here, so Wait would
				// wait forever).
				clk.t = clk.t.Add(time.Duration(rnd.IntN(2000)) * time.Millisecond)
				r.Store(int64(rates[rnd.IntN(len(rates)-1)]))
			}
			if err := g.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			grants = append(grants, grant{at: clk.t, rate: int(r.Load())})
		}
		checkWindows(t, grants, g.Window())
	}
}

// TestGuardUsesFullRate: under backlog the guard wastes nothing: R grants
// per window, window after window.
func TestGuardUsesFullRate(t *testing.T) {
	for _, R := range []int{1, 10, 20, 50, 100, 150} {
		g := NewGuard(func() int { return R }, 0)
		var clk virtualClock
		clk.install(g)
		start := clk.t
		n := 0
		for clk.t.Sub(start) < 10*time.Second {
			if err := g.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			if clk.t.Sub(start) < 10*time.Second {
				n++
			}
		}
		if n != 10*R {
			t.Errorf("rate %d: %d grants in 10 s, want %d", R, n, 10*R)
		}
	}
}

// TestGuardDecrease: after a decrease, the next grant waits until the last
// window holds fewer than the new rate; an increase applies at once.
func TestGuardRateChange(t *testing.T) {
	var r atomic.Int64
	r.Store(100)
	g := NewGuard(func() int { return int(r.Load()) }, 0)
	var clk virtualClock
	clk.install(g)
	start := clk.t
	for range 100 { // 100 at once: allowed at rate 100
		_ = g.Wait(context.Background())
	}
	if clk.t != start {
		t.Fatalf("100 grants at rate 100 waited %v", clk.t.Sub(start))
	}
	r.Store(10)
	_ = g.Wait(context.Background())
	if got := clk.t.Sub(start); got != time.Second {
		t.Errorf("first grant after decrease to 10 at +%v, want +1s (the window must drain)", got)
	}
	r.Store(0)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	// Held: only the context ends the wait (the virtual clock makes the
	// polling free).
	if err := g.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait while held = %v, want context.Canceled", err)
	}
}

// TestGuardConcurrent: waiters from several goroutines (sessions sharing a
// short code) on the real clock keep every window at R.
func TestGuardConcurrent(t *testing.T) {
	const R, total = 50, 130
	g := NewGuard(func() int { return R }, 0)
	var wg sync.WaitGroup
	var left atomic.Int64
	left.Store(total)
	for range 4 {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if err := g.Wait(context.Background()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.count != total {
		t.Fatalf("%d grants, want %d", g.count, total)
	}
	grants := make([]grant, total)
	for i := range total {
		grants[i] = grant{at: g.ring[i], rate: R}
	}
	checkWindows(t, grants, g.Window())
}

// BenchmarkGuardWait measures a grant that does not wait (the normal case
// behind the throttle's spacing), on a clock that moves 1 ms per grant.
func BenchmarkGuardWait(b *testing.B) {
	g := NewGuard(func() int { return 150 }, 5*time.Millisecond)
	var clk virtualClock
	clk.install(g)
	g.now = func() time.Time { clk.t = clk.t.Add(time.Millisecond); return clk.t }
	ctx := context.Background()
	for b.Loop() {
		if err := g.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGuardWaitParallel: many sessions of one short code contending.
func BenchmarkGuardWaitParallel(b *testing.B) {
	g := NewGuard(func() int { return MaxRate }, 0)
	var ns atomic.Int64
	base := time.Now()
	g.now = func() time.Time { return base.Add(time.Duration(ns.Add(int64(time.Millisecond)))) }
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := g.Wait(context.Background()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
