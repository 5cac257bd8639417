package billing

import (
	"errors"
	"slices"
	"testing"
	"time"

	"pushsms.io/lib/fault"
)

func TestPlanOn(t *testing.T) {
	plans := []PartnerPlan{
		{ValidFrom: apiDay("2026-09-01"), SegmentPriceMillicents: 4500},
		{ValidFrom: apiDay("2026-10-15"), SegmentPriceMillicents: 3333},
		{ValidFrom: apiDay("2026-11-01"), Closed: true},
		{ValidFrom: apiDay("2027-01-01"), SegmentPriceMillicents: 5000},
	}
	tests := []struct {
		day   string
		price int64
		ok    bool
	}{
		{"2026-08-31", 0, false},
		{"2026-09-01", 4500, true},
		{"2026-10-14", 4500, true},
		{"2026-10-15", 3333, true},
		{"2026-10-31", 3333, true},
		{"2026-11-01", 0, false},
		{"2026-12-31", 0, false},
		{"2027-01-01", 5000, true},
	}
	for _, tt := range tests {
		p, ok := planOn(plans, apiDay(tt.day))
		if ok != tt.ok || p.SegmentPriceMillicents != tt.price {
			t.Errorf("%s: got %d %v, want %d %v", tt.day, p.SegmentPriceMillicents, ok, tt.price, tt.ok)
		}
	}
}

// The statements of three partners of October 2026, worked out by hand:
// a price change mid-month, days before the first plan, and a plan
// closed before the month.
func TestPartnerStatementRules(t *testing.T) {
	paris, err := time.LoadLocation(Zone)
	if err != nil {
		t.Fatal(err)
	}
	count := func(d, sc, tenant string, st State, n int64) DailyCount {
		x := apiDay(d)
		return DailyCount{Day: time.Date(x.Year, x.Month, x.Day, 0, 0, 0, 0, paris), ShortCode: sc, TenantID: tenant, State: st, Segments: n}
	}
	counts := []DailyCount{
		count("2026-10-01", "36101", "acme", Delivered, 203),
		count("2026-10-01", "36101", "acme", Failed, 50),
		count("2026-10-14", "36102", "acme", Delivered, 11),
		count("2026-10-15", "36102", "acme", Delivered, 1),
		count("2026-10-20", "36101", "acme", Delivered, 7),
		count("2026-10-20", "36101", "acme", Expired, 4),
		count("2026-10-05", "36101", "gamma", Delivered, 3),
		count("2026-10-12", "36101", "gamma", Delivered, 2),
		count("2026-10-12", "36101", "delta", Delivered, 9),
	}
	tests := []struct {
		tenant    string
		plans     []PartnerPlan
		want      []PartnerStatementLine
		delivered int64
		total     int64
	}{
		{
			tenant: "acme",
			plans: []PartnerPlan{
				{ValidFrom: apiDay("2026-09-01"), SegmentPriceMillicents: 4500, MonthlyFeeCents: 25000},
				{ValidFrom: apiDay("2026-10-15"), SegmentPriceMillicents: 3333, MonthlyFeeCents: 30000},
			},
			want: []PartnerStatementLine{
				// 203 × 0.045 = 9.135 EUR: 913.5 cents, half up.
				{Kind: StatementSegments, ShortCode: "36101", PlanFrom: apiDay("2026-09-01"), Quantity: 203, UnitMillicents: 4500, AmountCents: 914},
				// 7 × 0.03333 = 0.23331 EUR.
				{Kind: StatementSegments, ShortCode: "36101", PlanFrom: apiDay("2026-10-15"), Quantity: 7, UnitMillicents: 3333, AmountCents: 23},
				// 11 × 0.045 = 0.495 EUR: half up.
				{Kind: StatementSegments, ShortCode: "36102", PlanFrom: apiDay("2026-09-01"), Quantity: 11, UnitMillicents: 4500, AmountCents: 50},
				{Kind: StatementSegments, ShortCode: "36102", PlanFrom: apiDay("2026-10-15"), Quantity: 1, UnitMillicents: 3333, AmountCents: 3},
				// The version in force on the 1st.
				{Kind: StatementMonthlyFee, PlanFrom: apiDay("2026-09-01"), Quantity: 1, UnitMillicents: 25_000_000, AmountCents: 25000},
			},
			delivered: 222,
			total:     914 + 23 + 50 + 3 + 25000,
		},
		{
			tenant: "gamma",
			plans:  []PartnerPlan{{ValidFrom: apiDay("2026-10-10"), SegmentPriceMillicents: 1000, MonthlyFeeCents: 5000}},
			want: []PartnerStatementLine{
				{Kind: StatementSegments, ShortCode: "36101", PlanFrom: apiDay("2026-10-10"), Quantity: 2, UnitMillicents: 1000, AmountCents: 2},
				{Kind: StatementUnpriced, ShortCode: "36101", Quantity: 3},
				// A month begun is due in full.
				{Kind: StatementMonthlyFee, PlanFrom: apiDay("2026-10-10"), Quantity: 1, UnitMillicents: 5_000_000, AmountCents: 5000},
			},
			delivered: 5,
			total:     5002,
		},
		{
			tenant: "delta",
			plans: []PartnerPlan{
				{ValidFrom: apiDay("2026-08-01"), SegmentPriceMillicents: 2000, MonthlyFeeCents: 1000},
				{ValidFrom: apiDay("2026-10-01"), Closed: true},
			},
			want:      []PartnerStatementLine{{Kind: StatementUnpriced, ShortCode: "36101", Quantity: 9}},
			delivered: 9,
			total:     0,
		},
		{tenant: "nobody", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.tenant, func(t *testing.T) {
			st, err := partnerStatement(tt.tenant, octobre2026, tt.plans, counts, paris)
			if err != nil {
				t.Fatal(err)
			}
			for i := range st.Lines {
				st.Lines[i].Description = "" // prose, checked below
			}
			if !slices.Equal(st.Lines, tt.want) {
				t.Errorf("got lines\n%+v\nwant\n%+v", st.Lines, tt.want)
			}
			if st.DeliveredSegments != tt.delivered || st.TotalCents != tt.total {
				t.Errorf("got %d delivered, total %d cents; want %d, %d", st.DeliveredSegments, st.TotalCents, tt.delivered, tt.total)
			}
		})
	}
}

