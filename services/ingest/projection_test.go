package ingest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
	"pushsms.io/services/ingest"
)

// The neighbour services are played by publishing their events by hand.

// accepted reads the MessageAccepted ingest published for msg.
func (e *env) accepted(t *testing.T, msg *partnerv1.Message) *eventsv1.MessageAccepted {
	t.Helper()
	for _, m := range e.streamMsgs(t, bus.StreamAccepted) {
		if m.msgID == msg.GetMessageId() {
			var acc eventsv1.MessageAccepted
			m.decode(t, &acc)
			return &acc
		}
	}
	t.Fatalf("no MessageAccepted for %s", msg.GetMessageId())
	return nil
}

// clear publishes compliance's MessageCleared with n segments.
func (e *env) clear(t *testing.T, acc *eventsv1.MessageAccepted, n int) {
	t.Helper()
	ev := &eventsv1.MessageCleared{Message: acc, RecipientE164: "+33612345678", ClearedAt: timestamppb.Now()}
	for i := 1; i <= n; i++ {
		ev.Segments = append(ev.Segments, &eventsv1.Segment{Index: int32(i), Count: int32(n), Encoding: partnerv1.Encoding_ENCODING_GSM7})
	}
	if err := e.bus.Publish(context.Background(), bus.ClearedSubject(acc.GetTenantId(), acc.GetShortCode()), ev, acc.GetMessageId()+"/cleared"); err != nil {
		t.Fatal(err)
	}
}

// report publishes a SegmentReport as smsc-link does; subjectState is the
// subject's token (nacked for a NACK).
func (e *env) report(t *testing.T, acc *eventsv1.MessageAccepted, index, count int32, state partnerv1.SegmentState, subjectState, ucpErr string) {
	t.Helper()
	ev := &eventsv1.SegmentReport{
		MessageId:    acc.GetMessageId(),
		TenantId:     acc.GetTenantId(),
		CampaignId:   acc.GetCampaignId(),
		ShortCode:    acc.GetShortCode(),
		SegmentIndex: index,
		SegmentCount: count,
		State:        state,
		UcpErrorCode: ucpErr,
		At:           timestamppb.Now(),
		Final:        state == partnerv1.SegmentState_SEGMENT_STATE_DELIVERED || state == partnerv1.SegmentState_SEGMENT_STATE_FAILED,
	}
	subject := bus.ReportSubject(subjectState, acc.GetTenantId(), acc.GetShortCode())
	if err := e.bus.Publish(context.Background(), subject, ev, fmt.Sprintf("%s/%d/%s", acc.GetMessageId(), index, subjectState)); err != nil {
		t.Fatal(err)
	}
}

func (e *env) reject(t *testing.T, acc *eventsv1.MessageAccepted, state string, reason partnerv1.Reason, detail string) {
	t.Helper()
	ev := &eventsv1.MessageRejected{
		MessageId: acc.GetMessageId(), TenantId: acc.GetTenantId(), CampaignId: acc.GetCampaignId(),
		ShortCode: acc.GetShortCode(), Reason: reason, Detail: detail, At: timestamppb.Now(),
	}
	if err := e.bus.Publish(context.Background(), bus.ReportSubject(state, acc.GetTenantId(), acc.GetShortCode()), ev, acc.GetMessageId()+"/"+state); err != nil {
		t.Fatal(err)
	}
}

func segmentStates(msg *partnerv1.Message) []partnerv1.SegmentState {
	var out []partnerv1.SegmentState
	for _, s := range msg.GetSegments() {
		out = append(out, s.GetState())
	}
	return out
}

func TestProjectionDelivered(t *testing.T) {
	const (
		pending   = partnerv1.SegmentState_SEGMENT_STATE_PENDING
		submitted = partnerv1.SegmentState_SEGMENT_STATE_SUBMITTED
		delivered = partnerv1.SegmentState_SEGMENT_STATE_DELIVERED
	)
	e := start(t)
	msg := e.send(t, sendReq("06 12 34 56 78", "Bonjour"))
	acc := e.accepted(t, msg)

	e.clear(t, acc, 2)
	got := e.waitState(t, msg.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_QUEUED)
	if got.GetSegmentCount() != 2 || fmt.Sprint(segmentStates(got)) != fmt.Sprint([]partnerv1.SegmentState{pending, pending}) {
		t.Errorf("queued message has %d segments %v, want 2 PENDING", got.GetSegmentCount(), segmentStates(got))
	}
	// A redelivered cleared event changes nothing.
	e.clear(t, acc, 2)

	e.report(t, acc, 1, 2, submitted, "submitted", "")
	e.waitState(t, msg.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_SUBMITTING)
	e.report(t, acc, 2, 2, submitted, "submitted", "")
	got = e.waitState(t, msg.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_SUBMITTED)
	if got.GetSegments()[0].GetSubmittedAt() == nil {
		t.Error("submitted segment has no submitted_at")
	}

	e.report(t, acc, 1, 2, delivered, "delivered", "")
	e.report(t, acc, 2, 2, delivered, "delivered", "")
	got = e.waitState(t, msg.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_DELIVERED)
	for _, s := range got.GetSegments() {
		if s.GetState() != delivered || s.GetDoneAt() == nil {
			t.Errorf("segment %d: %v done at %v, want DELIVERED with a time", s.GetIndex(), s.GetState(), s.GetDoneAt())
		}
	}

	// A late report (published under another id, as after the duplicate
	// window) never moves a segment back.
	late := &eventsv1.SegmentReport{MessageId: acc.GetMessageId(), TenantId: tenantA, ShortCode: scA, SegmentIndex: 1, SegmentCount: 2, State: partnerv1.SegmentState_SEGMENT_STATE_BUFFERED, At: timestamppb.Now()}
	if err := e.bus.Publish(context.Background(), bus.ReportSubject("buffered", tenantA, scA), late, acc.GetMessageId()+"/1/buffered-late"); err != nil {
		t.Fatal(err)
	}
	e.waitConsumed(t)
	if got := e.getMessage(t, msg.GetMessageId()); got.GetState() != partnerv1.MessageState_MESSAGE_STATE_DELIVERED || got.GetSegments()[0].GetState() != delivered {
		t.Errorf("after a late report: %v, segments %v", got.GetState(), segmentStates(got))
	}
}

