package billing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"pushsms.io/lib/fault"
)

// Kinds of partner statement lines.
const (
	// StatementSegments is the delivered segments of a short code charged
	// at one plan version's price.
	StatementSegments = "segments"
	// StatementUnpriced is the delivered segments of a short code on days
	// without a plan in force: listed at zero so that they are seen, not
	// silently dropped.
	StatementUnpriced = "unpriced_segments"
	// StatementMonthlyFee is the plan's monthly fee.
	StatementMonthlyFee = "monthly_fee"
)

// PartnerStatementLine is one itemised line of a partner's statement.
type PartnerStatementLine struct {
	Kind        string
	ShortCode   string
	Description string
	// PlanFrom is the ValidFrom of the plan version priced; zero for
	// unpriced segments.
	PlanFrom       Date
	Quantity       int64
	UnitMillicents int64
	AmountCents    int64
}

// PartnerStatement is what a partner owes for a month.
type PartnerStatement struct {
	TenantID string
	Month    Month
	Lines    []PartnerStatementLine
	// DeliveredSegments is every delivered segment of the month, priced
	// or not.
	DeliveredSegments int64
	TotalCents        int64
}

// BuildPartnerStatement computes a partner's statement for month m from
// its plan versions and the delivered segments of the ledger's daily
// counts. Rules (docs/billing.md):
//   - each delivered segment is priced at the plan version in force on
//     its Europe/Paris day; one line per short code and version, whose
//     amount is quantity × unit rounded half up to the cent, once per line;
//   - segments of days without a plan in force get a line at zero;
//   - a month begun is due: the monthly fee is that of the first version
//     in force in the month, once, if any version is in force on a day of it;
//   - the total is the sum of the lines' amounts.
func BuildPartnerStatement(ctx context.Context, q Querier, loc *time.Location, tenantID string, m Month) (PartnerStatement, error) {
	if !validTenantText(tenantID) {
		return PartnerStatement{}, fault.Invalidf("tenant_id", "want 1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit")
	}
	q, done, err := readSnapshot(ctx, q)
	if err != nil {
		return PartnerStatement{}, fmt.Errorf("statement of %s for %s: %w", tenantID, m, err)
	}
	defer done()
	plans, err := ListPartnerPlans(ctx, q, tenantID)
	if err != nil {
		return PartnerStatement{}, err
	}
	from, to := monthBounds(m, loc)
	counts, err := DailyCounts(ctx, q, from, to)
	if err != nil {
		return PartnerStatement{}, fmt.Errorf("statement of %s for %s: %w", tenantID, m, err)
	}
	return partnerStatement(tenantID, m, plans, counts, loc)
}

// partnerStatement applies the rules of BuildPartnerStatement; plans are
// the partner's versions by ValidFrom.
func partnerStatement(tenantID string, m Month, plans []PartnerPlan, counts []DailyCount, loc *time.Location) (PartnerStatement, error) {
	st := PartnerStatement{TenantID: tenantID, Month: m}
	type key struct {
		sc       string
		planFrom Date
		priced   bool
	}
	sums := map[key]*PartnerStatementLine{}
	for _, c := range counts {
		if c.TenantID != tenantID || c.State != Delivered || c.Segments == 0 {
			continue
		}
		st.DeliveredSegments += c.Segments
		p, ok := planOn(plans, civilDayOf(c.Day, loc))
		k := key{sc: c.ShortCode, planFrom: p.ValidFrom, priced: ok}
		l := sums[k]
		if l == nil {
			l = &PartnerStatementLine{Kind: StatementUnpriced, ShortCode: c.ShortCode, PlanFrom: p.ValidFrom, UnitMillicents: p.SegmentPriceMillicents}
			if ok {
				l.Kind = StatementSegments
				l.Description = fmt.Sprintf("Delivered segments from %s at the plan of %s", c.ShortCode, p.ValidFrom)
			} else {
				l.Description = fmt.Sprintf("Delivered segments from %s on days without a plan", c.ShortCode)
			}
			sums[k] = l
		}
		l.Quantity += c.Segments
	}
	for _, l := range sums {
		amount, err := amountCents(l.Quantity, l.UnitMillicents)
		if err != nil {
			return PartnerStatement{}, fmt.Errorf("statement of %s for %s: %s: %w", tenantID, m, l.ShortCode, err)
		}
		l.AmountCents = amount
		st.Lines = append(st.Lines, *l)
	}
	slices.SortFunc(st.Lines, func(a, b PartnerStatementLine) int {
		if c := strings.Compare(a.ShortCode, b.ShortCode); c != 0 {
			return c
		}
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return a.PlanFrom.Compare(b.PlanFrom)
	})
	for d := m.First(); m.Contains(d); d = d.AddDays(1) {
		p, ok := planOn(plans, d)
		if !ok {
			continue
		}
		if p.MonthlyFeeCents > 0 {
			st.Lines = append(st.Lines, PartnerStatementLine{
				Kind:           StatementMonthlyFee,
				Description:    fmt.Sprintf("Monthly fee %s, plan of %s", m, p.ValidFrom),
				PlanFrom:       p.ValidFrom,
				Quantity:       1,
				UnitMillicents: p.MonthlyFeeCents * 1000,
				AmountCents:    p.MonthlyFeeCents,
			})
		}
		break
	}
	for _, l := range st.Lines {
		st.TotalCents += l.AmountCents
	}
	return st, nil
}

// readSnapshot reads in one read-only REPEATABLE READ transaction when q
// is a pool, so that plans, counts and catalog agree with each other
// whatever is recorded meanwhile; a transaction is used as it is.
func readSnapshot(ctx context.Context, q Querier) (Querier, func(), error) {
	s, ok := q.(snapshotter)
	if !ok {
		return q, func() {}, nil
	}
	tx, err := s.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, nil, errors.Join(err, fault.ErrUnavailable)
	}
	return tx, func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }, nil
}
