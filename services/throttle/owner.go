package throttle

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"pushsms.io/lib/bus"
)

// Leases (bus.BucketThrottleLeases) give each short code one owner at a
// time: only the owner consumes its events and releases its segments. The
// timing keeps two owners' releases out of any common 1-second window,
// so a failover cannot break the rate:
//
//   - the owner renews its lease every leaseRenew, to now + leaseTTL;
//   - it releases nothing at or after until − leaseMargin (its fence),
//     whatever happens to its renewals: an owner that cannot reach the
//     server stops on its own, before anyone may take over;
//   - a new owner claims a lease only once it is free or its until has
//     passed, and releases nothing before until − leaseMargin +
//     handoverGap: at least handoverGap after the last release the
//     previous owner could make.
//
// A dead owner's short codes are owned again when its leases end, at most
// leaseTTL after its last renewal (the others wake for it), and released
// from handoverGap − leaseMargin later: 2.5 s after the death at worst.
const (
	leaseTTL    = 2 * time.Second
	leaseRenew  = 500 * time.Millisecond
	leaseMargin = 500 * time.Millisecond
	handoverGap = time.Second
	// discoverEvery is how often the short codes with events in
	// SMS_CLEARED are listed (one request answered from the stream's
	// subject index): a short code neither configured (-rates) nor in the
	// SHORT_CODES bucket is owned at most this long after its first
	// event. Listening to every cleared event instead would deliver the
	// whole traffic to every replica once more, for the rare new short
	// code.
	discoverEvery = time.Second
	// replicaTTL is how long a replica's heartbeat counts it as alive for
	// the share of short codes each takes: as long as its leases, so that
	// a dead replica stops counting when its short codes become free (a
	// longer one would cap the survivors' share while they are free).
	replicaTTL = leaseTTL
	// replicaPrefix starts the heartbeat keys in the leases bucket; short
	// code keys are digits.
	replicaPrefix = "replica."
	// migrationKey records, once the single consumer of the versions
	// before ownership was retired, the stream sequence after the last
	// event it took: every per-short-code consumer created since starts
	// there, so that none releases again what it released (migrate.go).
	migrationKey = "migration.start"
	// publishSlack bounds a release's publish: the fence minus this is
	// the publish's deadline, so that a publish that hangs is not stored
	// after the fence.
	publishSlack = 100 * time.Millisecond
)

// ConsumerPrefix starts the name of each short code's durable consumer on
// SMS_CLEARED: "throttle-<short code>", filtered on sms.cleared.*.<short
// code>.
const ConsumerPrefix = "throttle-"

// ConsumerName is the durable consumer of shortCode's cleared events.
func ConsumerName(shortCode string) string { return ConsumerPrefix + shortCode }

// clearedFilter is the subject filter of shortCode's consumer.
func clearedFilter(shortCode string) string { return "sms.cleared.*." + shortCode }

// lease is a value of the leases bucket: a short code's owner and until
// when. Owner "" is a lease given back (graceful stop, rebalance): free to
// claim, Until still tells when the previous owner's releases ended (plus
// the margin).
type lease struct {
	Owner string    `json:"owner"`
	Until time.Time `json:"until"`
	// Floor is the stream sequence up to which the short code's consumer
	// had acknowledged every event when the owner last looked: where a
	// consumer lost with the servers' memory starts again (ConsumerSpec
	// MemoryState). What it releases again between the floor and where it
	// was is stored once (the submits' ids, within the duplicate window).
	Floor uint64 `json:"floor,omitempty"`
}

func parseLease(v []byte) (lease, error) {
	var l lease
	if err := json.Unmarshal(v, &l); err != nil {
		return lease{}, fmt.Errorf("lease: %w", err)
	}
	return l, nil
}

// free tells whether the lease can be claimed at now.
func (l lease) free(now time.Time) bool { return l.Owner == "" || !now.Before(l.Until) }

// firstRelease is the earliest release of the next owner.
func (l lease) firstRelease() time.Time {
	if l.Until.IsZero() {
		return time.Time{}
	}
	return l.Until.Add(-leaseMargin + handoverGap)
}

var replicaIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// newReplicaID names a replica: host name and a random suffix, so that a
// restarted process is a new owner.
func newReplicaID() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r < 128 && replicaIDPattern.MatchString(string(r)) {
			return r
		}
		return '_'
	}, host)
	var b [4]byte
	_, _ = rand.Read(b[:])
	return truncate(host, 48) + "-" + hex.EncodeToString(b[:])
}

