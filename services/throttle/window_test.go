package throttle

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/policy"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// shiftedClock runs at the speed of the real clock from a time the test
// sets: timers and pacing work as usual, while the sending window sees
// the day and hour the test wants.
type shiftedClock struct{ offset atomic.Int64 }

func newShiftedClock(at time.Time) *shiftedClock {
	c := &shiftedClock{}
	c.set(at)
	return c
}

func (c *shiftedClock) set(at time.Time) { c.offset.Store(int64(time.Until(at))) }
func (c *shiftedClock) now() time.Time   { return time.Now().Add(time.Duration(c.offset.Load())) }

func paris(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(policy.Zone)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func marketing() msgOpt { return category(partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING) }

// startWindow runs a throttle at the clock's time with the default
// policy (marketing 08:00–22:00 on working days) and a fast re-check of
// held messages.
func (h *harness) startWindow(clk *shiftedClock, rate int) {
	h.t.Helper()
	p := policy.Default()
	h.clock = clk.now
	h.start(func(c *Config) {
		c.PolicySource = StaticPolicy{P: &p}
		c.WindowRecheck = 200 * time.Millisecond
		c.Rates = RateTable{"36000": rate}
	})
}

// deliveries is how many times the throttle consumer was given an event:
// a held event comes back every WindowRecheck.
func (h *harness) deliveries() (uint64, error) {
	cons, err := h.bus.JS.Consumer(context.Background(), bus.StreamCleared, ConsumerName("36000"))
	if err != nil {
		return 0, err // not created yet
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		return 0, err
	}
	return info.Delivered.Consumer, nil
}

// waitHeld waits until the message was looked at again n more times and
// checks that nothing of it was submitted or reported meanwhile.
func (h *harness) waitHeld(id string, n uint64) {
	h.t.Helper()
	var from uint64
	bustest.Eventually(h.t, 10*time.Second, func() (err error) {
		from, err = h.deliveries()
		return err
	})
	bustest.Eventually(h.t, 10*time.Second, func() error {
		got, err := h.deliveries()
		if err == nil && got < from+n {
			err = fmt.Errorf("%d deliveries, want %d", got, from+n)
		}
		return err
	})
	for _, e := range h.submits("36000") {
		if strings.HasPrefix(e.msgID, id+"/") {
			h.t.Fatalf("held message %s submitted", e.msgID)
		}
	}
	if r := h.read(bus.StreamReports, "sms.report."); len(r) != 0 {
		h.t.Fatalf("held message reported: %s", r[0].msgID)
	}
}

// A marketing message cleared before 22:00 but reached by throttle after
// it waits for the next opening, a working day at 08:00; other categories
// go at once.
func TestWindowHoldsMarketing(t *testing.T) {
	loc := paris(t)
	tests := []struct {
		name string
		// reached is when throttle gets to the message; open is the next
		// opening; between is a time it is still held at.
		reached, between, open time.Time
	}{
		{
			name:    "saturday_night_to_monday",
			reached: time.Date(2026, time.November, 28, 22, 0, 5, 0, loc),
			between: time.Date(2026, time.November, 29, 12, 0, 0, 0, loc),
			open:    time.Date(2026, time.November, 30, 8, 0, 0, 0, loc),
		},
		{
			name:    "easter_monday_to_tuesday",
			reached: time.Date(2027, time.March, 27, 22, 0, 5, 0, loc),
			between: time.Date(2027, time.March, 29, 10, 0, 0, 0, loc), // Easter Monday
			open:    time.Date(2027, time.March, 30, 8, 0, 0, 0, loc),
		},
		{
			name:    "whit_monday_to_tuesday",
			reached: time.Date(2026, time.May, 23, 22, 0, 5, 0, loc),
			between: time.Date(2026, time.May, 25, 10, 0, 0, 0, loc), // Whit Monday
			open:    time.Date(2026, time.May, 26, 8, 0, 0, 0, loc),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			clk := newShiftedClock(tt.reached)
			h.startWindow(clk, 10)
			h.publish(
				cleared("promo", "36000", 2, marketing(), expiresAt(tt.open.Add(4*time.Hour))),
				cleared("colis", "36000", 1, category(partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP)),
			)
			h.waitCount(5*time.Second, bus.StreamSubmit, "sms.submit.36000", 1)
			h.waitHeld("promo", 3)
			clk.set(tt.between)
			h.waitHeld("promo", 3)

			clk.set(tt.open.Add(-time.Second))
			h.waitCount(10*time.Second, bus.StreamSubmit, "sms.submit.36000", 3)
			var ids []string
			for _, e := range h.submits("36000") {
				ids = append(ids, e.msgID)
				released := decode(t, e, &eventsv1.SegmentSubmit{}).GetReleasedAt().AsTime()
				if strings.HasPrefix(e.msgID, "promo/") && released.Before(tt.open) {
					t.Errorf("%s released at %v, before the opening %v", e.msgID, released.In(loc), tt.open)
				}
			}
			checkExactlyOnce(t, h.submits("36000"), []string{"colis/1", "promo/1", "promo/2"})
			t.Logf("submits %v", ids)
		})
	}
}

