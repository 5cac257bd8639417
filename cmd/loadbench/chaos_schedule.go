package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// FaultKind is what a fault does to its target.
type FaultKind string

const (
	// FaultKill is kill -9 of a service process, then a start of the same
	// binary with the same flags and port.
	FaultKill FaultKind = "kill -9 + restart"
	// FaultNATS is kill -9 of the NATS server, started again on the same
	// store directory and port.
	FaultNATS FaultKind = "NATS server kill -9 + restart"
	// FaultPostgres is pg_ctl stop -m fast, then start on the same data
	// directory and port.
	FaultPostgres FaultKind = "PostgreSQL stop -m fast + start"
	// FaultLinkCut stops the SMSC simulator (every session drops, the port
	// refuses connections) for Config.CutFor, then starts it again on the
	// same ports and state file.
	FaultLinkCut FaultKind = "SMSC link cut + restore"
)

// Fault is one planned fault: when, from the start of the drive, and what.
type Fault struct {
	At     time.Duration `json:"at_ns"`
	Kind   FaultKind     `json:"kind"`
	Target string        `json:"target"`
}

// faultTargets is every fault of a run: each service process (every
// replica) killed once, the NATS server, PostgreSQL, the SMSC link.
func faultTargets(services []string) []Fault {
	var out []Fault
	for _, s := range services {
		out = append(out, Fault{Kind: FaultKill, Target: s})
	}
	return append(out,
		Fault{Kind: FaultNATS, Target: "nats-server"},
		Fault{Kind: FaultPostgres, Target: "postgresql"},
		Fault{Kind: FaultLinkCut, Target: "smsc-sim"})
}

// schedule places the faults at random times of a drive lasting span:
// the order is shuffled and each fault falls at a random point of its own
// slot of [10 %, 90 %] of span. Slots rather than independent draws so
// that two faults never land on top of each other: each restart gets its
// slot to come back and the platform is hit by one fault at a time, as
// the invariants' bounds (one window per crash) assume. The same seed
// gives the same schedule: a failing run can be replayed.
func schedule(seed int64, span time.Duration, faults []Fault) ([]Fault, error) {
	if span <= 0 {
		return nil, fmt.Errorf("schedule: span %v: want > 0", span)
	}
	if len(faults) == 0 {
		return nil, nil
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	out := slices.Clone(faults)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	lo, width := span/10, span*8/10
	slot := width / time.Duration(len(out))
	for i := range out {
		// The middle 80 % of the slot: a fault is at least a fifth of a slot
		// from its neighbours.
		jitter := time.Duration(0)
		if d := int64(slot) * 8 / 10; d > 0 {
			jitter = time.Duration(rng.Int64N(d))
		}
		out[i].At = lo + time.Duration(i)*slot + slot/10 + jitter
	}
	return out, nil
}

// chaosDefaults sets the chaos run's defaults for the flags not given: a
// moderate paced load lasting a minute or two on a 2-core machine (the
// issue's 100 000 messages with -messages 100000), and a seed.
func chaosDefaults(cfg *Config, set map[string]bool) {
	if !set["messages"] {
		cfg.Messages = 20000
	}
	if !set["pace"] {
		cfg.Pace = 150 // 300 segments/s, below the 4 × 100 contracted
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Int64N(1<<31) + 1
	}
}
