package compliance

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/fault"
	"pushsms.io/lib/gsm"
	"pushsms.io/lib/telemetry"
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
	if m.Type == campaignBatchType {
		return s.handleBatch(ctx, m)
	}
	var acc eventsv1.MessageAccepted
	if err := m.Decode(&acc); err != nil {
		return err
	}
	return s.clear(ctx, m.Subject, &acc)
}

var campaignBatchType = string((&eventsv1.CampaignBatch{}).ProtoReflect().Descriptor().FullName())

// handleBatch decides a campaign's messages one after the other, each in
// its own trace (one SMS, one trace: ingest started it) linked to the
// batch's. A message that can never be decided is logged and skipped, as
// a single one would be terminated; any other error redelivers the batch,
// whose messages already decided publish nothing new (handle).
func (s *Service) handleBatch(ctx context.Context, m *bus.Msg) error {
	var b eventsv1.CampaignBatch
	if err := m.Decode(&b); err != nil {
		return err
	}
	// A batch of 500 takes a quarter of a second, but its publishes wait
	// out a bus that is away: no other replica decides it meanwhile.
	defer m.KeepInProgress()()
	link := trace.LinkFromContext(ctx)
	for _, acc := range b.GetMessages() {
		// The message's own trace, which ingest started; a new one if
		// the message carries none (not sampled at ingest).
		mctx, opts := ctx, []trace.SpanStartOption{trace.WithLinks(link)}
		if tp := acc.GetTraceparent(); tp != "" {
			mctx = telemetry.ContextWithTraceparent(ctx, tp)
			// From here the events' headers carry it.
			acc.Traceparent = ""
		} else {
			opts = append(opts, trace.WithNewRoot())
		}
		mctx, span := s.tracer.Start(mctx, "clear campaign message", opts...)
		if span.IsRecording() {
			span.SetAttributes(attribute.String("pushsms.message_id", acc.GetMessageId()), attribute.String("pushsms.campaign_id", acc.GetCampaignId()))
		}
		err := s.clear(mctx, m.Subject, acc)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "not decided")
		}
		span.End()
		switch {
		case err == nil:
		case fault.IsPermanent(err):
			s.Log.ErrorContext(ctx, "campaign message cannot be decided; skipped", "message_id", acc.GetMessageId(), "campaign_id", acc.GetCampaignId(), "err", err)
		default:
			return err
		}
	}
	return nil
}

// clear decides one accepted message of subject.
func (s *Service) clear(ctx context.Context, subject string, acc *eventsv1.MessageAccepted) error {
	if acc.GetMessageId() == "" {
		return fault.Permanent(fmt.Errorf("accepted event on %s has no message_id", subject))
	}
	c := &Candidate{Accepted: acc, Now: s.now()}
	// One rule set for the whole decision: a reload meanwhile applies to
	// the next message.
	rs := s.rules.Load()
	v, err := rs.check(ctx, c)
	if err != nil {
		return err
	}
	if v.Reason != partnerv1.Reason_REASON_UNSPECIFIED {
		return s.reject(ctx, rs, c, v)
	}
	segs, err := split(acc)
	if errors.Is(err, gsm.ErrTooLong) {
		return s.reject(ctx, rs, c, Verdict{Reason: partnerv1.Reason_REASON_CONTENT, Detail: "text needs more than 255 parts", rule: "length", source: sourceLength})
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
	// Before the cleared event: a STOP answering this message must find
	// its brand.
	if err := recordIssuer(ctx, s.issuers, acc, c.Number, c.Now); err != nil {
		return err
	}
	now := timestamppb.New(c.Now)
	cleared := &eventsv1.MessageCleared{
		Message:       acc,
		RecipientE164: c.Number.E164(),
		Segments:      segs,
		ClearedAt:     now,
		Decision:      decision(rs, v, now),
	}
	if err := s.Bus.Publish(ctx, bus.ClearedSubject(acc.GetTenantId(), acc.GetShortCode()), cleared, acc.GetMessageId()+"/cleared"); err != nil {
		return err
	}
	s.Log.DebugContext(ctx, "message cleared", "message_id", acc.GetMessageId(), "recipient", c.Number, "segments", len(segs), "deferred_to", v.NotBefore)
	return nil
}

// check runs the rules in order; the first that refuses decides. A message
// no rule refuses is deferred to the latest NotBefore any rule asked for.
func (rs *ruleSet) check(ctx context.Context, c *Candidate) (Verdict, error) {
	var pass Verdict
	for i := range rs.rules {
		r := &rs.rules[i]
		v, err := r.Check(ctx, c)
		if err != nil {
			return Verdict{}, fmt.Errorf("message %s: rule %s: %w", c.Accepted.GetMessageId(), r.Name, err)
		}
		if v.Reason != partnerv1.Reason_REASON_UNSPECIFIED {
			v.rule, v.source = r.Name, r.Source
			return v, nil
		}
		if v.NotBefore.After(pass.NotBefore) {
			pass = Verdict{NotBefore: v.NotBefore, rule: r.Name, source: r.Source}
			c.NotBefore = v.NotBefore
		}
	}
	return pass, nil
}

// decision is the record of v under rs's policy: what the partner reads in
// the message's status.
func decision(rs *ruleSet, v Verdict, at *timestamppb.Timestamp) *partnerv1.Decision {
	d := &partnerv1.Decision{PolicyVersion: rs.policy.Version, DecidedAt: at}
	switch {
	case v.Reason != partnerv1.Reason_REASON_UNSPECIFIED:
		d.Outcome = partnerv1.DecisionOutcome_DECISION_OUTCOME_REFUSED
		d.Reason, d.Rule, d.Source, d.Detail = v.Reason, v.rule, v.source, v.Detail
	case !v.NotBefore.IsZero():
		d.Outcome = partnerv1.DecisionOutcome_DECISION_OUTCOME_DEFERRED
		d.Rule, d.Source, d.NotBefore = v.rule, v.source, timestamppb.New(v.NotBefore)
		d.Detail = "outside the sending window of marketing messages: sent from " + v.NotBefore.In(parisTime()).Format("Monday 2 January 2006 15:04") + " French time"
	default:
		d.Outcome = partnerv1.DecisionOutcome_DECISION_OUTCOME_ACCEPTED
	}
	return d
}

func (s *Service) reject(ctx context.Context, rs *ruleSet, c *Candidate, v Verdict) error {
	acc := c.Accepted
	at := timestamppb.New(c.Now)
	rej := &eventsv1.MessageRejected{
		MessageId:  acc.GetMessageId(),
		TenantId:   acc.GetTenantId(),
		CampaignId: acc.GetCampaignId(),
		ShortCode:  acc.GetShortCode(),
		Reason:     v.Reason,
		Detail:     v.Detail,
		At:         at,
		Decision:   decision(rs, v, at),
	}
	if err := s.Bus.Publish(ctx, bus.ReportSubject("rejected", acc.GetTenantId(), acc.GetShortCode()), rej, acc.GetMessageId()+"/rejected"); err != nil {
		return err
	}
	s.Log.DebugContext(ctx, "message rejected", "message_id", acc.GetMessageId(), "rule", v.rule, "reason", v.Reason.String(), "policy_version", rs.policy.Version)
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
