package ingest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/encoding/protowire"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/fault"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// Durable consumers of the status view (docs/events.md).
const (
	DurableCleared = "ingest-cleared"
	DurableReports = "ingest-reports"
)

// orphanWait is how long a report about a message the database does not
// hold is retried. The message's row normally commits a moment after its
// MessageAccepted is published, and a MessageCleared rebuilds a row whose
// commit failed; a report older than this about an unknown message is
// dropped.
const orphanWait = time.Hour

// Payload types of SMS_REPORTS, as in the Pushsms-Type header.
var (
	typeMessageRejected = string((&eventsv1.MessageRejected{}).ProtoReflect().Descriptor().FullName())
	typeSegmentReport   = string((&eventsv1.SegmentReport{}).ProtoReflect().Descriptor().FullName())
)

// Batches of the status view: up to projectionBatch events, gathered for
// at most projectionWait, applied in one transaction.
const (
	projectionBatch = 256
	projectionWait  = 20 * time.Millisecond
)

func (s *Service) startProjection(ctx context.Context) error {
	_, err := s.ConsumeBatch(ctx, bus.ConsumerSpec{
		Stream:         bus.StreamCleared,
		Durable:        DurableCleared,
		FilterSubjects: []string{bus.SubjectCleared},
		Workers:        s.cfg.Workers,
	}, projectionBatch, projectionWait, s.batch(clearedMessageID, func(ctx context.Context, r *statusRows, msgs []*bus.Msg) error {
		for _, m := range msgs {
			if err := s.handleCleared(ctx, r, m); err != nil {
				return err
			}
		}
		return nil
	}))
	if err != nil {
		return err
	}
	_, err = s.ConsumeBatch(ctx, bus.ConsumerSpec{
		Stream:         bus.StreamReports,
		Durable:        DurableReports,
		FilterSubjects: []string{bus.SubjectReport},
		Workers:        s.cfg.Workers,
	}, projectionBatch, projectionWait, s.batch(reportMessageID, s.handleReports))
	return err
}

// batch applies a batch of status-view events with apply in one
// transaction: one commit for the batch instead of one per event (three
// or more per SMS: cleared, submitted, delivered), which was most of
// PostgreSQL's work on the full path, and the batch's rows read and
// written in a round trip each (statusRows). Events go in message id
// order, stream order within a message: every batch and replica takes the
// messages' row locks in one order, so two batches cannot deadlock on
// them. When an event fails, the batch is applied again with each event in
// a savepoint of its own: the failing one is rolled back alone and settled
// by its error (terminated or redelivered), the others commit. Savepoints
// cost round trips of their own, so only a batch that needs them has them.
func (s *Service) batch(idOf func(*bus.Msg) string, apply func(context.Context, *statusRows, []*bus.Msg) error) bus.BatchHandler {
	return func(ctx context.Context, msgs []*bus.Msg) error {
		type item struct {
			i  int
			id string
		}
		order := make([]item, len(msgs))
		for i, m := range msgs {
			order[i] = item{i, idOf(m)}
		}
		slices.SortFunc(order, func(a, b item) int {
			return cmp.Or(strings.Compare(a.id, b.id), cmp.Compare(msgs[a.i].Sequence, msgs[b.i].Sequence))
		})
		// A message's events together (apply holds its row once for them).
		var groups [][]*bus.Msg
		var ids []string
		for k, it := range order {
			if k == 0 || it.id == "" || it.id != order[k-1].id {
				groups = append(groups, nil)
				ids = appendLockable(ids, it.id)
			}
			groups[len(groups)-1] = append(groups[len(groups)-1], msgs[it.i])
		}
		err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
			r, err := lockRows(ctx, tx, ids)
			if err != nil {
				return err
			}
			for _, g := range groups {
				if err := apply(ctx, r, g); err != nil {
					return errEventFailed
				}
			}
			if err := r.flush(ctx); err != nil {
				return errEventFailed
			}
			return nil
		})
		if !errors.Is(err, errEventFailed) {
			return err
		}
		errs := bus.BatchErrors{}
		err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
			clear(errs) // a retried commit starts again
			for _, it := range order {
				err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
					r, err := lockRows(ctx, sp, appendLockable(nil, it.id))
					if err != nil {
						return err
					}
					if err := apply(ctx, r, msgs[it.i:it.i+1]); err != nil {
						return err
					}
					return r.flush(ctx)
				})
				if err != nil {
					errs[it.i] = err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(errs) > 0 {
			return errs
		}
		return nil
	}
}

