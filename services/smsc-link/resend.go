package smsclink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"pushsms.io/lib/ucp"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// The UNKNOWN policy (docs/smsc-link.md). A 51 without result (ACK
// timeout, or its session lost after it was written) may or may not have
// been taken by the SMSC: resending risks a duplicate, not resending a
// loss. Which costs more depends on the traffic:
//
//   - CUSTOMER_RELATIONSHIP (OTPs, order updates): a missing SMS costs more
//     than a duplicate. The segment is sent again, after
//     -smsc-unknown-resend-after, on a session opened after the timeout
//     (never on the one where it happened: it may be the SMSC's silent
//     window drop or a half-dead link), counted in Stats.PossibleDuplicates.
//     A resend that gets no result either (its session lost, say: a link
//     cut that caught it) is due again the same way, on a session opened
//     after its own; one the SMSC refused for now (temporary NACK) is due
//     again on any session, since the SMSC has said it did not take it.
//     At most maxResends in all.
//   - every other category: never resent; the segment stays UNKNOWN until
//     a DR or its expiry resolves it.
//
// The attempt record (seg.<message id>.<index>) keeps the event and the
// number of the session of the timeout; resend.<message id>.<index> indexes
// the records waiting, so that the resolver does not scan the bucket. The
// resolver runs when a session comes up and every resolverEvery. It claims
// a record by a compare-and-set on its revision (one replica resends it),
// and counts the resend in it before sending: at most maxResends, even
// across crashes (Resent once the last is claimed).
//
// A DR cannot resolve a segment without result before its resend: the DR
// is matched on the SCTS of the 51 ACK, which never came (lib/ucp drops a
// late result after logging it). The resend's own ACK gives the key its
// DRs, and those of the first 51 if the SMSC took it with the same SCTS.

// maxResends bounds the resends of one segment, hence its duplicates: the
// chaos suite found a customer-relationship segment whose one resend a link
// cut caught, never sent at all and left UNKNOWN for good.
const maxResends = 3

// resendInfo is what a resend needs, kept in the attempt record.
type resendInfo struct {
	Event   []byte `json:"event"`   // the SegmentSubmit, protobuf
	Session uint64 `json:"session"` // number of the session of the timeout (or of the last resend in doubt)
}

// unknownAttempt is the attempt record of a segment left without result.
func (s *Service) unknownAttempt(ev *eventsv1.SegmentSubmit, ref segmentRef, sessSeq uint64) attempt {
	a := attempt{State: attemptUnknown}
	if s.cfg.UnknownResendAfter <= 0 || ev.GetCategory() != partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP {
		return a
	}
	b, err := proto.Marshal(ev)
	if err != nil {
		return a
	}
	a.Resend = &resendInfo{Event: b, Session: sessSeq}
	return a
}

func resendKey(akey string) string { return "resend." + strings.TrimPrefix(akey, "seg.") }

// indexResend lists the attempt for the resolver. Failing is logged: the
// segment then stays UNKNOWN, as any other category's.
func (s *Service) indexResend(ctx context.Context, ref segmentRef, akey string) {
	if err := s.persist(func() error {
		_, err := s.kv.Put(context.WithoutCancel(ctx), resendKey(akey), []byte(akey))
		return err
	}); err != nil {
		s.Log.WarnContext(ctx, "smsc resend not scheduled; stays unknown", "message_id", ref.MessageID, "segment", ref.Index, "err", err)
	}
}

func (s *Service) kickResolver() {
	select {
	case s.resolveC <- struct{}{}:
	default:
	}
}

// resolverEvery is how often the resolver looks for due resends besides
// when a session comes up.
func (c Config) resolverEvery() time.Duration {
	return min(max(c.UnknownResendAfter/2, 100*time.Millisecond), 30*time.Second)
}

// runResolver resends the due UNKNOWN segments until ctx is done.
func (s *Service) runResolver(ctx context.Context) {
	t := time.NewTicker(s.cfg.resolverEvery())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.resolveC:
		}
		if err := s.resolveUnknown(ctx); err != nil && ctx.Err() == nil {
			s.Log.WarnContext(ctx, "smsc unknown resolver", "err", err)
		}
	}
}

