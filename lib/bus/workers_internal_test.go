package bus

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// Handlers run at most n at once, on goroutines kept between events; close
// waits for the running ones and lets the idle ones go at once.
func TestWorkers(t *testing.T) {
	before := runtime.NumGoroutine()
	w := newWorkers(4)
	var running, most, done atomic.Int32
	for range 200 {
		w.run(func() {
			n := running.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(100 * time.Microsecond)
			running.Add(-1)
			done.Add(1)
		})
	}
	if got := runtime.NumGoroutine() - before; got > 4 {
		t.Errorf("%d goroutines for 4 workers", got)
	}
	start := time.Now()
	w.close()
	if done.Load() != 200 {
		t.Errorf("close returned with %d of 200 handlers done", done.Load())
	}
	if most.Load() > 4 {
		t.Errorf("%d handlers ran at once, want at most 4", most.Load())
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("close took %v: idle workers were not let go", took)
	}
	for i := 0; runtime.NumGoroutine() > before && i < 100; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines left after close, %d before", n, before)
	}
}
