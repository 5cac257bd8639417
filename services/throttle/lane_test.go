package throttle

import (
	"slices"
	"testing"
	"time"

	"pushsms.io/lib/rate"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func allRunning(string) bool { return true }

// drive steps l on a simulated clock: a wait is slept exactly, plus the
// lateness late(i) of the i-th timer. It returns the release times of the
// first n segments, taking them from the tickets as a handler would.
func drive(t *testing.T, l *lane, tickets []*ticket, n int, late func(i int) time.Duration) []time.Time {
	t.Helper()
	now := l.sched
	var got []time.Time
	for i := 0; len(got) < n; i++ {
		if i > 10*n+100 {
			t.Fatalf("lane stuck after %d releases", len(got))
		}
		wait, progressed := l.step(now)
		if !progressed {
			if wait == 0 {
				t.Fatalf("lane idle after %d releases, want %d", len(got), n)
			}
			now = now.Add(wait + late(i))
			continue
		}
		for _, tk := range tickets {
			select {
			case at := <-tk.grant:
				got = append(got, at)
				l.request(tk)
			default:
			}
		}
	}
	return got
}

func TestLanePacing(t *testing.T) {
	tests := []struct {
		name  string
		rate  int
		slack time.Duration
		late  func(i int) time.Duration
	}{
		{name: "on_time", rate: 10, slack: 2 * time.Millisecond, late: func(int) time.Duration { return 0 }},
		{name: "always_late", rate: 50, slack: 2 * time.Millisecond, late: func(int) time.Duration { return 300 * time.Microsecond }},
		{name: "jittery", rate: 150, slack: 2 * time.Millisecond, late: func(i int) time.Duration { return time.Duration(i%7) * 400 * time.Microsecond }},
		{name: "late_by_periods", rate: 150, slack: 2 * time.Millisecond, late: func(i int) time.Duration { return time.Duration(i%5) * 5 * time.Millisecond }},
		{name: "no_slack", rate: 20, slack: 0, late: func(i int) time.Duration { return time.Duration(i%3) * time.Millisecond }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLane("36000", StaticRates{Default: tt.rate}, tt.slack, time.Hour, allRunning, t0)
			tk := newTicket(classBulk, "", 1, 5*tt.rate)
			if _, ok := l.admit(tk, t0); !ok {
				t.Fatal("first ticket not admitted")
			}
			got := drive(t, l, []*ticket{tk}, 5*tt.rate, tt.late)
			if got, want := maxInWindow(got, time.Second), tt.rate; got > want {
				t.Errorf("a 1s window holds %d releases, want at most %d", got, want)
			}
			// Timer lateness costs nothing: late releases are caught up,
			// the mean spacing stays the period.
			period := rate.Pacing(tt.rate, tt.slack)
			mean := got[len(got)-1].Sub(got[0]) / time.Duration(len(got)-1)
			if mean > period+period/100 {
				t.Errorf("mean spacing %v, want about %v", mean, period)
			}
		})
	}
}

func TestLaneFirstReleaseWaitsOnePeriod(t *testing.T) {
	l := newLane("36000", StaticRates{Default: 10}, 0, time.Hour, allRunning, t0)
	tk := newTicket(classBulk, "", 1, 1)
	l.admit(tk, t0)
	if wait, progressed := l.step(t0); progressed || wait != 100*time.Millisecond {
		t.Errorf("step at creation: got wait %v progressed %v, want 100ms false", wait, progressed)
	}
	// After an idle spell, the next release goes at once.
	if _, progressed := l.step(t0.Add(100 * time.Millisecond)); !progressed {
		t.Fatal("no release after one period")
	}
	<-tk.grant
	tk2 := newTicket(classBulk, "", 2, 1)
	idle := t0.Add(time.Minute)
	l.admit(tk2, idle)
	if wait, progressed := l.step(idle); !progressed {
		t.Errorf("after an idle minute: got wait %v, want a release at once", wait)
	}
	if at := <-tk2.grant; !at.Equal(idle) {
		t.Errorf("released at %v, want %v", at, idle)
	}
}

func TestLaneOrder(t *testing.T) {
	l := newLane("36000", StaticRates{Default: 10}, 0, time.Hour, allRunning, t0)
	var seq uint64
	mk := func(c class, segs int) *ticket {
		seq++
		tk := newTicket(c, "", seq, segs)
		if _, ok := l.admit(tk, t0); !ok {
			t.Fatal("not admitted")
		}
		return tk
	}
	bulk1, bulk2 := mk(classBulk, 2), mk(classBulk, 1)
	urgent := mk(classUrgent, 1)
	names := map[*ticket]string{bulk1: "bulk1", bulk2: "bulk2", urgent: "urgent"}

	var order []string
	now := t0
	take := func() {
		t.Helper()
		for i := 0; i < 100; i++ {
			wait, progressed := l.step(now)
			if !progressed {
				now = now.Add(wait)
				continue
			}
			for tk, name := range names {
				select {
				case <-tk.grant:
					order = append(order, name)
					return
				default:
				}
			}
		}
		t.Fatal("no release")
	}
	take() // urgent first although queued last
	take() // bulk1 starts
	// bulk1's handler is publishing its first part; a new urgent message
	// arrives, then bulk1 asks for its second part: the started message
	// finishes first.
	urgent2 := mk(classUrgent, 1)
	names[urgent2] = "urgent2"
	l.request(bulk1)
	take()
	take()
	take()
	want := []string{"urgent", "bulk1", "bulk1", "urgent2", "bulk2"}
	if len(order) != len(want) {
		t.Fatalf("got %v, want %v", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("got %v, want %v", order, want)
		}
	}
}

