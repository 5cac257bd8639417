package main

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

// ErrProcStat reports a /proc file that does not read as the kernel writes it.
var ErrProcStat = errors.New("procstat: malformed")

// procSample is what the kernel says of one process.
type procSample struct {
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

// parseStat reads utime, stime, cutime, cstime and ppid from the text of
// /proc/<pid>/stat. The command name (field 2) is in parentheses and may
// hold spaces or parentheses itself, hence the split at the last ')'.
func parseStat(b []byte) (procSample, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procSample{}, fmt.Errorf("%w: stat without a command name", ErrProcStat)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, so f[11].
	if len(f) < 15 {
		return procSample{}, fmt.Errorf("%w: stat has %d fields after the name, want at least 15", ErrProcStat, len(f))
	}
	var v [5]int64
	for k, idx := range []int{1, 11, 12, 13, 14} { // ppid, utime, stime, cutime, cstime
		n, err := strconv.ParseInt(f[idx], 10, 64)
		if err != nil {
			return procSample{}, fmt.Errorf("%w: stat field %d: %v", ErrProcStat, idx+3, err)
		}
		v[k] = n
	}
	return procSample{
		PPID:     int(v[0]),
		CPU:      float64(v[1]+v[2]) / clockTicks,
		ChildCPU: float64(v[3]+v[4]) / clockTicks,
	}, nil
}

// parseHWM reads VmHWM (in kB) from the text of /proc/<pid>/status; 0 when
// absent (a kernel thread, or a zombie).
func parseHWM(b []byte) (int64, error) {
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%w: VmHWM %q", ErrProcStat, strings.TrimSpace(rest))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: VmHWM: %v", ErrProcStat, err)
		}
		return kb * 1024, nil
	}
	return 0, nil
}

// readProc samples one process from procRoot ("/proc" outside tests).
func readProc(procRoot string, pid int) (procSample, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return procSample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	s, err := parseStat(b)
	if err != nil {
		return procSample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	b, err = os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return procSample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	if s.PeakRSS, err = parseHWM(b); err != nil {
		return procSample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return s, nil
}

// children lists the pids whose parent is pid.
func children(procRoot string, pid int) []int {
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
		s, err := readProc(procRoot, n)
		if err == nil && s.PPID == pid {
			out = append(out, n)
		}
	}
	return out
}

// usage is a process's (or a process tree's) cost.
type usage struct {
	CPU     float64 // seconds, user + system
	PeakRSS int64   // bytes
}

// treeUsage is the CPU of pid, of its live children and of the children it
// reaped, and the largest peak RSS among them. With tree false only pid
// counts. A PostgreSQL cluster is a tree (postmaster, backends, workers):
// its shared buffers are in every member's RSS, so the largest member's
// peak stands for the cluster rather than their sum, which counts the
// shared memory once per process.
func treeUsage(procRoot string, pid int, tree bool) (usage, error) {
	s, err := readProc(procRoot, pid)
	if err != nil {
		return usage{}, err
	}
	u := usage{CPU: s.CPU, PeakRSS: s.PeakRSS}
	if !tree {
		return u, nil
	}
	u.CPU += s.ChildCPU
	for _, c := range children(procRoot, pid) {
		cs, err := readProc(procRoot, c)
		if err != nil {
			continue // exited meanwhile: its parent reaps it into ChildCPU
		}
		u.CPU += cs.CPU + cs.ChildCPU
		u.PeakRSS = max(u.PeakRSS, cs.PeakRSS)
	}
	return u, nil
}
