//go:build !linux

package throttle

import "time"

func preciseSleep(d time.Duration) { time.Sleep(d) }
