package smsclink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/fault"
	"pushsms.io/lib/gsm"
	"pushsms.io/lib/telemetry"
	"pushsms.io/lib/ucp"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// Report subject states published by this service (docs/events.md).
const (
	stateSubmitted = "submitted"
	stateNacked    = "nacked" // permanent NACK: payload state FAILED
	stateUnknown   = "unknown"
	stateBuffered  = "buffered"
	stateDelivered = "delivered"
	stateFailed    = "failed"
	stateExpired   = "expired"
)

// linkWait is how long a segment waits for its account's session before
// it goes back to the bus.
const linkWait = 5 * time.Second

// handleSubmit submits one segment. Its error decides the event's fate
// (lib/bus): nil acks it, a permanent error terminates it, any other
// redelivers it with backoff. See the package comment for the policies.
func (s *Service) handleSubmit(ctx context.Context, m *bus.Msg) error {
	var ev eventsv1.SegmentSubmit
	if err := m.Decode(&ev); err != nil {
		return err
	}
	ref := segmentRef{
		MessageID:  ev.GetMessageId(),
		TenantID:   ev.GetTenantId(),
		CampaignID: ev.GetCampaignId(),
		ShortCode:  ev.GetShortCode(),
		Index:      ev.GetSegment().GetIndex(),
		Count:      ev.GetSegment().GetCount(),
	}
	ctx, span := s.tracer.Start(ctx, "smsc submit", trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	// Most spans are sampled out (-trace-ratio): their attributes would be
	// built for nothing, once per segment. The sampler reads none of them.
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("pushsms.message_id", ref.MessageID),
			attribute.String("pushsms.tenant_id", ref.TenantID),
			attribute.String("pushsms.short_code", ref.ShortCode),
			attribute.Int("pushsms.segment.index", int(ref.Index)),
			attribute.Int("pushsms.segment.count", int(ref.Count)),
			attribute.Int64("messaging.message.delivery_count", int64(m.Delivered)),
		)
	}
	err := s.submit(ctx, m, &ev, ref, span)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "not submitted")
	}
	return err
}

func (s *Service) submit(ctx context.Context, m *bus.Msg, ev *eventsv1.SegmentSubmit, ref segmentRef, span trace.Span) error {
	if ref.MessageID == "" || ref.TenantID == "" || ref.Index < 1 || ref.Count < ref.Index {
		// Nothing to report on: no id, or a segment that cannot exist.
		return fault.Permanent(fmt.Errorf("segment submit on %s: message %q segment %d of %d", m.Subject, ref.MessageID, ref.Index, ref.Count))
	}
	l, ok := s.links[ref.ShortCode]
	if !ok {
		err := fault.Permanent(fmt.Errorf("message %s: short code %s has no SMSC account here", ref.MessageID, ref.ShortCode))
		if perr := s.report(ctx, ref, partnerv1.SegmentState_SEGMENT_STATE_FAILED, stateFailed, true, "", "short code not configured on smsc-link", time.Time{}); perr != nil {
			return perr // retried: the report must be stored for the message not to hang
		}
		return err
	}

	now := s.now()
	var vp time.Time
	if ts := ev.GetExpiresAt(); ts != nil {
		// VP has minute resolution: round down, so that the SMSC never
		// delivers after the partner's expiry.
		vp = ts.AsTime().In(s.loc).Truncate(time.Minute)
		if !vp.After(now) {
			return s.report(ctx, ref, partnerv1.SegmentState_SEGMENT_STATE_EXPIRED, stateExpired, true, "", "validity ran out before submission", time.Time{})
		}
		ref.ValidUntil = vp
	}
	sub, err := s.buildSubmit(ev, l.acc, vp)
	if err != nil {
		err = fault.Permanent(fmt.Errorf("message %s segment %d: %w", ref.MessageID, ref.Index, err))
		if perr := s.report(ctx, ref, partnerv1.SegmentState_SEGMENT_STATE_FAILED, stateFailed, true, "", "cannot be encoded for the SMSC", time.Time{}); perr != nil {
			return perr
		}
		return err
	}

	// Redeliveries wait on the window and the ACK like first deliveries:
	// keep the event ours meanwhile.
	defer m.KeepInProgress()()

	akey := attemptKey(ref.MessageID, ref.Index)
	prior, err := s.beginAttempt(ctx, akey)
	if err != nil {
		return err
	}
	if prior != nil {
		return s.resume(ctx, ev, ref, akey, *prior, span)
	}
	// What the throttle's lanes send first goes first at the guard too: a
	// customer message never waits there behind marketing.
	client, sessSeq, done, err := l.acquire(ctx, 0, linkWait, ev.GetUrgent())
	if err != nil {
		return errors.Join(err, s.abandonAttempt(ctx, akey))
	}
	ref.Traceparent = telemetry.Traceparent(ctx)

	res, err := client.Submit(ctx, sub)
	done(res.At, err)
	var nack *ucp.NackError
	switch {
	case err == nil:
		return s.submitted(ctx, ref, akey, ev.GetRecipientE164(), res.Key.SCTS, span)
	case errors.Is(err, ucp.ErrTimeout), errors.Is(err, ucp.ErrInDoubt):
		span.SetAttributes(attribute.String("pushsms.smsc.outcome", "no result"))
		s.Log.WarnContext(ctx, "smsc submit without result; reported unknown, not resent",
			"message_id", ref.MessageID, "segment", ref.Index, "short_code", ref.ShortCode, "err", err)
		recorded := make(chan struct{})
		if errors.Is(err, ucp.ErrTimeout) {
			s.doubts.add(sub, doubt{ref: ref, akey: akey, recipient: ev.GetRecipientE164(), at: s.now(), recorded: recorded})
		}
		a := s.unknownAttempt(ev, ref, sessSeq)
		s.recordOutcome(ctx, ref, akey, a)
		close(recorded)
		if a.Resend != nil {
			s.indexResend(ctx, ref, akey)
		}
		return s.report(ctx, ref, partnerv1.SegmentState_SEGMENT_STATE_UNKNOWN, stateUnknown, false, "", "no result from the SMSC", time.Time{})
	case errors.As(err, &nack) && !nack.Temporary():
		ec := fmt.Sprintf("%02d", uint8(nack.Code))
		span.SetAttributes(attribute.String("pushsms.ucp.error_code", ec))
		s.recordOutcome(ctx, ref, akey, attempt{State: attemptNacked, EC: ec})
		return s.nacked(ctx, ref, ec)
	case errors.As(err, &nack):
		span.SetAttributes(attribute.String("pushsms.ucp.error_code", fmt.Sprintf("%02d", uint8(nack.Code))))
		return errors.Join(fmt.Errorf("message %s segment %d: %w", ref.MessageID, ref.Index, err), s.abandonAttempt(ctx, akey))
	default:
		// Not written (session down or closing): the SMSC never saw it.
		return errors.Join(fmt.Errorf("message %s segment %d: %w", ref.MessageID, ref.Index, err), s.abandonAttempt(ctx, akey))
	}
}

