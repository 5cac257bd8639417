package smsclink_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/rate"
	"pushsms.io/lib/shortcode"
	"pushsms.io/lib/smscsim"
	"pushsms.io/lib/ucp"
	smsclink "pushsms.io/services/smsc-link"
)

// guarded starts the service on a simulator that enforces rate r (as the
// operator would: a 51 beyond it is NACKed and counted as a violation),
// with the short code's rate given to smsc-link through -rates.
func guarded(t *testing.T, r, window int) *env {
	t.Helper()
	return start(t, smscsim.Config{Accounts: []smscsim.Account{{ShortCode: shortCode, Password: password, Rate: r, Window: 100}}},
		func(c *smsclink.Config) {
			c.Window = window
			c.Rates = rate.Overrides{shortCode: r}
			c.DefaultRate = rate.DefaultRate
			// No slack: the guard counts each 51 until one second
			// after its ACK, so however the loaded test machine
			// delays the writes or the simulator's reading, the
			// simulator's clock cannot see R+1 in a second.
			c.RateSlack = 0
		})
}

// publishN publishes n one-segment messages at once, as a throttle that
// did not pace (or a backlog released after a stall) would.
func publishN(t *testing.T, e *env, prefix string, n int) []string {
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("0190a8e2-%s-7000-8000-%012d", prefix, i)
		e.publish(submitEvent(ids[i], segments(t, ids[i])[0]))
	}
	return ids
}

// checkOperatorView fails t if the simulator saw a rate violation, or a
// second holding more than r submits.
func checkOperatorView(t *testing.T, e *env, r int) smscsim.AccountStats {
	t.Helper()
	st := e.sim.Stats().Accounts[shortCode]
	if st.Violations != 0 {
		t.Errorf("the SMSC counted %d rate violations, want 0", st.Violations)
	}
	for _, sec := range st.PerSecond {
		if sec.Submits > int64(r) {
			t.Errorf("second %d: %d submits at the SMSC, contract %d", sec.Second, sec.Submits, r)
		}
	}
	return st
}

// Without a throttle in front, 300 segments released at once at rate 20
// reach the SMSC at 20 per second: no violation, and it takes the 14 s the
// contract implies (the 300th may go 14 s after the first).
func TestGuardHoldsBurstToRate(t *testing.T) {
	if testing.Short() {
		t.Skip("15 s at the contracted rate")
	}
	e := guarded(t, 20, 100)
	bustest.Eventually(t, wait, func() error {
		if e.svc.Stats().LiveSessions[shortCode] == 0 {
			return fmt.Errorf("no session")
		}
		return nil
	})
	began := time.Now()
	publishN(t, e, "0001", 300)
	bustest.Eventually(t, 60*time.Second, func() error {
		if n := e.sim.Stats().Accounts[shortCode].Accepted; n < 300 {
			return fmt.Errorf("%d of 300 accepted", n)
		}
		return nil
	})
	took := time.Since(began)
	st := checkOperatorView(t, e, 20)
	t.Logf("300 segments at rate 20: %v, %d violations", took.Round(10*time.Millisecond), st.Violations)
	if took < 14*time.Second {
		t.Errorf("300 segments at rate 20 took %v, less than the 14 s the contract allows", took)
	}
}

