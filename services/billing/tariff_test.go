package billing_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"pushsms.io/lib/fault"
	"pushsms.io/lib/pgtest"
	"pushsms.io/services/billing"
)

// The default tariff is the offer's price list, line by line.
func TestDefaultTariff(t *testing.T) {
	d := billing.DefaultTariff()
	if d.Version != "ops-v2-2016-10" || d.ValidFrom.String() != "2016-10-01" || !d.ValidTo.IsZero() || d.Currency != "EUR" {
		t.Errorf("got version %q valid [%s, %s) %s, want ops-v2-2016-10 from 2016-10-01, open, EUR", d.Version, d.ValidFrom, d.ValidTo, d.Currency)
	}
	prices := []struct {
		name string
		p    billing.Price
		want int64 // millicents
	}{
		{"activation technical 280", d.OneTime.ActivationTechnical, 28_000_000},
		{"activation administrative 300", d.OneTime.ActivationAdministrative, 30_000_000},
		{"throughput change 150", d.OneTime.ThroughputChange, 15_000_000},
		{"other change 150", d.OneTime.OtherChange, 15_000_000},
		{"OAdC on/off 280", d.OneTime.OAdCChange, 28_000_000},
		{"green number on/off: not in the offer", d.OneTime.GreenNumberChange, 0},
		{"SMS-MT 0.030", d.PerMessage.DeliveredMT, 3_000},
		{"MSISDN 0.01", d.PerMessage.QualifiedMSISDN, 1_000},
		{"short codes 1-20: 150", d.Monthly.ShortCode[0].Price, 15_000_000},
		{"from the 21st: 500", d.Monthly.ShortCode[1].Price, 50_000_000},
		{"20 SMS/s: 800", d.Monthly.ThroughputOptions[0].Price, 80_000_000},
		{"50 SMS/s: 1600", d.Monthly.ThroughputOptions[1].Price, 160_000_000},
		{"100 SMS/s: 2500", d.Monthly.ThroughputOptions[2].Price, 250_000_000},
		{"150 SMS/s: 3000", d.Monthly.ThroughputOptions[3].Price, 300_000_000},
		{"OAdC option: 150", d.Monthly.OAdCOption, 15_000_000},
		{"green numbers 1-10: 150", d.Monthly.GreenNumber[0].Price, 15_000_000},
		{"green numbers after: 500", d.Monthly.GreenNumber[1].Price, 50_000_000},
		{"basic qualification: 200", d.Monthly.BasicQualification, 20_000_000},
	}
	for _, tt := range prices {
		got, err := tt.p.Millicents()
		if err != nil || got != tt.want {
			t.Errorf("%s: got %d millicents (%v), want %d", tt.name, got, err, tt.want)
		}
	}
	var rates []int
	for _, o := range d.Monthly.ThroughputOptions {
		rates = append(rates, o.Rate)
	}
	if !slices.Equal(rates, []int{20, 50, 100, 150}) || d.Monthly.StandardThroughput != 10 {
		t.Errorf("got standard %d, options %v; want 10 and 20, 50, 100, 150", d.Monthly.StandardThroughput, rates)
	}
	if d.Monthly.ShortCode[1].From != 21 || d.Monthly.GreenNumber[1].From != 11 {
		t.Errorf("got tiers from %d and %d, want 21 and 11", d.Monthly.ShortCode[1].From, d.Monthly.GreenNumber[1].From)
	}
	// The document round-trips.
	data, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	again, err := billing.ParseTariff(data)
	if err != nil {
		t.Fatal(err)
	}
	if again.Version != d.Version || again.Monthly.ShortCode[1] != d.Monthly.ShortCode[1] {
		t.Errorf("round trip: got %+v, want %+v", again, d)
	}
}

