package compliance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"pushsms.io/lib/calendar"
	"pushsms.io/lib/numplan"
	"pushsms.io/lib/optout"
	"pushsms.io/lib/policy"
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
	source    string
}

func refuse(r partnerv1.Reason, detail string) Verdict { return Verdict{Reason: r, Detail: detail} }

// Rule is one check. Check returns the zero Verdict to let the message
// through, a NotBefore to defer it, or a reason to reject it. An error means the rule could not
// decide (a store it reads is down): the message is retried later.
type Rule struct {
	Name string
	// Source cites the text the rule enforces (the operator's offer, a
	// law, a charter): the partner sees it with every refusal.
	Source string
	Check  func(ctx context.Context, c *Candidate) (Verdict, error)
}

// Sources of the rules of this file, as every decision they take records
// them (docs/rules.md).
const (
	sourceNumbering = `offer "Obligations of the aggregator": recipients habitually in metropolitan France, ` +
		`mobile numbers; ARCEP numbering plan (décision 2018-0881): 06/07 mobiles, 0700 M2M, overseas blocks, ` +
		`portability routing prefixes; compliance §1.1–1.6`
	sourceShortCodeRange = `offer "Obligations of the aggregator", short-code ranges by use: 34ABC MO-session replies, ` +
		`35ABC direct marketing (geo-presence), 36ABC mobile marketing, 37ABC interpersonal web-to-SMS, ` +
		`38ABC functional M2M; compliance §2.2`
	sourceValidity = `offer "Technical connection": a message is not delivered after its validity period; ` +
		`the partner's validity`
	sourceNetwork = `offer "qualification mechanism": the aggregator sends only to the operator's subscribers ` +
		`(numbering plan plus portability); ARCEP MAJNUM block holders; compliance §2.1, §3.3`
	sourceWindow = `offer "Obligations of the aggregator": marketing MTs on working days, 08:00–22:00 French time, ` +
		`public holidays excluded (code du travail L.3133-1); af2m 2026 charter: 21:30 per contract; compliance §4.1–4.4, §5.4–5.5`
	sourceFrequency = `offer "Obligations of the aggregator": at most one direct-marketing message per user, ` +
		`per day and per brand; compliance §2.3, §5.5`
	sourceLength = `3GPP TS 23.040 concatenated SMS: an 8-bit part counter, at most 255 parts`
)

// ruleDeps are what the rules need besides the policy: loaded once per
// replica, shared by every compiled rule set.
type ruleDeps struct {
	// plan is the ARCEP numbering plan; nil only when no policy of this
	// replica may turn the network check on (tests).
	plan *numplan.Plan
	// lookup, when set, is asked before the ARCEP block holder.
	lookup NetworkLookup
	// freq is the FREQUENCY bucket; nil leaves the cap out whatever the
	// policy says (unit tests without NATS).
	freq jetstream.KeyValue
	// conn, when set, lets the cap create new keys with a bare request.
	conn *nats.Conn
	// sessions, when set, turns the MO-session rule on.
	sessions SessionLookup
	// optOuts, when set, turns the opt-out rule on: the replica's index of
	// bucket OPTOUTS (lib/optout.WatchIndex).
	optOuts *optout.Index
}

// ruleSet is a policy compiled into its rules. A decision loads one
// ruleSet and uses it from the first rule to the record, so a hot reload
// in the middle never mixes two versions.
type ruleSet struct {
	policy *policy.Policy
	rules  []Rule
}

