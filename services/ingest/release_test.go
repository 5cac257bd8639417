package ingest_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/rate"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
	"pushsms.io/services/ingest"
)

// scheduledBatches counts the release schedules stored on filter.
func (e *env) scheduledBatches(t *testing.T, filter string) int {
	t.Helper()
	st, err := e.bus.JS.Stream(context.Background(), bus.StreamAccepted)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n
}

// cancelledReports returns the traceparent of each message reported
// cancelled, by message id.
func (e *env) cancelledReports(t *testing.T) map[string]string {
	t.Helper()
	ctx := context.Background()
	st, err := e.bus.JS.Stream(ctx, bus.StreamReports)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil || !strings.HasPrefix(m.Subject, "sms.report.cancelled.") {
			continue
		}
		id := strings.TrimSuffix(m.Header.Get(bus.HeaderMsgID), "/cancelled")
		if _, twice := out[id]; twice {
			t.Errorf("message %s reported cancelled twice", id)
		}
		out[id] = m.Header.Get("traceparent")
	}
	return out
}

// A cancelled campaign's messages still waiting for their release are
// cancelled at once, not as they come due (up to hours later at a short
// code's pace): the partner sees them CANCELLED, billing gives their
// credit back. Another campaign of the short code keeps its schedules,
// until the short code itself is cancelled; a campaign accepted after that
// goes on.
func TestCancelCampaignCancelsScheduledBatches(t *testing.T) {
	// 10 segments a second, batches of 50 s: of 1 500 one-segment
	// recipients in chunks of 500, the first chunk is published, the next
	// two are due in 50 s and 100 s.
	e := startWith(t, func(c *ingest.Config) { c.Release = ingest.ReleaseConfig{Rate: 10, Lead: 0, Span: 50 * time.Second} })
	submit := func(ref string) *partnerv1.Campaign {
		t.Helper()
		resp, err := e.submit(t, campaignSpec(ref), 1500, 500, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetCampaign()
	}
	first, second := submit("first"), submit("second")
	filter := func(c *partnerv1.Campaign) string { return bus.ReleaseFilter(scA, c.GetCampaignId()) }
	if n, m := e.scheduledBatches(t, filter(first)), e.scheduledBatches(t, filter(second)); n != 2 || m != 2 {
		t.Fatalf("%d and %d batches scheduled, want 2 each", n, m)
	}
	trace := map[string]string{}
	for _, acc := range e.acceptedMessages(t) {
		trace[acc.GetMessageId()] = acc.GetTraceparent()
	}

	if _, err := e.client.CancelCampaign(as(e.keyA), &partnerv1.CancelCampaignRequest{CampaignId: first.GetCampaignId()}); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 10*time.Second, func() error {
		got, err := e.client.GetCampaign(as(e.keyA), &partnerv1.GetCampaignRequest{CampaignId: first.GetCampaignId()})
		if err != nil {
			return err
		}
		// The first chunk went to compliance before the cancel: throttle
		// cancels those.
		if c := counts(got.GetCampaign()); c[partnerv1.MessageState_MESSAGE_STATE_CANCELLED] != 1000 || c[partnerv1.MessageState_MESSAGE_STATE_ACCEPTED] != 500 {
			return fmt.Errorf("counts %v, want 1000 CANCELLED and 500 ACCEPTED", c)
		}
		return nil
	})
	if n, m := e.scheduledBatches(t, filter(first)), e.scheduledBatches(t, filter(second)); n != 0 || m != 2 {
		t.Errorf("%d batches of the cancelled campaign and %d of the other still scheduled, want 0 and 2", n, m)
	}
	reports := e.cancelledReports(t)
	if len(reports) != 1000 {
		t.Errorf("%d messages reported cancelled, want 1000", len(reports))
	}
	// One SMS, one trace: the report continues the message's.
	for id, tp := range reports {
		want := trace[id]
		if want == "" || len(tp) != 55 || tp[3:35] != want[3:35] {
			t.Fatalf("message %s reported cancelled in trace %q, accepted in %q", id, tp, want)
		}
	}

	// The short code's cancel takes the other campaign's schedules; a
	// campaign accepted after it keeps its own.
	if _, err := e.client.CancelShortCode(as(e.keyA), &partnerv1.CancelShortCodeRequest{ShortCode: scA}); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 10*time.Second, func() error {
		if n := e.scheduledBatches(t, filter(second)); n != 0 {
			return fmt.Errorf("%d batches of the second campaign still scheduled", n)
		}
		return nil
	})
	third := submit("third")
	if n := len(e.cancelledReports(t)); n != 2000 {
		t.Errorf("%d messages reported cancelled after the short code's cancel, want 2000", n)
	}
	time.Sleep(time.Second)
	if n := e.scheduledBatches(t, filter(third)); n != 2 {
		t.Errorf("%d batches of a campaign accepted after the short code's cancel scheduled, want 2", n)
	}
}

