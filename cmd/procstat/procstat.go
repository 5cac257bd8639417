// Package procstat reads what Linux says of a process in /proc: its CPU
// time, its children's and its peak resident set. The benchmarks use it to
// report the cost of the processes they start.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports (the kernel fixes it for
// user space, whatever CONFIG_HZ is), so there is no need for sysconf.
const clockTicks = 100

// ErrMalformed reports a /proc file that does not read as the kernel writes it.
var ErrMalformed = errors.New("procstat: malformed")

// Sample is what the kernel says of one process.
type Sample struct {
	// CPU is user + system seconds of the process's own threads.
	CPU float64
	// ChildCPU is the user + system seconds of its children that it has
	// waited for: PostgreSQL's backends come and go, and the postmaster
	// reaps them, so their CPU is counted here once they exit.
	ChildCPU float64
	// PeakRSS is VmHWM, the resident set's high-water mark, in bytes.
	PeakRSS int64
	// PPID is the parent's pid.
	PPID int
}

// ParseStat reads utime, stime, cutime, cstime and ppid from the text of
// /proc/<pid>/stat. The command name (field 2) is in parentheses and may
// hold spaces or parentheses itself, hence the split at the last ')'.
func ParseStat(b []byte) (Sample, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Sample{}, fmt.Errorf("%w: stat without a command name", ErrMalformed)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, so f[11].
	if len(f) < 15 {
		return Sample{}, fmt.Errorf("%w: stat has %d fields after the name, want at least 15", ErrMalformed, len(f))
	}
	var v [5]int64
	for k, idx := range []int{1, 11, 12, 13, 14} { // ppid, utime, stime, cutime, cstime
		n, err := strconv.ParseInt(f[idx], 10, 64)
		if err != nil {
			return Sample{}, fmt.Errorf("%w: stat field %d: %v", ErrMalformed, idx+3, err)
		}
		v[k] = n
	}
	return Sample{
		PPID:     int(v[0]),
		CPU:      float64(v[1]+v[2]) / clockTicks,
		ChildCPU: float64(v[3]+v[4]) / clockTicks,
	}, nil
}

// ParseHWM reads VmHWM (in kB) from the text of /proc/<pid>/status; 0 when
// absent (a kernel thread, or a zombie).
func ParseHWM(b []byte) (int64, error) {
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%w: VmHWM %q", ErrMalformed, strings.TrimSpace(rest))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: VmHWM: %v", ErrMalformed, err)
		}
		return kb * 1024, nil
	}
	return 0, nil
}

// Read samples one process from procRoot ("/proc" outside tests).
func Read(procRoot string, pid int) (Sample, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return Sample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	s, err := ParseStat(b)
	if err != nil {
		return Sample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	b, err = os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return Sample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	if s.PeakRSS, err = ParseHWM(b); err != nil {
		return Sample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return s, nil
}

// Children lists the pids whose parent is pid.
func Children(procRoot string, pid int) []int {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := Read(procRoot, n)
		if err == nil && s.PPID == pid {
			out = append(out, n)
		}
	}
	return out
}

// Usage is a process's (or a process tree's) cost.
type Usage struct {
	CPU     float64 // seconds, user + system
	PeakRSS int64   // bytes
}

// TreeUsage is the CPU of pid, of its live children and of the children it
// reaped, and the largest peak RSS among them. With tree false only pid
// counts. A PostgreSQL cluster is a tree (postmaster, backends, workers):
// its shared buffers are in every member's RSS, so the largest member's
// peak stands for the cluster rather than their sum, which counts the
// shared memory once per process.
func TreeUsage(procRoot string, pid int, tree bool) (Usage, error) {
	s, err := Read(procRoot, pid)
	if err != nil {
		return Usage{}, err
	}
	u := Usage{CPU: s.CPU, PeakRSS: s.PeakRSS}
	if !tree {
		return u, nil
	}
	u.CPU += s.ChildCPU
	for _, c := range Children(procRoot, pid) {
		cs, err := Read(procRoot, c)
		if err != nil {
			continue // exited meanwhile: its parent reaps it into ChildCPU
		}
		u.CPU += cs.CPU + cs.ChildCPU
		u.PeakRSS = max(u.PeakRSS, cs.PeakRSS)
	}
	return u, nil
}
