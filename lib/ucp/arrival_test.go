package ucp

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

func TestArrival(t *testing.T) {
	now := time.Now()
	prev := now.Add(-50 * time.Millisecond)
	stamp := func(before time.Duration) int64 { return now.Add(-before).UnixNano() }
	tests := []struct {
		name  string
		stamp int64
		drift time.Duration
		want  time.Time
	}{
		{"no stamp: when the read returned", 0, 0, now},
		{"stamped: the kernel's receive", stamp(7 * time.Millisecond), 0, now.Add(-7 * time.Millisecond)},
		{"received before the previous read returned: waiting then", stamp(80 * time.Millisecond), 0, prev},
		{"stamp after the read (a clock stepped back): when the read returned", stamp(-time.Millisecond), 0, now},
		{"wall clock stepped forward since the previous read: not trusted", stamp(7 * time.Millisecond), time.Second, now},
		{"wall clock stepped back since the previous read: not trusted", stamp(7 * time.Millisecond), -time.Second, now},
		{"a drift within the slew of two clock reads: trusted", stamp(7 * time.Millisecond), maxClockStep / 2, now.Add(-7 * time.Millisecond)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := arrival(now, tt.stamp, prev, tt.drift); !got.Equal(tt.want) {
				t.Errorf("arrival = now%+v, want now%+v", got.Sub(now), tt.want.Sub(now))
			}
		})
	}
}

// A result that waits in the socket while the reader is busy arrived when
// the kernel got it, not when it was read: a rate guard counting from the
// read would hold each place longer by the reader's lateness.
func TestTimedReaderKernelArrival(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("receive stamps are read on Linux only")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	tr := newTimedReader(client)
	if !tr.stamped {
		t.Fatal("no receive stamps on a TCP connection")
	}
	buf := make([]byte, 64)
	// The kernel turns receive stamps on for the host when the first
	// socket asks, from a work queue: what arrives meanwhile is unstamped
	// (and its read bounded by its return). One round first, then measure.
	if _, err := server.Write([]byte("\x02\x03")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if _, err := io.ReadAtLeast(tr, buf, 1); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		sent := time.Now()
		if _, err := server.Write([]byte("\x0201/00019/R/51/A//0A\x03")); err != nil {
			t.Fatal(err)
		}
		const busy = 30 * time.Millisecond
		time.Sleep(busy) // the reader is elsewhere
		if _, err := io.ReadAtLeast(tr, buf, 1); err != nil {
			t.Fatal(err)
		}
		read := time.Now()
		at := tr.arrived()
		if at.Before(sent) || read.Sub(at) < busy*2/3 {
			t.Errorf("read %d: arrived %v after the write, read %v after the arrival; want the write's time, %v before the read", i, at.Sub(sent), read.Sub(at), busy)
		}
	}
}

// Without receive stamps (TLS, a pipe) the bound is when the read
// returned.
func TestTimedReaderWithoutStamps(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	tr := newTimedReader(b)
	if tr.stamped {
		t.Fatal("receive stamps on a pipe")
	}
	go a.Write([]byte("x"))
	time.Sleep(10 * time.Millisecond)
	before := time.Now()
	if _, err := tr.Read(make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if at := tr.arrived(); at.Before(before) || at.After(after) {
		t.Errorf("arrived %v before the read began, want within the read (%v)", before.Sub(at), after.Sub(before))
	}
}
