package throttle

import (
	"context"
	"fmt"
	"sync"
	"time"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/calendar"
	"pushsms.io/lib/policy"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// PolicySource gives the compliance policy in force (policy.Watcher, which
// follows the POLICY bucket). Throttle reads only the sending window from
// it.
type PolicySource interface {
	Current() *policy.Policy
}

// StaticPolicy is a PolicySource that never changes.
type StaticPolicy struct{ P *policy.Policy }

// Current returns the policy.
func (s StaticPolicy) Current() *policy.Policy { return s.P }

// windows gives the sending window of a short code under the current
// policy. Building a calendar.Window loads its time zone, so the windows
// are kept until the policy changes.
type windows struct {
	src PolicySource

	mu sync.Mutex
	p  *policy.Policy
	m  map[string]calendar.Window
}

func (w *windows) get(shortCode string) (calendar.Window, error) {
	p := w.src.Current()
	w.mu.Lock()
	defer w.mu.Unlock()
	if p != w.p {
		w.p, w.m = p, map[string]calendar.Window{}
	}
	if cw, ok := w.m[shortCode]; ok {
		return cw, nil
	}
	cw, err := p.WindowFor(shortCode).Calendar()
	if err != nil {
		return calendar.Window{}, fmt.Errorf("sending window of %s in policy %s: %w", shortCode, p.Version, err)
	}
	w.m[shortCode] = cw
	return cw, nil
}

// closedUntil returns, for a marketing message whose window is closed at
// t, the window and its next opening. Compliance deferred the message to
// an opening already; the window can still be closed when throttle gets
// to it: a backlog pushed it past the closing time, or the policy changed
// since. Other categories are not prospection and go at any hour.
func (s *Service) closedUntil(msg *eventsv1.MessageAccepted, t time.Time) (calendar.Window, time.Time, bool, error) {
	if msg.GetCategory() != partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING {
		return calendar.Window{}, time.Time{}, false, nil
	}
	w, err := s.windows.get(msg.GetShortCode())
	if err != nil {
		return calendar.Window{}, time.Time{}, false, err
	}
	next := w.NextOpen(t)
	if next.Equal(t) {
		return calendar.Window{}, time.Time{}, false, nil
	}
	return w, next, true, nil
}

// heldByWindow keeps a marketing message whose window is closed at t,
// with nothing published, and reports whether it did: the event goes back
// to the server until the window opens (at most WindowRecheck at a time,
// so that a policy that opens the window earlier applies), as a
// not_before hold does. A message whose validity ends before the opening
// is reported expired now.
func (s *Service) heldByWindow(ctx context.Context, m *bus.Msg, c *eventsv1.MessageCleared, t, exp time.Time) (bool, error) {
	w, next, closed, err := s.closedUntil(c.GetMessage(), t)
	if err != nil || !closed {
		return false, err
	}
	if !exp.IsZero() && !exp.After(next) {
		return true, s.expire(ctx, c, 0, t, fmt.Sprintf(
			"marketing messages are sent on working days from %s to %s French time; the window only opens at %s, after the message's validity ends",
			clock(w.OpenAt()), clock(w.CloseAt()), next.In(w.Location()).Format("2006-01-02 15:04 MST")))
	}
	return true, s.hold(ctx, m, c.GetMessage(), t.Add(min(next.Sub(t), s.cfg.WindowRecheck)))
}

// clock formats a duration since midnight as HH:MM.
func clock(d time.Duration) string {
	return fmt.Sprintf("%02d:%02d", int(d/time.Hour), int(d%time.Hour/time.Minute))
}
