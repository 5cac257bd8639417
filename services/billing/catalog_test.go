package billing_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"pushsms.io/lib/fault"
	"pushsms.io/lib/pgtest"
	"pushsms.io/services/billing"
)

// A short code's state on any day follows from its events.
func TestShortCodeStateFollowsItsHistory(t *testing.T) {
	db := pgtest.New(t, pgtest.Migrated(billing.Schema, billing.Migrations()))
	ctx := context.Background()
	c := catalog{t, db.Pool}
	c.ev("36123", billing.EventActivation, "2026-01-05", 0)
	c.ev("36123", billing.EventThroughputChange, "2026-03-01", 50)
	c.ev("36123", billing.EventOAdCOn, "2026-03-01", 0)
	c.ev("36123", billing.EventGreenOn, "2026-04-10", 0)
	c.ev("36123", billing.EventOAdCOff, "2026-05-01", 0)
	c.ev("36123", billing.EventClosure, "2026-06-30", 0)
	c.ev("36123", billing.EventActivation, "2026-09-01", 20) // the number is given back, with 20 SMS/s

	type st struct {
		active      bool
		activatedOn string
		throughput  int
		oadc, green bool
	}
	tests := []struct {
		on   string
		want st
	}{
		{"2026-01-05", st{true, "2026-01-05", 10, false, false}},
		{"2026-02-28", st{true, "2026-01-05", 10, false, false}},
		{"2026-03-01", st{true, "2026-01-05", 50, true, false}},
		{"2026-04-10", st{true, "2026-01-05", 50, true, true}},
		{"2026-05-01", st{true, "2026-01-05", 50, false, true}},
		{"2026-06-29", st{true, "2026-01-05", 50, false, true}},
		{"2026-06-30", st{false, "2026-01-05", 0, false, false}}, // closed from that day
		{"2026-09-01", st{true, "2026-09-01", 20, false, false}},
	}
	for _, tt := range tests {
		s, err := billing.ShortCodeOn(ctx, db.Pool, "36123", day(t, tt.on))
		if err != nil {
			t.Fatal(err)
		}
		got := st{s.Active, s.ActivatedOn.String(), s.Throughput, s.OAdC, s.Green}
		if got != tt.want {
			t.Errorf("on %s: got %+v, want %+v", tt.on, got, tt.want)
		}
	}
	if s, err := billing.ShortCodeOn(ctx, db.Pool, "36123", day(t, "2026-07-01")); err != nil || s.ClosedOn.String() != "2026-06-30" {
		t.Errorf("closed: got %+v, %v; want closed on 2026-06-30", s, err)
	}
	if _, err := billing.ShortCodeOn(ctx, db.Pool, "36123", day(t, "2026-01-04")); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("before its history: got %v, want not found", err)
	}
	h, err := billing.ShortCodeHistory(ctx, db.Pool, "36123")
	if err != nil || len(h) != 7 || h[0].Kind != billing.EventActivation || h[6].Throughput != 20 || h[0].ID == 0 || h[0].RecordedAt.IsZero() {
		t.Errorf("history: got %+v, %v", h, err)
	}
	all, err := billing.CatalogOn(ctx, db.Pool, day(t, "2026-03-15"))
	if err != nil || len(all) != 1 || !all[0].OAdC {
		t.Errorf("catalog: got %+v, %v", all, err)
	}
}