func TestLaneStreamOrder(t *testing.T) {
	l := newLane("36000", StaticRates{Default: 10}, 0, time.Hour, allRunning, t0)
	// Handled concurrently, admitted out of order; a parked event (seq 1)
	// comes back after later ones were admitted.
	var tickets []*ticket
	for _, seq := range []uint64{3, 2, 5, 1, 4} {
		tk := newTicket(classBulk, "", seq, 1)
		l.admit(tk, t0)
		tickets = append(tickets, tk)
	}
	now := t0
	var got []uint64
	for len(got) < len(tickets) {
		wait, progressed := l.step(now)
		if !progressed {
			now = now.Add(wait)
			continue
		}
		for _, tk := range tickets {
			select {
			case <-tk.grant:
				got = append(got, tk.seq)
			default:
			}
		}
	}
	if !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Errorf("released in order %v, want stream order", got)
	}
}

func TestLaneAdmit(t *testing.T) {
	// rate 10, no guard: 100 ms a segment; lookahead 1s: 10 segments held.
	l := newLane("36000", StaticRates{Default: 10}, 0, time.Second, allRunning, t0)
	for i := range 5 {
		if _, ok := l.admit(newTicket(classBulk, "", uint64(i), 2), t0); !ok {
			t.Fatalf("ticket %d not admitted with %d segments ahead", i, 2*i)
		}
	}
	tests := []struct {
		name     string
		class    class
		segments int
		admitted bool
		wait     time.Duration
	}{
		// 10 segments ahead (1s): park, come back with 500ms of work ahead.
		{name: "bulk_parked", class: classBulk, segments: 3, wait: 500 * time.Millisecond},
		// The next parked one gets the slot after it (+300ms).
		{name: "next_bulk_parked_after", class: classBulk, segments: 1, wait: 800 * time.Millisecond},
		{name: "urgent_skips_bulk", class: classUrgent, segments: 1, admitted: true},
		{name: "urgent_counts_urgent", class: classUrgent, segments: 1, admitted: true},
	}
	for _, tt := range tests {
		wait, ok := l.admit(newTicket(tt.class, "", 100, tt.segments), t0)
		if ok != tt.admitted || (!ok && wait != tt.wait) {
			t.Errorf("%s: got admitted %v wait %v, want %v %v", tt.name, ok, wait, tt.admitted, tt.wait)
		}
	}
}

func TestLaneParksAtARaisedRate(t *testing.T) {
	// rate 10, no guard: 100 ms a segment; lookahead 1s: 10 segments held.
	rates := StaticRates{Default: 10, Overrides: RateTable{}}
	l := newLane("36000", rates, 0, time.Second, allRunning, t0)
	seq := uint64(0)
	admit := func(c class) (time.Duration, bool) {
		seq++
		return l.admit(newTicket(c, "camp", seq, 1), t0)
	}
	for range 10 {
		admit(classUrgent)
	}
	// 1 000 parked at 10/s: the last one's slot is 100 s ahead.
	for range 1000 {
		admit(classUrgent)
		admit(classBulk)
	}
	rates.Overrides["36000"] = 100
	// The lane takes 1 s of work at the new rate.
	for i := range 90 {
		if _, ok := admit(classUrgent); !ok {
			t.Fatalf("not admitted with %d segments ahead at 100/s", 10+i)
		}
	}
	// At 100/s the same slots are 10 s ahead: the next parked message
	// comes back about 10 s ahead minus half the lookahead, not 100 s.
	for _, c := range []class{classUrgent, classBulk} {
		wait, ok := admit(c)
		if ok {
			t.Fatalf("class %d: admitted with a full lane", c)
		}
		if lo, hi := 9*time.Second, 10*time.Second; wait < lo || wait > hi {
			t.Errorf("class %d: parked for %v after the raise, want %v to %v", c, wait, lo, hi)
		}
	}
	// Lowered back, the slots move later again.
	rates.Overrides["36000"] = 10
	if wait, _ := admit(classUrgent); wait < 99*time.Second {
		t.Errorf("parked for %v after the rate fell back to 10/s, want about 100 s", wait)
	}
}

