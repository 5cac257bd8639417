package billing_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"pushsms.io/lib/pgtest"
	"pushsms.io/services/billing"
)

func day(t testing.TB, s string) billing.Date {
	t.Helper()
	d, err := billing.ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// catalog records short-code events in order, failing the test on a refusal.
type catalog struct {
	t  testing.TB
	db billing.Beginner
}

func (c catalog) ev(sc string, kind billing.EventKind, on string, throughput int) {
	c.t.Helper()
	if _, err := billing.RecordShortCodeEvent(context.Background(), c.db, billing.ShortCodeEvent{
		ShortCode: sc, Kind: kind, Effective: day(c.t, on), Throughput: throughput}); err != nil {
		c.t.Fatal(err)
	}
}

func (c catalog) qual(entity string, kind billing.QualificationKind, on string) {
	c.t.Helper()
	if _, err := billing.RecordQualificationEvent(context.Background(), c.db, billing.QualificationEvent{
		LegalEntity: entity, Kind: kind, Effective: day(c.t, on)}); err != nil {
		c.t.Fatal(err)
	}
}

func (c catalog) qualified(entity, month string, n int64) {
	c.t.Helper()
	m, err := billing.ParseMonth(month)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := billing.RecordQualified(context.Background(), c.db, billing.QualifiedCount{LegalEntity: entity, Month: m, MSISDNs: n}); err != nil {
		c.t.Fatal(err)
	}
}

// traffic records n final segments of short code sc, one message each,
// reported at at.
func traffic(t testing.TB, db billing.Execer, sc string, st billing.State, at time.Time, n int) {
	t.Helper()
	entries := make([]billing.Entry, n)
	for i := range entries {
		entries[i] = billing.Entry{MessageID: fmt.Sprintf("%s-%s-%d-%d", sc, st, at.Unix(), i), SegmentIndex: 1, TenantID: "acme",
			ShortCode: sc, State: st, Billable: st == billing.Delivered, ReportedAt: at}
	}
	got, err := billing.Record(context.Background(), db, entries...)
	if err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Fatalf("recorded %d entries of %s, want %d", got, sc, n)
	}
}