// Every event that cannot happen is refused, naming the field at fault,
// and nothing is recorded.
func TestShortCodeEventValidation(t *testing.T) {
	db := pgtest.New(t, pgtest.Migrated(billing.Schema, billing.Migrations()))
	ctx := context.Background()
	c := catalog{t, db.Pool}
	c.ev("36123", billing.EventActivation, "2026-01-05", 0)
	c.ev("36123", billing.EventOAdCOn, "2026-03-01", 0)
	c.ev("36124", billing.EventActivation, "2026-01-05", 0)
	c.ev("36124", billing.EventClosure, "2026-02-01", 0)

	tests := []struct {
		name  string
		ev    billing.ShortCodeEvent
		field string
	}{
		{"short code of 4 digits", billing.ShortCodeEvent{ShortCode: "3612", Kind: billing.EventActivation}, "short_code"},
		{"unknown kind", billing.ShortCodeEvent{ShortCode: "36123", Kind: "upgrade"}, "kind"},
		{"no day", billing.ShortCodeEvent{ShortCode: "36125", Kind: billing.EventActivation}, "effective"},
		{"throughput change without a rate", billing.ShortCodeEvent{ShortCode: "36123", Kind: billing.EventThroughputChange}, "throughput"},
		{"rate the tariff does not offer", billing.ShortCodeEvent{ShortCode: "36123", Kind: billing.EventThroughputChange, Throughput: 30}, "throughput"},
		{"activation at a rate not offered", billing.ShortCodeEvent{ShortCode: "36125", Kind: billing.EventActivation, Throughput: 200}, "throughput"},
		{"same rate", billing.ShortCodeEvent{ShortCode: "36123", Kind: billing.EventThroughputChange, Throughput: 10}, "throughput"},
		{"rate on an OAdC event", billing.ShortCodeEvent{ShortCode: "36123", Kind: billing.EventOAdCOff, Throughput: 20}, "throughput"},
		{"OAdC on twice", billing.ShortCodeEvent{ShortCode: "36123", Kind: billing.EventOAdCOn}, "kind"},
		{"green off while off", billing.ShortCodeEvent{ShortCode: "36123", Kind: billing.EventGreenOff}, "kind"},
		{"activated twice", billing.ShortCodeEvent{ShortCode: "36123", Kind: billing.EventActivation}, "kind"},
		{"before its activation", billing.ShortCodeEvent{ShortCode: "36123", Kind: billing.EventOtherChange, Effective: day(t, "2026-01-04")}, "effective"},
		{"never activated", billing.ShortCodeEvent{ShortCode: "36125", Kind: billing.EventOAdCOn}, "effective"},
		{"after its closure", billing.ShortCodeEvent{ShortCode: "36124", Kind: billing.EventOtherChange}, "effective"},
		{"closed twice", billing.ShortCodeEvent{ShortCode: "36124", Kind: billing.EventClosure}, "effective"},
		// Backdated before the recorded OAdC on: that one would repeat it.
		{"backdated against the history", billing.ShortCodeEvent{ShortCode: "36123", Kind: billing.EventOAdCOn, Effective: day(t, "2026-02-01")}, "effective"},
		{"id given", billing.ShortCodeEvent{ID: 7, ShortCode: "36123", Kind: billing.EventOtherChange}, "id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ev.Effective.IsZero() && tt.name != "no day" {
				tt.ev.Effective = day(t, "2026-04-01")
			}
			_, err := billing.RecordShortCodeEvent(ctx, db.Pool, tt.ev)
			if got := violations(t, err); !slices.Contains(got, tt.field) {
				t.Errorf("got fields %v (%v), want %s", got, err, tt.field)
			}
		})
	}
	for _, sc := range []string{"36123", "36124"} {
		h, err := billing.ShortCodeHistory(ctx, db.Pool, sc)
		if err != nil || len(h) != 2 {
			t.Errorf("%s: got %d events, %v; want the 2 recorded", sc, len(h), err)
		}
	}
	// A late event that fits the history is fine: an IP change in
	// February recorded in April.
	if _, err := billing.RecordShortCodeEvent(ctx, db.Pool, billing.ShortCodeEvent{ShortCode: "36123", Kind: billing.EventOtherChange, Effective: day(t, "2026-02-10"), Note: "IP change"}); err != nil {
		t.Errorf("late event: %v", err)
	}
}

// The history is evidence: the database itself refuses to change it.
func TestCatalogIsAppendOnly(t *testing.T) {
	db := pgtest.New(t, pgtest.Migrated(billing.Schema, billing.Migrations()))
	ctx := context.Background()
	c := catalog{t, db.Pool}
	c.ev("36123", billing.EventActivation, "2026-01-05", 0)
	c.qual("ACME SAS", billing.QualificationSubscribe, "2026-01-01")
	c.qualified("ACME SAS", "2026-01", 10)
	for _, sql := range []string{
		`UPDATE billing.short_code_events SET effective = '2026-02-01'`,
		`DELETE FROM billing.short_code_events`,
		`TRUNCATE billing.short_code_events`,
		`UPDATE billing.qualification_events SET kind = 'unsubscribe'`,
		`DELETE FROM billing.qualified_msisdns`,
	} {
		if _, err := db.Pool.Exec(ctx, sql); err == nil {
			t.Errorf("%s: accepted", sql)
		}
	}
	h, err := billing.ShortCodeHistory(ctx, db.Pool, "36123")
	if err != nil || len(h) != 1 || h[0].Effective.String() != "2026-01-05" {
		t.Errorf("got %+v, %v; want the activation unchanged", h, err)
	}
}

