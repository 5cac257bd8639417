package throttle

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"
)

// fairRun admits the tickets of backlog into a 10/s lane with an unbounded
// lookahead, releases n segments on a simulated clock (no wall clock) and
// counts the segments released per flow ("tenant/campaign"), in release
// order.
func fairRun(t *testing.T, weights map[string]int, backlog []*ticket, n int) (map[string]int, []string) {
	t.Helper()
	l := newLane("36000", StaticRates{Default: 10}, 0, time.Hour, allRunning, t0)
	l.bulk.weight = func(tenant string) int {
		if w, ok := weights[tenant]; ok {
			return w
		}
		return 1
	}
	for _, tk := range backlog {
		if _, ok := l.admit(tk, t0); !ok {
			t.Fatalf("ticket %d not admitted", tk.seq)
		}
	}
	counts := map[string]int{}
	var order []string
	now := t0
	for i := 0; len(order) < n; i++ {
		if i > 10*n+100 {
			t.Fatalf("lane stuck after %d releases", len(order))
		}
		wait, progressed := l.step(now)
		if !progressed {
			if wait == 0 {
				t.Fatalf("lane idle after %d releases", len(order))
			}
			now = now.Add(wait)
			continue
		}
		for _, tk := range backlog {
			select {
			case <-tk.grant:
				k := tk.tenant + "/" + tk.campaignID
				counts[k]++
				order = append(order, k)
				l.request(tk)
			default:
			}
		}
	}
	return counts, order
}

// flowTickets makes n marketing tickets of one flow, with stream sequences
// from seq on, step apart.
func flowTickets(tenant, campaign string, weight, segments, n int, seq, step uint64) []*ticket {
	out := make([]*ticket, n)
	for i := range out {
		tk := newTicket(classBulk, campaign, seq+uint64(i)*step, segments)
		tk.tenant, tk.weight = tenant, weight
		out[i] = tk
	}
	return out
}

func TestLaneWeightedShares(t *testing.T) {
	tests := []struct {
		name    string
		weights map[string]int
		flows   [][]*ticket
		n       int
		want    map[string]float64 // share of the segments released
	}{
		{
			name: "campaigns_3_to_1",
			// Campaign a was submitted entirely before b: without weights
			// b would wait for all of a.
			flows: [][]*ticket{flowTickets("t1", "a", 3, 1, 2000, 1, 1), flowTickets("t1", "b", 1, 1, 2000, 5000, 1)},
			n:     1000,
			want:  map[string]float64{"t1/a": 0.75, "t1/b": 0.25},
		},
		{
			name:    "tenants_2_to_1",
			weights: map[string]int{"t1": 2, "t2": 1},
			flows:   [][]*ticket{flowTickets("t1", "a", 0, 1, 2000, 1, 2), flowTickets("t2", "b", 0, 1, 2000, 2, 2)},
			n:       1200,
			want:    map[string]float64{"t1/a": 2.0 / 3, "t2/b": 1.0 / 3},
		},
		{
			name: "cost_is_segments",
			// Equal weights, a sends 3-part messages: equal segments, so a
			// gets a third as many messages out.
			flows: [][]*ticket{flowTickets("t1", "a", 1, 3, 1000, 1, 2), flowTickets("t1", "b", 1, 1, 3000, 2, 2)},
			n:     1200,
			want:  map[string]float64{"t1/a": 0.5, "t1/b": 0.5},
		},
		{
			name:    "tenant_weight_then_campaign_weight",
			weights: map[string]int{"t1": 1, "t2": 1},
			flows: [][]*ticket{
				flowTickets("t1", "a", 3, 1, 2000, 1, 3), flowTickets("t1", "b", 1, 1, 2000, 2, 3),
				flowTickets("t2", "", 0, 1, 2000, 3, 3), // single messages: one flow
			},
			n:    1600,
			want: map[string]float64{"t1/a": 0.375, "t1/b": 0.125, "t2/": 0.5},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var all []*ticket
			for _, f := range tt.flows {
				all = append(all, f...)
			}
			counts, _ := fairRun(t, tt.weights, all, tt.n)
			for k, want := range tt.want {
				got := float64(counts[k]) / float64(tt.n)
				t.Logf("%s: %.2f %% of %d releases (want %.2f %%)", k, 100*got, tt.n, 100*want)
				if math.Abs(got-want) > 0.01 {
					t.Errorf("%s got %.1f %% of the releases, want %.1f %% ± 1 %% (counts %v)", k, 100*got, 100*want, counts)
				}
			}
		})
	}
}

// Customer relationship still overtakes every marketing flow, whatever
// their weights.
func TestLaneUrgentOvertakesWeighted(t *testing.T) {
	l := newLane("36000", StaticRates{Default: 10}, 0, time.Hour, allRunning, t0)
	var all []*ticket
	all = append(all, flowTickets("t1", "a", 100, 1, 50, 1, 1)...)
	for _, tk := range all {
		l.admit(tk, t0)
	}
	cr := newTicket(classUrgent, "", 1000, 1)
	now := t0
	for {
		wait, progressed := l.step(now)
		if progressed {
			break
		}
		now = now.Add(wait)
	}
	if _, ok := l.admit(cr, now); !ok {
		t.Fatal("customer-relationship ticket not admitted")
	}
	for {
		wait, progressed := l.step(now)
		if progressed {
			break
		}
		now = now.Add(wait)
	}
	select {
	case <-cr.grant:
	default:
		t.Fatal("the release after a CR message arrived went to marketing")
	}
}