// appendLockable appends id if it is a message id (a UUID, which sorts as
// its text): the handler refuses the others.
func appendLockable(ids []string, id string) []string {
	if _, err := uuid.Parse(id); err != nil {
		return ids
	}
	return append(ids, id)
}

// errEventFailed rolls back a batch applied without savepoints.
var errEventFailed = errors.New("an event of the batch failed")

// clearedMessageID is the message id of a MessageCleared (its message's
// field 1), read without decoding the rest: the handler decodes it once.
func clearedMessageID(m *bus.Msg) string {
	return string(field1(field1(m.Data)))
}

// reportMessageID is the message id of a report on SMS_REPORTS: field 1
// of both its payloads (SegmentReport, MessageRejected).
func reportMessageID(m *bus.Msg) string { return string(field1(m.Data)) }

// field1 is the first length-delimited field 1 of a protobuf message (nil
// when there is none or b cannot be read): sorting a batch by message id
// needs only that.
func field1(b []byte) []byte {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil
			}
			return v
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return nil
		}
		b = b[n:]
	}
	return nil
}

// handleCleared marks a message QUEUED (or DEFERRED) with its segments
// PENDING. A MessageCleared whose message has no row (its SendMessage
// commit failed after the publish) creates the row from the event, since
// the message is on its way to the subscriber all the same.
func (s *Service) handleCleared(ctx context.Context, r *statusRows, m *bus.Msg) error {
	var ev eventsv1.MessageCleared
	if err := m.Decode(&ev); err != nil {
		return err
	}
	acc := ev.GetMessage()
	id := acc.GetMessageId()
	if _, err := uuid.Parse(id); err != nil {
		return fault.Permanent(fmt.Errorf("cleared event on %s: bad message id", m.Subject))
	}
	count := int32(len(ev.GetSegments()))
	if count == 0 {
		count = acc.GetSegmentCount()
	}
	if count < 1 || count > 255 {
		return fault.Permanent(fmt.Errorf("cleared message %s: %d segments", id, count))
	}
	msg, err := r.message(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		if err := insertMessageFromEvent(ctx, r.tx, acc, s.now()); err != nil {
			return err
		}
		msg, err = r.message(ctx, id)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		// Its client reference belongs to another message.
		return fault.Permanent(fmt.Errorf("cleared message %s: no row and none can be made", id))
	}
	if err != nil {
		return err
	}
	if msg.TenantID != acc.GetTenantId() {
		return fault.Permanent(fmt.Errorf("cleared message %s: tenant %s, event says %s", id, msg.TenantID, acc.GetTenantId()))
	}
	added := r.ensureSegments(id, count)
	before := msg
	msg.Cleared = true
	msg.SegmentCount = count
	// Compliance may hold the message later than the partner asked
	// (a marketing message outside its sending window): DEFERRED.
	if ts := acc.GetNotBefore(); ts.IsValid() {
		if t := ts.AsTime(); msg.NotBefore == nil || t.After(*msg.NotBefore) {
			msg.NotBefore = &t
		}
	}
	// A refusal stands: the cleared event of a message refused later
	// (its validity ended while deferred) may come after the refusal.
	if d := decisionFrom(ev.GetDecision()); d.Outcome != "" && !d.same(msg.Decision) && msg.Decision.Outcome != outcomeRefused {
		msg.Decision = d
	}
	r.writeMessage(before, s.derived(msg, r.segments(id), nil), added, s.now())
	return nil
}

// report is a decoded event of SMS_REPORTS.
type report struct {
	m *bus.Msg
	// One of:
	rejected *eventsv1.MessageRejected // rejected, or cancelled
	segment  *eventsv1.SegmentReport
	state    string // the subject's <state> token
}

