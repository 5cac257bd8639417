package bus

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Defer gives the event back to the server, to be delivered again (to any
// replica) after d. It is not a failure: the handler returns nil after
// calling it, nothing is logged and the span is not marked as an error. A
// handler uses it to wait on the server rather than in memory: until a
// campaign's start, or until its turn in a long queue. Unlike InProgress,
// the event keeps no handler busy while it waits.
//
// The event still counts against the consumer's MaxAckPending while it
// waits. Returning an error after Defer overrides it (the error decides).
func (m *Msg) Defer(d time.Duration) error {
	dm := m.raw
	dm.mu.Lock()
	defer dm.mu.Unlock()
	dm.deferred, dm.after = true, max(d, 0)
	return nil
}

// deferrableMsg is every consumed event: it turns the ack that Consume sends for a nil error into a
// NAK with the delay asked by Defer.
type deferrableMsg struct {
	jetstream.Msg
	mu       sync.Mutex
	deferred bool
	after    time.Duration
}

func (m *deferrableMsg) deferral() (time.Duration, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.after, m.deferred
}

func (m *deferrableMsg) Ack() error {
	if d, ok := m.deferral(); ok {
		return m.Msg.NakWithDelay(d)
	}
	return m.Msg.Ack()
}

func (m *deferrableMsg) DoubleAck(ctx context.Context) error {
	if d, ok := m.deferral(); ok {
		return m.Msg.NakWithDelay(d)
	}
	return m.Msg.DoubleAck(ctx)
}
