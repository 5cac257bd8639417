package smscsim_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pushsms.io/lib/smscsim"
	"pushsms.io/lib/ucp"
)

// do sends an HTTP request to the simulator's handler and decodes a JSON
// answer into out when non-nil.
func do(t *testing.T, srv *httptest.Server, method, path, body string, out any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

func submitN(t *testing.T, c *ucp.Client, n int, nrq bool) (errs []error) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s := &ucp.Submit{AdC: "3361" + strconv.Itoa(1000000+i), OAdC: code, NRq: nrq}
			s.SetText("fault")
			_, err := c.Submit(t.Context(), s)
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		})
	}
	wg.Wait()
	return errs
}

func TestFaultsHTTP(t *testing.T) {
	sim := startSim(t, smscsim.Config{})
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()

	var got smscsim.Faults
	if code := do(t, srv, "GET", "/faults", "", &got); code != 200 || got != (smscsim.Faults{}) {
		t.Fatalf("GET /faults: %d %+v, want 200 and no fault", code, got)
	}
	body := `{"ack_delay":"20ms","ack_jitter":"5ms","nack_rate":0.3,"nack_code":"04","drop_ack_rate":0.1,"garbage_rate":0.05,"nack_submits":8,"drop_mo_acks":true}`
	want := smscsim.Faults{AckDelay: 20 * time.Millisecond, AckJitter: 5 * time.Millisecond, NackRate: 0.3, NackCode: ucp.ECNotAllowed,
		DropAckRate: 0.1, GarbageRate: 0.05, NackSubmits: 8, DropMOACKs: true}
	if code := do(t, srv, "PUT", "/faults", body, &got); code != 200 || got != want {
		t.Fatalf("PUT /faults: %d %+v, want 200 %+v", code, got, want)
	}
	if got := sim.Faults(); got != want {
		t.Errorf("Faults() = %+v, want %+v", got, want)
	}
	for _, bad := range []string{`{"nack_rate":1.5}`, `{"ack_delay":"soon"}`, `{"nack_code":"400"}`, `not json`} {
		if code := do(t, srv, "PUT", "/faults", bad, nil); code != http.StatusBadRequest {
			t.Errorf("PUT /faults %s: got %d, want 400", bad, code)
		}
	}
	if got := sim.Faults(); got != want {
		t.Errorf("after bad PUTs Faults() = %+v, want unchanged %+v", got, want)
	}
	if code := do(t, srv, "PUT", "/faults", `{}`, &got); code != 200 || got != (smscsim.Faults{}) {
		t.Errorf("PUT {}: %d %+v, want no fault", code, got)
	}
}

func TestDropHTTP(t *testing.T) {
	sim := startSim(t, smscsim.Config{})
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	c := dial(t, sim, ucp.Options{})
	var got struct{ Dropped int }
	if code := do(t, srv, "POST", "/drop", "", &got); code != 200 || got.Dropped != 1 {
		t.Fatalf("POST /drop: %d %+v, want 200 and 1 dropped", code, got)
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("client still connected after POST /drop")
	}
	eventually(t, "no session", func() bool { return sim.Stats().Accounts[code].Sessions == 0 })
}

func TestNackStorm(t *testing.T) {
	sim := startSim(t, smscsim.Config{Seed: 7})
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	if code := do(t, srv, "PUT", "/faults", `{"nack_rate":0.3,"nack_code":"04"}`, nil); code != 200 {
		t.Fatalf("PUT /faults: %d", code)
	}
	c := dial(t, sim, ucp.Options{Window: 50})
	const n = 400
	nacked := 0
	for _, err := range submitN(t, c, n, false) {
		var ne *ucp.NackError
		switch {
		case err == nil:
		case errors.As(err, &ne) && ne.Code == ucp.ECNotAllowed:
			nacked++
		default:
			t.Errorf("submit: %v", err)
		}
	}
	st := sim.Stats().Accounts[code]
	if nacked < n*15/100 || nacked > n*45/100 {
		t.Errorf("got %d of %d NACKed, want about 30 %%", nacked, n)
	}
	if st.MaxInFlight < 1 || st.MaxInFlight > 50 {
		t.Errorf("max in flight %d, want 1-50 (the client's window)", st.MaxInFlight)
	}
	if st.FaultNacks != int64(nacked) || st.Accepted != int64(n-nacked) || st.Violations != 0 {
		t.Errorf("stats: fault NACKs %d accepted %d violations %d, want %d %d 0", st.FaultNacks, st.Accepted, st.Violations, nacked, n-nacked)
	}
}

func TestDropAcks(t *testing.T) {
	sim := startSim(t, smscsim.Config{DR: smscsim.DRConfig{Delay: time.Millisecond}})
	sim.SetFaults(smscsim.Faults{DropAckRate: 1})
	col := newCollector()
	c := dial(t, sim, ucp.Options{AckTimeout: 200 * time.Millisecond, Handler: col.handle})
	s := &ucp.Submit{AdC: "33612345678", OAdC: code, NRq: true}
	s.SetText("lost ack")
	if _, err := c.Submit(t.Context(), s); !errors.Is(err, ucp.ErrTimeout) {
		t.Fatalf("submit: got %v, want ErrTimeout", err)
	}
	// The message was accepted all the same: its DR comes.
	eventually(t, "DR of the unacknowledged submit", func() bool { d, _ := col.count(); return d == 1 })
	recs := sim.Submissions()
	if len(recs) != 1 || recs[0].Outcome != "accepted" || !recs[0].AckLost {
		t.Errorf("records %+v, want one accepted with ack_lost", recs)
	}
	if st := sim.Stats().Accounts[code]; st.AcksDropped != 1 || st.Accepted != 1 {
		t.Errorf("stats: acks dropped %d accepted %d, want 1 1", st.AcksDropped, st.Accepted)
	}
}

