package billing

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"pushsms.io/lib/fault"
)

// Date is a civil day, without time zone: tariffs and catalog events take
// effect on days, and the operator's days are Europe/Paris ones.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// ParseDate reads YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, fmt.Errorf("date %q: want YYYY-MM-DD", s)
	}
	return DateOf(t), nil
}

// DateOf is the day of t in t's location.
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return Date{y, m, d}
}

// Time is 00:00 UTC of the day: how pgx writes and reads a date column.
func (d Date) Time() time.Time { return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC) }

// IsZero tells whether d is unset.
func (d Date) IsZero() bool { return d == Date{} }

// Compare returns -1, 0 or +1 as d is before, the same as or after e.
func (d Date) Compare(e Date) int { return d.Time().Compare(e.Time()) }

// Before tells whether d is before e.
func (d Date) Before(e Date) bool { return d.Compare(e) < 0 }

// AddDays returns the day n days after d.
func (d Date) AddDays(n int) Date { return DateOf(d.Time().AddDate(0, 0, n)) }

func (d Date) String() string {
	if d.IsZero() {
		return ""
	}
	return d.Time().Format(time.DateOnly)
}

func (d Date) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func (d *Date) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*d = Date{}
		return nil
	}
	v, err := ParseDate(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Month is a calendar month: the period of an invoice.
type Month struct {
	Year  int
	Month time.Month
}

// ParseMonth reads YYYY-MM.
func ParseMonth(s string) (Month, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil {
		return Month{}, fmt.Errorf("month %q: want YYYY-MM", s)
	}
	return Month{t.Year(), t.Month()}, nil
}

// MonthOf is the month of day d.
func MonthOf(d Date) Month { return Month{d.Year, d.Month} }

// First is the month's first day.
func (m Month) First() Date { return Date{m.Year, m.Month, 1} }

// Last is the month's last day.
func (m Month) Last() Date { return m.Next().First().AddDays(-1) }

// Next is the month after m.
func (m Month) Next() Month {
	if m.Month == time.December {
		return Month{m.Year + 1, time.January}
	}
	return Month{m.Year, m.Month + 1}
}

// Contains tells whether day d is in m.
func (m Month) Contains(d Date) bool { return d.Year == m.Year && d.Month == m.Month }

func (m Month) String() string { return fmt.Sprintf("%04d-%02d", m.Year, int(m.Month)) }

func (m Month) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

func (m *Month) UnmarshalText(b []byte) error {
	v, err := ParseMonth(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Price is an amount in euros excluding VAT, written as a decimal number in
// a string ("0.030", "1600") so that the document reads like the price
// list and no float ever holds it. It must be exact in millicents
// (thousandths of a cent, 10⁻⁵ EUR): the offer's finest price, 0.030 EUR per
// SMS-MT, is 3 000 millicents.
type Price string

// Millicents parses the price. A price is below 10⁹ EUR (10¹⁴ millicents),
// which leaves room for quantities of 90 000 times that in int64; invoice
// lines still check their products.
func (p Price) Millicents() (int64, error) {
	s := string(p)
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || (dot && frac == "") || !digits(whole) || !digits(frac) {
		return 0, fmt.Errorf("%q is not a decimal amount such as 150 or 0.030", s)
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > 5 {
		return 0, fmt.Errorf("%q is finer than 0.00001 EUR (a millicent)", s)
	}
	if len(strings.TrimLeft(whole, "0")) > 9 {
		return 0, fmt.Errorf("%q is above 999 999 999 EUR", s)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	f := int64(0)
	if frac != "" {
		if f, err = strconv.ParseInt(frac+strings.Repeat("0", 5-len(frac)), 10, 64); err != nil {
			return 0, fmt.Errorf("%q: %w", s, err)
		}
	}
	return w*100_000 + f, nil
}

func digits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// Tier is a price from the From-th item on (ranked 1, 2, …), until the
// next tier's From.
type Tier struct {
	From  int   `json:"from"`
	Price Price `json:"price"`
}

// ThroughputOption is the monthly price of a throughput above the standard.
type ThroughputOption struct {
	// Rate is in SMS/s (operations per second).
	Rate  int   `json:"rate"`
	Price Price `json:"price"`
}

// OneTimeFees are billed in the month of the catalog event that causes them.
type OneTimeFees struct {
	// ActivationTechnical and ActivationAdministrative are both billed
	// for each activation of a short code.
	ActivationTechnical      Price `json:"activation_technical"`
	ActivationAdministrative Price `json:"activation_administrative"`
	ThroughputChange         Price `json:"throughput_change"`
	// OtherChange is an IP address change, a termination or a closure.
	OtherChange Price `json:"other_change"`
	// OAdCChange is the OAdC-modification option's activation or
	// deactivation.
	OAdCChange Price `json:"oadc_change"`
	// GreenNumberChange is the green number / geo-presence option turned
	// on or off: the offer lists no such fee ("0"), the field is there so
	// that a contract that has one needs no code.
	GreenNumberChange Price `json:"green_number_change"`
}

// PerMessage are the per-unit prices.
type PerMessage struct {
	// DeliveredMT is per SMS-MT delivered to the user (each segment), all
	// short codes of the contract summed.
	DeliveredMT Price `json:"delivered_mt"`
	// QualifiedMSISDN is per MSISDN qualified with the basic
	// qualification.
	QualifiedMSISDN Price `json:"qualified_msisdn"`
}

// MonthlyFees are billed for whole calendar months.
type MonthlyFees struct {
	// StandardThroughput is the SMS/s included in the short-code fee.
	StandardThroughput int `json:"standard_throughput"`
	// ShortCode are the per-short-code fee tiers, by rank in activation
	// order.
	ShortCode         []Tier             `json:"short_code"`
	ThroughputOptions []ThroughputOption `json:"throughput_options"`
	// OAdCOption is per short code with the OAdC-modification option, on
	// top of the short-code fee.
	OAdCOption Price `json:"oadc_option"`
	// GreenNumber are the green number / geo-presence tiers, by rank in
	// activation order among the short codes with the option.
	GreenNumber []Tier `json:"green_number"`
	// BasicQualification is per legal entity subscribed.
	BasicQualification Price `json:"basic_qualification"`
}

// Tariff is one version of the operator's price list. The invoice of a
// month uses the version in force on the month's first day.
type Tariff struct {
	// Version names the price list; every invoice records it.
	Version string `json:"version"`
	// The tariff is in force on the days [ValidFrom, ValidTo); a zero
	// ValidTo leaves it open until a later version is stored.
	ValidFrom Date `json:"valid_from"`
	ValidTo   Date `json:"valid_to,omitzero"`
	// Currency is EUR: invoices are in euro cents.
	Currency string `json:"currency"`
	// Source says where the prices come from (contract, amendment).
	Source     string      `json:"source,omitempty"`
	OneTime    OneTimeFees `json:"one_time"`
	PerMessage PerMessage  `json:"per_message"`
	Monthly    MonthlyFees `json:"monthly"`
}

//go:embed default_tariff.json
var defaultTariffJSON []byte

// DefaultTariff is the price list of the offer (shared/docs/offer.md,
// "Price list"), in force from October 2016 until a stored version
// replaces it.
func DefaultTariff() Tariff {
	t, err := ParseTariff(defaultTariffJSON)
	if err != nil {
		panic(fmt.Sprintf("billing: embedded default_tariff.json: %v", err)) // TestDefaultTariff catches it
	}
	return t
}

// DefaultTariffJSON is the embedded default document, to start a new
// version from.
func DefaultTariffJSON() []byte { return bytes.Clone(defaultTariffJSON) }

// maxTariffDocument bounds a document: a price list is a few kilobytes.
const maxTariffDocument = 64 << 10

// ParseTariff reads a tariff document: unknown fields are errors and the
// result is validated. Errors are fault.Invalid, naming the fields.
func ParseTariff(data []byte) (Tariff, error) {
	if len(data) > maxTariffDocument {
		return Tariff{}, fault.Invalidf("tariff", "document of %d bytes, more than %d", len(data), maxTariffDocument)
	}
	var t Tariff
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return Tariff{}, fault.Invalid("tariff", err)
	}
	if dec.More() {
		return Tariff{}, fault.Invalidf("tariff", "trailing data after the document")
	}
	if err := t.Validate(); err != nil {
		return Tariff{}, err
	}
	return t, nil
}

var versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate checks the whole document and reports every bad field at once,
// as fault.Invalid.
func (t Tariff) Validate() error {
	_, err := t.prices()
	return err
}

// priceList is a validated tariff in millicents, what an invoice computes
// with.
type priceList struct {
	version                        string
	activationTech, activationAdm  int64
	throughputChange, otherChange  int64
	oadcChange, greenChange        int64
	deliveredMT, qualifiedMSISDN   int64
	standardThroughput             int
	shortCode, greenNumber         []tierPrice
	throughput                     map[int]int64
	oadcOption, basicQualification int64
}

type tierPrice struct {
	from int
	mc   int64
}

// tierOf returns the price of rank (1-based) and the tier's first rank.
func tierOf(tiers []tierPrice, rank int) tierPrice {
	t := tiers[0]
	for _, x := range tiers {
		if rank >= x.from {
			t = x
		}
	}
	return t
}

// allowsThroughput tells whether rate can be subscribed: the standard or
// one of the options.
func (p priceList) allowsThroughput(rate int) bool {
	_, ok := p.throughput[rate]
	return ok || rate == p.standardThroughput
}

func (p priceList) throughputRates() []int {
	out := []int{p.standardThroughput}
	for r := range p.throughput {
		out = append(out, r)
	}
	return out
}

// prices validates t and converts its prices.
func (t Tariff) prices() (priceList, error) {
	var errs []error
	bad := func(field, format string, args ...any) { errs = append(errs, fault.Invalidf(field, format, args...)) }
	price := func(field string, p Price) int64 {
		mc, err := p.Millicents()
		if err != nil {
			errs = append(errs, fault.Invalid(field, err))
		}
		return mc
	}
	tiers := func(field string, ts []Tier) []tierPrice {
		if len(ts) == 0 {
			bad(field, "at least one tier, from 1")
			return nil
		}
		out := make([]tierPrice, len(ts))
		for i, x := range ts {
			f := fmt.Sprintf("%s[%d]", field, i)
			switch {
			case i == 0 && x.From != 1:
				bad(f+".from", "%d: the first tier starts at 1", x.From)
			case i > 0 && x.From <= ts[i-1].From:
				bad(f+".from", "%d: tiers must start at increasing ranks (previous %d)", x.From, ts[i-1].From)
			}
			out[i] = tierPrice{from: x.From, mc: price(f+".price", x.Price)}
		}
		return out
	}

	p := priceList{version: t.Version}
	if !versionRE.MatchString(t.Version) {
		bad("version", "%q: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", t.Version)
	}
	switch {
	case t.ValidFrom.IsZero():
		bad("valid_from", "required (YYYY-MM-DD)")
	case t.ValidFrom.Year < 2000 || t.ValidFrom.Year > 2999:
		bad("valid_from", "%s: not a plausible day", t.ValidFrom)
	}
	if !t.ValidTo.IsZero() && !t.ValidFrom.Before(t.ValidTo) {
		bad("valid_to", "%s is not after valid_from %s (the period is [valid_from, valid_to))", t.ValidTo, t.ValidFrom)
	}
	if t.Currency != "EUR" {
		bad("currency", "%q: only EUR (invoices are in euro cents)", t.Currency)
	}
	if len(t.Source) > 1000 {
		bad("source", "longer than 1000 bytes")
	}
	p.activationTech = price("one_time.activation_technical", t.OneTime.ActivationTechnical)
	p.activationAdm = price("one_time.activation_administrative", t.OneTime.ActivationAdministrative)
	p.throughputChange = price("one_time.throughput_change", t.OneTime.ThroughputChange)
	p.otherChange = price("one_time.other_change", t.OneTime.OtherChange)
	p.oadcChange = price("one_time.oadc_change", t.OneTime.OAdCChange)
	p.greenChange = price("one_time.green_number_change", t.OneTime.GreenNumberChange)
	p.deliveredMT = price("per_message.delivered_mt", t.PerMessage.DeliveredMT)
	p.qualifiedMSISDN = price("per_message.qualified_msisdn", t.PerMessage.QualifiedMSISDN)

	m := t.Monthly
	p.standardThroughput = m.StandardThroughput
	if m.StandardThroughput < 1 || m.StandardThroughput > 100_000 {
		bad("monthly.standard_throughput", "%d: want 1 to 100000 SMS/s", m.StandardThroughput)
	}
	p.shortCode = tiers("monthly.short_code", m.ShortCode)
	p.greenNumber = tiers("monthly.green_number", m.GreenNumber)
	p.throughput = make(map[int]int64, len(m.ThroughputOptions))
	for i, o := range m.ThroughputOptions {
		f := fmt.Sprintf("monthly.throughput_options[%d]", i)
		switch {
		case o.Rate <= m.StandardThroughput || o.Rate > 100_000:
			bad(f+".rate", "%d: want above the standard %d and at most 100000 SMS/s", o.Rate, m.StandardThroughput)
		case i > 0 && o.Rate <= m.ThroughputOptions[i-1].Rate:
			bad(f+".rate", "%d: options must be in increasing rates (previous %d)", o.Rate, m.ThroughputOptions[i-1].Rate)
		}
		p.throughput[o.Rate] = price(f+".price", o.Price)
	}
	p.oadcOption = price("monthly.oadc_option", m.OAdCOption)
	p.basicQualification = price("monthly.basic_qualification", m.BasicQualification)
	if err := fault.Join(errs...); err != nil {
		return priceList{}, fmt.Errorf("tariff %q: %w", t.Version, err)
	}
	return p, nil
}

// covers tells whether t is in force on day d.
func (t Tariff) covers(d Date) bool {
	return !d.Before(t.ValidFrom) && (t.ValidTo.IsZero() || d.Before(t.ValidTo))
}

// PutTariff stores a new version. Versions never overlap: a stored version
// still open (no valid_to) that started before t is closed at t's
// valid_from, which is how a new price list replaces the current one; any
// other overlap is refused. A stored version is never changed otherwise,
// so an invoice already sent can be computed again.
func PutTariff(ctx context.Context, db Beginner, t Tariff) error {
	if err := t.Validate(); err != nil {
		return err
	}
	doc, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("tariff %s: %w", t.Version, err)
	}
	return inTx(ctx, db, func(tx pgx.Tx) error {
		// One writer at a time: the close-then-insert below must see the
		// versions as they will be at commit.
		if _, err := tx.Exec(ctx, `LOCK TABLE billing.tariffs IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return fmt.Errorf("tariff %s: %w", t.Version, err)
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM billing.tariffs WHERE version = $1)`, t.Version).Scan(&exists); err != nil {
			return fmt.Errorf("tariff %s: %w", t.Version, err)
		}
		if exists {
			return fmt.Errorf("tariff %s: %w", t.Version, fault.ErrExists)
		}
		if _, err := tx.Exec(ctx, `
UPDATE billing.tariffs
SET valid_to = $1, document = jsonb_set(document, '{valid_to}', to_jsonb($1::date::text))
WHERE valid_to IS NULL AND valid_from < $1`, t.ValidFrom.Time()); err != nil {
			return fmt.Errorf("tariff %s: close the open version: %w", t.Version, err)
		}
		var other string
		var from time.Time
		err := tx.QueryRow(ctx, `
SELECT version, valid_from FROM billing.tariffs
WHERE daterange(valid_from, valid_to) && daterange($1::date, $2::date)
ORDER BY valid_from LIMIT 1`, t.ValidFrom.Time(), nullDate(t.ValidTo)).Scan(&other, &from)
		switch {
		case err == nil:
			return fmt.Errorf("tariff %s: %w", t.Version,
				fault.Invalidf("valid_from", "[%s, %s) overlaps version %s from %s", t.ValidFrom, t.ValidTo, other, DateOf(from)))
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("tariff %s: %w", t.Version, err)
		}
		if _, err := tx.Exec(ctx, `
INSERT INTO billing.tariffs (version, valid_from, valid_to, document) VALUES ($1, $2, $3, $4)`,
			t.Version, t.ValidFrom.Time(), nullDate(t.ValidTo), doc); err != nil {
			return fmt.Errorf("tariff %s: %w", t.Version, err)
		}
		return nil
	})
}

func nullDate(d Date) *time.Time {
	if d.IsZero() {
		return nil
	}
	t := d.Time()
	return &t
}

// Tariffs returns the stored versions by valid_from.
func Tariffs(ctx context.Context, q Querier) ([]Tariff, error) {
	rows, err := q.Query(ctx, `SELECT document FROM billing.tariffs ORDER BY valid_from`)
	if err != nil {
		return nil, fmt.Errorf("tariffs: %w", err)
	}
	docs, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, fmt.Errorf("tariffs: %w", err)
	}
	out := make([]Tariff, len(docs))
	for i, doc := range docs {
		if out[i], err = ParseTariff(doc); err != nil {
			return nil, fmt.Errorf("stored tariff: %w", err)
		}
	}
	return out, nil
}

// TariffOn returns the tariff in force on day d: the stored version whose
// period holds d; for a day before every stored version (or with none
// stored), the embedded default if d is in its period. No tariff is
// fault.ErrNotFound.
func TariffOn(ctx context.Context, q Querier, d Date) (Tariff, error) {
	var doc []byte
	err := q.QueryRow(ctx, `
SELECT document FROM billing.tariffs
WHERE valid_from <= $1 AND (valid_to IS NULL OR valid_to > $1)`, d.Time()).Scan(&doc)
	switch {
	case err == nil:
		t, err := ParseTariff(doc)
		if err != nil {
			return Tariff{}, fmt.Errorf("stored tariff on %s: %w", d, err)
		}
		return t, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return Tariff{}, fmt.Errorf("tariff on %s: %w", d, err)
	}
	// The default only stands for days before the first stored version: a
	// gap between stored versions is a mistake to report, not a reason to
	// bill the 2016 prices.
	var first *time.Time
	if err := q.QueryRow(ctx, `SELECT min(valid_from) FROM billing.tariffs`).Scan(&first); err != nil {
		return Tariff{}, fmt.Errorf("tariff on %s: %w", d, err)
	}
	if def := DefaultTariff(); def.covers(d) && (first == nil || d.Before(DateOf(*first))) {
		return def, nil
	}
	return Tariff{}, fmt.Errorf("tariff on %s: %w", d, fault.ErrNotFound)
}

// TariffFor returns the tariff of month m's invoice: the one in force on
// its first day. A version starting mid-month applies from the next month.
func TariffFor(ctx context.Context, q Querier, m Month) (Tariff, error) {
	return TariffOn(ctx, q, m.First())
}

// inTx runs fn in a transaction, committed when fn returns nil.
func inTx(ctx context.Context, db Beginner, fn func(pgx.Tx) error) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
