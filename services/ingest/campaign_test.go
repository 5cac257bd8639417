package ingest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
	"pushsms.io/services/ingest"
)

func campaignSpec(ref string) *partnerv1.CampaignSpec {
	return &partnerv1.CampaignSpec{
		ShortCode:       scA,
		Brand:           "Acme",
		Category:        partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING,
		TextTemplate:    "Bonjour {{prenom}}, -20% avec le code {{ code }}. STOP 36123",
		Validity:        durationpb.New(6 * time.Hour),
		ClientReference: ref,
		Name:            "Soldes d'hiver",
	}
}

// submit streams spec then n recipients in batches of batch; the
// recipients at positions in noName have no "prenom", those in noNumber no
// number.
func (e *env) submit(t *testing.T, spec *partnerv1.CampaignSpec, n, batch int, noName, noNumber map[int]bool) (*partnerv1.SubmitCampaignResponse, error) {
	t.Helper()
	st, err := e.client.SubmitCampaign(as(e.keyA))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&partnerv1.SubmitCampaignRequest{Item: &partnerv1.SubmitCampaignRequest_Spec{Spec: spec}}); err != nil {
		t.Fatal(err)
	}
	for start := 0; start < n; start += batch {
		b := &partnerv1.RecipientBatch{}
		for i := start; i < min(start+batch, n); i++ {
			r := &partnerv1.Recipient{Msisdn: fmt.Sprintf("06%08d", i), Variables: map[string]string{"prenom": fmt.Sprint("Client", i), "code": "HIVER"}}
			if noName[i] {
				delete(r.Variables, "prenom")
			}
			if noNumber[i] {
				r.Msisdn = ""
			}
			b.Recipients = append(b.Recipients, r)
		}
		if err := st.Send(&partnerv1.SubmitCampaignRequest{Item: &partnerv1.SubmitCampaignRequest_Recipients{Recipients: b}}); err != nil {
			break // the server ended the stream: CloseAndRecv says why
		}
	}
	return st.CloseAndRecv()
}

func counts(c *partnerv1.Campaign) map[partnerv1.MessageState]int64 {
	out := map[partnerv1.MessageState]int64{}
	for _, sc := range c.GetCounts() {
		out[sc.GetState()] = sc.GetCount()
	}
	return out
}

