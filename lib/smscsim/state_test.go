package smscsim_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pushsms.io/lib/smscsim"
	"pushsms.io/lib/ucp"
)

// restartable runs a simulator on a state file and can stop and start it
// again on the same file, as the one-machine mode does across restarts.
type restartable struct {
	t   *testing.T
	cfg smscsim.Config
	sim *smscsim.Sim
}

func newRestartable(t *testing.T, cfg smscsim.Config) *restartable {
	t.Helper()
	cfg.Accounts = []smscsim.Account{{ShortCode: code, Password: password}}
	cfg.StateFile = filepath.Join(t.TempDir(), "smsc-sim.json")
	r := &restartable{t: t, cfg: cfg}
	r.start()
	t.Cleanup(func() { r.sim.Close() })
	return r
}

func (r *restartable) start() {
	r.t.Helper()
	r.sim = smscsim.New(r.cfg)
	if err := r.sim.Start(r.t.Context()); err != nil {
		r.t.Fatalf("Start: %v", err)
	}
}

func (r *restartable) restart() {
	r.t.Helper()
	if err := r.sim.Close(); err != nil {
		r.t.Fatalf("Close: %v", err)
	}
	r.start()
}

// TestStateKeepsScheduledDR: a DR not yet due when the simulator stops is
// delivered, with its original key, at the next login after a restart.
func TestStateKeepsScheduledDR(t *testing.T) {
	r := newRestartable(t, smscsim.Config{DR: smscsim.DRConfig{Delay: 300 * time.Millisecond}})
	c, err := ucp.Dial(t.Context(), r.sim.Addr(), ucp.Options{Login: code, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	s := &ucp.Submit{AdC: "33612345678", OAdC: code, NRq: true}
	s.SetText("restart")
	res, err := c.Submit(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	// Written soon after the change, not only at Close (a crash keeps it).
	eventually(t, "the scheduled DR in the state file", func() bool { return pendingInFile(t, r.cfg.StateFile) == 1 })
	c.Close()
	r.restart()

	col := newCollector()
	dial(t, r.sim, ucp.Options{Handler: col.handle})
	eventually(t, "the DR after the restart", func() bool { d, _ := col.count(); return d == 1 })
	col.mu.Lock()
	drs := col.drs[res.Key]
	col.mu.Unlock()
	if len(drs) != 1 || drs[0].DSt != ucp.StatusDelivered || drs[0].DSCTS == "" {
		t.Fatalf("got DRs %+v for key %v, want one delivered", drs, res.Key)
	}
	eventually(t, "DR ACK", func() bool { return r.sim.Stats().Accounts[code].DRsAcked == 1 })

	// ACKed: forgotten, not delivered again after another restart.
	r.restart()
	col2 := newCollector()
	c2 := dial(t, r.sim, ucp.Options{Handler: col2.handle})
	// A submit's DR comes after anything queued at login.
	s.SetText("after")
	res2, err := c2.Submit(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new DR", func() bool { d, _ := col2.count(); return d >= 1 })
	col2.mu.Lock()
	defer col2.mu.Unlock()
	if d := len(col2.drs); d != 1 || len(col2.drs[res2.Key]) != 1 {
		t.Errorf("after a second restart got DRs %v, want only the new one %v", col2.drs, res2.Key)
	}
}

// TestStateKeepsUnackedOperations: a DR and an MO sent but never ACKed
// (the client's results are lost) are sent again after a restart.
func TestStateKeepsUnackedOperations(t *testing.T) {
	r := newRestartable(t, smscsim.Config{DR: smscsim.DRConfig{Delay: time.Millisecond}})
	r.sim.SetFaults(smscsim.Faults{DropMOACKs: true})
	col := newCollector()
	c, err := ucp.Dial(t.Context(), r.sim.Addr(), ucp.Options{Login: code, Password: password, Handler: col.handle})
	if err != nil {
		t.Fatal(err)
	}
	s := &ucp.Submit{AdC: "33612345678", OAdC: code, NRq: true}
	s.SetText("lost ACK")
	res, err := c.Submit(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.sim.InjectMO(t.Context(), smscsim.MO{ShortCode: code, Originator: "33698765432", Text: "STOP"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "DR and MO on the first session", func() bool { d, m := col.count(); return d == 1 && m == 1 })
	c.Close()
	r.restart() // faults are not kept: the next ACKs count

	col2 := newCollector()
	dial(t, r.sim, ucp.Options{Handler: col2.handle})
	eventually(t, "DR and MO again", func() bool { d, m := col2.count(); return d == 1 && m == 1 })
	col2.mu.Lock()
	if len(col2.drs[res.Key]) != 1 || col2.mos[0].OAdC != "33698765432" {
		t.Errorf("got DRs %v and MOs %v", col2.drs, col2.mos)
	}
	col2.mu.Unlock()
	eventually(t, "ACKs", func() bool {
		st := r.sim.Stats().Accounts[code]
		return st.DRsAcked == 1 && st.MOsAcked == 1
	})
}

// TestStateKeepsSCTSUnique: a burst pushes a recipient's SCTS seconds
// ahead; after a quick restart the next SCTS for them must still be new.
func TestStateKeepsSCTSUnique(t *testing.T) {
	r := newRestartable(t, smscsim.Config{})
	seen := map[string]bool{}
	submit := func() {
		t.Helper()
		c, err := ucp.Dial(t.Context(), r.sim.Addr(), ucp.Options{Login: code, Password: password})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for range 3 {
			s := &ucp.Submit{AdC: "33612345678", OAdC: code}
			s.SetText("burst")
			res, err := c.Submit(t.Context(), s)
			if err != nil {
				t.Fatal(err)
			}
			if seen[res.Key.SCTS] {
				t.Fatalf("SCTS %s handed out twice for the recipient", res.Key.SCTS)
			}
			seen[res.Key.SCTS] = true
		}
	}
	submit()
	r.restart()
	submit()
}

func TestStateFileErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ name, content string }{
		{"not JSON", "{"},
		{"other version", `{"version": 99}`},
		{"bad frame", `{"version": 1, "pending": [{"account": "36000", "frame": "00/00019/R/60/A//6E"}]}`},
		{"not a 52 or 53", `{"version": 1, "pending": [{"account": "36000", "frame": "00/00019/R/60/A//6D"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(dir, tt.name+".json")
			if err := os.WriteFile(f, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			sim := smscsim.New(smscsim.Config{StateFile: f, Accounts: []smscsim.Account{{ShortCode: code, Password: password}}})
			if err := sim.Start(t.Context()); err == nil {
				sim.Close()
				t.Errorf("Start with a state file %s succeeded, want an error", tt.name)
			}
		})
	}
}

// pendingInFile counts the pending operations in a state file, -1 when it
// does not exist yet.
func pendingInFile(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return -1
	}
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Pending []json.RawMessage `json:"pending"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("state file: %v", err)
	}
	return len(st.Pending)
}

// TestStateLoadsIndentedFile: a state file written indented, as versions
// before the compact one did, is still loaded (its pending DR delivered,
// its recipients' last SCTS kept), and the next save writes it compact.
func TestStateLoadsIndentedFile(t *testing.T) {
	n := ucp.Notification{AdC: code, OAdC: "33612345678", SCTS: "281126120000", DSt: ucp.StatusDelivered, DSCTS: "281126120005"}
	n.SetText("Message 281126120000 has been delivered")
	frame, err := ucp.AppendFrame(nil, 0, &n)
	if err != nil {
		t.Fatal(err)
	}
	last := time.Now().UTC().Add(5 * time.Second).Truncate(time.Second)
	old := `{
  "version": 1,
  "saved_at": "2026-11-28T03:00:00Z",
  "pending": [
    {
      "account": "` + code + `",
      "frame": "` + string(frame[1:len(frame)-1]) + `"
    }
  ],
  "last_scts": [
    {
      "adc": "33612345678",
      "scts": "` + last.Format(time.RFC3339) + `"
    }
  ]
}
`
	f := filepath.Join(t.TempDir(), "smsc-sim.json")
	if err := os.WriteFile(f, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	sim := smscsim.New(smscsim.Config{StateFile: f, Accounts: []smscsim.Account{{ShortCode: code, Password: password}}})
	if err := sim.Start(t.Context()); err != nil {
		t.Fatalf("Start on an indented state file: %v", err)
	}
	t.Cleanup(func() { sim.Close() })

	col := newCollector()
	c := dial(t, sim, ucp.Options{Handler: col.handle})
	eventually(t, "the DR from the file", func() bool { d, _ := col.count(); return d == 1 })
	col.mu.Lock()
	drs := col.drs[n.Key()]
	col.mu.Unlock()
	if len(drs) != 1 || drs[0].DSt != ucp.StatusDelivered {
		t.Fatalf("got DRs %v, want the delivered one of %v", col.drs, n.Key())
	}
	s := &ucp.Submit{AdC: "33612345678", OAdC: code}
	s.SetText("after load")
	res, err := c.Submit(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ucp.ParseSCTS(res.Key.SCTS, time.UTC); err != nil || !got.After(last) {
		t.Errorf("SCTS %s after the load, want after the file's %v", res.Key.SCTS, last)
	}
	eventually(t, "the DR ACK saved", func() bool { return pendingInFile(t, f) == 0 })
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "\n") {
		t.Errorf("state file written indented:\n%s", b)
	}
}
