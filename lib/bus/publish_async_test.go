package bus_test

import (
	"context"
	"fmt"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
)

func TestPublishAll(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	b := connect(t, bustest.Start(t), rec)
	ctx := context.Background()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx, parent := tp.Tracer("t").Start(ctx, "upload")

	const n = 1000
	events := make([]bus.Event, 0, n+10)
	for i := range n {
		events = append(events, bus.Event{Subject: bus.MOSubject("36123"), Msg: wrapperspb.String(fmt.Sprint(i)), MsgID: fmt.Sprintf("id-%d", i)})
	}
	// Duplicates by MsgID are stored once.
	events = append(events, events[:10]...)
	if err := b.PublishAll(ctx, events); err != nil {
		t.Fatal(err)
	}
	parent.End()

	st, err := b.JS.Stream(ctx, bus.StreamMO)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.State.Msgs; got != n {
		t.Errorf("stream holds %d events, want %d", got, n)
	}
	m, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get(bus.HeaderMsgID); got != "id-0" {
		t.Errorf("first event's %s = %q, want id-0", bus.HeaderMsgID, got)
	}
	if got := m.Header.Get(bus.HeaderType); got != "google.protobuf.StringValue" {
		t.Errorf("first event's %s = %q", bus.HeaderType, got)
	}
	if m.Header.Get("traceparent") == "" {
		t.Error("no traceparent header")
	}

	producers := 0
	for _, s := range rec.Ended() {
		if s.Name() != "send sms.mo" {
			continue
		}
		producers++
		if s.Parent().IsValid() {
			t.Fatalf("event span has parent %v, want a new trace", s.Parent().SpanID())
		}
		if len(s.Links()) != 1 || s.Links()[0].SpanContext.SpanID() != parent.SpanContext().SpanID() {
			t.Fatalf("event span links %v, want the upload span", s.Links())
		}
	}
	if producers != len(events) {
		t.Errorf("%d producer spans, want %d", producers, len(events))
	}
}
