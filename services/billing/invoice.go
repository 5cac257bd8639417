package billing

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"pushsms.io/lib/fault"
)

// Kinds of invoice line, in the order an invoice lists them. The price
// list entry each bills is in docs/billing-invoice.md.
const (
	LineActivationTechnical      = "activation_technical"
	LineActivationAdministrative = "activation_administrative"
	LineThroughputChange         = "throughput_change"
	LineOAdCChange               = "oadc_change"
	LineGreenNumberChange        = "green_number_change"
	LineOtherChange              = "other_change"
	LineShortCode                = "short_code"
	LineThroughputOption         = "throughput_option"
	LineOAdCOption               = "oadc_option"
	LineGreenNumber              = "green_number"
	LineDeliveredMT              = "delivered_mt"
	LineBasicQualification       = "basic_qualification"
	LineQualifiedMSISDN          = "qualified_msisdn"
)

var lineOrder = []string{
	LineActivationTechnical, LineActivationAdministrative, LineThroughputChange, LineOAdCChange,
	LineGreenNumberChange, LineOtherChange, LineShortCode, LineThroughputOption, LineOAdCOption,
	LineGreenNumber, LineDeliveredMT, LineBasicQualification, LineQualifiedMSISDN,
}

// Invoice is the operator's invoice of a month, as the aggregator expects
// it: every line follows from the tariff, the catalog and the ledger.
type Invoice struct {
	Month Month `json:"month"`
	// TariffVersion is the tariff in force on the month's first day.
	TariffVersion string        `json:"tariff_version"`
	Currency      string        `json:"currency"`
	Lines         []InvoiceLine `json:"lines"`
	// TotalCents is the sum of the lines' amounts, excluding VAT.
	TotalCents int64 `json:"total_cents"`
}

// InvoiceLine is one item: Quantity × UnitMillicents, rounded once to the
// cent (half up) into AmountCents.
type InvoiceLine struct {
	Kind string `json:"kind"`
	// ShortCode is empty on the lines of all short codes together and
	// on those of a legal entity.
	ShortCode   string `json:"short_code,omitempty"`
	LegalEntity string `json:"legal_entity,omitempty"`
	// Date is the effective day of the catalog event of a one-time fee.
	Date        Date   `json:"date,omitzero"`
	Description string `json:"description"`
	Quantity    int64  `json:"quantity"`
	// UnitMillicents is the unit price in thousandths of a cent (10⁻⁵
	// EUR): the per-SMS-MT price, 0.030 EUR, is 3 000.
	UnitMillicents int64 `json:"unit_millicents"`
	AmountCents    int64 `json:"amount_cents"`
}

// amountCents is quantity × unit rounded half up to the cent: the only
// rounding of an invoice, once per line.
func amountCents(quantity, unitMillicents int64) (int64, error) {
	if quantity < 0 || unitMillicents < 0 {
		return 0, fmt.Errorf("amount of %d × %d millicents: negative", quantity, unitMillicents)
	}
	if unitMillicents != 0 && quantity > (math.MaxInt64-500)/unitMillicents {
		return 0, fmt.Errorf("amount of %d × %d millicents: overflows", quantity, unitMillicents)
	}
	return (quantity*unitMillicents + 500) / 1000, nil
}

// snapshotter opens a transaction with options: a pool does, a transaction
// does not (it already is one).
type snapshotter interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// BuildInvoice computes the operator's invoice of month m. Given a pool it
// reads everything in one read-only REPEATABLE READ transaction, so that
// the lines agree with each other whatever is recorded meanwhile; given a
// transaction it reads in that one.
//
// The rules (docs/billing-invoice.md): the tariff is the one in force on
// the month's first day; every monthly fee is for the whole calendar month
// in which the short code (or legal entity) had the subscription on at
// least one day; short codes rank by activation day (then number) for the
// tiers; the throughput option billed is the highest in force on a day of
// the month; one-time fees are those of the catalog events effective in the
// month; SMS-MT are the segments delivered on the month's Europe/Paris days.
func BuildInvoice(ctx context.Context, q Querier, m Month) (Invoice, error) {
	if m.Year < 2000 || m.Year > 2999 || m.Month < time.January || m.Month > time.December {
		return Invoice{}, fault.Invalidf("month", "%q: want YYYY-MM", m)
	}
	if s, ok := q.(snapshotter); ok {
		tx, err := s.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return Invoice{}, fmt.Errorf("invoice %s: %w", m, err)
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only: nothing to keep
		q = tx
	}
	inv, err := buildInvoice(ctx, q, m)
	if err != nil {
		return Invoice{}, fmt.Errorf("invoice %s: %w", m, err)
	}
	return inv, nil
}

