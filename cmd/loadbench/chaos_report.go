package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// ChaosReport is what a chaos run prints (Markdown) and writes (-json).
type ChaosReport struct {
	Seed        int64         `json:"seed"`
	Started     time.Time     `json:"started"`
	Machine     string        `json:"machine"`
	ShortCodes  int           `json:"short_codes"`
	Messages    int           `json:"messages"`
	Rate        int           `json:"rate_per_short_code"`
	Pace        float64       `json:"pace"`
	Window      int           `json:"window"`
	ResendAfter time.Duration `json:"unknown_resend_after_ns"`
	CutFor      time.Duration `json:"link_cut_ns"`
	Processes   []string      `json:"service_processes"`
	Faults      []FaultRecord `json:"faults"`
	DriveTime   time.Duration `json:"drive_ns"`
	Settled     bool          `json:"settled"`
	SettleTime  time.Duration `json:"settle_ns"`
	SettleNote  string        `json:"settle_note,omitempty"`
	Figures     chaosFigures  `json:"figures"`
	Invariants  []Invariant   `json:"invariants"`
	Pass        bool          `json:"pass"`
	Notes       []string      `json:"notes,omitempty"`
}

func writeChaosMarkdown(w io.Writer, r *ChaosReport) error {
	var b strings.Builder
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "## Chaos run %s: seed %d: %s\n\n", r.Started.Format("2006-01-02 15:04 MST"), r.Seed, verdict)
	fmt.Fprintf(&b, "%s. %d messages (%d segments expected) through SendMessage at %.0f/s over %d short codes at %d segments/s each, UCP window %d; resend of in-doubt segments after %v; link cut for %v.\n",
		r.Machine, r.Messages, r.Figures.SegmentsExpected, r.Pace, r.ShortCodes, r.Rate, r.Window, r.ResendAfter, r.CutFor)
	fmt.Fprintf(&b, "Service processes: %s. Drive %.1f s; settle %.1f s", strings.Join(r.Processes, ", "), r.DriveTime.Seconds(), r.SettleTime.Seconds())
	if r.Settled {
		b.WriteString(" (every consumer's lag 0, every message terminal).\n\n")
	} else {
		fmt.Fprintf(&b, ": **%s**.\n\n", r.SettleNote)
	}
	b.WriteString("| # | at s | fault | target | back after s | error |\n| --: | --: | --- | --- | --: | --- |\n")
	for i, f := range r.Faults {
		fmt.Fprintf(&b, "| %d | %.1f | %s | %s | %.1f | %s |\n", i+1, f.Started.Seconds(), f.Kind, f.Target, f.Took.Seconds(), f.Error)
	}
	b.WriteString("\n| invariant | result | figures |\n| --- | --- | --- |\n")
	for _, inv := range r.Invariants {
		res := "ok"
		if !inv.OK {
			res = "**FAILED**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", inv.Name, res, strings.ReplaceAll(inv.Figures, "|", "/"))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\n- %s", n)
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}
