package ingest_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"pushsms.io/lib/bus"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// Pause and resume reach throttle through the CAMPAIGNS bucket within the
// call, and the partner sees PAUSED.
func TestCampaignPauseResume(t *testing.T) {
	e := start(t)
	spec := campaignSpec("")
	spec.Weight = 3
	resp, err := e.submit(t, spec, 2, 2, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetCampaign().GetCampaignId()
	acc := e.acceptedMessages(t)[0]
	if acc.GetWeight() != 3 {
		t.Errorf("MessageAccepted.weight %d, want the spec's 3", acc.GetWeight())
	}
	kv, err := e.bus.JS.KeyValue(context.Background(), bus.BucketCampaigns)
	if err != nil {
		t.Fatal(err)
	}
	bucket := func() string {
		v, err := kv.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return string(v.Value())
	}

	_, err = e.client.PauseCampaign(as(e.keyB), &partnerv1.PauseCampaignRequest{CampaignId: id})
	wantCode(t, err, codes.NotFound)
	_, err = e.client.PauseCampaign(as(e.keyA), &partnerv1.PauseCampaignRequest{CampaignId: "nope"})
	wantCode(t, err, codes.InvalidArgument)

	paused, err := e.client.PauseCampaign(as(e.keyA), &partnerv1.PauseCampaignRequest{CampaignId: id})
	if err != nil {
		t.Fatal(err)
	}
	if got := paused.GetCampaign().GetState(); got != partnerv1.CampaignState_CAMPAIGN_STATE_PAUSED {
		t.Errorf("after pause: %v, want PAUSED", got)
	}
	if got := bucket(); got != "paused" {
		t.Errorf("bucket holds %q right after the call, want paused", got)
	}
	got, err := e.client.GetCampaign(as(e.keyA), &partnerv1.GetCampaignRequest{CampaignId: id})
	if err != nil || got.GetCampaign().GetState() != partnerv1.CampaignState_CAMPAIGN_STATE_PAUSED {
		t.Errorf("GetCampaign: %v, %v; want PAUSED", got.GetCampaign().GetState(), err)
	}

	resumed, err := e.client.ResumeCampaign(as(e.keyA), &partnerv1.ResumeCampaignRequest{CampaignId: id})
	if err != nil {
		t.Fatal(err)
	}
	if got := resumed.GetCampaign().GetState(); got != partnerv1.CampaignState_CAMPAIGN_STATE_RUNNING {
		t.Errorf("after resume: %v, want RUNNING", got)
	}
	if got := bucket(); got != "running" {
		t.Errorf("bucket holds %q right after the call, want running", got)
	}

	// A cancelled campaign cannot be resumed into sending.
	if _, err := e.client.CancelCampaign(as(e.keyA), &partnerv1.CancelCampaignRequest{CampaignId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.ResumeCampaign(as(e.keyA), &partnerv1.ResumeCampaignRequest{CampaignId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.PauseCampaign(as(e.keyA), &partnerv1.PauseCampaignRequest{CampaignId: id}); err != nil {
		t.Fatal(err)
	}
	if got := bucket(); got != "cancelled" {
		t.Errorf("bucket holds %q after pause/resume of a cancelled campaign, want cancelled", got)
	}
}

func TestCampaignWeightValidated(t *testing.T) {
	e := start(t)
	spec := campaignSpec("")
	spec.Weight = 101
	_, err := e.submit(t, spec, 1, 1, nil, nil)
	wantCode(t, err, codes.InvalidArgument)
}

func TestShortCodeControl(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	kv, err := e.bus.JS.KeyValue(ctx, bus.BucketShortCodes)
	if err != nil {
		t.Fatal(err)
	}
	control := func() map[string]any {
		v, err := kv.Get(ctx, scA+".control")
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(v.Value(), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}

	// Only the partner's own short codes.
	_, err = e.client.PauseShortCode(as(e.keyA), &partnerv1.PauseShortCodeRequest{ShortCode: scB})
	wantCode(t, err, codes.PermissionDenied)
	_, err = e.client.GetShortCode(as(e.keyA), &partnerv1.GetShortCodeRequest{ShortCode: "12"})
	wantCode(t, err, codes.InvalidArgument)

	got, err := e.client.GetShortCode(as(e.keyA), &partnerv1.GetShortCodeRequest{ShortCode: scA})
	if err != nil {
		t.Fatal(err)
	}
	if sc := got.GetShortCode(); sc.GetState() != partnerv1.ShortCodeState_SHORT_CODE_STATE_RUNNING || sc.GetContractedRate() != 10 || sc.GetAchievedRate() != 0 {
		t.Errorf("fresh short code: %v, want running at the default 10/s", sc)
	}

	p, err := e.client.PauseShortCode(as(e.keyA), &partnerv1.PauseShortCodeRequest{ShortCode: scA})
	if err != nil {
		t.Fatal(err)
	}
	if p.GetShortCode().GetState() != partnerv1.ShortCodeState_SHORT_CODE_STATE_PAUSED {
		t.Errorf("after pause: %v", p.GetShortCode())
	}
	if c := control(); c["state"] != "paused" {
		t.Errorf("control %v right after the call, want paused", c)
	}

	before := time.Now()
	c, err := e.client.CancelShortCode(as(e.keyA), &partnerv1.CancelShortCodeRequest{ShortCode: scA})
	if err != nil {
		t.Fatal(err)
	}
	cb := c.GetShortCode().GetCancelledBefore().AsTime()
	if cb.Before(before.Add(-time.Second)) || cb.After(time.Now()) {
		t.Errorf("cancelled_before %v, want now", cb)
	}
	// Cancel keeps the pause: both are in the key.
	if m := control(); m["state"] != "paused" || m["cancelled_before"] == nil {
		t.Errorf("control %v, want paused with cancelled_before", m)
	}

	if _, err := e.client.ResumeShortCode(as(e.keyA), &partnerv1.ResumeShortCodeRequest{ShortCode: scA}); err != nil {
		t.Fatal(err)
	}
	if m := control(); m["state"] != "running" || m["cancelled_before"] == nil {
		t.Errorf("control %v, want running, cancelled_before kept", m)
	}

	// The contracted rate is the bucket's, the achieved smsc-link's.
	if _, err := kv.Put(ctx, scA+".rate", []byte("50")); err != nil {
		t.Fatal(err)
	}
	link, err := e.bus.JS.KeyValue(ctx, bus.BucketLinkState)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := link.Put(ctx, scA, []byte(`{"up":true,"slowdown":1,"achieved":49.5}`)); err != nil {
		t.Fatal(err)
	}
	got, err = e.client.GetShortCode(as(e.keyA), &partnerv1.GetShortCodeRequest{ShortCode: scA})
	if err != nil {
		t.Fatal(err)
	}
	if sc := got.GetShortCode(); sc.GetContractedRate() != 50 || sc.GetAchievedRate() != 49.5 || sc.GetState() != partnerv1.ShortCodeState_SHORT_CODE_STATE_RUNNING {
		t.Errorf("GetShortCode: %v, want running, 50 contracted, 49.5 achieved", sc)
	}
}
