package throttle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/fault"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// shutdownRedelivery is how long an event let go at shutdown waits before
// it is delivered again: long enough not to come straight back to the
// stopping process, short enough for its successor.
const shutdownRedelivery = time.Second

// outcome is why a handler stopped waiting for a release.
type outcome int

const (
	granted outcome = iota
	evicted
	expired
	stopping
	// lost: the replica no longer owns the short code.
	lost
)

// handle paces one MessageCleared: it decides whether the message can go,
// waits for each segment's release and publishes it as a SegmentSubmit.
// The event is acked (nil) only once every segment is published, or once
// the message is reported cancelled or expired.
//
// o is the short code's ownership. When the replica gives the short code
// back (stopping, rebalancing), events not started go back to the server
// and started messages are finished. When the lease is lost, nothing more
// is published and the event goes back at once, for the next owner, even
// in the middle of a message (its released parts are published again under
// the same ids and stored once).
func (s *Service) handle(ctx context.Context, m *bus.Msg, o *ownership) error {
	var c eventsv1.MessageCleared
	if err := m.Decode(&c); err != nil {
		return err
	}
	if err := checkCleared(&c); err != nil {
		return fault.Permanent(fmt.Errorf("cleared event %d on %s: %w", m.Sequence, m.Subject, err))
	}
	msg := c.GetMessage()
	now := s.now()
	exp := timeOf(msg.GetExpiresAt())

	// Cancelled wins over expired (the partner's decision, and the
	// message's final state either way); expired over paused, which would
	// otherwise park a message that can no longer go.
	state := s.campaigns.get(msg.GetCampaignId())
	if state == campaignCancelled {
		return s.cancel(ctx, &c, now, bus.CampaignCancelled)
	}
	if s.controls.cancelledAt(msg.GetShortCode(), timeOf(msg.GetAcceptedAt())) {
		return s.cancel(ctx, &c, now, bus.ShortCodeCancelled)
	}
	if !exp.IsZero() && !now.Before(exp) {
		return s.expire(ctx, &c, 0, now, expiredDetail)
	}
	if nb := timeOf(msg.GetNotBefore()); nb.After(now) {
		if !exp.IsZero() && !exp.After(nb) {
			return s.expire(ctx, &c, 0, now, expiredDetail) // it could never go out
		}
		wait := nb.Sub(now)
		if wait > s.cfg.Lookahead {
			return s.hold(ctx, m, msg, nb)
		}
		if !s.sleep(wait, o) {
			return m.Defer(nb.Sub(s.now()))
		}
		now = s.now()
	}
	// A marketing message that arrives while its window is closed does not
	// take a place in the lane.
	if held, err := s.heldByWindow(ctx, m, &c, now, exp); held || err != nil {
		return err
	}

	l := s.lanes.get(msg.GetShortCode())
	t := ticketFor(msg, m.Sequence, len(c.GetSegments()))
	if wait, ok := l.admit(t, now); !ok {
		return s.park(m, now, exp, wait)
	}
	defer l.leave(t)

	for i, seg := range c.GetSegments() {
		if i > 0 {
			l.request(t)
		}
		at, why := s.await(m, t, exp, i > 0, o)
		switch why {
		case lost:
			return m.Defer(0)
		case expired:
			l.leave(t)
			return s.expire(ctx, &c, i, s.now(), expiredDetail)
		case stopping:
			return m.Defer(shutdownRedelivery)
		case evicted:
			if s.controls.cancelledAt(msg.GetShortCode(), t.accepted) {
				return s.cancel(ctx, &c, s.now(), bus.ShortCodeCancelled)
			}
			switch s.campaigns.get(msg.GetCampaignId()) {
			case campaignCancelled:
				return s.cancel(ctx, &c, s.now(), bus.CampaignCancelled)
			case campaignPaused:
				return s.park(m, s.now(), exp, s.pauseRecheck())
			}
			return m.Defer(0) // resumed in the meantime: queue again
		}
		if i == 0 {
			// The window is checked at the release of the first segment
			// only: the parts of a message already started go out even
			// if the window closes meanwhile, never split across it. The
			// slot granted is lost, as a late release's is.
			if held, err := s.heldByWindow(ctx, m, &c, at, exp); held || err != nil {
				return err
			}
		}
		if err := s.publishSegment(ctx, &c, seg, at, o); err != nil {
			if errors.Is(err, errFenced) {
				return m.Defer(0)
			}
			return err
		}
	}
	return nil
}

