package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"pushsms.io/cmd/stack"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/smscsim"
	"pushsms.io/lib/ucp"
	adminv1 "pushsms.io/proto/gen/pushsms/admin/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// prepaid drives the local partner's credit account at billing.
type prepaid struct {
	p      *platform
	credit adminv1.CreditServiceClient
	pool   *pgxpool.Pool
}

func newPrepaid(t *testing.T, p *platform) *prepaid {
	t.Helper()
	conn, err := grpc.NewClient(p.BillingAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	pool, err := pgxpool.New(context.Background(), p.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &prepaid{p: p, credit: adminv1.NewCreditServiceClient(conn), pool: pool}
}

// sendText sends a customer-relationship text; validity 0 is the default.
func (c *prepaid) sendText(to, text string, validity time.Duration) (*partnerv1.Message, error) {
	req := &partnerv1.SendMessageRequest{
		ShortCode: c.p.cfg.ShortCodes[0],
		Brand:     "Acme",
		Category:  partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP,
		Recipient: to,
		Text:      text,
	}
	if validity > 0 {
		req.Validity = durationpb.New(validity)
	}
	resp, err := c.p.client.SendMessage(as(c.p.APIKey()), req)
	return resp.GetMessage(), err
}

// sendN sends n messages of 2 segments and returns their ids.
func (c *prepaid) sendN(t *testing.T, block, n int, validity time.Duration) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		m, err := c.sendText(recipient(block, i), gsmText("Acme", 2, i), validity)
		if err != nil {
			t.Fatalf("message %d of %d: %v", i+1, n, err)
		}
		if m.GetSegmentCount() != 2 {
			t.Fatalf("message %d: %d segments, want 2", i+1, m.GetSegmentCount())
		}
		ids[i] = m.GetMessageId()
	}
	return ids
}

// account waits until the local partner's account shows captured and
// reserved segments, and checks that the credit available is the top-ups
// less both.
func (c *prepaid) account(t *testing.T, toppedUp, captured, reserved int64, within time.Duration) {
	t.Helper()
	bustest.Eventually(t, within, func() error {
		resp, err := c.credit.GetCreditAccount(context.Background(), &adminv1.GetCreditAccountRequest{TenantId: stack.LocalPartner})
		if err != nil {
			return err
		}
		a := resp.GetAccount()
		if a.GetToppedUp() != toppedUp || a.GetCaptured() != captured || a.GetReserved() != reserved {
			return fmt.Errorf("account: topped up %d, captured %d, reserved %d; want %d, %d, %d",
				a.GetToppedUp(), a.GetCaptured(), a.GetReserved(), toppedUp, captured, reserved)
		}
		if a.GetAvailable() != toppedUp-captured-reserved {
			return fmt.Errorf("available %d, want %d", a.GetAvailable(), toppedUp-captured-reserved)
		}
		return nil
	})
}

// delivered is the local partner's billable ledger rows: the segments
// delivered.
func (c *prepaid) delivered(t *testing.T) int64 {
	t.Helper()
	var n int64
	err := c.pool.QueryRow(context.Background(), `SELECT count(*) FROM billing.ledger WHERE tenant_id = $1 AND billable`, stack.LocalPartner).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// wantRefused checks that a send is refused for lack of credit, with the
// segments needed and the credit left.
func wantRefused(t *testing.T, err error, needed, left string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != codes.FailedPrecondition {
		t.Fatalf("got %v, want FailedPrecondition for lack of credit", err)
	}
	var info *errdetails.ErrorInfo
	var pf *errdetails.PreconditionFailure
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.PreconditionFailure:
			pf = d
		}
	}
	if info.GetReason() != "CREDIT_EXHAUSTED" || info.GetMetadata()["segments_needed"] != needed || info.GetMetadata()["credit_left"] != left {
		t.Errorf("error info %v, want CREDIT_EXHAUSTED with %s needed, %s left", info, needed, left)
	}
	if len(pf.GetViolations()) != 1 || pf.GetViolations()[0].GetType() != "PREPAID_CREDIT" {
		t.Errorf("precondition failure %v, want one PREPAID_CREDIT violation", pf)
	}
	t.Logf("refused: %s", st.Message())
}

func (c *prepaid) pause(t *testing.T, paused bool) {
	t.Helper()
	sc := c.p.cfg.ShortCodes[0]
	var err error
	if paused {
		_, err = c.p.client.PauseShortCode(as(c.p.APIKey()), &partnerv1.PauseShortCodeRequest{ShortCode: sc})
	} else {
		_, err = c.p.client.ResumeShortCode(as(c.p.APIKey()), &partnerv1.ResumeShortCodeRequest{ShortCode: sc})
	}
	if err != nil {
		t.Fatalf("pause %v: %v", paused, err)
	}
}

func (c *prepaid) waitAll(t *testing.T, ids []string, want partnerv1.MessageState, within time.Duration) {
	t.Helper()
	for _, id := range ids {
		c.p.waitState(t, id, want, within)
	}
}

