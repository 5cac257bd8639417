package smscsim_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"pushsms.io/lib/smscsim"
	"pushsms.io/lib/ucp"
)

const (
	code     = "36000"
	password = "secret"
)

func startSim(t *testing.T, cfg smscsim.Config) *smscsim.Sim {
	t.Helper()
	if cfg.Accounts == nil {
		cfg.Accounts = []smscsim.Account{{ShortCode: code, Password: password}}
	}
	sim := smscsim.New(cfg)
	if err := sim.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

func dial(t *testing.T, sim *smscsim.Sim, opts ucp.Options) *ucp.Client {
	t.Helper()
	if opts.Login == "" {
		opts.Login, opts.Password = code, password
	}
	c, err := ucp.Dial(t.Context(), sim.Addr(), opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// collector is a Handler that keeps what the SMSC sent us.
type collector struct {
	mu   sync.Mutex
	drs  map[ucp.Key][]ucp.Notification
	mos  []ucp.Deliver
	fail int // NACK this many operations first
	seen int
}

func newCollector() *collector { return &collector{drs: make(map[ucp.Key][]ucp.Notification)} }

func (c *collector) handle(_ context.Context, op ucp.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen++
	if c.fail > 0 {
		c.fail--
		return errors.New("not now")
	}
	switch op := op.(type) {
	case *ucp.Notification:
		c.drs[op.Key()] = append(c.drs[op.Key()], *op)
	case *ucp.Deliver:
		c.mos = append(c.mos, *op)
	}
	return nil
}

func (c *collector) count() (drs, mos int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.drs {
		drs += len(v)
	}
	return drs, len(c.mos)
}

func TestLogin(t *testing.T) {
	sim := startSim(t, smscsim.Config{})
	tests := []struct {
		name, login, pwd string
		wantAuth         bool
	}{
		{"ok", code, password, false},
		{"bad password", code, "wrong", true},
		{"unknown account", "99999", password, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ucp.Dial(t.Context(), sim.Addr(), ucp.Options{Login: tt.login, Password: tt.pwd})
			if got := errors.Is(err, ucp.ErrAuth); got != tt.wantAuth {
				t.Fatalf("Dial error = %v, want ErrAuth %v", err, tt.wantAuth)
			}
			var ne *ucp.NackError
			if tt.wantAuth && (!errors.As(err, &ne) || ne.Code != ucp.ECAuthFailure) {
				t.Errorf("Dial error = %v, want NackError 07", err)
			}
			if c != nil {
				c.Close()
			}
		})
	}
	st := sim.Stats()
	if a := st.Accounts[code]; a.Logins != 1 || a.LoginFailures != 1 || st.UnknownLogins != 1 {
		t.Errorf("got logins %d, failures %d, unknown %d, want 1, 1, 1", a.Logins, a.LoginFailures, st.UnknownLogins)
	}
}

func TestSubmitBeforeLoginIsRefused(t *testing.T) {
	sim := startSim(t, smscsim.Config{})
	c, err := ucp.Dial(t.Context(), sim.Addr(), ucp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := &ucp.Submit{AdC: "33612345678", OAdC: code}
	s.SetText("hi")
	_, err = c.Submit(t.Context(), s)
	var ne *ucp.NackError
	if !errors.As(err, &ne) || ne.Code != ucp.ECAuthFailure {
		t.Errorf("got %v, want NACK 07", err)
	}
}

// TestThousandSubmitsWindow100 drives 1000 submits through a window of 100
// and checks that every DR comes back and matches the (AdC, SCTS) of an ACK.
func TestThousandSubmitsWindow100(t *testing.T) {
	sim := startSim(t, smscsim.Config{DR: smscsim.DRConfig{Delay: 10 * time.Millisecond}})
	col := newCollector()
	c := dial(t, sim, ucp.Options{Window: 100, Handler: col.handle})
	if got := sim.Submissions(); len(got) != 0 {
		t.Fatalf("got %d submissions before sending, want 0", len(got))
	}

	const n = 1000
	keys := make([]ucp.Key, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s := &ucp.Submit{AdC: fmt.Sprintf("336000000%02d", i%20), OAdC: "PushSMS", OTOA: ucp.OTOAAlphanumeric,
				NRq: true, NT: ucp.NotifyDelivered | ucp.NotifyNotDelivered}
			s.SetText(fmt.Sprintf("message %d", i))
			res, err := c.Submit(t.Context(), s)
			keys[i], errs[i] = res.Key, err
			if err == nil && res.Key.AdC != s.AdC {
				errs[i] = fmt.Errorf("ACK for another recipient: key AdC %s", res.Key.AdC)
			}
		})
	}
	wg.Wait()
	seen := make(map[ucp.Key]bool)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
		if seen[keys[i]] {
			t.Fatalf("submit %d: duplicate DR key %v", i, keys[i])
		}
		seen[keys[i]] = true
	}
	eventually(t, "1000 DRs", func() bool { d, _ := col.count(); return d >= n })
	col.mu.Lock()
	for k, drs := range col.drs {
		if !seen[k] || len(drs) != 1 || drs[0].DSt != ucp.StatusDelivered || drs[0].AdC != code {
			t.Errorf("DR %v: matched %v, got %d DRs, first %+v", k, seen[k], len(drs), drs[0])
		}
	}
	col.mu.Unlock()
	eventually(t, "DR ACK counters", func() bool { return sim.Stats().Accounts[code].DRsAcked == n })
	st := sim.Stats().Accounts[code]
	if st.Submits != n || st.Accepted != n || st.DRs != n || st.Violations != 0 || st.WindowDrops != 0 {
		t.Errorf("stats: %+v", st)
	}
	var perSec int64
	for _, s := range st.PerSecond {
		perSec += s.Submits
	}
	if perSec != n {
		t.Errorf("per-second submits add up to %d, want %d", perSec, n)
	}
	if got := len(sim.Submissions()); got != n {
		t.Errorf("recorded %d submissions, want %d", got, n)
	}
}