func (r report) messageID() string {
	if r.rejected != nil {
		return r.rejected.GetMessageId()
	}
	return r.segment.GetMessageId()
}

func (r report) tenantID() string {
	if r.rejected != nil {
		return r.rejected.GetTenantId()
	}
	return r.segment.GetTenantId()
}

// decodeReport reads a MessageRejected (rejected or cancelled) or a
// SegmentReport, and refuses what could never apply.
func decodeReport(m *bus.Msg) (report, error) {
	r := report{m: m, state: reportState(m.Subject)}
	typ := m.Type
	if typ == "" {
		typ = typeSegmentReport
		if r.state == "rejected" || r.state == "cancelled" {
			typ = typeMessageRejected
		}
	}
	switch typ {
	case typeMessageRejected:
		r.rejected = &eventsv1.MessageRejected{}
		return r, m.Decode(r.rejected)
	case typeSegmentReport:
		r.segment = &eventsv1.SegmentReport{}
		if err := m.Decode(r.segment); err != nil {
			return r, err
		}
		id, idx := r.segment.GetMessageId(), r.segment.GetSegmentIndex()
		if idx < 1 || idx > 255 {
			return r, fault.Permanent(fmt.Errorf("report on message %s: segment %d", id, idx))
		}
		if segmentRank(r.segment.GetState()) < segmentRank(partnerv1.SegmentState_SEGMENT_STATE_SUBMITTED) {
			return r, fault.Permanent(fmt.Errorf("report on message %s: state %v", id, r.segment.GetState()))
		}
		return r, nil
	}
	return r, fault.Permanent(fmt.Errorf("report on %s: unknown payload type %q", m.Subject, typ))
}

// handleReports applies reports of one message, in stream order, holding
// its row once: the message written once, whatever the number of reports
// (a message's parts are reported together). Any report that fails fails
// them all (batch then applies each alone).
func (s *Service) handleReports(ctx context.Context, r *statusRows, msgs []*bus.Msg) error {
	rs := make([]report, len(msgs))
	for i, m := range msgs {
		rp, err := decodeReport(m)
		if err != nil {
			return err
		}
		rs[i] = rp
	}
	id := rs[0].messageID()
	before, err := s.reportedMessage(ctx, r, msgs[0], id, rs[0].tenantID())
	if err != nil {
		return err
	}
	msg := before
	changed := false
	for _, rp := range rs {
		if rp.messageID() != id || rp.tenantID() != msg.TenantID {
			return fault.Permanent(fmt.Errorf("report on %s: message %s of tenant %s among message %s's", rp.m.Subject, rp.messageID(), rp.tenantID(), id))
		}
		if rp.rejected != nil {
			msg = s.derived(rejectedChange(msg, rp.rejected, rp.state == "cancelled"), r.segments(id), nil)
			continue
		}
		ev := rp.segment
		idx := ev.GetSegmentIndex()
		switch {
		case !msg.Cleared:
			// A report may come before the cleared event: its count
			// makes the segments known.
			count := max(ev.GetSegmentCount(), idx)
			if r.ensureSegments(id, count) {
				changed = true
			}
			msg.SegmentCount = count
		case idx > msg.SegmentCount:
			return fault.Permanent(fmt.Errorf("report on message %s: segment %d of %d", id, idx, msg.SegmentCount))
		}
		if r.applyToSegment(id, ev) {
			changed = true
		}
		msg = s.derived(msg, r.segments(id), &failure{report: ev, nacked: rp.state == "nacked"})
	}
	r.writeMessage(before, msg, changed, s.now())
	return nil
}

// reportState is the <state> token of sms.report.<state>.<tenant>.<short_code>.
func reportState(subject string) string {
	tokens := strings.SplitN(subject, ".", 4)
	if len(tokens) < 3 {
		return ""
	}
	return tokens[2]
}

