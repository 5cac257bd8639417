package procstat_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"pushsms.io/cmd/procstat"
)

func TestParseStat(t *testing.T) {
	// Fields after the name: state ppid pgrp session tty tpgid flags minflt
	// cminflt majflt cmajflt utime stime cutime cstime ...
	tail := " S 42 7 7 0 -1 4194560 100 0 0 0 250 50 30 20 20 0 8 0 1234 0 0"
	tests := []struct {
		name    string
		in      string
		want    procstat.Sample
		wantErr bool
	}{
		{"plain", "7 (ingest)" + tail, procstat.Sample{PPID: 42, CPU: 3, ChildCPU: 0.5}, false},
		{"name with spaces and parens", "7 (a (b) c)" + tail, procstat.Sample{PPID: 42, CPU: 3, ChildCPU: 0.5}, false},
		{"no name", "7 ingest S 1", procstat.Sample{}, true},
		{"short", "7 (x) S 1 2 3", procstat.Sample{}, true},
		{"not a number", "7 (x) S 1 2 3 4 5 6 7 8 9 10 x 12 13 14 15", procstat.Sample{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := procstat.ParseStat([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("got err %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, procstat.ErrMalformed) {
				t.Errorf("got %v, want procstat.ErrMalformed", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseHWM(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr bool
	}{
		{"present", "Name:\tingest\nVmPeak:\t  900 kB\nVmHWM:\t   51200 kB\nVmRSS:\t 40000 kB\n", 50 << 20, false},
		{"kernel thread", "Name:\tkthreadd\nState:\tS\n", 0, false},
		{"bad unit", "VmHWM:\t 12 MB\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := procstat.ParseHWM([]byte(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("got %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestTreeUsage reads a fake /proc: a postmaster, a live backend and an
// unrelated process.
func TestTreeUsage(t *testing.T) {
	root := t.TempDir()
	write := func(pid, ppid, utime, cutime int, hwmKB int) {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		stat := strconv.Itoa(pid) + " (p) S " + strconv.Itoa(ppid) + " 1 1 0 -1 0 0 0 0 0 " + strconv.Itoa(utime) + " 0 " + strconv.Itoa(cutime) + " 0 20 0 1 0 1 0 0"
		status := "Name:\tp\nVmHWM:\t" + strconv.Itoa(hwmKB) + " kB\n"
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(100, 1, 100, 300, 1000) // postmaster: 1 s own, 3 s of reaped backends
	write(101, 100, 50, 0, 4000)  // a backend
	write(200, 1, 900, 0, 9000)   // someone else's
	tests := []struct {
		name string
		tree bool
		want procstat.Usage
	}{
		{"process only", false, procstat.Usage{CPU: 1, PeakRSS: 1000 << 10}},
		{"tree", true, procstat.Usage{CPU: 4.5, PeakRSS: 4000 << 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := procstat.TreeUsage(root, 100, tt.tree)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want { // ticks / 100: 1, 3 and 0.5 add up exactly
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