// A marketing message whose validity ends before the window opens again
// is expired at once, saying so.
func TestWindowExpiresWhenValidityEndsFirst(t *testing.T) {
	loc := paris(t)
	h := newHarness(t)
	clk := newShiftedClock(time.Date(2026, time.November, 28, 22, 0, 5, 0, loc))
	h.startWindow(clk, 10)
	h.publish(cleared("promo", "36000", 2, marketing(), expiresAt(time.Date(2026, time.November, 30, 7, 0, 0, 0, loc))))

	prefix := bus.ReportSubject("expired", "acme", "36000")
	h.waitCount(5*time.Second, bus.StreamReports, prefix, 2)
	for i, r := range h.read(bus.StreamReports, prefix) {
		got := decode(t, r, &eventsv1.SegmentReport{})
		if got.GetState() != partnerv1.SegmentState_SEGMENT_STATE_EXPIRED || !got.GetFinal() || got.GetSegmentIndex() != int32(i+1) {
			t.Errorf("report %s: %v", r.msgID, got)
		}
		if want := "the window only opens at 2026-11-30 08:00 CET, after the message's validity ends"; !strings.Contains(got.GetDetail(), want) {
			t.Errorf("detail %q, want it to hold %q", got.GetDetail(), want)
		}
	}
	if n := len(h.submits("36000")); n != 0 {
		t.Errorf("%d segments of an expired message submitted", n)
	}
}

// A backlog that runs past 22:00: what was started before goes out whole,
// nothing starts after. At 10 segments/s, about 10 of the 60 segments fit
// in the last second; how many depends on the machine's speed, the
// properties do not.
func TestWindowClosesDuringBacklog(t *testing.T) {
	loc := paris(t)
	closing := time.Date(2026, time.November, 24, 22, 0, 0, 0, loc)
	h := newHarness(t)
	clk := newShiftedClock(closing.Add(-time.Second))
	h.startWindow(clk, 10)
	msgs, _ := backlog("b", "36000", 60, marketing())
	h.publish(msgs...)

	// Past 22:00, the messages started before have finished (3 segments
	// at most, 100 ms apart); every other one is held: it comes back again
	// and again, each time to a closed window.
	bustest.Eventually(t, 10*time.Second, func() error {
		if now := clk.now(); now.Before(closing.Add(time.Second)) {
			return fmt.Errorf("%v: not yet 22:00:01", now.In(loc))
		}
		return nil
	})
	h.waitHeld("none", uint64(len(msgs)))
	parts := map[string]int{}
	for _, e := range h.submits("36000") {
		ev := decode(t, e, &eventsv1.SegmentSubmit{})
		parts[ev.GetMessageId()]++
		if ev.GetSegment().GetIndex() == 1 && !ev.GetReleasedAt().AsTime().Before(closing) {
			t.Errorf("%s started at %v, after the closing", e.msgID, ev.GetReleasedAt().AsTime().In(loc))
		}
	}
	held := 0
	for _, m := range msgs {
		got, want := parts[m.Message.MessageId], len(m.Segments)
		switch got {
		case 0:
			held++
		case want:
		default:
			t.Errorf("message %s: %d of %d segments submitted: split across the closing", m.Message.MessageId, got, want)
		}
	}
	if held == 0 {
		t.Error("every message went out: nothing was held at 22:00")
	}
	t.Logf("%d messages out before 22:00, %d held", len(msgs)-held, held)
}

// switchable is a PolicySource the test changes, as the POLICY bucket
// watch does.
type switchable struct{ p atomic.Pointer[policy.Policy] }

func (s *switchable) Current() *policy.Policy { return s.p.Load() }

