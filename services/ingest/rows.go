package ingest

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// statusRows is what a batch of status-view events reads and writes: its
// messages locked and their segments read in one round trip before any
// event applies, its writes queued and sent together in one more before
// the commit. One statement a round trip cost a batch of 256 reports
// about a thousand round trips; PostgreSQL's work was mostly protocol,
// and the ingest process's mostly system calls.
//
// Every writer of a message's segments holds the message's row lock, so
// what was read stays true for the batch, and a write's effect (did the
// segment move?) is known before it is sent. The queued statements keep
// their conditions all the same, so they never do more than that.
type statusRows struct {
	tx     pgx.Tx
	msgs   map[string]messageRow
	segs   map[string][]segmentRow
	writes pgx.Batch
}

// lockRows locks the messages ids (UUIDs, in ascending order: every batch
// and replica locks in that order, so two cannot deadlock) and reads their
// segments. A message without a row is simply not there.
func lockRows(ctx context.Context, tx pgx.Tx, ids []string) (*statusRows, error) {
	r := &statusRows{tx: tx, msgs: make(map[string]messageRow, len(ids)), segs: make(map[string][]segmentRow, len(ids))}
	if len(ids) == 0 {
		return r, nil
	}
	var b pgx.Batch
	b.Queue(`SELECT `+messageColumns+` FROM ingest.messages WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE`, ids).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				m, err := scanMessage(rows)
				if err != nil {
					return err
				}
				r.msgs[m.ID] = m
			}
			return rows.Err()
		})
	b.Queue(`SELECT message_id::text, idx, state, ucp_error_code, submitted_at, done_at
		FROM ingest.segments WHERE message_id = ANY($1::uuid[]) ORDER BY message_id, idx`, ids).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var id, state string
				var s segmentRow
				if err := rows.Scan(&id, &s.Index, &state, &s.UCPErrorCode, &s.SubmittedAt, &s.DoneAt); err != nil {
					return err
				}
				s.State = parseEnum[partnerv1.SegmentState](state)
				r.segs[id] = append(r.segs[id], s)
			}
			return rows.Err()
		})
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return nil, err
	}
	return r, nil
}

// message returns id's locked row: read with the batch, or locked now (a
// row the batch's event has just made). pgx.ErrNoRows when there is none.
func (r *statusRows) message(ctx context.Context, id string) (messageRow, error) {
	if m, ok := r.msgs[id]; ok {
		return m, nil
	}
	m, err := lockMessage(ctx, r.tx, id)
	if err != nil {
		return m, err
	}
	segs, err := loadSegments(ctx, r.tx, id)
	if err != nil {
		return m, err
	}
	r.msgs[id], r.segs[id] = m, segs
	return m, nil
}

// segments returns the segments of a message read by message, in index
// order, with the batch's changes so far. Callers only read them (THE
// rule's facts): a copy per report was an allocation on the hot path.
func (r *statusRows) segments(id string) []segmentRow { return r.segs[id] }

// ensureSegments creates the missing segments 1..count, PENDING, and
// reports whether there were any.
func (r *statusRows) ensureSegments(id string, count int32) bool {
	segs := r.segs[id]
	n := len(segs)
	for i := int32(1); i <= count; i++ {
		if !slices.ContainsFunc(segs[:n], func(s segmentRow) bool { return s.Index == i }) {
			segs = append(segs, segmentRow{Index: i, State: partnerv1.SegmentState_SEGMENT_STATE_PENDING})
		}
	}
	if len(segs) == n {
		return false
	}
	slices.SortFunc(segs, func(a, b segmentRow) int { return cmp.Compare(a.Index, b.Index) })
	r.segs[id] = segs
	r.writes.Queue(`INSERT INTO ingest.segments (message_id, idx, state, updated_at)
		SELECT $1, i, $3, now() FROM generate_series(1, $2::integer) AS i
		ON CONFLICT (message_id, idx) DO NOTHING`,
		id, count, enumText(partnerv1.SegmentState_SEGMENT_STATE_PENDING))
	return true
}

// applyToSegment moves the reported segment forward and reports whether
// it did; a late or duplicate report changes nothing (docs/messages.md).
func (r *statusRows) applyToSegment(id string, ev *eventsv1.SegmentReport) bool {
	segs := r.segs[id]
	i := slices.IndexFunc(segs, func(s segmentRow) bool { return s.Index == ev.GetSegmentIndex() })
	if i < 0 || !advances(segs[i].State, ev.GetState()) {
		return false
	}
	at := reportTime(ev)
	var submittedAt, doneAt *time.Time
	if ts := ev.GetSmscTimestamp(); ts.IsValid() {
		// SCTS is the SMSC's time of the submission.
		t := ts.AsTime()
		submittedAt = &t
	} else if ev.GetState() == partnerv1.SegmentState_SEGMENT_STATE_SUBMITTED {
		submittedAt = &at
	}
	if segmentRank(ev.GetState()) == segmentRank(partnerv1.SegmentState_SEGMENT_STATE_DELIVERED) {
		doneAt = &at
	}
	s := &segs[i]
	s.State = ev.GetState()
	if c := ev.GetUcpErrorCode(); c != "" {
		s.UCPErrorCode = c
	}
	s.SubmittedAt = cmp.Or(s.SubmittedAt, submittedAt)
	s.DoneAt = cmp.Or(s.DoneAt, doneAt)
	r.writes.Queue(`UPDATE ingest.segments SET state = $3,
			ucp_error_code = CASE WHEN $4 <> '' THEN $4 ELSE ucp_error_code END,
			submitted_at = coalesce(submitted_at, $5), done_at = coalesce(done_at, $6), updated_at = now()
		WHERE message_id = $1 AND idx = $2 AND state = ANY($7)`,
		id, ev.GetSegmentIndex(), enumText(ev.GetState()), ev.GetUcpErrorCode(), submittedAt, doneAt,
		statesBefore(ev.GetState()))
	return true
}

// writeMessage queues msg's write, with its campaign's decision counts,
// unless nothing changed since before.
func (r *statusRows) writeMessage(before, msg messageRow, segmentsChanged bool, now time.Time) {
	if !segmentsChanged && msg == before {
		return
	}
	countDecision(&r.writes, msg, before.Decision, msg.Decision)
	d := msg.Decision
	r.writes.Queue(`UPDATE ingest.messages SET state = $2, rejected = $3, cancelled = $4, cleared = $5,
			segment_count = $6, reason = $7, reason_detail = $8, updated_at = $9, not_before = $10,
			decision_outcome = $11, decision_reason = $12, decision_rule = $13, decision_source = $14,
			decision_detail = $15, decision_not_before = $16, decision_policy_version = $17, decided_at = $18
		WHERE id = $1`,
		msg.ID, msg.State, msg.Rejected, msg.Cancelled, msg.Cleared,
		msg.SegmentCount, msg.Reason, msg.ReasonDetail, now, msg.NotBefore,
		d.Outcome, d.Reason, d.Rule, d.Source, d.Detail, d.NotBefore, d.PolicyVersion, d.DecidedAt)
	msg.UpdatedAt = now
	r.msgs[msg.ID] = msg
}

// flush sends the queued writes.
func (r *statusRows) flush(ctx context.Context) error {
	if r.writes.Len() == 0 {
		return nil
	}
	return r.tx.SendBatch(ctx, &r.writes).Close()
}
