package smsclink

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// registerMetrics exposes each short code's rate as the operator sees it,
// read from the link state when Prometheus scrapes (docs/smsc-link.md,
// "Metrics"): nothing is counted twice, nothing runs between scrapes.
func (s *Service) registerMetrics() error {
	m := s.Tel.Meter("pushsms.io/services/smsc-link")
	var errs []error
	gauge := func(name, unit, desc string) metric.Float64ObservableGauge {
		g, err := m.Float64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	contracted := gauge("pushsms_short_code_rate_contracted", "",
		"SMS-MT per second the short code's contract allows: the rate guard's limit (SHORT_CODES bucket, -rates, -default-rate).")
	achieved := gauge("pushsms_short_code_rate_achieved", "",
		"SMS-MT per second the SMSC accepted, mean of the last 10 whole seconds.")
	roundTrip := gauge("pushsms_short_code_ack_round_trip", "s",
		"Longest time from the rate guard's grant to the ACK over the last 3 s: R SMS-MT take 1 s plus this.")
	slowdown := gauge("pushsms_short_code_slowdown", "",
		"Fraction of the contracted rate the link takes now (1: full rate; halved per second of NACK 04 or ACK timeouts).")
	up := gauge("pushsms_short_code_link_up", "",
		"1 while a UCP session of the short code is logged in.")
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	_, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		now := s.now()
		for sc, l := range s.links {
			at := metric.WithAttributeSet(attribute.NewSet(attribute.String("short_code", sc)))
			st := l.state.snapshot(now)
			o.ObserveFloat64(contracted, float64(s.rates.Rate(sc)), at)
			o.ObserveFloat64(achieved, st.Achieved, at)
			o.ObserveFloat64(roundTrip, st.AckMillis/1000, at)
			o.ObserveFloat64(slowdown, st.Slowdown, at)
			u := 0.0
			if st.Up {
				u = 1
			}
			o.ObserveFloat64(up, u, at)
		}
		return nil
	}, contracted, achieved, roundTrip, slowdown, up)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}