// The must-show month: November 2026 with 22 short codes in service,
// options of every kind, two activations, throughput changes and known
// traffic. Every expected amount below is worked out by hand from the
// offer's price list (the default tariff), in cents.
func TestInvoiceOfAMonthWorkedByHand(t *testing.T) {
	db := pgtest.New(t, pgtest.Migrated(billing.Schema, billing.Migrations()))
	ctx := context.Background()
	c := catalog{t, db.Pool}

	// A short code activated before all others and closed before the
	// month: not billed, and it takes no rank.
	c.ev("36999", billing.EventActivation, "2025-01-02", 0)
	c.ev("36999", billing.EventClosure, "2026-10-31", 0)

	// Ranks 1–3: green numbers (34ABC), activated first.
	for _, sc := range []string{"34001", "34002", "34003"} {
		c.ev(sc, billing.EventActivation, "2025-03-03", 0)
		c.ev(sc, billing.EventGreenOn, "2025-03-03", 0)
	}
	// Ranks 4–7: geo-presence (35ABC). 35004 drops it in the month: still
	// a whole month of it.
	for _, sc := range []string{"35001", "35002", "35003", "35004"} {
		c.ev(sc, billing.EventActivation, "2025-04-01", 0)
		c.ev(sc, billing.EventGreenOn, "2025-04-01", 0)
	}
	c.ev("35004", billing.EventGreenOff, "2026-11-14", 0)
	// Ranks 8–17: ten 36ABC short codes activated the same day (ranked by
	// number).
	for i := 101; i <= 110; i++ {
		c.ev(fmt.Sprint(36000+i), billing.EventActivation, "2025-06-02", 0)
	}
	c.ev("36101", billing.EventThroughputChange, "2025-07-01", 50)
	c.ev("36102", billing.EventThroughputChange, "2025-07-01", 100)
	c.ev("36103", billing.EventThroughputChange, "2025-07-01", 20)
	c.ev("36104", billing.EventThroughputChange, "2025-07-01", 150)
	c.ev("36105", billing.EventThroughputChange, "2025-07-01", 50)
	c.ev("36106", billing.EventOAdCOn, "2025-06-02", 0)
	c.ev("36108", billing.EventOAdCOn, "2025-09-01", 0)
	// Ranks 18–20.
	c.ev("34004", billing.EventActivation, "2026-02-02", 0)
	c.ev("34004", billing.EventGreenOn, "2026-02-02", 0)
	c.ev("34005", billing.EventActivation, "2026-02-02", 0)
	c.ev("35005", billing.EventActivation, "2026-10-15", 0)
	c.ev("35005", billing.EventGreenOn, "2026-10-15", 0)

	// November 2026.
	c.ev("36104", billing.EventThroughputChange, "2026-11-01", 10) // back to standard on the 1st: no option this month
	c.ev("36107", billing.EventOAdCOn, "2026-11-03", 0)
	c.ev("35006", billing.EventActivation, "2026-11-05", 0) // rank 21
	c.ev("35006", billing.EventGreenOn, "2026-11-05", 0)    // the 11th green number
	c.ev("34005", billing.EventGreenOn, "2026-11-09", 0)
	c.ev("36103", billing.EventThroughputChange, "2026-11-10", 150) // 20 → 150
	c.ev("36108", billing.EventOAdCOff, "2026-11-12", 0)
	c.ev("36110", billing.EventClosure, "2026-11-16", 0)
	c.ev("36109", billing.EventOtherChange, "2026-11-18", 0)        // IP address change
	c.ev("36002", billing.EventActivation, "2026-11-20", 20)        // rank 22, at 20 SMS/s from the start
	c.ev("36002", billing.EventOAdCOn, "2026-11-20", 0)             //
	c.ev("36105", billing.EventThroughputChange, "2026-11-25", 10)  // 50 → 10: 50 was in force this month
	c.ev("36003", billing.EventActivation, "2026-12-01", 0)         // next month: nothing now
	c.ev("36101", billing.EventThroughputChange, "2026-12-01", 100) // next month: nothing now

	// Basic qualification, per legal entity.
	c.qual("ACME SAS", billing.QualificationSubscribe, "2026-05-01")
	c.qual("Beta SARL", billing.QualificationSubscribe, "2026-11-20")
	c.qual("Beta SARL", billing.QualificationUnsubscribe, "2026-11-25") // a whole month all the same
	c.qual("Gamma SA", billing.QualificationSubscribe, "2026-01-01")
	c.qualified("Gamma SA", "2026-10", 300)
	c.qual("Gamma SA", billing.QualificationUnsubscribe, "2026-11-01") // off from the 1st: not billed
	c.qualified("ACME SAS", "2026-11", 12_000)
	c.qualified("ACME SAS", "2026-11", 500)
	c.qualified("ACME SAS", "2026-11", -1_000) // a correction
	c.qualified("Beta SARL", "2026-11", 250)

	// Traffic. November is Europe/Paris days: 2026-11-01 00:00 is
	// 2026-10-31 23:00 UTC (CET), 2026-12-01 00:00 is 2026-11-30 23:00 UTC.
	utc := func(s string) time.Time {
		t.Helper()
		at, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return at
	}
	traffic(t, db.Pool, "36101", billing.Delivered, utc("2026-11-10T09:00:00Z"), 4000)
	traffic(t, db.Pool, "36101", billing.Failed, utc("2026-11-10T09:00:00Z"), 300)
	traffic(t, db.Pool, "36101", billing.Expired, utc("2026-11-11T09:00:00Z"), 100)
	traffic(t, db.Pool, "36002", billing.Delivered, utc("2026-11-28T17:45:00Z"), 1234)
	traffic(t, db.Pool, "34001", billing.Delivered, utc("2026-11-15T12:00:00Z"), 366)
	traffic(t, db.Pool, "34001", billing.Delivered, utc("2026-10-31T23:30:00Z"), 200) // 1 Nov 00:30 Paris: November
	traffic(t, db.Pool, "36101", billing.Delivered, utc("2026-10-31T22:59:59Z"), 77)  // 31 Oct 23:59:59 Paris: October
	traffic(t, db.Pool, "36101", billing.Delivered, utc("2026-11-30T23:00:00Z"), 88)  // 1 Dec 00:00 Paris: December
	traffic(t, db.Pool, "36102", billing.Failed, utc("2026-11-20T08:00:00Z"), 999)
	// Redelivered reports change nothing.
	if _, err := billing.Record(ctx, db.Pool, billing.Entry{MessageID: "36002-delivered-" + fmt.Sprint(utc("2026-11-28T17:45:00Z").Unix()) + "-0",
		SegmentIndex: 1, TenantID: "acme", ShortCode: "36002", State: billing.Delivered, Billable: true, ReportedAt: utc("2026-11-28T17:45:00Z")}); err != nil {
		t.Fatal(err)
	}

	type line struct {
		kind, shortCode, entity, date string
		qty, unitMillicents, cents    int64
	}
	const (
		eur  = 100_000 // millicents in one euro
		cent = 1_000   // millicents in one cent
	)
	sc := func(kind, code, date string, unit int64) line {
		return line{kind, code, "", date, 1, unit, unit / cent}
	}
	want := []line{
		// One-time fees of the month's events, by kind then day.
		// Activations: 2 × (280 + 300) = 1 160.00
		sc(billing.LineActivationTechnical, "35006", "2026-11-05", 280*eur),
		sc(billing.LineActivationTechnical, "36002", "2026-11-20", 280*eur),
		sc(billing.LineActivationAdministrative, "35006", "2026-11-05", 300*eur),
		sc(billing.LineActivationAdministrative, "36002", "2026-11-20", 300*eur),
		// Throughput changes: 3 × 150 = 450.00 (36002's 20 SMS/s came with
		// its activation: no change fee).
		sc(billing.LineThroughputChange, "36104", "2026-11-01", 150*eur),
		sc(billing.LineThroughputChange, "36103", "2026-11-10", 150*eur),
		sc(billing.LineThroughputChange, "36105", "2026-11-25", 150*eur),
		// OAdC option on or off: 3 × 280 = 840.00
		sc(billing.LineOAdCChange, "36107", "2026-11-03", 280*eur),
		sc(billing.LineOAdCChange, "36108", "2026-11-12", 280*eur),
		sc(billing.LineOAdCChange, "36002", "2026-11-20", 280*eur),
		// Green number on/off costs nothing in the offer: no line.
		// Closure and IP change: 2 × 150 = 300.00
		sc(billing.LineOtherChange, "36110", "2026-11-16", 150*eur),
		sc(billing.LineOtherChange, "36109", "2026-11-18", 150*eur),
		// One-time: 1 160 + 450 + 840 + 300 = 2 750.00

		// Short-code fees by activation order: 20 × 150 + 2 × 500 = 4 000.00
		// (36999 was activated first but closed before November.)
		sc(billing.LineShortCode, "34001", "", 150*eur),
		sc(billing.LineShortCode, "34002", "", 150*eur),
		sc(billing.LineShortCode, "34003", "", 150*eur),
		sc(billing.LineShortCode, "35001", "", 150*eur),
		sc(billing.LineShortCode, "35002", "", 150*eur),
		sc(billing.LineShortCode, "35003", "", 150*eur),
		sc(billing.LineShortCode, "35004", "", 150*eur),
		sc(billing.LineShortCode, "36101", "", 150*eur),
		sc(billing.LineShortCode, "36102", "", 150*eur),
		sc(billing.LineShortCode, "36103", "", 150*eur),
		sc(billing.LineShortCode, "36104", "", 150*eur),
		sc(billing.LineShortCode, "36105", "", 150*eur),
		sc(billing.LineShortCode, "36106", "", 150*eur),
		sc(billing.LineShortCode, "36107", "", 150*eur),
		sc(billing.LineShortCode, "36108", "", 150*eur),
		sc(billing.LineShortCode, "36109", "", 150*eur),
		sc(billing.LineShortCode, "36110", "", 150*eur), // closed on the 16th: a whole month
		sc(billing.LineShortCode, "34004", "", 150*eur),
		sc(billing.LineShortCode, "34005", "", 150*eur),
		sc(billing.LineShortCode, "35005", "", 150*eur), // the 20th
		sc(billing.LineShortCode, "35006", "", 500*eur), // the 21st
		sc(billing.LineShortCode, "36002", "", 500*eur), // the 22nd

		// Throughput options, highest in force on a day of the month:
		// 1 600 + 2 500 + 3 000 + 1 600 + 800 = 9 500.00
		sc(billing.LineThroughputOption, "36101", "", 1600*eur), // 50
		sc(billing.LineThroughputOption, "36102", "", 2500*eur), // 100
		sc(billing.LineThroughputOption, "36103", "", 3000*eur), // 20 then 150: 150
		sc(billing.LineThroughputOption, "36105", "", 1600*eur), // 50 then 10: 50
		sc(billing.LineThroughputOption, "36002", "", 800*eur),  // 20
		// (36104: 10 from the 1st, no option.)

		// OAdC option: 4 × 150 = 600.00
		sc(billing.LineOAdCOption, "36106", "", 150*eur),
		sc(billing.LineOAdCOption, "36107", "", 150*eur),
		sc(billing.LineOAdCOption, "36108", "", 150*eur),
		sc(billing.LineOAdCOption, "36002", "", 150*eur),

		// Green number / geo-presence: 10 × 150 + 1 × 500 = 2 000.00
		sc(billing.LineGreenNumber, "34001", "", 150*eur),
		sc(billing.LineGreenNumber, "34002", "", 150*eur),
		sc(billing.LineGreenNumber, "34003", "", 150*eur),
		sc(billing.LineGreenNumber, "35001", "", 150*eur),
		sc(billing.LineGreenNumber, "35002", "", 150*eur),
		sc(billing.LineGreenNumber, "35003", "", 150*eur),
		sc(billing.LineGreenNumber, "35004", "", 150*eur),
		sc(billing.LineGreenNumber, "34004", "", 150*eur),
		sc(billing.LineGreenNumber, "34005", "", 150*eur),
		sc(billing.LineGreenNumber, "35005", "", 150*eur), // the 10th: still 150
		sc(billing.LineGreenNumber, "35006", "", 500*eur), // the 11th

		// Delivered SMS-MT: 4 000 + 1 234 + 366 + 200 = 5 800 × 0.030 = 174.00
		{billing.LineDeliveredMT, "", "", "", 5800, 3 * cent, 17400},

		// Basic qualification: 2 × 200 = 400.00
		{billing.LineBasicQualification, "", "ACME SAS", "", 1, 200 * eur, 20000},
		{billing.LineBasicQualification, "", "Beta SARL", "", 1, 200 * eur, 20000},
		// Per MSISDN: (12 000 + 500 − 1 000) × 0.01 = 115.00; 250 × 0.01 = 2.50
		{billing.LineQualifiedMSISDN, "", "ACME SAS", "", 11500, 1 * cent, 11500},
		{billing.LineQualifiedMSISDN, "", "Beta SARL", "", 250, 1 * cent, 250},
	}
	// Total: 2 750 + 4 000 + 9 500 + 600 + 2 000 + 174 + 400 + 117.50
	//      = 19 541.50 EUR
	const wantTotal = 1_954_150

	inv, err := billing.BuildInvoice(ctx, db.Pool, billing.Month{Year: 2026, Month: time.November})
	if err != nil {
		t.Fatal(err)
	}
	if inv.TariffVersion != "ops-v2-2016-10" || inv.Currency != "EUR" || inv.Month.String() != "2026-11" {
		t.Errorf("got tariff %q currency %q month %s, want ops-v2-2016-10 EUR 2026-11", inv.TariffVersion, inv.Currency, inv.Month)
	}
	for i := range max(len(want), len(inv.Lines)) {
		switch {
		case i >= len(inv.Lines):
			t.Errorf("line %d: missing, want %+v", i, want[i])
			continue
		case i >= len(want):
			t.Errorf("line %d: got %+v, want none", i, inv.Lines[i])
			continue
		}
		l := inv.Lines[i]
		got := line{l.Kind, l.ShortCode, l.LegalEntity, l.Date.String(), l.Quantity, l.UnitMillicents, l.AmountCents}
		if got != want[i] {
			t.Errorf("line %d: got %+v, want %+v (%s)", i, got, want[i], l.Description)
		}
		if l.Description == "" {
			t.Errorf("line %d: no description", i)
		}
	}
	var sum int64
	for _, w := range want {
		sum += w.cents
	}
	if sum != wantTotal {
		t.Fatalf("the hand-worked lines add up to %d, the hand-worked total is %d", sum, wantTotal)
	}
	if inv.TotalCents != wantTotal {
		t.Errorf("total %s EUR, want %s", billing.FormatCents(inv.TotalCents), billing.FormatCents(wantTotal))
	}
}

