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

// Guard is the hard limiter of one short code, exact as the SMSC counts.
//
// The SMSC counts a submit when it receives it, by its own clock; we cannot
// read that clock, but we can bound it: the SMSC receives a submit after we
// ask to write it (the grant) and before we read its answer (the result:
// ACK, NACK, or the time we give up waiting). So a grant holds a place in
// the count from the moment it is made until one Window after its result,
// and the guard grants a new event at t only if fewer than R grants are
// still counted at t: those not done yet, and those done after t-Window.
//
// Take any R+1 submits and the last of them to be granted, at t: when it
// was granted, at most R-1 of the others were still counted, so one of
// them had its result at or before t-Window; the SMSC received that one at
// or before t-Window and the last one at or after t. Whatever the delays
// between us and the SMSC (network, TCP, a starved process at either end),
// no window of Window (1 s plus the slack given to NewGuard) as the SMSC
// sees it holds R+1 submits.
//
// The price is the round trip: under backlog, R submits go every 1 s plus
// the time from grant to result (about 1 ms on a local link: 99.9 % of R;
// 20 ms across a VPN: 98 %), plus how late a waiter wakes for its place
// (Grant.Late: a busy machine's scheduler). smsc-link publishes the mean
// of both so that the throttle paces at what the link can take
// (docs/throttle.md).
//
// Rate changes apply at the next decision:
//   - an increase lets waiters through as soon as they next look (within
//     holdPoll);
//   - a decrease to R' is judged against the grants already counted: the
//     next grant waits until fewer than R' are;
//   - 0 holds everything until the rate is positive again.
//
// A Guard is safe for concurrent use; waiters are not served in any
// particular order.
type Guard struct {
	rate   func() int
	window time.Duration

	mu sync.Mutex
	// done holds the result times of the last grants, in the order the
	// results came (so ascending: they are read from now).
	done History
	open int // granted, result not known yet
	// freed is closed (and replaced) when a result comes while a waiter
	// is held by open grants (held says so): it looks again at once. A
	// waiter held by time gains nothing from a result (the new result is
	// the latest; the one it waits for is older), so it is not woken.
	freed chan struct{}
	held  bool
	// urgent counts the WaitUrgent callers waiting: while there is one,
	// Wait's callers take no place. urgentGone is closed (and replaced)
	// when the last of them leaves.
	urgent     int
	urgentGone chan struct{}

	// now and sleep are time.Now and a context-aware sleep that also ends
	// when wake is closed; tests replace them with a virtual clock.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration, wake <-chan struct{}) error
}

// Grant is the right to write one submit. Done must be called exactly once,
// when its result is known (or when it is certain it was never written).
type Grant struct {
	g *Guard
	// At is when the grant was made.
	At time.Time
	// Late is how long after it became possible the grant was made,
	// when it waited for a place to leave the window: the waiter's wake-up
	// on a busy machine. A place is held 1 s plus this plus the time to
	// the result (the cycle smsc-link publishes for the throttle's pacing).
	Late time.Duration
}

// NewGuard returns a guard whose rate is read from rate before every grant
// (values above MaxRate count as MaxRate, below 1 hold). slack (≥ 0) widens
// the window beyond 1 s, for an SMSC that counts with a margin of its own;
// the guard needs none to be exact.
func NewGuard(rate func() int, slack time.Duration) *Guard {
	if slack < 0 {
		slack = 0
	}
	return &Guard{
		rate:       rate,
		window:     time.Second + slack,
		freed:      make(chan struct{}),
		urgentGone: make(chan struct{}),
		now:        time.Now,
		sleep:      sleepCtx,
	}
}

// Window is the span in which the guard counts at most R submits.
func (g *Guard) Window() time.Duration { return g.window }

// Wait blocks until a submit may be written without letting the SMSC see
// more than R in any window, and returns its grant. It returns ctx's error,
// granting nothing, if ctx ends first.
func (g *Guard) Wait(ctx context.Context) (Grant, error) { return g.wait(ctx, false) }

// WaitUrgent is Wait for a submit that goes before the others (a
// customer-relationship message): while it waits, Wait's callers take no
// place, so that it never waits behind marketing at the guard.
func (g *Guard) WaitUrgent(ctx context.Context) (Grant, error) {
	g.mu.Lock()
	g.urgent++
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.urgent--; g.urgent == 0 {
			close(g.urgentGone)
			g.urgentGone = make(chan struct{})
		}
	}()
	return g.wait(ctx, true)
}