// TestOutOfOrderResults: random ACK delays reorder the results; each must
// still reach the caller whose submit it answers (distinct recipients).
func TestOutOfOrderResults(t *testing.T) {
	sim := startSim(t, smscsim.Config{})
	sim.SetFaults(smscsim.Faults{AckJitter: 30 * time.Millisecond})
	c := dial(t, sim, ucp.Options{Window: 20})
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Go(func() {
			s := &ucp.Submit{AdC: fmt.Sprintf("3361%07d", i), OAdC: code}
			s.SetText("x")
			res, err := c.Submit(t.Context(), s)
			if err != nil || res.Key.AdC != s.AdC {
				t.Errorf("submit %d: key %v, err %v", i, res.Key, err)
			}
		})
	}
	wg.Wait()
	if st := sim.Stats().Accounts[code]; st.Accepted != 60 || st.WindowDrops != 0 {
		t.Errorf("got %d accepted, %d window drops, want 60 and 0", st.Accepted, st.WindowDrops)
	}
}

func TestKeepAlive(t *testing.T) {
	sim := startSim(t, smscsim.Config{})
	c := dial(t, sim, ucp.Options{KeepAlive: 20 * time.Millisecond})
	eventually(t, "two keep-alives", func() bool { return sim.Stats().Accounts[code].KeepAlives >= 2 })
	if c.Err() != nil {
		t.Errorf("session ended: %v", c.Err())
	}
}

func TestRateViolation(t *testing.T) {
	sim := startSim(t, smscsim.Config{Accounts: []smscsim.Account{{ShortCode: code, Password: password, Rate: 5}}})
	c := dial(t, sim, ucp.Options{Window: 50})
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted, throttled := 0, 0
	for range 50 {
		wg.Go(func() {
			s := &ucp.Submit{AdC: "33612345678", OAdC: code}
			s.SetText("rate")
			_, err := c.Submit(t.Context(), s)
			mu.Lock()
			defer mu.Unlock()
			var ne *ucp.NackError
			switch {
			case err == nil:
				accepted++
			case errors.As(err, &ne) && ne.Code == ucp.ECNotAllowed && ucp.Temporary(err):
				throttled++
			default:
				t.Errorf("submit: %v", err)
			}
		})
	}
	wg.Wait()
	st := sim.Stats().Accounts[code]
	if accepted < 5 || throttled == 0 || accepted+throttled != 50 || st.Violations != int64(throttled) {
		t.Errorf("accepted %d, throttled %d, violations %d", accepted, throttled, st.Violations)
	}
	var recThrottled int
	for _, r := range sim.Submissions() {
		if r.Outcome == "throttled" {
			recThrottled++
		}
	}
	if recThrottled != throttled {
		t.Errorf("recorded %d throttled, want %d", recThrottled, throttled)
	}
}

