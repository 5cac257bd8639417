package ucp

import (
	"net"
	"time"
)

// maxClockStep is the largest change of the wall clock against the
// monotonic one between two reads that arrival still trusts: the kernel
// stamps on the wall clock, which NTP may step; both clocks are slewed
// alike, so anything larger is a step.
const maxClockStep = 100 * time.Microsecond

// timedReader reads a session's connection and bounds when what it read
// arrived. A rate guard counts a submit until one second after its result
// arrived (the SMSC had received the submit by then, lib/rate.Guard): the
// time the reader goroutine got round to it is later by the scheduler's
// delay, which on a busy machine is milliseconds of every place's cycle,
// the rate lost. On Linux the kernel stamps the receive (SO_TIMESTAMPNS);
// elsewhere, or on a connection that is not a socket (TLS, a pipe), the
// bound is when the read returned.
type timedReader struct {
	// read reads the connection and gives the kernel's receive stamp of
	// what it read (Unix nanoseconds), 0 without one.
	read    func(p []byte) (n int, stamp int64, err error)
	stamped bool          // whether the kernel stamps the connection's reads
	base    time.Time     // for the clocks' drift
	prev    time.Time     // when the previous read returned
	drift   time.Duration // wall minus monotonic clock since base, at prev
	at      time.Time     // arrival bound of the last read's data
}

func newTimedReader(conn net.Conn) *timedReader {
	now := time.Now()
	r := &timedReader{read: stampedRead(conn), base: now, prev: now, at: now}
	r.stamped = r.read != nil
	if !r.stamped {
		r.read = func(p []byte) (int, int64, error) {
			n, err := conn.Read(p)
			return n, 0, err
		}
	}
	return r
}

func (r *timedReader) Read(p []byte) (int, error) {
	n, stamp, err := r.read(p)
	now := time.Now()
	drift := time.Duration(now.UnixNano()-r.base.UnixNano()) - now.Sub(r.base)
	r.at = arrival(now, stamp, r.prev, drift-r.drift)
	r.prev, r.drift = now, drift
	return n, err
}

// arrived bounds when the data of the last read arrived: every frame it
// completed had arrived by then.
func (r *timedReader) arrived() time.Time { return r.at }

// arrival bounds when the data of a read that returned at now arrived,
// given the kernel's receive stamp of its last byte (Unix nanoseconds, 0
// if none), when the previous read returned and how much the wall clock
// moved against the monotonic one since. The stamp is on the wall clock:
// a step of it between the receive and now would move the bound by the
// step, too early when forward. A step since prev shows in drift, and the
// stamp is then not used; data received before prev was waiting at prev,
// which bounds it whatever happened to the clock then. So the bound is
// never before the arrival; it is later only when unsure.
func arrival(now time.Time, stamp int64, prev time.Time, drift time.Duration) time.Time {
	if stamp == 0 || drift > maxClockStep || drift < -maxClockStep {
		return now
	}
	d := time.Duration(now.UnixNano() - stamp)
	if d <= 0 {
		return now
	}
	at := now.Add(-d)
	if at.Before(prev) {
		return prev
	}
	return at
}