// scheduleTimes returns when the batches scheduled on filter are due, in
// order.
func (e *env) scheduleTimes(t *testing.T, filter string) []time.Time {
	t.Helper()
	ctx := context.Background()
	st, err := e.bus.JS.Stream(ctx, bus.StreamAccepted)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatal(err)
	}
	var out []time.Time
	for subject := range info.State.Subjects {
		m, err := st.GetLastMsgForSubject(ctx, subject)
		if err != nil {
			t.Fatal(err)
		}
		at, err := time.Parse(time.RFC3339, strings.TrimPrefix(m.Header.Get(jetstream.ScheduleHeader), "@at "))
		if err != nil {
			t.Fatalf("schedule on %s: %v", subject, err)
		}
		out = append(out, at)
	}
	slices.SortFunc(out, time.Time.Compare)
	return out
}

// A campaign is released at the rate its short code had at the upload.
// When the rate is raised while the campaign runs, its batches still
// scheduled are moved forward to the new pace, in order; a campaign that
// starts later keeps its start and is spread at the new pace from there.
func TestRateRaiseMovesScheduledBatchesForward(t *testing.T) {
	e := startWith(t, func(c *ingest.Config) {
		c.Release = ingest.ReleaseConfig{Rate: 1000, Lead: 0, Span: 100 * time.Second}
	})
	ctx := context.Background()
	// 5 SMS/s: 1 500 one-segment recipients in chunks of 500 are due at
	// once, in 100 s and in 200 s.
	if err := rate.PutRate(ctx, e.bus, scA, 5); err != nil {
		t.Fatal(err)
	}
	submit := func(spec *partnerv1.CampaignSpec) *partnerv1.Campaign {
		t.Helper()
		resp, err := e.submit(t, spec, 1500, 500, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetCampaign()
	}
	running := submit(campaignSpec("running"))
	laterSpec := campaignSpec("later")
	start := time.Now().Add(time.Hour).Truncate(time.Second)
	laterSpec.StartAt = timestamppb.New(start)
	later := submit(laterSpec)
	if got := e.scheduleTimes(t, bus.ReleaseFilter(scA, running.GetCampaignId())); len(got) != 2 || time.Until(got[1]) < 190*time.Second {
		t.Fatalf("running campaign's batches due %v, want 2, the last in about 200 s", got)
	}

	raised := time.Now()
	if err := rate.PutRate(ctx, e.bus, scA, 150); err != nil {
		t.Fatal(err)
	}
	// Released at 150 a second now: the two batches are due 3.3 and 6.7 s
	// after the raise, not 100 and 200 s.
	bustest.Eventually(t, 20*time.Second, func() error {
		n := 0
		for _, acc := range e.acceptedMessages(t) {
			if acc.GetCampaignId() == running.GetCampaignId() {
				n++
			}
		}
		if left := e.scheduledBatches(t, bus.ReleaseFilter(scA, running.GetCampaignId())); left != 0 {
			return fmt.Errorf("%d batches of the running campaign still scheduled", left)
		}
		if n != 1500 {
			return fmt.Errorf("%d of 1500 messages", n)
		}
		return nil
	})
	if took := time.Since(raised); took > 15*time.Second {
		t.Errorf("the running campaign's last batch released %v after the raise, want about 7 s", took)
	}
	// Still in the partner's order.
	i := 0
	for _, acc := range e.acceptedMessages(t) {
		if acc.GetCampaignId() != running.GetCampaignId() {
			continue
		}
		if want := fmt.Sprintf("06%08d", i); acc.GetRecipient() != want {
			t.Fatalf("message %d to %s, want %s", i, acc.GetRecipient(), want)
		}
		i++
	}
	// The later campaign: from its start, 0, 3.3 and 6.7 s (schedules are
	// rounded down to the second).
	got := e.scheduleTimes(t, bus.ReleaseFilter(scA, later.GetCampaignId()))
	want := []time.Duration{0, 3 * time.Second, 6 * time.Second}
	if len(got) != len(want) {
		t.Fatalf("later campaign's batches due %v, want 3", got)
	}
	for i, at := range got {
		if d := at.Sub(start); d != want[i] {
			t.Errorf("later campaign's batch %d due %v after its start, want %v", i, d, want[i])
		}
	}
}