func TestMODelivery(t *testing.T) {
	sim := startSim(t, smscsim.Config{})
	col := newCollector()
	dial(t, sim, ucp.Options{Handler: col.handle})

	if err := sim.InjectMO(t.Context(), smscsim.MO{ShortCode: code, Originator: "33612345678", Text: "STOP"}); err != nil {
		t.Fatalf("InjectMO: %v", err)
	}
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/mo", "application/json",
		strings.NewReader(`{"short_code":"36000","originator":"33698765432","text":"Ça marche €"}`))
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /mo: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.PostForm(srv.URL+"/mo", url.Values{"short_code": {"11111"}, "originator": {"1"}, "text": {"x"}})
	if err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("POST /mo unknown account: %v %v", resp, err)
	}
	resp.Body.Close()

	eventually(t, "two MOs", func() bool { _, m := col.count(); return m == 2 })
	col.mu.Lock()
	texts := map[string]string{}
	for _, mo := range col.mos {
		text, err := mo.Text()
		if err != nil || mo.AdC != code || mo.SCTS == "" {
			t.Errorf("MO %+v: %v", mo, err)
		}
		texts[mo.OAdC] = text
	}
	col.mu.Unlock()
	if texts["33612345678"] != "STOP" || texts["33698765432"] != "Ça marche €" {
		t.Errorf("got %q", texts)
	}
	eventually(t, "MO ACKs", func() bool { return sim.Stats().Accounts[code].MOsAcked == 2 })

	resp, err = http.Get(srv.URL + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st smscsim.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Accounts[code].MOs != 2 {
		t.Errorf("GET /stats: %+v, %v", st, err)
	}
}

func TestMOWithoutSession(t *testing.T) {
	sim := startSim(t, smscsim.Config{})
	err := sim.InjectMO(t.Context(), smscsim.MO{ShortCode: code, Originator: "33612345678", Text: "x"})
	if !errors.Is(err, smscsim.ErrNoSession) {
		t.Errorf("got %v, want ErrNoSession", err)
	}
}

// TestDRResentUntilACKed: a handler error NACKs the 53; the SMSC resends.
func TestDRResentUntilACKed(t *testing.T) {
	sim := startSim(t, smscsim.Config{RetryDelay: 10 * time.Millisecond, DR: smscsim.DRConfig{Delay: time.Millisecond}})
	col := newCollector()
	col.fail = 2
	c := dial(t, sim, ucp.Options{Handler: col.handle})
	s := &ucp.Submit{AdC: "33612345678", OAdC: code, NRq: true}
	s.SetText("dr")
	res, err := c.Submit(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "DR after two NACKs", func() bool { d, _ := col.count(); return d == 1 })
	col.mu.Lock()
	if got := col.drs[res.Key]; len(got) != 1 || col.seen != 3 {
		t.Errorf("got %d DRs for the key after %d calls, want 1 after 3", len(got), col.seen)
	}
	col.mu.Unlock()
	eventually(t, "DR ACK", func() bool { return sim.Stats().Accounts[code].DRsAcked == 1 })
	if st := sim.Stats().Accounts[code]; st.DRsNacked != 2 || st.DRResends != 2 {
		t.Errorf("got %d NACKs, %d resends, want 2 and 2", st.DRsNacked, st.DRResends)
	}
}

// TestDRSurvivesReconnect: a DR for a dropped session goes to the next login.
func TestDRSurvivesReconnect(t *testing.T) {
	sim := startSim(t, smscsim.Config{DR: smscsim.DRConfig{Delay: 100 * time.Millisecond}})
	c := dial(t, sim, ucp.Options{})
	s := &ucp.Submit{AdC: "33612345678", OAdC: code, NRq: true}
	s.SetText("dr")
	res, err := c.Submit(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	eventually(t, "session gone", func() bool { return sim.Stats().Accounts[code].Sessions == 0 })
	eventually(t, "DR generated", func() bool { return sim.Stats().Accounts[code].DRs == 1 })
	col := newCollector()
	dial(t, sim, ucp.Options{Handler: col.handle})
	eventually(t, "DR on the new session", func() bool { d, _ := col.count(); return d == 1 })
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.drs[res.Key]) != 1 {
		t.Errorf("DR not matched to %v: %v", res.Key, col.drs)
	}
}

func TestDROutcomes(t *testing.T) {
	sim := startSim(t, smscsim.Config{DR: smscsim.DRConfig{Delay: time.Millisecond, Failed: 1, FailedRsn: 107}})
	col := newCollector()
	c := dial(t, sim, ucp.Options{Handler: col.handle})
	s := &ucp.Submit{AdC: "33612345678", OAdC: code, NRq: true}
	s.SetText("dr")
	res, err := c.Submit(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "DR", func() bool { d, _ := col.count(); return d == 1 })
	col.mu.Lock()
	defer col.mu.Unlock()
	if drs := col.drs[res.Key]; len(drs) != 1 || drs[0].DSt != ucp.StatusNotDelivered || drs[0].Rsn != 107 {
		t.Errorf("got %+v", drs)
	}
}

