package billing_test

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"pushsms.io/lib/pgdb"
	"pushsms.io/lib/pgtest"
	"pushsms.io/services/billing"
)

func paris(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(billing.Zone)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func ledgerEntry(id string, seg int, sc, tenant string, st billing.State, at time.Time) billing.Entry {
	return billing.Entry{MessageID: id, SegmentIndex: seg, TenantID: tenant, ShortCode: sc, State: st, Billable: st == billing.Delivered, ReportedAt: at}
}

func dailyCounts(t *testing.T, q billing.Querier, from, to time.Time) []billing.DailyCount {
	t.Helper()
	got, err := billing.DailyCounts(context.Background(), q, from, to)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func sameCounts(got, want []billing.DailyCount) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %d counts %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i := range got {
		g, w := got[i], want[i]
		if !g.Day.Equal(w.Day) || g.Day.Location().String() != billing.Zone || g.ShortCode != w.ShortCode || g.TenantID != w.TenantID || g.State != w.State || g.Segments != w.Segments {
			return fmt.Errorf("count %d: got %+v (day %v), want %+v", i, g, g.Day, w)
		}
	}
	return nil
}

// Days are civil days in Europe/Paris: a report at 23:30 UTC on 31 October
// is of 1 November, one at 22:30 UTC of 31 October (CET, UTC+1); in July
// (CEST, UTC+2), 22:30 UTC is already the next day.
func TestDailyCountsParisDays(t *testing.T) {
	db := pgtest.New(t, pgtest.Migrated(billing.Schema, billing.Migrations()))
	ctx := context.Background()
	loc := paris(t)
	utc := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, time.UTC) }
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, loc) }

	_, err := billing.Record(ctx, db.Pool,
		ledgerEntry("a", 1, "36123", "acme", billing.Delivered, utc(2026, 10, 31, 22, 30)), // 31 Oct 23:30
		ledgerEntry("a", 2, "36123", "acme", billing.Delivered, utc(2026, 10, 31, 23, 30)), // 1 Nov 00:30
		ledgerEntry("b", 1, "36123", "acme", billing.Delivered, utc(2026, 11, 1, 10, 0)),
		ledgerEntry("c", 1, "36123", "acme", billing.Failed, utc(2026, 11, 1, 10, 0)),
		ledgerEntry("d", 1, "36123", "beta", billing.Delivered, utc(2026, 11, 1, 10, 0)),
		ledgerEntry("e", 1, "38000", "acme", billing.Expired, utc(2026, 11, 15, 12, 0)),
		ledgerEntry("f", 1, "36123", "acme", billing.Delivered, utc(2026, 11, 30, 22, 59)), // 30 Nov 23:59
		ledgerEntry("f", 2, "36123", "acme", billing.Delivered, utc(2026, 11, 30, 23, 0)),  // 1 Dec 00:00
		ledgerEntry("g", 1, "36123", "acme", billing.Delivered, utc(2026, 7, 14, 22, 30)),  // 15 Jul 00:30
	)
	if err != nil {
		t.Fatal(err)
	}
	// Duplicates of rows above, one contradicting: they count nowhere.
	n, err := billing.Record(ctx, db.Pool,
		ledgerEntry("b", 1, "36123", "acme", billing.Delivered, utc(2026, 11, 1, 10, 0)),
		ledgerEntry("c", 1, "36123", "acme", billing.Delivered, utc(2026, 11, 2, 10, 0)),
	)
	if err != nil || n != 0 {
		t.Fatalf("duplicates: got %d new, %v; want 0, nil", n, err)
	}

	tests := []struct {
		name     string
		from, to time.Time
		want     []billing.DailyCount
	}{
		{"november", day(2026, 11, 1), day(2026, 12, 1), []billing.DailyCount{
			{Day: day(2026, 11, 1), ShortCode: "36123", TenantID: "acme", State: billing.Delivered, Segments: 2},
			{Day: day(2026, 11, 1), ShortCode: "36123", TenantID: "acme", State: billing.Failed, Segments: 1},
			{Day: day(2026, 11, 1), ShortCode: "36123", TenantID: "beta", State: billing.Delivered, Segments: 1},
			{Day: day(2026, 11, 15), ShortCode: "38000", TenantID: "acme", State: billing.Expired, Segments: 1},
			{Day: day(2026, 11, 30), ShortCode: "36123", TenantID: "acme", State: billing.Delivered, Segments: 1},
		}},
		{"october's last day", day(2026, 10, 31), day(2026, 11, 1), []billing.DailyCount{
			{Day: day(2026, 10, 31), ShortCode: "36123", TenantID: "acme", State: billing.Delivered, Segments: 1},
		}},
		{"december's first day", day(2026, 12, 1), day(2026, 12, 2), []billing.DailyCount{
			{Day: day(2026, 12, 1), ShortCode: "36123", TenantID: "acme", State: billing.Delivered, Segments: 1},
		}},
		{"july, bounds in UTC", time.Date(2026, 6, 30, 22, 0, 0, 0, time.UTC), time.Date(2026, 7, 31, 22, 0, 0, 0, time.UTC), []billing.DailyCount{
			{Day: day(2026, 7, 15), ShortCode: "36123", TenantID: "acme", State: billing.Delivered, Segments: 1},
		}},
		// A day is in when its 00:00 is: from noon on 1 November, the
		// first day is the 2nd; to noon on 30 November, the last is the 30th.
		{"bounds within days", day(2026, 11, 1).Add(12 * time.Hour), day(2026, 11, 30).Add(12 * time.Hour), []billing.DailyCount{
			{Day: day(2026, 11, 15), ShortCode: "38000", TenantID: "acme", State: billing.Expired, Segments: 1},
			{Day: day(2026, 11, 30), ShortCode: "36123", TenantID: "acme", State: billing.Delivered, Segments: 1},
		}},
		{"empty range", day(2026, 11, 1), day(2026, 11, 1), nil},
		{"no traffic", day(2025, 1, 1), day(2025, 2, 1), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := sameCounts(dailyCounts(t, db.Pool, tt.from, tt.to), tt.want); err != nil {
				t.Error(err)
			}
		})
	}
	if err := aggregateMatchesLedger(ctx, db); err != nil {
		t.Error(err)
	}
}

