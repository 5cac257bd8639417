package compliance

import (
	"context"
	"fmt"
	"unicode"
	"unicode/utf8"

	"pushsms.io/lib/gsm"
	"pushsms.io/lib/numplan"
	"pushsms.io/lib/policy"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// Sources of the sender and short-code option rules.
const (
	sourceSender = `offer "Obligations of the aggregator": the OAdC carries the short code unless the OAdC modification ` +
		`option is subscribed for it (then a brand name); no commercial message from an MSISDN (ARCEP 2018-0881); ` +
		`alphanumeric OAdC at most 11 GSM characters (UCP OTOA 5039, af2m rules of 10 March 2025); compliance §2.2`
	sourceShortCodeOption = `offer "Obligations of the aggregator" and "Options": 35ABC short codes carry direct marketing ` +
		`with the geo-presence option`
)

// checkSender lets a message show its short code as sender (an empty
// sender is the short code), or, when the short code has the OAdC
// modification option, an alphanumeric brand name: at most
// p.Sender.MaxLength characters of the GSM-7 default alphabet (an
// extension character such as € would cost two septets of the 11 the
// UCP alphanumeric OAdC holds), printable, holding at least one letter.
// A sender that looks like a phone number is refused whatever the
// options: it would pass for a subscriber writing (a commercial MT from
// an MSISDN), and the subscriber's STOP would go nowhere.
func checkSender(p *policy.Policy) func(context.Context, *Candidate) (Verdict, error) {
	return func(_ context.Context, c *Candidate) (Verdict, error) {
		acc := c.Accepted
		sender, sc := acc.GetSender(), acc.GetShortCode()
		if sender == "" || sender == sc {
			return Verdict{}, nil
		}
		if why := msisdnLike(sender); why != "" {
			return refuse(partnerv1.Reason_REASON_SENDER_NOT_ALLOWED, fmt.Sprintf(
				"the sender %s: only the short code %s or, with the OAdC modification option, a brand name may be shown", why, sc)), nil
		}
		if !p.ShortCodes[sc].OAdCModification {
			return refuse(partnerv1.Reason_REASON_SENDER_NOT_ALLOWED, fmt.Sprintf(
				"short code %s has no OAdC modification option: the sender must be the short code itself", sc)), nil
		}
		if why := badBrandSender(sender, p.Sender.MaxLength); why != "" {
			return refuse(partnerv1.Reason_REASON_SENDER_NOT_ALLOWED, "the alphanumeric sender "+why), nil
		}
		return Verdict{}, nil
	}
}

// msisdnLike says why sender passes for a phone number, or "" when it
// does not. The sender is the partner's, not a subscriber's number, but it
// is not echoed: it may be one.
func msisdnLike(sender string) string {
	switch {
	case isDigits(sender):
		return "is numeric and not the short code (a phone number or another short code)"
	case sender[0] == '+' && isDigits(sender[1:]):
		return `is an international phone number ("+" and digits)`
	}
	if _, err := numplan.Parse(sender); err == nil {
		return "reads as a phone number"
	}
	return ""
}

// badBrandSender says what is wrong with an alphanumeric sender, or "".
func badBrandSender(sender string, maxLen int) string {
	if !utf8.ValidString(sender) {
		return "is not valid UTF-8"
	}
	n, letter := 0, false
	for _, r := range sender {
		n++
		if septets, ok := gsm.Septets(r); !ok || septets != 1 {
			return fmt.Sprintf("holds %q, which is not in the GSM 03.38 default alphabet", r)
		}
		if unicode.IsControl(r) {
			return "holds a control character (line break)"
		}
		if unicode.IsLetter(r) {
			letter = true
		}
	}
	switch {
	case n > maxLen:
		return fmt.Sprintf("has %d characters; at most %d are allowed", n, maxLen)
	case !letter:
		return "holds no letter: a brand name is made of letters (digits allowed)"
	case sender[0] == ' ' || sender[len(sender)-1] == ' ':
		return "starts or ends with a space"
	}
	return ""
}

// checkShortCodeOption lets a 35ABC short code carry marketing only with
// the geo-presence option subscribed (the range rule already limits 35ABC
// to marketing).
func checkShortCodeOption(p *policy.Policy) func(context.Context, *Candidate) (Verdict, error) {
	return func(_ context.Context, c *Candidate) (Verdict, error) {
		acc := c.Accepted
		sc := acc.GetShortCode()
		if len(sc) < rangeDigits || sc[:rangeDigits] != "35" ||
			acc.GetCategory() != partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING ||
			p.ShortCodes[sc].GeoPresence {
			return Verdict{}, nil
		}
		return refuse(partnerv1.Reason_REASON_SHORT_CODE_RANGE, fmt.Sprintf(
			"short code %s is in range 35xxx, which carries direct marketing only with the geo-presence option, not subscribed for it", sc)), nil
	}
}
