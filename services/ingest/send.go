package ingest

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/fault"
	"pushsms.io/lib/gsm"
	"pushsms.io/lib/policy"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// Limits of the partner API.
const (
	// MaxSegments is the longest text accepted: a longer one is more likely
	// a mistake than a message anyone reads.
	MaxSegments = 10
	// DefaultValidity and MaxValidity bound how long the network may try.
	DefaultValidity = 48 * time.Hour
	MaxValidity     = 72 * time.Hour

	maxBrandLen     = 64
	maxSenderLen    = 16
	maxClientRefLen = 128
	maxNameLen      = 256
	// maxTextBytes rejects a huge text before it is analysed: MaxSegments
	// of UCS-2 parts can never take more bytes than this.
	maxTextBytes = MaxSegments * gsm.MaxSeptets * 4

	// publishTimeout bounds how long an accept waits for the bus.
	publishTimeout = 10 * time.Second
)

// textPolicy is how every text is counted at accept: compliance splits with
// the same policy, so the segment count told to the partner is the one
// submitted and billed.
var textPolicy = gsm.French()

// header is what a single message and a campaign have in common.
type header struct {
	shortCode, brand, sender string
	category                 partnerv1.TrafficCategory
	validity                 time.Duration
}

// checkHeader validates the common fields; prefix names the enclosing
// field in violations ("spec.").
func checkHeader(prefix, shortCode, brand string, category partnerv1.TrafficCategory, sender string, validity *durationpb.Duration) (header, error) {
	h := header{shortCode: shortCode, brand: strings.TrimSpace(brand), sender: sender, category: category, validity: DefaultValidity}
	var errs []error
	if !shortCodePattern.MatchString(shortCode) {
		errs = append(errs, fault.Invalidf(prefix+"short_code", "must be 5 digits"))
	}
	if _, known := partnerv1.TrafficCategory_name[int32(category)]; !known || category == partnerv1.TrafficCategory_TRAFFIC_CATEGORY_UNSPECIFIED {
		errs = append(errs, fault.Invalidf(prefix+"category", "must be set"))
	}
	if category == partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING && h.brand == "" {
		errs = append(errs, fault.Invalidf(prefix+"brand", "must be set for marketing: opt-outs are kept per brand"))
	}
	if len(h.brand) > maxBrandLen {
		errs = append(errs, fault.Invalidf(prefix+"brand", "longer than %d bytes", maxBrandLen))
	}
	if len(sender) > maxSenderLen {
		errs = append(errs, fault.Invalidf(prefix+"sender", "longer than %d bytes", maxSenderLen))
	}
	if validity != nil {
		if err := validity.CheckValid(); err != nil {
			errs = append(errs, fault.Invalidf(prefix+"validity", "not a valid duration"))
		} else if d := validity.AsDuration(); d <= 0 || d > MaxValidity {
			errs = append(errs, fault.Invalidf(prefix+"validity", "must be more than 0 and at most %v", MaxValidity))
		} else {
			h.validity = d
		}
	}
	return h, fault.Join(errs...)
}

// analyzeText counts text's parts, refusing an empty or too long text.
func analyzeText(field, text string) (gsm.Analysis, error) {
	if text == "" {
		return gsm.Analysis{}, fault.Invalidf(field, "must not be empty")
	}
	if len(text) > maxTextBytes {
		return gsm.Analysis{}, fault.Invalidf(field, "longer than %d segments", MaxSegments)
	}
	a := gsm.Analyze(text, textPolicy)
	if a.Segments > MaxSegments {
		return a, fault.Invalidf(field, "needs %d segments, at most %d", a.Segments, MaxSegments)
	}
	return a, nil
}

// sectorPattern is a sector key as the policy's sector bans name them.
var sectorPattern = regexp.MustCompile(`^[a-z0-9_]{1,40}$`)

// checkSector accepts no sector or a sector key; the key need not be one
// the policy knows (a sector with no ban is every other sector).
func checkSector(field, sector string) error {
	if sector != "" && !sectorPattern.MatchString(sector) {
		return fault.Invalidf(field, "must be a sector key: 1 to 40 lower-case letters, digits or '_' (e.g. \"retail\")")
	}
	return nil
}

// withStopMention is the text as sent: with appendIt, the short code's
// STOP mention is appended here, before the text is counted, so that the
// segment count told to the partner (and billed) is the one compliance
// splits. An empty text stays empty, to be refused as such.
func withStopMention(text, shortCode string, appendIt bool) string {
	if !appendIt || text == "" {
		return text
	}
	return text + " " + policy.StopMention(shortCode)
}