// A flow that was idle does not bank credit: when it comes back it shares
// from then on, it does not take the lane for itself to catch up.
func TestLaneIdleFlowBanksNoCredit(t *testing.T) {
	l := newLane("36000", StaticRates{Default: 10}, 0, time.Hour, allRunning, t0)
	a := flowTickets("t1", "a", 1, 1, 400, 1, 1)
	for _, tk := range a {
		l.admit(tk, t0)
	}
	now := t0
	released := func(n int, tks []*ticket) map[string]int {
		got := map[string]int{}
		for c := 0; c < n; {
			wait, progressed := l.step(now)
			if !progressed {
				now = now.Add(wait)
				continue
			}
			for _, tk := range tks {
				select {
				case <-tk.grant:
					got[tk.campaignID]++
					c++
				default:
				}
			}
		}
		return got
	}
	released(200, a) // b idle meanwhile
	b := flowTickets("t1", "b", 1, 1, 200, 10000, 1)
	for _, tk := range b {
		l.admit(tk, now)
	}
	got := released(100, append(a, b...))
	if got["b"] > 52 || got["a"] < 48 {
		t.Errorf("after b came back: a %d, b %d of 100 releases, want about 50/50", got["a"], got["b"])
	}
}

// With a small lookahead the lane admits each flow's share, not the first
// flow's backlog: the light flow's messages are not parked behind it.
func TestLaneAdmitsByShare(t *testing.T) {
	l := newLane("36000", StaticRates{Default: 10}, 0, 2*time.Second, allRunning, t0) // ~20 segments
	a := flowTickets("t1", "a", 3, 1, 100, 1, 1)
	b := flowTickets("t1", "b", 1, 1, 100, 1000, 1)
	admitted := map[string]int{}
	for _, tk := range append(a, b...) {
		if _, ok := l.admit(tk, t0); ok {
			admitted[tk.campaignID]++
		}
	}
	if admitted["b"] == 0 || admitted["a"] == 0 {
		t.Fatalf("admitted %v: want both flows in the lane", admitted)
	}
	if total := admitted["a"] + admitted["b"]; total > 40 {
		t.Errorf("admitted %d tickets, want about the lookahead (20)", total)
	}
}

// A paused campaign's tickets stay in the lane, skipped; the others go on;
// resumed, it shares from then on without catching up.
func TestLanePausedCampaignHeld(t *testing.T) {
	paused := map[string]bool{"a": true}
	l := newLane("36000", StaticRates{Default: 10}, 0, time.Hour, func(id string) bool { return !paused[id] }, t0)
	l.paused = func(id string) bool { return paused[id] }
	a := flowTickets("t1", "a", 1, 1, 100, 1, 1)
	b := flowTickets("t1", "b", 1, 1, 100, 1000, 1)
	all := append(a, b...)
	for _, tk := range all {
		l.admit(tk, t0)
	}
	now := t0
	count := func(n int) map[string]int {
		got := map[string]int{}
		for c := 0; c < n; {
			wait, progressed := l.step(now)
			if !progressed {
				if wait == 0 {
					t.Fatalf("lane idle with %d releases to go", n-c)
				}
				now = now.Add(wait)
				continue
			}
			for _, tk := range all {
				select {
				case <-tk.grant:
					got[tk.campaignID]++
					c++
				case <-tk.evicted:
					t.Fatalf("ticket %d of %s evicted", tk.seq, tk.campaignID)
				default:
				}
			}
		}
		return got
	}
	if got := count(40); got["a"] != 0 || got["b"] != 40 {
		t.Fatalf("a paused: %v, want only b", got)
	}
	paused["a"] = false
	if got := count(40); got["a"] < 19 || got["a"] > 21 {
		t.Errorf("a resumed: %v, want about 20/20 (no catching up)", got)
	}
}

// BenchmarkLaneFairStep: the cost of one release on a lane whose marketing
// backlog is spread over many flows (the scheduler scans the active
// tenants and flows).
func BenchmarkLaneFairStep(b *testing.B) {
	for _, flows := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("flows_%d", flows), func(b *testing.B) {
			l := newLane("36000", StaticRates{Default: MaxRate}, 0, time.Hour, allRunning, t0)
			var all []*ticket
			add := func(seq uint64) {
				tk := newTicket(classBulk, fmt.Sprintf("c%d", seq%uint64(flows)), seq, 1)
				tk.tenant, tk.weight = fmt.Sprintf("t%d", seq%7), int(seq%3)+1
				all = append(all, tk)
				l.admit(tk, t0)
			}
			for i := range 20 * flows {
				add(uint64(i))
			}
			next := uint64(20 * flows)
			now := t0
			b.ResetTimer()
			for range b.N {
				now = now.Add(time.Millisecond)
				if _, ok := l.step(now); !ok {
					b.Fatal("no release")
				}
				b.StopTimer()
				for _, tk := range all {
					select {
					case <-tk.grant:
					default:
					}
				}
				all = slices.DeleteFunc(all, func(tk *ticket) bool { return tk.gone })
				add(next)
				next++
				b.StartTimer()
			}
		})
	}
}
