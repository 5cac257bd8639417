package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"pushsms.io/lib/fault"
)

// Consumer metrics (docs/observability.md). Every durable a service
// consumes is counted by the service itself, so that the numbers come from
// the replica that did the work, on its own /metrics:
//
//	pushsms_consumer_events_total{stream,consumer,short_code,outcome}
//	pushsms_consumer_handle_duration_seconds{stream,consumer,short_code}
//	pushsms_consumer_pending{stream,consumer,short_code}
//	pushsms_consumer_ack_pending{stream,consumer,short_code}
//
// short_code is set when the durable's one filter names a short code
// (throttle-<sc>: the queue of that short code), empty otherwise.
//
// These are client_golang instruments registered beside the OpenTelemetry
// exporter in the service's registry, not OpenTelemetry ones: an SDK
// histogram record costs 250 to 400 ns here (a map lookup under a lock),
// client_golang's is a few atomic adds, and every event of every hop pays
// it (BenchmarkConsumerMetricsRecord).
const (
	metricEvents     = "pushsms_consumer_events_total"
	metricHandle     = "pushsms_consumer_handle_duration_seconds"
	metricPending    = "pushsms_consumer_pending"
	metricAckPending = "pushsms_consumer_ack_pending"
	// lagRefreshDefault is how old a durable's lag may be when scraped.
	lagRefreshDefault = 5 * time.Second
	// lagStale drops a durable's lag from /metrics when its consumer info
	// could not be read for this long: an alert must not sleep on an old
	// figure.
	lagStale = time.Minute
	// lagTimeout bounds the consumer-info requests of one scrape.
	lagTimeout = 3 * time.Second
)

var consumerLabels = []string{"stream", "consumer", "short_code"}

// outcome is what became of a handled event (docs/events.md, "Consumers").
type outcome int

const (
	outcomeAck   outcome = iota // handled
	outcomeDefer                // given back on purpose (Msg.Defer)
	outcomeNak                  // failed, redelivered with backoff
	outcomeTerm                 // permanent failure, terminated
	numOutcomes
)

func (o outcome) String() string {
	switch o {
	case outcomeAck:
		return "ack"
	case outcomeDefer:
		return "defer"
	case outcomeNak:
		return "nak"
	case outcomeTerm:
		return "term"
	}
	return "unknown"
}

// outcomeOf mirrors handle's decision: the error's kind, and Defer for a
// nil error.
func outcomeOf(err error, m *Msg) outcome {
	switch {
	case err == nil:
		if m.raw != nil {
			if _, deferred := m.raw.deferral(); deferred {
				return outcomeDefer
			}
		}
		return outcomeAck
	case fault.IsPermanent(err):
		return outcomeTerm
	default:
		return outcomeNak
	}
}

// consumerMetrics are a bus's consumer instruments. The lag is read from
// the server only when Prometheus scrapes, at most every lagRefresh: between
// scrapes nothing runs but the per-event adds.
type consumerMetrics struct {
	events     *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	pending    *prometheus.Desc
	ackPending *prometheus.Desc
	lagRefresh time.Duration

	// refreshMu serialises scrapes' lag reads; it guards liveConsumer's
	// figures.
	refreshMu sync.Mutex

	mu       sync.Mutex
	live     map[*liveConsumer]struct{} // running consumers, whose lag is read
	durables map[string]*durableMetrics // by durable name
}

// durableMetrics are one durable's instruments, with their labels bound
// once: recording an event looks nothing up.
type durableMetrics struct {
	labels   []string
	events   [numOutcomes]prometheus.Counter
	duration prometheus.Observer
}

// liveConsumer is a running consumer and its last known lag.
type liveConsumer struct {
	d    *durableMetrics
	info jetstream.Consumer

	// Guarded by consumerMetrics.refreshMu.
	pending, ackPending float64
	at                  time.Time // of the last successful read; zero: none yet
	tried               time.Time
}

// newConsumerMetrics registers the consumer instruments in reg (the
// service's registry, telemetry.Telemetry.Registerer); a nil reg counts
// nothing.
func newConsumerMetrics(reg prometheus.Registerer) (*consumerMetrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &consumerMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricEvents,
			Help: "Events handled by the service, by outcome: ack, defer (given back on purpose, e.g. waiting for its rate or start time), nak (failed, redelivered with backoff), term (permanent failure, dropped)."},
			append(slices.Clone(consumerLabels), "outcome")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: metricHandle,
			Help:    "Time the service's handler took on an event (on a batch of events, for a batch consumer), whatever the outcome.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}},
			consumerLabels),
		pending: prometheus.NewDesc(metricPending,
			"Events of the durable's filter not yet delivered (JetStream num_pending), read from the server at most every 5 s; the same for every replica sharing the durable.",
			consumerLabels, nil),
		ackPending: prometheus.NewDesc(metricAckPending,
			"Events delivered and not yet acknowledged (JetStream num_ack_pending: in handlers, deferred, or waiting for redelivery); lag = pending + ack_pending.",
			consumerLabels, nil),
		lagRefresh: lagRefreshDefault,
		live:       make(map[*liveConsumer]struct{}),
		durables:   make(map[string]*durableMetrics),
	}
	for _, c := range []prometheus.Collector{m.events, m.duration, (*lagCollector)(m)} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("consumer metrics: %w", err)
		}
	}
	return m, nil
}

