package throttle

import (
	"syscall"
	"time"
)

// preciseSleep sleeps d with the kernel's high-resolution timer: tens of
// microseconds late, where the runtime's timers are often half a
// millisecond late (see approach).
func preciseSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(d.Nanoseconds())
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}
