package ucp_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pushsms.io/lib/smscsim"
	"pushsms.io/lib/ucp"
)

// Session tests and benchmarks against the simulator, on real TCP.

const (
	simCode     = "36000"
	simPassword = "secret"
)

func startSim(t testing.TB) *smscsim.Sim {
	t.Helper()
	sim := smscsim.New(smscsim.Config{
		Accounts: []smscsim.Account{{ShortCode: simCode, Password: simPassword}}, // Rate 0: unlimited
	})
	ctx, cancel := context.WithCancel(context.Background())
	if err := sim.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		sim.Close()
	})
	return sim
}

func dialSim(t testing.TB, sim *smscsim.Sim, opts ucp.Options) *ucp.Client {
	t.Helper()
	opts.Login, opts.Password = simCode, simPassword
	if opts.KeepAlive == 0 {
		opts.KeepAlive = -1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := ucp.Dial(ctx, sim.Addr(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func simSubmit(i int) *ucp.Submit {
	s := &ucp.Submit{AdC: fmt.Sprintf("336%08d", i), OAdC: simCode}
	s.SetText("Votre code de confirmation est 482913.")
	return s
}

// BenchmarkSessionWindow100 is one session with window 100 against the
// simulator on loopback, b.N submits spread over 200 goroutines. No DR is
// requested, so results alone cross the link back.
func BenchmarkSessionWindow100(b *testing.B) {
	sim := startSim(b)
	c := dialSim(b, sim, ucp.Options{Window: 100, AckTimeout: time.Minute})
	const workers = 200
	subs := make([]*ucp.Submit, workers)
	for i := range subs {
		subs[i] = simSubmit(i)
	}
	var next atomic.Int64
	var failed atomic.Int64
	b.ReportAllocs()
	r0, w0, ioOK := procIO()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for next.Add(1) <= int64(b.N) {
				if _, err := c.Submit(ctx, subs[w]); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d submits failed", n, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "submits/s")
	if r1, w1, ok := procIO(); ok && ioOK {
		// Both ends of the link: the simulator writes one frame per write.
		b.ReportMetric(float64(r1-r0)/float64(b.N), "reads/submit")
		b.ReportMetric(float64(w1-w0)/float64(b.N), "writes/submit")
	}
}

// procIO returns the read and write syscall counts of the process (Linux).
func procIO() (reads, writes int64, ok bool) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0, false
	}
	var nr, nw int
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ": ")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "syscr":
			reads, nr = n, nr+1
		case "syscw":
			writes, nw = n, nw+1
		}
	}
	return reads, writes, nr == 1 && nw == 1
}
