package bus_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/fault"
	"pushsms.io/lib/telemetry/telemetrytest"
)

// metricsServer is a registry served over HTTP, as a service's /metrics,
// and consumer metrics recording into it.
func metricsServer(t *testing.T) (*bus.ConsumerMetrics, string) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cm, err := bus.NewConsumerMetrics(reg, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return cm, srv.URL + "/metrics"
}

// consumeTracked starts spec's consumer with h counted by cm, as Consume
// does once wired.
func consumeTracked(t *testing.T, b *bus.Bus, cm *bus.ConsumerMetrics, spec bus.ConsumerSpec, h bus.Handler) {
	t.Helper()
	ctx := context.Background()
	info, err := b.JS.CreateOrUpdateConsumer(ctx, spec.Stream, jetstream.ConsumerConfig{
		Durable: spec.Durable, FilterSubjects: spec.FilterSubjects, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 30 * time.Second, MaxAckPending: spec.MaxAckPending, MaxDeliver: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	h, untrack := cm.Track(spec, info, h)
	c, err := b.Consume(ctx, spec, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(); untrack() })
}

func publish(t *testing.T, b *bus.Bus, subject string, texts ...string) {
	t.Helper()
	for _, text := range texts {
		if err := b.Publish(context.Background(), subject, wrapperspb.String(text), subject+"/"+text); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConsumerMetricsOutcomes checks that /metrics tells each event's fate
// the way handle decides it: ack, defer, nak (then ack), term.
func TestConsumerMetricsOutcomes(t *testing.T) {
	b := bustest.Connect(t, bustest.Start(t))
	cm, url := metricsServer(t)
	spec := bus.ConsumerSpec{Stream: bus.StreamMO, Durable: "mo-36000", FilterSubjects: []string{"sms.mo.36000"}, MaxAckPending: 100}
	consumeTracked(t, b, cm, spec, func(_ context.Context, m *bus.Msg) error {
		var v wrapperspb.StringValue
		if err := m.Decode(&v); err != nil {
			return err
		}
		switch v.Value {
		case "defer":
			return m.Defer(time.Hour)
		case "term":
			return fault.Permanent(errors.New("bad event"))
		case "nak":
			if m.Delivered == 1 {
				return errors.New("database down")
			}
		}
		return nil
	})
	publish(t, b, "sms.mo.36000", "a1", "a2", "defer", "term", "nak")

	want := []struct {
		outcome string
		n       float64
	}{{"ack", 3}, {"defer", 1}, {"nak", 1}, {"term", 1}}
	bustest.Eventually(t, 10*time.Second, func() error {
		s := telemetrytest.ScrapeURL(t, url)
		for _, w := range want {
			got, ok := s.Value("pushsms_consumer_events_total", "stream", "SMS_MO", "consumer", "mo-36000", "short_code", "36000", "outcome", w.outcome)
			if !ok || got != w.n {
				return fmt.Errorf("events %s: got %v (present %v), want %v\n%s", w.outcome, got, ok, w.n, s.Text)
			}
		}
		if got, ok := s.Value("pushsms_consumer_handle_duration_seconds_count", "consumer", "mo-36000"); !ok || got != 6 {
			return fmt.Errorf("handle duration count: got %v, want 6 (5 events, one handled twice)", got)
		}
		if got, ok := s.Value("pushsms_consumer_handle_duration_seconds_bucket", "consumer", "mo-36000", "le", "+Inf"); !ok || got != 6 {
			return fmt.Errorf("handle duration +Inf bucket: got %v, want 6", got)
		}
		// The deferred event waits on the server, unacknowledged.
		if got, ok := s.Value("pushsms_consumer_ack_pending", "consumer", "mo-36000", "short_code", "36000"); !ok || got != 1 {
			return fmt.Errorf("ack pending: got %v (present %v), want 1 (the deferred event)", got, ok)
		}
		if got, ok := s.Value("pushsms_consumer_pending", "consumer", "mo-36000"); !ok || got != 0 {
			return fmt.Errorf("pending: got %v (present %v), want 0", got, ok)
		}
		return nil
	})
}

// TestConsumerMetricsBatch checks a batch consumer: each event counted by
// its own outcome in the batch's BatchErrors, the duration once a batch.
func TestConsumerMetricsBatch(t *testing.T) {
	b := bustest.Connect(t, bustest.Start(t))
	cm, url := metricsServer(t)
	ctx := context.Background()
	spec := bus.ConsumerSpec{Stream: bus.StreamReports, Durable: "ledger", FilterSubjects: bus.FinalReportSubjects, MaxAckPending: 100}
	info, err := b.JS.CreateOrUpdateConsumer(ctx, spec.Stream, jetstream.ConsumerConfig{
		Durable: spec.Durable, FilterSubjects: spec.FilterSubjects, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxAckPending: 100, MaxDeliver: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	h, untrack := cm.TrackBatch(spec, info, func(_ context.Context, msgs []*bus.Msg) error {
		errs := bus.BatchErrors{}
		for i, m := range msgs {
			var v wrapperspb.StringValue
			if err := m.Decode(&v); err != nil {
				return err
			}
			switch {
			case v.Value == "term":
				errs[i] = fault.Permanent(errors.New("bad report"))
			case v.Value == "nak" && m.Delivered == 1:
				errs[i] = errors.New("database down")
			}
		}
		if len(errs) == 0 {
			return nil
		}
		return fmt.Errorf("ledger: %w", errs)
	})
	c, err := b.ConsumeBatch(ctx, spec, 10, 200*time.Millisecond, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(); untrack() })
	publish(t, b, bus.ReportSubject("delivered", "acme", "36000"), "a", "term", "nak", "b")

	want := map[string]float64{"ack": 3, "term": 1, "nak": 1, "defer": 0}
	bustest.Eventually(t, 10*time.Second, func() error {
		s := telemetrytest.ScrapeURL(t, url)
		for oc, n := range want {
			if got, _ := s.Value("pushsms_consumer_events_total", "consumer", "ledger", "outcome", oc); got != n {
				return fmt.Errorf("events %s: got %v, want %v\n%s", oc, got, n, s.Text)
			}
		}
		if got, _ := s.Value("pushsms_consumer_handle_duration_seconds_count", "consumer", "ledger"); got < 2 {
			return fmt.Errorf("%v batches timed, want the first and the redelivery's", got)
		}
		if got, ok := s.Value("pushsms_consumer_ack_pending", "consumer", "ledger"); !ok || got != 0 {
			return fmt.Errorf("ack pending %v (present %v), want 0", got, ok)
		}
		return nil
	})
}

// TestConsumerMetricsLag checks the lag of a consumer that falls behind:
// one event in its handler, the rest waiting on the server; and that a
// stopped consumer's lag leaves /metrics while its counts stay.
func TestConsumerMetricsLag(t *testing.T) {
	b := bustest.Connect(t, bustest.Start(t))
	cm, url := metricsServer(t)
	ctx := context.Background()
	spec := bus.ConsumerSpec{Stream: bus.StreamSubmit, Durable: "slow", FilterSubjects: []string{bus.SubjectSubmit}, MaxAckPending: 1}
	info, err := b.JS.CreateOrUpdateConsumer(ctx, spec.Stream, jetstream.ConsumerConfig{
		Durable: spec.Durable, FilterSubjects: spec.FilterSubjects, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxAckPending: 1, MaxDeliver: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	h, untrack := cm.Track(spec, info, func(context.Context, *bus.Msg) error { <-release; return nil })
	c, err := b.Consume(ctx, spec, h)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, b, bus.SubmitSubject("36000"), "1", "2", "3", "4")

	lag := func(pending, ackPending float64) func() error {
		return func() error {
			s := telemetrytest.ScrapeURL(t, url)
			p, _ := s.Value("pushsms_consumer_pending", "stream", "SMS_SUBMIT", "consumer", "slow")
			a, _ := s.Value("pushsms_consumer_ack_pending", "stream", "SMS_SUBMIT", "consumer", "slow")
			if p != pending || a != ackPending {
				return fmt.Errorf("pending %v, ack pending %v; want %v, %v\n%s", p, a, pending, ackPending, s.Text)
			}
			if len(s.Find("pushsms_consumer_pending", "consumer", "slow", "short_code", "")) != 1 {
				return fmt.Errorf("a durable of every short code has no short_code label:\n%s", s.Text)
			}
			return nil
		}
	}
	bustest.Eventually(t, 10*time.Second, lag(3, 1))
	close(release)
	bustest.Eventually(t, 10*time.Second, lag(0, 0))

	c.Stop()
	untrack()
	s := telemetrytest.ScrapeURL(t, url)
	if f := s.Find("pushsms_consumer_pending", "consumer", "slow"); len(f) != 0 {
		t.Errorf("stopped consumer still has a lag: %v", f)
	}
	if got, _ := s.Value("pushsms_consumer_events_total", "consumer", "slow", "outcome", "ack"); got != 4 {
		t.Errorf("acked events after stop: got %v, want 4", got)
	}
}

func TestFilterShortCode(t *testing.T) {
	tests := []struct {
		stream  string
		filters []string
		want    string
	}{
		{bus.StreamCleared, []string{"sms.cleared.*.36000"}, "36000"},
		{bus.StreamCleared, []string{bus.SubjectCleared}, ""},
		{bus.StreamSubmit, []string{"sms.submit.38000"}, "38000"},
		{bus.StreamSubmit, []string{bus.SubjectSubmit}, ""},
		{bus.StreamReports, []string{"sms.report.*.acme.36000"}, "36000"},
		{bus.StreamReports, bus.FinalReportSubjects, ""},
		{bus.StreamMO, []string{"sms.mo.36000"}, "36000"},
		{bus.StreamMO, []string{"sms.mo.*"}, ""},
		{bus.StreamMO, nil, ""},
		{"OTHER", []string{"a.b.c.d"}, ""},
	}
	for _, tt := range tests {
		if got := bus.FilterShortCode(tt.stream, tt.filters); got != tt.want {
			t.Errorf("FilterShortCode(%s, %q) = %q, want %q", tt.stream, tt.filters, got, tt.want)
		}
	}
}

// TestConsumerMetricsSameDurableTwice checks that a durable consumed twice
// at once in a process (a restart overlapping its stop) is one series, and
// the scrape still succeeds.
func TestConsumerMetricsSameDurableTwice(t *testing.T) {
	b := bustest.Connect(t, bustest.Start(t))
	cm, url := metricsServer(t)
	spec := bus.ConsumerSpec{Stream: bus.StreamMO, Durable: "twice", FilterSubjects: []string{bus.SubjectMO}}
	info, err := b.JS.CreateOrUpdateConsumer(context.Background(), spec.Stream, jetstream.ConsumerConfig{Durable: spec.Durable, AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	nop := func(context.Context, *bus.Msg) error { return nil }
	_, untrack1 := cm.Track(spec, info, nop)
	_, untrack2 := cm.Track(spec, info, nop)
	defer untrack1()
	defer untrack2()
	s := telemetrytest.ScrapeURL(t, url) // fails the test on a 500
	if got := len(s.Find("pushsms_consumer_pending", "consumer", "twice")); got != 1 {
		t.Errorf("%d lag series for one durable, want 1:\n%s", got, s.Text)
	}
}
