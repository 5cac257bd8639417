package compliance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/fault"
	"pushsms.io/lib/gsm"
	"pushsms.io/lib/numplan"
	"pushsms.io/lib/optout"
	"pushsms.io/lib/policy"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// MODurable is the durable consumer of subscribers' MOs that compliance
// replicas share.
const MODurable = "compliance-mo"

// confirmationValidity is how long a STOP confirmation may wait to be sent:
// late, it still tells the subscriber their STOP was heard.
const confirmationValidity = 24 * time.Hour

// policySource gives the rule set in force (hot-reloaded).
type policySource interface{ Current() *policy.Policy }

// moConsumer reads subscribers' MOs (stream SMS_MO): every MO opens or
// extends an MO session with its short code; a stop keyword records an
// opt-out with its proof, a re-subscribe keyword lifts the subscriber's own
// STOPs to that short code.
type moConsumer struct {
	bus      *bus.Bus
	store    *optout.Store
	issuers  *optout.LastIssuer
	sessions *optout.Sessions
	policy   policySource
	log      *slog.Logger
	now      func() time.Time
}

func newMOConsumer(b *bus.Bus, store *optout.Store, issuers *optout.LastIssuer, sessions *optout.Sessions, pol policySource, log *slog.Logger) *moConsumer {
	return &moConsumer{bus: b, store: store, issuers: issuers, sessions: sessions, policy: pol, log: log, now: time.Now}
}

// spec is the MO consumer: a few workers, since MOs are few, and one
// subscriber's STOP and START rarely race (handleResubscribe guards the
// order that matters). The service runs it with Core.Consume, which stops
// it at Close.
func (c *moConsumer) spec() bus.ConsumerSpec {
	return bus.ConsumerSpec{
		Stream:         bus.StreamMO,
		Durable:        MODurable,
		FilterSubjects: []string{bus.SubjectMO},
		Workers:        4,
	}
}

// handle processes one MO. Every step is idempotent, so a redelivery
// changes nothing and publishes nothing new: the session only moves
// forward, an opt-out keeps its first record, the confirmation's
// Nats-Msg-Id derives from the MO id.
func (c *moConsumer) handle(ctx context.Context, m *bus.Msg) error {
	var mo eventsv1.MobileOriginated
	if err := m.Decode(&mo); err != nil {
		return err
	}
	if mo.GetMoId() == "" || mo.GetShortCode() == "" {
		return fault.Permanent(fmt.Errorf("mo on %s: no mo_id or short_code", m.Subject))
	}
	n, err := numplan.Parse(mo.GetOriginator())
	if err != nil {
		// An alphanumeric or foreign originator: no subscriber to
		// remember or opt out.
		c.log.DebugContext(ctx, "mo from a non-French number ignored", "mo_id", mo.GetMoId())
		return nil
	}
	at := m.Time
	if ts := mo.GetReceivedAt(); ts.IsValid() {
		at = ts.AsTime()
	}
	if err := c.sessions.Touch(ctx, mo.GetShortCode(), n, at); err != nil {
		return fmt.Errorf("mo %s: %w", mo.GetMoId(), err)
	}
	pol := c.policy.Current()
	switch optout.ParseMO(mo.GetText(), mo.GetShortCode(), optout.KeywordsOf(pol.OptOut)) {
	case optout.Stop:
		return c.handleStop(ctx, &mo, n, at, pol)
	case optout.Resubscribe:
		return c.handleResubscribe(ctx, &mo, n, at)
	}
	return nil
}

// handleStop opts n out of the brand that last sent to it from the short
// code, or of the whole short code when none did (or the last message had
// no brand), then confirms if the policy says so.
func (c *moConsumer) handleStop(ctx context.Context, mo *eventsv1.MobileOriginated, n numplan.Number, at time.Time, pol *policy.Policy) error {
	sc := mo.GetShortCode()
	// A redelivery finds the entry this MO recorded: the last issuer may
	// have changed since, and must not get a second opt-out.
	entries, err := c.store.List(ctx, n)
	if err != nil {
		return fmt.Errorf("mo %s: %w", mo.GetMoId(), err)
	}
	var mine *optout.Entry
	for i := range entries {
		if entries[i].MOID == mo.GetMoId() {
			mine = &entries[i]
		}
	}
	if mine == nil {
		is, known, err := c.issuers.Get(ctx, sc, n)
		if err != nil {
			return fmt.Errorf("mo %s: %w", mo.GetMoId(), err)
		}
		e := optout.Entry{Scope: optout.ScopeShortCode, ShortCode: sc, Source: optout.SourceMOStop,
			At: at, MOID: mo.GetMoId(), Text: mo.GetText()}
		if known && strings.TrimSpace(is.Brand) != "" {
			e.Scope, e.Brand, e.Tenant = optout.ScopeBrand, is.Brand, is.Tenant
		}
		added, err := c.store.Add(ctx, n, e)
		if err != nil {
			return fmt.Errorf("mo %s: %w", mo.GetMoId(), err)
		}
		if !added {
			// Already opted out of that scope by an earlier STOP or an
			// import: the first proof stands, and one confirmation was
			// enough.
			c.log.DebugContext(ctx, "stop for a scope already opted out", "mo_id", mo.GetMoId(), "scope", e.Scope)
			return nil
		}
		mine = &e
		c.log.InfoContext(ctx, "subscriber opted out", "mo_id", mo.GetMoId(), "scope", e.Scope, "short_code", sc, "brand", e.Brand)
	}
	if pol.OptOut.Confirmation == "" {
		return nil
	}
	return c.confirm(ctx, mo, n, *mine, pol)
}

