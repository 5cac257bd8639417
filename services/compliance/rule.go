package compliance

import (
	"context"
	"errors"
	"fmt"
	"time"

	"pushsms.io/lib/calendar"
	"pushsms.io/lib/numplan"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// Candidate is a message under review: the accepted event and what the
// rules that already passed learned about it.
type Candidate struct {
	Accepted *eventsv1.MessageAccepted
	// Now is the time of the decision, the same for every rule.
	Now time.Time
	// Number is the parsed recipient, set by the numbering rule: later
	// rules (opt-out, frequency cap) key on it. It prints masked; only
	// Number.E164 gives the digits.
	Number numplan.Number
	// NotBefore is the latest deferral the rules that passed asked for
	// (the window's next opening): the frequency cap counts the day the
	// message will be sent on.
	NotBefore time.Time
}

// Verdict is a rule's answer. The zero Verdict lets the message through.
type Verdict struct {
	Reason partnerv1.Reason
	// Detail tells the partner why, in words; it never holds the MSISDN.
	Detail string
	// NotBefore, without a Reason, lets the message through but not before
	// that time: it is cleared with message.not_before set, and throttle
	// holds it until then. The latest NotBefore of all rules wins.
	NotBefore time.Time
	rule      string
}

func refuse(r partnerv1.Reason, detail string) Verdict { return Verdict{Reason: r, Detail: detail} }

// Rule is one check. Check returns the zero Verdict to let the message
// through, a NotBefore to defer it, or a reason to reject it. An error means the rule could not
// decide (a store it reads is down): the message is retried later.
type Rule struct {
	Name  string
	Check func(ctx context.Context, c *Candidate) (Verdict, error)
}

// DefaultRules are the rules in the order they apply; the first refusal
// decides. Numbering comes first: every later rule needs the E.164 number.
// The short-code range rule is next: cheap, and it refuses a whole
// partner mistake before anything is looked up. Validity comes before the
// network rule, so an expired message costs no lookup. The window rule
// comes after validity: it only defers a message that may still be sent.
// A nil nw leaves the network rule out (-network-check=false). The
// frequency cap is last: it counts the day the window defers a message to,
// and a message it counts is one no other rule refuses. A nil freq leaves
// it out (-frequency-cap 0).
func DefaultRules(w calendar.Window, ranges ShortCodeRanges, nw *Network, freq *Frequency) []Rule {
	rules := []Rule{
		{Name: "numbering", Check: checkNumbering},
		{Name: "shortcode_range", Check: checkShortCodeRange(ranges)},
		{Name: "validity", Check: checkValidity},
	}
	if nw != nil {
		rules = append(rules, Rule{Name: "network", Check: checkNetwork(*nw)})
	}
	rules = append(rules, Rule{Name: "window", Check: checkWindow(w)})
	if freq != nil {
		rules = append(rules, Rule{Name: "frequency", Check: checkFrequency(*freq)})
	}
	return rules
}

// numberingRefusals maps numplan's sentinels to reasons and details.
var numberingRefusals = []struct {
	err    error
	reason partnerv1.Reason
	detail string
}{
	{numplan.ErrInvalid, partnerv1.Reason_REASON_INVALID_NUMBER, "the recipient is not a valid phone number"},
	{numplan.ErrNotFrench, partnerv1.Reason_REASON_NOT_FRENCH, "the recipient is not a French number"},
	{numplan.ErrNotMobile, partnerv1.Reason_REASON_NOT_MOBILE, "the recipient is a French fixed-line or special number, not a mobile"},
	{numplan.ErrOverseas, partnerv1.Reason_REASON_OVERSEAS, "the recipient is an overseas French number, not served from metropolitan short codes"},
	{numplan.ErrM2M, partnerv1.Reason_REASON_M2M_NUMBER, "the recipient is an M2M number, allowed in the M2M category only"},
	{numplan.ErrRoutingPrefix, partnerv1.Reason_REASON_ROUTING_PREFIX, "the recipient starts with a portability routing prefix, not a subscriber number"},
}

// checkNumbering normalises the recipient to E.164 and lets through
// metropolitan mobile numbers only, and M2M numbers in the M2M category.
func checkNumbering(_ context.Context, c *Candidate) (Verdict, error) {
	n, err := numplan.Parse(c.Accepted.GetRecipient())
	if err == nil {
		err = n.CheckMobile(c.Accepted.GetCategory() == partnerv1.TrafficCategory_TRAFFIC_CATEGORY_M2M)
	}
	if err == nil {
		c.Number = n
		return Verdict{}, nil
	}
	for _, r := range numberingRefusals {
		if errors.Is(err, r.err) {
			return refuse(r.reason, r.detail), nil
		}
	}
	// A sentinel numplan added later: still a number we may not send to.
	return refuse(partnerv1.Reason_REASON_INVALID_NUMBER, "the recipient is not a number we can send to"), nil
}

// checkValidity refuses a message whose validity ended before it was
// checked: sending it would be late, and the SMSC would expire it anyway.
func checkValidity(_ context.Context, c *Candidate) (Verdict, error) {
	exp := c.Accepted.GetExpiresAt()
	if exp == nil || c.Now.Before(exp.AsTime()) {
		return Verdict{}, nil
	}
	return refuse(partnerv1.Reason_REASON_VALIDITY_EXPIRED, "the message's validity ended before it could be sent"), nil
}

// checkWindow defers a marketing message to the next opening of the
// sending window (offer "Obligations": working days, 08:00–22:00 French
// time). Other categories are not prospection and go at any hour. A
// message the partner scheduled is judged at its own not_before, not at
// the time it is checked. A message whose validity ends before the window
// opens could never be sent: it is refused now rather than expire later.
func checkWindow(w calendar.Window) func(context.Context, *Candidate) (Verdict, error) {
	return func(_ context.Context, c *Candidate) (Verdict, error) {
		acc := c.Accepted
		if acc.GetCategory() != partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING {
			return Verdict{}, nil
		}
		at := c.Now
		if nb := acc.GetNotBefore(); nb != nil && nb.AsTime().After(at) {
			at = nb.AsTime()
		}
		next := w.NextOpen(at)
		if next.Equal(at) {
			return Verdict{}, nil
		}
		if exp := acc.GetExpiresAt(); exp != nil && !exp.AsTime().After(next) {
			return refuse(partnerv1.Reason_REASON_VALIDITY_EXPIRED, fmt.Sprintf(
				"marketing messages are sent on working days from %s to %s French time; the window only opens at %s, after the message's validity ends",
				clock(w.OpenAt()), clock(w.CloseAt()), next.In(w.Location()).Format("2006-01-02 15:04 MST"))), nil
		}
		return Verdict{NotBefore: next}, nil
	}
}

// clock formats a duration since midnight as HH:MM.
func clock(d time.Duration) string {
	return fmt.Sprintf("%02d:%02d", int(d/time.Hour), int(d%time.Hour/time.Minute))
}
