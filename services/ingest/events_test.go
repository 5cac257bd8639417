package ingest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

func recvWithin(t *testing.T, st partnerv1.MessagingService_StreamEventsClient) *partnerv1.StreamEventsResponse {
	t.Helper()
	type result struct {
		resp *partnerv1.StreamEventsResponse
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		r, err := st.Recv()
		ch <- result{r, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Recv: %v", r.err)
		}
		return r.resp
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return nil
}

func TestStreamEvents(t *testing.T) {
	e := start(t)
	msg := e.send(t, sendReq("06 12 34 56 78", "Bonjour"))
	acc := e.accepted(t, msg)
	msgB, err := e.client.SendMessage(as(e.keyB), &partnerv1.SendMessageRequest{
		ShortCode: scB, Category: partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP, Recipient: "0687654321", Text: "Code 1234",
	})
	if err != nil {
		t.Fatal(err)
	}
	accB := e.accepted(t, msgB.GetMessage())
	// A report from before the stream opens is not sent without a cursor.
	e.clear(t, acc, 1)
	e.report(t, acc, 1, 1, partnerv1.SegmentState_SEGMENT_STATE_SUBMITTED, "submitted", "")
	e.waitState(t, msg.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_SUBMITTED)

	ctx, cancel := context.WithCancel(as(e.keyA))
	defer cancel()
	st, err := e.client.StreamEvents(ctx, &partnerv1.StreamEventsRequest{DeliveryReports: true, InboundMessages: true})
	if err != nil {
		t.Fatal(err)
	}
	// Events stored before the server read the streams' positions are not
	// sent: wait for its consumers.
	waitStreamOpen(t, e)

	e.report(t, accB, 1, 1, partnerv1.SegmentState_SEGMENT_STATE_DELIVERED, "delivered", "") // another tenant's
	e.report(t, acc, 1, 1, partnerv1.SegmentState_SEGMENT_STATE_DELIVERED, "delivered", "")
	first := recvWithin(t, st)
	dr := first.GetDeliveryReport()
	if dr.GetMessageId() != msg.GetMessageId() || dr.GetSegmentState() != partnerv1.SegmentState_SEGMENT_STATE_DELIVERED ||
		dr.GetMessageState() != partnerv1.MessageState_MESSAGE_STATE_DELIVERED || dr.GetSegmentIndex() != 1 {
		t.Errorf("first event %v, want the DELIVERED report of %s", first, msg.GetMessageId())
	}
	if first.GetCursor() == "" {
		t.Fatal("no cursor")
	}

	mo := &eventsv1.MobileOriginated{MoId: "mo-1", ShortCode: scA, Originator: "+33612345678", Text: "STOP", ReceivedAt: timestamppb.Now()}
	if err := e.bus.Publish(context.Background(), bus.MOSubject(scB), &eventsv1.MobileOriginated{MoId: "mo-b", ShortCode: scB, Text: "X"}, "mo/b"); err != nil {
		t.Fatal(err)
	}
	if err := e.bus.Publish(context.Background(), bus.MOSubject(scA), mo, "mo/1"); err != nil {
		t.Fatal(err)
	}
	second := recvWithin(t, st)
	if in := second.GetInboundMessage(); in.GetInboundId() != "mo-1" || in.GetText() != "STOP" || in.GetShortCode() != scA {
		t.Errorf("second event %v, want MO mo-1", second)
	}
	e.reject(t, acc, "cancelled", partnerv1.Reason_REASON_CANCELLED, "")
	third := recvWithin(t, st)
	if dr := third.GetDeliveryReport(); dr.GetMessageState() != partnerv1.MessageState_MESSAGE_STATE_CANCELLED || dr.GetReason() != partnerv1.Reason_REASON_CANCELLED {
		t.Errorf("third event %v, want a CANCELLED report with REASON_CANCELLED", third)
	}
	cancel()

	// Resume after the first event: the MO and the cancel come again.
	st2, err := e.client.StreamEvents(as(e.keyA), &partnerv1.StreamEventsRequest{AfterCursor: first.GetCursor()})
	if err != nil {
		t.Fatal(err)
	}
	got := []*partnerv1.StreamEventsResponse{recvWithin(t, st2), recvWithin(t, st2)}
	var sawMO, sawCancel bool
	for _, r := range got {
		sawMO = sawMO || r.GetInboundMessage().GetInboundId() == "mo-1"
		sawCancel = sawCancel || r.GetDeliveryReport().GetMessageState() == partnerv1.MessageState_MESSAGE_STATE_CANCELLED
	}
	if !sawMO || !sawCancel {
		t.Errorf("after the first cursor got %v, want the MO and the cancel", got)
	}
	// Resume after the last: nothing old comes again.
	st3, err := e.client.StreamEvents(as(e.keyA), &partnerv1.StreamEventsRequest{AfterCursor: third.GetCursor()})
	if err != nil {
		t.Fatal(err)
	}
	e.report(t, acc, 1, 1, partnerv1.SegmentState_SEGMENT_STATE_EXPIRED, "expired", "")
	if r := recvWithin(t, st3); r.GetDeliveryReport().GetSegmentState() != partnerv1.SegmentState_SEGMENT_STATE_EXPIRED ||
		r.GetDeliveryReport().GetReason() != partnerv1.Reason_REASON_VALIDITY_EXPIRED {
		t.Errorf("after the last cursor got %v, want the new EXPIRED report with REASON_VALIDITY_EXPIRED", r)
	}

	st4, err := e.client.StreamEvents(as(e.keyA), &partnerv1.StreamEventsRequest{AfterCursor: "garbage"})
	if err == nil {
		_, err = st4.Recv()
	}
	wantCode(t, err, codes.InvalidArgument)
}

// waitStreamOpen waits until the server follows SMS_REPORTS and SMS_MO.
func waitStreamOpen(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	bustest.Eventually(t, 10*time.Second, func() error {
		for _, name := range []string{bus.StreamReports, bus.StreamMO} {
			s, err := e.bus.JS.Stream(ctx, name)
			if err != nil {
				return err
			}
			info, err := s.Info(ctx)
			if err != nil {
				return err
			}
			// SMS_REPORTS also has the status view's durable.
			want := 1
			if name == bus.StreamReports {
				want = 2
			}
			if info.State.Consumers < want {
				return fmt.Errorf("%s has %d consumers, want %d", name, info.State.Consumers, want)
			}
		}
		return nil
	})
}
