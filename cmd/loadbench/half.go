package main

import (
	"context"
	"fmt"
	"io"
	"math"
)

// capacityPace is the offer of the capacity step of -half-capacity, in
// messages per second: more than the platform takes, so that what it
// submits is its capacity (SendMessage, Parallel in flight).
const capacityPace = 5000

// HalfCapacity is what the latency run of -half-capacity was paced at: half
// of what the platform submitted in the capacity run before it.
type HalfCapacity struct {
	// CapacityMessages and CapacitySegments are the capacity run's
	// submitted messages and segments per second (steady window).
	CapacityMessages float64 `json:"capacity_messages_per_second"`
	CapacitySegments float64 `json:"capacity_segments_per_second"`
	// Target is the p99 accept→submit the issue asks for there, ms.
	Target float64 `json:"target_p99_ms"`
}

// latencyTarget is issue 8's p99 accept→submit at half capacity, ms.
const latencyTarget = 50

// runHalfCapacity measures latency the way issue 8 asks: the platform's
// capacity through SendMessage (unthrottled, offered more than it takes),
// then, on a fresh platform, the latencies at half of it. Both reports are
// printed; cfg.JSON gets the second, which carries the capacity.
func runHalfCapacity(ctx context.Context, cfg Config, out io.Writer) error {
	capCfg := cfg
	capCfg.HalfCapacity, capCfg.Kannel, capCfg.JSON = false, false, ""
	capCfg.Unthrottled, capCfg.Pace = true, capacityPace
	capRep, err := measure(ctx, capCfg)
	if err != nil {
		return fmt.Errorf("capacity: %w", err)
	}
	if err := writeMarkdown(out, capRep); err != nil {
		return err
	}
	half, err := halfOf(capRep)
	if err != nil {
		return err
	}
	halfCfg := cfg
	halfCfg.HalfCapacity, halfCfg.Unthrottled = false, true
	halfCfg.Pace = math.Round(half.CapacityMessages / 2)
	rep, err := measure(ctx, halfCfg)
	if err != nil {
		return fmt.Errorf("half capacity: %w", err)
	}
	rep.HalfOf = &half
	return writeReport(out, cfg.JSON, rep)
}

// halfOf reads the capacity of our system from a capacity run's report.
func halfOf(r *Report) (HalfCapacity, error) {
	if len(r.Systems) == 0 || r.Messages == 0 {
		return HalfCapacity{}, fmt.Errorf("capacity run: no figures")
	}
	ours := r.Systems[0]
	if !ours.Complete || ours.Submitted.PerSecond <= 0 || ours.Segments == 0 {
		return HalfCapacity{}, fmt.Errorf("capacity run incomplete (%d segments, %.0f/s submitted): no capacity to halve", ours.Segments, ours.Submitted.PerSecond)
	}
	perMessage := float64(ours.Segments) / float64(r.Messages)
	return HalfCapacity{
		CapacitySegments: ours.Submitted.PerSecond,
		CapacityMessages: ours.Submitted.PerSecond / perMessage,
		Target:           latencyTarget,
	}, nil
}

// verdict is the line -half-capacity ends its report with.
func (h HalfCapacity) verdict(r *Report) string {
	if len(r.Systems) == 0 {
		return ""
	}
	p99 := r.Systems[0].AcceptToSubmit.P99
	met := "met"
	if p99 > h.Target {
		met = "not met"
	}
	return fmt.Sprintf("Half capacity: SendMessage capacity %.0f messages/s (%.0f segments/s); offered %.0f messages/s: p99 accept→submit %.1f ms, target ≤ %.0f ms: **%s**.",
		h.CapacityMessages, h.CapacitySegments, r.Pace, p99, h.Target, met)
}
