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

// clearWith publishes compliance's MessageCleared of a one-segment
// message with decision d.
func (e *env) clearWith(t *testing.T, acc *eventsv1.MessageAccepted, d *partnerv1.Decision) {
	t.Helper()
	ev := &eventsv1.MessageCleared{Message: acc, RecipientE164: "+33612345678", ClearedAt: timestamppb.Now(), Decision: d,
		Segments: []*eventsv1.Segment{{Index: 1, Count: 1, Encoding: partnerv1.Encoding_ENCODING_GSM7}}}
	if d.GetNotBefore() != nil {
		// Compliance holds the message: the accepted message it passes on
		// carries the deferral.
		ev.Message = proto.CloneOf(acc)
		ev.Message.NotBefore = d.GetNotBefore()
	}
	if err := e.bus.Publish(context.Background(), bus.ClearedSubject(acc.GetTenantId(), acc.GetShortCode()), ev, acc.GetMessageId()+"/cleared"); err != nil {
		t.Fatal(err)
	}
}

// rejectWith publishes compliance's MessageRejected with decision d (nil:
// a compliance that sends no decision).
func (e *env) rejectWith(t *testing.T, acc *eventsv1.MessageAccepted, reason partnerv1.Reason, d *partnerv1.Decision) {
	t.Helper()
	ev := &eventsv1.MessageRejected{
		MessageId: acc.GetMessageId(), TenantId: acc.GetTenantId(), CampaignId: acc.GetCampaignId(),
		ShortCode: acc.GetShortCode(), Reason: reason, Detail: "refused", At: timestamppb.Now(), Decision: d,
	}
	if err := e.bus.Publish(context.Background(), bus.ReportSubject("rejected", acc.GetTenantId(), acc.GetShortCode()), ev, acc.GetMessageId()+"/rejected"); err != nil {
		t.Fatal(err)
	}
}

// at is a time PostgreSQL stores exactly (microseconds).
func at(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t.Truncate(time.Microsecond)) }

func TestMessageDecision(t *testing.T) {
	e := start(t)
	now := time.Now()
	// Deferred to the window's next opening, some time ahead.
	monday := now.Add(36 * time.Hour)
	deferred := &partnerv1.Decision{
		Outcome: partnerv1.DecisionOutcome_DECISION_OUTCOME_DEFERRED, Rule: "window",
		Source: "Orange offer, Obligations of the aggregator", Detail: "outside 08:00-22:00 Monday-Saturday",
		NotBefore: at(monday), PolicyVersion: "2026.11.1", DecidedAt: at(now),
	}
	refused := &partnerv1.Decision{
		Outcome: partnerv1.DecisionOutcome_DECISION_OUTCOME_REFUSED, Reason: partnerv1.Reason_REASON_OPTED_OUT,
		Rule: "optout", Source: "CPCE L34-5", Detail: "STOP received on 36123", PolicyVersion: "2026.11.1", DecidedAt: at(now),
	}
	accepted := &partnerv1.Decision{
		Outcome: partnerv1.DecisionOutcome_DECISION_OUTCOME_ACCEPTED, PolicyVersion: "2026.11.1", DecidedAt: at(now),
	}
	tests := []struct {
		name    string
		publish func(*env, *testing.T, *eventsv1.MessageAccepted)
		state   partnerv1.MessageState
		want    *partnerv1.Decision
	}{
		{"deferred", func(e *env, t *testing.T, acc *eventsv1.MessageAccepted) { e.clearWith(t, acc, deferred) },
			partnerv1.MessageState_MESSAGE_STATE_DEFERRED, deferred},
		{"accepted", func(e *env, t *testing.T, acc *eventsv1.MessageAccepted) { e.clearWith(t, acc, accepted) },
			partnerv1.MessageState_MESSAGE_STATE_QUEUED, accepted},
		{"refused", func(e *env, t *testing.T, acc *eventsv1.MessageAccepted) {
			e.rejectWith(t, acc, partnerv1.Reason_REASON_OPTED_OUT, refused)
		}, partnerv1.MessageState_MESSAGE_STATE_REJECTED, refused},
		{"refused without a decision", func(e *env, t *testing.T, acc *eventsv1.MessageAccepted) {
			e.rejectWith(t, acc, partnerv1.Reason_REASON_FREQUENCY_CAP, nil)
		}, partnerv1.MessageState_MESSAGE_STATE_REJECTED, &partnerv1.Decision{
			Outcome: partnerv1.DecisionOutcome_DECISION_OUTCOME_REFUSED, Reason: partnerv1.Reason_REASON_FREQUENCY_CAP, Detail: "refused",
		}},
		{"cancelled is no decision", func(e *env, t *testing.T, acc *eventsv1.MessageAccepted) {
			e.reject(t, acc, "cancelled", partnerv1.Reason_REASON_CANCELLED, "")
		}, partnerv1.MessageState_MESSAGE_STATE_CANCELLED, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := e.send(t, sendReq("06 12 34 56 78", "Soldes -20% STOP au 36123"))
			if msg.GetDecision() != nil {
				t.Errorf("decision before compliance: %v, want none", msg.GetDecision())
			}
			tt.publish(e, t, e.accepted(t, msg))
			got := e.waitState(t, msg.GetMessageId(), tt.state).GetDecision()
			if tt.want.GetDecidedAt() == nil && got.GetDecidedAt() != nil {
				// Without a decision, the refusal's time is the event's.
				got = proto.CloneOf(got)
				got.DecidedAt = nil
			}
			if !proto.Equal(got, tt.want) {
				t.Errorf("decision %v, want %v", got, tt.want)
			}
		})
	}
}

