package smsclink

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"sync"
	"time"

	"pushsms.io/lib/shortcode"
	"pushsms.io/lib/ucp"
)

// Back-pressure (docs/smsc-link.md, "Back-pressure"): each short code's
// link state, written to bus.BucketLinkState for the throttle.
const (
	reasonNack04     = "nack_04"
	reasonAckTimeout = "ack_timeout"
	reasonLinkDown   = "link_down"

	// slowdownFloor: never below a tenth of the contract, so that the
	// link keeps probing and recovers.
	slowdownFloor = 0.1
	// slowdownRecover is the factor of each clean second.
	slowdownRecover = 1.25
	// achievedSeconds is the span "achieved" averages over.
	achievedSeconds = 10
	// roundTripSeconds is the span "ack_ms" averages over: long enough
	// for a steady figure at 10 SMS/s, short enough to follow the link.
	roundTripSeconds = 3
)

// linkState tracks one short code's back-pressure. Events come from the
// submit handlers; a writer goroutine (runLinkState) turns them into
// bucket writes: on every change of up, slowdown or reason, and at most
// once a second for achieved while traffic flows, never per message.
type linkState struct {
	mu       sync.Mutex
	up       bool
	slowdown float64
	reason   string
	// badSecond is the Unix second of the last halving: one halving per
	// second, because the NACKs or timeouts of one congestion come
	// together (the whole window was in flight) and are one signal.
	badSecond int64
	// lastBad is when the last NACK/timeout happened: recovery starts one
	// clean second after it.
	lastBad time.Time
	// accepted counts accepted 51s by Unix second, and the sum of the
	// times each held a place of the guard beyond 1 s (its grant's
	// lateness and grant-to-ACK), a ring of achievedSeconds+1 slots.
	accepted [achievedSeconds + 1]struct {
		sec  int64
		n    int64
		held time.Duration // summed
	}
	changed chan struct{} // wakes the writer (capacity 1)
}

func newLinkState() *linkState {
	return &linkState{slowdown: 1, reason: reasonLinkDown, changed: make(chan struct{}, 1)}
}

func (ls *linkState) kick() {
	select {
	case ls.changed <- struct{}{}:
	default:
	}
}

// setUp records whether a session of the short code is logged in.
func (ls *linkState) setUp(up bool) {
	ls.mu.Lock()
	ls.up = up
	switch {
	case !up:
		ls.reason = reasonLinkDown
	case ls.slowdown >= 1:
		ls.reason = ""
	}
	ls.mu.Unlock()
	ls.kick()
}

// result records the outcome of a written 51 and the time it held a place
// of the guard beyond 1 s: its grant's lateness, then from its grant to its
// result.
func (ls *linkState) result(now time.Time, rtt time.Duration, err error) {
	var nack *ucp.NackError
	var reason string
	switch {
	case err == nil:
		ls.mu.Lock()
		sec := now.Unix()
		slot := &ls.accepted[sec%int64(len(ls.accepted))]
		if slot.sec != sec {
			slot.sec, slot.n, slot.held = sec, 0, 0
		}
		slot.n++
		slot.held += rtt
		ls.mu.Unlock()
		return
	case errors.Is(err, ucp.ErrTimeout):
		reason = reasonAckTimeout
	case errors.As(err, &nack) && congestion(nack.Code):
		reason = reasonNack04
	default:
		return
	}
	ls.mu.Lock()
	ls.lastBad = now
	halved := false
	if sec := now.Unix(); sec != ls.badSecond {
		ls.badSecond = sec
		ls.slowdown = math.Max(slowdownFloor, ls.slowdown/2)
		ls.reason = reason
		halved = true
	}
	ls.mu.Unlock()
	if halved {
		ls.kick()
	}
}

// congestion tells the temporary NACKs that mean "slow down": 04 (not
// allowed now: the code operators use for throttling and overload, ucp.md
// §1.5), the ERMES network and system errors 50 and 55, and the
// proprietary 90–99 an operator may use for its throttle. 01 (checksum)
// and 37 (delivery in progress, one recipient's) say nothing about load.
func congestion(c ucp.ErrorCode) bool {
	return c == ucp.ECNotAllowed || c == ucp.ECLowNetworkStatus || c == ucp.ECSystemError || (c >= 90 && c <= 99)
}

// tick runs once a second: a second without a NACK or timeout while up
// is clean and lets the slowdown recover by a quarter. It reports whether
// the slowdown changed.
func (ls *linkState) tick(now time.Time) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if !ls.up || ls.slowdown >= 1 || now.Sub(ls.lastBad) < time.Second {
		return false
	}
	ls.slowdown = math.Min(1, ls.slowdown*slowdownRecover)
	if ls.slowdown >= 1 {
		ls.reason = ""
	}
	return true
}

// snapshot returns the state at now.
func (ls *linkState) snapshot(now time.Time) shortcode.LinkState {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	cur := now.Unix()
	var n, rttN int64
	var rtt time.Duration
	for _, s := range ls.accepted {
		if s.sec < cur && s.sec >= cur-achievedSeconds {
			n += s.n
		}
		if s.sec <= cur && s.sec > cur-roundTripSeconds {
			rtt += s.held
			rttN += s.n
		}
	}
	if rttN > 0 {
		rtt /= time.Duration(rttN)
	}
	return shortcode.LinkState{
		Up:        ls.up,
		Slowdown:  math.Round(ls.slowdown*1000) / 1000,
		Reason:    ls.reason,
		Achieved:  float64(n) / achievedSeconds,
		AckMillis: math.Ceil(float64(rtt)/float64(time.Microsecond)/100) / 10,
		At:        now.UTC().Truncate(time.Millisecond),
	}
}

// runLinkState writes l's state to the bucket until ctx ends, then once
// more (the sessions are closed by then: up=false).
func (s *Service) runLinkState(ctx context.Context, l *link) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last shortcode.LinkState
	var lastWrite time.Time
	written := false
	write := func(ctx context.Context, st shortcode.LinkState) {
		v, err := json.Marshal(st)
		if err != nil {
			return
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, err := s.linkKV.Put(wctx, l.acc.ShortCode, v); err != nil {
			s.Log.WarnContext(ctx, "link state not written", "short_code", l.acc.ShortCode, "err", err)
			return
		}
		last, lastWrite, written = st, st.At, true
	}
	for {
		select {
		case <-ctx.Done():
			st := l.state.snapshot(s.now())
			st.Up, st.Reason = false, reasonLinkDown
			write(context.WithoutCancel(ctx), st)
			return
		case <-t.C:
			l.state.tick(s.now())
		case <-l.state.changed:
		}
		now := s.now()
		st := l.state.snapshot(now)
		switch {
		case !written || st.Up != last.Up || st.Slowdown != last.Slowdown || st.Reason != last.Reason:
			write(ctx, st)
		case (st.Achieved != last.Achieved || st.AckMillis != last.AckMillis) && now.Sub(lastWrite) >= time.Second:
			// Traffic flows (or just stopped): at most once a second.
			write(ctx, st)
		}
	}
}