// rejectedChange is msg after a MessageRejected (cancelled: a
// cancellation).
func rejectedChange(msg messageRow, ev *eventsv1.MessageRejected, cancelled bool) messageRow {
	reason := ev.GetReason()
	if cancelled {
		msg.Cancelled = true
		if reason == partnerv1.Reason_REASON_UNSPECIFIED {
			reason = partnerv1.Reason_REASON_CANCELLED
		}
	} else {
		msg.Rejected = true
	}
	// A rejection's reason stands whatever comes after it.
	if !cancelled || !msg.Rejected {
		msg.Reason = enumText(reason)
		msg.ReasonDetail = ev.GetDetail()
	}
	// A cancellation is the partner's doing, not a decision of compliance.
	if !cancelled {
		if d := rejectionDecision(ev); !d.same(msg.Decision) {
			msg.Decision = d
		}
	}
	return msg
}

// rejectionDecision is the decision of a MessageRejected; one without a
// decision (from a compliance older than decisions) is still a refusal,
// with the event's reason, detail and time.
func rejectionDecision(ev *eventsv1.MessageRejected) decisionRow {
	d := decisionFrom(ev.GetDecision())
	if d.Outcome == "" {
		d = decisionFrom(&partnerv1.Decision{
			Outcome:   partnerv1.DecisionOutcome_DECISION_OUTCOME_REFUSED,
			Reason:    ev.GetReason(),
			Detail:    ev.GetDetail(),
			DecidedAt: ev.GetAt(),
		})
	}
	// A rejection is a refusal whatever its decision says, and has a
	// reason, so that the campaign report counts it.
	d.Outcome = outcomeRefused
	if d.Reason == "" && ev.GetReason() != partnerv1.Reason_REASON_UNSPECIFIED {
		d.Reason = enumText(ev.GetReason())
	}
	return d
}

// reportedMessage returns the locked row of the message a report is
// about, so that the events of one message apply one at a time, whichever
// consumer or replica they reach.
func (s *Service) reportedMessage(ctx context.Context, r *statusRows, m *bus.Msg, id, tenant string) (messageRow, error) {
	if _, err := uuid.Parse(id); err != nil {
		return messageRow{}, fault.Permanent(fmt.Errorf("report on %s: bad message id", m.Subject))
	}
	msg, err := r.message(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		if !m.Time.IsZero() && s.now().Sub(m.Time) > orphanWait {
			return msg, fault.Permanent(fmt.Errorf("report on %s for message %s: no such message after %v", m.Subject, id, orphanWait))
		}
		// Its accept has not committed yet, or its cleared event will
		// make the row: try again later.
		return msg, fmt.Errorf("report for message %s: message not recorded yet", id)
	}
	if err != nil {
		return msg, err
	}
	if msg.TenantID != tenant {
		return msg, fault.Permanent(fmt.Errorf("report on %s for message %s: the message is of tenant %s", m.Subject, id, msg.TenantID))
	}
	return msg, nil
}

func lockMessage(ctx context.Context, tx pgx.Tx, id string) (messageRow, error) {
	return scanMessage(tx.QueryRow(ctx, `SELECT `+messageColumns+` FROM ingest.messages WHERE id = $1 FOR UPDATE`, id))
}

// statesBefore lists, as stored, the segment states that to advances.
func statesBefore(to partnerv1.SegmentState) []string {
	var out []string
	for v := range partnerv1.SegmentState_name {
		if from := partnerv1.SegmentState(v); advances(from, to) {
			out = append(out, enumText(from))
		}
	}
	return out
}

func reportTime(ev *eventsv1.SegmentReport) time.Time {
	if ts := ev.GetAt(); ts.IsValid() {
		return ts.AsTime()
	}
	return time.Now()
}

// failure is the report that may have made a message FAILED or EXPIRED,
// to give the message its reason.
type failure struct {
	report *eventsv1.SegmentReport
	nacked bool
}

func (f *failure) reason() (partnerv1.Reason, string) {
	detail := f.report.GetDetail()
	if detail == "" && f.report.GetUcpErrorCode() != "" {
		detail = "UCP error " + f.report.GetUcpErrorCode()
	}
	switch {
	case f.report.GetState() == partnerv1.SegmentState_SEGMENT_STATE_EXPIRED:
		return partnerv1.Reason_REASON_VALIDITY_EXPIRED, detail
	case f.nacked:
		return partnerv1.Reason_REASON_SMSC_REJECTED, detail
	}
	return partnerv1.Reason_REASON_DELIVERY_FAILED, detail
}