// validConsumerToken tells whether a short code can name a consumer and a
// key (the subject token ingest wrote: digits, or "_" for an unusable one).
func validConsumerToken(sc string) bool {
	return sc != "" && len(sc) <= 32 && replicaIDPattern.MatchString(sc)
}

// ownership is this replica's hold on one short code.
type ownership struct {
	shortCode string
	// fence (unix ns): nothing is released at or after it.
	fence atomic.Int64
	// lost is closed when the replica stops owning the short code: its
	// handlers give their events back at once, started messages included.
	lost     chan struct{}
	lostOnce sync.Once
	// leaving is closed when the replica gives the short code back
	// (stopping, rebalancing): events not started go back, started
	// messages are finished first (fence permitting), so that their parts
	// are not split across owners.
	leaving     chan struct{}
	leavingOnce sync.Once

	// floor: the consumer's ack floor, last read (lease.Floor).
	floor atomic.Uint64

	// Owned by the owner's loop.
	rev   uint64
	until time.Time
	// done is closed when the consumer has stopped (or never started).
	done chan struct{}
}

func newOwnership(sc string) *ownership {
	return &ownership{shortCode: sc, lost: make(chan struct{}), leaving: make(chan struct{}), done: make(chan struct{})}
}

// releasable tells whether a release at now is allowed.
func (o *ownership) releasable(now time.Time) bool { return now.UnixNano() < o.fence.Load() }

// fenceTime is the time releases stop at.
func (o *ownership) fenceTime() time.Time { return time.Unix(0, o.fence.Load()) }

// extend moves the fence to t, unless the short code was dropped.
func (o *ownership) extend(t time.Time) {
	for {
		old := o.fence.Load()
		if old == math.MinInt64 || o.fence.CompareAndSwap(old, t.UnixNano()) {
			return
		}
	}
}

func (o *ownership) leave() {
	o.leavingOnce.Do(func() { close(o.leaving) })
}

func (o *ownership) drop() {
	o.lostOnce.Do(func() {
		o.fence.Store(math.MinInt64)
		close(o.lost)
	})
}

// consumeFunc starts the consumer of a short code with its handler bound
// to o; it returns once the consumer runs.
type consumeFunc func(ctx context.Context, o *ownership) (*bus.Consumer, error)

// owner claims, renews and gives back this replica's leases.
type owner struct {
	id      string
	log     *slog.Logger
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	consume consumeFunc

	mu       sync.Mutex
	held     map[string]*ownership
	leases   map[string]lease     // the bucket's view, from the watch
	replicas map[string]time.Time // heartbeat until, by replica id
	codes    map[string]bool      // from the SHORT_CODES bucket's keys
	startSeq uint64               // migrationKey's value; 0: none
	wake     chan struct{}
	wg       sync.WaitGroup
	closed   bool
}

func newOwner(ctx context.Context, id string, b *bus.Bus, log *slog.Logger, consume consumeFunc) (*owner, error) {
	kv, err := b.JS.KeyValue(ctx, bus.BucketThrottleLeases)
	if err != nil {
		return nil, fmt.Errorf("leases bucket: %w", err)
	}
	return &owner{
		id: id, log: log, js: b.JS, kv: kv, consume: consume,
		held: map[string]*ownership{}, leases: map[string]lease{}, replicas: map[string]time.Time{},
		codes: map[string]bool{}, wake: make(chan struct{}, 1),
	}, nil
}

func (ow *owner) poke() {
	select {
	case ow.wake <- struct{}{}:
	default:
	}
}

// setLease applies one entry of the leases bucket (watch callback). A
// lease given back wakes the loop, so that a graceful stop hands over at
// once rather than at the next tick.
func (ow *owner) setLease(key string, value []byte) {
	ow.mu.Lock()
	defer ow.mu.Unlock()
	if key == migrationKey {
		if seq, err := strconv.ParseUint(string(value), 10, 64); err == nil {
			ow.startSeq = seq
		}
		return
	}
	if id, ok := strings.CutPrefix(key, replicaPrefix); ok {
		if value == nil {
			delete(ow.replicas, id)
			ow.poke()
			return
		}
		if l, err := parseLease(value); err == nil {
			ow.replicas[id] = l.Until
		}
		return
	}
	if value == nil {
		delete(ow.leases, key)
		ow.poke()
		return
	}
	l, err := parseLease(value)
	if err != nil {
		ow.log.Warn("bad lease ignored until it expires", "short_code", key, "err", err)
		l = lease{Owner: "?", Until: time.Now().Add(leaseTTL)}
	}
	ow.leases[key] = l
	if l.Owner == "" {
		ow.poke()
	}
}

