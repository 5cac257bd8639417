package smsclink

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// registerMetrics exposes each short code's rate as the operator sees it,
// read from the link state when Prometheus scrapes (docs/smsc-link.md,
// "Metrics"): nothing is counted twice, nothing runs between scrapes.
func (s *Service) registerMetrics() error {
	m := s.Tel.Meter("pushsms.io/services/smsc-link")
	contracted, err := m.Int64ObservableGauge("pushsms_short_code_rate_contracted",
		metric.WithDescription("SMS-MT per second the short code's contract allows: the rate guard's limit (SHORT_CODES bucket, -rates, -default-rate)."))
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	achieved, err := m.Float64ObservableGauge("pushsms_short_code_rate_achieved",
		metric.WithDescription("SMS-MT per second the SMSC accepted, mean of the last 10 whole seconds."))
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	roundTrip, err := m.Float64ObservableGauge("pushsms_short_code_ack_round_trip",
		metric.WithUnit("s"),
		metric.WithDescription("Longest time from the rate guard's grant to the ACK over the last 3 s: R SMS-MT take 1 s plus this."))
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	slowdown, err := m.Float64ObservableGauge("pushsms_short_code_slowdown",
		metric.WithDescription("Fraction of the contracted rate the link takes now (1: full rate; halved per second of NACK 04 or ACK timeouts)."))
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	up, err := m.Int64ObservableGauge("pushsms_short_code_link_up",
		metric.WithDescription("1 while a UCP session of the short code is logged in."))
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		now := s.now()
		for sc, l := range s.links {
			at := metric.WithAttributeSet(attribute.NewSet(attribute.String("short_code", sc)))
			st := l.state.snapshot(now)
			o.ObserveInt64(contracted, int64(s.rates.Rate(sc)), at)
			o.ObserveFloat64(achieved, st.Achieved, at)
			o.ObserveFloat64(roundTrip, st.AckMillis/1000, at)
			o.ObserveFloat64(slowdown, st.Slowdown, at)
			var u int64
			if st.Up {
				u = 1
			}
			o.ObserveInt64(up, u, at)
		}
		return nil
	}, contracted, achieved, roundTrip, slowdown, up)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}
