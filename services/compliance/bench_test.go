package compliance

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/embeddednats"
	"pushsms.io/lib/numplan"
	"pushsms.io/lib/optout"
	"pushsms.io/lib/policy"
	"pushsms.io/lib/telemetry"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// benchPoolSize distinct Orange recipients: a campaign's audience. Past
// it the recipients repeat, and the frequency cap refuses, as it would.
const benchPoolSize = 1 << 17

var (
	benchPoolOnce sync.Once
	benchPool     []string
	benchPlan     *numplan.Plan
)

// benchRecipients are distinct numbers of Orange (FRTE) blocks, written
// the ways partners write them.
func benchRecipients(b *testing.B) ([]string, *numplan.Plan) {
	benchPoolOnce.Do(func() {
		plan, err := numplan.Load()
		if err != nil {
			panic(err)
		}
		benchPlan = plan
		for i := 0; len(benchPool) < benchPoolSize; i++ {
			// 06 and 07 numbers spread over every block.
			nsn := fmt.Sprintf("%d%08d", 6+i%2, (i*7919)%100000000)
			n, err := numplan.Parse("+33" + nsn)
			if err != nil || n.CheckMobile(false) != nil {
				continue
			}
			if h, _ := plan.Holder(n); h != numplan.Orange {
				continue
			}
			var s string
			switch i % 4 {
			case 0:
				s = "0" + nsn
			case 1:
				s = "+33" + nsn
			case 2:
				s = "0" + nsn[:1] + " " + nsn[1:3] + " " + nsn[3:5] + " " + nsn[5:7] + " " + nsn[7:]
			default:
				s = "0033" + nsn
			}
			benchPool = append(benchPool, s)
		}
	})
	if len(benchPool) < benchPoolSize {
		b.Fatal("no recipient pool")
	}
	return benchPool, benchPlan
}

// benchKind is one kind of message of the mix, with its share out of 100.
type benchKind struct {
	share     int
	shortCode string
	brand     string
	sender    string
	category  partnerv1.TrafficCategory
	text      string
	// recipient, when set, replaces the pool's (a refused number).
	recipient string
}

// benchMix is a day of an aggregator: mostly marketing campaigns of
// several brands from 36xxx (one with a brand sender, one on 35xxx with
// geo-presence), some customer relationship, a little M2M, and partners'
// mistakes refused early or late.
var benchMix = []benchKind{
	{30, "36101", "Acme", "", partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING,
		"Acme : -30% sur toute la boutique ce week-end avec le code HIVER26. STOP au 36101", ""},
	{20, "36102", "Boulangerie Paul", "PAUL", partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING,
		"Boulangerie Paul : la galette des rois est arrivée ! 2 achetées, la 3e à moitié prix. STOP au 36102", ""},
	{15, "36103", "Globex", "", partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING,
		"Soldes d'hiver chez Globex : jusqu'à -50% en magasin et sur globex.fr dès mercredi 8h. STOP au 36103", ""},
	{10, "35101", "Fnac Lyon", "", partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING,
		"Fnac Lyon : vous êtes à deux pas, profitez de -10% sur les livres aujourd'hui. STOP au 35101", ""},
	{12, "36101", "Acme", "", partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP,
		"Acme : votre commande 4821-77 a été expédiée, livraison prévue demain avant 13h.", ""},
	{5, "38101", "Acme", "", partnerv1.TrafficCategory_TRAFFIC_CATEGORY_M2M,
		"CFG APN=orange.m2m;PORT=4021", ""},
	{3, "36103", "Globex", "", partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING,
		"Globex : grande vente privée ce soir ! STOP au 36103", "06 12 34 56 78"}, // SFR block: network
	{2, "36101", "Acme", "", partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING,
		"Acme : -30% ce week-end. STOP au 36101", "01 23 45 67 89"}, // fixed line: numbering
	{3, "36102", "Boulangerie Paul", "", partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING,
		"Nouveau : le pain gratuit pour toute commande ! STOP au 36102", ""}, // content: brand, free claim
}

