package smsclink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/gsm"
	"pushsms.io/lib/telemetry"
	"pushsms.io/lib/ucp"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// errNoRecord NACKs a DR whose submit is not (yet) known: the SMSC sends
// it again later.
var errNoRecord = errors.New("smsc-link: no submit record for the delivery report")

// incoming answers the operations the SMSC sends on acc's session. A nil
// return ACKs the operation, after what it said is stored on the bus; an
// error NACKs it, and the SMSC delivers it again later.
func (s *Service) incoming(acc Account) ucp.Handler {
	return func(ctx context.Context, op ucp.Message) error {
		switch op := op.(type) {
		case *ucp.Notification:
			return s.handleDR(ctx, acc, op)
		case *ucp.Deliver:
			return s.handleMO(ctx, acc, op)
		case *ucp.Op5x:
			return nil // 57/58 answer inquiries and deletes we never send
		}
		// Legacy OT 01 MO/DR: not provisioned for our accounts.
		s.Log.WarnContext(ctx, "smsc operation not supported; NACKed", "short_code", acc.ShortCode, "ot", op.OpType().String())
		return &ucp.NackError{OT: op.OpType(), Code: ucp.ECNotSupported}
	}
}

// handleDR turns a delivery notification (OT 53) into a SegmentReport.
func (s *Service) handleDR(ctx context.Context, acc Account, n *ucp.Notification) error {
	// Built only for a recorded span: most are sampled out (-trace-ratio).
	setAttrs := func(span trace.Span) {
		if span.IsRecording() {
			span.SetAttributes(
				attribute.String("pushsms.short_code", acc.ShortCode),
				attribute.Int("pushsms.ucp.dst", int(n.DSt)),
				attribute.String("pushsms.ucp.rsn", fmt.Sprintf("%03d", n.Rsn)),
			)
		}
	}
	key := n.Key()
	if len(key.SCTS) != 12 || key.AdC == "" {
		// Nothing to match on, now or later: a NACK would only bring it back.
		_, span := s.tracer.Start(ctx, "smsc delivery report", trace.WithSpanKind(trace.SpanKindServer))
		setAttrs(span)
		span.SetStatus(codes.Error, "no correlation key")
		span.End()
		s.Log.WarnContext(ctx, "smsc DR without recipient or SCTS; ACKed and dropped", "short_code", acc.ShortCode)
		return nil
	}
	ckey := corrKey(key.AdC, key.SCTS)
	ref, found, err := s.lookupRef(ctx, ckey)
	if tp := ref.traceparent(); err == nil && found && tp != "" {
		// One trace per SMS: the DR's span continues the submit's trace.
		ctx = telemetry.ContextWithTraceparent(ctx, tp)
	}
	ctx, span := s.tracer.Start(ctx, "smsc delivery report", trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	setAttrs(span)
	fail := func(err error, status string) error {
		span.RecordError(err)
		span.SetStatus(codes.Error, status)
		return err
	}
	switch {
	case err != nil:
		return fail(err, "lookup failed")
	case !found:
		if t := s.parseSCTS(key.SCTS); !t.IsZero() && s.now().Sub(t) > keyTTL() {
			s.stats.stale.Add(1)
			s.Log.WarnContext(ctx, "smsc DR older than the correlation keys; ACKed and dropped", "short_code", acc.ShortCode, "scts", key.SCTS)
			return nil
		}
		s.stats.unmatched.Add(1)
		s.Log.WarnContext(ctx, "smsc DR matches no submit; NACKed", "short_code", acc.ShortCode, "scts", key.SCTS)
		return fail(errNoRecord, "no submit record")
	}
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("pushsms.message_id", ref.MessageID),
			attribute.String("pushsms.tenant_id", ref.TenantID),
			attribute.Int("pushsms.segment.index", int(ref.Index)),
		)
	}
	state, subject, final, ok := s.drState(n, ref)
	if !ok {
		s.Log.WarnContext(ctx, "smsc DR with an unknown DSt; ACKed and dropped", "short_code", acc.ShortCode, "dst", int(n.DSt))
		return nil
	}
	code := ""
	if n.DSt != ucp.StatusDelivered {
		code = fmt.Sprintf("%03d", n.Rsn)
		span.SetAttributes(attribute.String("pushsms.ucp.error_code", code))
	}
	detail := ""
	if n.DSt != ucp.StatusDelivered {
		// Decoded only when it is kept: most DRs say delivered.
		if text, err := n.Text(); err == nil {
			detail = truncate(text, 160)
		}
	}
	submittedAt := s.parseSCTS(key.SCTS)
	if err := s.report(ctx, ref, state, subject, final, code, detail, submittedAt); err != nil {
		return fail(err, "report not stored")
	}
	s.metrics.deliveryReport(ctx, ref.ShortCode, subject, submittedAt, s.now())
	return nil
}

