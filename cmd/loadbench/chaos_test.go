package main

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSchedule(t *testing.T) {
	targets := faultTargets([]string{"billing-1", "billing-2", "smsc-link", "throttle-1", "throttle-2", "ingest"})
	tests := []struct {
		name string
		seed int64
		span time.Duration
	}{
		{"two minutes", 1, 2 * time.Minute},
		{"another seed", 42, 2 * time.Minute},
		{"short drive", 7, 10 * time.Second},
		{"long drive", 99, 11 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := schedule(tt.seed, tt.span, targets)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(targets) {
				t.Fatalf("%d faults, want %d", len(got), len(targets))
			}
			slot := tt.span * 8 / 10 / time.Duration(len(targets))
			for i, f := range got {
				if f.At < tt.span/10 || f.At > tt.span*9/10 {
					t.Errorf("fault %d at %v: outside [10 %%, 90 %%] of %v", i, f.At, tt.span)
				}
				if i > 0 && f.At-got[i-1].At < slot/5 {
					t.Errorf("faults %d and %d %v apart: want at least a fifth of a slot (%v)", i-1, i, f.At-got[i-1].At, slot/5)
				}
			}
			// Every target once, whatever the order.
			key := func(f Fault) string { return string(f.Kind) + "/" + f.Target }
			var want, have []string
			for i := range targets {
				want, have = append(want, key(targets[i])), append(have, key(got[i]))
			}
			slices.Sort(want)
			slices.Sort(have)
			if !slices.Equal(want, have) {
				t.Errorf("targets %v, want %v", have, want)
			}
			// The same seed replays the same run.
			again, _ := schedule(tt.seed, tt.span, targets)
			if !slices.Equal(got, again) {
				t.Errorf("seed %d gave two schedules", tt.seed)
			}
		})
	}
	a, _ := schedule(1, time.Minute, targets)
	b, _ := schedule(2, time.Minute, targets)
	if slices.Equal(a, b) {
		t.Error("seeds 1 and 2 gave the same schedule")
	}
	if _, err := schedule(1, 0, targets); err == nil {
		t.Error("span 0: no error")
	}
}

func TestFaultTargets(t *testing.T) {
	got := faultTargets([]string{"throttle-1", "throttle-2"})
	kinds := map[FaultKind]int{}
	for _, f := range got {
		kinds[f.Kind]++
	}
	want := map[FaultKind]int{FaultKill: 2, FaultNATS: 1, FaultPostgres: 1, FaultLinkCut: 1}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%s: %d faults, want %d", k, kinds[k], n)
		}
	}
}

// good is a run where everything holds: 10 messages of 2 segments, one
// delivered segment's 51 ACKed twice after a crash.
func good() chaosFigures {
	return chaosFigures{
		Accepted: 10, Rows: 10, ByState: map[string]int64{"delivered": 8, "failed": 2},
		SegmentsExpected: 20, SegmentsByState: map[string]int64{"delivered": 17, "failed": 3},
		LedgerRows: 20, LedgerDistinct: 20, LedgerDelivered: 17,
		SimSubmits: 21, SimAccepted: 21, DupSegments: 1, DupSubmits: 1, Window: 10, Crashes: 1,
	}
}

func TestCheckInvariants(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*chaosFigures)
		failed []int // invariants (1-5) expected to fail
	}{
		{"all hold", func(*chaosFigures) {}, nil},
		{"a message still submitted", func(f *chaosFigures) {
			f.ByState["delivered"], f.ByState["submitted"], f.NonTerminal = 7, 1, 1
		}, []int{1, 2}},
		{"delivered message with an open segment", func(f *chaosFigures) { f.Incoherent = 1 }, []int{1}},
		{"an accepted message without a row", func(f *chaosFigures) { f.Accepted, f.MissingRows = 11, 1 }, []int{2}},
		{"a row nobody accepted", func(f *chaosFigures) { f.Accepted, f.ExtraRows = 9, 1 }, []int{2}},
		{"a request abandoned", func(f *chaosFigures) { f.Abandoned = 1 }, []int{2}},
		{"nothing accepted", func(f *chaosFigures) {
			*f = chaosFigures{ByState: map[string]int64{}, SegmentsByState: map[string]int64{}}
		}, []int{1, 2}},
		{"a delivered segment not billed", func(f *chaosFigures) {
			f.LedgerRows, f.LedgerDistinct, f.LedgerDelivered, f.DeliveredNotBilled = 19, 19, 16, 1
		}, []int{3}},
		{"a failed segment billed as delivered", func(f *chaosFigures) { f.LedgerDelivered, f.BilledNotDelivered = 18, 1 }, []int{3}},
		{"a failed segment not in the ledger", func(f *chaosFigures) { f.LedgerRows, f.LedgerDistinct = 19, 19 }, []int{3}},
		{"duplicates at the bound", func(f *chaosFigures) { f.DupSegments, f.DupSubmits, f.Crashes = 20, 20, 2 }, nil},
		{"duplicates above the bound", func(f *chaosFigures) { f.DupSegments, f.DupSubmits = 11, 11 }, []int{4}},
		{"duplicates without a crash", func(f *chaosFigures) { f.Crashes = 0 }, []int{4}},
		{"a violation", func(f *chaosFigures) { f.Violations = 1 }, []int{5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := good()
			tt.modify(&f)
			inv := checkInvariants(f)
			if len(inv) != 5 {
				t.Fatalf("%d invariants, want 5", len(inv))
			}
			for i, in := range inv {
				wantOK := !slices.Contains(tt.failed, i+1)
				if in.OK != wantOK {
					t.Errorf("invariant %q: ok %v, want %v (%s)", in.Name, in.OK, wantOK, in.Figures)
				}
				if in.Figures == "" {
					t.Errorf("invariant %q without figures", in.Name)
				}
			}
		})
	}
}