// benchTable expands the mix into 100 slots.
func benchTable() []benchKind {
	var t []benchKind
	for _, k := range benchMix {
		for range k.share {
			t = append(t, k)
		}
	}
	if len(t) != 100 {
		panic(fmt.Sprintf("bench mix sums to %d, want 100", len(t)))
	}
	// Interleave, as several campaigns run at once.
	out := make([]benchKind, 100)
	for i := range t {
		out[(i*37)%100] = t[i]
	}
	return out
}

// benchRules compiles the full rule set: every rule of the default policy
// on, the options of the mix's short codes subscribed, the MO-session
// store and the opt-out index on the bus, the frequency cap in the
// FREQUENCY bucket of a real (embedded) NATS server when freq.
func benchRules(b *testing.B, bb *bus.Bus, freq, kvClient bool) *ruleSet {
	_, plan := benchRecipients(b)
	ctx := context.Background()
	p := policy.Default()
	p.ShortCodes = map[string]policy.ShortCode{
		"36102": {OAdCModification: true},
		"35101": {GeoPresence: true},
	}
	sessions, err := optout.OpenSessions(ctx, bb)
	if err != nil {
		b.Fatal(err)
	}
	idx, err := optout.WatchIndex(ctx, bb)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(idx.Stop)
	d := ruleDeps{plan: plan, sessions: sessions, optOuts: idx}
	if freq {
		kv, err := bb.JS.KeyValue(ctx, bus.BucketFrequency)
		if err != nil {
			b.Fatal(err)
		}
		d.freq, d.conn = kv, bb.Conn
		if kvClient {
			d.conn = nil // every create through the KV client
		}
	}
	rs, err := compileRules(&p, d)
	if err != nil {
		b.Fatal(err)
	}
	return rs
}

// BenchmarkDecide measures decisions of the whole rule list over a
// realistic mix (benchMix), with benchParallelism decisions in flight per core (a
// replica's -workers: the frequency cap waits on NATS). It reports
// decisions per second of wall time and per CPU-second:
//
//   - all_rules: NATS embedded in the benchmark's process, so its CPU
//     counts in decisions/cpu-s, as on a machine running both;
//   - all_rules_nats_apart: NATS in a process of its own, as in
//     production: decisions/cpu-s is the replica's CPU only, and
//     decisions/cpu-s-with-nats adds the server's;
//   - all_rules_kv_client: new keys created through the KV client
//     (KeyValue.Create) rather than createFast, to measure it;
//   - no_frequency: the cap left out, to show where the time goes.
func BenchmarkDecide(b *testing.B) {
	for _, bc := range []struct {
		name     string
		freq     bool
		apart    bool
		kvClient bool
	}{
		{"all_rules", true, false, false},
		{"all_rules_nats_apart", true, true, false},
		{"all_rules_kv_client", true, false, true},
		{"no_frequency", false, false, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var (
				bb        *bus.Bus
				serverCPU = func() time.Duration { return 0 }
			)
			if bc.apart {
				bb, serverCPU = benchNATSApart(b)
			} else {
				bb = bustest.Connect(b, bustest.Start(b))
			}
			rs := benchRules(b, bb, bc.freq, bc.kvClient)
			pool, _ := benchRecipients(b)
			table := benchTable()
			paris, err := time.LoadLocation(Zone)
			if err != nil {
				b.Fatal(err)
			}
			// A Tuesday morning: the window is open.
			now := time.Date(2026, time.November, 24, 10, 0, 0, 0, paris)
			accepted, expires := timestamppb.New(now.Add(-time.Second)), timestamppb.New(now.Add(48*time.Hour))
			var seq atomic.Int64
			var refused, failed atomic.Int64
			ctx := context.Background()
			b.SetParallelism(benchParallelism)
			b.ReportAllocs()
			cpu0, srv0 := cpuTime(), serverCPU()
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := seq.Add(1)
					k := &table[i%100]
					rcpt := k.recipient
					if rcpt == "" {
						rcpt = pool[i%benchPoolSize]
					}
					acc := &eventsv1.MessageAccepted{
						MessageId:  "m" + strconv.FormatInt(i, 36),
						TenantId:   "partner-1",
						CampaignId: k.shortCode,
						ShortCode:  k.shortCode,
						Brand:      k.brand,
						Sender:     k.sender,
						Category:   k.category,
						Recipient:  rcpt,
						Text:       k.text,
						AcceptedAt: accepted,
						ExpiresAt:  expires,
					}
					c := &Candidate{Accepted: acc, Now: now}
					v, err := rs.check(ctx, c)
					if err != nil {
						failed.Add(1)
						continue
					}
					if v.Reason != partnerv1.Reason_REASON_UNSPECIFIED {
						refused.Add(1)
					}
				}
			})
			b.StopTimer()
			wall, cpu, srvCPU := time.Since(start), cpuTime()-cpu0, serverCPU()-srv0
			if failed.Load() > 0 {
				b.Fatalf("%d decisions failed", failed.Load())
			}
			n := float64(b.N)
			b.ReportMetric(n/wall.Seconds(), "decisions/s")
			b.ReportMetric(n/cpu.Seconds(), "decisions/cpu-s")
			if bc.apart {
				b.ReportMetric(n/(cpu+srvCPU).Seconds(), "decisions/cpu-s-with-nats")
			}
			b.ReportMetric(float64(refused.Load())/n*100, "%refused")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchNATSEnv tells the test binary, run again by benchNATSApart, to be
