// Package telemetrytest helps tests read what a service logged.
package telemetrytest

import (
	"bytes"
	"sync"
)

// Buffer collects log lines written from many goroutines; hand it to
// telemetry.NewLogger and read it with String.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
