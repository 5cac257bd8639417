package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Report is what a run prints: one System for the platform and, with
// -kannel, one for Kannel, driven against the same simulator.
type Report struct {
	Started     time.Time `json:"started"`
	Machine     string    `json:"machine"`
	ShortCodes  int       `json:"short_codes"`
	Messages    int       `json:"messages"`
	Rate        int       `json:"rate_per_short_code"` // 0: unthrottled
	Unthrottled bool      `json:"unthrottled"`
	// Pace is the offered load, messages/s; 0: everything at once.
	Pace float64 `json:"pace"`
	// Warmup: the latencies leave out the messages of the run's first
	// Warmup (Config.Warmup).
	Warmup time.Duration `json:"warmup_ns,omitempty"`
	// HalfOf, with -half-capacity, is the capacity this run's pace halves.
	HalfOf  *HalfCapacity `json:"half_of,omitempty"`
	Systems []System      `json:"systems"`
	// Ratio is ours / Kannel for the figures both have, when both ran.
	Ratio map[string]float64 `json:"ratio,omitempty"`
}

// System is one system's figures over its run.
type System struct {
	Name      string     `json:"name"`
	Guarantee string     `json:"guarantee"`
	Messages  int        `json:"messages"`
	Segments  int        `json:"segments"`
	Accepted  Throughput `json:"accepted"`
	Submitted Throughput `json:"submitted"`
	// DRs counts messages whose final report arrived (one per message).
	DRs Throughput `json:"drs"`
	// Billed is absent for Kannel, which keeps no ledger.
	Billed         *Throughput   `json:"billed,omitempty"`
	AcceptToSubmit Percentiles   `json:"accept_to_submit"`
	AcceptToDR     Percentiles   `json:"accept_to_dr"`
	ShortCodes     []ShortCode   `json:"per_short_code"`
	Processes      []Process     `json:"processes"`
	CPU            float64       `json:"cpu_seconds"`
	PeakRSS        int64         `json:"peak_rss_bytes"`
	Lag            []Lag         `json:"jetstream_lag,omitempty"`
	Complete       bool          `json:"complete"`
	Notes          []string      `json:"notes,omitempty"`
	Wall           time.Duration `json:"wall_ns"`
}

// CPUPerSegment is the CPU the whole system spent per segment submitted,
// in microseconds: the figure a shared, busy machine disturbs least.
func (s System) CPUPerSegment() float64 {
	if s.Submitted.Events == 0 {
		return 0
	}
	return s.CPU * 1e6 / float64(s.Submitted.Events)
}

// ShortCode is one short code's figures at the simulator.
type ShortCode struct {
	Code     string `json:"short_code"`
	Rate     int    `json:"rate"` // 0: unlimited
	Submits  int64  `json:"submits"`
	Accepted int64  `json:"accepted"`
	// Violations are the submits the simulator NACKed for exceeding the
	// rate in its sliding one-second window.
	Violations int64 `json:"violations"`
	// Achieved is the mean accepted submits per second over the steady
	// seconds (first and last second with traffic excluded).
	Achieved float64 `json:"achieved_per_second"`
	// Utilisation is Achieved / Rate; 0 when unlimited.
	Utilisation float64 `json:"utilisation"`
	MaxSecond   int64   `json:"max_second"`
}

// Process is one process's cost during the system's run.
type Process struct {
	Name    string  `json:"name"`
	PID     int     `json:"pid"`
	CPU     float64 `json:"cpu_seconds"`
	PeakRSS int64   `json:"peak_rss_bytes"`
}

// Lag is one JetStream consumer's backlog at the end of the run.
type Lag struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	Pending    uint64 `json:"num_pending"`
	AckPending int    `json:"num_ack_pending"`
}

func (r *Report) computeRatio() {
	if len(r.Systems) != 2 {
		return
	}
	a, b := r.Systems[0], r.Systems[1]
	div := func(x, y float64) float64 {
		if y == 0 {
			return 0
		}
		return x / y
	}
	r.Ratio = map[string]float64{
		"submitted_per_second": div(a.Submitted.PerSecond, b.Submitted.PerSecond),
		"drs_per_second":       div(a.DRs.PerSecond, b.DRs.PerSecond),
		// Below 1 is better for ours: less CPU per segment.
		"cpu_per_segment": div(a.CPUPerSegment(), b.CPUPerSegment()),
	}
}

