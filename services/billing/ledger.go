package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// State is the final state of a segment, as stored in the ledger.
type State string

// Final states. Only Delivered is billable.
const (
	Delivered State = "delivered"
	Failed    State = "failed"
	Expired   State = "expired"
)

// Entry is one ledger row: the final outcome of one segment.
type Entry struct {
	MessageID    string
	SegmentIndex int
	TenantID     string
	// CampaignID is empty for a message sent alone.
	CampaignID string
	ShortCode  string
	State      State
	// Billable is true for a delivered segment only.
	Billable   bool
	ReportedAt time.Time
	// RecordedAt is set by the database; ignored by Record.
	RecordedAt time.Time
}

// Execer runs a statement: a pool, a connection or a transaction.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Querier reads rows: a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// insertLedger takes columns as arrays so that one statement records one
// entry or a batch of thousands alike, atomically. Entries already in the
// ledger (a redelivered report) are skipped, so the first final report of
// a segment is the one billed.
const insertLedger = `
INSERT INTO billing.ledger
    (message_id, segment_index, tenant_id, campaign_id, short_code, state, billable, reported_at)
SELECT m, i, t, nullif(c, ''), s, st, b, r
FROM unnest($1::text[], $2::int4[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[], $8::timestamptz[])
    AS u(m, i, t, c, s, st, b, r)
ON CONFLICT (message_id, segment_index) DO NOTHING`

// Record writes entries in one statement and returns how many were new.
// When it returns nil every entry is committed (or was already there).
func Record(ctx context.Context, db Execer, entries ...Entry) (int, error) {
	if len(entries) == 0 {
		return 0, nil
	}
	n := len(entries)
	var (
		msg  = make([]string, n)
		idx  = make([]int32, n)
		ten  = make([]string, n)
		camp = make([]string, n)
		sc   = make([]string, n)
		st   = make([]string, n)
		bill = make([]bool, n)
		at   = make([]time.Time, n)
	)
	for i, e := range entries {
		msg[i], idx[i], ten[i], camp[i], sc[i] = e.MessageID, int32(e.SegmentIndex), e.TenantID, e.CampaignID, e.ShortCode
		st[i], bill[i], at[i] = string(e.State), e.Billable, e.ReportedAt
	}
	tag, err := db.Exec(ctx, insertLedger, msg, idx, ten, camp, sc, st, bill, at)
	if err != nil {
		return 0, fmt.Errorf("record %d ledger entries: %w", n, err)
	}
	return int(tag.RowsAffected()), nil
}

// DeliveredCount returns the number of billable (delivered) segments of a
// message in the ledger.
func DeliveredCount(ctx context.Context, db Querier, messageID string) (int, error) {
	var n int
	err := db.QueryRow(ctx, `SELECT count(*) FROM billing.ledger WHERE message_id = $1 AND billable`, messageID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count delivered segments of %s: %w", messageID, err)
	}
	return n, nil
}

// Entries returns the ledger rows of a message, by segment.
func Entries(ctx context.Context, db Querier, messageID string) ([]Entry, error) {
	rows, err := db.Query(ctx, `
SELECT message_id, segment_index, tenant_id, coalesce(campaign_id, ''), short_code, state, billable, reported_at, recorded_at
FROM billing.ledger WHERE message_id = $1 ORDER BY segment_index`, messageID)
	if err != nil {
		return nil, fmt.Errorf("ledger of %s: %w", messageID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Entry, error) {
		var e Entry
		var idx int32
		err := row.Scan(&e.MessageID, &idx, &e.TenantID, &e.CampaignID, &e.ShortCode, &e.State, &e.Billable, &e.ReportedAt, &e.RecordedAt)
		e.SegmentIndex = int(idx)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger of %s: %w", messageID, err)
	}
	return out, nil
}
