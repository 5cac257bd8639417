package smscsim

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// metric is one family of the Prometheus exposition.
type metric struct {
	name, typ, help string
	value           func(AccountStats) float64
}

var accountMetrics = []metric{
	{"smscsim_submits_total", "counter", "OT 51 received inside the window.", func(a AccountStats) float64 { return float64(a.Submits) }},
	{"smscsim_accepted_total", "counter", "OT 51 ACKed.", func(a AccountStats) float64 { return float64(a.Accepted) }},
	{"smscsim_violations_total", "counter", "OT 51 NACKed for exceeding the account's rate.", func(a AccountStats) float64 { return float64(a.Violations) }},
	{"smscsim_window_drops_total", "counter", "OT 51 dropped silently beyond the window.", func(a AccountStats) float64 { return float64(a.WindowDrops) }},
	{"smscsim_dr_sent_total", "counter", "OT 53 delivery notifications released.", func(a AccountStats) float64 { return float64(a.DRs) }},
	{"smscsim_dr_acked_total", "counter", "OT 53 ACKed by the client.", func(a AccountStats) float64 { return float64(a.DRsAcked) }},
	{"smscsim_mo_sent_total", "counter", "OT 52 MOs injected.", func(a AccountStats) float64 { return float64(a.MOs) }},
	{"smscsim_mo_acked_total", "counter", "OT 52 ACKed by the client.", func(a AccountStats) float64 { return float64(a.MOsAcked) }},
	{"smscsim_logins_total", "counter", "Successful OT 60 logins.", func(a AccountStats) float64 { return float64(a.Logins) }},
	{"smscsim_login_failures_total", "counter", "OT 60 logins refused (bad password).", func(a AccountStats) float64 { return float64(a.LoginFailures) }},
	{"smscsim_keepalives_total", "counter", "OT 31 received.", func(a AccountStats) float64 { return float64(a.KeepAlives) }},
	{"smscsim_fault_nacks_total", "counter", "OT 51 NACKed by fault injection.", func(a AccountStats) float64 { return float64(a.FaultNacks) }},
	{"smscsim_acks_dropped_total", "counter", "OT 51 ACKs not sent by fault injection.", func(a AccountStats) float64 { return float64(a.AcksDropped) }},
	{"smscsim_garbage_total", "counter", "Garbage chunks sent by fault injection.", func(a AccountStats) float64 { return float64(a.Garbage) }},
	{"smscsim_sessions", "gauge", "Sessions logged in now.", func(a AccountStats) float64 { return float64(a.Sessions) }},
	{"smscsim_max_in_flight", "gauge", "Most OT 51 a session had unanswered at once.", func(a AccountStats) float64 { return float64(a.MaxInFlight) }},
}

// WriteMetrics writes the counters in the Prometheus text exposition
// format 0.0.4, one series per account (label account = short code).
func (s *Sim) WriteMetrics(w io.Writer) error {
	st := s.Stats()
	codes := make([]string, 0, len(st.Accounts))
	for c := range st.Accounts {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	bw := bufio.NewWriter(w)
	for _, m := range accountMetrics {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", m.name, m.help, m.name, m.typ)
		for _, c := range codes {
			fmt.Fprintf(bw, "%s{account=\"%s\"} %s\n", m.name, labelEscape(c), strconv.FormatFloat(m.value(st.Accounts[c]), 'g', -1, 64))
		}
	}
	fmt.Fprintf(bw, "# HELP smscsim_unknown_logins_total OT 60 logins to unknown accounts.\n# TYPE smscsim_unknown_logins_total counter\nsmscsim_unknown_logins_total %d\n", st.UnknownLogins)
	return bw.Flush()
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func labelEscape(v string) string { return labelEscaper.Replace(v) }