// submitted stores the correlation, then tells the SMSC's acceptance: the
// key is in the bucket before any report, so that a DR finds it.
//
// The correlation key is the attempt's outcome too: a redelivery that finds
// the attempt "sending" looks for the segment's key (resume) before it
// calls the segment UNKNOWN. So a plain ACK costs one write after the 51,
// not two (one stored message and one round trip of the bus per segment).
// Only an ACK whose key cannot name the segment (no SCTS, or an SCTS
// collision) records the outcome in the attempt.
func (s *Service) submitted(ctx context.Context, ref segmentRef, akey, recipient, scts string, span trace.Span) error {
	if span.IsRecording() {
		span.SetAttributes(attribute.String("pushsms.smsc.scts", scts))
	}
	if len(scts) != 12 {
		s.Log.WarnContext(ctx, "smsc ACK without SCTS: its DRs cannot be matched",
			"message_id", ref.MessageID, "segment", ref.Index, "short_code", ref.ShortCode)
		s.recordOutcome(ctx, ref, akey, attempt{State: attemptSubmitted, SCTS: scts})
		return s.report(ctx, ref, partnerv1.SegmentState_SEGMENT_STATE_SUBMITTED, stateSubmitted, false, "", "", s.parseSCTS(scts))
	}
	key := corrKey(recipient, scts)
	mine := false
	if err := s.persist(func() (err error) { mine, err = s.storeRef(ctx, key, ref); return err }); err != nil {
		return err
	}
	if !mine {
		s.recordOutcome(ctx, ref, akey, attempt{State: attemptSubmitted, SCTS: scts, Key: key})
	}
	return s.report(ctx, ref, partnerv1.SegmentState_SEGMENT_STATE_SUBMITTED, stateSubmitted, false, "", "", s.parseSCTS(scts))
}

// recordOutcome writes what the attempt learnt, for a redelivery to
// publish it again rather than guess. Failing that is logged, not
// returned: the report that follows is what matters, and if it fails too
// the redelivery reports UNKNOWN, which a DR still resolves.
func (s *Service) recordOutcome(ctx context.Context, ref segmentRef, akey string, a attempt) {
	if err := s.persist(func() error { return s.endAttempt(ctx, akey, a) }); err != nil {
		s.Log.WarnContext(ctx, "smsc submit outcome not recorded", "message_id", ref.MessageID, "segment", ref.Index, "err", err)
	}
}