func TestProjectionRejected(t *testing.T) {
	e := start(t)
	msg := e.send(t, sendReq("01 23 45 67 89", "Bonjour"))
	acc := e.accepted(t, msg)
	e.reject(t, acc, "rejected", partnerv1.Reason_REASON_NOT_MOBILE, "fixed-line number")
	got := e.waitState(t, msg.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_REJECTED)
	if got.GetReason() != partnerv1.Reason_REASON_NOT_MOBILE || got.GetReasonDetail() != "fixed-line number" {
		t.Errorf("reason %v %q, want NOT_MOBILE", got.GetReason(), got.GetReasonDetail())
	}
}

func TestProjectionCancelled(t *testing.T) {
	e := start(t)
	msg := e.send(t, sendReq("06 12 34 56 78", "Bonjour"))
	acc := e.accepted(t, msg)
	e.clear(t, acc, 1)
	e.waitState(t, msg.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_QUEUED)
	e.reject(t, acc, "cancelled", partnerv1.Reason_REASON_UNSPECIFIED, "")
	got := e.waitState(t, msg.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_CANCELLED)
	if got.GetReason() != partnerv1.Reason_REASON_CANCELLED {
		t.Errorf("reason %v, want CANCELLED", got.GetReason())
	}
}

func TestProjectionReportBeforeCleared(t *testing.T) {
	e := start(t)
	msg := e.send(t, sendReq("06 12 34 56 78", "Bonjour"))
	acc := e.accepted(t, msg)
	e.report(t, acc, 1, 1, partnerv1.SegmentState_SEGMENT_STATE_DELIVERED, "delivered", "")
	got := e.waitState(t, msg.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_DELIVERED)
	if len(got.GetSegments()) != 1 {
		t.Errorf("%d segments, want 1", len(got.GetSegments()))
	}
	e.clear(t, acc, 1)
	e.waitConsumed(t)
	if got := e.getMessage(t, msg.GetMessageId()); got.GetState() != partnerv1.MessageState_MESSAGE_STATE_DELIVERED {
		t.Errorf("after the late cleared event: %v, want DELIVERED", got.GetState())
	}
}

func TestProjectionFailed(t *testing.T) {
	e := start(t)
	msg := e.send(t, sendReq("06 12 34 56 78", "Bonjour"))
	acc := e.accepted(t, msg)
	e.clear(t, acc, 2)
	e.report(t, acc, 1, 2, partnerv1.SegmentState_SEGMENT_STATE_SUBMITTED, "submitted", "")
	e.report(t, acc, 2, 2, partnerv1.SegmentState_SEGMENT_STATE_FAILED, "nacked", "33")
	got := e.waitState(t, msg.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_FAILED)
	if got.GetReason() != partnerv1.Reason_REASON_SMSC_REJECTED || got.GetSegments()[1].GetUcpErrorCode() != "33" {
		t.Errorf("reason %v, segment 2 error %q; want SMSC_REJECTED, 33", got.GetReason(), got.GetSegments()[1].GetUcpErrorCode())
	}
}

// TestProjectionRebuildsLostRow: a cleared event about a message the
// database does not hold (its accept's commit failed after the publish)
// makes the row, without the number in clear.
func TestProjectionRebuildsLostRow(t *testing.T) {
	e := start(t)
	now := time.Now()
	acc := &eventsv1.MessageAccepted{
		MessageId: "01936b2e-1111-7000-8000-000000000001", TenantId: tenantA, ShortCode: scA, Brand: "Acme",
		Category: partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING, Recipient: "0612345678", Text: "Bonjour",
		AcceptedAt: timestamppb.New(now), ExpiresAt: timestamppb.New(now.Add(time.Hour)),
		Encoding: partnerv1.Encoding_ENCODING_GSM7, SegmentCount: 1,
	}
	e.clear(t, acc, 1)
	got := e.waitState(t, acc.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_QUEUED)
	if got.GetRecipientMasked() != "+33 6 12 •• •• 78" {
		t.Errorf("recipient_masked %q", got.GetRecipientMasked())
	}
}

