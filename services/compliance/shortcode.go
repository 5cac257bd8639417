package compliance

import (
	"context"
	"fmt"
	"slices"
	"strings"

	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// rangeDigits is how many leading digits of a short code name its range.
const rangeDigits = 2

// ShortCodeRanges maps a short-code range (its first two digits, "36")
// to the traffic categories it may carry, compiled from the policy's
// short_code_ranges (policy/default.json: 34 MO-session replies, 35 and 36
// marketing, 36 customer relationship too, 37 interpersonal, 38 M2M). A
// short code outside every range carries nothing.
type ShortCodeRanges map[string][]partnerv1.TrafficCategory

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