// After the SMSC stalls (results held back, then the sessions dropped)
// and comes back, what queued in smsc-link meanwhile does not go out as a
// burst; and no message is lost.
func TestGuardAfterStallAndReconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("several seconds at the contracted rate")
	}
	const r = 20
	e := guarded(t, r, 50)
	bustest.Eventually(t, wait, func() error {
		if e.svc.Stats().LiveSessions[shortCode] == 0 {
			return fmt.Errorf("no session")
		}
		return nil
	})
	// Slow SMSC: results come 1.5 s late, so 51s queue behind the window.
	e.sim.SetFaults(smscsim.Faults{AckDelay: 1500 * time.Millisecond})
	ids := publishN(t, e, "0002", 120)
	time.Sleep(2 * time.Second)
	e.sim.DropSessions() // and the link drops, with a queue waiting
	time.Sleep(300 * time.Millisecond)
	e.sim.SetFaults(smscsim.Faults{})
	bustest.Eventually(t, 60*time.Second, func() error {
		got := map[string]bool{}
		for _, rep := range e.reports() {
			got[rep.report.GetMessageId()] = true
		}
		for _, id := range ids {
			if !got[id] {
				return fmt.Errorf("message %s has no report", id)
			}
		}
		return nil
	})
	st := checkOperatorView(t, e, r)
	t.Logf("after stall and reconnect: %d submits, %d accepted, %d violations, %d logins", st.Submits, st.Accepted, st.Violations, st.Logins)
	if st.Logins < 2 {
		t.Errorf("%d logins: the session was not dropped and re-opened", st.Logins)
	}
}

// linkStates follows the short code's key of LINK_STATE.
type linkStates struct {
	mu   sync.Mutex
	seen []shortcode.LinkState
}

func watchLinkState(t *testing.T, e *env) *linkStates {
	t.Helper()
	ls := &linkStates{}
	w, err := e.pub.WatchBucket(context.Background(), bus.BucketLinkState, func(key string, v []byte) {
		if key != shortCode || v == nil {
			return
		}
		st, err := shortcode.ParseLinkState(v)
		if err != nil {
			t.Errorf("link state %q: %v", v, err)
			return
		}
		ls.mu.Lock()
		ls.seen = append(ls.seen, st)
		ls.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return ls
}

// since returns the states written from index i on, and the count.
func (ls *linkStates) since(i int) ([]shortcode.LinkState, int) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return append([]shortcode.LinkState(nil), ls.seen[min(i, len(ls.seen)):]...), len(ls.seen)
}

func (ls *linkStates) waitFor(t *testing.T, from int, d time.Duration, what string, ok func(shortcode.LinkState) bool) (shortcode.LinkState, int) {
	t.Helper()
	var found shortcode.LinkState
	var at int
	bustest.Eventually(t, d, func() error {
		states, n := ls.since(from)
		for i, st := range states {
			if ok(st) {
				found, at = st, n-len(states)+i+1
				return nil
			}
		}
		return fmt.Errorf("no link state with %s in %+v", what, states)
	})
	return found, at
}

// trickle publishes a message every 20 ms until the test ends.
func trickle(t *testing.T, e *env) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			id := fmt.Sprintf("0190a8e2-0003-7000-8000-%012d", i)
			if err := e.pub.Publish(ctx, bus.SubmitSubject(shortCode), submitEvent(id, segments(t, id)[0]), id+"/1"); err != nil && ctx.Err() == nil {
				t.Error(err)
				return
			}
		}
	}()
}

// A burst of NACK 04 slows the short code down within a second; clean
// traffic brings it back to full rate.
func TestBackPressureNack04(t *testing.T) {
	e := start(t, smscsim.Config{}, nil)
	ls := watchLinkState(t, e)
	up, from := ls.waitFor(t, 0, wait, "up at full rate", func(s shortcode.LinkState) bool { return s.Up && s.Slowdown == 1 && s.Reason == "" })
	if up.At.IsZero() {
		t.Errorf("link state without a time: %+v", up)
	}
	trickle(t, e)
	ls.waitFor(t, from, 5*time.Second, "traffic achieved", func(s shortcode.LinkState) bool { return s.Achieved > 0 })

	e.sim.SetFaults(smscsim.Faults{NackSubmits: ucp.ECNotAllowed})
	nackAt := time.Now()
	slowed, from := ls.waitFor(t, from, 3*time.Second, "a slowdown", func(s shortcode.LinkState) bool { return s.Slowdown < 1 })
	if d := time.Since(nackAt); d > time.Second+200*time.Millisecond {
		t.Errorf("slowdown seen %v after the NACKs, want within 1 s", d)
	}
	if slowed.Reason != "nack_04" || !slowed.Up || slowed.Slowdown < 0.1 {
		t.Errorf("after NACK 04: %+v, want up, reason nack_04, slowdown in [0.1, 1)", slowed)
	}
	time.Sleep(300 * time.Millisecond)
	e.sim.SetFaults(smscsim.Faults{})
	back, _ := ls.waitFor(t, from, 15*time.Second, "full rate again", func(s shortcode.LinkState) bool { return s.Slowdown == 1 })
	if back.Reason != "" || !back.Up {
		t.Errorf("recovered: %+v, want up with no reason", back)
	}
	// Never per message: a few writes a second at most.
	states, _ := ls.since(0)
	if secs := time.Since(up.At).Seconds(); float64(len(states)) > 3*secs+3 {
		t.Errorf("%d link state writes in %.0f s, want at most a few per second", len(states), secs)
	}
}

