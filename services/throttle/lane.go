package throttle

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"pushsms.io/lib/rate"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
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

// catchUp bounds the lateness a lane makes up for: a release late by less
// (a timer, the scheduler, a busy machine) keeps the schedule, so that the
// next ones follow at once and the second still holds its R; later than
// that (an idle spell, a stall), the schedule restarts from now and the
// time is lost rather than spent in a burst. Either way no second holds
// more than R (the lane's History).
const catchUp = 100 * time.Millisecond

// ticket is one message waiting on a lane for its segments' releases.
type ticket struct {
	class      class
	campaignID string
	// tenant and weight place a marketing message in its flow: capacity
	// is shared among tenants by the short code's weights, then among a
	// tenant's campaigns by theirs (0 = 1).
	tenant string
	weight int
	// accepted is when ingest took the message: a short code cancelled
	// "before T" drops the messages accepted before T.
	accepted time.Time
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

// ticketFor is the ticket of message m (stream sequence seq, segments
// parts).
func ticketFor(m *eventsv1.MessageAccepted, seq uint64, segments int) *ticket {
	t := newTicket(classOf(m.GetCategory()), m.GetCampaignId(), seq, segments)
	t.tenant = m.GetTenantId()
	t.weight = int(m.GetWeight())
	if m.GetAcceptedAt() != nil {
		t.accepted = m.GetAcceptedAt().AsTime()
	}
	return t
}

// lane paces the releases of one short code. Messages are admitted while
// the lane holds less than lookahead of work; each then gets its segments
// one at a time: a message whose first segment is out goes before any new
// one, then the urgent class in stream order, then marketing shared by
// weight (fairQueue).
type lane struct {
	shortCode string
	rates     RateSource
	// contracted is the short code's rate before pauses and the link's
	// state (nil: unknown): a lane held before it ever ran parks its
	// backlog by it, rather than bringing every event back each second.
	contracted RateSource
	guard      time.Duration
	// roundTrip is the link's time from grant to ACK (nil: none known).
	// smsc-link's guard lets R segments go per 1 s plus it, so the lane
	// paces no faster: what it releases never queues in smsc-link.
	roundTrip func() time.Duration
	lookahead time.Duration
	running   func(campaignID string) bool
	// paused tells whether a campaign is paused (nil: none is): its
	// tickets stay in the lane, skipped, so that a resume releases them at
	// once.
	paused func(campaignID string) bool
	// dropped tells whether a ticket not yet started must leave the lane
	// (its short code was cancelled before it was accepted); nil: never.
	dropped func(t *ticket) bool
	wake    chan struct{}

	mu           sync.Mutex
	inflight     []*ticket // started, in start order
	urgent       []*ticket // by stream sequence
	bulk         *fairQueue
	work         [numClasses]int // unreleased segments of queued tickets
	inflightWork int             // unreleased segments of started tickets
	parkTail     time.Time       // of the urgent class; marketing's is per flow
	// tailRate is the rate the parking slots were given at: when the rate
	// changes, the slots still ahead are moved to the new pace.
	tailRate int
	lastRate int       // the last rate above 0 seen
	sched    time.Time // when the last release was scheduled
	// released holds the last releases' times: the schedule may catch up
	// a late release, never so that a 1-s window holds more than R.
	released rate.History
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
		bulk:      newFairQueue(nil),
		wake:      make(chan struct{}, 1),
		sched:     now,
	}
}

// slack is the time added to each second of schedule: the guard, or the
// link's round trip when longer.
func (l *lane) slack() time.Duration {
	if l.roundTrip == nil {
		return l.guard
	}
	return max(l.guard, l.roundTrip())
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
	// A marketing ticket's place depends on its flow's share, not on the
	// whole class: with a 3:1 split, the light flow's next message is
	// admitted while the heavy one's backlog waits on the server, so that
	// the lane always holds work of every flow.
	ahead := l.inflightWork + l.work[classUrgent]
	if t.class == classBulk {
		ahead += l.bulk.position(t)
	}
	r := l.rates.Rate(l.shortCode)
	if r > 0 {
		l.lastRate = r
	}
	if ahead == 0 {
		l.enqueue(t)
		return 0, true
	}
	if r <= 0 {
		if l.lastRate <= 0 && l.contracted != nil {
			l.lastRate = l.contracted.Rate(l.shortCode)
		}
		if l.lastRate <= 0 {
			return suspendedRecheck, false
		}
		// Held for a while (paused, link down): admit and park as if it
		// ran, so that the lane is full when it resumes and a long pause
		// does not bring its backlog back every second.
		r = l.lastRate
	}
	l.retimeTails(r, now)
	period := rate.Pacing(r, l.slack())
	if capacity := max(int(l.lookahead/period), 1); ahead < capacity {
		l.enqueue(t)
		return 0, true
	}
	tail := &l.parkTail
	if t.class == classBulk {
		tail = l.bulk.parkTail(t, now)
	}
	due := later(*tail, now.Add(time.Duration(ahead)*period))
	// Successive parked tickets of a flow are one release apart, as if the
	// flow had the lane to itself: the share of the others is unknown by
	// then (they may have run dry). Early is safe (the ticket is parked
	// again, a little further); late would let the lane run dry.
	*tail = due.Add(time.Duration(t.remaining) * period)
	// Come back with half the lookahead still ahead, so that the lane does
	// not run dry while the event travels.
	wait := due.Sub(now) - l.lookahead/2
	return min(max(wait, l.lookahead/2), maxPark), false
}