// setShortCode notes a short code from a SHORT_CODES key ("<sc>.rate"...).
func (ow *owner) setShortCode(key string, value []byte) {
	sc, _, _ := strings.Cut(key, ".")
	if value == nil || !validConsumerToken(sc) {
		return
	}
	ow.mu.Lock()
	if !ow.codes[sc] {
		ow.codes[sc] = true
		ow.poke()
	}
	ow.mu.Unlock()
}

// run keeps the heartbeat and the leases until ctx ends; then the caller
// calls close.
func (ow *owner) run(ctx context.Context) {
	tick := time.NewTicker(leaseRenew)
	defer tick.Stop()
	var lastDiscover time.Time
	var streamCodes []string
	for {
		now := time.Now()
		ow.heartbeat(ctx, now)
		ow.renew(ctx, now)
		if now.Sub(lastDiscover) >= discoverEvery {
			if sc, err := ow.discover(ctx); err != nil {
				ow.log.Warn("listing short codes failed", "err", err)
			} else {
				streamCodes, lastDiscover = sc, now
			}
			ow.sweep(ctx, now)
		}
		next := ow.balance(ctx, streamCodes)
		// Wake when the next lease of another replica ends, rather than
		// at the following tick: a dead replica's short codes are claimed
		// the moment they are free.
		var expiry <-chan time.Time
		var tm *time.Timer
		if !next.IsZero() {
			tm = time.NewTimer(time.Until(next) + time.Millisecond)
			expiry = tm.C
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		case <-ow.wake:
		case <-expiry:
		}
		if tm != nil {
			tm.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

func (ow *owner) heartbeat(ctx context.Context, now time.Time) {
	v, _ := json.Marshal(lease{Owner: ow.id, Until: now.Add(replicaTTL)})
	if _, err := ow.kv.Put(ctx, replicaPrefix+ow.id, v); err != nil && ctx.Err() == nil {
		ow.log.Warn("replica heartbeat failed", "err", err)
	}
}

// renew extends every lease held. A lease someone else changed is lost at
// once; a lease that cannot be renewed is lost at its fence.
func (ow *owner) renew(ctx context.Context, now time.Time) {
	ow.mu.Lock()
	held := make([]*ownership, 0, len(ow.held))
	for _, o := range ow.held {
		held = append(held, o)
	}
	ow.mu.Unlock()
	// Concurrently: one renewal is a round trip, and 200 of them in a row
	// on a loaded machine could take longer than the margin.
	sem := make(chan struct{}, renewConcurrency)
	var wg sync.WaitGroup
	for _, o := range held {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ow.renewOne(ctx, o, now)
		})
	}
	wg.Wait()
}

// renewConcurrency bounds the renewals in flight.
const renewConcurrency = 32

func (ow *owner) renewOne(ctx context.Context, o *ownership, now time.Time) {
	until := now.Add(leaseTTL)
	v, _ := json.Marshal(lease{Owner: ow.id, Until: until, Floor: o.floor.Load()})
	rev, err := ow.kv.Update(ctx, o.shortCode, v, o.rev)
	if err == nil {
		o.rev, o.until = rev, until
		o.extend(until.Add(-leaseMargin))
		return
	}
	if ctx.Err() != nil {
		return
	}
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		ow.log.Warn("lease taken by another replica", "short_code", o.shortCode)
		ow.lose(o, false)
		return
	}
	if !o.releasable(time.Now()) {
		ow.log.Warn("lease not renewed in time; short code given up", "short_code", o.shortCode, "err", err)
		ow.lose(o, false)
	}
}

// sweep deletes the heartbeats of replicas gone for a minute (crashed:
// a stopping replica deletes its own), so that they do not pile up.
func (ow *owner) sweep(ctx context.Context, now time.Time) {
	ow.mu.Lock()
	var gone []string
	for id, until := range ow.replicas {
		if id != ow.id && now.Sub(until) > time.Minute {
			gone = append(gone, id)
		}
	}
	ow.mu.Unlock()
	for _, id := range gone {
		if err := ow.kv.Delete(ctx, replicaPrefix+id); err != nil && ctx.Err() == nil {
			ow.log.Warn("deleting a dead replica's heartbeat failed", "replica", id, "err", err)
		}
	}
}