func TestPriceMillicents(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0.030", 3_000, true},
		{"0.01", 1_000, true},
		{"150", 15_000_000, true},
		{"1600.00", 160_000_000, true},
		{"0.00001", 1, true},
		{"0.0000100", 1, true}, // trailing zeros are not precision
		{"007", 700_000, true},
		{"999999999.99999", 99_999_999_999_999, true},
		{"0", 0, true},
		{"", 0, false},
		{".5", 0, false},
		{"5.", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"1e3", 0, false},
		{"1,5", 0, false},
		{" 1", 0, false},
		{"0.000001", 0, false}, // finer than a millicent
		{"1000000000", 0, false},
		{"1.2.3", 0, false},
	}
	for _, tt := range tests {
		got, err := billing.Price(tt.in).Millicents()
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("%q: got %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// violations returns the fields of a fault.Invalid error.
func violations(t *testing.T, err error) []string {
	t.Helper()
	var ie *fault.InvalidError
	if !errors.As(err, &ie) {
		t.Fatalf("got %v, want a fault.Invalid error", err)
	}
	var fields []string
	for _, v := range ie.Violations {
		fields = append(fields, v.Field)
	}
	return fields
}

func TestParseTariffErrors(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(d *billing.Tariff)
		fields []string
	}{
		{"no version", func(d *billing.Tariff) { d.Version = "" }, []string{"version"}},
		{"version with a space", func(d *billing.Tariff) { d.Version = "v 2" }, []string{"version"}},
		{"no valid_from", func(d *billing.Tariff) { d.ValidFrom = billing.Date{} }, []string{"valid_from"}},
		{"empty period", func(d *billing.Tariff) { d.ValidTo = d.ValidFrom }, []string{"valid_to"}},
		{"currency", func(d *billing.Tariff) { d.Currency = "USD" }, []string{"currency"}},
		{"bad price", func(d *billing.Tariff) { d.PerMessage.DeliveredMT = "0,030" }, []string{"per_message.delivered_mt"}},
		{"too fine a price", func(d *billing.Tariff) { d.OneTime.OtherChange = "0.000001" }, []string{"one_time.other_change"}},
		{"first tier not 1", func(d *billing.Tariff) { d.Monthly.ShortCode[0].From = 2 }, []string{"monthly.short_code[0].from"}},
		{"tiers out of order", func(d *billing.Tariff) { d.Monthly.GreenNumber[1].From = 1 }, []string{"monthly.green_number[1].from"}},
		{"no tiers", func(d *billing.Tariff) { d.Monthly.ShortCode = nil }, []string{"monthly.short_code"}},
		{"option at the standard", func(d *billing.Tariff) { d.Monthly.ThroughputOptions[0].Rate = 10 }, []string{"monthly.throughput_options[0].rate"}},
		{"options out of order", func(d *billing.Tariff) { d.Monthly.ThroughputOptions[2].Rate = 50 }, []string{"monthly.throughput_options[2].rate"}},
		{"no standard", func(d *billing.Tariff) { d.Monthly.StandardThroughput = 0 }, []string{"monthly.standard_throughput"}},
		{"several at once", func(d *billing.Tariff) { d.Currency, d.Monthly.OAdCOption = "", "x" }, []string{"currency", "monthly.oadc_option"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := billing.DefaultTariff()
			d.Monthly.ShortCode = slices.Clone(d.Monthly.ShortCode)
			d.Monthly.GreenNumber = slices.Clone(d.Monthly.GreenNumber)
			d.Monthly.ThroughputOptions = slices.Clone(d.Monthly.ThroughputOptions)
			tt.edit(&d)
			data, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			_, err = billing.ParseTariff(data)
			got := violations(t, err)
			for _, f := range tt.fields {
				if !slices.Contains(got, f) {
					t.Errorf("got fields %v (%v), want %s among them", got, err, f)
				}
			}
		})
	}
	for _, doc := range []string{`{"version": "x", "surprise": 1}`, `{} {}`, `[`, `{"valid_from": "2026-13-01"}`} {
		if _, err := billing.ParseTariff([]byte(doc)); !fault.IsPermanent(err) {
			t.Errorf("%s: got %v, want a fault.Invalid error", doc, err)
		}
	}
}

func tariffFrom(t *testing.T, version, from, to string) billing.Tariff {
	t.Helper()
	d := billing.DefaultTariff()
	d.Version, d.ValidFrom, d.ValidTo = version, day(t, from), billing.Date{}
	if to != "" {
		d.ValidTo = day(t, to)
	}
	return d
}

// Versions never overlap; a new one closes the open one; the month's
// tariff is the one of its first day.
func TestTariffVersions(t *testing.T) {
	db := pgtest.New(t, pgtest.Migrated(billing.Schema, billing.Migrations()))
	ctx := context.Background()

	// Nothing stored: the embedded default, from October 2016 only.
	got, err := billing.TariffFor(ctx, db.Pool, billing.Month{Year: 2026, Month: time.November})
	if err != nil || got.Version != "ops-v2-2016-10" {
		t.Errorf("nothing stored: got %q, %v; want the default", got.Version, err)
	}
	if _, err := billing.TariffOn(ctx, db.Pool, day(t, "2016-09-30")); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("before the default: got %v, want not found", err)
	}

	v1 := tariffFrom(t, "v1", "2016-10-01", "")
	v2 := tariffFrom(t, "v2", "2026-11-15", "") // mid-month: from December
	v2.PerMessage.DeliveredMT = "0.028"
	for _, v := range []billing.Tariff{v1, v2} {
		if err := billing.PutTariff(ctx, db.Pool, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := billing.PutTariff(ctx, db.Pool, v1); !errors.Is(err, fault.ErrExists) {
		t.Errorf("v1 again: got %v, want already exists", err)
	}
	// An overlap that is not "the open one ends where the new one starts".
	v0 := tariffFrom(t, "v0", "2020-01-01", "2021-01-01")
	if err := billing.PutTariff(ctx, db.Pool, v0); !slices.Contains(violations(t, err), "valid_from") {
		t.Errorf("overlap: got %v, want valid_from refused", err)
	}
	bad := tariffFrom(t, "bad", "2026-12-01", "")
	bad.Currency = "GBP"
	if err := billing.PutTariff(ctx, db.Pool, bad); !slices.Contains(violations(t, err), "currency") {
		t.Errorf("invalid: got %v, want currency refused", err)
	}

	tests := []struct {
		on, want string
	}{
		{"2016-10-01", "v1"},
		{"2026-11-14", "v1"},
		{"2026-11-15", "v2"},
		{"2030-01-01", "v2"},
	}
	for _, tt := range tests {
		got, err := billing.TariffOn(ctx, db.Pool, day(t, tt.on))
		if err != nil || got.Version != tt.want {
			t.Errorf("on %s: got %q, %v; want %s", tt.on, got.Version, err, tt.want)
		}
	}
	for month, want := range map[time.Month]string{time.November: "v1", time.December: "v2"} {
		got, err := billing.TariffFor(ctx, db.Pool, billing.Month{Year: 2026, Month: month})
		if err != nil || got.Version != want {
			t.Errorf("invoice of %s 2026: got %q, %v; want %s", month, got.Version, err, want)
		}
	}
	// A gap after stored versions is not filled with the default.
	v3 := tariffFrom(t, "v3", "2027-01-01", "2027-02-01")
	if err := billing.PutTariff(ctx, db.Pool, v3); err != nil {
		t.Fatal(err)
	}
	if got, err := billing.TariffOn(ctx, db.Pool, day(t, "2027-02-01")); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("after the last version: got %q, %v; want not found", got.Version, err)
	}
	if got, err := billing.TariffOn(ctx, db.Pool, day(t, "2027-01-31")); err != nil || got.Version != "v3" {
		t.Errorf("on 2027-01-31: got %q, %v; want v3", got.Version, err)
	}
	all, err := billing.Tariffs(ctx, db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[0].Version != "v1" || all[0].ValidTo.String() != "2026-11-15" || all[1].ValidTo.String() != "2027-01-01" || all[2].Version != "v3" {
		t.Errorf("got %+v, want v1 closed at 2026-11-15, v2 at 2027-01-01, then v3", all)
	}
	// The December invoice prices SMS-MT with v2.
	traffic(t, db.Pool, "36123", billing.Delivered, time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC), 10)
	inv, err := billing.BuildInvoice(ctx, db.Pool, billing.Month{Year: 2026, Month: time.December})
	if err != nil {
		t.Fatal(err)
	}
	if inv.TariffVersion != "v2" || len(inv.Lines) != 1 || inv.Lines[0].UnitMillicents != 2_800 || inv.TotalCents != 28 {
		t.Errorf("got %+v, want v2: 10 × 0.028 = 0.28", inv)
	}
}

// Each line is rounded once, half up, to the cent.
func TestInvoiceRounding(t *testing.T) {
	db := pgtest.New(t, pgtest.Migrated(billing.Schema, billing.Migrations()))
	ctx := context.Background()
	v := tariffFrom(t, "fine", "2026-01-01", "")
	v.PerMessage.DeliveredMT = "0.0125"
	v.PerMessage.QualifiedMSISDN = "0.00333"
	if err := billing.PutTariff(ctx, db.Pool, v); err != nil {
		t.Fatal(err)
	}
	c := catalog{t, db.Pool}
	c.qual("ACME SAS", billing.QualificationSubscribe, "2026-01-01")
	tests := []struct {
		month     time.Month
		mts, msis int64
		mtCents   int64 // mts × 1.25 cents, half up
		msisCents int64 // msis × 0.333 cents, half up
	}{
		{time.January, 1, 1, 1, 0},    // 1.25 → 1; 0.333 → 0
		{time.February, 2, 3, 3, 1},   // 2.5 → 3 (half up); 0.999 → 1
		{time.March, 3, 1500, 4, 500}, // 3.75 → 4; 499.5 → 500 (half up)
		{time.April, 6, 1499, 8, 499}, // 7.5 → 8; 499.167 → 499
		{time.May, 1000, 2, 1250, 1},  // 1 250 exactly; 0.666 → 1
	}
	for _, tt := range tests {
		m := billing.Month{Year: 2026, Month: tt.month}
		traffic(t, db.Pool, "36123", billing.Delivered, time.Date(2026, tt.month, 10, 10, 0, 0, 0, time.UTC), int(tt.mts))
		c.qualified("ACME SAS", m.String(), tt.msis)
		inv, err := billing.BuildInvoice(ctx, db.Pool, m)
		if err != nil {
			t.Fatal(err)
		}
		var mt, msis int64 = -1, -1
		for _, l := range inv.Lines {
			switch l.Kind {
			case billing.LineDeliveredMT:
				mt = l.AmountCents
			case billing.LineQualifiedMSISDN:
				msis = l.AmountCents
			}
		}
		// 200.00 of subscription, plus the two lines.
		if mt != tt.mtCents || msis != tt.msisCents || inv.TotalCents != 20000+tt.mtCents+tt.msisCents {
			t.Errorf("%s: got MT %d, MSISDN %d, total %d cents; want %d, %d, %d", m, mt, msis, inv.TotalCents, tt.mtCents, tt.msisCents, 20000+tt.mtCents+tt.msisCents)
		}
	}
}

func TestBuildInvoiceRefusesABadMonth(t *testing.T) {
	db := pgtest.New(t, pgtest.Migrated(billing.Schema, billing.Migrations()))
	for _, m := range []billing.Month{{}, {Year: 2026, Month: 13}, {Year: 1999, Month: 1}} {
		if _, err := billing.BuildInvoice(context.Background(), db.Pool, m); !slices.Contains(violations(t, err), "month") {
			t.Errorf("%v: got %v, want month refused", m, err)
		}
	}
	if _, err := billing.BuildInvoice(context.Background(), db.Pool, billing.Month{Year: 2016, Month: time.September}); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("before any tariff: got %v, want not found", err)
	}
}