func TestClosedUntil(t *testing.T) {
	loc := paris(t)
	at := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, loc) }
	def := policy.Default()
	charter := policy.Default()
	charter.ShortCodes = map[string]policy.ShortCode{"36100": {Window: &policy.Window{Open: def.Window.Open, Close: policy.Clock(21*time.Hour + 30*time.Minute)}}}
	src := &switchable{}
	s := &Service{windows: &windows{src: src}}
	const (
		mkt = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING
		crm = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP
		mo  = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MO_SESSION_REPLY
		m2m = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_M2M
	)
	tests := []struct {
		name      string
		policy    *policy.Policy
		shortCode string
		category  partnerv1.TrafficCategory
		at        time.Time
		next      time.Time // zero: open
	}{
		{"saturday 21:59", &def, "36000", mkt, at(2026, time.November, 28, 21, 59), time.Time{}},
		{"saturday 22:00", &def, "36000", mkt, at(2026, time.November, 28, 22, 0), at(2026, time.November, 30, 8, 0)},
		{"sunday", &def, "36000", mkt, at(2026, time.November, 29, 12, 0), at(2026, time.November, 30, 8, 0)},
		{"monday 07:59", &def, "36000", mkt, at(2026, time.November, 30, 7, 59), at(2026, time.November, 30, 8, 0)},
		{"14 July, a Tuesday", &def, "36000", mkt, at(2026, time.July, 14, 10, 0), at(2026, time.July, 15, 8, 0)},
		{"15 August, a Saturday", &def, "36000", mkt, at(2026, time.August, 15, 10, 0), at(2026, time.August, 17, 8, 0)},
		{"customer relationship on Sunday", &def, "36000", crm, at(2026, time.November, 29, 12, 0), time.Time{}},
		{"MO reply at night", &def, "34000", mo, at(2026, time.November, 29, 3, 0), time.Time{}},
		{"M2M on 14 July", &def, "38000", m2m, at(2026, time.July, 14, 3, 0), time.Time{}},
		{"af2m charter short code at 21:45", &charter, "36100", mkt, at(2026, time.November, 24, 21, 45), at(2026, time.November, 25, 8, 0)},
		{"other short code of that policy at 21:45", &charter, "36000", mkt, at(2026, time.November, 24, 21, 45), time.Time{}},
		{"the policy changes back", &def, "36100", mkt, at(2026, time.November, 24, 21, 45), time.Time{}},
	}
	for _, tt := range tests {
		src.p.Store(tt.policy)
		_, next, closed, err := s.closedUntil(&eventsv1.MessageAccepted{ShortCode: tt.shortCode, Category: tt.category}, tt.at)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if closed != !tt.next.IsZero() || !next.Equal(tt.next) {
			t.Errorf("%s: got closed %v until %v, want until %v", tt.name, closed, next, tt.next)
		}
	}
}

// The window is the one of the policy in the POLICY bucket, changed
// without a restart: a contract that closes at 21:30 (af2m charter) holds
// a message that the default 22:00 let through.
func TestWindowFollowsPolicyBucket(t *testing.T) {
	loc := paris(t)
	h := newHarness(t)
	clk := newShiftedClock(time.Date(2026, time.November, 24, 21, 45, 0, 0, loc))
	h.clock = clk.now
	r := h.start(func(c *Config) {
		c.WindowRecheck = 200 * time.Millisecond
		c.Rates = RateTable{"36000": 10}
	})
	h.publish(cleared("before", "36000", 1, marketing()))
	h.waitCount(5*time.Second, bus.StreamSubmit, "sms.submit.36000", 1)

	p := policy.Default()
	p.Version = "charter-2130"
	p.ShortCodes = map[string]policy.ShortCode{"36000": {Window: &policy.Window{Open: p.Window.Open, Close: policy.Clock(21*time.Hour + 30*time.Minute)}}}
	if err := policy.Put(context.Background(), h.bus, p); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 5*time.Second, func() error {
		if v := r.windows.src.Current().Version; v != p.Version {
			return fmt.Errorf("policy %s in force, want %s", v, p.Version)
		}
		return nil
	})
	h.publish(cleared("after", "36000", 1, marketing(), expiresAt(time.Date(2026, time.November, 25, 12, 0, 0, 0, loc))))
	h.waitHeld("after", 3)
	checkExactlyOnce(t, h.submits("36000"), []string{"before/1"})
}