func TestPartnerPlanValidate(t *testing.T) {
	ok := PartnerPlan{TenantID: "acme", ValidFrom: apiDay("2026-10-01"), SegmentPriceMillicents: 4500, MonthlyFeeCents: 100}
	tests := []struct {
		name   string
		change func(*PartnerPlan)
		fields []string
	}{
		{"valid", func(*PartnerPlan) {}, nil},
		{"tenant", func(p *PartnerPlan) { p.TenantID = "Acme" }, []string{"tenant_id"}},
		{"tenant_dash_first", func(p *PartnerPlan) { p.TenantID = "-acme" }, []string{"tenant_id"}},
		{"no_day", func(p *PartnerPlan) { p.ValidFrom = Date{} }, []string{"valid_from"}},
		{"prices", func(p *PartnerPlan) { p.SegmentPriceMillicents, p.MonthlyFeeCents = -1, MaxMonthlyFeeCents+1 },
			[]string{"segment_price_millicents", "monthly_fee_cents"}},
		{"closed_with_price", func(p *PartnerPlan) { p.Closed = true }, []string{"closed"}},
		{"closed", func(p *PartnerPlan) { p.Closed, p.SegmentPriceMillicents, p.MonthlyFeeCents = true, 0, 0 }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ok
			tt.change(&p)
			err := p.Validate()
			var got []string
			var ie *fault.InvalidError
			if errors.As(err, &ie) {
				for _, v := range ie.Violations {
					got = append(got, v.Field)
				}
			} else if err != nil {
				t.Fatalf("got %v, want an InvalidError", err)
			}
			if !slices.Equal(got, tt.fields) {
				t.Errorf("got fields %v, want %v", got, tt.fields)
			}
		})
	}
}