// drState maps a DR (ucp.md §2.7): DSt 0 is DELIVERED, 1 BUFFERED (not
// final), 2 FAILED, or EXPIRED when its Rsn is one of -smsc-expired-rsn or
// the non-delivery is dated at or after the validity end the 51 carried.
// The CMG reason codes have no "validity expired" (201 and 205 say the VP
// given was invalid, a failure); DSCTS against VP needs no operator code.
func (s *Service) drState(n *ucp.Notification, ref segmentRef) (partnerv1.SegmentState, string, bool, bool) {
	switch n.DSt {
	case ucp.StatusDelivered:
		return partnerv1.SegmentState_SEGMENT_STATE_DELIVERED, stateDelivered, true, true
	case ucp.StatusBuffered:
		return partnerv1.SegmentState_SEGMENT_STATE_BUFFERED, stateBuffered, false, true
	case ucp.StatusNotDelivered:
		if s.expRsn[n.Rsn] {
			return partnerv1.SegmentState_SEGMENT_STATE_EXPIRED, stateExpired, true, true
		}
		if !ref.ValidUntil.IsZero() {
			if at := s.parseSCTS(n.DSCTS); !at.IsZero() && !at.Before(ref.ValidUntil) {
				return partnerv1.SegmentState_SEGMENT_STATE_EXPIRED, stateExpired, true, true
			}
		}
		return partnerv1.SegmentState_SEGMENT_STATE_FAILED, stateFailed, true, true
	}
	return 0, "", false, false
}

// handleMO publishes a subscriber's message (OT 52) as MobileOriginated.
// A part of a concatenated MO (a concatenation UDH in XSer) is stored in
// the bucket and ACKed; the part that completes the set publishes the
// whole text (mo.go).
func (s *Service) handleMO(ctx context.Context, acc Account, d *ucp.Deliver) error {
	shortCode := acc.ShortCode
	if _, ours := s.links[d.AdC]; ours {
		shortCode = d.AdC // a large account may answer for several codes
	}
	ctx, span := s.tracer.Start(ctx, "smsc mobile originated", trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		attribute.String("pushsms.short_code", shortCode),
	))
	defer span.End()
	text, err := d.Text()
	if err != nil {
		// Binary (an OTA or a ringtone, say): nothing a partner reads.
		s.Log.WarnContext(ctx, "smsc MO is not text; published without it", "short_code", shortCode, "mt", int(d.MT))
		text = ""
	}
	originator := d.OAdC
	if d.OTOA != ucp.OTOAAlphanumeric {
		if n, ok := normalise(d.OAdC); ok {
			originator = n.E164()
		}
	}
	scts := d.SCTS
	if scts == "" {
		// SCTS is mandatory in a 52; without it the id needs another
		// deterministic part, or a resent MO would be stored twice.
		sum := sha256.Sum256(d.Msg)
		scts = "x" + hex.EncodeToString(sum[:8])
	}
	if c, ok := gsm.ParseConcat(d.XSer.UDH); ok && c.Total > 1 {
		span.SetAttributes(attribute.Int("pushsms.mo.part", c.Index), attribute.Int("pushsms.mo.parts", c.Total))
		whole, complete, err := s.storeMOPart(ctx, shortCode, originator, c, moPart{Text: text, SCTS: scts, Total: c.Total})
		if err != nil || !complete {
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, "part not stored")
			}
			return err
		}
		err = s.publishMO(ctx, span, shortCode, originator, whole.Text, moID(shortCode, originator, whole.SCTS)+"-"+strconv.Itoa(int(c.Ref)), whole.SCTS)
		if err == nil {
			s.stats.moReassembled.Add(1)
			s.deleteMOParts(ctx, shortCode, originator, c)
		}
		return err
	}
	return s.publishMO(ctx, span, shortCode, originator, text, moID(shortCode, originator, scts), scts)
}

// moID is the id of an MO: mo/<short code>/<hash(originator)>/<SCTS>.
func moID(shortCode, originator, scts string) string {
	return "mo/" + shortCode + "/" + addrHash(originator) + "/" + scts
}

func (s *Service) publishMO(ctx context.Context, span trace.Span, shortCode, originator, text, id, scts string) error {
	span.SetAttributes(attribute.String("pushsms.mo_id", id))
	ev := &eventsv1.MobileOriginated{
		MoId:       id,
		ShortCode:  shortCode,
		Originator: originator,
		Text:       text,
		ReceivedAt: timestamppb.New(s.now()),
	}
	if t := s.parseSCTS(scts); !t.IsZero() {
		ev.SmscTimestamp = timestamppb.New(t)
	}
	if err := s.Bus.Publish(ctx, bus.MOSubject(shortCode), ev, id); err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "not stored")
		return err
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func utf8RuneStart(b byte) bool { return b&0xc0 != 0x80 }

// keyTTL is how long the bucket keeps a correlation key: a DR about an
// older submit can never be matched.
func keyTTL() time.Duration {
	for _, b := range bus.Buckets(1) {
		if b.Bucket == bus.BucketSubmitted {
			return b.TTL
		}
	}
	return 7 * 24 * time.Hour
}