func TestBufferedThenDelivered(t *testing.T) {
	sim := startSim(t, smscsim.Config{DR: smscsim.DRConfig{Delay: time.Millisecond, Buffered: 1}})
	col := newCollector()
	c := dial(t, sim, ucp.Options{Handler: col.handle})
	s := &ucp.Submit{AdC: "33612345678", OAdC: code, NRq: true, NT: ucp.NotifyAll}
	s.SetText("dr")
	res, err := c.Submit(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "two DRs", func() bool { d, _ := col.count(); return d == 2 })
	col.mu.Lock()
	defer col.mu.Unlock()
	drs := col.drs[res.Key]
	if len(drs) != 2 {
		t.Fatalf("got %d DRs for the key", len(drs))
	}
	final := 0
	for _, d := range drs {
		if d.DSt.Final() {
			final++
		}
	}
	if final != 1 {
		t.Errorf("got %d final DRs, want 1: %+v", final, drs)
	}
}

func TestTimeoutNeverResends(t *testing.T) {
	sim := startSim(t, smscsim.Config{})
	c := dial(t, sim, ucp.Options{AckTimeout: 50 * time.Millisecond, KeepAlive: -1})
	sim.SetFaults(smscsim.Faults{DropSubmits: true})
	s := &ucp.Submit{AdC: "33612345678", OAdC: code}
	s.SetText("lost")
	if _, err := c.Submit(t.Context(), s); !errors.Is(err, ucp.ErrTimeout) || !ucp.Temporary(err) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
	sim.SetFaults(smscsim.Faults{})
	if _, err := c.Submit(t.Context(), s); err != nil {
		t.Fatalf("after timeout: %v", err)
	}
	if got := len(sim.Submissions()); got != 2 {
		t.Errorf("SMSC saw %d submits, want 2 (no resend)", got)
	}
}

func TestSCTSUniquePerRecipient(t *testing.T) {
	sim := startSim(t, smscsim.Config{})
	c := dial(t, sim, ucp.Options{Window: 10})
	seen := map[string]bool{}
	for range 5 {
		s := &ucp.Submit{AdC: "33612345678", OAdC: code}
		s.SetText("same second")
		res, err := c.Submit(t.Context(), s)
		if err != nil {
			t.Fatal(err)
		}
		if seen[res.Key.SCTS] {
			t.Fatalf("SCTS %s reused for the same recipient", res.Key.SCTS)
		}
		seen[res.Key.SCTS] = true
	}
}

func TestParseAccounts(t *testing.T) {
	got, err := smscsim.ParseAccounts("36000:secret:10, 36001:pw::5")
	want := []smscsim.Account{{ShortCode: "36000", Password: "secret", Rate: 10}, {ShortCode: "36001", Password: "pw", Window: 5}}
	if err != nil || len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %+v, %v, want %+v", got, err, want)
	}
	for _, bad := range []string{"36000", "36000:pw:x", "36000:pw:1:0", ":pw"} {
		if _, err := smscsim.ParseAccounts(bad); err == nil {
			t.Errorf("ParseAccounts(%q) succeeded, want an error", bad)
		}
	}
}

// TestWindowExceededIsSilent: the SMSC drops operations beyond the window
// without answering, so the client only sees timeouts.
func TestWindowExceededIsSilent(t *testing.T) {
	sim := startSim(t, smscsim.Config{Accounts: []smscsim.Account{{ShortCode: code, Password: password, Window: 2}}})
	c := dial(t, sim, ucp.Options{Window: 5, AckTimeout: 500 * time.Millisecond, KeepAlive: -1})
	sim.SetFaults(smscsim.Faults{AckDelay: 100 * time.Millisecond})
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, timeouts := 0, 0
	for i := range 5 {
		wg.Go(func() {
			s := &ucp.Submit{AdC: fmt.Sprintf("3361000000%d", i), OAdC: code}
			s.SetText("w")
			_, err := c.Submit(t.Context(), s)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ucp.ErrTimeout):
				timeouts++
			default:
				t.Errorf("submit: %v", err)
			}
		})
	}
	wg.Wait()
	st := sim.Stats().Accounts[code]
	if ok != 2 || timeouts != 3 || st.WindowDrops != 3 || st.Submits != 2 {
		t.Errorf("got %d ok, %d timeouts, %d window drops, %d submits; want 2, 3, 3, 2", ok, timeouts, st.WindowDrops, st.Submits)
	}
	window := 0
	for _, r := range sim.Submissions() {
		if r.Outcome == "window" {
			window++
		}
	}
	if window != 3 {
		t.Errorf("recorded %d window drops, want 3", window)
	}
}