// aggregateMatchesLedger compares the aggregate with the ledger counted
// afresh: the invariant that the triggers keep.
func aggregateMatchesLedger(ctx context.Context, db *pgtest.DB) error {
	var diff int
	err := db.Pool.QueryRow(ctx, `
WITH fresh AS (
    SELECT (reported_at AT TIME ZONE 'Europe/Paris')::date AS day, short_code, tenant_id, state, count(*) AS segments
    FROM billing.ledger GROUP BY 1, 2, 3, 4
)
SELECT count(*) FROM (
    (SELECT * FROM fresh EXCEPT SELECT * FROM billing.ledger_daily)
    UNION ALL
    (SELECT * FROM billing.ledger_daily EXCEPT SELECT * FROM fresh)
) d`).Scan(&diff)
	if err != nil {
		return err
	}
	if diff != 0 {
		return fmt.Errorf("aggregate and ledger differ on %d (day, short code, tenant, state)", diff)
	}
	return nil
}

func TestLedgerIsAppendOnly(t *testing.T) {
	db := pgtest.New(t, pgtest.Migrated(billing.Schema, billing.Migrations()))
	ctx := context.Background()
	if _, err := billing.Record(ctx, db.Pool, ledgerEntry("a", 1, "36123", "acme", billing.Delivered, at)); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`UPDATE billing.ledger SET state = 'failed', billable = false`,
		`DELETE FROM billing.ledger`,
		`TRUNCATE billing.ledger`,
	} {
		if _, err := db.Pool.Exec(ctx, sql); err == nil {
			t.Errorf("%s: got no error", sql)
		}
	}
	got := entriesOf(t, db, "a")
	if len(got) != 1 || got[0].State != billing.Delivered {
		t.Errorf("got %+v, want the delivered row unchanged", got)
	}
}

