package bus

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkConsumerMetricsRecord is what counting one handled event costs
// a consumer: the clock read twice, the outcome, a counter and a histogram
// record, from two goroutines. Budget: < 200 ns, no allocation.
func BenchmarkConsumerMetricsRecord(b *testing.B) {
	m, err := newConsumerMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	d := m.bind(ConsumerSpec{Stream: StreamCleared, Durable: "throttle-36000", FilterSubjects: []string{"sms.cleared.*.36000"}})
	msg := &Msg{raw: &deferrableMsg{}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			start := time.Now()
			d.record(outcomeOf(nil, msg), time.Since(start))
		}
	})
}
