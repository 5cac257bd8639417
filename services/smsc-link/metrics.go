package smsclink

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"pushsms.io/lib/ucp"
)

// Submit outcomes, the outcome label of pushsms_short_code_submits_total:
// what the SMSC answered to a 51 (docs/observability.md).
const (
	submitAccepted      = iota // ACK: reported SUBMITTED
	submitNackPermanent        // reported FAILED, final; label code
	submitNackTemporary        // 01, 04, 37, 50, 55, 9x: redelivered; label code
	submitTimeout              // no result in time (or session lost after the write): UNKNOWN
	submitNotSent              // the session failed while writing it: redelivered
	numSubmitOutcomes
)

var submitOutcomes = [numSubmitOutcomes]string{"accepted", "nack_permanent", "nack_temporary", "timeout", "not_sent"}

// Delivery report states counted by pushsms_short_code_delivery_reports_total.
var drStates = []string{stateDelivered, stateBuffered, stateFailed, stateExpired}

// drLatencyBuckets reach the 72 h of the longest validity: a report that
// comes days later still lands in a bucket of its own.
var drLatencyBuckets = []float64{1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400, 172800, 259200}

// linkMetrics are smsc-link's counts per short code. Counters are atomics
// read when Prometheus scrapes; the DR latency is an OpenTelemetry
// histogram whose attributes are built once per short code. Only the
// short codes of the accounts exist: labels never grow with traffic.
type linkMetrics struct {
	byCode    map[string]*shortCodeMetrics
	drLatency metric.Float64Histogram
}

type shortCodeMetrics struct {
	submits [numSubmitOutcomes]atomic.Int64 // NACKs are in nacks
	drs     map[string]*atomic.Int64        // by drStates, fixed at creation

	nackMu sync.Mutex
	nacks  map[ucp.ErrorCode]int64 // NACKs by code, permanent and temporary

	drOpts []metric.RecordOption
}

// submitResult counts what the SMSC answered to a 51 of shortCode (err as
// Client.Submit returned it). A nil m counts nothing.
func (m *linkMetrics) submitResult(shortCode string, err error) {
	if m == nil {
		return
	}
	sc := m.byCode[shortCode]
	if sc == nil {
		return
	}
	if err == nil {
		sc.submits[submitAccepted].Add(1)
		return
	}
	// Declared past the common case: errors.As moves it to the heap.
	var nack *ucp.NackError
	switch {
	case errors.As(err, &nack):
		// By code: the outcome (permanent or temporary) follows from it.
		sc.nackMu.Lock()
		sc.nacks[nack.Code]++
		sc.nackMu.Unlock()
	case errors.Is(err, ucp.ErrTimeout), errors.Is(err, ucp.ErrInDoubt):
		sc.submits[submitTimeout].Add(1)
	default:
		sc.submits[submitNotSent].Add(1)
	}
}

// deliveryReport counts a delivery report stored for shortCode, in its
// report subject state, and for a DELIVERED one the time from the
// submit's SCTS to now. A zero scts (unparsable) counts no latency.
func (m *linkMetrics) deliveryReport(ctx context.Context, shortCode, state string, scts, now time.Time) {
	if m == nil {
		return
	}
	sc := m.byCode[shortCode]
	if sc == nil {
		return
	}
	if n := sc.drs[state]; n != nil {
		n.Add(1)
	}
	if state == stateDelivered && !scts.IsZero() {
		m.drLatency.Record(ctx, max(now.Sub(scts), 0).Seconds(), sc.drOpts...)
	}
}

