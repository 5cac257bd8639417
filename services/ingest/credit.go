package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/fault"
	adminv1 "pushsms.io/proto/gen/pushsms/admin/v1"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// Prepaid credit (docs/billing-prepaid.md): a prepaid tenant's message is
// accepted only once billing reserved its segments. Postpaid tenants (no
// credit account) are never checked: ingest knows them from a list it asks
// billing for at most once per creditTTL, so their messages cost a map
// lookup and no call.

const (
	// DefaultCreditTTL is how long the list of prepaid tenants is trusted:
	// a tenant's first top-up applies within it.
	DefaultCreditTTL = 5 * time.Second
	// creditTimeout bounds a call to billing on the accept path.
	creditTimeout = 3 * time.Second
	// creditRetry is how soon a failed list refresh is tried again, while
	// the last list is used.
	creditRetry = time.Second
)

// reasonNoCredit is the reason of a campaign recipient refused for lack of
// credit.
const reasonNoCredit = partnerv1.Reason_REASON_CREDIT_EXHAUSTED

// creditCheck is ingest's side of billing's CreditService.
type creditCheck struct {
	client adminv1.CreditServiceClient
	ttl    time.Duration
	now    func() time.Time
	log    *slog.Logger

	// refreshing lets one caller refresh the list while the others wait
	// for it instead of all asking billing.
	refreshing sync.Mutex
	mu         sync.RWMutex
	prepaid    map[string]bool
	loaded     bool
	until      time.Time
}

// newCreditCheck dials billing at addr; the connection is lazy, so billing
// may start after ingest (the first accepted message waits for it).
func newCreditCheck(addr string, ttl time.Duration, log *slog.Logger) (*creditCheck, *grpc.ClientConn, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, fmt.Errorf("credit-addr %q: %w", addr, err)
	}
	return &creditCheck{client: adminv1.NewCreditServiceClient(conn), ttl: ttl, now: time.Now, log: log}, conn, nil
}

// isPrepaid tells whether tenant has a credit account, from the cached
// list. A list that cannot be refreshed is used until billing answers
// again; with no list at all the answer is an error (Unavailable): ingest
// cannot tell a prepaid tenant from a postpaid one.
func (c *creditCheck) isPrepaid(ctx context.Context, tenant string) (bool, error) {
	if p, ok := c.cached(tenant); ok {
		return p, nil
	}
	c.refreshing.Lock()
	defer c.refreshing.Unlock()
	if p, ok := c.cached(tenant); ok {
		return p, nil // refreshed by the caller we waited for
	}
	ctx, cancel := context.WithTimeout(ctx, creditTimeout)
	defer cancel()
	resp, err := c.client.ListPrepaidTenants(ctx, &adminv1.ListPrepaidTenantsRequest{})
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if !c.loaded {
			// %v: billing's status is not the partner's.
			return false, fmt.Errorf("prepaid credit: list prepaid tenants: %v: %w", err, fault.ErrUnavailable)
		}
		c.until = c.now().Add(creditRetry)
		c.log.WarnContext(ctx, "prepaid tenants not refreshed; using the last list", "err", err)
		return c.prepaid[tenant], nil
	}
	m := make(map[string]bool, len(resp.GetTenantIds()))
	for _, t := range resp.GetTenantIds() {
		m[t] = true
	}
	c.prepaid, c.loaded, c.until = m, true, c.now().Add(c.ttl)
	return m[tenant], nil
}

func (c *creditCheck) cached(tenant string) (prepaid, fresh bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.loaded || !c.now().Before(c.until) {
		return false, false
	}
	return c.prepaid[tenant], true
}

// creditMessage is a message to reserve for.
type creditMessage struct {
	id       string
	segments int
}

// creditHold is the credit reserved for messages being accepted: undo
// gives it back unless keep was called once the messages are out.
type creditHold struct {
	c      *creditCheck
	tenant string
	ids    []string
	kept   bool
}

func (h *creditHold) keep() {
	if h != nil {
		h.kept = true
	}
}

// undo releases the hold's reservations, when the messages were not
// accepted after all. A failure is only logged: billing releases a
// reservation left open a day after its messages expired.
func (h *creditHold) undo(ctx context.Context) {
	if h == nil || h.kept || len(h.ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), creditTimeout)
	defer cancel()
	if _, err := h.c.client.ReleaseCredit(ctx, &adminv1.ReleaseCreditRequest{TenantId: h.tenant, MessageIds: h.ids}); err != nil {
		h.c.log.WarnContext(ctx, "release credit of messages not accepted", "tenant", h.tenant, "messages", len(h.ids), "err", err)
	}
}