func TestCampaign(t *testing.T) {
	e := start(t)
	const n = 3000
	noName := map[int]bool{}
	for i := 50; i < n; i += 100 {
		noName[i] = true
	}
	noNumber := map[int]bool{7: true}
	refused := len(noName) + len(noNumber)
	resp, err := e.submit(t, campaignSpec("winter-sale"), n, 250, noName, noNumber)
	if err != nil {
		t.Fatal(err)
	}
	c := resp.GetCampaign()
	if c.GetAccepted() != int64(n-refused) || c.GetRefused() != int64(refused) {
		t.Errorf("accepted %d, refused %d; want %d, %d", c.GetAccepted(), c.GetRefused(), n-refused, refused)
	}
	if c.GetState() != partnerv1.CampaignState_CAMPAIGN_STATE_RUNNING {
		t.Errorf("state %v, want RUNNING", c.GetState())
	}
	if got := counts(c); got[partnerv1.MessageState_MESSAGE_STATE_ACCEPTED] != int64(n-refused) || len(got) != 1 {
		t.Errorf("counts %v, want %d ACCEPTED", got, n-refused)
	}
	if len(resp.GetErrors()) != refused {
		t.Fatalf("%d errors, want %d", len(resp.GetErrors()), refused)
	}
	if e0 := resp.GetErrors()[0]; e0.GetPosition() != 7 || e0.GetReason() != partnerv1.Reason_REASON_INVALID_NUMBER {
		t.Errorf("first error %v, want position 7 INVALID_NUMBER", e0)
	}
	if e1 := resp.GetErrors()[1]; e1.GetPosition() != 50 || e1.GetReason() != partnerv1.Reason_REASON_CONTENT {
		t.Errorf("second error %v, want position 50 CONTENT (missing variable)", e1)
	}

	events := e.acceptedMessages(t)
	if len(events) != n-refused {
		t.Fatalf("%d MessageAccepted, want %d", len(events), n-refused)
	}
	acc := events[1]
	if acc.GetCampaignId() != c.GetCampaignId() || acc.GetText() != "Bonjour Client1, -20% avec le code HIVER. STOP 36123" {
		t.Errorf("event campaign %q text %q", acc.GetCampaignId(), acc.GetText())
	}
	// A campaign this small is released at once, in batches of the
	// upload's chunks.
	if first := e.streamMsgs(t, bus.StreamAccepted)[0]; first.msgID != events[0].GetMessageId()+"/batch" || first.subject != bus.AcceptedSubject(tenantA, scA) {
		t.Errorf("first event %s on %s, want %s/batch on %s", first.msgID, first.subject, events[0].GetMessageId(), bus.AcceptedSubject(tenantA, scA))
	}
	if !acc.GetNotBefore().AsTime().Equal(c.GetStartAt().AsTime()) ||
		acc.GetExpiresAt().AsTime().Sub(c.GetStartAt().AsTime()) != 6*time.Hour {
		t.Errorf("not_before %v, expires %v; want start %v and 6h later", acc.GetNotBefore().AsTime(), acc.GetExpiresAt().AsTime(), c.GetStartAt().AsTime())
	}

	// The status view moves the campaign's counts.
	e.clear(t, acc, 1)
	bustest.Eventually(t, 10*time.Second, func() error {
		got, err := e.client.GetCampaign(as(e.keyA), &partnerv1.GetCampaignRequest{CampaignId: c.GetCampaignId()})
		if err != nil {
			return err
		}
		if q := counts(got.GetCampaign())[partnerv1.MessageState_MESSAGE_STATE_QUEUED]; q != 1 {
			return fmt.Errorf("counts %v, want 1 QUEUED", counts(got.GetCampaign()))
		}
		return nil
	})

	_, err = e.client.GetCampaign(as(e.keyB), &partnerv1.GetCampaignRequest{CampaignId: c.GetCampaignId()})
	wantCode(t, err, codes.NotFound)
	_, err = e.client.CancelCampaign(as(e.keyB), &partnerv1.CancelCampaignRequest{CampaignId: c.GetCampaignId()})
	wantCode(t, err, codes.NotFound)

	// Cancel: the campaign is cancelled and throttle is told.
	kv, err := e.bus.JS.KeyValue(context.Background(), bus.BucketCampaigns)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := kv.Get(context.Background(), c.GetCampaignId()); err != nil || string(v.Value()) != "running" {
		t.Errorf("bucket holds %v (%v), want running", v, err)
	}
	cancelled, err := e.client.CancelCampaign(as(e.keyA), &partnerv1.CancelCampaignRequest{CampaignId: c.GetCampaignId()})
	if err != nil {
		t.Fatal(err)
	}
	if cancelled.GetCampaign().GetState() != partnerv1.CampaignState_CAMPAIGN_STATE_CANCELLED {
		t.Errorf("after cancel: %v", cancelled.GetCampaign().GetState())
	}
	if v, err := kv.Get(context.Background(), c.GetCampaignId()); err != nil || string(v.Value()) != "cancelled" {
		t.Errorf("bucket holds %v (%v), want cancelled", v, err)
	}
	// Throttle reports the messages it drops.
	e.reject(t, acc, "cancelled", partnerv1.Reason_REASON_CANCELLED, "campaign cancelled")
	e.waitState(t, acc.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_CANCELLED)
	// Cancelling again changes nothing.
	if _, err := e.client.CancelCampaign(as(e.keyA), &partnerv1.CancelCampaignRequest{CampaignId: c.GetCampaignId()}); err != nil {
		t.Fatal(err)
	}

	// The reference is the partner's key for the campaign.
	_, err = e.submit(t, campaignSpec("winter-sale"), 1, 1, nil, nil)
	wantCode(t, err, codes.AlreadyExists)
}

func TestCampaignScheduled(t *testing.T) {
	e := start(t)
	spec := campaignSpec("")
	spec.StartAt = timestamppb.New(time.Now().Add(time.Hour))
	resp, err := e.submit(t, spec, 3, 3, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetCampaign().GetState(); got != partnerv1.CampaignState_CAMPAIGN_STATE_SCHEDULED {
		t.Errorf("state %v, want SCHEDULED", got)
	}
	acc := e.acceptedMessages(t)[0]
	e.clear(t, acc, 1)
	e.waitState(t, acc.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_DEFERRED)
}

func TestCampaignInvalid(t *testing.T) {
	e := start(t)
	tests := []struct {
		name   string
		modify func(*partnerv1.CampaignSpec)
		code   codes.Code
	}{
		{"bad template", func(s *partnerv1.CampaignSpec) { s.TextTemplate = "Bonjour {{prenom" }, codes.InvalidArgument},
		{"no template", func(s *partnerv1.CampaignSpec) { s.TextTemplate = "" }, codes.InvalidArgument},
		{"far start", func(s *partnerv1.CampaignSpec) { s.StartAt = timestamppb.New(time.Now().Add(30 * 24 * time.Hour)) }, codes.InvalidArgument},
		{"other's short code", func(s *partnerv1.CampaignSpec) { s.ShortCode = scB }, codes.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := campaignSpec("")
			tt.modify(spec)
			_, err := e.submit(t, spec, 1, 1, nil, nil)
			wantCode(t, err, tt.code)
		})
	}
	t.Run("recipients first", func(t *testing.T) {
		st, err := e.client.SubmitCampaign(as(e.keyA))
		if err != nil {
			t.Fatal(err)
		}
		_ = st.Send(&partnerv1.SubmitCampaignRequest{Item: &partnerv1.SubmitCampaignRequest_Recipients{Recipients: &partnerv1.RecipientBatch{}}})
		_, err = st.CloseAndRecv()
		wantCode(t, err, codes.InvalidArgument)
	})
}