func TestQualificationValidation(t *testing.T) {
	db := pgtest.New(t, pgtest.Migrated(billing.Schema, billing.Migrations()))
	ctx := context.Background()
	c := catalog{t, db.Pool}
	c.qual("ACME SAS", billing.QualificationSubscribe, "2026-03-01")
	c.qual("ACME SAS", billing.QualificationUnsubscribe, "2026-06-01")
	c.qualified("ACME SAS", "2026-03", 40)

	events := []struct {
		name  string
		ev    billing.QualificationEvent
		field string
	}{
		{"no entity", billing.QualificationEvent{Kind: billing.QualificationSubscribe, Effective: day(t, "2026-07-01")}, "legal_entity"},
		{"unknown kind", billing.QualificationEvent{LegalEntity: "ACME SAS", Kind: "pause", Effective: day(t, "2026-07-01")}, "kind"},
		{"unsubscribed twice", billing.QualificationEvent{LegalEntity: "ACME SAS", Kind: billing.QualificationUnsubscribe, Effective: day(t, "2026-07-01")}, "kind"},
		{"subscribed twice", billing.QualificationEvent{LegalEntity: "ACME SAS", Kind: billing.QualificationSubscribe, Effective: day(t, "2026-04-01")}, "kind"},
		{"backdated against the history", billing.QualificationEvent{LegalEntity: "ACME SAS", Kind: billing.QualificationSubscribe, Effective: day(t, "2026-01-01")}, "effective"},
	}
	for _, tt := range events {
		_, err := billing.RecordQualificationEvent(ctx, db.Pool, tt.ev)
		if got := violations(t, err); !slices.Contains(got, tt.field) {
			t.Errorf("%s: got fields %v (%v), want %s", tt.name, got, err, tt.field)
		}
	}
	counts := []struct {
		name  string
		c     billing.QualifiedCount
		field string
	}{
		{"zero", billing.QualifiedCount{LegalEntity: "ACME SAS", Month: billing.Month{Year: 2026, Month: time.March}}, "msisdns"},
		{"not subscribed that month", billing.QualifiedCount{LegalEntity: "ACME SAS", Month: billing.Month{Year: 2026, Month: time.June}, MSISDNs: 5}, "month"},
		{"never subscribed", billing.QualifiedCount{LegalEntity: "Beta SARL", Month: billing.Month{Year: 2026, Month: time.March}, MSISDNs: 5}, "month"},
		{"below zero", billing.QualifiedCount{LegalEntity: "ACME SAS", Month: billing.Month{Year: 2026, Month: time.March}, MSISDNs: -41}, "msisdns"},
		{"no month", billing.QualifiedCount{LegalEntity: "ACME SAS", MSISDNs: 1}, "month"},
	}
	for _, tt := range counts {
		_, err := billing.RecordQualified(ctx, db.Pool, tt.c)
		if got := violations(t, err); !slices.Contains(got, tt.field) {
			t.Errorf("%s: got fields %v (%v), want %s", tt.name, got, err, tt.field)
		}
	}
	// May is the last month subscribed (off from 1 June).
	c.qualified("ACME SAS", "2026-05", 7)
	h, err := billing.QualificationHistory(ctx, db.Pool, "ACME SAS")
	if err != nil || len(h) != 2 {
		t.Errorf("got %+v, %v; want the 2 recorded", h, err)
	}
}