func TestCountDuplicates(t *testing.T) {
	sub := func(acc, adc, msg, outcome string) simSubmit {
		return simSubmit{Account: acc, AdC: adc, Msg: msg, Outcome: outcome}
	}
	tests := []struct {
		name                  string
		subs                  []simSubmit
		dupSeg, dupSub, resub int64
	}{
		{"none", []simSubmit{sub("36000", "33607", "a", "accepted"), sub("36000", "33607", "b", "accepted")}, 0, 0, 0},
		{"ACKed twice", []simSubmit{sub("36000", "33607", "a", "accepted"), sub("36000", "33607", "a", "accepted")}, 1, 1, 1},
		{"three times", []simSubmit{sub("36000", "33607", "a", "accepted"), sub("36000", "33607", "a", "accepted"), sub("36000", "33607", "a", "accepted")}, 1, 2, 1},
		{"throttled then ACKed: not a duplicate", []simSubmit{sub("36000", "33607", "a", "throttled"), sub("36000", "33607", "a", "accepted")}, 0, 0, 1},
		{"same part, other recipients", []simSubmit{sub("36000", "33607", "a", "accepted"), sub("36000", "33608", "a", "accepted")}, 0, 0, 0},
		{"same part under another concatenation reference", []simSubmit{
			{Account: "36000", AdC: "33607", Msg: "a", UDH: udh(0x11, 3, 2), Outcome: "accepted"},
			{Account: "36000", AdC: "33607", Msg: "a", UDH: udh(0x12, 3, 2), Outcome: "accepted"},
		}, 1, 1, 1},
		{"same text, other part", []simSubmit{
			{Account: "36000", AdC: "33607", Msg: "a", UDH: udh(0x11, 3, 2), Outcome: "accepted"},
			{Account: "36000", AdC: "33607", Msg: "a", UDH: udh(0x11, 3, 3), Outcome: "accepted"},
		}, 0, 0, 0},
		{"other system's account ignored", []simSubmit{sub("38000", "33607", "a", "accepted"), sub("38000", "33607", "a", "accepted")}, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b, c := countDuplicates(tt.subs, []string{"36000"})
			if a != tt.dupSeg || b != tt.dupSub || c != tt.resub {
				t.Errorf("got %d, %d, %d; want %d, %d, %d", a, b, c, tt.dupSeg, tt.dupSub, tt.resub)
			}
		})
	}
}

// udh is a concatenation header (8-bit reference) as the simulator's
// JSON carries it.
func udh(ref, total, seq byte) string {
	return base64.StdEncoding.EncodeToString([]byte{0x05, 0x00, 0x03, ref, total, seq})
}

func TestAttributeAndCrashes(t *testing.T) {
	faults := []FaultRecord{
		{Fault: Fault{Kind: FaultKill, Target: "throttle-1"}, Started: 5 * time.Second},
		{Fault: Fault{Kind: FaultKill, Target: "smsc-link"}, Started: 10 * time.Second},
		{Fault: Fault{Kind: FaultLinkCut, Target: "smsc-sim"}, Started: 20 * time.Second},
		{Fault: Fault{Kind: FaultNATS, Target: "nats-server"}, Started: 30 * time.Second},
		{Fault: Fault{Kind: FaultKill, Target: "billing-1"}, Started: 40 * time.Second},
	}
	tests := []struct {
		at   time.Duration
		want string
	}{
		{time.Second, "before any fault"},
		{10500 * time.Millisecond, "0.5 s after fault #2 (kill -9 + restart, smsc-link)"},
		{25 * time.Second, "after fault #3 (SMSC link cut + restore"},
		{time.Minute, "after fault #5"},
	}
	for _, tt := range tests {
		if got := attribute(tt.at, faults); !strings.Contains(got, tt.want) {
			t.Errorf("attribute(%v) = %q, want it to contain %q", tt.at, got, tt.want)
		}
	}
	if n := linkCrashes(faults); n != 3 {
		t.Errorf("linkCrashes = %d, want 3 (smsc-link kill, link cut, NATS restart)", n)
	}
}

func TestChaosDefaults(t *testing.T) {
	cfg := Config{Messages: 1000}
	chaosDefaults(&cfg, map[string]bool{})
	if cfg.Messages != 20000 || cfg.Pace != 150 || cfg.Seed == 0 {
		t.Errorf("defaults: messages %d, pace %v, seed %d", cfg.Messages, cfg.Pace, cfg.Seed)
	}
	cfg = Config{Messages: 500, Pace: 20, Seed: 3}
	chaosDefaults(&cfg, map[string]bool{"messages": true, "pace": true})
	if cfg.Messages != 500 || cfg.Pace != 20 || cfg.Seed != 3 {
		t.Errorf("flags given: messages %d, pace %v, seed %d", cfg.Messages, cfg.Pace, cfg.Seed)
	}
}