// retimeTails moves the parking slots still ahead to rate r when they were
// given at another rate. Without it, a short code whose rate was raised
// parks every new message behind slots spaced at the old pace, far beyond
// its turn at the new one: the lane runs dry and the raise is not used.
// Lowered, the slots move later (a ticket back early is parked again).
func (l *lane) retimeTails(r int, now time.Time) {
	old := l.tailRate
	l.tailRate = r
	if old == 0 || old == r {
		return
	}
	scale := func(tail *time.Time) {
		if tail.After(now) {
			*tail = now.Add(time.Duration(float64(tail.Sub(now)) * float64(old) / float64(r)))
		}
	}
	scale(&l.parkTail)
	for _, tail := range l.bulk.tails {
		scale(tail)
	}
}

func (l *lane) enqueue(t *ticket) {
	if t.class == classBulk {
		l.bulk.push(t)
	} else {
		i, _ := slices.BinarySearchFunc(l.urgent, t.seq, func(e *ticket, seq uint64) int { return cmp.Compare(e.seq, seq) })
		l.urgent = slices.Insert(l.urgent, i, t)
	}
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
	if t.class == classBulk {
		if l.bulk.remove(t) {
			l.work[t.class] -= t.remaining
		}
		return
	}
	if i := slices.Index(l.urgent, t); i >= 0 {
		l.urgent = slices.Delete(l.urgent, i, i+1)
		l.work[t.class] -= t.remaining
	}
}

// evict drops t before its first release and tells its handler.
func (l *lane) evict(t *ticket) {
	l.remove(t)
	close(t.evicted)
}

// evictWhere drops the unstarted tickets for which drop is true, so that
// their handlers react at once rather than at their turn.
func (l *lane) evictWhere(drop func(*ticket) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*ticket
	for _, t := range l.urgent {
		if drop(t) {
			out = append(out, t)
		}
	}
	l.bulk.each(func(t *ticket) {
		if drop(t) {
			out = append(out, t)
		}
	})
	for _, t := range out {
		l.evict(t)
	}
}

// evictCampaign drops the unstarted tickets of a campaign that stopped
// running.
func (l *lane) evictCampaign(id string) {
	l.evictWhere(func(t *ticket) bool { return t.campaignID == id })
}

// pick returns the ticket that gets the next release: a started message
// first, then the urgent class, then marketing by weight.
func (l *lane) pick() *ticket {
	for _, t := range l.inflight {
		if t.ready {
			return t
		}
	}
	for _, t := range l.urgent {
		if !l.isPaused(t.campaignID) {
			return t
		}
	}
	return l.bulk.head(l.isPaused)
}

func (l *lane) isPaused(campaignID string) bool {
	return campaignID != "" && l.paused != nil && l.paused(campaignID)
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
	if !t.started && ((!l.running(t.campaignID) && !l.isPaused(t.campaignID)) || (l.dropped != nil && l.dropped(t))) {
		l.evict(t)
		return 0, true
	}
	r := l.rates.Rate(l.shortCode)
	if r <= 0 {
		return suspendedRecheck, false
	}
	period := rate.Pacing(r, l.slack())
	due := later(l.sched.Add(period), l.released.Free(r, time.Second))
	if now.Before(due) {
		return due.Sub(now), false
	}
	if now.Sub(due) < catchUp {
		l.sched = due
	} else {
		l.sched = now
	}
	l.released.Add(now)
	l.release(t, now)
	return 0, true
}

