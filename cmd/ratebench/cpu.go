package main

import (
	"fmt"
	"syscall"
	"time"
)

// processCPU is the CPU time (user and system) the process used so far:
// on the pacing path the whole platform but PostgreSQL (the services, NATS
// and the simulator run in it). CPU per segment is the figure that a busy,
// shared machine disturbs least: a run starved of CPU is slower, not
// costlier.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuCost describes the CPU spent while the backlog drained.
func cpuCost(cpu, wall time.Duration, segments int64) string {
	if segments == 0 || wall <= 0 {
		return "no segments"
	}
	return fmt.Sprintf("%.0f µs of CPU per segment while draining (%d segments, %.2f cores busy on average)",
		float64(cpu.Microseconds())/float64(segments), segments, cpu.Seconds()/wall.Seconds())
}

// peakRSS is the process's peak resident set size in bytes (getrusage's
// maxrss, in KiB on Linux).
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss << 10
}
