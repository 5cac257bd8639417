package rate

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// holdPoll is how often a Guard held at rate 0 looks at the rate again, and
// the longest a waiter sleeps before it does: a rate increase made while
// submits wait applies within it.
const holdPoll = 50 * time.Millisecond

// Guard is the hard limiter of one short code: it grants at most R events
// in any window of Window (1 s plus the slack given to NewGuard), R read
// from rate at every decision. It remembers the times of its last MaxRate
// grants (a ring) and grants an event at t only if fewer than R of them
// lie in (t-Window, t], so no half-open window [s, s+Window) ever holds
// more than R grants.
//
// The definition is what it enforces, nothing more: after an idle second R
// events may go at once (the definition allows it; the throttle's spacing
// is what keeps normal traffic smooth), never R+1.
//
// Rate changes apply at the next decision:
//   - an increase lets waiters through as soon as they next look (within
//     holdPoll);
//   - a decrease to R' is judged against the grants already made: the next
//     grant waits until fewer than R' grants lie in the last window. So a
//     window that holds a grant made after the change holds at most R'
//     grants; only windows whose grants all came before the change can hold
//     the old R (they were legal when made);
//   - 0 holds everything until the rate is positive again.
//
// A Guard is safe for concurrent use; waiters are not served in any
// particular order.
type Guard struct {
	rate   func() int
	window time.Duration

	mu    sync.Mutex
	ring  []time.Time // grant times, oldest overwritten first
	next  int         // where the next grant is written
	count int         // grants in ring (≤ len(ring))

	// now and sleep are time.Now and a context-aware sleep; tests replace
	// them with a virtual clock.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// NewGuard returns a guard whose rate is read from rate before every grant
// (values above MaxRate count as MaxRate, below 1 hold). slack (≥ 0) widens
// the window beyond 1 s to absorb the jitter between the grant and the
// SMSC's clock: with R grants spanning at least 1 s + slack, jitter below
// slack keeps every second the SMSC sees at R or less.
func NewGuard(rate func() int, slack time.Duration) *Guard {
	if slack < 0 {
		slack = 0
	}
	return &Guard{
		rate:   rate,
		window: time.Second + slack,
		ring:   make([]time.Time, MaxRate),
		now:    time.Now,
		sleep:  sleepCtx,
	}
}

// Window is the span in which the guard grants at most R events.
func (g *Guard) Window() time.Duration { return g.window }

// Wait blocks until an event may go without putting more than R events in
// any window, and records it as granted. It returns ctx's error, granting
// nothing, if ctx ends first.
func (g *Guard) Wait(ctx context.Context) error {
	for {
		d := g.try()
		if d == 0 {
			return nil
		}
		if err := g.sleep(ctx, d); err != nil {
			return fmt.Errorf("rate guard: %w", err)
		}
	}
}

// try grants an event now and returns 0, or returns how long to wait
// before trying again.
func (g *Guard) try() time.Duration {
	r := min(g.rate(), MaxRate)
	if r < 1 {
		return holdPoll
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if g.count >= r {
		// The r-th most recent grant: with this event, the window
		// (now-window, now] would hold r+1 events unless it is out of it.
		rth := g.ring[(g.next-r+len(g.ring))%len(g.ring)]
		if wait := rth.Add(g.window).Sub(now); wait > 0 {
			return min(wait, holdPoll)
		}
	}
	g.ring[g.next] = now
	g.next = (g.next + 1) % len(g.ring)
	if g.count < len(g.ring) {
		g.count++
	}
	return 0
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