// TestCampaignInterrupted: an upload that stops half way cancels its
// campaign, so that part of it does not go out alone.
func TestCampaignInterrupted(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithCancel(as(e.keyA))
	st, err := e.client.SubmitCampaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&partnerv1.SubmitCampaignRequest{Item: &partnerv1.SubmitCampaignRequest_Spec{Spec: campaignSpec("interrupted")}}); err != nil {
		t.Fatal(err)
	}
	b := &partnerv1.RecipientBatch{Recipients: []*partnerv1.Recipient{{Msisdn: "0612345678", Variables: map[string]string{"prenom": "Zoé", "code": "X"}}}}
	if err := st.Send(&partnerv1.SubmitCampaignRequest{Item: &partnerv1.SubmitCampaignRequest_Recipients{Recipients: b}}); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 10*time.Second, func() error {
		if n := len(e.streamMsgs(t, bus.StreamAccepted)); n != 1 {
			return fmt.Errorf("%d accepted", n)
		}
		return nil
	})
	cancel()
	bustest.Eventually(t, 10*time.Second, func() error {
		var state string
		if err := e.db.Pool.QueryRow(context.Background(), `SELECT state FROM ingest.campaigns WHERE client_reference = 'interrupted'`).Scan(&state); err != nil {
			return err
		}
		if state != "cancelled" {
			return fmt.Errorf("campaign %s, want cancelled", state)
		}
		return nil
	})
}

// A campaign beyond its lead reaches compliance at the release pace: its
// later batches wait on the server as message schedules, not on the
// accepted subject compliance reads, and survive the server's restart.
func TestCampaignRelease(t *testing.T) {
	e := startWith(t, func(c *ingest.Config) { c.Release = ingest.ReleaseConfig{Rate: 200, Lead: 0, Span: 5 * time.Second} })
	begin := time.Now()
	// Three chunks of 500: due at once, 2.5 s and 5 s after the upload's start.
	resp, err := e.submit(t, campaignSpec("paced"), 1500, 500, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetCampaign().GetAccepted(); got != 1500 {
		t.Fatalf("accepted %d, want 1500", got)
	}
	published, scheduled := 0, 0
	for _, m := range e.streamMsgs(t, bus.StreamAccepted) {
		switch {
		case strings.HasPrefix(m.subject, "sms.accepted."):
			published++
		case strings.HasPrefix(m.subject, "sms.release."+scA+"."):
			scheduled++
		}
	}
	if published != 1 || scheduled != 2 {
		t.Fatalf("%d batches published and %d scheduled at the upload's end, want 1 and 2", published, scheduled)
	}
	// The schedules are stored: a NATS restart loses none.
	e.nats.Restart(t)
	bustest.Eventually(t, 10*time.Second, func() error {
		_, err := e.bus.JS.Stream(context.Background(), bus.StreamAccepted)
		return err
	})

	// Every message reaches the accepted subject, in the partner's order,
	// the last batch not before its time (schedules are rounded down to
	// the second).
	var arrived []time.Duration
	var got []*eventsv1.MessageAccepted
	bustest.Eventually(t, 20*time.Second, func() error {
		var msgs []*eventsv1.MessageAccepted
		batches := 0
		for _, m := range e.streamMsgs(t, bus.StreamAccepted) {
			if !strings.HasPrefix(m.subject, "sms.accepted.") {
				continue
			}
			var b eventsv1.CampaignBatch
			m.decode(t, &b)
			msgs = append(msgs, b.GetMessages()...)
			batches++
		}
		for len(arrived) < batches {
			arrived = append(arrived, time.Since(begin))
		}
		got = msgs
		if len(msgs) < 1500 {
			return fmt.Errorf("%d of 1500 messages on the accepted subject", len(msgs))
		}
		return nil
	})
	if len(arrived) != 3 {
		t.Fatalf("%d batches, want 3", len(arrived))
	}
	if arrived[2] < 3500*time.Millisecond {
		t.Errorf("last batch on the accepted subject %v after the upload began, want ≥ 4 s (due at 5 s)", arrived[2])
	}
	// One SMS, one trace: each message carries the context of its own.
	traces := map[string]bool{}
	for i, m := range got {
		if want := fmt.Sprintf("06%08d", i); m.GetRecipient() != want {
			t.Fatalf("message %d to %s, want %s: out of order", i, m.GetRecipient(), want)
		}
		tp := m.GetTraceparent()
		if len(tp) != 55 || traces[tp[3:35]] {
			t.Fatalf("message %d carries trace context %q: want a traceparent of a trace of its own", i, tp)
		}
		traces[tp[3:35]] = true
	}
}