// The must-show of prepaid credit, on the whole platform: a partner with
// credit for 100 segments gets the 101st refused with a clear error; the
// segments that fail (expired before submission, NACKed by the SMSC) give
// their credit back and sending works again; delivered segments are
// captured, so that the balance is the top-up less the delivered segments
// less those in flight; a campaign beyond the credit has its last
// recipients refused one by one.
func TestPrepaidCredit(t *testing.T) {
	p := start(t, config(t, dataDir(t)))
	c := newPrepaid(t, p)
	ctx := context.Background()
	if _, err := c.credit.TopUp(ctx, &adminv1.TopUpRequest{TenantId: stack.LocalPartner, Segments: 100, Reference: "order-2026-11-001"}); err != nil {
		t.Fatal(err)
	}

	// 1. 100 segments held while the short code is paused: 25 messages
	// that expire while they wait, 25 that the SMSC will refuse.
	c.pause(t, true)
	// Long enough for the 50 sends and the account check below to come
	// before the first expiry, on a busy machine too (2 s was not, under
	// the chaos suite and a CI run at once).
	const shortValidity = 8 * time.Second
	expiring := c.sendN(t, 0, 25, shortValidity)
	expiresAt := time.Now().Add(shortValidity)
	nacked := c.sendN(t, 1, 25, 0)
	c.account(t, 100, 0, 100, 5*time.Second)
	_, err := c.sendText(recipient(2, 0), "Votre code : 1234", 0)
	wantRefused(t, err, "1", "0")

	// 2. Failures release the credit.
	bustest.Eventually(t, 15*time.Second, func() error {
		if time.Now().Before(expiresAt) {
			return errors.New("the short-validity messages have not expired yet")
		}
		return nil
	})
	p.Sim().SetFaults(smscsim.Faults{NackSubmits: ucp.ECAdCInvalid})
	c.pause(t, false)
	c.waitAll(t, expiring, partnerv1.MessageState_MESSAGE_STATE_EXPIRED, 30*time.Second)
	c.waitAll(t, nacked, partnerv1.MessageState_MESSAGE_STATE_FAILED, 30*time.Second)
	c.account(t, 100, 0, 0, 15*time.Second)
	if n := c.delivered(t); n != 0 {
		t.Errorf("ledger: %d delivered segments, want 0", n)
	}

	// 3. Sending works again; delivered segments are captured.
	p.Sim().SetFaults(smscsim.Faults{})
	sent := c.sendN(t, 3, 30, 0)
	c.waitAll(t, sent, partnerv1.MessageState_MESSAGE_STATE_DELIVERED, 30*time.Second)
	c.account(t, 100, 60, 0, 15*time.Second)
	if n := c.delivered(t); n != 60 {
		t.Errorf("ledger: %d delivered segments, want 60", n)
	}

	// 4. A campaign of 25 recipients of 2 segments with 40 left: the first
	// 20 are accepted, the last 5 refused one by one.
	c.pause(t, true)
	stream, err := p.client.SubmitCampaign(as(p.APIKey()))
	if err != nil {
		t.Fatal(err)
	}
	spec := &partnerv1.CampaignSpec{ShortCode: p.cfg.ShortCodes[0], Brand: "Acme", TextTemplate: "{{body}}",
		Category: partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP, ClientReference: "prepaid-campaign"}
	if err := stream.Send(&partnerv1.SubmitCampaignRequest{Item: &partnerv1.SubmitCampaignRequest_Spec{Spec: spec}}); err != nil {
		t.Fatal(err)
	}
	var batch []*partnerv1.Recipient
	for i := range 25 {
		batch = append(batch, &partnerv1.Recipient{Msisdn: recipient(2, 100+i), Variables: map[string]string{"body": gsmText("Acme", 2, i)}})
	}
	if err := stream.Send(&partnerv1.SubmitCampaignRequest{Item: &partnerv1.SubmitCampaignRequest_Recipients{Recipients: &partnerv1.RecipientBatch{Recipients: batch}}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	camp := resp.GetCampaign()
	if camp.GetAccepted() != 20 || camp.GetRefused() != 5 || len(resp.GetErrors()) != 5 {
		t.Fatalf("campaign: accepted %d, refused %d, %d errors; want 20, 5, 5", camp.GetAccepted(), camp.GetRefused(), len(resp.GetErrors()))
	}
	for i, e := range resp.GetErrors() {
		if e.GetPosition() != int64(20+i) || e.GetReason() != partnerv1.Reason_REASON_CREDIT_EXHAUSTED || e.GetDetail() != "prepaid credit exhausted: needs 2 segments, 0 left" {
			t.Errorf("recipient error %d: got position %d %q, want position %d refused for credit", i, e.GetPosition(), e.GetDetail(), 20+i)
		}
	}
	// Balance = top-up − delivered − in flight = 100 − 60 − 40.
	c.account(t, 100, 60, 40, 5*time.Second)
	_, err = c.sendText(recipient(2, 1), "Votre code : 5678", 0)
	wantRefused(t, err, "1", "0")

	// 5. Once delivered, the whole top-up is captured: exactly the
	// delivered segments of the ledger.
	c.pause(t, false)
	bustest.Eventually(t, 30*time.Second, func() error {
		g, err := p.client.GetCampaign(as(p.APIKey()), &partnerv1.GetCampaignRequest{CampaignId: camp.GetCampaignId()})
		if err != nil {
			return err
		}
		if st := g.GetCampaign().GetState(); st != partnerv1.CampaignState_CAMPAIGN_STATE_COMPLETED {
			return fmt.Errorf("campaign %v, want COMPLETED", st)
		}
		return nil
	})
	c.account(t, 100, 100, 0, 15*time.Second)
	if n := c.delivered(t); n != 100 {
		t.Errorf("ledger: %d delivered segments, want 100", n)
	}
	// A top-up makes room again; retried with its reference, it adds nothing.
	for range 2 {
		if _, err := c.credit.TopUp(ctx, &adminv1.TopUpRequest{TenantId: stack.LocalPartner, Segments: 10, Reference: "order-2026-11-002"}); err != nil {
			t.Fatal(err)
		}
	}
	m, err := c.sendText(recipient(2, 2), "Votre code : 9012", 0)
	if err != nil {
		t.Fatalf("after a top-up: %v", err)
	}
	p.waitState(t, m.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_DELIVERED, 15*time.Second)
	c.account(t, 110, 101, 0, 15*time.Second)
}
