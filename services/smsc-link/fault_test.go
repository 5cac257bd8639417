package smsclink_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/smscsim"
	"pushsms.io/lib/ucp"
	smsclink "pushsms.io/services/smsc-link"
)

// faultRun publishes n one-segment marketing messages whose text is their
// id, lets fault act while they flow, and returns, once every message has a
// report, what the SMSC accepted per text and the states reported per id.
func faultRun(t *testing.T, e *env, n int, fault func(sent int)) (accepted map[string]int, states map[string][]string) {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("0190a8e2-0000-7000-8000-%012d", i)
		e.publish(submitEvent(ids[i], segments(t, ids[i])[0]))
	}
	fault(n)
	bustest.Eventually(t, 60*time.Second, func() error {
		states = map[string][]string{}
		for _, r := range e.reports() {
			st := strings.Split(r.subject, ".")[2]
			states[r.report.GetMessageId()] = append(states[r.report.GetMessageId()], st)
		}
		for _, id := range ids {
			if len(states[id]) == 0 {
				return fmt.Errorf("message %s has no report: lost", id)
			}
		}
		return nil
	})
	e.idle(uint64(n))
	accepted = map[string]int{}
	for _, s := range e.submissions() {
		if s.Outcome == "accepted" || s.Outcome == "ack_lost" {
			accepted[s.Text]++
		}
	}
	return accepted, states
}

// duplicates counts the texts the SMSC accepted more than once.
func duplicates(accepted map[string]int) int {
	d := 0
	for _, c := range accepted {
		d += c - 1
	}
	return d
}

// The link drops while a window of submits is in flight: no segment is
// lost, none is resent on a session, the ones in doubt are reported
// UNKNOWN, and what the SMSC got twice is counted and bounded by the window.
func TestFaultLinkDropMidWindow(t *testing.T) {
	const window = 10
	e := start(t, smscsim.Config{}, func(c *smsclink.Config) { c.Window = window })
	e.sim.SetFaults(smscsim.Faults{AckDelay: 30 * time.Millisecond})
	accepted, states := faultRun(t, e, 200, func(int) {
		bustest.Eventually(t, wait, func() error {
			if n := len(e.submissions()); n < 60 {
				return fmt.Errorf("%d submits so far", n)
			}
			return nil
		})
		if n := e.sim.DropSessions(); n == 0 {
			t.Fatal("no session to drop")
		}
		e.sim.SetFaults(smscsim.Faults{})
	})
	unknown := 0
	for _, st := range states {
		if strings.Join(st, ",") == "unknown" {
			unknown++
		}
	}
	d := duplicates(accepted)
	t.Logf("link dropped mid-window: %d segments in doubt (UNKNOWN), %d received twice by the SMSC", unknown, d)
	if d != 0 {
		t.Errorf("the SMSC accepted %d segments twice; marketing segments are never resent", d)
	}
	if unknown > window {
		t.Errorf("%d segments in doubt, more than the window (%d)", unknown, window)
	}
}

// ACKs slower than the ACK timeout: the segments are reported UNKNOWN and
// never resent on the live session; the late ACKs still give them their
// DR keys, so their delivery reports resolve them.
func TestFaultAckPastTimeout(t *testing.T) {
	e := start(t, smscsim.Config{}, func(c *smsclink.Config) { c.Window = 10; c.AckTimeout = 200 * time.Millisecond })
	e.sim.SetFaults(smscsim.Faults{AckDelay: 400 * time.Millisecond})
	accepted, states := faultRun(t, e, 20, func(int) {})
	for id, st := range states {
		if !slices.Contains(st, "unknown") || slices.Contains(st, "submitted") {
			t.Errorf("message %s: reports %v, want UNKNOWN and no SUBMITTED", id, st)
		}
	}
	if d := duplicates(accepted); d != 0 {
		t.Errorf("the SMSC accepted %d segments twice after ACK timeouts", d)
	}
	if len(accepted) != 20 {
		t.Errorf("the SMSC accepted %d distinct segments, want 20", len(accepted))
	}
	for id := range states {
		e.waitReports(id, "unknown", "delivered")
	}
	if n := e.svc.Stats().LateAcks; n != 20 {
		t.Errorf("%d late ACKs counted, want 20", n)
	}
}

// A storm of temporary NACKs (04): every segment is retried until accepted,
// exactly once, and nothing is reported for the NACKed attempts.
func TestFaultNackStorm(t *testing.T) {
	e := start(t, smscsim.Config{}, func(c *smsclink.Config) { c.Window = 10 })
	e.sim.SetFaults(smscsim.Faults{NackRate: 0.3, NackCode: ucp.ECNotAllowed})
	accepted, states := faultRun(t, e, 100, func(int) {})
	// A DR may be stored before its SUBMITTED report: the status view
	// orders them by state, not by arrival.
	for id, st := range states {
		if !slices.Contains(st, "submitted") || slices.Contains(st, "failed") || slices.Contains(st, "unknown") {
			t.Errorf("message %s: reports %v, want SUBMITTED and no failure", id, st)
		}
	}
	nacked := 0
	for _, s := range e.submissions() {
		if s.Outcome == "rejected" {
			nacked++
		}
	}
	t.Logf("NACK storm: %d temporary NACKs, all retried", nacked)
	if nacked == 0 {
		t.Error("the storm NACKed nothing")
	}
	for text, c := range accepted {
		if c != 1 {
			t.Errorf("segment %s accepted %d times", text, c)
		}
	}
	if len(accepted) != 100 {
		t.Errorf("%d segments accepted, want 100", len(accepted))
	}
}
