package compliance

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"

	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/fault"
	"pushsms.io/lib/gsm"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// textPolicy is the one ingest counts with (PreviewText and SendMessage use
// gsm.French): the parts split here must be the parts the partner was told
// and will be billed for.
var textPolicy = gsm.French()

// handle decides one accepted message. Everything it publishes carries a
// Nats-Msg-Id derived from the message id, and the decision depends only on
// the event (and the clock, for validity and the sending window), so a
// redelivery publishes nothing new.
func (s *Service) handle(ctx context.Context, m *bus.Msg) error {
	var acc eventsv1.MessageAccepted
	if err := m.Decode(&acc); err != nil {
		return err
	}
	if acc.GetMessageId() == "" {
		return fault.Permanent(fmt.Errorf("accepted event on %s has no message_id", m.Subject))
	}
	c := &Candidate{Accepted: &acc, Now: s.now()}
	v, err := s.check(ctx, c)
	if err != nil {
		return err
	}
	if v.Reason != partnerv1.Reason_REASON_UNSPECIFIED {
		return s.reject(ctx, c, v)
	}
	segs, err := split(&acc)
	if errors.Is(err, gsm.ErrTooLong) {
		return s.reject(ctx, c, Verdict{Reason: partnerv1.Reason_REASON_CONTENT, Detail: "text needs more than 255 parts"})
	}
	if err != nil {
		return fault.Permanent(fmt.Errorf("message %s: %w", acc.GetMessageId(), err))
	}
	if n := acc.GetSegmentCount(); n != 0 && int(n) != len(segs) {
		// Ingest told the partner another count: the bill will surprise them.
		s.Log.WarnContext(ctx, "segment count differs from ingest's", "message_id", acc.GetMessageId(), "accepted", n, "split", len(segs))
	}
	if !v.NotBefore.IsZero() {
		// A deferral: throttle holds the message until not_before. acc is
		// this delivery's decoded copy, so changing it touches nothing else.
		acc.NotBefore = timestamppb.New(v.NotBefore)
	}
	cleared := &eventsv1.MessageCleared{
		Message:       &acc,
		RecipientE164: c.Number.E164(),
		Segments:      segs,
		ClearedAt:     timestamppb.New(c.Now),
	}
	if err := s.Bus.Publish(ctx, bus.ClearedSubject(acc.GetTenantId(), acc.GetShortCode()), cleared, acc.GetMessageId()+"/cleared"); err != nil {
		return err
	}
	s.Log.DebugContext(ctx, "message cleared", "message_id", acc.GetMessageId(), "recipient", c.Number, "segments", len(segs), "deferred_to", v.NotBefore)
	return nil
}

// check runs the rules in order; the first that refuses decides. A message
// no rule refuses is deferred to the latest NotBefore any rule asked for.
func (s *Service) check(ctx context.Context, c *Candidate) (Verdict, error) {
	var pass Verdict
	for _, r := range s.rules {
		v, err := r.Check(ctx, c)
		if err != nil {
			return Verdict{}, fmt.Errorf("message %s: rule %s: %w", c.Accepted.GetMessageId(), r.Name, err)
		}
		if v.Reason != partnerv1.Reason_REASON_UNSPECIFIED {
			v.rule = r.Name
			return v, nil
		}
		if v.NotBefore.After(pass.NotBefore) {
			pass = Verdict{NotBefore: v.NotBefore, rule: r.Name}
			c.NotBefore = v.NotBefore
		}
	}
	return pass, nil
}

func (s *Service) reject(ctx context.Context, c *Candidate, v Verdict) error {
	acc := c.Accepted
	rej := &eventsv1.MessageRejected{
		MessageId:  acc.GetMessageId(),
		TenantId:   acc.GetTenantId(),
		CampaignId: acc.GetCampaignId(),
		ShortCode:  acc.GetShortCode(),
		Reason:     v.Reason,
		Detail:     v.Detail,
		At:         timestamppb.New(c.Now),
	}
	if err := s.Bus.Publish(ctx, bus.ReportSubject("rejected", acc.GetTenantId(), acc.GetShortCode()), rej, acc.GetMessageId()+"/rejected"); err != nil {
		return err
	}
	s.Log.DebugContext(ctx, "message rejected", "message_id", acc.GetMessageId(), "rule", v.rule, "reason", v.Reason.String())
	return nil
}

// split cuts the text into segments with the concatenation reference of
// the message, so that every split of the same message is identical.
func split(acc *eventsv1.MessageAccepted) ([]*eventsv1.Segment, error) {
	parts, _, err := gsm.Split(acc.GetText(), textPolicy, segmentRef(acc.GetMessageId()))
	if err != nil {
		return nil, err
	}
	out := make([]*eventsv1.Segment, len(parts))
	for i, p := range parts {
		out[i] = &eventsv1.Segment{
			Index:    int32(p.Index),
			Count:    int32(p.Count),
			Encoding: partnerv1.Encoding(p.Encoding),
			UserData: p.UserData,
			Udh:      p.UDH,
		}
	}
	return out, nil
}

// segmentRef derives the 8-bit concatenation reference from the message id:
// a redelivered message is split with the same reference, and two messages
// to one handset rarely share one (1 in 256), without keeping a counter per
// recipient.
func segmentRef(messageID string) uint8 {
	h := fnv.New32a()
	h.Write([]byte(messageID))
	v := h.Sum32()
	return uint8(v ^ v>>8 ^ v>>16 ^ v>>24)
}
