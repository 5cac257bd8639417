package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/fault"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// messageRow is a row of ingest.messages.
type messageRow struct {
	ID              string
	TenantID        string
	CampaignID      string
	ClientReference string
	ShortCode       string
	Brand           string
	Category        string
	Sender          string
	RecipientMasked string
	RecipientHash   string
	Encoding        string
	SegmentCount    int32
	State           string
	Rejected        bool
	Cancelled       bool
	Cleared         bool
	Reason          string
	ReasonDetail    string
	AcceptedAt      time.Time
	NotBefore       *time.Time
	ExpiresAt       time.Time
	UpdatedAt       time.Time
	// What the partner declared, as accepted (kept as proof).
	Sector              string
	StopInformed        bool
	FreeClaimAttested   bool
	StopMentionAppended bool
	Decision            decisionRow
}

// messageColumns are the columns scanned by scanMessage, in order.
const messageColumns = `id, tenant_id, coalesce(campaign_id::text, ''), client_reference, short_code,
	brand, category, sender, recipient_masked, recipient_hash, encoding, segment_count, state,
	rejected, cancelled, cleared, reason, reason_detail, accepted_at, not_before, expires_at, updated_at,
	sector, stop_informed_at_collection, free_claim_substantiated, stop_mention_appended,
	decision_outcome, decision_reason, decision_rule, decision_source, decision_detail,
	decision_not_before, decision_policy_version, decided_at`

func scanMessage(row pgx.Row) (messageRow, error) {
	var m messageRow
	err := row.Scan(&m.ID, &m.TenantID, &m.CampaignID, &m.ClientReference, &m.ShortCode,
		&m.Brand, &m.Category, &m.Sender, &m.RecipientMasked, &m.RecipientHash, &m.Encoding, &m.SegmentCount, &m.State,
		&m.Rejected, &m.Cancelled, &m.Cleared, &m.Reason, &m.ReasonDetail, &m.AcceptedAt, &m.NotBefore, &m.ExpiresAt, &m.UpdatedAt,
		&m.Sector, &m.StopInformed, &m.FreeClaimAttested, &m.StopMentionAppended,
		&m.Decision.Outcome, &m.Decision.Reason, &m.Decision.Rule, &m.Decision.Source, &m.Decision.Detail,
		&m.Decision.NotBefore, &m.Decision.PolicyVersion, &m.Decision.DecidedAt)
	return m, err
}

// segmentRow is a row of ingest.segments.
type segmentRow struct {
	Index        int32
	State        partnerv1.SegmentState
	UCPErrorCode string
	SubmittedAt  *time.Time
	DoneAt       *time.Time
}

func loadSegments(ctx context.Context, q querier, messageID string) ([]segmentRow, error) {
	rows, err := q.Query(ctx, `SELECT idx, state, ucp_error_code, submitted_at, done_at
		FROM ingest.segments WHERE message_id = $1 ORDER BY idx`, messageID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (segmentRow, error) {
		var s segmentRow
		var state string
		err := row.Scan(&s.Index, &state, &s.UCPErrorCode, &s.SubmittedAt, &s.DoneAt)
		s.State = parseEnum[partnerv1.SegmentState](state)
		return s, err
	})
}

// errNoMessage is a message the caller cannot see: unknown, or another
// tenant's (which must not be told apart).
func errNoMessage(id string) error {
	return fmt.Errorf("message %s: %w", id, fault.ErrNotFound)
}

// getMessage loads one of tenant's messages with its segments.
func (s *Service) getMessage(ctx context.Context, q querier, tenant, id string) (*partnerv1.Message, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, fault.Invalidf("message_id", "not a message id")
	}
	m, err := scanMessage(q.QueryRow(ctx, `SELECT `+messageColumns+` FROM ingest.messages WHERE id = $1 AND tenant_id = $2`, id, tenant))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNoMessage(id)
	}
	if err != nil {
		return nil, dbErr("get message", err)
	}
	segs, err := loadSegments(ctx, q, id)
	if err != nil {
		return nil, dbErr("get segments", err)
	}
	return m.proto(segs, s.now()), nil
}

func (a *api) GetMessage(ctx context.Context, req *partnerv1.GetMessageRequest) (*partnerv1.GetMessageResponse, error) {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return nil, err
	}
	msg, err := a.s.getMessage(ctx, a.s.Pool, tenant, req.GetMessageId())
	if err != nil {
		return nil, err
	}
	return &partnerv1.GetMessageResponse{Message: msg}, nil
}