// checkCleared rejects what cannot be paced: such an event would fail the
// same way on every delivery.
func checkCleared(c *eventsv1.MessageCleared) error {
	msg := c.GetMessage()
	switch {
	case msg == nil:
		return errors.New("no message")
	case msg.GetMessageId() == "":
		return errors.New("no message id")
	case msg.GetShortCode() == "":
		return errors.New("no short code")
	case len(c.GetSegments()) == 0:
		return errors.New("no segments")
	}
	for _, seg := range c.GetSegments() {
		if seg.GetIndex() < 1 {
			return fmt.Errorf("segment index %d: want 1-based", seg.GetIndex())
		}
	}
	return nil
}

// await waits for the lane's next release to t. It keeps the event alive
// on the server (InProgress) while it waits. A handler whose message has
// started does not stop at shutdown: finishing a concatenated message takes
// a few releases, and a message half sent now and half after a restart
// longer than the duplicate window would have its first parts sent twice.
func (s *Service) await(m *bus.Msg, t *ticket, exp time.Time, started bool, o *ownership) (time.Time, outcome) {
	var expiry <-chan time.Time
	if !exp.IsZero() {
		tm := time.NewTimer(exp.Sub(s.now()))
		defer tm.Stop()
		expiry = tm.C
	}
	progress := time.NewTicker(s.cfg.AckWait / 3)
	defer progress.Stop()
	stop, leaving := s.Stopping().Done(), o.leaving
	if started {
		stop, leaving = nil, nil
	}
	for {
		select {
		case at := <-t.grant:
			return at, granted
		case <-t.evicted:
			return time.Time{}, evicted
		case <-expiry:
			return time.Time{}, expired
		case <-stop:
			return time.Time{}, stopping
		case <-leaving:
			return time.Time{}, stopping
		case <-o.lost:
			return time.Time{}, lost
		case <-progress.C:
			_ = m.InProgress() // a lost one is repeated at the next tick
		}
	}
}

// sleep waits d unless the service is stopping or the short code lost.
func (s *Service) sleep(d time.Duration, o *ownership) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-s.Stopping().Done():
		return false
	case <-o.leaving:
		return false
	case <-o.lost:
		return false
	}
}

// park gives the event back to the server for wait, or until the message
// expires if that is sooner, so that expiry is reported on time.
func (s *Service) park(m *bus.Msg, now, exp time.Time, wait time.Duration) error {
	if !exp.IsZero() {
		wait = min(wait, exp.Sub(now)+time.Millisecond)
	}
	return m.Defer(parkDelay(now, wait, s.parkGrain()))
}

// parkDelay rounds the return time of an event given back for wait down
// to a grid of absolute times grain apart. Each time one of a consumer's
// parked events is due, the server looks through every event the consumer
// holds (checkPending): parked one release apart, a backlog of 100 000 at
// 100/s had it do so 100 times a second. On the grid, a short code's parked
// events share one due time per grain. Early is safe but not free (an event
// back before its turn is parked again, another delayed NAK, after which
// the server looks through them all as well), so grain stays well within
// the half lookahead a parked event comes back with. A wait too short to
// round is kept as it is.
func parkDelay(now time.Time, wait, grain time.Duration) time.Duration {
	if d := now.Add(wait).Truncate(grain).Sub(now); d > 0 && grain > 0 {
		return d
	}
	return wait
}

// parkGrain is the grid of parkDelay: a quarter of the lookahead, at most a
// second.
func (s *Service) parkGrain() time.Duration { return min(s.cfg.Lookahead/4, time.Second) }

// hold gives a message back until until. A short hold is a delayed NAK:
// the event stays the consumer's. A longer one (ScheduleAfter) goes to the
// server's message scheduler, which publishes the event again when it is
// due, and the event is acked: a campaign scheduled days ahead then holds
// no consumer state, no MaxAckPending slot, and does not keep the
// consumer's ack floor (where a consumer lost with the servers' memory
// starts again) days back.
func (s *Service) hold(ctx context.Context, m *bus.Msg, msg *eventsv1.MessageAccepted, until time.Time) error {
	now := s.now()
	wait := until.Sub(now)
	if wait <= s.cfg.ScheduleAfter {
		return m.Defer(parkDelay(now, wait, s.parkGrain()))
	}
	id := msg.GetMessageId()
	return s.Bus.Schedule(ctx, m, bus.HoldSubject(msg.GetShortCode(), holdKey(id)), until,
		id+"/hold/"+strconv.FormatInt(until.Unix(), 10))
}

