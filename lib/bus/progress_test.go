package bus_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
)

// A handler that outlasts its consumer's AckWait keeps its event: no
// second worker gets it meanwhile. Without KeepInProgress the server hands
// it out again after AckWait.
func TestKeepInProgress(t *testing.T) {
	for _, keep := range []bool{true, false} {
		t.Run(fmt.Sprint("keep=", keep), func(t *testing.T) {
			b := connect(t, bustest.Start(t), nil)
			ctx := context.Background()
			var deliveries atomic.Int32
			done := make(chan struct{})
			c, err := b.Consume(ctx, bus.ConsumerSpec{Stream: bus.StreamMO, Durable: "t", Workers: 2, AckWait: 600 * time.Millisecond},
				func(ctx context.Context, m *bus.Msg) error {
					if deliveries.Add(1) > 1 {
						return nil
					}
					if keep {
						defer m.KeepInProgress()()
					}
					time.Sleep(1500 * time.Millisecond)
					close(done)
					return nil
				})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Stop()
			if err := b.Publish(ctx, bus.MOSubject("36000"), wrapperspb.String("slow"), "mo-slow"); err != nil {
				t.Fatal(err)
			}
			<-done
			time.Sleep(300 * time.Millisecond)
			got := deliveries.Load()
			if keep && got != 1 {
				t.Errorf("delivered %d times while the handler kept it, want 1", got)
			}
			if !keep && got < 2 {
				t.Errorf("delivered %d times without KeepInProgress: the test cannot tell", got)
			}
		})
	}
}
