package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"pushsms.io/lib/smscsim"
)

// Result is one short code's figures, from the SMSC simulator's
// per-second statistics: what the operator sees.
type Result struct {
	ShortCode string `json:"short_code"`
	// Contracted is the short code's rate, SMS-MT (segments) per second.
	Contracted int `json:"contracted"`
	// Submits is every OT 51 the SMSC received for the short code.
	Submits int64 `json:"submits"`
	// Accepted is the submits the SMSC ACKed.
	Accepted int64 `json:"accepted"`
	// Achieved is the mean of accepted submits per second over the steady
	// seconds: from the first second with traffic to the last, both
	// excluded (they are partial seconds).
	Achieved float64 `json:"achieved"`
	// Ratio is Achieved / Contracted.
	Ratio float64 `json:"ratio"`
	// SteadySeconds is how many seconds Achieved averages.
	SteadySeconds int `json:"steady_seconds"`
	// MinSecond is the fewest accepted submits in a steady second.
	MinSecond int64 `json:"min_second"`
	// MaxSecond is the most submits in any second.
	MaxSecond int64 `json:"max_second"`
	// OverSeconds counts the calendar seconds holding more submits than
	// the contracted rate.
	OverSeconds int `json:"over_seconds"`
	// Violations counts the submits the SMSC refused for exceeding the
	// rate in its sliding one-second window (NACK 04): every one-second
	// window, not only calendar seconds.
	Violations int64 `json:"violations"`
	// PerSecond is the simulator's history of the short code, for a
	// closer look at where a violation or a dip happened.
	PerSecond []smscsim.SecondStats `json:"per_second"`
}

// analyze computes a short code's figures from its per-second history.
func analyze(shortCode string, rate int, st smscsim.AccountStats) Result {
	r := Result{ShortCode: shortCode, Contracted: rate, Submits: st.Submits, Accepted: st.Accepted, Violations: st.Violations}
	secs := slices.Clone(st.PerSecond)
	slices.SortFunc(secs, func(a, b smscsim.SecondStats) int { return int(a.Second - b.Second) })
	r.PerSecond = secs
	for _, s := range secs {
		r.MaxSecond = max(r.MaxSecond, s.Submits)
		if rate > 0 && s.Submits > int64(rate) {
			r.OverSeconds++
		}
	}
	if len(secs) < 3 {
		return r
	}
	// Seconds without traffic are absent from the history: count them as
	// zero, they are seconds the short code did not use.
	first, last := secs[0].Second+1, secs[len(secs)-1].Second-1
	byS := make(map[int64]int64, len(secs))
	for _, s := range secs {
		byS[s.Second] = s.Accepted
	}
	var sum int64
	r.MinSecond = -1
	for t := first; t <= last; t++ {
		n := byS[t]
		sum += n
		if r.MinSecond < 0 || n < r.MinSecond {
			r.MinSecond = n
		}
	}
	r.SteadySeconds = int(last - first + 1)
	r.Achieved = float64(sum) / float64(r.SteadySeconds)
	if rate > 0 {
		r.Ratio = r.Achieved / float64(rate)
	}
	return r
}

// printTable writes the results as an aligned table, then a summary line.
func printTable(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "short code\tcontracted/s\tachieved/s\t%\tsteady s\tmin/s\tmax/s\tsubmits\tover-rate s\tviolations\t")
	var worst, sum float64 = -1, 0
	var viol int64
	var over int
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.1f\t%d\t%d\t%d\t%d\t%d\t%d\t\n",
			r.ShortCode, r.Contracted, r.Achieved, 100*r.Ratio, r.SteadySeconds, r.MinSecond, r.MaxSecond, r.Submits, r.OverSeconds, r.Violations)
		if worst < 0 || r.Ratio < worst {
			worst = r.Ratio
		}
		sum += r.Ratio
		viol += r.Violations
		over += r.OverSeconds
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// The mean says more than the lowest from one run to the next: at 10/s,
	// one segment less over 20 s moves a short code by half a point.
	_, err := fmt.Fprintf(w, "%d short codes: lowest achieved %.1f %% of contract (mean %.2f %%), %d over-rate seconds, %d violations\n",
		len(results), 100*max(worst, 0), 100*sum/float64(max(len(results), 1)), over, viol)
	return err
}

// segmentText returns a GSM 7-bit text of n segments (1–3), naming brand:
// 1 segment holds 160 characters, a part of a longer one 153; marketing
// adds a STOP mention of up to 30.
func segmentText(brand string, n, i int) string {
	limits := map[int]int{1: 120, 2: 270, 3: 420} // room for a STOP mention
	var b strings.Builder
	fmt.Fprintf(&b, "%s : message %d. ", brand, i)
	for b.Len() < limits[n] {
		b.WriteString("Votre commande est en route. ")
	}
	return b.String()[:limits[n]]
}