// discover lists the short codes that have events in SMS_CLEARED.
func (ow *owner) discover(ctx context.Context) ([]string, error) {
	st, err := ow.js.Stream(ctx, bus.StreamCleared)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(bus.SubjectCleared))
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for subject := range info.State.Subjects {
		sc := subject[strings.LastIndexByte(subject, '.')+1:]
		if validConsumerToken(sc) {
			seen[sc] = true
		}
	}
	out := make([]string, 0, len(seen))
	for sc := range seen {
		out = append(out, sc)
	}
	return out, nil
}

// balance claims free short codes up to this replica's share, ceil(short
// codes / live replicas), and gives back one above it per round, so that
// a replica that joins gets its share without a herd of handovers. It
// returns when the next lease of another replica ends (zero: none).
func (ow *owner) balance(ctx context.Context, streamCodes []string) time.Time {
	now := time.Now()
	ow.mu.Lock()
	all := map[string]bool{}
	for _, sc := range streamCodes {
		all[sc] = true
	}
	for sc := range ow.codes {
		all[sc] = true
	}
	for sc := range ow.leases {
		all[sc] = true
	}
	live := 1
	for id, until := range ow.replicas {
		if id != ow.id && now.Before(until) {
			live++
		}
	}
	share := (len(all) + live - 1) / live
	var free []string
	var next time.Time
	for sc := range all {
		if _, mine := ow.held[sc]; mine {
			continue
		}
		l, ok := ow.leases[sc]
		if !ok || l.free(now) {
			free = append(free, sc)
		} else if next.IsZero() || l.Until.Before(next) {
			next = l.Until
		}
	}
	nHeld := len(ow.held)
	var extra *ownership
	if nHeld > share {
		// The lowest short code, so that replicas agree on what moves.
		codes := make([]string, 0, nHeld)
		for sc := range ow.held {
			codes = append(codes, sc)
		}
		slices.Sort(codes)
		extra = ow.held[codes[0]]
	}
	ow.mu.Unlock()

	slices.Sort(free)
	for _, sc := range free {
		if nHeld >= share || ctx.Err() != nil {
			break
		}
		if ow.claim(ctx, sc, now) {
			nHeld++
		}
	}
	if extra != nil && len(free) == 0 {
		ow.log.Info("giving a short code back for balance", "short_code", extra.shortCode, "share", share)
		ow.lose(extra, true)
	}
	return next
}

// claim takes the lease of sc if it is still free, and starts its consumer
// at the lease's first release time.
func (ow *owner) claim(ctx context.Context, sc string, now time.Time) bool {
	until := now.Add(leaseTTL)
	v, _ := json.Marshal(lease{Owner: ow.id, Until: until})
	var prev lease
	var rev uint64
	e, err := ow.kv.Get(ctx, sc)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		rev, err = ow.kv.Create(ctx, sc, v)
	case err != nil:
	default:
		if prev, err = parseLease(e.Value()); err != nil {
			// Unreadable: taken over like an expired one, after the
			// longest a lease lasts.
			prev = lease{Owner: "?", Until: now.Add(leaseTTL)}
			err = nil
		}
		if !prev.free(now) {
			return false
		}
		v, _ = json.Marshal(lease{Owner: ow.id, Until: until, Floor: prev.Floor})
		rev, err = ow.kv.Update(ctx, sc, v, e.Revision())
	}
	if err != nil {
		return false // another replica was faster, or the server is away
	}
	o := newOwnership(sc)
	o.rev, o.until = rev, until
	o.floor.Store(prev.Floor)
	o.fence.Store(until.Add(-leaseMargin).UnixNano())
	start := prev.firstRelease()
	ow.mu.Lock()
	if ow.closed {
		ow.mu.Unlock()
		o.drop()
		close(o.done)
		return false
	}
	ow.held[sc] = o
	ow.leases[sc] = lease{Owner: ow.id, Until: until}
	ow.mu.Unlock()
	ow.log.Info("short code owned", "short_code", sc, "replica", ow.id, "first_release", start)
	ow.wg.Go(func() { ow.serve(ctx, o, start) })
	return true
}