// A dropped session puts the link down, and its reconnection up again.
func TestBackPressureLinkDown(t *testing.T) {
	e := start(t, smscsim.Config{}, nil)
	ls := watchLinkState(t, e)
	_, from := ls.waitFor(t, 0, wait, "up", func(s shortcode.LinkState) bool { return s.Up })
	e.sim.DropSessions()
	down, from := ls.waitFor(t, from, 3*time.Second, "down", func(s shortcode.LinkState) bool { return !s.Up })
	if down.Reason != "link_down" {
		t.Errorf("down: %+v, want reason link_down", down)
	}
	ls.waitFor(t, from, wait, "up after reconnection", func(s shortcode.LinkState) bool { return s.Up && s.Reason == "" })
}

// A rate put in the SHORT_CODES bucket overrides -rates without a restart:
// the SMSC enforces 5/s, smsc-link was started with 20/s, the bucket says
// 5/s, and the SMSC sees no violation.
func TestGuardFollowsBucketRate(t *testing.T) {
	if testing.Short() {
		t.Skip("6 s at the contracted rate")
	}
	e := start(t, smscsim.Config{Accounts: []smscsim.Account{{ShortCode: shortCode, Password: password, Rate: 5, Window: 100}}},
		func(c *smsclink.Config) {
			c.Window = 50
			c.Rates = rate.Overrides{shortCode: 20}
			c.RateSlack = 0 // see guarded
		})
	if err := rate.PutRate(context.Background(), e.pub, shortCode, 5); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the contract: seen within 1 s
	publishN(t, e, "0004", 30)
	bustest.Eventually(t, 60*time.Second, func() error {
		if n := e.sim.Stats().Accounts[shortCode].Accepted; n < 30 {
			return fmt.Errorf("%d of 30 accepted", n)
		}
		return nil
	})
	checkOperatorView(t, e, 5)
}