// TestCampaignReport: GetCampaign and CancelCampaign count the refused
// messages by reason, most frequent first, and the deferred ones.
func TestCampaignReport(t *testing.T) {
	e := start(t)
	resp, err := e.submit(t, campaignSpec("report"), 9, 9, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetCampaign().GetCampaignId()
	if r := resp.GetCampaign(); len(r.GetReasons()) != 0 || r.GetDeferred() != 0 {
		t.Errorf("report before any decision: %v, %d deferred", r.GetReasons(), r.GetDeferred())
	}
	evs := e.campaignAccepted(t, id)
	if len(evs) != 9 {
		t.Fatalf("%d messages, want 9", len(evs))
	}
	refuse := func(acc *eventsv1.MessageAccepted, r partnerv1.Reason, rule string) {
		e.rejectWith(t, acc, r, &partnerv1.Decision{Outcome: partnerv1.DecisionOutcome_DECISION_OUTCOME_REFUSED, Reason: r, Rule: rule, DecidedAt: timestamppb.Now()})
	}
	refuse(evs[0], partnerv1.Reason_REASON_SECTOR_BANNED, "sector")
	refuse(evs[1], partnerv1.Reason_REASON_OPTED_OUT, "optout")
	refuse(evs[2], partnerv1.Reason_REASON_SECTOR_BANNED, "sector")
	refuse(evs[3], partnerv1.Reason_REASON_FREQUENCY_CAP, "frequency")
	e.rejectWith(t, evs[4], partnerv1.Reason_REASON_OPTED_OUT, nil)
	refuse(evs[5], partnerv1.Reason_REASON_SECTOR_BANNED, "sector")
	e.clearWith(t, evs[6], &partnerv1.Decision{Outcome: partnerv1.DecisionOutcome_DECISION_OUTCOME_DEFERRED, Rule: "window",
		NotBefore: timestamppb.New(time.Now().Add(10 * time.Hour)), DecidedAt: timestamppb.Now()})
	e.clearWith(t, evs[7], &partnerv1.Decision{Outcome: partnerv1.DecisionOutcome_DECISION_OUTCOME_ACCEPTED, DecidedAt: timestamppb.Now()})

	e.clearWith(t, evs[8], &partnerv1.Decision{Outcome: partnerv1.DecisionOutcome_DECISION_OUTCOME_DEFERRED, Rule: "window",
		NotBefore: timestamppb.New(time.Now().Add(time.Hour)), DecidedAt: timestamppb.Now()})

	report := func(c *partnerv1.Campaign) string {
		var rs []string
		for _, r := range c.GetReasons() {
			rs = append(rs, fmt.Sprintf("%s:%d", r.GetReason().String()[len("REASON_"):], r.GetCount()))
		}
		return fmt.Sprintf("%v deferred %d", rs, c.GetDeferred())
	}
	waitReport := func(want string) {
		t.Helper()
		bustest.Eventually(t, 10*time.Second, func() error {
			got, err := e.client.GetCampaign(as(e.keyA), &partnerv1.GetCampaignRequest{CampaignId: id})
			if err != nil {
				return err
			}
			if r := report(got.GetCampaign()); r != want {
				return fmt.Errorf("report %s, want %s", r, want)
			}
			return nil
		})
	}
	waitReport("[SECTOR_BANNED:3 OPTED_OUT:2 FREQUENCY_CAP:1] deferred 2")

	// The second deferred message expires before its window opens: it
	// moves from deferred to refused. A rejection delivered again (past
	// the bus's duplicate window) counts once.
	e.rejectWith(t, evs[8], partnerv1.Reason_REASON_VALIDITY_EXPIRED, nil)
	again := &eventsv1.MessageRejected{MessageId: evs[1].GetMessageId(), TenantId: tenantA, CampaignId: id, ShortCode: scA,
		Reason: partnerv1.Reason_REASON_OPTED_OUT, At: timestamppb.Now(),
		Decision: &partnerv1.Decision{Outcome: partnerv1.DecisionOutcome_DECISION_OUTCOME_REFUSED, Reason: partnerv1.Reason_REASON_OPTED_OUT, Rule: "optout"}}
	if err := e.bus.Publish(context.Background(), bus.ReportSubject("rejected", tenantA, scA), again, evs[1].GetMessageId()+"/again"); err != nil {
		t.Fatal(err)
	}
	// Six refusals, then the expiry and the redelivery.
	bustest.WaitIdle(t, e.bus, bus.StreamReports, ingest.DurableReports, 8, 10*time.Second)
	want := "[SECTOR_BANNED:3 OPTED_OUT:2 FREQUENCY_CAP:1 VALIDITY_EXPIRED:1] deferred 1"
	waitReport(want)
	cancelled, err := e.client.CancelCampaign(as(e.keyA), &partnerv1.CancelCampaignRequest{CampaignId: id})
	if err != nil {
		t.Fatal(err)
	}
	if r := report(cancelled.GetCampaign()); r != want {
		t.Errorf("CancelCampaign's report %s, want %s", r, want)
	}
	rep := cancelled.GetCampaign()
	if counts(rep)[partnerv1.MessageState_MESSAGE_STATE_REJECTED] != 7 {
		t.Errorf("counts %v, want 7 REJECTED", rep.GetCounts())
	}
}
