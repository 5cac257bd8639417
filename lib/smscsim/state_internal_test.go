package smscsim

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"pushsms.io/lib/ucp"
)

// BenchmarkSave writes the state file with 5 000 DRs pending (a second of
// traffic at 5 000 SMS/s with DRs a second behind), as the 200-ms debounce
// does under load.
func BenchmarkSave(b *testing.B) {
	s := New(Config{
		StateFile: filepath.Join(b.TempDir(), "smsc-sim.json"),
		Accounts:  []Account{{ShortCode: "36000", Password: "secret"}},
	})
	acc := s.byCode["36000"]
	due := time.Now().Add(time.Hour)
	for i := range 5000 {
		scts := ucp.FormatSCTS(time.Now(), time.UTC)
		n := &ucp.Notification{AdC: "36000", OAdC: fmt.Sprintf("3361%07d", i), SCTS: scts, DSt: ucp.StatusDelivered}
		n.SetText("Message " + scts + " has been delivered")
		s.pending[&outOp{acc: acc, msg: n, due: due}] = struct{}{}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.save(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSCTSKeptOnlyWhileTheyCanCollide: the last SCTS of each recipient is
// kept as long as a new one could collide with it, no longer, so that what
// the state file lists (under the lock every submit takes) is seconds of
// recipients, not every recipient since the start.
func TestSCTSKeptOnlyWhileTheyCanCollide(t *testing.T) {
	s := New(Config{Accounts: []Account{{ShortCode: "36000", Password: "secret"}}})
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	scts := func(adc string, now time.Time) time.Time {
		s.mu.Lock()
		defer s.mu.Unlock()
		v, err := ucp.ParseSCTS(s.sctsLocked(adc, now), time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	// 20 s at 5 000 recipients a second.
	const perSecond = 5000
	for sec := range 20 {
		now := t0.Add(time.Duration(sec) * time.Second)
		for i := range perSecond {
			scts(fmt.Sprintf("336%08d", sec*perSecond+i), now.Add(time.Duration(i)*time.Second/perSecond))
		}
	}
	if n := len(s.lastSCTS); n > 2*perSecond {
		t.Errorf("after 20 s at %d recipients/s, %d recipients' SCTS kept, want at most 2 s of them (%d)", perSecond, n, 2*perSecond)
	}
	if n := len(s.sctsOrder) - s.sctsHead; n != len(s.lastSCTS) {
		t.Errorf("%d SCTS in hand-out order for %d recipients", n, len(s.lastSCTS))
	}

	// Unique per recipient, bumped SCTS included: three messages in one
	// second take that second and the next two; a fourth a second later
	// still goes after them, however long the others have been forgotten.
	now := t0.Add(time.Minute)
	want := []time.Time{now, now.Add(time.Second), now.Add(2 * time.Second)}
	for i, w := range want {
		if got := scts("33612345678", now); !got.Equal(w) {
			t.Errorf("message %d to one recipient in one second: SCTS %v, want %v", i+1, got, w)
		}
	}
	for i := range perSecond {
		scts(fmt.Sprintf("337%08d", i), now.Add(1500*time.Millisecond))
	}
	if got, w := scts("33612345678", now.Add(1500*time.Millisecond)), now.Add(3*time.Second); !got.Equal(w) {
		t.Errorf("fourth message a second later: SCTS %v, want %v (after the bumped ones)", got, w)
	}
	if got, w := scts("33612345678", now.Add(10*time.Second)), now.Add(10*time.Second); !got.Equal(w) {
		t.Errorf("a message 10 s later: SCTS %v, want the current second %v", got, w)
	}
}
