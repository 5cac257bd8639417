package smsclink_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/smscsim"
	smsclink "pushsms.io/services/smsc-link"
)

// BenchmarkSubmitDelivered runs b.N segments through the whole path in one
// process (embedded NATS, the service, the simulator): consume, 51, ACK,
// correlation and attempt records, SUBMITTED report, DR, DELIVERED report.
// The guards hold the short codes to 1 000/s each, so the time per op
// says little; cpu-µs/op (the process's user + system CPU per segment, like
// ratebench's figure) is the number to compare.
func BenchmarkSubmitDelivered(b *testing.B) {
	// Four short codes: the guard holds each to 1 000/s, and the machine
	// should be busy enough for the fixed costs (timers, idle wake-ups)
	// not to dominate.
	codes := []string{shortCode, "36001", "36002", "36003"}
	var simAccs []smscsim.Account
	var accs smsclink.AccountList
	for _, c := range codes {
		simAccs = append(simAccs, smscsim.Account{ShortCode: c, Password: password})
		accs = append(accs, smsclink.Account{ShortCode: c, Password: password})
	}
	e := newEnv(b, smscsim.Config{Accounts: simAccs, DR: smscsim.DRConfig{Delay: 5 * time.Millisecond}}, func(c *smsclink.Config) {
		c.Accounts = accs
		c.Window = 100
	})
	// No span recorder: spans sampled out, as in production at
	// -trace-ratio 0.
	e.spans = nil
	e.startService()
	ctx := context.Background()
	st, err := e.pub.JS.Stream(ctx, bus.StreamReports)
	if err != nil {
		b.Fatal(err)
	}
	text := segments(b, "bench")[0]
	b.ResetTimer()
	cpu0, msgs0 := cpuTime(b), serverMsgs(b, e.srv)
	for i := range b.N {
		ev := submitEvent(fmt.Sprintf("0190a8e2-0000-7000-8000-%012d", i), text)
		ev.RecipientE164 = fmt.Sprintf("+3361%07d", i%10_000_000)
		ev.ShortCode = codes[i%len(codes)]
		e.publish(ev)
	}
	want := uint64(2 * b.N) // submitted and delivered
	bustest.Eventually(b, 5*time.Minute, func() error {
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs < want {
			return fmt.Errorf("%d reports of %d", info.State.Msgs, want)
		}
		return nil
	})
	b.StopTimer()
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	// The messages the server received: requests, publishes and acks, each
	// a round trip's worth of work for it, less noisy than the CPU time on
	// a shared machine.
	b.ReportMetric(float64(serverMsgs(b, e.srv)-msgs0)/float64(b.N), "nats-msgs/op")
	if st := e.svc.Stats(); st.RefCacheHits+st.RefCacheMisses > 0 {
		b.ReportMetric(100*float64(st.RefCacheHits)/float64(st.RefCacheHits+st.RefCacheMisses), "dr-cache-hit-%")
	}
}

func serverMsgs(b *testing.B, srv *bustest.Server) int64 {
	v, err := srv.Varz(nil)
	if err != nil {
		b.Fatal(err)
	}
	return v.InMsgs
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
