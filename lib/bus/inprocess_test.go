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

// The one-machine mode reaches its embedded server through memory: it
// works with a URL nothing listens on, so no byte goes through TCP.
func TestInProcess(t *testing.T) {
	s := bustest.Start(t)
	b := connectWith(t, bus.Config{URL: "nats://127.0.0.1:1", Replicas: 1, InProcess: s.Server.Server}, nil)
	ctx := context.Background()

	got := make(chan string, 1)
	c, err := b.Consume(ctx, bus.ConsumerSpec{Stream: bus.StreamMO, Durable: "t"}, func(ctx context.Context, m *bus.Msg) error {
		var v wrapperspb.StringValue
		if err := m.Decode(&v); err != nil {
			return err
		}
		got <- v.Value
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if err := b.Publish(ctx, bus.MOSubject("36000"), wrapperspb.String("STOP"), "mo-1"); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != "STOP" {
			t.Errorf("got %q, want STOP", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("event not consumed")
	}
}

// BenchmarkPublish compares a stored publish over loopback TCP with one
// through memory (the one-machine mode), 64 publishers at once as the
// smsc-link workers are.
func BenchmarkPublish(b *testing.B) {
	for _, mode := range []string{"tcp", "inprocess"} {
		b.Run(mode, func(b *testing.B) {
			s := bustest.Start(b)
			cfg := bus.Config{URL: s.URL(), Replicas: 1}
			if mode == "inprocess" {
				cfg.InProcess = s.Server.Server
			}
			bb := connectWith(b, cfg, nil)
			ctx := context.Background()
			ev := wrapperspb.String("a segment report of about this size, a hundred bytes or so, as they go")
			var n atomic.Int64
			b.SetParallelism(32) // × GOMAXPROCS publishers
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := fmt.Sprint(n.Add(1))
					if err := bb.Publish(ctx, bus.MOSubject("36000"), ev, id); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