// messageState reads the stored state; a message deferred until a start
// time that has come is queued now, without waiting for an event.
func (m messageRow) messageState(now time.Time) partnerv1.MessageState {
	st := parseEnum[partnerv1.MessageState](m.State)
	if st == partnerv1.MessageState_MESSAGE_STATE_DEFERRED && (m.NotBefore == nil || !m.NotBefore.After(now)) {
		return partnerv1.MessageState_MESSAGE_STATE_QUEUED
	}
	return st
}

func (m messageRow) proto(segs []segmentRow, now time.Time) *partnerv1.Message {
	out := &partnerv1.Message{
		MessageId:       m.ID,
		CampaignId:      m.CampaignID,
		ClientReference: m.ClientReference,
		ShortCode:       m.ShortCode,
		Brand:           m.Brand,
		Category:        parseEnum[partnerv1.TrafficCategory](m.Category),
		RecipientMasked: m.RecipientMasked,
		State:           m.messageState(now),
		Reason:          parseEnum[partnerv1.Reason](m.Reason),
		ReasonDetail:    m.ReasonDetail,
		Encoding:        parseEnum[partnerv1.Encoding](m.Encoding),
		SegmentCount:    m.SegmentCount,
		AcceptedAt:      timestamppb.New(m.AcceptedAt),
		UpdatedAt:       timestamppb.New(m.UpdatedAt),
		Decision:        m.Decision.proto(),
	}
	for _, s := range segs {
		out.Segments = append(out.Segments, &partnerv1.Segment{
			Index:        s.Index,
			State:        s.State,
			UcpErrorCode: s.UCPErrorCode,
			SubmittedAt:  optTimestamp(s.SubmittedAt),
			DoneAt:       optTimestamp(s.DoneAt),
		})
	}
	return out
}

func optTimestamp(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}

// decisionRow is compliance's decision as stored in the decision_* columns
// of ingest.messages; Outcome is "" until compliance decided.
type decisionRow struct {
	Outcome       string
	Reason        string
	Rule          string
	Source        string
	Detail        string
	NotBefore     *time.Time
	PolicyVersion string
	DecidedAt     *time.Time
}

func decisionFrom(d *partnerv1.Decision) decisionRow {
	if d == nil || d.GetOutcome() == partnerv1.DecisionOutcome_DECISION_OUTCOME_UNSPECIFIED {
		return decisionRow{}
	}
	r := decisionRow{
		Outcome:       enumText(d.GetOutcome()),
		Rule:          d.GetRule(),
		Source:        d.GetSource(),
		Detail:        d.GetDetail(),
		PolicyVersion: d.GetPolicyVersion(),
	}
	if d.GetReason() != partnerv1.Reason_REASON_UNSPECIFIED {
		r.Reason = enumText(d.GetReason())
	}
	// PostgreSQL keeps microseconds: a redelivered event compares equal
	// to what was stored.
	if ts := d.GetNotBefore(); ts.IsValid() {
		t := ts.AsTime().Truncate(time.Microsecond)
		r.NotBefore = &t
	}
	if ts := d.GetDecidedAt(); ts.IsValid() {
		t := ts.AsTime().Truncate(time.Microsecond)
		r.DecidedAt = &t
	}
	return r
}

// same compares by value: the row's times are pointers, and a redelivered
// event must not count as a change (updated_at is the last change's time).
func (d decisionRow) same(o decisionRow) bool {
	return d.Outcome == o.Outcome && d.Reason == o.Reason && d.Rule == o.Rule && d.Source == o.Source &&
		d.Detail == o.Detail && d.PolicyVersion == o.PolicyVersion &&
		sameTime(d.NotBefore, o.NotBefore) && sameTime(d.DecidedAt, o.DecidedAt)
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func (d decisionRow) proto() *partnerv1.Decision {
	if d.Outcome == "" {
		return nil
	}
	return &partnerv1.Decision{
		Outcome:       parseEnum[partnerv1.DecisionOutcome](d.Outcome),
		Reason:        parseEnum[partnerv1.Reason](d.Reason),
		Rule:          d.Rule,
		Source:        d.Source,
		Detail:        d.Detail,
		NotBefore:     optTimestamp(d.NotBefore),
		PolicyVersion: d.PolicyVersion,
		DecidedAt:     optTimestamp(d.DecidedAt),
	}
}