// the NATS server.
const benchNATSEnv = "COMPLIANCE_BENCH_NATS_DIR"

// TestBenchNATSServer is the NATS server of BenchmarkDecide's
// all_rules_nats_apart, in its own process (the test binary run again with
// benchNATSEnv set); without it, it has nothing to do.
func TestBenchNATSServer(t *testing.T) {
	dir := os.Getenv(benchNATSEnv)
	if dir == "" {
		t.Skip("the NATS server of BenchmarkDecide, run by it")
	}
	s, err := embeddednats.Start(embeddednats.Config{Dir: dir, Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	fmt.Printf("NATS_URL=%s\n", s.URL())
	// Until the benchmark closes stdin (or dies).
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// benchNATSApart starts a NATS server in another process and returns a bus
// on it and a reading of the server's CPU time.
func benchNATSApart(b *testing.B) (*bus.Bus, func() time.Duration) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchNATSServer$", "-test.v")
	cmd.Env = append(os.Environ(), benchNATSEnv+"="+b.TempDir())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	url := ""
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "NATS_URL="); ok {
			url = u
			break
		}
	}
	if url == "" {
		b.Fatal("the NATS server process printed no URL")
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	tel, err := telemetry.Setup(context.Background(), "bench", telemetry.Config{LogLevel: "error", LogFormat: "text"})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bb, err := bus.Connect(ctx, bus.Config{URL: url, Replicas: 1}, "bench", tel)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bb.Close() })
	pid := cmd.Process.Pid
	return bb, func() time.Duration { return procCPU(b, pid) }
}

// procCPU reads a process's user and system time from /proc (clock ticks
// of 10 ms: the benchmark runs for seconds).
func procCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name in parentheses: utime is the 14th
	// field of the line, stime the 15th.
	rest := string(raw[strings.LastIndexByte(string(raw), ')')+2:])
	f := strings.Fields(rest)
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", pid, raw)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// benchParallelism is the decisions in flight per core: 64, as a
// replica's default 128 workers on two cores (BENCH_PARALLELISM varies it).
var benchParallelism = func() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_PARALLELISM")); err == nil && n > 0 {
		return n
	}
	return 64
}()