func (g *Guard) wait(ctx context.Context, urgent bool) (Grant, error) {
	var free time.Time // when the grant was to become possible, if it waited for that
	for {
		at, d, wake, f := g.try(urgent)
		if d == 0 {
			gr := Grant{g: g, At: at}
			if !free.IsZero() && at.After(free) {
				gr.Late = at.Sub(free)
			}
			return gr, nil
		}
		free = f
		if err := g.sleep(ctx, d, wake); err != nil {
			return Grant{}, fmt.Errorf("rate guard: %w", err)
		}
	}
}

// Done records the grant's result now: from now plus the window on, it no
// longer counts.
func (gr Grant) Done() { _ = gr.DoneAt(time.Time{}) }

// DoneAt records the grant's result as known at at (zero: now), the time
// its ACK arrived: the SMSC had received the submit by then, so counting
// from it is as exact as counting from now, and a busy process that takes
// a while to get round to the ACK does not hold the place longer. A time
// before the grant counts as the grant (no result comes before its
// submit), one before the last recorded result as that one (the results
// stay in order; counting longer only errs on the safe side). It returns
// the time the result counts from.
func (gr Grant) DoneAt(at time.Time) time.Time {
	g := gr.g
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open--
	t := g.now()
	if !at.IsZero() && at.Before(t) {
		t = at
		if t.Before(gr.At) {
			t = gr.At
		}
	}
	if last, ok := g.done.Last(); ok && t.Before(last) {
		t = last
	}
	g.done.Add(t)
	if g.held {
		close(g.freed)
		g.freed, g.held = make(chan struct{}), false
	}
	return t
}

// try grants a submit now and returns its time and 0, or returns how long
// to wait before trying again and, when open grants or urgent waiters hold
// it, a channel closed when a result comes or the urgent waiters are gone,
// or, when a counted result holds it, the time that one leaves the window.
func (g *Guard) try(urgent bool) (at time.Time, wait time.Duration, wake <-chan struct{}, free time.Time) {
	r := min(g.rate(), MaxRate)
	if r < 1 {
		return time.Time{}, holdPoll, nil, time.Time{}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !urgent && g.urgent > 0 {
		return time.Time{}, holdPoll, g.urgentGone, time.Time{}
	}
	// Room for k more counted results besides this grant: the k-th most
	// recent result must be out of the window.
	k := r - g.open
	if k < 1 {
		g.held = true
		return time.Time{}, holdPoll, g.freed, time.Time{}
	}
	now := g.now()
	free = g.done.Free(k, g.window)
	if wait := free.Sub(now); wait > 0 {
		return time.Time{}, min(wait, holdPoll), nil, free
	}
	g.open++
	return now, 0, nil, time.Time{}
}

func sleepCtx(ctx context.Context, d time.Duration, wake <-chan struct{}) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-wake:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// History is the times of the last MaxRate events of a short code, added in
// ascending order: a sliding window's memory. The zero value is empty.
//
// It keeps each time as its offset from the first one added: a ring of
// time.Time would hold a *time.Location per entry, and every lane and
// guard has a ring of MaxRate, which the collector would scan at every
// cycle (10 MB over 200 short codes). The base keeps its monotonic
// reading, so the arithmetic is time.Time's.
type History struct {
	base  time.Time
	ring  []time.Duration // offsets from base
	next  int             // where the next time is written
	count int             // times in the ring (≤ len(ring))
}

// Add records an event at t, not before the last one added.
func (h *History) Add(t time.Time) {
	if h.ring == nil {
		h.ring = make([]time.Duration, MaxRate)
		h.base = t
	}
	h.ring[h.next] = t.Sub(h.base)
	h.next = (h.next + 1) % len(h.ring)
	if h.count < len(h.ring) {
		h.count++
	}
}

// Last returns the time added last, if any.
func (h *History) Last() (time.Time, bool) {
	if h.count == 0 {
		return time.Time{}, false
	}
	return h.base.Add(h.ring[(h.next-1+len(h.ring))%len(h.ring)]), true
}

// Free returns the earliest time from which fewer than k (1 to MaxRate)
// of the recorded events lie in the window of span that ends then: the
// k-th most recent event plus span, or the zero time if fewer than k are
// recorded.
func (h *History) Free(k int, span time.Duration) time.Time {
	if k < 1 || h.count < k {
		return time.Time{}
	}
	return h.base.Add(h.ring[(h.next-k+len(h.ring))%len(h.ring)] + span)
}