func writeJSON(path string, r any) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func mb(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

func pct(p Percentiles) string {
	if p.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f / %.0f / %.0f / %.0f", p.P50, p.P90, p.P99, p.Max)
}

func perSec(t *Throughput) string {
	if t == nil || t.Events == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", t.PerSecond)
}

// writeMarkdown renders the report as the tables of docs/loadbench.md.
func writeMarkdown(w io.Writer, r *Report) error {
	var b strings.Builder
	mode := fmt.Sprintf("%d SMS/s per short code", r.Rate)
	if r.Unthrottled {
		mode = "unthrottled (simulator without rate limit)"
	}
	offer := "offered all at once (one campaign per short code; Kannel: sendsms as fast as it answers)"
	if r.Pace > 0 {
		offer = fmt.Sprintf("offered at %.0f messages/s (SendMessage; Kannel: sendsms)", r.Pace)
	}
	if r.Warmup > 0 {
		offer += fmt.Sprintf("; latencies of the messages accepted (Kannel: sent) after the first %s", r.Warmup)
	}
	fmt.Fprintf(&b, "## loadbench %s\n\n%s; %d short codes, %d messages of 1–3 GSM segments, %s, %s.\n\n",
		r.Started.Format("2006-01-02 15:04 UTC"), r.Machine, r.ShortCodes, r.Messages, mode, offer)

	b.WriteString("| system | segments | accepted/s | submitted/s | DR msg/s | billed/s | accept→submit ms p50 / p90 / p99 / max | accept→DR ms p50 / p90 / p99 / max | CPU s | CPU µs/segment | peak RSS MB (sum) | complete |\n")
	b.WriteString("| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --- |\n")
	for _, s := range r.Systems {
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %.2f | %.0f | %s | %v |\n",
			s.Name, s.Segments, perSec(&s.Accepted), perSec(&s.Submitted), perSec(&s.DRs), perSec(s.Billed),
			pct(s.AcceptToSubmit), pct(s.AcceptToDR), s.CPU, s.CPUPerSegment(), mb(s.PeakRSS), s.Complete)
	}
	if r.Ratio != nil {
		fmt.Fprintf(&b, "\nours / Kannel: submitted/s ×%.2f, DR/s ×%.2f, CPU per segment ×%.2f\n",
			r.Ratio["submitted_per_second"], r.Ratio["drs_per_second"], r.Ratio["cpu_per_segment"])
	}
	if r.HalfOf != nil {
		fmt.Fprintf(&b, "\n%s\n", r.HalfOf.verdict(r))
	}

	b.WriteString("\n### Per short code (simulator)\n\n| system | short code | rate/s | submits | accepted | violations | achieved/s | utilisation | max/s |\n| --- | --- | --: | --: | --: | --: | --: | --: | --: |\n")
	for _, s := range r.Systems {
		for _, c := range s.ShortCodes {
			rt, ut := "∞", "–"
			if c.Rate > 0 {
				rt, ut = fmt.Sprint(c.Rate), fmt.Sprintf("%.1f %%", 100*c.Utilisation)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d | %.1f | %s | %d |\n",
				s.Name, c.Code, rt, c.Submits, c.Accepted, c.Violations, c.Achieved, ut, c.MaxSecond)
		}
	}

	b.WriteString("\n### Processes (CPU during the run, peak RSS since start)\n\n| system | process | CPU s | peak RSS MB |\n| --- | --- | --: | --: |\n")
	for _, s := range r.Systems {
		for _, p := range s.Processes {
			fmt.Fprintf(&b, "| %s | %s | %.2f | %s |\n", s.Name, p.Name, p.CPU, mb(p.PeakRSS))
		}
		fmt.Fprintf(&b, "| %s | **total** | **%.2f** | **%s** |\n", s.Name, s.CPU, mb(s.PeakRSS))
	}

	for _, s := range r.Systems {
		if len(s.Lag) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n### JetStream lag at the end (%s)\n\n| stream | consumer | num_pending | num_ack_pending |\n| --- | --- | --: | --: |\n", s.Name)
		for _, l := range s.Lag {
			fmt.Fprintf(&b, "| %s | %s | %d | %d |\n", l.Stream, l.Consumer, l.Pending, l.AckPending)
		}
	}
	for _, s := range r.Systems {
		for _, n := range s.Notes {
			fmt.Fprintf(&b, "\n- %s: %s", s.Name, n)
		}
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}