// newMetrics exposes each short code's rate as the operator sees it, read
// from the link state when Prometheus scrapes (docs/smsc-link.md,
// "Metrics"), its submits, NACKs and delivery reports, and the service's
// correlation counters (Stats).
func (s *Service) newMetrics() (*linkMetrics, error) {
	m := s.Tel.Meter("pushsms.io/services/smsc-link")
	var errs []error
	gauge := func(name, unit, desc string) metric.Float64ObservableGauge {
		g, err := m.Float64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	counter := func(name, desc string) metric.Int64ObservableCounter {
		c, err := m.Int64ObservableCounter(name, metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	contracted := gauge("pushsms_short_code_rate_contracted", "",
		"SMS-MT per second the short code's contract allows: the rate guard's limit (SHORT_CODES bucket, -rates, -default-rate).")
	achieved := gauge("pushsms_short_code_rate_achieved", "",
		"SMS-MT per second the SMSC accepted, mean of the last 10 whole seconds.")
	roundTrip := gauge("pushsms_short_code_ack_round_trip", "s",
		"Mean time an SMS-MT held a place of the rate guard beyond 1 s over the last 3 s (its grant's lateness plus grant to ACK): R SMS-MT take 1 s plus this.")
	slowdown := gauge("pushsms_short_code_slowdown", "",
		"Fraction of the contracted rate the link takes now (1: full rate; halved per second of NACK 04 or ACK timeouts).")
	up := gauge("pushsms_short_code_link_up", "",
		"1 while a UCP session of the short code is logged in.")
	submits := counter("pushsms_short_code_submits",
		"Submits (OT 51) by what the SMSC answered: accepted, nack_permanent (FAILED), nack_temporary (redelivered), timeout (UNKNOWN), not_sent (the session failed while writing it: redelivered; a submit waiting for a session is not counted); code is the UCP error code of a NACK.")
	drs := counter("pushsms_short_code_delivery_reports",
		"Delivery reports (OT 53) matched and stored, by state: delivered, buffered (not final), failed, expired. Delivery ratio: delivered / (delivered + failed + expired).")
	unmatched := counter("pushsms_smsc_link_dr_unmatched", "DRs NACKed because no submit record matched them (yet): the SMSC sends them again.")
	stale := counter("pushsms_smsc_link_dr_stale", "DRs ACKed and dropped: older than the correlation keys are kept.")
	collisions := counter("pushsms_smsc_link_scts_collisions", "ACKs whose (recipient, SCTS) key already belonged to another segment: the later one's DRs cannot be matched.")
	authFailures := counter("pushsms_smsc_link_auth_failures", "Logins (OT 60) the SMSC refused.")
	lateAcks := counter("pushsms_smsc_link_late_acks", "51 results that came after their timeout: the segment, reported UNKNOWN, gets its DR key after all.")
	duplicates := counter("pushsms_smsc_link_possible_duplicates", "resends of UNKNOWN segments (customer relationship only): the SMSC may have taken an earlier 51 too.")
	drLatency, err := m.Float64Histogram("pushsms_short_code_dr_latency", metric.WithUnit("s"),
		metric.WithDescription("Time from a segment's SCTS (the SMSC's acceptance) to the arrival of its DELIVERED report."),
		metric.WithExplicitBucketBoundaries(drLatencyBuckets...))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}

	lm := &linkMetrics{byCode: make(map[string]*shortCodeMetrics, len(s.links)), drLatency: drLatency}
	for sc := range s.links {
		lm.byCode[sc] = newShortCodeMetrics(sc)
	}

	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		now := s.now()
		for sc, l := range s.links {
			scAttr := attribute.String("short_code", sc)
			at := metric.WithAttributeSet(attribute.NewSet(scAttr))
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

			scm := lm.byCode[sc]
			for i, oc := range submitOutcomes {
				if i == submitNackPermanent || i == submitNackTemporary {
					continue // by code below
				}
				o.ObserveInt64(submits, scm.submits[i].Load(), metric.WithAttributes(scAttr, attribute.String("outcome", oc)))
			}
			for _, n := range scm.nackCounts() {
				oc := submitOutcomes[submitNackPermanent]
				if n.code.Temporary() {
					oc = submitOutcomes[submitNackTemporary]
				}
				o.ObserveInt64(submits, n.count, metric.WithAttributes(scAttr, attribute.String("outcome", oc), attribute.String("code", fmt.Sprintf("%02d", uint8(n.code)))))
			}
			for _, state := range drStates {
				o.ObserveInt64(drs, scm.drs[state].Load(), metric.WithAttributes(scAttr, attribute.String("state", state)))
			}
		}
		o.ObserveInt64(unmatched, s.stats.unmatched.Load())
		o.ObserveInt64(stale, s.stats.stale.Load())
		o.ObserveInt64(collisions, s.stats.collisions.Load())
		o.ObserveInt64(authFailures, s.stats.authFailures.Load())
		o.ObserveInt64(lateAcks, s.stats.lateAcks.Load())
		o.ObserveInt64(duplicates, s.stats.resends.Load())
		return nil
	}, contracted, achieved, roundTrip, slowdown, up, submits, drs, unmatched, stale, collisions, authFailures, lateAcks, duplicates)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return lm, nil
}

func newShortCodeMetrics(shortCode string) *shortCodeMetrics {
	scm := &shortCodeMetrics{drs: make(map[string]*atomic.Int64, len(drStates)), nacks: make(map[ucp.ErrorCode]int64)}
	for _, st := range drStates {
		scm.drs[st] = new(atomic.Int64)
	}
	scm.drOpts = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("short_code", shortCode)))}
	return scm
}

type nackCount struct {
	code  ucp.ErrorCode
	count int64
}

// nackCounts lists the NACKs by code, in code order.
func (scm *shortCodeMetrics) nackCounts() []nackCount {
	scm.nackMu.Lock()
	defer scm.nackMu.Unlock()
	out := make([]nackCount, 0, len(scm.nacks))
	for c, n := range scm.nacks {
		out = append(out, nackCount{c, n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].code < out[j].code })
	return out
}