func (s *Service) resolveUnknown(ctx context.Context) error {
	lister, err := s.kv.ListKeysFiltered(ctx, "resend.>")
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil
		}
		return fmt.Errorf("list resends: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	var errs []error
	for _, k := range keys {
		if ctx.Err() != nil {
			break
		}
		if err := s.resolveOne(ctx, k); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// resolveOne resends one indexed segment if it is due and a new session
// is up; it drops the index once the segment needs nothing more.
func (s *Service) resolveOne(ctx context.Context, rkey string) error {
	drop := func() error { return s.kv.Delete(ctx, rkey) }
	ie, err := s.kv.Get(ctx, rkey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	akey := string(ie.Value())
	e, err := s.kv.Get(ctx, akey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return drop()
	}
	if err != nil {
		return err
	}
	var a attempt
	if err := json.Unmarshal(e.Value(), &a); err != nil || a.State != attemptUnknown || a.Resend == nil || a.Resent {
		return drop()
	}
	if s.now().Sub(a.At) < s.cfg.UnknownResendAfter {
		return nil
	}
	var ev eventsv1.SegmentSubmit
	if err := proto.Unmarshal(a.Resend.Event, &ev); err != nil {
		return drop()
	}
	ref := segmentRef{
		MessageID: ev.GetMessageId(), TenantID: ev.GetTenantId(), CampaignID: ev.GetCampaignId(),
		ShortCode: ev.GetShortCode(), Index: ev.GetSegment().GetIndex(), Count: ev.GetSegment().GetCount(),
	}
	l, ok := s.links[ref.ShortCode]
	if !ok {
		return drop()
	}
	var vp time.Time
	if ts := ev.GetExpiresAt(); ts != nil {
		vp = ts.AsTime().In(s.loc).Truncate(time.Minute)
		if !vp.After(s.now()) {
			return drop() // the DR or the expiry resolves it, not a resend
		}
		ref.ValidUntil = vp
	}
	if !l.hasSessionAfter(a.Resend.Session) {
		return nil // not yet reconnected: the next session up wakes us
	}
	sub, err := s.buildSubmit(&ev, l.acc, vp)
	if err != nil {
		return drop()
	}
	// The resend is a 51 like any other: it takes a window slot and a
	// grant of the rate guard, on a session opened after the timeout.
	client, sessSeq, done, err := l.acquire(ctx, a.Resend.Session, linkWait, true) // customer relationship only
	if err != nil {
		return nil // not now: the next pass or session up tries again
	}
	written := false
	defer func() {
		if !written {
			done(time.Time{}, errLinkDown) // never left: says nothing of the link's load
		}
	}()
	// Claim it: the resend is counted before the 51 is written, so that
	// it is sent at most maxResends times whatever happens next. Should
	// this process stop before the outcome, the resend is in doubt: the
	// next may only go on a session opened after this one.
	claimed := a
	claimed.Resends++
	claimed.Resent = claimed.Resends >= maxResends
	claimed.Resend = &resendInfo{Event: a.Resend.Event, Session: sessSeq}
	v, err := s.encodeAttempt(claimed)
	if err != nil {
		return err
	}
	rev, err := s.kv.Update(ctx, akey, v, e.Revision())
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil // another replica took it
		}
		return fmt.Errorf("claim resend: %w", err)
	}
	// What is written after the claim compares and sets on its revision: a
	// late ACK's "submitted" or another replica's next claim may have come
	// between, and must not be undone. Either way the record is theirs.
	rewrite := func(next attempt) error {
		v, err := s.encodeAttempt(next)
		if err != nil {
			return err
		}
		if _, err := s.kv.Update(ctx, akey, v, rev); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("record resend outcome: %w", err)
		}
		return nil
	}
	s.Log.WarnContext(ctx, "smsc resending an unknown customer-relationship segment on a new session; possible duplicate",
		"message_id", ref.MessageID, "segment", ref.Index, "short_code", ref.ShortCode)
	s.stats.resends.Add(1)
	res, err := client.Submit(ctx, sub)
	written = true
	done(res.At, err)
	// A late ACK of the resend is matched as a first 51's is (late.go): it
	// stores the DR key and records the attempt submitted, and the resolver
	// then leaves the segment alone instead of sending it again. It is
	// written after what this pass records (recorded, closed on return).
	recorded := make(chan struct{})
	defer close(recorded)
	if errors.Is(err, ucp.ErrTimeout) {
		s.doubts.add(sub, doubt{ref: ref, akey: akey, recipient: ev.GetRecipientE164(), at: s.now(), recorded: recorded})
	}
	var nack *ucp.NackError
	switch {
	case err == nil:
		if err := s.submittedResend(ctx, ref, akey, ev.GetRecipientE164(), res.Key.SCTS); err != nil {
			return err
		}
	case errors.As(err, &nack) && !nack.Temporary():
		ec := fmt.Sprintf("%02d", uint8(nack.Code))
		if err := s.endAttempt(ctx, akey, attempt{State: attemptNacked, EC: ec, Resent: true}); err != nil {
			return err
		}
		if err := s.nacked(ctx, ref, ec); err != nil {
			return err
		}
	case claimed.Resent:
		s.Log.WarnContext(ctx, "smsc resend without acceptance, the last allowed; stays unknown",
			"message_id", ref.MessageID, "segment", ref.Index, "resends", claimed.Resends, "err", err)
		if err := rewrite(attempt{State: attemptUnknown, Resent: true, Resends: claimed.Resends}); err != nil {
			return err
		}
	default:
		// No result again, or a temporary NACK: due again after
		// -smsc-unknown-resend-after. In doubt, on a session opened after
		// this one (the claim says so already); refused, on any session
		// after the one the segment was last left in doubt on.
		if errors.As(err, &nack) {
			again := claimed
			again.Resend = a.Resend
			if err := rewrite(again); err != nil {
				return err
			}
		}
		s.Log.WarnContext(ctx, "smsc resend without acceptance; stays unknown, due again",
			"message_id", ref.MessageID, "segment", ref.Index, "resends", claimed.Resends, "err", err)
		return nil // the index key stays: the resolver finds it due again
	}
	return drop()
}

// submittedResend stores the correlation of an accepted resend, then
// reports it SUBMITTED.
func (s *Service) submittedResend(ctx context.Context, ref segmentRef, akey, recipient, scts string) error {
	var key string
	if len(scts) == 12 {
		key = corrKey(recipient, scts)
		if err := s.persist(func() error { _, err := s.storeRef(ctx, key, ref); return err }); err != nil {
			return err
		}
	}
	if err := s.endAttempt(ctx, akey, attempt{State: attemptSubmitted, SCTS: scts, Key: key, Resent: true}); err != nil {
		return err
	}
	// Not stored: the DRs still report the segment.
	return s.report(ctx, ref, partnerv1.SegmentState_SEGMENT_STATE_SUBMITTED, stateSubmitted, false, "", "resent after no result (possible duplicate)", s.parseSCTS(scts))
}