// scrape returns the value of the Prometheus sample name{short_code=sc}
// on the service's /metrics.
func scrape(t *testing.T, e *env, name string) (float64, error) {
	t.Helper()
	resp, err := http.Get("http://" + e.svc.MetricsAddr() + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	prefix := fmt.Sprintf("%s{short_code=%q} ", name, shortCode)
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no %s for %s in /metrics:\n%s", name, shortCode, body)
}

// An operator reads, per short code, the contracted rate next to what the
// SMSC accepted, the round trip the guard pays and the link's state.
func TestMetricsShowContractedAndAchievedRate(t *testing.T) {
	if testing.Short() {
		t.Skip("3 s at the contracted rate")
	}
	e := guarded(t, 20, 100)
	bustest.Eventually(t, wait, func() error {
		if v, err := scrape(t, e, "pushsms_short_code_link_up"); err != nil || v != 1 {
			return fmt.Errorf("link up = %v (%v)", v, err)
		}
		return nil
	})
	publishN(t, e, "0005", 60)
	bustest.Eventually(t, 30*time.Second, func() error {
		if n := e.sim.Stats().Accounts[shortCode].Accepted; n < 60 {
			return fmt.Errorf("%d of 60 accepted", n)
		}
		return nil
	})
	if v, err := scrape(t, e, "pushsms_short_code_rate_contracted"); err != nil || v != 20 {
		t.Errorf("contracted = %v (%v), want 20", v, err)
	}
	// 60 in 3 s at 20/s: the whole seconds since hold 40 or more, the
	// 10-second mean is at least 4.
	bustest.Eventually(t, 5*time.Second, func() error {
		if v, err := scrape(t, e, "pushsms_short_code_rate_achieved"); err != nil || v < 4 || v > 20 {
			return fmt.Errorf("achieved = %v (%v), want 4 to 20", v, err)
		}
		return nil
	})
	if v, err := scrape(t, e, "pushsms_short_code_ack_round_trip_seconds"); err != nil || v <= 0 || v > 1 {
		t.Errorf("round trip = %v s (%v), want above 0 and below 1 s", v, err)
	}
	if v, err := scrape(t, e, "pushsms_short_code_slowdown"); err != nil || v != 1 {
		t.Errorf("slowdown = %v (%v), want 1", v, err)
	}
}

// A process knows nothing of what the one before it (killed a moment
// ago) sent in the SMSC's last second: its first submit waits one window
// of the guard after its link came up, so that the two cannot put more
// than the rate in one second.
func TestNewProcessWaitsOneWindow(t *testing.T) {
	e := guarded(t, 20, 100)
	publishN(t, e, "0002", 30)
	bustest.Eventually(t, 10*time.Second, func() error {
		if n := e.sim.Stats().Accounts[shortCode].Accepted; n < 20 {
			return fmt.Errorf("%d of 20 accepted", n)
		}
		return nil
	})
	e.stop()
	stopped := time.Now()
	e.startService()
	ids := publishN(t, e, "0003", 5)
	bustest.Eventually(t, 10*time.Second, func() error {
		if n := e.sim.Stats().Accounts[shortCode].Accepted; n < 30+int64(len(ids)) {
			return fmt.Errorf("%d of %d accepted", n, 30+len(ids))
		}
		return nil
	})
	var first time.Time
	for _, s := range e.submissions() {
		if s.Time.After(stopped) && (first.IsZero() || s.Time.Before(first)) {
			first = s.Time
		}
	}
	if gap := first.Sub(stopped); gap < time.Second {
		t.Errorf("the new process's first submit came %v after the old one stopped, want at least the guard's window (1 s)", gap)
	}
	checkOperatorView(t, e, 20)
}

// TestGuardUrgentFirst: a segment the throttle marks urgent (customer
// relationship) goes to the SMSC before the marketing segments already
// waiting at the guard, not behind them.
func TestGuardUrgentFirst(t *testing.T) {
	e := guarded(t, 2, 100)
	bustest.Eventually(t, wait, func() error {
		if e.svc.Stats().LiveSessions[shortCode] == 0 {
			return fmt.Errorf("no session")
		}
		return nil
	})
	publishN(t, e, "0000", 8) // 4 s of marketing at 2/s
	bustest.Eventually(t, wait, func() error {
		if n := len(e.submissions()); n < 1 {
			return fmt.Errorf("%d submits, want the marketing flowing", n)
		}
		return nil
	})
	ev := submitEvent("0190a8e2-1111-7000-8000-000000000001", segments(t, "urgent-otp")[0])
	ev.Urgent = true
	e.publish(ev)
	bustest.Eventually(t, 10*time.Second, func() error {
		if n := len(e.submissions()); n < 9 {
			return fmt.Errorf("%d submits, want 9", n)
		}
		return nil
	})
	for i, s := range e.submissions() {
		if s.Text == "urgent-otp" {
			if i > 3 {
				t.Errorf("the urgent segment was submit %d of 9, want among the first 4 (behind at most the marketing granted before it came)", i+1)
			}
			return
		}
	}
	t.Fatal("the urgent segment never reached the SMSC")
}