// persist retries a bucket write that follows a result until it is stored
// or the service stops. The result is only in this process's memory: a
// segment given back to the bus after its 51 was taken can only be
// reported UNKNOWN, and the DRs of an ACK whose correlation was never
// stored match nothing, so giving up early leaves a delivered SMS UNKNOWN
// for good (chaos run 13:02 UTC 28 Nov 2026, seed 13615626: a NATS server
// back after 2 s, JetStream later, outlasted the 5 s of retries there
// were). What waits here is bounded by the 51s in flight when the bus went
// away: a new 51 needs the bus for its attempt record first.
func (s *Service) persist(f func() error) error {
	for attempt := 0; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		if attempt == persistPatience {
			s.Log.Warn("smsc result not stored yet; retrying until it is", "err", err)
		}
		if !sleep(s.Stopping(), min(reconnectDelay(attempt), persistRetryMax)) {
			return err
		}
	}
}

const (
	// persistRetryMax is the longest pause between two tries of persist:
	// the bus is back within it.
	persistRetryMax = 2 * time.Second
	// persistPatience is how many failed tries of persist go unlogged.
	persistPatience = 5
)

func (s *Service) nacked(ctx context.Context, ref segmentRef, ec string) error {
	return s.report(ctx, ref, partnerv1.SegmentState_SEGMENT_STATE_FAILED, stateNacked, true, ec, "rejected by the SMSC", time.Time{})
}

// resume finishes a segment whose earlier delivery already made an
// attempt: it publishes again what that attempt learnt (the reports are
// deduplicated by their ids), and never sends the segment again.
func (s *Service) resume(ctx context.Context, ev *eventsv1.SegmentSubmit, ref segmentRef, akey string, a attempt, span trace.Span) error {
	span.SetAttributes(attribute.String("pushsms.smsc.earlier_attempt", a.State))
	switch a.State {
	case attemptSubmitted:
		if a.Key != "" {
			if _, err := s.storeRef(ctx, a.Key, ref); err != nil {
				return err
			}
		}
		return s.report(ctx, ref, partnerv1.SegmentState_SEGMENT_STATE_SUBMITTED, stateSubmitted, false, "", "", s.parseSCTS(a.SCTS))
	case attemptSending:
		// An ACKed segment's outcome is its correlation key (submitted).
		scts, found, err := s.findRef(ctx, ev.GetRecipientE164(), ref)
		if err != nil {
			return err
		}
		if found {
			return s.report(ctx, ref, partnerv1.SegmentState_SEGMENT_STATE_SUBMITTED, stateSubmitted, false, "", "", s.parseSCTS(scts))
		}
	case attemptNacked:
		return s.nacked(ctx, ref, a.EC)
	case attemptUnknown:
		return s.report(ctx, ref, partnerv1.SegmentState_SEGMENT_STATE_UNKNOWN, stateUnknown, false, "", "no result from the SMSC", time.Time{})
	}
	// Interrupted while the 51 may have been on the wire (a crash, a lost
	// ack): the SMSC may have it, so it is not sent again.
	s.Log.WarnContext(ctx, "smsc submit interrupted earlier; reported unknown",
		"message_id", ref.MessageID, "segment", ref.Index, "short_code", ref.ShortCode)
	// The UNKNOWN policy applies as after a timeout. An attempt begun by
	// an earlier process was on one of its sessions, all older than this
	// process's: any session here may resend it. One begun here may still
	// be on a session up now: only a session opened from now on may.
	seq := s.sessSeq.Load()
	if a.At.Before(s.started) {
		seq = uint64(s.started.UnixNano())
	}
	u := s.unknownAttempt(ev, ref, seq)
	if err := s.endAttempt(ctx, akey, u); err != nil {
		return err
	}
	if u.Resend != nil {
		s.indexResend(ctx, ref, akey)
	}
	return s.report(ctx, ref, partnerv1.SegmentState_SEGMENT_STATE_UNKNOWN, stateUnknown, false, "", "submission interrupted; not resent", time.Time{})
}

