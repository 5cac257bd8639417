package bus_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
)

// An event scheduled again comes back on its own subject at the time
// asked for, not before, with its payload and type; the consumer acks it
// at once meanwhile, so it holds nothing. A second schedule of the same
// hold subject replaces the first: the event comes back once. It survives
// a restart of the server.
func TestScheduleBringsAnEventBack(t *testing.T) {
	srv := bustest.Start(t)
	b := connect(t, srv, nil)
	ctx := context.Background()

	type arrival struct {
		at       time.Time
		value    string
		typ      string
		sequence uint64
	}
	got := make(chan arrival, 8)
	var scheduled atomic.Int32
	var due time.Time
	c, err := b.Consume(ctx, bus.ConsumerSpec{Stream: bus.StreamCleared, Durable: "sched", FilterSubjects: []string{bus.SubjectCleared}}, func(ctx context.Context, m *bus.Msg) error {
		var v wrapperspb.StringValue
		if err := m.Decode(&v); err != nil {
			return err
		}
		got <- arrival{time.Now(), v.Value, m.Type, m.Sequence}
		if n := scheduled.Add(1); n == 1 {
			hold := bus.HoldSubject("36000", "m1")
			// Scheduled twice (a redelivered handler): once later, then
			// at due, which replaces it.
			if err := b.Schedule(ctx, m, hold, due.Add(time.Hour), "m1/hold/a"); err != nil {
				return err
			}
			return b.Schedule(ctx, m, hold, due, "m1/hold/b")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()

	due = time.Now().Add(3 * time.Second)
	if err := b.Publish(ctx, bus.ClearedSubject("t1", "36000"), wrapperspb.String("hello"), "m1/cleared"); err != nil {
		t.Fatal(err)
	}
	first := <-got
	bustest.WaitIdle(t, b, bus.StreamCleared, "sched", first.sequence, 5*time.Second)
	srv.Restart(t)

	select {
	case a := <-got:
		if a.at.Before(due.Truncate(time.Second)) {
			t.Errorf("back at %s, before %s", a.at.Format(time.StampMilli), due.Format(time.StampMilli))
		}
		if late := a.at.Sub(due); late > 2*time.Second {
			t.Errorf("back %s after it was due", late)
		}
		if a.value != "hello" || a.typ != first.typ || a.sequence <= first.sequence {
			t.Errorf("back as %+v, first delivered as %+v", a, first)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the scheduled event never came back")
	}
	select {
	case a := <-got:
		t.Errorf("came back a second time: %+v", a)
	case <-time.After(2 * time.Second):
	}
	// Nothing is left of the schedule once it fired.
	bustest.Eventually(t, 5*time.Second, func() error {
		st, err := b.JS.Stream(ctx, bus.StreamCleared)
		if err != nil {
			return err
		}
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(bus.SubjectHold))
		if err != nil {
			return err
		}
		if n := len(info.State.Subjects); n != 0 {
			return fmt.Errorf("%d hold subjects left", n)
		}
		return nil
	})
}
