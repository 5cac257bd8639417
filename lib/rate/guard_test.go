package rate

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// link simulates a guard's submits on a virtual clock: each grant gets a
// round trip, and its result comes when the clock reaches it, also while
// Wait sleeps (sleeping advances the clock at once, so minutes of traffic
// are checked in milliseconds). The SMSC receives each submit at a random
// point between its grant and its result: the guard knows no better.
type link struct {
	g       *Guard
	t       time.Time
	rnd     *rand.Rand
	pending []pending // by result time
	sent    []submit
	// lag, when set, is how long after a result is read the submitter
	// gets round to it (a busy process): it reports the read time.
	lag func() time.Duration
	// oversleep is how late a sleeping waiter wakes.
	oversleep time.Duration
	grants    []Grant
}

type pending struct {
	gr   Grant
	at   time.Time // when the submitter handles the result
	read time.Time // when the result was read
	idx  int
}

// submit is one granted submit: when the SMSC received it and the rate at
// the decision.
type submit struct {
	granted, received, result time.Time
	rate                      int
	seq                       int // grant order
}

func newLink(g *Guard, seed uint64) *link {
	l := &link{g: g, t: time.Date(2026, 11, 27, 20, 0, 0, 0, time.UTC), rnd: rand.New(rand.NewPCG(seed, 7))}
	g.now = func() time.Time { return l.t }
	g.sleep = func(ctx context.Context, d time.Duration, _ <-chan struct{}) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		l.advance(l.t.Add(d + l.oversleep))
		return nil
	}
	return l
}

