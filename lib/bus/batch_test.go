package bus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/fault"
)

// consumerState returns what the server holds for durable "t" of SMS_MO.
func consumerState(ctx context.Context, b *bus.Bus) (delivered uint64, pending uint64, ackPending int, err error) {
	c, err := b.JS.Consumer(ctx, bus.StreamMO, "t")
	if err != nil {
		return 0, 0, 0, err
	}
	ci, err := c.Info(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	return ci.Delivered.Consumer, ci.NumPending, ci.NumAckPending, nil
}

func publishN(t *testing.T, ctx context.Context, b *bus.Bus, values ...string) {
	t.Helper()
	for _, v := range values {
		if err := b.Publish(ctx, bus.MOSubject("36000"), wrapperspb.String(v), v); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConsumeBatchGathersAndAcks(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	b := connect(t, bustest.Start(t), rec)
	ctx := context.Background()

	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	pctx, parent := tp.Tracer("t").Start(ctx, "root")
	var values []string
	for i := range 25 {
		values = append(values, fmt.Sprintf("v%02d", i))
	}
	// Published before the consumer starts, so that batches fill up.
	publishN(t, pctx, b, values...)
	parent.End()

	var mu sync.Mutex
	var sizes []int
	var got []string
	c, err := b.ConsumeBatch(ctx, bus.ConsumerSpec{Stream: bus.StreamMO, Durable: "t"}, 10, 200*time.Millisecond,
		func(ctx context.Context, msgs []*bus.Msg) error {
			mu.Lock()
			defer mu.Unlock()
			sizes = append(sizes, len(msgs))
			for _, m := range msgs {
				var v wrapperspb.StringValue
				if err := m.Decode(&v); err != nil {
					return err
				}
				got = append(got, v.Value)
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	bustest.Eventually(t, 10*time.Second, func() error {
		n, err := c.Pending(ctx)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if n != 0 || len(got) < len(values) {
			return fmt.Errorf("pending %d, handled %d", n, len(got))
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(got)
	if !slices.Equal(got, values) {
		t.Errorf("got %v, want %v", got, values)
	}
	for _, n := range sizes {
		if n < 1 || n > 10 {
			t.Errorf("batch sizes %v: want 1 to 10 each", sizes)
			break
		}
	}
	if len(sizes) > 5 {
		t.Errorf("batch sizes %v: 25 waiting events should take about 3 batches", sizes)
	}

	// Each event's span is in its publisher's trace, linked to the span
	// of its batch.
	bustest.Eventually(t, 2*time.Second, func() error {
		batches := map[string]bool{}
		for _, s := range rec.Ended() {
			if s.Name() == "process batch "+bus.StreamMO {
				batches[s.SpanContext().SpanID().String()] = true
			}
		}
		events := 0
		for _, s := range rec.Ended() {
			if s.Name() != "process sms.mo" || s.SpanContext().TraceID() != parent.SpanContext().TraceID() {
				continue
			}
			if len(s.Links()) != 1 || !batches[s.Links()[0].SpanContext.SpanID().String()] {
				return fmt.Errorf("event span links %v: want its batch's span", s.Links())
			}
			events++
		}
		if events != len(values) {
			return fmt.Errorf("%d event spans in the publisher's trace, want %d", events, len(values))
		}
		return nil
	})
}

// One bad event is terminated, one that failed for now comes back, and the
// others of the batch are acked once.
func TestConsumeBatchSettlesEachEvent(t *testing.T) {
	b := connect(t, bustest.Start(t), nil)
	ctx := context.Background()
	publishN(t, ctx, b, "good-1", "bad", "later", "good-2")

	var mu sync.Mutex
	calls := map[string]int{}
	c, err := b.ConsumeBatch(ctx, bus.ConsumerSpec{Stream: bus.StreamMO, Durable: "t", AckWait: time.Second}, 10, 200*time.Millisecond,
		func(ctx context.Context, msgs []*bus.Msg) error {
			mu.Lock()
			defer mu.Unlock()
			errs := bus.BatchErrors{}
			for i, m := range msgs {
				var v wrapperspb.StringValue
				if err := m.Decode(&v); err != nil {
					return err
				}
				calls[v.Value]++
				switch {
				case v.Value == "bad":
					errs[i] = fault.Permanent(errors.New("bad payload"))
				case v.Value == "later" && calls[v.Value] == 1:
					errs[i] = errors.New("not yet")
				}
			}
			if len(errs) > 0 {
				return errs
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	bustest.Eventually(t, 10*time.Second, func() error {
		delivered, pending, ackPending, err := consumerState(ctx, b)
		if err != nil {
			return err
		}
		if delivered < 5 || pending != 0 || ackPending != 0 {
			return fmt.Errorf("delivered %d, pending %d, ack pending %d", delivered, pending, ackPending)
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // a wrong redelivery would show within the backoff
	mu.Lock()
	defer mu.Unlock()
	want := map[string]int{"good-1": 1, "bad": 1, "later": 2, "good-2": 1}
	for k, n := range want {
		if calls[k] != n {
			t.Errorf("%s handled %d times, want %d", k, calls[k], n)
		}
	}
}

func TestConsumeBatchErrorSettlesAll(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantCalls int // per event
	}{
		{"transient_redelivers", errors.New("database down"), 2},
		{"permanent_terminates", fault.Permanent(errors.New("bad batch")), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := connect(t, bustest.Start(t), nil)
			ctx := context.Background()
			publishN(t, ctx, b, "a", "b", "c")
			var mu sync.Mutex
			calls := map[string]int{}
			c, err := b.ConsumeBatch(ctx, bus.ConsumerSpec{Stream: bus.StreamMO, Durable: "t", AckWait: time.Second}, 10, 200*time.Millisecond,
				func(ctx context.Context, msgs []*bus.Msg) error {
					mu.Lock()
					defer mu.Unlock()
					fail := false
					for _, m := range msgs {
						var v wrapperspb.StringValue
						if err := m.Decode(&v); err != nil {
							return err
						}
						calls[v.Value]++
						fail = fail || calls[v.Value] == 1
					}
					if fail {
						return tt.err
					}
					return nil
				})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Stop()
			bustest.Eventually(t, 10*time.Second, func() error {
				delivered, pending, ackPending, err := consumerState(ctx, b)
				if err != nil {
					return err
				}
				if delivered < uint64(3*tt.wantCalls) || pending != 0 || ackPending != 0 {
					return fmt.Errorf("delivered %d, pending %d, ack pending %d", delivered, pending, ackPending)
				}
				return nil
			})
			time.Sleep(300 * time.Millisecond) // a wrong redelivery would show within the backoff
			mu.Lock()
			defer mu.Unlock()
			for _, k := range []string{"a", "b", "c"} {
				if calls[k] != tt.wantCalls {
					t.Errorf("%s handled %d times, want %d", k, calls[k], tt.wantCalls)
				}
			}
		})
	}
}

// Stop does not leave gathered events waiting for AckWait: the partial
// batch is handled (and acked) before Stop returns.
func TestConsumeBatchStopHandsOverGathered(t *testing.T) {
	b := connect(t, bustest.Start(t), nil)
	ctx := context.Background()
	var mu sync.Mutex
	handled := 0
	c, err := b.ConsumeBatch(ctx, bus.ConsumerSpec{Stream: bus.StreamMO, Durable: "t"}, 100, time.Hour,
		func(ctx context.Context, msgs []*bus.Msg) error {
			mu.Lock()
			defer mu.Unlock()
			handled += len(msgs)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, ctx, b, "a", "b", "c")
	// In the consumer's hands, not yet a full batch nor an hour old.
	bustest.Eventually(t, 10*time.Second, func() error {
		delivered, _, ackPending, err := consumerState(ctx, b)
		if err != nil {
			return err
		}
		if delivered != 3 || ackPending != 3 {
			return fmt.Errorf("delivered %d, ack pending %d", delivered, ackPending)
		}
		return nil
	})
	mu.Lock()
	if handled != 0 {
		t.Errorf("handled %d before Stop, want 0 (the batch waits for more)", handled)
	}
	mu.Unlock()
	c.Stop()
	mu.Lock()
	defer mu.Unlock()
	if handled != 3 {
		t.Errorf("handled %d after Stop, want 3", handled)
	}
	// The acks were sent before Stop returned.
	bustest.Eventually(t, 5*time.Second, func() error {
		_, pending, ackPending, err := consumerState(ctx, b)
		if err != nil {
			return err
		}
		if pending != 0 || ackPending != 0 {
			return fmt.Errorf("pending %d, ack pending %d", pending, ackPending)
		}
		return nil
	})
}

func TestConsumeBatchRefusesEmptyBatch(t *testing.T) {
	b := connect(t, bustest.Start(t), nil)
	_, err := b.ConsumeBatch(context.Background(), bus.ConsumerSpec{Stream: bus.StreamMO, Durable: "t"}, 0, time.Second,
		func(context.Context, []*bus.Msg) error { return nil })
	if err == nil {
		t.Error("batch of 0: got no error")
	}
}

func TestBatchErrorsMessage(t *testing.T) {
	err := error(bus.BatchErrors{3: errors.New("c"), 1: errors.New("a")})
	if got, want := err.Error(), "event 1: a\nevent 3: c"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
