package main

import (
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// terminalStates are a message's final states in the status view
// (docs/messages.md "Message state: the rule"), as ingest stores them.
var terminalStates = []string{"rejected", "cancelled", "delivered", "failed", "expired"}

// finalSegmentStates are a segment's final states: the ones billing
// records (billing.ledger.state).
var finalSegmentStates = []string{"delivered", "failed", "expired"}

// chaosFigures is everything the invariants are judged on, read after the
// platform settled (or the settle timeout ran out).
type chaosFigures struct {
	// Driver: distinct messages SendMessage accepted (an OK with a message
	// id), and the requests abandoned after every retry.
	Accepted  int `json:"accepted"`
	Abandoned int `json:"abandoned"`

	// Status view (ingest.messages, ingest.segments) of the bench's tenant.
	Rows             int64            `json:"status_view_rows"`
	ByState          map[string]int64 `json:"messages_by_state"`
	MissingRows      int64            `json:"accepted_without_row"`
	MissingSample    []string         `json:"accepted_without_row_sample,omitempty"`
	ExtraRows        int64            `json:"rows_not_accepted"`
	NonTerminal      int64            `json:"messages_not_terminal"`
	NonTerminalList  []string         `json:"messages_not_terminal_sample,omitempty"`
	SegmentsExpected int64            `json:"segments_expected"` // sum of segment_count
	SegmentsByState  map[string]int64 `json:"segments_by_state"`
	// Incoherent counts terminal messages with a segment not final (or a
	// missing segment row) although their state says otherwise, the
	// rejected/cancelled excepted.
	Incoherent int64 `json:"terminal_with_open_segment"`

	// Ledger (billing.ledger) of the tenant.
	LedgerRows         int64    `json:"ledger_rows"`
	LedgerDistinct     int64    `json:"ledger_distinct_segments"`
	LedgerDelivered    int64    `json:"ledger_delivered"`
	DeliveredNotBilled int64    `json:"delivered_not_billed"`
	BilledNotDelivered int64    `json:"billed_not_delivered"`
	LedgerSample       []string `json:"ledger_mismatch_sample,omitempty"`

	// Simulator, over every incarnation (a link cut restarts it).
	SimSubmits  int64 `json:"sim_submits"`
	SimAccepted int64 `json:"sim_accepted"`
	// Duplicates: segments (recipient, text of the part) the simulator
	// ACKed more than once, and the extra ACKed copies.
	DupSegments int64 `json:"duplicate_segments"`
	DupSubmits  int64 `json:"duplicate_submits"`
	// Resubmits: segments received more than once whatever the outcome
	// (a throttled NACK and its retry are not a duplicate for the handset).
	Resubmits int64 `json:"segments_received_more_than_once"`
	// Where the duplicates and violations fell: each with the fault that
	// preceded it (at most maxSample of each).
	DupWhen       []string `json:"duplicates_when,omitempty"`
	ViolationWhen []string `json:"violations_when,omitempty"`
	Window        int      `json:"window"`
	Crashes       int      `json:"link_crashes"`
	Violations    int64    `json:"violations"`
}

// Invariant is one checked property and the figures it was judged on.
type Invariant struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Figures string `json:"figures"`
}

func (f chaosFigures) segmentsIn(states ...string) int64 {
	var n int64
	for _, s := range states {
		n += f.SegmentsByState[s]
	}
	return n
}

// checkInvariants judges the five invariants of issue 8 on f.
func checkInvariants(f chaosFigures) []Invariant {
	terminal := int64(0)
	for _, s := range terminalStates {
		terminal += f.ByState[s]
	}
	states := formatCounts(f.ByState)
	inv := []Invariant{{
		Name: "1. every accepted message ends in exactly one terminal state",
		// The status view keeps one state per message (a column): "exactly
		// one" is that every row's is terminal and agrees with its segments.
		OK: f.Rows > 0 && f.NonTerminal == 0 && terminal == f.Rows && f.Incoherent == 0,
		Figures: fmt.Sprintf("%d rows: %s; %d not terminal%s; %d terminal with a segment still open",
			f.Rows, states, f.NonTerminal, examples(f.NonTerminalList), f.Incoherent),
	}, {
		Name: "2. none lost: accepted = rows in the status view, each terminal",
		OK:   f.Accepted > 0 && f.Abandoned == 0 && f.MissingRows == 0 && f.ExtraRows == 0 && int64(f.Accepted) == f.Rows && f.NonTerminal == 0,
		Figures: fmt.Sprintf("%d accepted by the API (%d requests abandoned), %d rows; %d accepted without a row%s, %d rows not accepted",
			f.Accepted, f.Abandoned, f.Rows, f.MissingRows, examples(f.MissingSample), f.ExtraRows),
	}}
	viewDelivered := f.SegmentsByState["delivered"]
	viewFinal := f.segmentsIn(finalSegmentStates...)
	inv = append(inv, Invariant{
		Name: "3. ledger = delivered segments exactly, none billed twice",
		OK: f.LedgerDelivered == viewDelivered && f.DeliveredNotBilled == 0 && f.BilledNotDelivered == 0 &&
			f.LedgerRows == f.LedgerDistinct && f.LedgerRows == viewFinal,
		Figures: fmt.Sprintf("ledger: %d rows, %d distinct (message, segment), %d delivered; status view: %d segments DELIVERED, %d final (%s); %d delivered not billed, %d billed not delivered%s",
			f.LedgerRows, f.LedgerDistinct, f.LedgerDelivered, viewDelivered, viewFinal, formatCounts(f.SegmentsByState),
			f.DeliveredNotBilled, f.BilledNotDelivered, examples(f.LedgerSample)),
	})
	bound := int64(f.Window) * int64(f.Crashes)
	inv = append(inv, Invariant{
		Name: "4. submits the simulator took twice: counted, ≤ one window per crash",
		OK:   f.DupSubmits <= bound,
		Figures: fmt.Sprintf("%d segments ACKed twice or more (%d extra copies)%s, %d segments received more than once whatever the outcome; bound %d = window %d × %d crashes on the submit path (smsc-link kills, link cuts, NATS restarts); %d submits, %d ACKed",
			f.DupSegments, f.DupSubmits, examples(f.DupWhen), f.Resubmits, bound, f.Window, f.Crashes, f.SimSubmits, f.SimAccepted),
	}, Invariant{
		Name:    "5. no throttle violation",
		OK:      f.Violations == 0,
		Figures: fmt.Sprintf("%d submits NACKed 04 by the simulator for exceeding a short code's rate%s", f.Violations, examples(f.ViolationWhen)),
	})
	return inv
}