func buildInvoice(ctx context.Context, q Querier, m Month) (Invoice, error) {
	t, err := TariffFor(ctx, q, m)
	if err != nil {
		return Invoice{}, err
	}
	p, err := t.prices()
	if err != nil {
		return Invoice{}, err
	}
	inv := Invoice{Month: m, TariffVersion: t.Version, Currency: t.Currency}
	var errs []error
	add := func(l InvoiceLine) {
		a, err := amountCents(l.Quantity, l.UnitMillicents)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s%s: %w", l.Kind, l.ShortCode, l.LegalEntity, err))
		}
		l.AmountCents = a
		inv.Lines = append(inv.Lines, l)
	}

	events, err := shortCodeEvents(ctx, q, "", m.Last())
	if err != nil {
		return Invoice{}, err
	}
	var billed []shortCodeMonth
	for sc, evs := range byShortCode(events) {
		u, ok, err := monthOf(sc, evs, m)
		if err != nil {
			return Invoice{}, err
		}
		if ok {
			billed = append(billed, u)
		}
		for _, e := range evs {
			if m.Contains(e.Effective) {
				oneTime(p, e, add)
			}
		}
	}
	if err := monthly(p, billed, add); err != nil {
		return Invoice{}, err
	}

	delivered, err := deliveredIn(ctx, q, m)
	if err != nil {
		return Invoice{}, err
	}
	add(InvoiceLine{Kind: LineDeliveredMT, Description: "SMS-MT delivered to the user, all short codes", Quantity: delivered, UnitMillicents: p.deliveredMT})

	qev, err := qualificationEvents(ctx, q, "", m.Last())
	if err != nil {
		return Invoice{}, err
	}
	for _, entity := range subscribedIn(qev, m) {
		add(InvoiceLine{Kind: LineBasicQualification, LegalEntity: entity, Description: "Basic qualification subscription (extranet, non-aliased mode)",
			Quantity: 1, UnitMillicents: p.basicQualification})
	}
	counts, err := qualifiedIn(ctx, q, m)
	if err != nil {
		return Invoice{}, err
	}
	for entity, n := range counts {
		if n > 0 {
			add(InvoiceLine{Kind: LineQualifiedMSISDN, LegalEntity: entity, Description: "MSISDNs qualified (basic qualification)",
				Quantity: n, UnitMillicents: p.qualifiedMSISDN})
		}
	}
	if len(errs) > 0 {
		return Invoice{}, errs[0]
	}

	slices.SortStableFunc(inv.Lines, compareLines(billed))
	for _, l := range inv.Lines {
		if inv.TotalCents > math.MaxInt64-l.AmountCents {
			return Invoice{}, fmt.Errorf("total overflows")
		}
		inv.TotalCents += l.AmountCents
	}
	return inv, nil
}

// oneTime adds the one-time fees of catalog event e.
func oneTime(p priceList, e ShortCodeEvent, add func(InvoiceLine)) {
	line := func(kind, what string, unit int64) {
		if unit == 0 {
			return // a fee the tariff does not charge is no line
		}
		add(InvoiceLine{Kind: kind, ShortCode: e.ShortCode, Date: e.Effective,
			Description: fmt.Sprintf("%s, short code %s, %s", what, e.ShortCode, e.Effective), Quantity: 1, UnitMillicents: unit})
	}
	switch e.Kind {
	case EventActivation:
		line(LineActivationTechnical, "Short-code activation (technical)", p.activationTech)
		line(LineActivationAdministrative, "Short-code activation (administrative)", p.activationAdm)
	case EventThroughputChange:
		line(LineThroughputChange, fmt.Sprintf("Throughput change to %d SMS/s", e.Throughput), p.throughputChange)
	case EventOAdCOn:
		line(LineOAdCChange, "OAdC-modification option activation", p.oadcChange)
	case EventOAdCOff:
		line(LineOAdCChange, "OAdC-modification option deactivation", p.oadcChange)
	case EventGreenOn:
		line(LineGreenNumberChange, "Green number / geo-presence option activation", p.greenChange)
	case EventGreenOff:
		line(LineGreenNumberChange, "Green number / geo-presence option deactivation", p.greenChange)
	case EventOtherChange:
		line(LineOtherChange, "Other change", p.otherChange)
	case EventClosure:
		line(LineOtherChange, "Closure", p.otherChange)
	}
}