// compileRules turns p into the rules in the order they apply; the first
// refusal decides. Numbering comes first: every later rule needs the
// E.164 number. The short-code rules are next (range, then the options of
// the short code, the sender, the MO session), then the opt-outs: cheap, and they refuse a
// whole partner mistake before anything is looked up. The content rules
// follow, then validity, then the network rule, so an expired message
// costs no lookup. The window rule comes after: it only defers a message
// that may still be sent. The frequency cap is last: it counts the day the
// window defers a message to, and a message it counts is one no other rule
// refuses.
func compileRules(p *policy.Policy, d ruleDeps) (*ruleSet, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	win, err := compileWindows(p)
	if err != nil {
		return nil, err
	}
	rules := []Rule{
		{Name: "numbering", Source: sourceNumbering, Check: checkNumbering},
		{Name: "shortcode_range", Source: sourceShortCodeRange, Check: checkShortCodeRange(rangesFromPolicy(p))},
		{Name: "shortcode_option", Source: sourceShortCodeOption, Check: checkShortCodeOption(p)},
		{Name: "sender", Source: sourceSender, Check: checkSender(p)},
	}
	if d.sessions != nil {
		rules = append(rules, Rule{Name: "mo_session", Source: sourceMOSession, Check: checkMOSession(p, d.sessions)})
	}
	if d.optOuts != nil {
		rules = append(rules, optOutRule(d.optOuts))
	}
	rules = append(rules, contentRules(p)...)
	rules = append(rules, Rule{Name: "validity", Source: sourceValidity, Check: checkValidity})
	if p.Network.Check {
		if d.plan == nil {
			return nil, errors.New("compliance: the policy checks the network, but no numbering plan is loaded")
		}
		rules = append(rules, Rule{Name: "network", Source: sourceNetwork, Check: checkNetwork(Network{Plan: d.plan, Operator: p.Network.Operator, Lookup: d.lookup})})
	}
	rules = append(rules, Rule{Name: "window", Source: sourceWindow, Check: checkWindow(win)})
	if p.Frequency.Cap > 0 && d.freq != nil {
		rules = append(rules, Rule{Name: "frequency", Source: sourceFrequency, Check: checkFrequency(Frequency{
			KV: d.freq, Conn: d.conn, Cap: p.Frequency.Cap, Period: p.Frequency.Period, Loc: win.def.Location(),
		})})
	}
	return &ruleSet{policy: p, rules: rules}, nil
}

// rangesFromPolicy reads the policy's range table; Validate has checked
// every category name.
func rangesFromPolicy(p *policy.Policy) ShortCodeRanges {
	r := make(ShortCodeRanges, len(p.ShortCodeRanges))
	for prefix, names := range p.ShortCodeRanges {
		for _, name := range names {
			c := partnerv1.TrafficCategory(partnerv1.TrafficCategory_value["TRAFFIC_CATEGORY_"+strings.ToUpper(name)])
			if c != partnerv1.TrafficCategory_TRAFFIC_CATEGORY_UNSPECIFIED && !slices.Contains(r[prefix], c) {
				r[prefix] = append(r[prefix], c)
			}
		}
	}
	return r
}

// windows are the sending windows of a policy, compiled once: the default
// and each contract's own.
type windows struct {
	def     calendar.Window
	byShort map[string]calendar.Window
}

func compileWindows(p *policy.Policy) (windows, error) {
	def, err := p.Window.Calendar()
	if err != nil {
		return windows{}, err
	}
	w := windows{def: def}
	for code, sc := range p.ShortCodes {
		if sc.Window == nil {
			continue
		}
		cw, err := sc.Window.Calendar()
		if err != nil {
			return windows{}, fmt.Errorf("short code %s: %w", code, err)
		}
		if w.byShort == nil {
			w.byShort = map[string]calendar.Window{}
		}
		w.byShort[code] = cw
	}
	return w, nil
}

// For returns the window of shortCode's contract.
func (w windows) For(shortCode string) calendar.Window {
	if cw, ok := w.byShort[shortCode]; ok {
		return cw
	}
	return w.def
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
// time, or the short code's contract's own window). Other categories are not prospection and go at any hour. A
// message the partner scheduled is judged at its own not_before, not at
// the time it is checked. A message whose validity ends before the window
// opens could never be sent: it is refused now rather than expire later.
func checkWindow(ws windows) func(context.Context, *Candidate) (Verdict, error) {
	return func(_ context.Context, c *Candidate) (Verdict, error) {
		acc := c.Accepted
		w := ws.For(acc.GetShortCode())
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
