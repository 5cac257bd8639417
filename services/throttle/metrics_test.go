package throttle

import (
	"fmt"
	"testing"
	"time"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/telemetry/telemetrytest"
)

// The queue depth of a short code is the lag of its durable, on the
// /metrics of the replica that holds it, labelled with the short code: it
// grows with a backlog and drains at the contracted rate.
func TestMetricsQueueDepthPerShortCode(t *testing.T) {
	h := newHarness(t)
	r := h.start(func(c *Config) { c.Rates = RateTable{"36000": 10, "38000": 50} })
	url := "http://" + r.MetricsAddr() + "/metrics"
	slow, _ := backlog("q", "36000", 30)
	fast, _ := backlog("f", "38000", 5)
	h.publish(slow...)
	h.publish(fast...)

	queue := func(s *telemetrytest.Scrape, sc string) (float64, bool) {
		match := []string{"stream", bus.StreamCleared, "consumer", ConsumerName(sc), "short_code", sc}
		p, ok1 := s.Value("pushsms_consumer_pending", match...)
		a, ok2 := s.Value("pushsms_consumer_ack_pending", match...)
		return p + a, ok1 && ok2
	}
	// 30 segments at 10/s: the queue is seen while it drains.
	bustest.Eventually(t, 10*time.Second, func() error {
		s := telemetrytest.ScrapeURL(t, url)
		if q, ok := queue(s, "36000"); !ok || q == 0 {
			return fmt.Errorf("36000 queue %v (present %v), want a backlog\n%s", q, ok, s.Text)
		}
		return nil
	})
	h.waitCount(10*time.Second, bus.StreamSubmit, "sms.submit.36000", 30)
	h.waitCount(10*time.Second, bus.StreamSubmit, "sms.submit.38000", 5)
	bustest.Eventually(t, 15*time.Second, func() error {
		s := telemetrytest.ScrapeURL(t, url)
		for sc, msgs := range map[string]int{"36000": len(slow), "38000": len(fast)} {
			if q, ok := queue(s, sc); !ok || q != 0 {
				return fmt.Errorf("%s queue %v (present %v), want 0 once drained", sc, q, ok)
			}
			acks, _ := s.Value("pushsms_consumer_events_total", "consumer", ConsumerName(sc), "short_code", sc, "outcome", "ack")
			if acks != float64(msgs) {
				return fmt.Errorf("%s: %v events acked, want its %d messages", sc, acks, msgs)
			}
		}
		return nil
	})
}
