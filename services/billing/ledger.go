package billing

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
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

// Beginner starts a transaction: a pool, a connection or a transaction (a
// savepoint then).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
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

// insertNew is insertLedger returning the rows really inserted: the
// entries this transaction bills, credit settles and the aggregate counts.
const insertNew = insertLedger + `
RETURNING message_id, segment_index, tenant_id, coalesce(campaign_id, ''), short_code, state, billable, reported_at, recorded_at`

// Record writes entries in one statement and returns how many were new.
// When it returns nil every entry is committed (or was already there).
// The daily aggregate follows (trigger); the prepaid credit does not:
// final reports go through RecordBatch, which settles it.
func Record(ctx context.Context, db Execer, entries ...Entry) (int, error) {
	if len(entries) == 0 {
		return 0, nil
	}
	tag, err := db.Exec(ctx, insertLedger, columns(entries)...)
	if err != nil {
		return 0, fmt.Errorf("record %d ledger entries: %w", len(entries), err)
	}
	return int(tag.RowsAffected()), nil
}

// columns turns entries into the arrays of insertLedger.
func columns(entries []Entry) []any {
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
	return []any{msg, idx, ten, camp, sc, st, bill, at}
}

// RecordBatch records entries in one transaction: the ledger rows, the
// daily aggregate (kept by the ledger's trigger, migration 002) and the
// settlement of the prepaid credit, all from the entries that were not in
// the ledger yet. It returns those new entries. When it returns nil, the
// whole batch is committed; otherwise none of it is.
//
// The entries are inserted in key order, arrival order kept among those of
// one segment: two replicas recording overlapping batches lock the same
// rows in the same order (no deadlock), and of two final reports of one
// segment in a batch, the first received is the one recorded.
func RecordBatch(ctx context.Context, db Beginner, entries []Entry) ([]Entry, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	sorted := slices.Clone(entries)
	slices.SortStableFunc(sorted, func(a, b Entry) int {
		return cmp.Or(strings.Compare(a.MessageID, b.MessageID), cmp.Compare(a.SegmentIndex, b.SegmentIndex))
	})
	var fresh []Entry
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, insertNew, columns(sorted)...)
		if err != nil {
			return err
		}
		fresh, err = pgx.CollectRows(rows, scanEntry)
		if err != nil {
			return err
		}
		// In the same transaction: a segment's credit is settled exactly
		// when its row is new, whatever the redeliveries.
		if err := SettleCredit(ctx, tx, fresh); err != nil {
			return fmt.Errorf("settle credit: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record batch of %d ledger entries: %w", len(entries), err)
	}
	return fresh, nil
}

func scanEntry(row pgx.CollectableRow) (Entry, error) {
	var e Entry
	var idx int32
	err := row.Scan(&e.MessageID, &idx, &e.TenantID, &e.CampaignID, &e.ShortCode, &e.State, &e.Billable, &e.ReportedAt, &e.RecordedAt)
	e.SegmentIndex = int(idx)
	return e, err
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
	out, err := pgx.CollectRows(rows, scanEntry)
	if err != nil {
		return nil, fmt.Errorf("ledger of %s: %w", messageID, err)
	}
	return out, nil
}