// derived is msg with the state THE rule derives from its facts and
// segments, and, when that is FAILED or EXPIRED and it has none yet, the
// reason of f, the report that may have made it so.
func (s *Service) derived(msg messageRow, segs []segmentRow, f *failure) messageRow {
	st := derive(msg.facts(segs, s.now()))
	msg.State = enumText(st)
	switch st {
	case partnerv1.MessageState_MESSAGE_STATE_FAILED, partnerv1.MessageState_MESSAGE_STATE_EXPIRED:
		if msg.Reason == "" && f != nil {
			r, d := f.reason()
			msg.Reason, msg.ReasonDetail = enumText(r), d
		}
	}
	return msg
}

// facts gathers what the rule needs.
func (m messageRow) facts(segs []segmentRow, now time.Time) facts {
	f := facts{
		Rejected:  m.Rejected,
		Cancelled: m.Cancelled,
		Cleared:   m.Cleared,
		Deferred:  m.NotBefore != nil && m.NotBefore.After(now),
	}
	for _, s := range segs {
		f.Segments = append(f.Segments, s.State)
	}
	return f
}

// insertMessageFromEvent records a message known only from its events.
func insertMessageFromEvent(ctx context.Context, tx pgx.Tx, acc *eventsv1.MessageAccepted, now time.Time) error {
	rcpt := newRecipient(acc.GetRecipient())
	row := messageRow{
		ID:              acc.GetMessageId(),
		TenantID:        acc.GetTenantId(),
		CampaignID:      acc.GetCampaignId(),
		ClientReference: acc.GetClientReference(),
		ShortCode:       acc.GetShortCode(),
		Brand:           acc.GetBrand(),
		Category:        enumText(acc.GetCategory()),
		Sender:          acc.GetSender(),
		RecipientMasked: rcpt.masked,
		RecipientHash:   rcpt.hash,
		Encoding:        enumText(acc.GetEncoding()),
		SegmentCount:    acc.GetSegmentCount(),
		State:           enumText(partnerv1.MessageState_MESSAGE_STATE_ACCEPTED),
		AcceptedAt:      now,
		ExpiresAt:       now.Add(DefaultValidity),
		UpdatedAt:       now,

		Sector:              acc.GetSector(),
		StopInformed:        acc.GetAttestations().GetStopInformedAtCollection(),
		FreeClaimAttested:   acc.GetAttestations().GetFreeClaimSubstantiated(),
		StopMentionAppended: acc.GetStopMentionAppended(),
	}
	if _, err := uuid.Parse(row.CampaignID); row.CampaignID != "" && err != nil {
		row.CampaignID = ""
	}
	if ts := acc.GetAcceptedAt(); ts.IsValid() {
		row.AcceptedAt = ts.AsTime()
	}
	if ts := acc.GetExpiresAt(); ts.IsValid() {
		row.ExpiresAt = ts.AsTime()
	}
	if ts := acc.GetNotBefore(); ts.IsValid() {
		t := ts.AsTime()
		row.NotBefore = &t
	}
	// Waits for a concurrent SendMessage holding the same id, then does
	// nothing if it committed.
	_, err := tx.Exec(ctx, `INSERT INTO ingest.messages (id, tenant_id, campaign_id, client_reference, short_code,
			brand, category, sender, recipient_masked, recipient_hash, encoding, segment_count, state,
			accepted_at, not_before, expires_at, updated_at,
			sector, stop_informed_at_collection, free_claim_substantiated, stop_mention_appended)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
		ON CONFLICT DO NOTHING`,
		row.ID, row.TenantID, nullable(row.CampaignID), row.ClientReference, row.ShortCode,
		row.Brand, row.Category, row.Sender, row.RecipientMasked, row.RecipientHash, row.Encoding, row.SegmentCount, row.State,
		row.AcceptedAt, row.NotBefore, row.ExpiresAt, row.UpdatedAt,
		row.Sector, row.StopInformed, row.FreeClaimAttested, row.StopMentionAppended)
	return err
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