func checkRecipient(field, r string) error {
	switch {
	case strings.TrimSpace(r) == "":
		return fault.Invalidf(field, "must not be empty")
	case len(r) > maxRecipientLen:
		return fault.Invalidf(field, "longer than %d bytes", maxRecipientLen)
	}
	return nil
}

func checkClientReference(field, ref string) error {
	if len(ref) > maxClientRefLen {
		return fault.Invalidf(field, "longer than %d bytes", maxClientRefLen)
	}
	return nil
}

// SendMessage accepts one message: once it returns, the message is in the
// database and its MessageAccepted on the bus. The row is inserted in a
// transaction committed only after the publish, so a failed publish leaves
// nothing behind.
func (a *api) SendMessage(ctx context.Context, req *partnerv1.SendMessageRequest) (*partnerv1.SendMessageResponse, error) {
	s := a.s
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return nil, err
	}
	h, herr := checkHeader("", req.GetShortCode(), req.GetBrand(), req.GetCategory(), req.GetSender(), req.GetValidity())
	text := withStopMention(req.GetText(), h.shortCode, req.GetAppendStopMention())
	analysis, terr := analyzeText("text", text)
	if err := fault.Join(herr, checkRecipient("recipient", req.GetRecipient()), terr,
		checkClientReference("client_reference", req.GetClientReference()), checkSector("sector", req.GetSector())); err != nil {
		return nil, err
	}
	if err := checkShortCode(ctx, s.Pool, tenant, h.shortCode); err != nil {
		return nil, err
	}
	ref := req.GetClientReference()
	if ref != "" {
		if msg, err := s.messageByReference(ctx, tenant, ref); err == nil || !errors.Is(err, fault.ErrNotFound) {
			return &partnerv1.SendMessageResponse{Message: msg}, err
		}
	}

	id, err := messageID(tenant, ref)
	if err != nil {
		return nil, fmt.Errorf("message id: %w", err)
	}
	// PostgreSQL keeps microseconds: the event and the row agree.
	now := s.now().UTC().Truncate(time.Microsecond)
	rcpt := newRecipient(req.GetRecipient())
	row := messageRow{
		ID:              id.String(),
		TenantID:        tenant,
		ClientReference: ref,
		ShortCode:       h.shortCode,
		Brand:           h.brand,
		Category:        enumText(h.category),
		Sender:          h.sender,
		RecipientMasked: rcpt.masked,
		RecipientHash:   rcpt.hash,
		Encoding:        enumText(partnerv1.Encoding(analysis.Encoding)),
		SegmentCount:    int32(analysis.Segments),
		State:           enumText(partnerv1.MessageState_MESSAGE_STATE_ACCEPTED),
		AcceptedAt:      now,
		ExpiresAt:       now.Add(h.validity),
		UpdatedAt:       now,

		Sector:              req.GetSector(),
		StopInformed:        req.GetAttestations().GetStopInformedAtCollection(),
		FreeClaimAttested:   req.GetAttestations().GetFreeClaimSubstantiated(),
		StopMentionAppended: req.GetAppendStopMention(),
	}
	event := &eventsv1.MessageAccepted{
		MessageId:       row.ID,
		TenantId:        tenant,
		ClientReference: ref,
		ShortCode:       h.shortCode,
		Brand:           h.brand,
		Category:        h.category,
		Sender:          h.sender,
		Recipient:       req.GetRecipient(),
		Text:            text,
		AcceptedAt:      timestamppb.New(now),
		ExpiresAt:       timestamppb.New(row.ExpiresAt),
		Encoding:        partnerv1.Encoding(analysis.Encoding),
		SegmentCount:    int32(analysis.Segments),

		Sector:              req.GetSector(),
		Attestations:        req.GetAttestations(),
		StopMentionAppended: req.GetAppendStopMention(),
	}

	// A prepaid tenant's credit is reserved before anything is stored;
	// given back unless the message goes out.
	hold, err := s.reserveMessage(ctx, tenant, row.ID, analysis.Segments, row.ExpiresAt)
	if err != nil {
		return nil, err
	}
	defer hold.undo(ctx)

	tx, err := s.Pool.Begin(ctx)
	if err != nil {
		return nil, dbErr("begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	inserted, err := insertMessage(ctx, tx, row)
	if err != nil {
		return nil, dbErr("insert message", err)
	}
	if !inserted {
		// A concurrent call with the same reference won; the insert waited
		// for it to commit.
		_ = tx.Rollback(ctx)
		msg, err := s.messageByReference(ctx, tenant, ref)
		return &partnerv1.SendMessageResponse{Message: msg}, err
	}
	// From here on the message may reach the bus: finish even if the
	// partner hangs up, so that its retry with the same client reference
	// finds the message rather than sending another.
	ctx = context.WithoutCancel(ctx)
	pctx, cancel := context.WithTimeout(ctx, publishTimeout)
	err = s.Bus.Publish(pctx, bus.AcceptedSubject(tenant, h.shortCode), event, row.ID)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("accept message %s: %w", row.ID, errors.Join(err, fault.ErrUnavailable))
	}
	hold.keep() // the message is out: its reports settle the credit
	if err := tx.Commit(ctx); err != nil {
		// The event is out: the status view will rebuild the row from
		// MessageCleared, but the partner is told to retry.
		s.Log.WarnContext(ctx, "message published but not committed", "message_id", row.ID, "err", err)
		return nil, dbErr("commit message", err)
	}
	s.Log.DebugContext(ctx, "message accepted", "message_id", row.ID, "tenant", tenant, "segments", analysis.Segments)
	return &partnerv1.SendMessageResponse{Message: row.proto(nil, now)}, nil
}

