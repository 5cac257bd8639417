package bus

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// ConsumerMetrics lets the external tests drive the consumer metrics on a
// meter of their own, whatever Consume wires.
type ConsumerMetrics struct{ m *consumerMetrics }

func NewConsumerMetrics(reg prometheus.Registerer, lagRefresh time.Duration) (*ConsumerMetrics, error) {
	m, err := newConsumerMetrics(reg)
	if err != nil {
		return nil, err
	}
	m.lagRefresh = lagRefresh
	return &ConsumerMetrics{m}, nil
}

func (c *ConsumerMetrics) Track(spec ConsumerSpec, info jetstream.Consumer, h Handler) (Handler, func()) {
	return c.m.track(spec, info, h)
}

var FilterShortCode = filterShortCode

func (c *ConsumerMetrics) TrackBatch(spec ConsumerSpec, info jetstream.Consumer, h BatchHandler) (BatchHandler, func()) {
	return c.m.trackBatch(spec, info, h)
}
