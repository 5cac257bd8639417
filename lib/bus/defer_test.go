package bus_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
)

func TestDeferRedeliversAfterDelay(t *testing.T) {
	b := connect(t, bustest.Start(t), nil)
	ctx := context.Background()
	var mu sync.Mutex
	var seen []time.Time
	c, err := b.Consume(ctx, bus.ConsumerSpec{Stream: bus.StreamMO, Durable: "t", AckWait: 5 * time.Second}, func(ctx context.Context, m *bus.Msg) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, time.Now())
		if m.Delivered == 1 {
			return m.Defer(300 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if err := b.Publish(ctx, bus.MOSubject("36000"), wrapperspb.String("x"), "id"); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 5*time.Second, func() error {
		n, err := c.Pending(ctx)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if n != 0 || len(seen) < 2 {
			return errors.New("not acked after its second delivery yet")
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("handled %d times, want 2", len(seen))
	}
	if d := seen[1].Sub(seen[0]); d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("redelivered after %v, want about 300ms", d)
	}
}