// waitConsumed waits until the status view has handled every event.
func (e *env) waitConsumed(t *testing.T) {
	t.Helper()
	bustest.WaitIdle(t, e.bus, bus.StreamCleared, ingest.DurableCleared, 0, 10*time.Second)
	bustest.WaitIdle(t, e.bus, bus.StreamReports, ingest.DurableReports, 0, 10*time.Second)
}

// A message compliance holds for its sending window (not_before later than
// the partner asked) reads DEFERRED, then moves on once submitted.
func TestProjectionDeferredByCompliance(t *testing.T) {
	e := start(t)
	msg := e.send(t, sendReq("06 12 34 56 78", "Promo -20% ce week-end"))
	acc := e.accepted(t, msg)
	held := proto.Clone(acc).(*eventsv1.MessageAccepted)
	held.NotBefore = timestamppb.New(time.Now().Add(10 * time.Hour))
	e.clear(t, held, 1)
	e.waitState(t, msg.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_DEFERRED)
	e.report(t, acc, 1, 1, partnerv1.SegmentState_SEGMENT_STATE_SUBMITTED, "submitted", "")
	e.waitState(t, msg.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_SUBMITTED)
}

// The status view applies its events in batches, one transaction each: a
// report that can never apply (a segment that cannot exist) and one about
// a message not recorded yet, published among good ones, hold none of
// them back.
func TestProjectionBatchIsolatesBadEvents(t *testing.T) {
	const submitted = partnerv1.SegmentState_SEGMENT_STATE_SUBMITTED
	e := start(t)
	a := e.send(t, sendReq("06 12 34 56 78", "Bonjour A"))
	b := e.send(t, sendReq("06 12 34 56 79", "Bonjour B"))
	accA, accB := e.accepted(t, a), e.accepted(t, b)
	e.clear(t, accA, 2)
	e.clear(t, accB, 1)
	e.waitState(t, b.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_QUEUED)

	orphan := proto.Clone(accA).(*eventsv1.MessageAccepted)
	orphan.MessageId = "0194f1c2-0000-7000-8000-000000000001"
	e.report(t, accA, 1, 2, submitted, "submitted", "")
	e.report(t, accA, 300, 2, submitted, "submitted", "") // no such segment: terminated
	e.report(t, orphan, 1, 1, submitted, "submitted", "") // no such message yet: redelivered
	e.report(t, accB, 1, 1, submitted, "submitted", "")
	e.waitState(t, a.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_SUBMITTING)
	e.waitState(t, b.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_SUBMITTED)
}

// A message's reports that arrive together are applied together (its row
// held once): the result is the one they give one by one, whichever of
// its parts failed first giving the reason.
func TestProjectionReportsOfOneMessageTogether(t *testing.T) {
	const (
		submitted = partnerv1.SegmentState_SEGMENT_STATE_SUBMITTED
		delivered = partnerv1.SegmentState_SEGMENT_STATE_DELIVERED
		failed    = partnerv1.SegmentState_SEGMENT_STATE_FAILED
	)
	e := start(t)
	a := e.send(t, sendReq("06 12 34 56 78", "Bonjour A"))
	b := e.send(t, sendReq("06 12 34 56 79", "Bonjour B"))
	accA, accB := e.accepted(t, a), e.accepted(t, b)
	e.clear(t, accA, 3)
	e.clear(t, accB, 2)
	e.waitState(t, b.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_QUEUED)
	for i := int32(1); i <= 3; i++ {
		e.report(t, accA, i, 3, submitted, "submitted", "")
	}
	e.report(t, accB, 1, 2, submitted, "submitted", "")
	e.report(t, accB, 2, 2, submitted, "submitted", "")
	e.report(t, accA, 1, 3, delivered, "delivered", "")
	e.report(t, accA, 2, 3, failed, "nacked", "33")
	e.report(t, accA, 3, 3, failed, "failed", "")
	e.report(t, accB, 2, 2, delivered, "delivered", "")
	e.report(t, accB, 1, 2, delivered, "delivered", "")
	gotA := e.waitState(t, a.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_FAILED)
	if got, want := fmt.Sprint(segmentStates(gotA)), fmt.Sprint([]partnerv1.SegmentState{delivered, failed, failed}); got != want {
		t.Errorf("A's segments %s, want %s", got, want)
	}
	if gotA.GetReason() != partnerv1.Reason_REASON_SMSC_REJECTED {
		t.Errorf("A's reason %v, want SMSC_REJECTED (its first failed part's)", gotA.GetReason())
	}
	gotB := e.waitState(t, b.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_DELIVERED)
	for _, s := range gotB.GetSegments() {
		if s.GetSubmittedAt() == nil || s.GetDoneAt() == nil {
			t.Errorf("B's segment %d: submitted %v, done %v", s.GetIndex(), s.GetSubmittedAt(), s.GetDoneAt())
		}
	}
}