func TestGarbageFrames(t *testing.T) {
	sim := startSim(t, smscsim.Config{Seed: 3, DR: smscsim.DRConfig{Delay: time.Millisecond}})
	sim.SetFaults(smscsim.Faults{GarbageRate: 1})
	col := newCollector()
	c := dial(t, sim, ucp.Options{Window: 20, Handler: col.handle})
	const n = 60
	for _, err := range submitN(t, c, n, true) {
		if err != nil {
			t.Errorf("submit through garbage: %v", err)
		}
	}
	eventually(t, "every DR through garbage", func() bool { d, _ := col.count(); return d == n })
	// Every frame the SMSC wrote after the login had garbage before it:
	// n results and n DRs at least.
	if st := sim.Stats().Accounts[code]; st.Garbage < 2*n || st.DRsAcked != n {
		t.Errorf("stats: garbage %d, DRs ACKed %d; want ≥ %d and %d", st.Garbage, st.DRsAcked, 2*n, n)
	}
}

// scrape returns the samples of GET /metrics by series, checking every
// line is a comment or "name{labels} value".
func scrape(t *testing.T, srv *httptest.Server) map[string]float64 {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q, want text/plain; version=0.0.4", ct)
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("bad line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad value in %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func TestMetrics(t *testing.T) {
	sim := startSim(t, smscsim.Config{DR: smscsim.DRConfig{Delay: time.Millisecond}})
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	series := func(name string) string { return name + `{account="36000"}` }

	before := scrape(t, srv)
	for _, name := range []string{"smscsim_submits_total", "smscsim_accepted_total", "smscsim_violations_total", "smscsim_dr_sent_total",
		"smscsim_mo_sent_total", "smscsim_window_drops_total", "smscsim_logins_total", "smscsim_login_failures_total", "smscsim_sessions"} {
		if v, ok := before[series(name)]; !ok || v != 0 {
			t.Errorf("%s = %v (present %v), want 0", series(name), v, ok)
		}
	}
	col := newCollector()
	c := dial(t, sim, ucp.Options{Handler: col.handle})
	s := &ucp.Submit{AdC: "33612345678", OAdC: code, NRq: true}
	s.SetText("metrics")
	if _, err := c.Submit(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	eventually(t, "DR", func() bool { d, _ := col.count(); return d == 1 })
	after := scrape(t, srv)
	for name, want := range map[string]float64{
		"smscsim_submits_total": 1, "smscsim_accepted_total": 1, "smscsim_dr_sent_total": 1,
		"smscsim_logins_total": 1, "smscsim_sessions": 1, "smscsim_violations_total": 0,
	} {
		if got := after[series(name)]; got != want {
			t.Errorf("%s = %v, want %v", series(name), got, want)
		}
	}
}

func TestBufferedFirstWithUniformDelay(t *testing.T) {
	sim := startSim(t, smscsim.Config{DR: smscsim.DRConfig{
		Delay: time.Millisecond, DelayDist: smscsim.DelayUniform, DelayMax: 20 * time.Millisecond, Buffered: 1}})
	col := newCollector()
	c := dial(t, sim, ucp.Options{Window: 20, Handler: col.handle})
	const n = 20
	for _, err := range submitN(t, c, n, true) {
		if err != nil {
			t.Fatal(err)
		}
	}
	// NRq without NT: no buffered report asked, so only finals.
	eventually(t, "finals", func() bool { d, _ := col.count(); return d == n })

	col2 := newCollector()
	c2 := dial(t, sim, ucp.Options{Window: 20, Handler: col2.handle})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s := &ucp.Submit{AdC: "3370" + strconv.Itoa(1000000+i), OAdC: code, NRq: true, NT: ucp.NotifyAll}
			s.SetText("buffered")
			if _, err := c2.Submit(t.Context(), s); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	eventually(t, "buffered then final", func() bool { d, _ := col2.count(); return d == 2*n })
	col2.mu.Lock()
	defer col2.mu.Unlock()
	for k, drs := range col2.drs {
		if len(drs) != 2 || drs[0].DSt != ucp.StatusBuffered || !drs[1].DSt.Final() {
			t.Errorf("%v: got DSt sequence %v, want buffered then final", k, dsts(drs))
		}
	}
}

func dsts(drs []ucp.Notification) []ucp.DeliveryStatus {
	var out []ucp.DeliveryStatus
	for _, d := range drs {
		out = append(out, d.DSt)
	}
	return out
}

// FuzzFaultsJSON checks that PUT /faults bodies either fail or round-trip:
// what GET /faults answers reads back as the same knobs.
func FuzzFaultsJSON(f *testing.F) {
	f.Add([]byte(`{"ack_delay":"250ms","nack_rate":0.3,"nack_code":"04"}`))
	f.Add([]byte(`{"nack_submits":8,"drop_ack_rate":1,"garbage_rate":0.5,"drop_mo_acks":true}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var got smscsim.Faults
		if err := json.Unmarshal(b, &got); err != nil {
			return
		}
		if got.NackRate < 0 || got.NackRate > 1 || got.AckDelay < 0 || got.AckJitter < 0 {
			t.Fatalf("accepted out-of-range knobs %+v from %q", got, b)
		}
		out, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		var back smscsim.Faults
		if err := json.Unmarshal(out, &back); err != nil || back != got {
			t.Fatalf("round trip of %q: got %+v (%v), want %+v", out, back, err, got)
		}
	})
}