// serve consumes o's events from start until the short code is lost.
func (ow *owner) serve(ctx context.Context, o *ownership, start time.Time) {
	defer close(o.done)
	if d := time.Until(start); d > 0 {
		tm := time.NewTimer(d)
		select {
		case <-tm.C:
		case <-o.lost:
			tm.Stop()
			return
		case <-o.leaving:
			tm.Stop()
			return
		case <-ctx.Done():
			tm.Stop()
			return
		}
	}
	for {
		cons := ow.start(ctx, o)
		if cons == nil {
			return
		}
		if !ow.watchFloor(ctx, o, cons) {
			cons.Stop()
			return
		}
		// The consumer is gone with the servers' memory: stop what is
		// left of it and create it again from the floor.
		ow.log.Warn("short code consumer lost; created again from its ack floor", "short_code", o.shortCode, "floor", o.floor.Load())
		cons.Stop()
	}
}

// start creates o's consumer, retrying until it is up or o is lost or left
// (nil).
func (ow *owner) start(ctx context.Context, o *ownership) *bus.Consumer {
	for attempt := 0; ; attempt++ {
		cons, err := ow.consume(ctx, o)
		if err == nil {
			return cons
		}
		ow.log.Warn("starting short code consumer failed", "short_code", o.shortCode, "err", err)
		select {
		case <-o.lost:
			return nil
		case <-o.leaving:
			return nil
		case <-time.After(min(100*time.Millisecond<<min(attempt, 5), 2*time.Second)):
		}
	}
}

// floorEvery is how often an owner reads its consumers' ack floors (one
// request each): what a consumer lost with the servers' memory releases
// again is at most this much older than the loss, and stored once.
const floorEvery = 2 * time.Second

// watchFloor keeps o.floor up to date until o is lost or left (false) or
// its consumer is gone (true).
func (ow *owner) watchFloor(ctx context.Context, o *ownership, cons *bus.Consumer) bool {
	tick := time.NewTicker(floorEvery)
	defer tick.Stop()
	for {
		select {
		case <-o.lost:
			return false
		case <-o.leaving:
			return false
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
		rctx, cancel := context.WithTimeout(ctx, floorEvery)
		pos, err := cons.Position(rctx)
		cancel()
		switch {
		case err == nil:
			if pos.AckFloor > o.floor.Load() {
				o.floor.Store(pos.AckFloor)
			}
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			return true
		}
	}
}

// lose stops owning o. When giveBack (stopping, rebalancing), the consumer
// stops first, letting started messages finish, then releases stop and
// the lease is given back so that the next owner need not wait for it to
// expire. Otherwise (lease lost) releases stop at once and every handler
// gives its event back.
func (ow *owner) lose(o *ownership, giveBack bool) {
	ow.mu.Lock()
	if ow.held[o.shortCode] == o {
		delete(ow.held, o.shortCode)
	}
	ow.mu.Unlock()
	ow.wg.Go(func() {
		if giveBack {
			o.leave()
			<-o.done
			o.drop()
			ow.giveBack(o)
			return
		}
		o.drop()
		<-o.done
	})
}

// giveBack writes a free lease whose until tells the next owner when this
// one's releases ended.
func (ow *owner) giveBack(o *ownership) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, _ := json.Marshal(lease{Until: time.Now().Add(leaseMargin), Floor: o.floor.Load()})
	if _, err := ow.kv.Update(ctx, o.shortCode, v, o.rev); err != nil {
		ow.log.Warn("giving a lease back failed; it expires", "short_code", o.shortCode, "err", err)
	}
}

// close gives every lease back once its consumer has stopped, and the
// heartbeat.
func (ow *owner) close() {
	ow.mu.Lock()
	ow.closed = true
	held := make([]*ownership, 0, len(ow.held))
	for _, o := range ow.held {
		held = append(held, o)
	}
	ow.mu.Unlock()
	for _, o := range held {
		ow.lose(o, true)
	}
	ow.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = ow.kv.Delete(ctx, replicaPrefix+ow.id)
}

// owned returns the short codes this replica owns.
// startSequence is where a per-short-code consumer created now starts:
// after a migration, the event after the last the legacy consumer took;
// else 0 (the stream's first).
func (ow *owner) startSequence() uint64 {
	ow.mu.Lock()
	defer ow.mu.Unlock()
	return ow.startSeq
}

func (ow *owner) owned() []string {
	ow.mu.Lock()
	defer ow.mu.Unlock()
	out := make([]string, 0, len(ow.held))
	for sc := range ow.held {
		out = append(out, sc)
	}
	slices.Sort(out)
	return out
}