// What lasted less than a day was never in force: a throughput option
// taken and given back the same day bills the two changes, not the
// option. A short code closed before the month is not billed; one closed
// on the month's last day is.
func TestMonthlyFeesAtTheEdges(t *testing.T) {
	db := pgtest.New(t, pgtest.Migrated(billing.Schema, billing.Migrations()))
	ctx := context.Background()
	c := catalog{t, db.Pool}
	c.ev("36001", billing.EventActivation, "2026-10-01", 0)
	c.ev("36001", billing.EventThroughputChange, "2026-11-12", 100)
	c.ev("36001", billing.EventThroughputChange, "2026-11-12", 10)
	c.ev("36002", billing.EventActivation, "2026-10-01", 0)
	c.ev("36002", billing.EventClosure, "2026-11-01", 0) // not in service on any day of November
	c.ev("36003", billing.EventActivation, "2026-10-01", 0)
	c.ev("36003", billing.EventClosure, "2026-11-30", 0) // in service until the 29th
	c.ev("36004", billing.EventActivation, "2026-11-30", 0)
	c.ev("36004", billing.EventClosure, "2026-11-30", 0) // never in service for a day

	inv, err := billing.BuildInvoice(ctx, db.Pool, billing.Month{Year: 2026, Month: time.November})
	if err != nil {
		t.Fatal(err)
	}
	type line struct {
		kind, sc string
		cents    int64
	}
	want := []line{
		{billing.LineActivationTechnical, "36004", 28000},
		{billing.LineActivationAdministrative, "36004", 30000},
		{billing.LineThroughputChange, "36001", 15000},
		{billing.LineThroughputChange, "36001", 15000},
		{billing.LineOtherChange, "36002", 15000}, // closures
		{billing.LineOtherChange, "36003", 15000},
		{billing.LineOtherChange, "36004", 15000},
		{billing.LineShortCode, "36001", 15000},
		{billing.LineShortCode, "36003", 15000},
		{billing.LineDeliveredMT, "", 0},
	}
	var got []line
	for _, l := range inv.Lines {
		got = append(got, line{l.Kind, l.ShortCode, l.AmountCents})
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	// 580 + 300 + 450 + 300 = 1 630.00
	if inv.TotalCents != 163000 {
		t.Errorf("total %d, want 163000", inv.TotalCents)
	}
}

// A mistaken event is voided, not edited: it stops counting for the state
// and the fees, and the history keeps both rows.
func TestVoidShortCodeEvent(t *testing.T) {
	db := pgtest.New(t, pgtest.Migrated(billing.Schema, billing.Migrations()))
	ctx := context.Background()
	rec := func(sc string, kind billing.EventKind, on string) billing.ShortCodeEvent {
		t.Helper()
		e, err := billing.RecordShortCodeEvent(ctx, db.Pool, billing.ShortCodeEvent{ShortCode: sc, Kind: kind, Effective: day(t, on)})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	act := rec("36123", billing.EventActivation, "2026-01-05")
	oadc := rec("36123", billing.EventOAdCOn, "2026-03-01")
	ip := rec("36123", billing.EventOtherChange, "2026-11-10")
	wrong := rec("36124", billing.EventActivation, "2026-11-20") // was in service from 1 October

	// The OAdC option rests on the activation: void it first.
	if _, err := billing.VoidShortCodeEvent(ctx, db.Pool, act.ID, ""); !slices.Contains(violations(t, err), "id") {
		t.Errorf("void of the activation: got %v, want id refused", err)
	}
	for _, id := range []int64{oadc.ID, ip.ID, wrong.ID} {
		if _, err := billing.VoidShortCodeEvent(ctx, db.Pool, id, "recorded by mistake"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := billing.VoidShortCodeEvent(ctx, db.Pool, oadc.ID, ""); !slices.Contains(violations(t, err), "id") {
		t.Errorf("second void: got %v, want id refused", err)
	}
	if _, err := billing.VoidShortCodeEvent(ctx, db.Pool, 1_000_000, ""); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("void of no event: got %v, want not found", err)
	}
	rec("36124", billing.EventActivation, "2026-10-01")

	if s, err := billing.ShortCodeOn(ctx, db.Pool, "36123", day(t, "2026-03-15")); err != nil || s.OAdC {
		t.Errorf("got %+v, %v; want no OAdC option", s, err)
	}
	// The option can be recorded again, at its right day.
	rec("36123", billing.EventOAdCOn, "2026-04-01")
	h, err := billing.ShortCodeHistory(ctx, db.Pool, "36123")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []billing.EventKind
	for _, e := range h {
		kinds = append(kinds, e.Kind)
	}
	if want := []billing.EventKind{billing.EventActivation, billing.EventOAdCOn, billing.EventOtherChange, billing.EventVoid, billing.EventVoid, billing.EventOAdCOn}; !slices.Equal(kinds, want) {
		t.Errorf("history: got %v, want %v", kinds, want)
	}
	if h[3].Voids != oadc.ID || h[4].Voids != ip.ID {
		t.Errorf("voids name %d and %d, want %d and %d", h[3].Voids, h[4].Voids, oadc.ID, ip.ID)
	}

	// November: no IP-change fee, no activation fees for 36124; two short
	// codes, 36123 with its OAdC option: 2 × 150 + 150 = 450.00.
	inv, err := billing.BuildInvoice(ctx, db.Pool, billing.Month{Year: 2026, Month: time.November})
	if err != nil {
		t.Fatal(err)
	}
	var kindsBilled []string
	for _, l := range inv.Lines {
		kindsBilled = append(kindsBilled, l.Kind+" "+l.ShortCode)
	}
	want := []string{"short_code 36123", "short_code 36124", "oadc_option 36123", "delivered_mt "}
	if !slices.Equal(kindsBilled, want) || inv.TotalCents != 45000 {
		t.Errorf("got %v, total %d; want %v, 45000", kindsBilled, inv.TotalCents, want)
	}
}