func TestLaneAdmitLongWaitIsBounded(t *testing.T) {
	l := newLane("36000", StaticRates{Default: 1}, 0, time.Second, allRunning, t0)
	l.admit(newTicket(classBulk, "", 1, 100_000), t0)
	wait, ok := l.admit(newTicket(classBulk, "", 2, 1), t0)
	if ok || wait != maxPark {
		t.Errorf("got admitted %v wait %v, want false %v", ok, wait, maxPark)
	}
}

func TestLaneEvictsStoppedCampaign(t *testing.T) {
	stopped := map[string]bool{}
	running := func(id string) bool { return !stopped[id] }
	l := newLane("36000", StaticRates{Default: 10}, 0, time.Hour, running, t0)
	a := newTicket(classBulk, "camp-a", 1, 1)
	b := newTicket(classBulk, "camp-b", 2, 1)
	c := newTicket(classBulk, "camp-a", 3, 1)
	for _, tk := range []*ticket{a, b, c} {
		l.admit(tk, t0)
	}
	// Pushed by the watch.
	stopped["camp-a"] = true
	l.evictCampaign("camp-a")
	for name, tk := range map[string]*ticket{"a": a, "c": c} {
		select {
		case <-tk.evicted:
		default:
			t.Errorf("ticket %s of a stopped campaign not evicted", name)
		}
	}
	// Found at release time (a change the push missed).
	stopped["camp-b"] = true
	now := t0.Add(time.Second)
	if _, progressed := l.step(now); !progressed {
		t.Fatal("step did nothing")
	}
	select {
	case <-b.evicted:
	case <-b.grant:
		t.Fatal("a stopped campaign's message was released")
	default:
		t.Fatal("ticket b neither evicted nor released")
	}
}

func TestLaneSuspendedRate(t *testing.T) {
	l := newLane("36000", StaticRates{Default: 0}, 0, time.Hour, allRunning, t0)
	tk := newTicket(classBulk, "", 1, 1)
	if _, ok := l.admit(tk, t0); !ok {
		t.Fatal("an empty suspended lane should hold one message")
	}
	if wait, progressed := l.step(t0.Add(time.Hour)); progressed || wait != suspendedRecheck {
		t.Errorf("got wait %v progressed %v, want %v false", wait, progressed, suspendedRecheck)
	}
	if wait, ok := l.admit(newTicket(classBulk, "", 2, 1), t0); ok || wait != suspendedRecheck {
		t.Errorf("got admitted %v wait %v, want false %v", ok, wait, suspendedRecheck)
	}
}

func TestClassOf(t *testing.T) {
	tests := []struct {
		cat  partnerv1.TrafficCategory
		want class
	}{
		{partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP, classUrgent},
		{partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MO_SESSION_REPLY, classUrgent},
		{partnerv1.TrafficCategory_TRAFFIC_CATEGORY_M2M, classUrgent},
		{partnerv1.TrafficCategory_TRAFFIC_CATEGORY_INTERPERSONAL, classUrgent},
		{partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING, classBulk},
		{partnerv1.TrafficCategory_TRAFFIC_CATEGORY_UNSPECIFIED, classBulk},
	}
	for _, tt := range tests {
		if got := classOf(tt.cat); got != tt.want {
			t.Errorf("classOf(%v): got %d, want %d", tt.cat, got, tt.want)
		}
	}
}

// maxInWindow returns the most times (sorted) found in any half-open
// window [t, t+w).
func maxInWindow(ts []time.Time, w time.Duration) int {
	most, j := 0, 0
	for i := range ts {
		for j < len(ts) && ts[j].Before(ts[i].Add(w)) {
			j++
		}
		most = max(most, j-i)
	}
	return most
}

// Parked events come back on a grid of times, never later than asked: few
// distinct due times for the server to wait for, whatever the backlog.
func TestParkDelay(t *testing.T) {
	now := time.Date(2026, 11, 28, 10, 0, 0, 300_000_000, time.UTC)
	tests := []struct {
		wait, grain, want time.Duration
	}{
		{wait: 400 * time.Millisecond, grain: time.Second, want: 400 * time.Millisecond}, // too short to round
		{wait: 2500 * time.Millisecond, grain: time.Second, want: 1700 * time.Millisecond},
		{wait: time.Hour, grain: time.Second, want: time.Hour - 300*time.Millisecond},
		{wait: 2500 * time.Millisecond, grain: 250 * time.Millisecond, want: 2450 * time.Millisecond},
		{wait: 2500 * time.Millisecond, grain: 0, want: 2500 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := parkDelay(now, tt.wait, tt.grain); got != tt.want {
			t.Errorf("parkDelay(%v, grain %v) = %v, want %v", tt.wait, tt.grain, got, tt.want)
		}
	}
	// Events parked a release apart (100/s) share a due time a second.
	due := map[time.Time]bool{}
	for i := range 1000 {
		at := now.Add(time.Duration(i) * 10 * time.Millisecond)
		due[at.Add(parkDelay(at, 5*time.Second, time.Second))] = true
	}
	if len(due) > 11 {
		t.Errorf("1 000 events parked over 10 s come back at %d distinct times, want one a second", len(due))
	}
}