func formatCounts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", strings.ToUpper(k), m[k]))
	}
	return strings.Join(parts, ", ")
}

func examples(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return " (e.g. " + strings.Join(s, "; ") + ")"
}

// submitKey names a segment as the handset would see it: the account,
// the recipient, the part's bytes and its place in the message (the last
// two bytes of the user data header: parts in all, this part's number).
// Not the concatenation reference: a message accepted twice under two ids
// (finding 2 of docs/chaos.md) goes out under two references, and the
// handset still gets it twice. No number is ever printed from it.
func submitKey(s simSubmit) string {
	part := ""
	if udh, err := base64.StdEncoding.DecodeString(s.UDH); err == nil && len(udh) >= 2 {
		part = fmt.Sprintf("%d/%d", udh[len(udh)-1], udh[len(udh)-2])
	}
	return s.Account + "|" + s.AdC + "|" + part + "|" + s.Msg
}

// subsFrom is the part of the simulator's records that belongs to codes.
func subsFrom(subs []simSubmit, codes []string) []simSubmit {
	var out []simSubmit
	for _, s := range subs {
		if slices.Contains(codes, s.Account) {
			out = append(out, s)
		}
	}
	return out
}

// attribute names the last fault started at or before at (from the start
// of the drive): the likeliest cause of what happened then.
func attribute(at time.Duration, faults []FaultRecord) string {
	for i := len(faults) - 1; i >= 0; i-- {
		if f := faults[i]; f.Started <= at {
			return fmt.Sprintf("at %.1f s, %.1f s after fault #%d (%s, %s)", at.Seconds(), (at - f.Started).Seconds(), i+1, f.Kind, f.Target)
		}
	}
	return fmt.Sprintf("at %.1f s, before any fault", at.Seconds())
}

// whenViolated lists where the simulator NACKed a submit of subs for its
// rate (outcome "throttled"), each with its short code and preceding fault.
func whenViolated(subs []simSubmit, start time.Time, faults []FaultRecord) []string {
	var out []string
	for _, s := range subs {
		if s.Outcome == "throttled" && len(out) < maxSample {
			out = append(out, s.Account+" "+attribute(s.Time.Sub(start), faults))
		}
	}
	return out
}

// whenDuplicated lists where the simulator ACKed a segment of subs again
// (the time of the second copy), with the fault that preceded it.
func whenDuplicated(subs []simSubmit, start time.Time, faults []FaultRecord) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range subs {
		if s.Outcome != "accepted" {
			continue
		}
		k := submitKey(s)
		if seen[k] && len(out) < maxSample {
			out = append(out, s.Account+" "+attribute(s.Time.Sub(start), faults))
		}
		seen[k] = true
	}
	return out
}

// countDuplicates counts, over the simulator's records of codes, the
// segments ACKed more than once (and the extra copies) and the segments
// received more than once whatever the outcome.
func countDuplicates(subs []simSubmit, codes []string) (dupSegments, dupSubmits, resubmits int64) {
	accepted := map[string]int{}
	received := map[string]int{}
	for _, s := range subs {
		if !slices.Contains(codes, s.Account) {
			continue
		}
		k := submitKey(s)
		received[k]++
		if s.Outcome == "accepted" {
			accepted[k]++
		}
	}
	for _, n := range accepted {
		if n > 1 {
			dupSegments++
			dupSubmits += int64(n - 1)
		}
	}
	for _, n := range received {
		if n > 1 {
			resubmits++
		}
	}
	return dupSegments, dupSubmits, resubmits
}