// BenchmarkBuildInvoice10M is the month's invoice over a ledger of 10 M
// segments (BILLING_BENCH_ROWS to change it): 22 short codes, 80 %
// delivered, spread over the Europe/Paris days of November 2026. The rows
// go in through the ledger's own insert trigger, by generate_series in
// statements of 1 M, so the daily aggregate is the one production keeps.
// The invoice reads that aggregate, never the ledger: its time does not
// grow with the ledger.
func BenchmarkBuildInvoice10M(b *testing.B) {
	rows := 10_000_000
	if s := os.Getenv("BILLING_BENCH_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 10 {
			b.Fatalf("BILLING_BENCH_ROWS=%q: want a count of at least 10", s)
		}
		rows = n
	}
	db := pgtest.New(b, pgtest.Migrated(billing.Schema, billing.Migrations()))
	ctx := context.Background()
	c := catalog{b, db.Pool}
	for i := range 22 {
		sc := fmt.Sprint(36101 + i)
		c.ev(sc, billing.EventActivation, "2026-10-01", 0)
		if i%4 == 0 {
			c.ev(sc, billing.EventThroughputChange, "2026-11-10", 50)
		}
	}

	start := time.Now()
	const chunk = 1_000_000
	for lo := 0; lo < rows; lo += chunk {
		hi := min(lo+chunk, rows) - 1
		// 2026-10-31 23:00 UTC is 1 November 00:00 in Paris; November
		// has 2 592 000 seconds.
		if _, err := db.Pool.Exec(ctx, `
INSERT INTO billing.ledger (message_id, segment_index, tenant_id, short_code, state, billable, reported_at)
SELECT 'bench-' || g, 1, 'tenant-' || (g % 7), (36101 + g % 22)::text,
       CASE WHEN g % 10 < 8 THEN 'delivered' WHEN g % 10 = 8 THEN 'failed' ELSE 'expired' END,
       g % 10 < 8,
       timestamptz '2026-10-31 23:00:00+00' + (g % 2592000) * interval '1 second'
FROM generate_series($1::bigint, $2::bigint) g`, lo, hi); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("loaded %d ledger rows in %s", rows, time.Since(start).Round(time.Second))
	// Ten statements updated each aggregate row ten times: what
	// autovacuum cleans up in production, done here at once.
	if _, err := db.Pool.Exec(ctx, `VACUUM ANALYZE billing.ledger_daily`); err != nil {
		b.Fatal(err)
	}
	// g % 10 < 8: the delivered ones.
	wantDelivered := int64(rows/10*8 + min(rows%10, 8))

	m := billing.Month{Year: 2026, Month: time.November}
	var inv billing.Invoice
	for b.Loop() {
		var err error
		if inv, err = billing.BuildInvoice(ctx, db.Pool, m); err != nil {
			b.Fatal(err)
		}
	}
	var delivered int64 = -1
	for _, l := range inv.Lines {
		if l.Kind == billing.LineDeliveredMT {
			delivered = l.Quantity
		}
	}
	if delivered != wantDelivered {
		b.Fatalf("invoice bills %d delivered SMS-MT, want %d", delivered, wantDelivered)
	}
	b.ReportMetric(float64(rows), "ledger_rows")
}