// buildSubmit makes the OT 51 of a segment: AdC in the configured form,
// OAdC the short code (or the alphanumeric sender, OTOA 5039), DRs for
// delivered, not delivered and buffered, MT 3 for GSM-7 (unpacked septets)
// or MT 4 with XSer DCS for UCS-2 and binary, the UDH in XSer 01, VP the
// expiry. It encodes the frame once to refuse, as a permanent error, what
// the SMSC could only NACK.
func (s *Service) buildSubmit(ev *eventsv1.SegmentSubmit, acc Account, vp time.Time) (*ucp.Submit, error) {
	adc, err := formatAdC(ev.GetRecipientE164(), s.cfg.AdCFormat)
	if err != nil {
		return nil, err
	}
	sub := &ucp.Submit{
		AdC:  adc,
		OAdC: acc.ShortCode,
		NRq:  true,
		NT:   ucp.NotifyDelivered | ucp.NotifyNotDelivered | ucp.NotifyBuffered,
	}
	if sender := ev.GetSender(); sender != "" && !isDigits(sender) {
		sub.OAdC, sub.OTOA = sender, ucp.OTOAAlphanumeric
	}
	if !vp.IsZero() {
		sub.VP = ucp.FormatVP(vp, s.loc)
	}
	seg := ev.GetSegment()
	data, udh := seg.GetUserData(), seg.GetUdh()
	if len(udh) > 0 {
		sub.XSer.UDH = udh
	}
	switch seg.GetEncoding() {
	case partnerv1.Encoding_ENCODING_GSM7:
		for _, c := range data {
			if c > 0x7f {
				return nil, errors.New("GSM-7 user data holds a byte above 0x7F")
			}
		}
		// The UDH takes ceil(8×octets/7) septets of the 160 (ucp.md §3.8).
		if n := len(data) + (8*len(udh)+6)/7; n > gsm.MaxSeptets {
			return nil, fmt.Errorf("GSM-7 segment of %d septets with its header, at most %d", n, gsm.MaxSeptets)
		}
		sub.MT, sub.Msg = ucp.MTAlphanumeric, data
	case partnerv1.Encoding_ENCODING_UCS2, partnerv1.Encoding_ENCODING_BINARY:
		enc := gsm.UCS2
		if seg.GetEncoding() == partnerv1.Encoding_ENCODING_BINARY {
			enc = gsm.Binary
		}
		if enc == gsm.UCS2 && len(data)%2 != 0 {
			return nil, errors.New("UCS-2 user data of an odd length")
		}
		if n := len(data) + len(udh); n > gsm.MaxOctets {
			return nil, fmt.Errorf("segment of %d octets with its header, at most %d", n, gsm.MaxOctets)
		}
		sub.MT, sub.NB, sub.Msg = ucp.MTTransparent, 8*len(data), data
		sub.XSer.DCS, sub.XSer.HasDCS = enc.DCS(), true
	default:
		return nil, fmt.Errorf("encoding %v", seg.GetEncoding())
	}
	if _, err := ucp.AppendFrame(nil, 0, sub); err != nil {
		return nil, err
	}
	return sub, nil
}

// formatAdC writes an E.164 recipient ("+33612345678") the way the SMSC
// expects it: no '+' (ucp.md §3.9).
func formatAdC(e164, format string) (string, error) {
	n, ok := normalise(e164)
	if !ok {
		return "", errors.New("recipient is not a phone number")
	}
	digits := strings.TrimPrefix(n.E164(), "+")
	var adc string
	switch {
	case format == AdCNational && n.CountryCode() == "33":
		adc = "0" + strings.TrimPrefix(digits, "33")
	case format == AdCInternational:
		adc = digits
	default:
		adc = "00" + digits
	}
	if len(adc) > 16 {
		return "", errors.New("recipient longer than the 16 digits of AdC")
	}
	return adc, nil
}

// report publishes a SegmentReport on sms.report.<subjectState>.<tenant>.<short code>
// with the id <message id>/<segment>/<subjectState>.
func (s *Service) report(ctx context.Context, ref segmentRef, state partnerv1.SegmentState, subjectState string, final bool, ucpCode, detail string, scts time.Time) error {
	ev := &eventsv1.SegmentReport{
		MessageId:    ref.MessageID,
		TenantId:     ref.TenantID,
		CampaignId:   ref.CampaignID,
		ShortCode:    ref.ShortCode,
		SegmentIndex: ref.Index,
		SegmentCount: ref.Count,
		State:        state,
		UcpErrorCode: ucpCode,
		Detail:       detail,
		At:           timestamppb.New(s.now()),
		Final:        final,
	}
	if !scts.IsZero() {
		ev.SmscTimestamp = timestamppb.New(scts)
	}
	id := ref.MessageID + "/" + strconv.Itoa(int(ref.Index)) + "/" + subjectState
	return s.Bus.Publish(ctx, bus.ReportSubject(subjectState, ref.TenantID, ref.ShortCode), ev, id)
}

// parseSCTS reads an SMSC timestamp in the SMSC's time zone; zero if it
// does not parse.
func (s *Service) parseSCTS(scts string) time.Time {
	t, err := ucp.ParseSCTS(scts, s.loc)
	if err != nil {
		return time.Time{}
	}
	return t
}