// holdKey names a message in its hold subject: its id when it is a safe
// subject token (message ids are UUIDs), else a hash of it.
func holdKey(id string) string {
	if replicaIDPattern.MatchString(id) {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "h" + hex.EncodeToString(sum[:16])
}

// pauseRecheck spreads paused events' returns over ±10 %, so that a
// paused campaign does not come back as one herd every interval.
func (s *Service) pauseRecheck() time.Duration {
	d := s.cfg.PauseRecheck
	return d - d/10 + rand.N(d/5+1)
}

// errFenced: the segment was not published, the short code's lease ends
// too soon (or is lost).
var errFenced = errors.New("short code lease ends: not released")

// publishSegment publishes a segment released at at, if the lease allows
// it. The fence is checked with the wall clock (the one the leases use,
// shared with the other replicas), and bounds the publish: a publish that
// has not been stored well before the fence gives up, so that no release
// lands once another replica may own the short code.
func (s *Service) publishSegment(ctx context.Context, c *eventsv1.MessageCleared, seg *eventsv1.Segment, at time.Time, o *ownership) error {
	if !o.releasable(time.Now().Add(publishSlack)) {
		return errFenced
	}
	ctx, cancel := context.WithDeadline(ctx, o.fenceTime().Add(-publishSlack/2))
	defer cancel()
	msg := c.GetMessage()
	ev := &eventsv1.SegmentSubmit{
		MessageId:     msg.GetMessageId(),
		TenantId:      msg.GetTenantId(),
		CampaignId:    msg.GetCampaignId(),
		ShortCode:     msg.GetShortCode(),
		Sender:        msg.GetSender(),
		Category:      msg.GetCategory(),
		RecipientE164: c.GetRecipientE164(),
		Segment:       seg,
		ExpiresAt:     msg.GetExpiresAt(),
		ReleasedAt:    timestamppb.New(at),
		Urgent:        classOf(msg.GetCategory()) == classUrgent,
	}
	id := msg.GetMessageId() + "/" + strconv.Itoa(int(seg.GetIndex()))
	if err := s.Bus.Publish(ctx, bus.SubmitSubject(msg.GetShortCode()), ev, id); err != nil {
		if ctx.Err() != nil && !o.releasable(time.Now().Add(publishSlack)) {
			// Maybe stored: the next owner publishes it again under the
			// same id, stored once.
			return errFenced
		}
		return fmt.Errorf("submit segment %s: %w", id, err)
	}
	return nil
}

// expiredDetail is the detail of a message whose validity ended while it
// waited for its turn.
const expiredDetail = "validity ended before the segment could be released"

// expire reports the segments from index i on as EXPIRED, final, saying
// why in detail: they were never submitted, so the message ends EXPIRED
// (REASON_VALIDITY_EXPIRED for the partner).
func (s *Service) expire(ctx context.Context, c *eventsv1.MessageCleared, i int, now time.Time, detail string) error {
	msg := c.GetMessage()
	subject := bus.ReportSubject("expired", msg.GetTenantId(), msg.GetShortCode())
	for _, seg := range c.GetSegments()[i:] {
		ev := &eventsv1.SegmentReport{
			MessageId:    msg.GetMessageId(),
			TenantId:     msg.GetTenantId(),
			CampaignId:   msg.GetCampaignId(),
			ShortCode:    msg.GetShortCode(),
			SegmentIndex: seg.GetIndex(),
			SegmentCount: int32(len(c.GetSegments())),
			State:        partnerv1.SegmentState_SEGMENT_STATE_EXPIRED,
			Detail:       detail,
			At:           timestamppb.New(now),
			Final:        true,
		}
		id := msg.GetMessageId() + "/" + strconv.Itoa(int(seg.GetIndex())) + "/expired"
		if err := s.Bus.Publish(ctx, subject, ev, id); err != nil {
			return fmt.Errorf("report expired %s: %w", id, err)
		}
	}
	return nil
}

// cancel reports the message cancelled: its campaign, or its short code
// (detail says which), was cancelled before any of its segments was
// released.
func (s *Service) cancel(ctx context.Context, c *eventsv1.MessageCleared, now time.Time, detail string) error {
	msg := c.GetMessage()
	ev := &eventsv1.MessageRejected{
		MessageId:  msg.GetMessageId(),
		TenantId:   msg.GetTenantId(),
		CampaignId: msg.GetCampaignId(),
		ShortCode:  msg.GetShortCode(),
		Reason:     partnerv1.Reason_REASON_CANCELLED,
		Detail:     detail,
		At:         timestamppb.New(now),
	}
	id := bus.CancelledID(msg.GetMessageId())
	if err := s.Bus.Publish(ctx, bus.ReportSubject("cancelled", msg.GetTenantId(), msg.GetShortCode()), ev, id); err != nil {
		return fmt.Errorf("report cancelled %s: %w", id, err)
	}
	return nil
}

// timeOf is the time of ts, zero when unset.
func timeOf(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}