// refNamespace names the message ids derived from client references.
var refNamespace = uuid.MustParse("6f1c3a52-7d0e-4f0b-9a55-2b8e6c1d4f70")

// messageID is the id of a new single message: derived from its client
// reference when it has one, else a fresh UUIDv7. A process killed (or a
// database stopped) after the publish and before the commit leaves the
// message on the bus without its row; the partner's retry with the same
// reference then publishes the same id, which JetStream stores once (and
// smsc-link's attempt records keep from the SMSC beyond the duplicate
// window), instead of a second message to the same handset (the chaos
// suite's finding 2, docs/chaos.md). Without a reference a retry is a new
// message: the partner has no way to say otherwise.
func messageID(tenant, ref string) (uuid.UUID, error) {
	if ref == "" {
		return uuid.NewV7()
	}
	return uuid.NewSHA1(refNamespace, []byte(tenant+"\x00"+ref)), nil
}

// insertMessage inserts m unless a single message with its client
// reference exists, and reports whether it did. The conflict has no
// target: a message's id is derived from its reference, so two concurrent
// calls with one reference conflict on the primary key too, and an
// ON CONFLICT naming the reference's index alone still failed there
// (23505 on messages_pkey, 4 runs in 100 of
// TestSendMessageIdempotentConcurrent): PostgreSQL handles only the
// conflicts of its arbiter indexes.
func insertMessage(ctx context.Context, q querier, m messageRow) (bool, error) {
	var campaignID *string
	if m.CampaignID != "" {
		campaignID = &m.CampaignID
	}
	tag, err := q.Exec(ctx, `INSERT INTO ingest.messages (id, tenant_id, campaign_id, client_reference, short_code,
			brand, category, sender, recipient_masked, recipient_hash, encoding, segment_count, state,
			rejected, cancelled, cleared, reason, reason_detail, accepted_at, not_before, expires_at, updated_at,
			sector, stop_informed_at_collection, free_claim_substantiated, stop_mention_appended)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,
			$23, $24, $25, $26)
		ON CONFLICT DO NOTHING`,
		m.ID, m.TenantID, campaignID, m.ClientReference, m.ShortCode,
		m.Brand, m.Category, m.Sender, m.RecipientMasked, m.RecipientHash, m.Encoding, m.SegmentCount, m.State,
		m.Rejected, m.Cancelled, m.Cleared, m.Reason, m.ReasonDetail, m.AcceptedAt, m.NotBefore, m.ExpiresAt, m.UpdatedAt,
		m.Sector, m.StopInformed, m.FreeClaimAttested, m.StopMentionAppended)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// messageByReference returns tenant's single message with client reference
// ref, or an error wrapping fault.ErrNotFound.
func (s *Service) messageByReference(ctx context.Context, tenant, ref string) (*partnerv1.Message, error) {
	var id string
	err := s.Pool.QueryRow(ctx, `SELECT id FROM ingest.messages
		WHERE tenant_id = $1 AND client_reference = $2 AND client_reference <> '' AND campaign_id IS NULL`, tenant, ref).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("client reference: %w", fault.ErrNotFound)
	}
	if err != nil {
		return nil, dbErr("find client reference", err)
	}
	return s.getMessage(ctx, s.Pool, tenant, id)
}
