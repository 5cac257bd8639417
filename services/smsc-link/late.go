package smsclink

import (
	"context"
	"sync"
	"time"

	"pushsms.io/lib/ucp"
)

// inDoubt remembers the 51s reported UNKNOWN after an ACK timeout, until
// their late result comes (ucp.Options.OnLateResult) or they are too old
// for one to come. A late ACK stores the correlation key, so the segment's
// DRs resolve it, and records the attempt as submitted, so the UNKNOWN
// resend policy leaves it alone.
type inDoubt struct {
	mu sync.Mutex
	m  map[*ucp.Submit]doubt
}

type doubt struct {
	ref       segmentRef
	akey      string
	recipient string
	at        time.Time
	// recorded is closed once the UNKNOWN outcome is written, so that a
	// late ACK arriving meanwhile is written after it, not under it.
	recorded chan struct{}
}

// forgetAfter bounds how long a timed-out 51 waits for its late result: a
// session keeps a timed-out TRN until the result or its own end.
const forgetAfter = 30 * time.Minute

func (d *inDoubt) add(sub *ucp.Submit, x doubt) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = make(map[*ucp.Submit]doubt)
	}
	for k, v := range d.m {
		if x.at.Sub(v.at) > forgetAfter {
			delete(d.m, k)
		}
	}
	d.m[sub] = x
}

func (d *inDoubt) take(sub *ucp.Submit) (doubt, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	x, ok := d.m[sub]
	delete(d.m, sub)
	return x, ok
}

// lateResult is the sessions' OnLateResult.
func (s *Service) lateResult(op ucp.Message, r ucp.Result) {
	sub, ok := op.(*ucp.Submit)
	if !ok {
		return
	}
	x, ok := s.doubts.take(sub)
	if !ok || !r.Ack {
		return
	}
	k, ok := r.Key()
	if !ok || len(k.SCTS) != 12 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := corrKey(x.recipient, k.SCTS)
	if err := s.persist(func() error { _, err := s.storeRef(ctx, key, x.ref); return err }); err != nil {
		s.Log.WarnContext(ctx, "late smsc ACK not recorded; the segment stays unknown", "message_id", x.ref.MessageID, "segment", x.ref.Index, "err", err)
		return
	}
	select {
	case <-x.recorded:
	case <-ctx.Done():
	}
	s.recordOutcome(ctx, x.ref, x.akey, attempt{State: attemptSubmitted, SCTS: k.SCTS, Key: key})
	s.stats.lateAcks.Add(1)
	s.Log.InfoContext(ctx, "late smsc ACK: the unknown segment's reports will be matched", "message_id", x.ref.MessageID, "segment", x.ref.Index, "short_code", x.ref.ShortCode)
}
