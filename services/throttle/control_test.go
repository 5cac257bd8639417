package throttle

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/shortcode"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestEffectiveRate(t *testing.T) {
	tests := []struct {
		name string
		rate int
		link string // the LINK_STATE value; "" when there is none
		want int
	}{
		{name: "no_link_state", rate: 50, want: 50},
		{name: "up", rate: 50, link: `{"up":true}`, want: 50},
		{name: "down", rate: 50, link: `{"up":false}`, want: 0},
		{name: "half", rate: 50, link: `{"up":true,"slowdown":0.5}`, want: 25},
		{name: "floored", rate: 150, link: `{"up":true,"slowdown":0.33}`, want: 49},
		{name: "at_least_one", rate: 10, link: `{"up":true,"slowdown":0.01}`, want: 1},
		{name: "zero_slowdown_still_one", rate: 10, link: `{"up":true,"slowdown":0}`, want: 1},
		{name: "recovered", rate: 20, link: `{"up":true,"slowdown":1}`, want: 20},
		{name: "above_one_is_contract", rate: 20, link: `{"up":true,"slowdown":2}`, want: 20},
		{name: "held_stays_held", rate: 0, link: `{"up":true}`, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var link shortcode.LinkState
			if tt.link != "" {
				var err error
				if link, err = shortcode.ParseLinkState([]byte(tt.link)); err != nil {
					t.Fatal(err)
				}
			}
			if got := effectiveRate(tt.rate, link, tt.link != ""); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestParseWeights(t *testing.T) {
	if w, err := ParseWeights([]byte(`{"t1":3,"t2":1}`)); err != nil || w["t1"] != 3 || w["t2"] != 1 {
		t.Errorf("got %v, %v", w, err)
	}
	for _, bad := range []string{`{"t1":0}`, `{"t1":101}`, `[1]`, `{"t1":"3"}`} {
		if _, err := ParseWeights([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// controlled drives a lane whose rate goes through controls, on a
// simulated clock, and returns how many of its tickets were released by
// until.
type controlled struct {
	c       *controls
	l       *lane
	now     time.Time
	tickets []*ticket
	got     int
}

func newControlled(rate int) *controlled {
	x := &controlled{now: t0}
	x.c = newControls(discard(), func(string) {}, func(sc string, before time.Time) {
		x.l.evictWhere(func(t *ticket) bool { return t.accepted.Before(before) })
	})
	x.l = newLane("36000", x.c.rates(StaticRates{Default: rate}), 0, time.Hour, allRunning, t0)
	x.l.dropped = func(t *ticket) bool { return x.c.dropped("36000", t) }
	return x
}

func (x *controlled) add(n int, accepted time.Time) {
	for range n {
		tk := newTicket(classBulk, "", uint64(len(x.tickets)+1), 1)
		tk.accepted = accepted
		x.tickets = append(x.tickets, tk)
		x.l.admit(tk, x.now)
	}
}

// run advances the clock by d, stepping the lane as its goroutine would
// (a suspended lane looks again every suspendedRecheck, or when poked).
func (x *controlled) run(d time.Duration) int {
	end, before := x.now.Add(d), x.got
	for x.now.Before(end) {
		wait, progressed := x.l.step(x.now)
		if progressed {
			for _, tk := range x.tickets {
				select {
				case <-tk.grant:
					x.got++
				default:
				}
			}
			continue
		}
		if wait == 0 {
			wait = end.Sub(x.now)
		}
		x.now = x.now.Add(min(wait, end.Sub(x.now)))
	}
	return x.got - before
}

func TestControlPauseResume(t *testing.T) {
	x := newControlled(10)
	x.add(100, t0)
	if got := x.run(time.Second); got < 9 {
		t.Fatalf("running: %d releases in 1s, want 10", got)
	}
	x.c.setShortCode("36000.control", []byte(`{"state":"paused"}`))
	if got := x.run(2 * time.Second); got != 0 {
		t.Errorf("paused: %d releases in 2s, want 0", got)
	}
	held := 0
	for _, tk := range x.tickets {
		select {
		case <-tk.evicted:
		default:
			if !tk.gone {
				held++
			}
		}
	}
	if held != 100-x.got {
		t.Errorf("paused: %d messages still held, want %d (none lost)", held, 100-x.got)
	}
	x.c.setShortCode("36000.control", []byte(`{"state":"running"}`))
	if got := x.run(time.Second); got < 9 {
		t.Errorf("resumed: %d releases in 1s, want 10", got)
	}
}

func TestControlLinkBackPressure(t *testing.T) {
	x := newControlled(20)
	x.add(400, t0)
	steps := []struct {
		link string
		want int // releases in 2 s
	}{
		{link: "", want: 40},
		{link: `{"up":true,"slowdown":0.5,"reason":"NACK 04"}`, want: 20},
		{link: `{"up":false,"reason":"no bind"}`, want: 0},
		{link: `{"up":true,"slowdown":0.01}`, want: 2},
		{link: `{"up":true,"slowdown":1}`, want: 40},
	}
	for _, s := range steps {
		if s.link != "" {
			x.c.setLink("36000", []byte(s.link))
		}
		// Let the previous second pass: a lower rate is judged against
		// the releases already in the last second.
		x.run(time.Second)
		if got := x.run(2 * time.Second); got < s.want-1 || got > s.want {
			t.Errorf("link %s: %d releases in 2s, want %d", s.link, got, s.want)
		}
	}
}

func TestControlCancelledBefore(t *testing.T) {
	x := newControlled(10)
	x.add(5, t0.Add(-time.Minute))
	x.add(5, t0.Add(time.Minute)) // accepted after the cut
	x.c.setShortCode("36000.control", []byte(`{"state":"running","cancelled_before":"`+t0.Format(time.RFC3339)+`"}`))
	evicted := 0
	for _, tk := range x.tickets {
		select {
		case <-tk.evicted:
			evicted++
		default:
		}
	}
	if evicted != 5 {
		t.Errorf("%d messages evicted, want the 5 accepted before", evicted)
	}
	if got := x.run(2 * time.Second); got != 5 {
		t.Errorf("%d released, want the 5 accepted after", got)
	}
	if !x.c.cancelledAt("36000", t0.Add(-time.Second)) || x.c.cancelledAt("36000", t0.Add(time.Second)) || x.c.cancelledAt("36001", t0.Add(-time.Second)) {
		t.Error("cancelledAt does not follow cancelled_before")
	}
	// A ticket arriving later but accepted before the cut is dropped at
	// its turn.
	x.add(1, t0.Add(-time.Hour))
	if got := x.run(time.Second); got != 0 {
		t.Errorf("a message accepted before the cut was released")
	}
}

func TestControlWeights(t *testing.T) {
	c := newControls(discard(), func(string) {}, func(string, time.Time) {})
	c.setShortCode("36000.weights", []byte(`{"t1":3}`))
	if c.weight("36000", "t1") != 3 || c.weight("36000", "t2") != 1 || c.weight("36001", "t1") != 1 {
		t.Error("weights not applied per short code")
	}
	c.setShortCode("36000.weights", []byte(`{"t1":0}`)) // bad: equal shares
	if c.weight("36000", "t1") != 1 {
		t.Error("a bad weights value kept the old weights")
	}
}

// FuzzParseWeights: accepted weights are within 1 to MaxWeight.
func FuzzParseWeights(f *testing.F) {
	for _, s := range []string{`{"t1":3,"t2":1}`, `{"t1":0}`, `{}`, `[]`, `{"t1":1e9}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		w, err := ParseWeights(v)
		if err != nil {
			return
		}
		for tenant, n := range w {
			if n < 1 || n > MaxWeight {
				t.Fatalf("%q: accepted %s=%d", v, tenant, n)
			}
		}
	})
}

// FuzzParseLinkState: whatever is accepted gives a rate between 0 and the
// contracted one.
func FuzzParseLinkState(f *testing.F) {
	for _, s := range []string{`{"up":true,"slowdown":0.5}`, `{"up":false}`, `{"up":true,"slowdown":-1}`, `{"slowdown":1e308}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		s, err := shortcode.ParseLinkState(v)
		if err != nil {
			return
		}
		for _, r := range []int{1, 10, 150, MaxRate} {
			if got := effectiveRate(r, s, true); got < 0 || got > r {
				t.Fatalf("%q: rate %d became %d", v, r, got)
			}
		}
	})
}

// While paused, a lane still fills up to its lookahead and parks the rest
// as if it ran: a long pause does not bring a backlog back every second.
func TestControlPausedParksAsIfRunning(t *testing.T) {
	x := newControlled(10)
	x.l.lookahead = 2 * time.Second // 20 segments at 10/s
	x.add(1, t0)
	x.run(time.Second) // the lane has seen its rate
	x.c.setShortCode("36000.control", []byte(`{"state":"paused"}`))
	admitted, longest := 0, time.Duration(0)
	for i := range 100 {
		tk := newTicket(classBulk, "", uint64(100+i), 1)
		wait, ok := x.l.admit(tk, x.now)
		if ok {
			admitted++
			continue
		}
		longest = max(longest, wait)
	}
	if admitted < 15 || admitted > 25 {
		t.Errorf("%d admitted while paused, want about the lookahead (20)", admitted)
	}
	if longest < 5*time.Second {
		t.Errorf("parked at most %v, want spread over the backlog's time (about 10 s)", longest)
	}
}

func (h *harness) putShortCodes(key, value string) {
	h.t.Helper()
	ctx := context.Background()
	kv, err := h.bus.JS.KeyValue(ctx, bus.BucketShortCodes)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := kv.PutString(ctx, key, value); err != nil {
		h.t.Fatal(err)
	}
}

// A short code paused through SHORT_CODES releases nothing within a
// second, keeps its messages, and goes on when resumed.
func TestServicePauseShortCode(t *testing.T) {
	h := newHarness(t)
	h.start(func(c *Config) { c.Rates = RateTable{"36000": 20} })
	msgs, ids := backlog("p", "36000", 60)
	h.publish(msgs...)
	h.waitCount(10*time.Second, bus.StreamSubmit, bus.SubmitSubject("36000"), 5)

	h.putShortCodes("36000.control", `{"state":"paused"}`)
	pausedAt := time.Now()
	time.Sleep(3 * time.Second)
	resumedAt := time.Now() // before: the lane may release before Put returns
	h.putShortCodes("36000.control", `{"state":"running"}`)

	h.waitCount(30*time.Second, bus.StreamSubmit, bus.SubmitSubject("36000"), len(ids))
	sub := h.submits("36000")
	during, firstAfter := 0, time.Time{}
	for _, s := range sub {
		// The release time is the lane's decision; storing can lag behind
		// it on a loaded machine.
		at := decode(t, s, &eventsv1.SegmentSubmit{}).GetReleasedAt().AsTime()
		if at.After(pausedAt.Add(time.Second)) && at.Before(resumedAt) {
			during++
		}
		if at.After(resumedAt) && (firstAfter.IsZero() || at.Before(firstAfter)) {
			firstAfter = at
		}
	}
	if during != 0 {
		t.Errorf("%d segments released while paused (from 1 s after the pause)", during)
	}
	if firstAfter.IsZero() || firstAfter.Sub(resumedAt) > time.Second {
		t.Errorf("first submit %v after the resume, want within 1 s", firstAfter.Sub(resumedAt))
	}
	if got := len(sub); got != len(ids) {
		t.Errorf("%d segments submitted, want %d: none lost, none twice", got, len(ids))
	}
}

// CancelShortCode: the messages accepted before cancelled_before, held or
// arriving later, are reported cancelled; later ones go.
func TestServiceCancelShortCode(t *testing.T) {
	h := newHarness(t)
	h.start(func(c *Config) { c.Rates = RateTable{"36001": 10} })
	h.putShortCodes("36001.control", `{"state":"paused"}`)
	cut := time.Now()
	accepted := func(at time.Time) msgOpt {
		return func(c *eventsv1.MessageCleared) { c.Message.AcceptedAt = timestamppb.New(at) }
	}
	var old []*eventsv1.MessageCleared
	for i := range 10 {
		old = append(old, cleared(fmt.Sprintf("old-%d", i), "36001", 1, accepted(cut.Add(-time.Minute))))
	}
	h.publish(old[:5]...)
	time.Sleep(500 * time.Millisecond) // held in the paused lane
	h.putShortCodes("36001.control", `{"state":"running","cancelled_before":"`+cut.Format(time.RFC3339Nano)+`"}`)
	h.publish(old[5:]...)
	h.publish(cleared("new-0", "36001", 1, accepted(cut.Add(time.Second))))

	prefix := bus.ReportSubject("cancelled", "acme", "36001")
	h.waitCount(10*time.Second, bus.StreamReports, prefix, 10)
	h.waitCount(10*time.Second, bus.StreamSubmit, bus.SubmitSubject("36001"), 1)
	for _, r := range h.read(bus.StreamReports, prefix) {
		got := decode(t, r, &eventsv1.MessageRejected{})
		if got.GetReason() != partnerv1.Reason_REASON_CANCELLED || got.GetDetail() != "short code cancelled" || !strings.HasPrefix(got.GetMessageId(), "old-") {
			t.Errorf("report %s: %v %q", got.GetMessageId(), got.GetReason(), got.GetDetail())
		}
	}
	time.Sleep(200 * time.Millisecond)
	if sub := h.submits("36001"); len(sub) != 1 || sub[0].msgID != "new-0/1" {
		t.Errorf("submitted %d segments, want only new-0/1", len(sub))
	}
}

// Link down at smsc-link: nothing is released; up again: the rate comes
// back.
func TestServiceLinkDown(t *testing.T) {
	h := newHarness(t)
	h.start(func(c *Config) { c.Rates = RateTable{"36002": 20} })
	ctx := context.Background()
	link, err := h.bus.JS.KeyValue(ctx, bus.BucketLinkState)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := link.PutString(ctx, "36002", `{"up":false,"reason":"no bind"}`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	msgs, ids := backlog("l", "36002", 20)
	h.publish(msgs...)
	time.Sleep(2 * time.Second)
	if n := len(h.submits("36002")); n != 0 {
		t.Errorf("%d segments released while the link is down", n)
	}
	if _, err := link.PutString(ctx, "36002", `{"up":true,"slowdown":1}`); err != nil {
		t.Fatal(err)
	}
	h.waitCount(15*time.Second, bus.StreamSubmit, bus.SubmitSubject("36002"), len(ids))
}

// Two campaigns weighted 3 and 1 on one short code, the light one
// submitted after the heavy one's whole backlog: while both have a
// backlog, they share the releases 75 % / 25 %.
func TestServiceWeightedCampaigns(t *testing.T) {
	h := newHarness(t)
	h.start(func(c *Config) {
		c.Rates = RateTable{"36003": 100}
		c.Lookahead = 500 * time.Millisecond
	})
	weight := func(w uint32) msgOpt { return func(c *eventsv1.MessageCleared) { c.Message.Weight = w } }
	var msgs []*eventsv1.MessageCleared
	for i := range 400 {
		msgs = append(msgs, cleared(fmt.Sprintf("a-%03d", i), "36003", 1, inCampaign("camp-a"), weight(3)))
	}
	for i := range 400 {
		msgs = append(msgs, cleared(fmt.Sprintf("b-%03d", i), "36003", 1, inCampaign("camp-b"), weight(1)))
	}
	h.publish(msgs...)
	h.waitCount(30*time.Second, bus.StreamSubmit, bus.SubmitSubject("36003"), 400)
	type rel struct {
		at time.Time
		id string
	}
	var rels []rel
	for _, s := range h.submits("36003") {
		rels = append(rels, rel{decode(t, s, &eventsv1.SegmentSubmit{}).GetReleasedAt().AsTime(), s.msgID})
	}
	slices.SortFunc(rels, func(x, y rel) int { return x.at.Compare(y.at) })
	// Skip the first second (the lane fills up as the events arrive),
	// then count 200 releases while both campaigns have a backlog.
	start := 0
	for start < len(rels) && rels[start].at.Sub(rels[0].at) < time.Second {
		start++
	}
	a := 0
	for _, r := range rels[start : start+200] {
		if strings.HasPrefix(r.id, "a-") {
			a++
		}
	}
	share := float64(a) / 200
	t.Logf("campaign a (weight 3): %.1f %% of 200 releases", 100*share)
	if share < 0.72 || share > 0.78 {
		t.Errorf("campaign a got %.1f %% of the releases, want 75 %% ± 3 %%", 100*share)
	}
}

// A short code paused before its lane ever ran (a campaign loaded into a
// paused short code) parks its backlog by the contracted rate: each event
// comes back about when its turn would be, not every second (at 100 000
// events that would be a storm of redeliveries).
func TestPausedBeforeRunningParksByContract(t *testing.T) {
	c := newControls(discard(), func(string) {}, func(string, time.Time) {})
	c.setShortCode("36000.control", []byte(`{"state":"paused"}`))
	contracted := StaticRates{Default: 10}
	l := newLane("36000", c.rates(contracted), 0, 2*time.Second, allRunning, t0)
	l.contracted = contracted
	var waits []time.Duration
	for i := range 100 {
		if w, ok := l.admit(newTicket(classUrgent, "", uint64(i+1), 1), t0); !ok {
			waits = append(waits, w)
		}
	}
	// 2 s at 10/s held in memory; the 80 others parked, the last about
	// 10 s ahead, less the half lookahead it comes back early by.
	if len(waits) != 80 {
		t.Fatalf("%d events parked, want 80", len(waits))
	}
	if last := waits[len(waits)-1]; last < 8*time.Second {
		t.Errorf("the last event parked for %v, want about 9 s", last)
	}
}