func TestParseMonthAndDate(t *testing.T) {
	m, err := billing.ParseMonth("2026-11")
	if err != nil || m != (billing.Month{Year: 2026, Month: time.November}) || m.First().String() != "2026-11-01" || m.Last().String() != "2026-11-30" {
		t.Errorf("got %v %v", m, err)
	}
	if m := (billing.Month{Year: 2026, Month: time.December}); m.Next().String() != "2027-01" || m.Last().String() != "2026-12-31" {
		t.Errorf("December: next %s last %s", m.Next(), m.Last())
	}
	if m := (billing.Month{Year: 2028, Month: time.February}); m.Last().String() != "2028-02-29" {
		t.Errorf("February 2028 ends %s, want the 29th", m.Last())
	}
	for _, s := range []string{"2026-13", "2026-1", "26-11", "2026-11-01", ""} {
		if _, err := billing.ParseMonth(s); err == nil {
			t.Errorf("ParseMonth(%q): got nil error", s)
		}
	}
	for _, s := range []string{"2026-02-30", "2026-11", "x"} {
		if _, err := billing.ParseDate(s); err == nil {
			t.Errorf("ParseDate(%q): got nil error", s)
		}
	}
	var got struct {
		M billing.Month `json:"m"`
		D billing.Date  `json:"d"`
	}
	if err := json.Unmarshal([]byte(`{"m":"2026-11","d":"2026-11-05"}`), &got); err != nil || got.M.String() != "2026-11" || got.D.String() != "2026-11-05" {
		t.Errorf("JSON: got %+v, %v", got, err)
	}
	if !strings.Contains(string(must(json.Marshal(got))), `"m":"2026-11","d":"2026-11-05"`) {
		t.Errorf("JSON: got %s", must(json.Marshal(got)))
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// FuzzParseTariff: a document is refused with fault.Invalid, or accepted
// and then every price is exact and it round-trips.
func FuzzParseTariff(f *testing.F) {
	f.Add(billing.DefaultTariffJSON())
	f.Add([]byte(`{"version":"v","valid_from":"2026-01-01","currency":"EUR"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := billing.ParseTariff(data)
		if err != nil {
			if !fault.IsPermanent(err) {
				t.Fatalf("got %v, want a fault.Invalid error", err)
			}
			return
		}
		for _, p := range []billing.Price{tr.PerMessage.DeliveredMT, tr.OneTime.OtherChange, tr.Monthly.OAdCOption} {
			if mc, err := p.Millicents(); err != nil || mc < 0 {
				t.Fatalf("accepted price %q: %d, %v", p, mc, err)
			}
		}
		again, err := json.Marshal(tr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := billing.ParseTariff(again); err != nil {
			t.Fatalf("round trip of an accepted document: %v", err)
		}
	})
}

func FuzzPriceMillicents(f *testing.F) {
	for _, s := range []string{"0.030", "150", "0.00001", "999999999.99999", "1e3", "-1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mc, err := billing.Price(s).Millicents()
		if err != nil {
			return
		}
		if mc < 0 || mc > 99_999_999_999_999 {
			t.Fatalf("%q: %d millicents out of range", s, mc)
		}
		// Exact: the formatted value reads back the same.
		if back, err := billing.Price(billing.FormatMillicents(mc)).Millicents(); err != nil || back != mc {
			t.Fatalf("%q: %d millicents, formatted %q, read back %d, %v", s, mc, billing.FormatMillicents(mc), back, err)
		}
	})
}

// A tariff that no longer prices an option still subscribed is an invoice
// refused, not a line at zero.
func TestInvoiceRefusesAnUnpricedOption(t *testing.T) {
	db := pgtest.New(t, pgtest.Migrated(billing.Schema, billing.Migrations()))
	ctx := context.Background()
	c := catalog{t, db.Pool}
	c.ev("36123", billing.EventActivation, "2026-10-01", 150)
	v := tariffFrom(t, "no-150", "2026-12-01", "")
	v.Monthly.ThroughputOptions = v.Monthly.ThroughputOptions[:3]
	if err := billing.PutTariff(ctx, db.Pool, v); err != nil {
		t.Fatal(err)
	}
	if _, err := billing.BuildInvoice(ctx, db.Pool, billing.Month{Year: 2026, Month: time.November}); err != nil {
		t.Errorf("November, default tariff: %v", err)
	}
	_, err := billing.BuildInvoice(ctx, db.Pool, billing.Month{Year: 2026, Month: time.December})
	if err == nil || !strings.Contains(err.Error(), "150 SMS/s") {
		t.Errorf("December: got %v, want the 150 SMS/s option refused", err)
	}
}