func (l *lane) release(t *ticket, now time.Time) {
	if !t.started {
		if t.class == classBulk {
			l.bulk.pop(t) // pick took the head; charges its flow
		} else {
			l.urgent = slices.DeleteFunc(l.urgent, func(e *ticket) bool { return e == t })
		}
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
		var fire <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
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
	ctx        context.Context
	rates      RateSource
	contracted RateSource // before pauses and link state
	guard      time.Duration
	lookahead  time.Duration
	running    func(string) bool
	// paused tells whether a campaign is paused (nil: none is).
	paused func(campaignID string) bool
	now    func() time.Time
	// weights gives a tenant's weight on a short code (nil: 1 each).
	weights func(shortCode, tenant string) int
	// roundTrip gives a short code's link round trip (nil: none known).
	roundTrip func(shortCode string) time.Duration
	// dropped tells whether a ticket not yet started must leave its lane
	// (short code cancelled before it was accepted); nil: never.
	dropped func(shortCode string, t *ticket) bool

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
	l.contracted = ls.contracted
	if ls.weights != nil {
		l.bulk.weight = func(tenant string) int { return ls.weights(shortCode, tenant) }
	}
	if ls.dropped != nil {
		l.dropped = func(t *ticket) bool { return ls.dropped(shortCode, t) }
	}
	if ls.roundTrip != nil {
		l.roundTrip = func() time.Duration { return ls.roundTrip(shortCode) }
	}
	l.paused = ls.paused
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

// pokeAll makes every lane look again at once (a campaign resumed).
func (ls *lanes) pokeAll() {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, l := range ls.m {
		l.poke()
	}
}

// lookup returns the lane of shortCode if it exists.
func (ls *lanes) lookup(shortCode string) (*lane, bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l, ok := ls.m[shortCode]
	return l, ok
}

// poke makes the lane of shortCode look again at once (its rate, pause or
// weights changed), instead of at its next recheck.
func (ls *lanes) poke(shortCode string) {
	if l, ok := ls.lookup(shortCode); ok {
		l.poke()
	}
}

// evictShortCode drops the unstarted tickets of shortCode accepted before
// before (CancelShortCode).
func (ls *lanes) evictShortCode(shortCode string, before time.Time) {
	if l, ok := ls.lookup(shortCode); ok {
		l.evictWhere(func(t *ticket) bool { return t.accepted.Before(before) })
	}
}

// fairQueue holds the marketing tickets of a lane and decides which goes
// next: stride scheduling on two levels. Each tenant, and each flow (a
// campaign; a tenant's single messages are one flow) within its tenant,
// has a pass in virtual time; the one with the lowest pass goes next and
// its pass grows by cost/weight, the cost being the message's segments (a
// 3-part message uses 3 releases). Over a backlog each gets releases in
// proportion to its weight. Within a flow, stream order.
//
// A flow or tenant that becomes active again starts at the current virtual
// time, not at its old pass: idle time is not banked as credit to burst
// later (it keeps a debt, though: a pass ahead of the virtual time stays).
type fairQueue struct {
	// weight of a tenant (the short code's "<sc>.weights"); nil: 1 each.
	weight  func(tenant string) int
	vtime   float64 // pass of the tenant last served
	tenants map[string]*tenantQueue
	tails   map[flowKey]*time.Time // parking slots per flow
}

type flowKey struct{ tenant, campaign string }

type tenantQueue struct {
	work   int // unreleased segments of its queued tickets
	pass   float64
	vtime  float64 // pass of the flow last served
	active int     // flows with tickets
	flows  map[string]*flowQueue
}

type flowQueue struct {
	work   int // unreleased segments of its queued tickets
	pass   float64
	weight int
	q      []*ticket // by stream sequence
}

func newFairQueue(weight func(string) int) *fairQueue {
	return &fairQueue{weight: weight, tenants: map[string]*tenantQueue{}, tails: map[flowKey]*time.Time{}}
}

func (f *fairQueue) tenantWeight(tenant string) float64 {
	if f.weight == nil {
		return 1
	}
	return float64(max(f.weight(tenant), 1))
}

func (f *fairQueue) push(t *ticket) {
	tq := f.tenants[t.tenant]
	if tq == nil {
		tq = &tenantQueue{pass: f.vtime, flows: map[string]*flowQueue{}}
		f.tenants[t.tenant] = tq
	}
	fl := tq.flows[t.campaignID]
	if fl == nil {
		fl = &flowQueue{pass: tq.vtime}
		tq.flows[t.campaignID] = fl
	}
	fl.weight = max(t.weight, 1)
	if len(fl.q) == 0 {
		fl.pass = max(fl.pass, tq.vtime)
		if tq.active == 0 {
			tq.pass = max(tq.pass, f.vtime)
		}
		tq.active++
	}
	i, _ := slices.BinarySearchFunc(fl.q, t.seq, func(e *ticket, seq uint64) int { return cmp.Compare(e.seq, seq) })
	fl.q = slices.Insert(fl.q, i, t)
	fl.work += t.remaining
	tq.work += t.remaining
}

// head returns the ticket to serve next, nil if none, skipping the flows
// of paused campaigns. Ties go to the lower stream sequence, so that the
// order is deterministic.
func (f *fairQueue) head(paused func(campaign string) bool) *ticket {
	var best *tenantQueue
	var bestHead *ticket
	for name, tq := range f.tenants {
		if tq.active == 0 {
			if tq.pass <= f.vtime {
				delete(f.tenants, name) // no debt left: forget it
			}
			continue
		}
		h := tq.head(paused)
		if h == nil {
			// Every flow paused: like an idle tenant, it banks no credit.
			tq.pass = max(tq.pass, f.vtime)
			continue
		}
		if best == nil || tq.pass < best.pass || (tq.pass == best.pass && h.seq < bestHead.seq) {
			best, bestHead = tq, h
		}
	}
	return bestHead
}

func (tq *tenantQueue) head(paused func(campaign string) bool) *ticket {
	var best *flowQueue
	for name, fl := range tq.flows {
		if len(fl.q) == 0 {
			if fl.pass <= tq.vtime {
				delete(tq.flows, name)
			}
			continue
		}
		if paused(name) {
			// A paused campaign banks no credit either: resumed, it
			// shares from then on, it does not catch up.
			fl.pass = max(fl.pass, tq.vtime)
			continue
		}
		if best == nil || fl.pass < best.pass || (fl.pass == best.pass && fl.q[0].seq < best.q[0].seq) {
			best = fl
		}
	}
	if best == nil {
		return nil
	}
	return best.q[0]
}

// pop removes t, the head, and charges its segments to its flow and
// tenant.
func (f *fairQueue) pop(t *ticket) {
	tq := f.tenants[t.tenant]
	fl := tq.flows[t.campaignID]
	f.vtime, tq.vtime = tq.pass, fl.pass
	cost := float64(t.remaining)
	f.take(tq, fl, t)
	fl.pass += cost / float64(fl.weight)
	tq.pass += cost / f.tenantWeight(t.tenant)
}

// remove takes t out without charging it (evicted, handler gone); it
// reports whether t was queued.
func (f *fairQueue) remove(t *ticket) bool {
	tq := f.tenants[t.tenant]
	if tq == nil {
		return false
	}
	fl := tq.flows[t.campaignID]
	if fl == nil || !slices.Contains(fl.q, t) {
		return false
	}
	f.take(tq, fl, t)
	return true
}

func (f *fairQueue) take(tq *tenantQueue, fl *flowQueue, t *ticket) {
	fl.q = slices.DeleteFunc(fl.q, func(e *ticket) bool { return e == t })
	fl.work -= t.remaining
	tq.work -= t.remaining
	if len(fl.q) == 0 {
		tq.active--
	}
}

func (f *fairQueue) each(fn func(*ticket)) {
	for _, tq := range f.tenants {
		for _, fl := range tq.flows {
			for _, t := range fl.q {
				fn(t)
			}
		}
	}
}

// position estimates the marketing work released before t if it were
// queued now: its flow's queued work, plus what the other flows get
// meanwhile by their weights, each at most what it has queued (a flow
// with little work does not take its full share for long); the same
// between tenants.
func (f *fairQueue) position(t *ticket) int {
	own, fw := 0, float64(max(t.weight, 1))
	tq := f.tenants[t.tenant]
	if tq != nil {
		if fl := tq.flows[t.campaignID]; fl != nil {
			own = fl.work
		}
	}
	// Within the tenant.
	within := float64(own)
	if tq != nil {
		for name, fl := range tq.flows {
			if name == t.campaignID || len(fl.q) == 0 {
				continue
			}
			within += min(float64(fl.work), float64(own)*float64(fl.weight)/fw)
		}
	}
	// Between tenants.
	ahead, tw := within, f.tenantWeight(t.tenant)
	for name, other := range f.tenants {
		if name == t.tenant || other.active == 0 {
			continue
		}
		ahead += min(float64(other.work), within*f.tenantWeight(name)/tw)
	}
	return int(ahead)
}

// parkTail returns the parking slot of t's flow, forgetting slots already
// past.
func (f *fairQueue) parkTail(t *ticket, now time.Time) *time.Time {
	if len(f.tails) > 256 {
		for k, v := range f.tails {
			if v.Before(now) {
				delete(f.tails, k)
			}
		}
	}
	k := flowKey{t.tenant, t.campaignID}
	p := f.tails[k]
	if p == nil {
		p = new(time.Time)
		f.tails[k] = p
	}
	return p
}
