package ingest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
	"pushsms.io/services/ingest"
)

// An upload whose process died leaves its campaign RECEIVING: it is
// cancelled once no upload has marked it alive for OrphanAfter, its
// batches still scheduled with it, while a live upload that waits on its
// partner longer than that is left alone.
func TestOrphanedUploadCancelled(t *testing.T) {
	e := startWith(t, func(c *ingest.Config) {
		c.OrphanAfter = 2 * time.Second
		// 10 segments a second, batches of 50 s: of 1 500 one-segment
		// recipients, the first 500 are published, 1 000 scheduled.
		c.Release = ingest.ReleaseConfig{Rate: 10, Lead: 0, Span: 50 * time.Second}
	})
	ctx := context.Background()

	// A live upload, slower than OrphanAfter between its chunks.
	st, err := e.client.SubmitCampaign(as(e.keyA))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&partnerv1.SubmitCampaignRequest{Item: &partnerv1.SubmitCampaignRequest_Spec{Spec: campaignSpec("slow")}}); err != nil {
		t.Fatal(err)
	}
	sendChunk := func(from int) {
		t.Helper()
		b := &partnerv1.RecipientBatch{}
		for i := from; i < from+100; i++ {
			b.Recipients = append(b.Recipients, &partnerv1.Recipient{Msisdn: fmt.Sprintf("07%08d", i), Variables: map[string]string{"prenom": "Lou", "code": "HIVER"}})
		}
		if err := st.Send(&partnerv1.SubmitCampaignRequest{Item: &partnerv1.SubmitCampaignRequest_Recipients{Recipients: b}}); err != nil {
			t.Fatal(err)
		}
	}
	sendChunk(0)

	// The upload of a process that died after its third chunk: stored,
	// RECEIVING, not marked since.
	resp, err := e.submit(t, campaignSpec("orphan"), 1500, 500, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	orphan := resp.GetCampaign()
	if _, err := e.db.Pool.Exec(ctx, `UPDATE ingest.campaigns SET state = 'receiving', updated_at = now() - interval '1 hour' WHERE id = $1`, orphan.GetCampaignId()); err != nil {
		t.Fatal(err)
	}
	filter := bus.ReleaseFilter(scA, orphan.GetCampaignId())
	if n := e.scheduledBatches(t, filter); n != 2 {
		t.Fatalf("%d batches of the orphan scheduled, want 2", n)
	}

	bustest.Eventually(t, 10*time.Second, func() error {
		got, err := e.client.GetCampaign(as(e.keyA), &partnerv1.GetCampaignRequest{CampaignId: orphan.GetCampaignId()})
		if err != nil {
			return err
		}
		if s := got.GetCampaign().GetState(); s != partnerv1.CampaignState_CAMPAIGN_STATE_CANCELLED {
			return fmt.Errorf("orphan %v, want CANCELLED", s)
		}
		if c := counts(got.GetCampaign()); c[partnerv1.MessageState_MESSAGE_STATE_CANCELLED] != 1000 {
			return fmt.Errorf("orphan's counts %v, want its 1000 scheduled messages CANCELLED", c)
		}
		return nil
	})
	if n := e.scheduledBatches(t, filter); n != 0 {
		t.Errorf("%d batches of the orphan still scheduled, want 0", n)
	}

	// The slow upload, 3 × OrphanAfter later, goes on and ends RUNNING.
	time.Sleep(4 * time.Second)
	sendChunk(100)
	done, err := st.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	if s, n := done.GetCampaign().GetState(), done.GetCampaign().GetAccepted(); s != partnerv1.CampaignState_CAMPAIGN_STATE_RUNNING || n != 200 {
		t.Errorf("slow upload ended %v with %d accepted, want RUNNING with 200", s, n)
	}
}