// Rows recorded before migration 002 are counted by it.
func TestMigrationCountsEarlierRows(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	full := billing.Migrations()
	only := func(names ...string) fstest.MapFS {
		m := fstest.MapFS{}
		for _, n := range names {
			b, err := fs.ReadFile(full, n)
			if err != nil {
				t.Fatal(err)
			}
			m[n] = &fstest.MapFile{Data: b}
		}
		return m
	}
	if err := pgdb.Migrate(ctx, db.Pool, billing.Schema, only("001_ledger.sql")); err != nil {
		t.Fatal(err)
	}
	early := at.Add(-30 * 24 * time.Hour)
	if _, err := billing.Record(ctx, db.Pool,
		ledgerEntry("a", 1, "36123", "acme", billing.Delivered, early),
		ledgerEntry("a", 2, "36123", "acme", billing.Delivered, early),
		ledgerEntry("b", 1, "36123", "acme", billing.Failed, early),
	); err != nil {
		t.Fatal(err)
	}
	if err := pgdb.Migrate(ctx, db.Pool, billing.Schema, only("001_ledger.sql", "002_ledger_daily.sql")); err != nil {
		t.Fatal(err)
	}
	if _, err := billing.Record(ctx, db.Pool, ledgerEntry("c", 1, "36123", "acme", billing.Delivered, early)); err != nil {
		t.Fatal(err)
	}
	loc := paris(t)
	e := early.In(loc)
	d := time.Date(e.Year(), e.Month(), e.Day(), 0, 0, 0, 0, loc)
	want := []billing.DailyCount{
		{Day: d, ShortCode: "36123", TenantID: "acme", State: billing.Delivered, Segments: 3},
		{Day: d, ShortCode: "36123", TenantID: "acme", State: billing.Failed, Segments: 1},
	}
	if err := sameCounts(dailyCounts(t, db.Pool, d, d.AddDate(0, 0, 1)), want); err != nil {
		t.Error(err)
	}
	if err := aggregateMatchesLedger(ctx, db); err != nil {
		t.Error(err)
	}
}

// RecordBatch returns the entries it inserted and only those; of two
// reports of one segment in a batch, the first is recorded.
func TestRecordBatchReturnsNewEntries(t *testing.T) {
	db := pgtest.New(t, pgtest.Migrated(billing.Schema, billing.Migrations()))
	ctx := context.Background()
	fresh, err := billing.RecordBatch(ctx, db.Pool, []billing.Entry{
		ledgerEntry("z", 2, "36123", "acme", billing.Failed, at),
		ledgerEntry("z", 1, "36123", "acme", billing.Delivered, at),
		ledgerEntry("z", 2, "36123", "acme", billing.Delivered, at), // after the failed one: ignored
		ledgerEntry("y", 1, "36123", "acme", billing.Expired, at),
	})
	if err != nil {
		t.Fatal(err)
	}
	keys := func(es []billing.Entry) []string {
		var out []string
		for _, e := range es {
			out = append(out, fmt.Sprintf("%s/%d/%s", e.MessageID, e.SegmentIndex, e.State))
		}
		slices.Sort(out)
		return out
	}
	if got, want := keys(fresh), []string{"y/1/expired", "z/1/delivered", "z/2/failed"}; !slices.Equal(got, want) {
		t.Errorf("first batch: got %v, want %v", got, want)
	}
	for _, e := range fresh {
		if e.RecordedAt.IsZero() || e.ShortCode != "36123" || e.TenantID != "acme" || !e.ReportedAt.Equal(at) {
			t.Errorf("entry %+v: want the row as recorded", e)
		}
	}
	fresh, err = billing.RecordBatch(ctx, db.Pool, []billing.Entry{
		ledgerEntry("z", 2, "36123", "acme", billing.Delivered, at),
		ledgerEntry("x", 1, "36123", "acme", billing.Delivered, at),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keys(fresh), []string{"x/1/delivered"}; !slices.Equal(got, want) {
		t.Errorf("second batch: got %v, want %v", got, want)
	}
	if fresh, err := billing.RecordBatch(ctx, db.Pool, nil); fresh != nil || err != nil {
		t.Errorf("empty batch: got %v, %v, want nil, nil", fresh, err)
	}
	// A batch refused by the database leaves nothing behind.
	bad := ledgerEntry("w", 1, "36123", "acme", billing.Failed, at)
	bad.Billable = true
	if _, err := billing.RecordBatch(ctx, db.Pool, []billing.Entry{ledgerEntry("v", 1, "36123", "acme", billing.Delivered, at), bad}); err == nil {
		t.Error("billable failed segment: got no error")
	}
	if got := entriesOf(t, db, "v"); len(got) != 0 {
		t.Errorf("refused batch: got %+v recorded, want nothing", got)
	}
	if err := aggregateMatchesLedger(ctx, db); err != nil {
		t.Error(err)
	}
}