// byActivation ranks short codes for the tiers: the earlier activated
// first, the lower number first on the same day.
func byActivation(a, b shortCodeMonth) int {
	if c := a.activatedOn.Compare(b.activatedOn); c != 0 {
		return c
	}
	return cmp.Compare(a.shortCode, b.shortCode)
}

// monthly adds the monthly fees of the short codes billed in the month.
func monthly(p priceList, billed []shortCodeMonth, add func(InvoiceLine)) error {
	slices.SortFunc(billed, byActivation)
	green := 0
	for i, u := range billed {
		tier := tierOf(p.shortCode, i+1)
		add(InvoiceLine{Kind: LineShortCode, ShortCode: u.shortCode, Quantity: 1, UnitMillicents: tier.mc,
			Description: fmt.Sprintf("Short code %s monthly fee, %s short code (tier from the %s)", u.shortCode, ordinal(i+1), ordinal(tier.from))})
		if u.throughput > p.standardThroughput {
			unit, ok := p.throughput[u.throughput]
			if !ok {
				// A later tariff dropped an option still subscribed: a
				// price to agree on, not a line to guess.
				return fmt.Errorf("short code %s has %d SMS/s, which tariff %s does not price", u.shortCode, u.throughput, p.version)
			}
			add(InvoiceLine{Kind: LineThroughputOption, ShortCode: u.shortCode, Quantity: 1, UnitMillicents: unit,
				Description: fmt.Sprintf("Throughput option %d SMS/s, short code %s (calendar month)", u.throughput, u.shortCode)})
		}
		if u.oadc {
			add(InvoiceLine{Kind: LineOAdCOption, ShortCode: u.shortCode, Quantity: 1, UnitMillicents: p.oadcOption,
				Description: fmt.Sprintf("OAdC-modification option, short code %s", u.shortCode)})
		}
		if u.green {
			green++
			tier := tierOf(p.greenNumber, green)
			add(InvoiceLine{Kind: LineGreenNumber, ShortCode: u.shortCode, Quantity: 1, UnitMillicents: tier.mc,
				Description: fmt.Sprintf("Green number / geo-presence, short code %s, %s number (tier from the %s)", u.shortCode, ordinal(green), ordinal(tier.from))})
		}
	}
	return nil
}

// compareLines orders lines by kind (lineOrder), then one-time fees by day
// and short code, monthly fees by the short code's rank, and legal
// entities by name.
func compareLines(billed []shortCodeMonth) func(a, b InvoiceLine) int {
	rank := make(map[string]int, len(billed))
	for i, u := range billed {
		rank[u.shortCode] = i
	}
	return func(a, b InvoiceLine) int {
		if c := cmp.Compare(slices.Index(lineOrder, a.Kind), slices.Index(lineOrder, b.Kind)); c != 0 {
			return c
		}
		if c := a.Date.Compare(b.Date); c != 0 {
			return c
		}
		// Monthly fees (no day) by rank; one-time fees of a day by number.
		if a.Date.IsZero() {
			if c := cmp.Compare(rank[a.ShortCode], rank[b.ShortCode]); c != 0 {
				return c
			}
		}
		if c := cmp.Compare(a.ShortCode, b.ShortCode); c != 0 {
			return c
		}
		// Same short code, day and kind: in the order recorded (the sort
		// is stable and the events were added in replay order).
		return cmp.Compare(a.LegalEntity, b.LegalEntity)
	}
}

func ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return fmt.Sprintf("%d%s", n, suffix)
}

// deliveredIn is the number of segments delivered on the Europe/Paris days
// of m, all short codes and tenants, from the daily aggregate.
func deliveredIn(ctx context.Context, q Querier, m Month) (int64, error) {
	loc, err := time.LoadLocation(Zone)
	if err != nil {
		return 0, fmt.Errorf("delivered SMS-MT: %w", err)
	}
	from := time.Date(m.Year, m.Month, 1, 0, 0, 0, 0, loc)
	to := time.Date(m.Year, m.Month+1, 1, 0, 0, 0, 0, loc)
	counts, err := DailyCounts(ctx, q, from, to)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, c := range counts {
		if c.State == Delivered {
			n += c.Segments
		}
	}
	return n, nil
}