// lagCollector reads the lag of the running consumers when scraped.
type lagCollector consumerMetrics

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.ackPending
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	m := (*consumerMetrics)(c)
	m.mu.Lock()
	live := make([]*liveConsumer, 0, len(m.live))
	for lc := range m.live {
		live = append(live, lc)
	}
	m.mu.Unlock()
	// Requests to the server run without m.mu: a consumer starting or
	// stopping never waits for a scrape.
	m.refreshMu.Lock()
	defer m.refreshMu.Unlock()
	now := time.Now()
	m.refreshLag(live, now)
	// A durable consumed twice at once (a restart overlapping its stop)
	// is one series: a duplicate would fail the whole scrape.
	seen := make(map[*durableMetrics]bool, len(live))
	for _, lc := range live {
		if lc.at.IsZero() || now.Sub(lc.at) > lagStale || seen[lc.d] {
			continue
		}
		seen[lc.d] = true
		ch <- prometheus.MustNewConstMetric(m.pending, prometheus.GaugeValue, lc.pending, lc.d.labels...)
		ch <- prometheus.MustNewConstMetric(m.ackPending, prometheus.GaugeValue, lc.ackPending, lc.d.labels...)
	}
}

// refreshLag reads the consumer info of each live consumer whose figures
// are older than lagRefresh: one request per durable, only when scraped,
// all within lagTimeout. Called with m.refreshMu held.
func (m *consumerMetrics) refreshLag(live []*liveConsumer, now time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), lagTimeout)
	defer cancel()
	for _, lc := range live {
		if now.Sub(lc.tried) < m.lagRefresh || ctx.Err() != nil {
			continue
		}
		lc.tried = now
		ci, err := lc.info.Info(ctx)
		if err != nil {
			continue // kept until lagStale, then dropped
		}
		lc.pending, lc.ackPending, lc.at = float64(ci.NumPending), float64(ci.NumAckPending), now
	}
}

// bind returns the instruments of spec's durable, bound to its labels on
// first use.
func (m *consumerMetrics) bind(spec ConsumerSpec) *durableMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d, ok := m.durables[spec.Durable]; ok {
		return d
	}
	d := &durableMetrics{labels: []string{spec.Stream, spec.Durable, filterShortCode(spec.Stream, spec.FilterSubjects)}}
	for oc := range numOutcomes {
		d.events[oc] = m.events.WithLabelValues(append(slices.Clone(d.labels), oc.String())...)
	}
	d.duration = m.duration.WithLabelValues(d.labels...)
	m.durables[spec.Durable] = d
	return d
}

// track counts the events h handles for spec's durable and reads the
// consumer's lag while it runs. It returns the handler to consume with and
// the function that stops reading the lag (at Consumer.Stop; the counts
// stay, so that a durable stopped and started again, as a throttle
// short code changing hands, keeps its series). A nil m counts nothing.
func (m *consumerMetrics) track(spec ConsumerSpec, info jetstream.Consumer, h Handler) (Handler, func()) {
	if m == nil {
		return h, func() {}
	}
	d, untrack := m.start(spec, info)
	return func(ctx context.Context, msg *Msg) error {
		start := time.Now()
		err := h(ctx, msg)
		d.record(outcomeOf(err, msg), time.Since(start))
		return err
	}, untrack
}

// trackBatch is track for a BatchHandler: each event is counted by the
// outcome handleBatch gives it, the duration is the batch's.
func (m *consumerMetrics) trackBatch(spec ConsumerSpec, info jetstream.Consumer, h BatchHandler) (BatchHandler, func()) {
	if m == nil {
		return h, func() {}
	}
	d, untrack := m.start(spec, info)
	return func(ctx context.Context, msgs []*Msg) error {
		start := time.Now()
		err := h(ctx, msgs)
		d.duration.Observe(time.Since(start).Seconds())
		var each BatchErrors
		isEach := errors.As(err, &each)
		for i, msg := range msgs {
			evErr := err
			if isEach {
				evErr = each[i] // nil: acked
			}
			d.events[outcomeOf(evErr, msg)].Inc()
		}
		return err
	}, untrack
}

// start binds the instruments to spec's durable and reads its lag until
// the returned function is called.
func (m *consumerMetrics) start(spec ConsumerSpec, info jetstream.Consumer) (*durableMetrics, func()) {
	d := m.bind(spec)
	lc := &liveConsumer{d: d, info: info}
	m.mu.Lock()
	m.live[lc] = struct{}{}
	m.mu.Unlock()
	var once sync.Once
	return d, func() {
		once.Do(func() {
			m.mu.Lock()
			delete(m.live, lc)
			m.mu.Unlock()
		})
	}
}

// record counts one handled event.
func (d *durableMetrics) record(oc outcome, took time.Duration) {
	d.events[oc].Inc()
	d.duration.Observe(took.Seconds())
}

// shortCodeToken is the position of the short code in a stream's
// subjects (subjects.go); -1 for a stream without one.
func shortCodeToken(stream string) int {
	switch stream {
	case StreamAccepted, StreamCleared: // sms.accepted|cleared.<tenant>.<short_code>
		return 3
	case StreamSubmit, StreamMO: // sms.submit|mo.<short_code>
		return 2
	case StreamReports: // sms.report.<state>.<tenant>.<short_code>
		return 4
	}
	return -1
}

// filterShortCode is the short code a durable is limited to: its one
// filter holds a literal where the stream's subjects hold the short code.
func filterShortCode(stream string, filters []string) string {
	pos := shortCodeToken(stream)
	if pos < 0 || len(filters) != 1 {
		return ""
	}
	tokens := strings.Split(filters[0], ".")
	if len(tokens) <= pos {
		return ""
	}
	tok := tokens[pos]
	if tok == "*" || tok == ">" || tok == "" {
		return ""
	}
	return tok
}