// advance moves the clock to t, delivering the results due by then; it
// stops at the first result (a waiter looks again after each).
func (l *link) advance(t time.Time) {
	if len(l.pending) > 0 && !l.pending[0].at.After(t) {
		p := l.pending[0]
		l.pending = l.pending[1:]
		l.t = later(l.t, p.at)
		l.sent[p.idx].result = p.read
		if l.lag != nil {
			p.gr.DoneAt(p.read)
			return
		}
		p.gr.Done()
		return
	}
	l.t = later(l.t, t)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// wait takes a grant and schedules its result after rtt; the SMSC receives
// it at a random point of the round trip.
func (l *link) wait(t *testing.T, rtt time.Duration, rate int) {
	t.Helper()
	gr, err := l.g.Wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !gr.At.Equal(l.t) {
		t.Fatalf("grant at %v, clock at %v", gr.At, l.t)
	}
	res := l.t.Add(rtt)
	recv := l.t
	if rtt > 0 {
		recv = l.t.Add(time.Duration(l.rnd.Int64N(int64(rtt) + 1)))
	}
	l.sent = append(l.sent, submit{granted: l.t, received: recv, rate: rate, seq: len(l.sent)})
	l.grants = append(l.grants, gr)
	p := pending{gr: gr, at: res, read: res, idx: len(l.sent) - 1}
	if l.lag != nil {
		p.at = res.Add(l.lag())
	}
	i, _ := slices.BinarySearchFunc(l.pending, p.at, func(e pending, t time.Time) int { return e.at.Compare(t) })
	l.pending = slices.Insert(l.pending, i, p)
}

// backlog takes grants one after the other, each with a round trip of
// rtt, for d of the link's clock, and returns how many were granted
// within d.
func (l *link) backlog(t *testing.T, d, rtt time.Duration, rate int) int {
	t.Helper()
	start := l.t
	n := 0
	for l.t.Sub(start) < d {
		l.wait(t, rtt, rate)
		if l.t.Sub(start) < d {
			n++
		}
	}
	return n
}

// drain delivers every pending result.
func (l *link) drain() {
	for len(l.pending) > 0 {
		l.advance(l.pending[len(l.pending)-1].at)
	}
}

// checkSMSC fails t if the SMSC, counting by its receive times, ever sees
// a window of the given length holding more submits than the rate of the
// decision that made the last of them: the operator's view.
func checkSMSC(t *testing.T, sent []submit, window time.Duration) {
	t.Helper()
	byRecv := slices.Clone(sent)
	slices.SortStableFunc(byRecv, func(a, b submit) int { return a.received.Compare(b.received) })
	lo := 0
	for i, s := range byRecv {
		for !byRecv[lo].received.After(s.received.Add(-window)) {
			lo++
		}
		// The window ending at s holds byRecv[lo..i]; the limit is the
		// rate in force for the latest-granted of them.
		limit, last := 0, -1
		for _, x := range byRecv[lo : i+1] {
			if x.seq > last {
				last, limit = x.seq, x.rate
			}
		}
		if n := i - lo + 1; n > limit {
			t.Fatalf("the SMSC saw %d submits in (%v, %v], rate %d",
				n, byRecv[lo].received.Sub(byRecv[0].received), s.received.Sub(byRecv[0].received), limit)
		}
	}
}

// TestGuardNeverExceedsAtTheSMSC: random arrivals (bursts, trickles, idle
// spells), random round trips (0 to 300 ms, the SMSC receiving anywhere
// in them), several submits in flight, and random rate changes (including
// holds) never put more than R submits in a window as the SMSC counts.
func TestGuardNeverExceedsAtTheSMSC(t *testing.T) {
	for seed := range uint64(200) {
		rnd := rand.New(rand.NewPCG(seed, 42))
		var r atomic.Int64
		rates := []int{1, 2, 10, 20, 50, 100, 150, 1000, 0}
		r.Store(int64(rates[rnd.IntN(len(rates)-1)]))
		slack := time.Duration(rnd.IntN(3)) * 10 * time.Millisecond
		g := NewGuard(func() int { return int(r.Load()) }, slack)
		l := newLink(g, seed)
		maxRTT := []time.Duration{0, time.Millisecond, 30 * time.Millisecond, 300 * time.Millisecond}[rnd.IntN(4)]
		for range 3000 {
			switch x := rnd.IntN(100); {
			case x < 2: // rate change; a hold is lifted below
				r.Store(int64(rates[rnd.IntN(len(rates))]))
			case x < 4: // idle spell
				l.advance(l.t.Add(time.Duration(rnd.IntN(3000)) * time.Millisecond))
			case x < 30: // trickle
				l.advance(l.t.Add(time.Duration(rnd.IntN(50)) * time.Millisecond))
			}
			if r.Load() == 0 {
				// A hold: time passes, nothing may go; then a rate
				// comes back (one goroutine here, so Wait would
				// wait forever).
				l.advance(l.t.Add(time.Duration(rnd.IntN(2000)) * time.Millisecond))
				r.Store(int64(rates[rnd.IntN(len(rates)-1)]))
			}
			var rtt time.Duration
			if maxRTT > 0 {
				rtt = time.Duration(rnd.Int64N(int64(maxRTT)))
			}
			l.wait(t, rtt, int(r.Load()))
		}
		l.drain()
		checkSMSC(t, l.sent, g.Window())
	}
}

// TestGuardUsesFullRate: under backlog the guard wastes only the round
// trip: R submits every 1 s + rtt.
func TestGuardUsesFullRate(t *testing.T) {
	for _, R := range []int{1, 10, 20, 50, 100, 150} {
		for _, rtt := range []time.Duration{0, time.Millisecond, 20 * time.Millisecond} {
			g := NewGuard(func() int { return R }, 0)
			n := newLink(g, 1).backlog(t, 10*time.Second, rtt, R)
			// 10 s hold 10·s/(1s+rtt) windows of R, the last maybe
			// partly.
			want := float64(10*R) * float64(time.Second) / float64(time.Second+rtt)
			if float64(n) < want-float64(R) || n > 10*R {
				t.Errorf("rate %d, rtt %v: %d grants in 10 s, want about %.0f", R, rtt, n, want)
			}
		}
	}
}

// TestGuardCountsFromTheRead: a result read at once but handled 50 to
// 150 ms later (a busy process) is counted from its read: the SMSC still
// never sees more than R in a window, and the handling delay costs no
// throughput, only the round trip does.
func TestGuardCountsFromTheRead(t *testing.T) {
	for _, R := range []int{10, 100} {
		const rtt = 5 * time.Millisecond
		g := NewGuard(func() int { return R }, 0)
		l := newLink(g, uint64(R))
		l.lag = func() time.Duration {
			return 50*time.Millisecond + time.Duration(l.rnd.Int64N(int64(100*time.Millisecond)))
		}
		n := l.backlog(t, 20*time.Second, rtt, R)
		l.drain()
		checkSMSC(t, l.sent, g.Window())
		want := float64(20*R) * float64(time.Second) / float64(time.Second+rtt)
		if float64(n) < want-float64(R)/2 {
			t.Errorf("rate %d: %d grants in 20 s, want about %.0f (1 s + the round trip per R)", R, n, want)
		}
	}
}

// TestGuardResultNotBeforeGrant: a result time before its grant (a
// receive stamp skewed by a clock step) counts from the grant: no SMSC
// answers a submit before it was written, and counting from earlier would
// free the place too soon.
func TestGuardResultNotBeforeGrant(t *testing.T) {
	g := NewGuard(func() int { return 1 }, 0)
	l := newLink(g, 1)
	gr, err := g.Wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	l.t = l.t.Add(10 * time.Millisecond)
	if got := gr.DoneAt(gr.At.Add(-time.Second)); !got.Equal(gr.At) {
		t.Errorf("result counts from grant%+v, want the grant", got.Sub(gr.At))
	}
	next, err := g.Wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := next.At.Sub(gr.At); d < time.Second {
		t.Errorf("next grant %v after the first at rate 1, want at least 1s", d)
	}
}

// TestGuardLateGrant: a waiter that wakes late is granted late, and the
// grant says by how much (smsc-link adds it to the cycle the throttle
// paces at); a grant that did not wait for a place is not late. R grants
// at once, then each R-th waits for the window to pass (the others find
// a place at once behind it).
func TestGuardLateGrant(t *testing.T) {
	const R = 10
	g := NewGuard(func() int { return R }, 0)
	l := newLink(g, 1)
	l.oversleep = 7 * time.Millisecond
	for range 3 * R {
		l.wait(t, time.Millisecond, R)
	}
	for i, gr := range l.grants {
		want := time.Duration(0)
		if i > 0 && i%R == 0 {
			want = l.oversleep
		}
		if gr.Late != want {
			t.Errorf("grant %d: late %v, want %v", i, gr.Late, want)
		}
	}
}

// TestGuardRateChange: after a decrease, the next grant waits until fewer
// than the new rate are counted; an increase applies at once; 0 holds.
func TestGuardRateChange(t *testing.T) {
	var r atomic.Int64
	r.Store(100)
	g := NewGuard(func() int { return int(r.Load()) }, 0)
	l := newLink(g, 1)
	start := l.t
	for range 100 { // 100 at once: allowed at rate 100
		l.wait(t, 0, 100)
	}
	if l.t != start {
		t.Fatalf("100 grants at rate 100 waited %v", l.t.Sub(start))
	}
	r.Store(10)
	l.wait(t, 0, 10)
	if got := l.t.Sub(start); got != time.Second {
		t.Errorf("first grant after decrease to 10 at +%v, want +1s (the window must drain)", got)
	}
	r.Store(0)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	// Held: only the context ends the wait (the virtual clock makes the
	// polling free).
	if _, err := g.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait while held = %v, want context.Canceled", err)
	}
}

