package smsclink

import (
	"context"
	"testing"
	"time"

	"pushsms.io/lib/telemetry"
	"pushsms.io/lib/ucp"
)

// BenchmarkLinkMetrics is what counting costs smsc-link per 51 result and
// per DR, with the real SDK and Prometheus exporter behind.
func BenchmarkLinkMetrics(b *testing.B) {
	tel, err := telemetry.Setup(context.Background(), "bench", telemetry.Config{LogLevel: "error", LogFormat: "text"})
	if err != nil {
		b.Fatal(err)
	}
	hist, err := tel.Meter("bench").Float64Histogram("pushsms_short_code_dr_latency")
	if err != nil {
		b.Fatal(err)
	}
	m := &linkMetrics{byCode: map[string]*shortCodeMetrics{"36000": newShortCodeMetrics("36000")}, drLatency: hist}
	ctx := context.Background()
	nack := &ucp.NackError{OT: ucp.OTSubmit, Code: ucp.ECNotAllowed}
	scts := time.Now().Add(-3 * time.Second)
	b.Run("submit_accepted", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.submitResult("36000", nil)
		}
	})
	b.Run("submit_nack", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.submitResult("36000", nack)
		}
	})
	b.Run("dr_delivered", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.deliveryReport(ctx, "36000", stateDelivered, scts, time.Now())
		}
	})
}
