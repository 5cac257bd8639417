package bus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/fault"
	"pushsms.io/lib/telemetry"
)

func connect(t *testing.T, s *bustest.Server, rec *tracetest.SpanRecorder) *bus.Bus {
	t.Helper()
	return connectWith(t, bus.Config{URL: s.URL(), Replicas: 1}, rec)
}

// connectWith connects with cfg; rec, when set, records the bus's spans.
func connectWith(tb testing.TB, cfg bus.Config, rec *tracetest.SpanRecorder) *bus.Bus {
	tb.Helper()
	tcfg := telemetry.Config{LogLevel: "error", LogFormat: "text"}
	if rec != nil {
		tcfg.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	}
	tel, err := telemetry.Setup(context.Background(), "test", tcfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, cfg, "test", tel)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

func TestPublishConsumeCarriesTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	b := connect(t, bustest.Start(t), rec)
	ctx := context.Background()

	got := make(chan string, 1)
	c, err := b.Consume(ctx, bus.ConsumerSpec{Stream: bus.StreamMO, Durable: "t"}, func(ctx context.Context, m *bus.Msg) error {
		var v wrapperspb.StringValue
		if err := m.Decode(&v); err != nil {
			return err
		}
		got <- v.Value + "|" + m.Type
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()

	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	pctx, parent := tp.Tracer("t").Start(ctx, "root")
	if err := b.Publish(pctx, bus.MOSubject("36000"), wrapperspb.String("STOP"), "mo-1"); err != nil {
		t.Fatal(err)
	}
	parent.End()
	select {
	case v := <-got:
		if want := "STOP|google.protobuf.StringValue"; v != want {
			t.Errorf("got %q, want %q", v, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("event not consumed")
	}
	bustest.Eventually(t, 2*time.Second, func() error {
		for _, s := range rec.Ended() {
			if s.Name() == "process sms.mo" {
				if s.SpanContext().TraceID() != parent.SpanContext().TraceID() {
					return errors.New("consumer span is in another trace")
				}
				return nil
			}
		}
		return errors.New("no consumer span")
	})
}

func TestPublishDeduplicatesByMsgID(t *testing.T) {
	b := connect(t, bustest.Start(t), nil)
	ctx := context.Background()
	for range 3 {
		if err := b.Publish(ctx, bus.MOSubject("36000"), wrapperspb.String("x"), "same-id"); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Publish(ctx, bus.MOSubject("36000"), wrapperspb.String("y"), "other-id"); err != nil {
		t.Fatal(err)
	}
	st, err := b.JS.Stream(ctx, bus.StreamMO)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.State.Msgs; got != 2 {
		t.Errorf("stream holds %d events, want 2", got)
	}
}

func TestAckByErrorKind(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantCalls  int32
		redelivers bool
	}{
		{name: "success_acks", err: nil, wantCalls: 1},
		{name: "permanent_terminates", err: fault.Permanent(errors.New("bad payload")), wantCalls: 1},
		{name: "transient_redelivers", err: errors.New("database down"), wantCalls: 3, redelivers: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := connect(t, bustest.Start(t), nil)
			ctx := context.Background()
			var calls atomic.Int32
			var mu sync.Mutex
			c, err := b.Consume(ctx, bus.ConsumerSpec{Stream: bus.StreamMO, Durable: "t", AckWait: time.Second}, func(ctx context.Context, m *bus.Msg) error {
				mu.Lock()
				defer mu.Unlock()
				n := calls.Add(1)
				if tt.redelivers && n >= 3 {
					return nil
				}
				return tt.err
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
				if n != 0 || calls.Load() < tt.wantCalls {
					return fmt.Errorf("pending %d, calls %d", n, calls.Load())
				}
				return nil
			})
			time.Sleep(300 * time.Millisecond) // a wrong redelivery would show within the backoff
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("handler called %d times, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestSubjects(t *testing.T) {
	tests := []struct{ got, want string }{
		{bus.AcceptedSubject("acme", "36000"), "sms.accepted.acme.36000"},
		{bus.ReportSubject("delivered", "acme", "36000"), "sms.report.delivered.acme.36000"},
		{bus.SubmitSubject("36.*"), "sms.submit._"},
		{bus.ClearedSubject("", "36000"), "sms.cleared._.36000"},
		{bus.ReportTenantFilter("acme"), "sms.report.*.acme.*"},
		{bus.ReleaseSubject("36000", "c1", "m1"), "sms.release.36000.c1.m1"},
		{bus.ReleaseFilter("36000", "c1"), "sms.release.36000.c1.>"},
		{bus.ReleaseFilter("36000", ""), "sms.release.36000.>"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// Ensure leaves streams that are already as configured untouched and
// updates one whose settings changed.
func TestEnsureIsIdempotent(t *testing.T) {
	b := connect(t, bustest.Start(t), nil)
	ctx := context.Background()
	before, err := b.JS.Stream(ctx, bus.StreamMO)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Ensure(ctx, b.JS, 1); err != nil {
		t.Fatal(err)
	}
	after, err := b.JS.Stream(ctx, bus.StreamMO)
	if err != nil {
		t.Fatal(err)
	}
	if !after.CachedInfo().Created.Equal(before.CachedInfo().Created) {
		t.Error("stream recreated")
	}
	cfg := after.CachedInfo().Config
	cfg.MaxAge = time.Hour
	if _, err := b.JS.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := bus.Ensure(ctx, b.JS, 1); err != nil {
		t.Fatal(err)
	}
	st, err := b.JS.Stream(ctx, bus.StreamMO)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().Config.MaxAge; got != 30*24*time.Hour {
		t.Errorf("MaxAge %v after Ensure, want it restored to 30 days", got)
	}
}

// A durable created with a start sequence skips the events before it; a
// later start with another sequence does not move an existing durable.
func TestConsumeFromStartSequence(t *testing.T) {
	b := connect(t, bustest.Start(t), nil)
	ctx := context.Background()
	for i := range 3 {
		if err := b.Publish(ctx, bus.MOSubject("36000"), wrapperspb.String(fmt.Sprint(i)), fmt.Sprint("id-", i)); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan string, 10)
	consume := func(start uint64) *bus.Consumer {
		c, err := b.Consume(ctx, bus.ConsumerSpec{Stream: bus.StreamMO, Durable: "from-3", StartSequence: start},
			func(_ context.Context, m *bus.Msg) error {
				var v wrapperspb.StringValue
				if err := m.Decode(&v); err != nil {
					return err
				}
				got <- v.GetValue()
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := consume(3)
	if v := <-got; v != "2" {
		t.Fatalf("first event %q, want the third (\"2\")", v)
	}
	c.Stop()
	c = consume(1)
	defer c.Stop()
	if err := b.Publish(ctx, bus.MOSubject("36000"), wrapperspb.String("3"), "id-3"); err != nil {
		t.Fatal(err)
	}
	if v := <-got; v != "3" {
		t.Fatalf("after a restart with start 1: %q, want the new event \"3\" (the durable keeps its place)", v)
	}
}

// A platform upgraded from a release without campaign schedules: Ensure
// adds the schedules' subject to the SMS_ACCEPTED that holds its events,
// and a batch scheduled there is published on its subject when due.
func TestEnsureAddsScheduledRelease(t *testing.T) {
	b := connect(t, bustest.Start(t), nil)
	ctx := context.Background()
	if err := b.JS.DeleteStream(ctx, bus.StreamAccepted); err != nil {
		t.Fatal(err)
	}
	old := jetstream.StreamConfig{Name: bus.StreamAccepted, Subjects: []string{bus.SubjectAccepted},
		Storage: jetstream.FileStorage, MaxAge: 7 * 24 * time.Hour, Duplicates: bus.DuplicateWindow}
	if _, err := b.JS.CreateStream(ctx, old); err != nil {
		t.Fatal(err)
	}
	subject := bus.AcceptedSubject("acme", "36000")
	if err := b.Publish(ctx, subject, wrapperspb.String("before"), "before"); err != nil {
		t.Fatal(err)
	}
	if err := bus.Ensure(ctx, b.JS, 1); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(2 * time.Second)
	err := b.PublishAll(ctx, []bus.Event{{Subject: subject, Msg: wrapperspb.String("later"), MsgID: "later/batch", At: at, Hold: bus.ReleaseSubject("36000", "c1", "later")}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := b.JS.Stream(ctx, bus.StreamAccepted)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetLastMsgForSubject(ctx, subject); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 10*time.Second, func() error {
		m, err := st.GetLastMsgForSubject(ctx, subject)
		if err != nil {
			return err
		}
		var v wrapperspb.StringValue
		if err := proto.Unmarshal(m.Data, &v); err != nil || v.GetValue() != "later" {
			return fmt.Errorf("last event on %s is %q (%v)", subject, v.GetValue(), err)
		}
		if time.Now().Before(at.Truncate(time.Second)) {
			t.Errorf("batch published at %v, before it was due (%v)", time.Now(), at)
		}
		return nil
	})
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("%d events in %s, want 2: the one from before the upgrade and the released batch (its schedule removed)", info.State.Msgs, bus.StreamAccepted)
	}
}