// TestExpiredDRAtValidityEnd: an expired DR says when the validity ran out
// (the submit's VP), since the spec has no reason code for it.
func TestExpiredDRAtValidityEnd(t *testing.T) {
	sim := startSim(t, smscsim.Config{DR: smscsim.DRConfig{Delay: time.Millisecond, Expired: 1}})
	col := newCollector()
	c := dial(t, sim, ucp.Options{Handler: col.handle})
	vp := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Minute)
	for _, withVP := range []bool{true, false} {
		s := &ucp.Submit{AdC: "33612345678", OAdC: code, NRq: true}
		if withVP {
			s.VP = ucp.FormatVP(vp, time.UTC)
		}
		s.SetText("expires")
		res, err := c.Submit(t.Context(), s)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "DR", func() bool { col.mu.Lock(); defer col.mu.Unlock(); return len(col.drs[res.Key]) == 1 })
		col.mu.Lock()
		dr := col.drs[res.Key][0]
		col.mu.Unlock()
		dscts, err := ucp.ParseSCTS(dr.DSCTS, time.UTC)
		if err != nil || dr.DSt != ucp.StatusNotDelivered || dr.Rsn != 108 {
			t.Fatalf("got DR %+v, %v", dr, err)
		}
		if atVP := dscts.Equal(vp); atVP != withVP {
			t.Errorf("VP %v: DSCTS %v, want at VP %v", withVP, dscts, withVP)
		}
	}
}

// TestNoRecords: a simulator told to keep no records still answers and
// counts every submit, per second too, but lists none.
func TestNoRecords(t *testing.T) {
	sim := startSim(t, smscsim.Config{NoRecords: true, Accounts: []smscsim.Account{{ShortCode: code, Password: password, Rate: 2}}})
	c := dial(t, sim, ucp.Options{})
	var acked, throttled int
	for i := range 3 {
		s := &ucp.Submit{AdC: "33612345678", OAdC: code}
		s.SetText(fmt.Sprintf("unrecorded %d", i))
		_, err := c.Submit(t.Context(), s)
		var nack *ucp.NackError
		switch {
		case err == nil:
			acked++
		case errors.As(err, &nack):
			throttled++
		default:
			t.Fatal(err)
		}
	}
	if acked != 2 || throttled != 1 {
		t.Errorf("%d ACKed, %d NACKed; want 2 and 1 (rate 2)", acked, throttled)
	}
	st := sim.Stats().Accounts[code]
	if st.Submits != 3 || st.Accepted != 2 || st.Violations != 1 || len(st.PerSecond) == 0 {
		t.Errorf("stats %+v: want 3 submits, 2 accepted, 1 violation, per-second figures", st)
	}
	if got := sim.Submissions(); len(got) != 0 {
		t.Errorf("%d submissions recorded, want none", len(got))
	}
}

// An account changed while its session is open applies its new rate to
// that session at once, as an operator raising a contract does.
func TestAddAccountChangesALiveSession(t *testing.T) {
	sim := startSim(t, smscsim.Config{Accounts: []smscsim.Account{{ShortCode: code, Password: password, Rate: 5}}})
	c := dial(t, sim, ucp.Options{Window: 50})
	submit := func(n int) (accepted int) {
		for range n {
			s := &ucp.Submit{AdC: "33612345678", OAdC: code}
			s.SetText("rate")
			if _, err := c.Submit(t.Context(), s); err == nil {
				accepted++
			}
		}
		return accepted
	}
	if got := submit(10); got != 5 {
		t.Fatalf("%d of 10 accepted at 5/s, want 5", got)
	}
	sim.AddAccount(smscsim.Account{ShortCode: code, Password: password, Rate: 50})
	if got := submit(10); got != 10 {
		t.Errorf("%d of 10 accepted once the rate is 50/s, want 10", got)
	}
	if st := sim.Stats().Accounts[code]; st.Accepted != 15 || st.Violations != 5 {
		t.Errorf("stats %d accepted, %d violations, want 15 and 5: kept across the change", st.Accepted, st.Violations)
	}
}
