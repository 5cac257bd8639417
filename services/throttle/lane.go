package throttle

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// class orders the traffic waiting on one short code: a lower class is
// released first.
type class int

const (
	// classUrgent: customer relationship (order tracking, credentials) and
	// the other functional families (MO replies, interpersonal, M2M).
	classUrgent class = iota
	// classBulk: marketing, and traffic that did not say what it is.
	classBulk
	numClasses
)

func classOf(c partnerv1.TrafficCategory) class {
	switch c {
	case partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING, partnerv1.TrafficCategory_TRAFFIC_CATEGORY_UNSPECIFIED:
		return classBulk
	}
	return classUrgent
}

// suspendedRecheck is how often a lane whose rate is 0 looks again.
const suspendedRecheck = time.Second

// maxPark bounds how long an event is given back to the server for its
// turn: an estimate made stale by a rate change is corrected at worst this
// late.
const maxPark = time.Hour

// pacing returns the spacing between releases at rate: period is the
// schedule (the guard is slack for delays between release and the SMSC),
// floor the hard minimum spacing, 1/rate.
func pacing(rate int, guard time.Duration) (period, floor time.Duration) {
	return (time.Second + guard) / time.Duration(rate), time.Second / time.Duration(rate)
}

// ticket is one message waiting on a lane for its segments' releases.
type ticket struct {
	class      class
	campaignID string
	// seq is the event's stream sequence: FIFO order within a class, so
	// that events handled concurrently, or a parked one coming back, keep
	// their place.
	seq uint64
	// grant receives the release time of each segment, one at a time.
	grant chan time.Time
	// evicted is closed when the lane drops a ticket whose campaign stopped
	// running before its first release.
	evicted chan struct{}

	// Owned by the lane (under lane.mu).
	remaining int  // segments not yet released
	started   bool // first segment released: the message will be finished
	ready     bool // a started ticket's handler waits for its next segment
	gone      bool // left the lane
}

func newTicket(c class, campaignID string, seq uint64, segments int) *ticket {
	return &ticket{
		class:      c,
		campaignID: campaignID,
		seq:        seq,
		remaining:  segments,
		grant:      make(chan time.Time, 1),
		evicted:    make(chan struct{}),
	}
}

// lane paces the releases of one short code. Messages are admitted while
// the lane holds less than lookahead of work; each then gets its segments
// one at a time, in class order, in stream order within a class, and a
// message whose first segment is out goes before any new one.
type lane struct {
	shortCode string
	rates     RateSource
	guard     time.Duration
	lookahead time.Duration
	running   func(campaignID string) bool
	wake      chan struct{}

	mu           sync.Mutex
	inflight     []*ticket // started, in start order
	queue        [numClasses][]*ticket
	work         [numClasses]int // unreleased segments of queued tickets
	inflightWork int             // unreleased segments of started tickets
	parkTail     [numClasses]time.Time
	sched        time.Time // when the last release was scheduled
	last         time.Time // when it happened
}

func newLane(shortCode string, rates RateSource, guard, lookahead time.Duration, running func(string) bool, now time.Time) *lane {
	// A new lane acts as if it had just released: it may follow a lane of
	// a process that stopped a moment ago, whose last release it cannot see.
	return &lane{
		shortCode: shortCode,
		rates:     rates,
		guard:     guard,
		lookahead: lookahead,
		running:   running,
		wake:      make(chan struct{}, 1),
		sched:     now,
		last:      now,
	}
}

func (l *lane) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// admit queues t if the lane holds less than its lookahead of work ahead of
// t. Otherwise it returns how long t should wait elsewhere (on the server)
// to come back about when its turn nears: parked tickets are given
// successive slots so that they return spread out, not as a herd.
func (l *lane) admit(t *ticket, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ahead := l.inflightWork
	for c := class(0); c <= t.class; c++ {
		ahead += l.work[c]
	}
	rate := l.rates.Rate(l.shortCode)
	if ahead == 0 {
		l.enqueue(t)
		return 0, true
	}
	if rate <= 0 {
		return suspendedRecheck, false
	}
	period, _ := pacing(rate, l.guard)
	if capacity := max(int(l.lookahead/period), 1); ahead < capacity {
		l.enqueue(t)
		return 0, true
	}
	due := later(l.parkTail[t.class], now.Add(time.Duration(ahead)*period))
	l.parkTail[t.class] = due.Add(time.Duration(t.remaining) * period)
	// Come back with half the lookahead still ahead, so that the lane does
	// not run dry while the event travels.
	wait := due.Sub(now) - l.lookahead/2
	return min(max(wait, l.lookahead/2), maxPark), false
}

func (l *lane) enqueue(t *ticket) {
	q := l.queue[t.class]
	i, _ := slices.BinarySearchFunc(q, t.seq, func(e *ticket, seq uint64) int { return cmp.Compare(e.seq, seq) })
	l.queue[t.class] = slices.Insert(q, i, t)
	l.work[t.class] += t.remaining
	l.poke()
}

