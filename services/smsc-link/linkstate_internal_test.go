package smsclink

import (
	"testing"
	"time"

	"pushsms.io/lib/ucp"
)

// The slowdown policy step by step: halve once per second on a
// congestion NACK or timeout (floor 0.1), ×1.25 per clean second up to 1;
// other errors do not count; achieved averages 10 whole seconds.
func TestLinkStatePolicy(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 20, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	nack := func(c ucp.ErrorCode) error { return &ucp.NackError{OT: ucp.OTSubmit, Code: c} }
	ls := newLinkState()
	if st := ls.snapshot(t0); st.Up || st.Reason != reasonLinkDown || st.Slowdown != 1 {
		t.Fatalf("at start: %+v, want down at slowdown 1", st)
	}
	ls.setUp(true)
	steps := []struct {
		name     string
		do       func()
		slowdown float64
		reason   string
	}{
		{"up", func() {}, 1, ""},
		{"NACK 01 is not congestion", func() { ls.result(at(100), 0, nack(ucp.ECChecksum)) }, 1, ""},
		{"NACK 04 halves", func() { ls.result(at(200), 0, nack(ucp.ECNotAllowed)) }, 0.5, reasonNack04},
		{"same second: once", func() { ls.result(at(900), 0, nack(ucp.ECNotAllowed)) }, 0.5, reasonNack04},
		{"timeout next second halves", func() { ls.result(at(1100), 0, ucp.ErrTimeout) }, 0.25, reasonAckTimeout},
		{"not a clean second yet", func() { ls.tick(at(1500)) }, 0.25, reasonAckTimeout},
		{"clean second", func() { ls.tick(at(2200)) }, 0.313, reasonAckTimeout},
		{"floor", func() {
			for s := 3; s < 10; s++ {
				ls.result(at(s*1000), 0, nack(ucp.ECNotAllowed))
			}
		}, 0.1, reasonNack04},
		{"recovers to 1", func() {
			for s := 11; s < 30; s++ {
				ls.tick(at(s * 1000))
			}
		}, 1, ""},
		{"down keeps slowdown", func() { ls.setUp(false) }, 1, reasonLinkDown},
		{"no recovery while down", func() {
			ls.setUp(true)
			ls.result(at(31000), 0, nack(ucp.ECNotAllowed))
			ls.setUp(false)
			ls.tick(at(33000))
		}, 0.5, reasonLinkDown},
	}
	for _, s := range steps {
		s.do()
		st := ls.snapshot(at(40000))
		if st.Slowdown != s.slowdown || st.Reason != s.reason {
			t.Fatalf("%s: slowdown %v reason %q, want %v %q", s.name, st.Slowdown, st.Reason, s.slowdown, s.reason)
		}
	}

	ls = newLinkState()
	for s := range 12 {
		for i := range 20 {
			// One slow ACK (40 ms) at 8 s, 1.5 ms otherwise.
			rtt := 1500 * time.Microsecond
			if s == 8 && i == 3 {
				rtt = 40 * time.Millisecond
			}
			ls.result(at(s*1000+500), rtt, nil)
		}
	}
	// At 12.3 s the whole seconds 2–11 hold 200 accepted 51s.
	st := ls.snapshot(at(12300))
	if st.Achieved != 20 {
		t.Errorf("achieved %v, want 20", st.Achieved)
	}
	// The round trip is the mean of the last 3 seconds (10–12): the spike
	// at 8 s is forgotten, and counted in the mean while it was recent
	// (59 × 1.5 ms + 40 ms over 60), not as the whole link's time: the
	// guard absorbs one slow ACK, the throttle need not slow down for it.
	if st.AckMillis != 1.5 {
		t.Errorf("ack_ms at 12.3 s = %v, want 1.5", st.AckMillis)
	}
	if got := ls.snapshot(at(9900)).AckMillis; got != 2.2 {
		t.Errorf("ack_ms at 9.9 s = %v, want 2.2 (the spike at 8.5 s in the mean)", got)
	}
}