// reserve reserves msgs' segments for tenant, in order while the credit
// lasts. It returns nil decisions and a nil hold for a postpaid tenant (or
// when no credit address is configured): every message may go.
func (c *creditCheck) reserve(ctx context.Context, tenant string, msgs []creditMessage, expires time.Time) ([]*adminv1.CreditDecision, *creditHold, error) {
	if c == nil || len(msgs) == 0 {
		return nil, nil, nil
	}
	prepaid, err := c.isPrepaid(ctx, tenant)
	if err != nil || !prepaid {
		return nil, nil, err
	}
	req := &adminv1.ReserveCreditRequest{TenantId: tenant, ExpiresAt: timestamppb.New(expires)}
	for _, m := range msgs {
		req.Items = append(req.Items, &adminv1.CreditItem{MessageId: m.id, Segments: int32(m.segments)})
	}
	ctx, cancel := context.WithTimeout(ctx, creditTimeout)
	defer cancel()
	// Every id asked for: what billing may have reserved although the
	// answer never came back (a timeout while it committed). The ids are
	// fresh, owned by no other message, so releasing them all is safe.
	asked := &creditHold{c: c, tenant: tenant}
	for _, m := range msgs {
		asked.ids = append(asked.ids, m.id)
	}
	resp, err := c.client.ReserveCredit(ctx, req)
	if err != nil {
		// Nothing is accepted without its credit: the partner retries.
		asked.undo(ctx)
		return nil, nil, fmt.Errorf("prepaid credit: reserve %d messages: %v: %w", len(msgs), err, fault.ErrUnavailable)
	}
	if !resp.GetPrepaid() {
		return nil, nil, nil // the account is gone from the list's view: postpaid
	}
	ds := resp.GetDecisions()
	if len(ds) != len(msgs) {
		asked.undo(ctx)
		return nil, nil, fmt.Errorf("prepaid credit: %d decisions for %d messages", len(ds), len(msgs))
	}
	h := &creditHold{c: c, tenant: tenant}
	for i, d := range ds {
		if d.GetReserved() {
			h.ids = append(h.ids, msgs[i].id)
		}
	}
	return ds, h, nil
}

// creditError refuses a message beyond its tenant's prepaid credit:
// FAILED_PRECONDITION (retrying does not help until a top-up; not
// RESOURCE_EXHAUSTED, which clients retry with backoff), with the credit
// left and the segments needed as a PreconditionFailure and an ErrorInfo
// (lib/rpc).
func creditError(needed int, available int64) error {
	left := strconv.FormatInt(max(available, 0), 10)
	return &fault.PreconditionError{
		Type:        "PREPAID_CREDIT",
		Subject:     "text",
		Description: fmt.Sprintf("needs %d segments, %s left: top the account up", needed, left),
		Reason:      "CREDIT_EXHAUSTED",
		Metadata:    map[string]string{"segments_needed": strconv.Itoa(needed), "credit_left": left},
		Message:     fmt.Sprintf("prepaid credit exhausted: the message needs %d segments, %s left", needed, left),
	}
}

// reserveMessage reserves a single message's segments, or refuses it with
// a creditError.
func (s *Service) reserveMessage(ctx context.Context, tenant, id string, segments int, expires time.Time) (*creditHold, error) {
	ds, h, err := s.credit.reserve(ctx, tenant, []creditMessage{{id, segments}}, expires)
	if err != nil || ds == nil {
		return nil, err
	}
	if !ds[0].GetReserved() {
		return nil, creditError(segments, ds[0].GetAvailable())
	}
	return h, nil
}

// reserveChunk reserves a campaign chunk's messages (rows and msgs in the
// same order, positions their places in the upload) and drops those
// beyond the credit, each refused as a recipient error. It returns what is
// left to accept and how many were refused.
func (u *upload) reserveChunk(ctx context.Context, rows [][]any, msgs []*eventsv1.MessageAccepted, positions []int64) ([][]any, []*eventsv1.MessageAccepted, *creditHold, int64, error) {
	if u.s.credit == nil || len(msgs) == 0 {
		return rows, msgs, nil, 0, nil
	}
	cms := make([]creditMessage, len(msgs))
	for i, m := range msgs {
		cms[i] = creditMessage{m.GetMessageId(), int(m.GetSegmentCount())}
	}
	ds, h, err := u.s.credit.reserve(ctx, u.campaign.TenantID, cms, u.campaign.ExpiresAt)
	if err != nil || ds == nil {
		return rows, msgs, nil, 0, err
	}
	keptRows, keptMsgs := rows[:0], msgs[:0]
	refused := int64(0)
	for i, d := range ds {
		if d.GetReserved() {
			keptRows, keptMsgs = append(keptRows, rows[i]), append(keptMsgs, msgs[i])
			continue
		}
		refused++
		u.refuse(positions[i], reasonNoCredit, fmt.Sprintf("prepaid credit exhausted: needs %d segments, %d left", cms[i].segments, max(d.GetAvailable(), 0)))
	}
	if refused > 0 {
		u.s.Log.InfoContext(ctx, "campaign recipients beyond the prepaid credit", "campaign_id", u.campaign.ID, "refused", refused)
	}
	return keptRows, keptMsgs, h, refused, nil
}

// errNoCreditTTL is a -credit-cache-ttl out of range.
var errNoCreditTTL = errors.New("credit-cache-ttl: want more than 0 and at most 5m")
