package bus_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
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

// Unschedule hands over each schedule a filter matches and deletes those
// it is told to: they never come due. One it keeps comes due as usual, and
// an event already published is not a schedule to take back.
func TestUnschedule(t *testing.T) {
	b := connect(t, bustest.Start(t), nil)
	ctx := context.Background()
	subject := bus.AcceptedSubject("acme", "36000")
	if err := b.Publish(ctx, subject, wrapperspb.String("now"), "now"); err != nil {
		t.Fatal(err)
	}
	due := time.Now().Add(2 * time.Second)
	var events []bus.Event
	for _, v := range []string{"drop-1", "keep", "drop-2"} {
		events = append(events, bus.Event{Subject: subject, Msg: wrapperspb.String(v), MsgID: v, At: due, Hold: bus.ReleaseSubject("36000", "c1", v)})
	}
	// Another campaign's: not matched.
	events = append(events, bus.Event{Subject: subject, Msg: wrapperspb.String("other"), MsgID: "other", At: due, Hold: bus.ReleaseSubject("36000", "c2", "other")})
	if err := b.PublishAll(ctx, events); err != nil {
		t.Fatal(err)
	}

	var seen []string
	n, err := b.Unschedule(ctx, bus.ReleaseFilter("36000", "c1"), func(ctx context.Context, m *bus.Msg) (bool, error) {
		var v wrapperspb.StringValue
		if err := m.Decode(&v); err != nil {
			return false, err
		}
		if m.Subject != subject {
			t.Errorf("schedule of %q for %s, want %s", v.Value, m.Subject, subject)
		}
		seen = append(seen, v.Value)
		return v.Value != "keep", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 || fmt.Sprint(seen) != "[drop-1 keep drop-2]" {
		t.Errorf("deleted %d of %v, want 2 of [drop-1 keep drop-2]", n, seen)
	}

	st, err := b.JS.Stream(ctx, bus.StreamAccepted)
	if err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 10*time.Second, func() error {
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(bus.SubjectRelease))
		if err != nil {
			return err
		}
		if len(info.State.Subjects) != 0 {
			return fmt.Errorf("schedules left: %v", info.State.Subjects)
		}
		return nil
	})
	var got []string
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		var v wrapperspb.StringValue
		if err := proto.Unmarshal(m.Data, &v); err != nil {
			t.Fatal(err)
		}
		got = append(got, v.Value)
	}
	slices.Sort(got)
	if fmt.Sprint(got) != "[keep now other]" {
		t.Errorf("published on %s: %v, want [keep now other]", subject, got)
	}
}
