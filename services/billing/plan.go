package billing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"pushsms.io/lib/fault"
)

// Bounds of a plan: well above any real price, low enough that a month's
// amounts cannot overflow int64 cents.
const (
	// MaxSegmentPriceMillicents is 10 EUR a segment.
	MaxSegmentPriceMillicents = 1_000_000
	// MaxMonthlyFeeCents is 1,000,000 EUR a month.
	MaxMonthlyFeeCents = 100_000_000
	maxPlanNote        = 256
)

// PartnerPlan is one version of a partner's price plan, in force from
// ValidFrom (a Europe/Paris day) until the next version's ValidFrom.
type PartnerPlan struct {
	TenantID  string
	ValidFrom Date
	// SegmentPriceMillicents is the price of one delivered segment in
	// thousandths of a cent (0.045 EUR is 4500).
	SegmentPriceMillicents int64
	// MonthlyFeeCents is due for every month in which the plan is in
	// force on at least one day.
	MonthlyFeeCents int64
	// Closed ends the plan from ValidFrom: nothing is charged after it.
	Closed    bool
	Note      string
	CreatedAt time.Time
}

// Validate checks a plan before it is stored; fields are named as in the
// API.
func (p PartnerPlan) Validate() error {
	var errs []error
	if !validTenantText(p.TenantID) {
		errs = append(errs, fault.Invalidf("tenant_id", "want 1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit"))
	}
	if p.ValidFrom.IsZero() {
		errs = append(errs, fault.Invalidf("valid_from", "required"))
	} else if p.ValidFrom.Year < 2000 || p.ValidFrom.Year > 2999 {
		errs = append(errs, fault.Invalidf("valid_from", "%s: not a plausible day", p.ValidFrom))
	}
	if p.SegmentPriceMillicents < 0 || p.SegmentPriceMillicents > MaxSegmentPriceMillicents {
		errs = append(errs, fault.Invalidf("segment_price_millicents", "want 0 to %d", MaxSegmentPriceMillicents))
	}
	if p.MonthlyFeeCents < 0 || p.MonthlyFeeCents > MaxMonthlyFeeCents {
		errs = append(errs, fault.Invalidf("monthly_fee_cents", "want 0 to %d", MaxMonthlyFeeCents))
	}
	if p.Closed && (p.SegmentPriceMillicents != 0 || p.MonthlyFeeCents != 0) {
		errs = append(errs, fault.Invalidf("closed", "a closing version has no price"))
	}
	if len(p.Note) > maxPlanNote {
		errs = append(errs, fault.Invalidf("note", "longer than %d bytes", maxPlanNote))
	}
	return fault.Join(errs...)
}

// validTenantText is the partner id rule of ingest.
func validTenantText(s string) bool {
	if len(s) < 1 || len(s) > 63 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// PutPartnerPlan stores a new version of a partner's plan. Versions are
// never changed once stored, so that a statement can always be made again
// as it was sent: a second version on the same day is refused
// (fault.ErrExists); to correct a price, add a version from a later day.
func PutPartnerPlan(ctx context.Context, db Querier, p PartnerPlan) (PartnerPlan, error) {
	if err := p.Validate(); err != nil {
		return PartnerPlan{}, err
	}
	err := db.QueryRow(ctx, `
		INSERT INTO billing.partner_plans (tenant_id, valid_from, segment_price_millicents, monthly_fee_cents, closed, note)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING created_at`,
		p.TenantID, p.ValidFrom.Time(), p.SegmentPriceMillicents, p.MonthlyFeeCents, p.Closed, p.Note).Scan(&p.CreatedAt)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return PartnerPlan{}, fmt.Errorf("plan of %s from %s: %w", p.TenantID, p.ValidFrom, fault.ErrExists)
	}
	if err != nil {
		return PartnerPlan{}, fmt.Errorf("plan of %s: %w", p.TenantID, err)
	}
	return p, nil
}

// ListPartnerPlans returns the versions of a partner's plan by ValidFrom,
// or of every partner (by partner) when tenantID is empty.
func ListPartnerPlans(ctx context.Context, q Querier, tenantID string) ([]PartnerPlan, error) {
	rows, err := q.Query(ctx, `
		SELECT tenant_id, valid_from, segment_price_millicents, monthly_fee_cents, closed, note, created_at
		FROM billing.partner_plans WHERE $1 = '' OR tenant_id = $1 ORDER BY tenant_id, valid_from`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("plans of %q: %w", tenantID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (PartnerPlan, error) {
		var (
			p    PartnerPlan
			from time.Time
		)
		err := row.Scan(&p.TenantID, &from, &p.SegmentPriceMillicents, &p.MonthlyFeeCents, &p.Closed, &p.Note, &p.CreatedAt)
		p.ValidFrom = DateOf(from)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("plans of %q: %w", tenantID, err)
	}
	return out, nil
}

// planOn returns the version in force on day (versions by ValidFrom), and
// false when none is, or the one in force closes the plan.
func planOn(plans []PartnerPlan, day Date) (PartnerPlan, bool) {
	var (
		cur PartnerPlan
		ok  bool
	)
	for _, p := range plans {
		if day.Before(p.ValidFrom) {
			break
		}
		cur, ok = p, true
	}
	if !ok || cur.Closed {
		return PartnerPlan{}, false
	}
	return cur, true
}
