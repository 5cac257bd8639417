package throttle

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
)

// haRate is low so that a loaded machine keeps up with it: what these
// tests look at is ownership, not speed.
const haRate = 20

// startReplica runs a replica named id at haRate for every short code.
func (h *harness) startReplica(id string) *running {
	h.t.Helper()
	return h.start(func(c *Config) {
		c.ReplicaID = id
		c.DefaultRate = haRate
	})
}

// shortCodes returns n short codes from 36100 on.
func shortCodes(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.Itoa(36100 + i)
	}
	return out
}

// publishBacklogs publishes segments segments on each short code and
// returns the segment ids by short code.
func (h *harness) publishBacklogs(codes []string, segments int) map[string][]string {
	h.t.Helper()
	want := map[string][]string{}
	for _, sc := range codes {
		msgs, ids := backlog("m"+sc, sc, segments)
		h.publish(msgs...)
		want[sc] = ids
	}
	return want
}

// checkReleasedOnce waits for every segment of want and checks, per short
// code, exactly once and no 1-second window over the rate (stored and
// released times: the two replicas' releases together).
func (h *harness) checkReleasedOnce(d time.Duration, want map[string][]string) {
	h.t.Helper()
	total := 0
	for _, ids := range want {
		total += len(ids)
	}
	bustest.Eventually(h.t, d, func() error {
		if n := h.count(bus.StreamSubmit); n < total {
			return fmt.Errorf("%d submits, want %d", n, total)
		}
		return nil
	})
	// Redeliveries of a dead replica's events may still be on their way:
	// give them the time to show up as duplicates if they were to.
	time.Sleep(500 * time.Millisecond)
	bySC := map[string][]stored{}
	for _, e := range h.read(bus.StreamSubmit, "sms.submit.") {
		bySC[e.subject] = append(bySC[e.subject], e)
	}
	for sc, ids := range want {
		ev := bySC[bus.SubmitSubject(sc)]
		checkExactlyOnce(h.t, ev, ids)
		// The release times, across owners: the SMSC's own view is
		// smsc-link's guard's to keep exact (its tests and e2e).
		if got := maxInWindow(releasedTimes(h.t, ev), time.Second); got > haRate {
			h.t.Errorf("short code %s: a 1s window holds %d releases, want at most %d", sc, got, haRate)
		}
	}
}

// waitOwned waits until the replicas own codes between them, each at
// least least.
func waitOwned(t *testing.T, d time.Duration, codes []string, least int, rs ...*running) {
	t.Helper()
	bustest.Eventually(t, d, func() error {
		var all []string
		for _, r := range rs {
			own := r.owner.owned()
			if len(own) < least {
				return fmt.Errorf("replica %s owns %v, want at least %d", r.cfg.ReplicaID, own, least)
			}
			all = append(all, own...)
		}
		slices.Sort(all)
		if !slices.Equal(all, codes) {
			return fmt.Errorf("owned together: %v, want each of %v once", all, codes)
		}
		return nil
	})
}

func TestReplicasShareShortCodes(t *testing.T) {
	h := newHarness(t)
	codes := shortCodes(6)
	r1 := h.startReplica("r1")
	r2 := h.startReplica("r2")
	want := h.publishBacklogs(codes, 2*haRate)
	// Each gets its share: 3 of 6.
	waitOwned(t, 10*time.Second, codes, 3, r1, r2)
	h.checkReleasedOnce(20*time.Second, want)
}

// The replica that owns busy short codes dies without a word: the other
// owns them within 5 s, nothing is lost or released twice, and no second
// holds more than the rate across the failover.
func TestFailoverAfterCrash(t *testing.T) {
	h := newHarness(t)
	codes := shortCodes(4)
	r1 := h.startReplica("r1")
	r2 := h.startReplica("r2")
	want := h.publishBacklogs(codes, 6*haRate) // 6 s of work each
	waitOwned(t, 10*time.Second, codes, 2, r1, r2)
	victim := r1.owner.owned()
	// Its short codes are busy: a second of releases out.
	for _, sc := range victim {
		h.waitCount(5*time.Second, bus.StreamSubmit, bus.SubmitSubject(sc), haRate)
	}
	killed := time.Now()
	r1.Bus.Conn.Close() // no ack, no lease given back; its goroutines linger and fail
	r1.abandon()

	bustest.Eventually(t, 5*time.Second, func() error {
		if own := r2.owner.owned(); !slices.Equal(own, codes) {
			return fmt.Errorf("survivor owns %v", own)
		}
		return nil
	})
	t.Logf("survivor owns the dead replica's short codes %v after %v", victim, time.Since(killed).Round(time.Millisecond))
	for _, sc := range victim {
		bustest.Eventually(t, 5*time.Second, func() error {
			for _, e := range h.submits(sc) {
				if e.at.After(killed) {
					t.Logf("short code %s: first release after the crash %v later", sc, e.at.Sub(killed).Round(time.Millisecond))
					return nil
				}
			}
			return fmt.Errorf("short code %s: nothing released since the crash", sc)
		})
	}
	h.checkReleasedOnce(30*time.Second, want)
}

// A replica that stops gives its leases back: the other owns its short
// codes within a second and goes on with the backlog.
func TestGracefulHandover(t *testing.T) {
	h := newHarness(t)
	codes := shortCodes(2)
	r1 := h.startReplica("r1")
	want := h.publishBacklogs(codes, 4*haRate)
	waitOwned(t, 5*time.Second, codes, 2, r1)
	h.waitCount(5*time.Second, bus.StreamSubmit, bus.SubmitSubject(codes[0]), haRate/2)
	r2 := h.startReplica("r2")
	waitOwned(t, 10*time.Second, codes, 1, r1, r2)

	moving := r1.owner.owned()
	stopped := time.Now()
	r1.stop()
	bustest.Eventually(t, time.Second, func() error {
		if own := r2.owner.owned(); !slices.Equal(own, codes) {
			return fmt.Errorf("after a graceful stop, the other replica owns %v", own)
		}
		return nil
	})
	t.Logf("short codes %v handed over %v after the stop began", moving, time.Since(stopped).Round(time.Millisecond))
	h.checkReleasedOnce(20*time.Second, want)
}

// One replica serves 200 short codes at once.
func TestTwoHundredShortCodes(t *testing.T) {
	h := newHarness(t)
	codes := shortCodes(200)
	slices.Sort(codes)
	r := h.startReplica("r1")
	begin := time.Now()
	want := h.publishBacklogs(codes, 3)
	t.Logf("published in %v", time.Since(begin).Round(time.Millisecond))
	waitOwned(t, 20*time.Second, codes, len(codes), r)
	t.Logf("owned after %v", time.Since(begin).Round(time.Millisecond))
	h.checkReleasedOnce(30*time.Second, want)
	t.Logf("released and checked after %v", time.Since(begin).Round(time.Millisecond))
}
