package compliance

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// DefaultShortCodeRanges is the range table of the offer ("short-code
// ranges by use"): 34ABC MTs inside an MO session, 35ABC direct marketing
// (geo-presence option), 36ABC mobile marketing, 37ABC interpersonal
// web-to-SMS, 38ABC functional MTs to M2M SIMs. The offer names no range
// for customer relationship; 36ABC takes it because compliance §2.2
// documents 36xxx for "customer info" next to promotions. 38xxx, which
// compliance §2.2 calls transactional, stays M2M as the offer says until
// the operator confirms otherwise (compliance §7); the aggregator can add
// it with the flag, without code.
const DefaultShortCodeRanges = "34=mo_session_reply,35=marketing,36=marketing+customer_relationship,37=interpersonal,38=m2m"

// rangeDigits is how many leading digits of a short code name its range.
const rangeDigits = 2

// ShortCodeRanges maps a short-code range (its first two digits, "36")
// to the traffic categories it may carry. A short code outside every
// range carries nothing. It is a flag.Value written like
// DefaultShortCodeRanges.
type ShortCodeRanges map[string][]partnerv1.TrafficCategory

// ParseShortCodeRanges reads "34=mo_session_reply,36=marketing+customer_relationship".
func ParseShortCodeRanges(s string) (ShortCodeRanges, error) {
	r := ShortCodeRanges{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		prefix, cats, ok := strings.Cut(item, "=")
		prefix = strings.TrimSpace(prefix)
		if !ok || len(prefix) != rangeDigits || strings.Trim(prefix, "0123456789") != "" {
			return nil, fmt.Errorf("short-code range %q: want two digits=category[+category]", item)
		}
		if _, dup := r[prefix]; dup {
			return nil, fmt.Errorf("short-code range %s given twice", prefix)
		}
		var list []partnerv1.TrafficCategory
		for name := range strings.SplitSeq(cats, "+") {
			name = strings.TrimSpace(name)
			v, ok := partnerv1.TrafficCategory_value["TRAFFIC_CATEGORY_"+strings.ToUpper(name)]
			if !ok || v == int32(partnerv1.TrafficCategory_TRAFFIC_CATEGORY_UNSPECIFIED) {
				return nil, fmt.Errorf("short-code range %s: unknown category %q", prefix, name)
			}
			c := partnerv1.TrafficCategory(v)
			if !slices.Contains(list, c) {
				list = append(list, c)
			}
		}
		r[prefix] = list
	}
	if len(r) == 0 {
		return nil, fmt.Errorf("short-code ranges %q: no range", s)
	}
	return r, nil
}

// String writes the table back in the flag's form, ranges sorted.
func (r ShortCodeRanges) String() string {
	var items []string
	for _, p := range slices.Sorted(maps.Keys(r)) {
		names := make([]string, 0, len(r[p]))
		for _, c := range r[p] {
			names = append(names, categoryName(c))
		}
		items = append(items, p+"="+strings.Join(names, "+"))
	}
	return strings.Join(items, ",")
}

// Set replaces the whole table: a flag names every range.
func (r *ShortCodeRanges) Set(s string) error {
	t, err := ParseShortCodeRanges(s)
	if err != nil {
		return err
	}
	*r = t
	return nil
}

// Allows reports whether shortCode's range may carry category c.
func (r ShortCodeRanges) Allows(shortCode string, c partnerv1.TrafficCategory) bool {
	if len(shortCode) < rangeDigits {
		return false
	}
	return slices.Contains(r[shortCode[:rangeDigits]], c)
}

// categoryName is the flag spelling of c: "customer_relationship".
func categoryName(c partnerv1.TrafficCategory) string {
	return strings.ToLower(strings.TrimPrefix(c.String(), "TRAFFIC_CATEGORY_"))
}

// checkShortCodeRange refuses a category the short code's range may not
// carry (offer "Obligations of the aggregator": short-code ranges by use).
func checkShortCodeRange(r ShortCodeRanges) func(context.Context, *Candidate) (Verdict, error) {
	return func(_ context.Context, c *Candidate) (Verdict, error) {
		sc, cat := c.Accepted.GetShortCode(), c.Accepted.GetCategory()
		if r.Allows(sc, cat) {
			return Verdict{}, nil
		}
		rng := sc
		if len(sc) >= rangeDigits {
			rng = sc[:rangeDigits] + strings.Repeat("x", len(sc)-rangeDigits)
		}
		return refuse(partnerv1.Reason_REASON_SHORT_CODE_RANGE, fmt.Sprintf(
			"short code %s is in range %s, which may not carry %s traffic", sc, rng, strings.ReplaceAll(categoryName(cat), "_", " "))), nil
	}
}