// request tells the lane that the handler of started ticket t waits for
// its next segment.
func (l *lane) request(t *ticket) {
	l.mu.Lock()
	if t.started && !t.gone && t.remaining > 0 {
		t.ready = true
	}
	l.mu.Unlock()
	l.poke()
}

// leave removes t, whatever its state. It is idempotent.
func (l *lane) leave(t *ticket) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.remove(t)
}

func (l *lane) remove(t *ticket) {
	if t.gone {
		return
	}
	t.gone = true
	if t.started {
		if i := slices.Index(l.inflight, t); i >= 0 {
			l.inflight = slices.Delete(l.inflight, i, i+1)
			l.inflightWork -= t.remaining
		}
		return
	}
	q := l.queue[t.class]
	if i := slices.Index(q, t); i >= 0 {
		l.queue[t.class] = slices.Delete(q, i, i+1)
		l.work[t.class] -= t.remaining
	}
}

// evict drops t before its first release and tells its handler.
func (l *lane) evict(t *ticket) {
	l.remove(t)
	close(t.evicted)
}

// evictCampaign drops the unstarted tickets of a campaign that stopped
// running, so that their handlers react at once rather than at their turn.
func (l *lane) evictCampaign(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.queue {
		for _, t := range slices.Clone(l.queue[c]) {
			if t.campaignID == id {
				l.evict(t)
			}
		}
	}
}

// pick returns the ticket that gets the next release: a started message
// first, then the queues in class order.
func (l *lane) pick() *ticket {
	for _, t := range l.inflight {
		if t.ready {
			return t
		}
	}
	for c := range l.queue {
		if len(l.queue[c]) > 0 {
			return l.queue[c][0]
		}
	}
	return nil
}

// step releases at most one segment at now. It returns whether it did
// something (then step again at once), else how long to wait before trying
// again (0: until poked).
func (l *lane) step(now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.pick()
	if t == nil {
		return 0, false
	}
	if !t.started && !l.running(t.campaignID) {
		l.evict(t)
		return 0, true
	}
	rate := l.rates.Rate(l.shortCode)
	if rate <= 0 {
		return suspendedRecheck, false
	}
	period, floor := pacing(rate, l.guard)
	due := later(l.sched.Add(period), l.last.Add(floor))
	if now.Before(due) {
		return due.Sub(now), false
	}
	// A release a little late (timer, scheduler) keeps the schedule, so
	// that lateness does not eat throughput; the floor above still keeps
	// every two releases 1/rate apart. After an idle spell the schedule
	// starts again from now.
	if now.Sub(due) < period {
		l.sched = due
	} else {
		l.sched = now
	}
	l.last = now
	l.release(t, now)
	return 0, true
}

func (l *lane) release(t *ticket, now time.Time) {
	if !t.started {
		q := l.queue[t.class]
		l.queue[t.class] = slices.Delete(q, 0, 1) // pick takes the head
		l.work[t.class] -= t.remaining
		t.started = true
		l.inflight = append(l.inflight, t)
		l.inflightWork += t.remaining
	}
	t.ready = false
	t.remaining--
	l.inflightWork--
	if t.remaining == 0 {
		l.remove(t)
	}
	t.grant <- now // never blocks: a ticket is picked only with an empty grant
}

// run releases segments until ctx ends; now is the service's clock.
func (l *lane) run(ctx context.Context, now func() time.Time) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		wait, progressed := l.step(now())
		if progressed {
			continue
		}
		if wait > 0 && wait <= approach {
			preciseSleep(wait)
			continue
		}
		var fire <-chan time.Time
		if wait > 0 {
			timer.Reset(wait - approach)
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-l.wake:
		case <-fire:
		}
		timer.Stop()
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// lanes holds one lane per short code seen, each with its goroutine. Short
// codes are few (each is activated by the operator), so lanes live as long
// as the service.
type lanes struct {
	ctx       context.Context
	rates     RateSource
	guard     time.Duration
	lookahead time.Duration
	running   func(string) bool
	now       func() time.Time

	mu sync.Mutex
	m  map[string]*lane
	wg sync.WaitGroup
}

func (ls *lanes) get(shortCode string) *lane {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if l, ok := ls.m[shortCode]; ok {
		return l
	}
	l := newLane(shortCode, ls.rates, ls.guard, ls.lookahead, ls.running, ls.now())
	ls.m[shortCode] = l
	ls.wg.Go(func() { l.run(ls.ctx, ls.now) })
	return l
}

func (ls *lanes) evictCampaign(id string) {
	ls.mu.Lock()
	all := make([]*lane, 0, len(ls.m))
	for _, l := range ls.m {
		all = append(all, l)
	}
	ls.mu.Unlock()
	for _, l := range all {
		l.evictCampaign(id)
	}
}

// approach is the last stretch before a release that a lane sleeps with
// preciseSleep instead of a runtime timer. A depth-1 bucket cannot make up
// for a late release, and the runtime's timers wake about half a
// millisecond late: measured at 150/s, 10 % of the rate was lost that way,
// 2 % with the precise stretch. The lane cannot be poked during it, which
// changes nothing: nothing is released before the due time anyway.
const approach = time.Millisecond