// TestGuardWaitsForResults: R submits without a result hold the next one
// however long they take (the SMSC may not have them yet), and a result
// lets it through one window after it.
func TestGuardWaitsForResults(t *testing.T) {
	const R = 5
	g := NewGuard(func() int { return R }, 0)
	var grants []Grant
	for range R {
		gr, err := g.Wait(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		grants = append(grants, gr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1200*time.Millisecond)
	defer cancel()
	if _, err := g.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("grant %d with %d results pending: err = %v, want a wait past 1.2 s", R+1, R, err)
	}
	grants[0].Done()
	t0 := time.Now()
	if _, err := g.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := time.Since(t0); got < 990*time.Millisecond {
		t.Errorf("granted %v after the first result, want one window (1 s) after it", got)
	}
}

// TestGuardConcurrent: waiters from several goroutines (sessions sharing a
// short code) on the real clock keep every window at R, their results
// coming after a round trip.
func TestGuardConcurrent(t *testing.T) {
	const R, total = 50, 130
	g := NewGuard(func() int { return R }, 0)
	var wg sync.WaitGroup
	var left atomic.Int64
	left.Store(total)
	var mu sync.Mutex
	var sent []submit
	for range 4 {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				gr, err := g.Wait(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				recv := time.Now()
				time.Sleep(time.Millisecond)
				gr.Done()
				mu.Lock()
				sent = append(sent, submit{granted: gr.At, received: recv, rate: R, seq: len(sent)})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(sent) != total {
		t.Fatalf("%d grants, want %d", len(sent), total)
	}
	checkSMSC(t, sent, g.Window())
}

// BenchmarkGuardWait measures a grant and its result when nothing waits
// (the normal case behind the throttle's spacing), on a clock that moves
// 5 ms at each reading (10 ms per grant: well under the rate).
func BenchmarkGuardWait(b *testing.B) {
	g := NewGuard(func() int { return 150 }, 0)
	t := time.Date(2026, 11, 27, 20, 0, 0, 0, time.UTC)
	g.now = func() time.Time { t = t.Add(5 * time.Millisecond); return t }
	ctx := context.Background()
	for b.Loop() {
		gr, err := g.Wait(ctx)
		if err != nil {
			b.Fatal(err)
		}
		gr.Done()
	}
}

// BenchmarkGuardWaitParallel: many sessions of one short code contending.
func BenchmarkGuardWaitParallel(b *testing.B) {
	g := NewGuard(func() int { return MaxRate }, 0)
	var ns atomic.Int64
	base := time.Now()
	g.now = func() time.Time { return base.Add(time.Duration(ns.Add(int64(5 * time.Millisecond)))) }
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			gr, err := g.Wait(context.Background())
			if err != nil {
				b.Error(err)
				return
			}
			gr.Done()
		}
	})
}

// TestGuardUrgentFirst: a marketing submit waiting for a place when a
// customer-relationship one arrives does not take the next place; the
// urgent one does, and the marketing one follows.
func TestGuardUrgentFirst(t *testing.T) {
	g := NewGuard(func() int { return 1 }, 0)
	gr, err := g.Wait(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	gr.Done() // the next place is free in 1 s
	order := make(chan string, 2)
	var wg sync.WaitGroup
	take := func(name string, wait func(context.Context) (Grant, error)) {
		gr, err := wait(t.Context())
		if err != nil {
			t.Error(err)
			return
		}
		order <- name
		gr.Done()
	}
	wg.Go(func() { take("marketing", g.Wait) })
	time.Sleep(100 * time.Millisecond) // marketing waits first
	wg.Go(func() { take("urgent", g.WaitUrgent) })
	wg.Wait()
	close(order)
	var got []string
	for n := range order {
		got = append(got, n)
	}
	if !slices.Equal(got, []string{"urgent", "marketing"}) {
		t.Errorf("places taken by %v, want the urgent submit first", got)
	}
}