// confirm sends the subscriber the policy's confirmation, from the short
// code they wrote to: one MT, no promotion (the text is the aggregator's,
// not the partner's). It is published as already cleared, a customer
// relationship message of the opted-out brand's partner, with a message id
// derived from the MO id: a redelivered STOP publishes the same event,
// stored once.
func (c *moConsumer) confirm(ctx context.Context, mo *eventsv1.MobileOriginated, n numplan.Number, e optout.Entry, pol *policy.Policy) error {
	name := e.Brand
	if e.Scope != optout.ScopeBrand {
		name = e.ShortCode
	}
	now := c.now()
	acc := &eventsv1.MessageAccepted{
		MessageId:  confirmationID(mo.GetMoId()),
		TenantId:   e.Tenant,
		ShortCode:  mo.GetShortCode(),
		Brand:      e.Brand,
		Category:   partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP,
		Recipient:  n.E164(),
		Text:       strings.ReplaceAll(pol.OptOut.Confirmation, "{brand}", name),
		AcceptedAt: timestamppb.New(now),
		ExpiresAt:  timestamppb.New(now.Add(confirmationValidity)),
	}
	segs, err := split(acc)
	if errors.Is(err, gsm.ErrTooLong) || err == nil && len(segs) == 0 {
		return fault.Permanent(fmt.Errorf("mo %s: confirmation text of %d bytes cannot be sent", mo.GetMoId(), len(acc.Text)))
	}
	if err != nil {
		return fault.Permanent(fmt.Errorf("mo %s: confirmation: %w", mo.GetMoId(), err))
	}
	acc.SegmentCount = int32(len(segs))
	acc.Encoding = segs[0].GetEncoding()
	cleared := &eventsv1.MessageCleared{
		Message:       acc,
		RecipientE164: n.E164(),
		Segments:      segs,
		ClearedAt:     timestamppb.New(now),
		Decision: &partnerv1.Decision{
			Outcome:       partnerv1.DecisionOutcome_DECISION_OUTCOME_ACCEPTED,
			Rule:          "optout_confirmation",
			Source:        sourceOptOutConfirmation,
			PolicyVersion: pol.Version,
			DecidedAt:     timestamppb.New(now),
		},
	}
	if err := c.bus.Publish(ctx, bus.ClearedSubject(acc.GetTenantId(), acc.GetShortCode()), cleared, acc.GetMessageId()+"/cleared"); err != nil {
		return fmt.Errorf("mo %s: confirmation: %w", mo.GetMoId(), err)
	}
	c.log.DebugContext(ctx, "stop confirmed", "mo_id", mo.GetMoId(), "message_id", acc.GetMessageId(), "segments", len(segs))
	return nil
}

// sourceOptOutConfirmation is the source recorded with a STOP confirmation.
const sourceOptOutConfirmation = `SMS+ charter: one confirmation MT without promotion after a STOP (compliance §2.3, §5.5); policy opt_out.confirmation`

// handleResubscribe lifts the opt-outs n sent by MO to this short code and
// recorded before this MO: a START never lifts a partner's suppression, nor
// a STOP sent to another short code, nor a STOP sent after it (a START
// redelivered late must not undo a newer STOP).
func (c *moConsumer) handleResubscribe(ctx context.Context, mo *eventsv1.MobileOriginated, n numplan.Number, at time.Time) error {
	entries, err := c.store.List(ctx, n)
	if err != nil {
		return fmt.Errorf("mo %s: %w", mo.GetMoId(), err)
	}
	lifted := 0
	for _, e := range entries {
		if e.Source != optout.SourceMOStop || e.ShortCode != mo.GetShortCode() || e.At.After(at) {
			continue
		}
		if err := c.store.Remove(ctx, n, e); err != nil {
			return fmt.Errorf("mo %s: %w", mo.GetMoId(), err)
		}
		lifted++
	}
	if lifted > 0 {
		c.log.InfoContext(ctx, "subscriber re-subscribed", "mo_id", mo.GetMoId(), "short_code", mo.GetShortCode(), "opt_outs_lifted", lifted)
	}
	return nil
}

// confirmationID is a UUID (ingest's status view keys messages by UUID)
// derived from the MO id: version 8 (RFC 9562, custom), its 122 free bits
// from SHA-256 of the MO id.
func confirmationID(moID string) string {
	sum := sha256.Sum256([]byte("pushsms optout confirmation\x00" + moID))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x80
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
