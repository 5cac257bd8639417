package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"pushsms.io/lib/fault"
	"pushsms.io/lib/telemetry"
)

// Event is one event of PublishAll.
type Event struct {
	Subject string
	Msg     proto.Message
	// MsgID identifies the event, as for Publish.
	MsgID string
	// At, when set, makes the event a message schedule stored on Hold (a
	// subject of Subject's stream that no consumer reads, SubjectRelease
	// say): the server publishes it on Subject at At, rounded down to the
	// second, as a new event without a Nats-Msg-Id (Schedule).
	At   time.Time
	Hold string
	// Trace, a W3C traceparent, is the trace the event belongs to, when it
	// has one already (a campaign message's); empty, the event starts a
	// trace of its own.
	Trace string
	// Header holds headers of the caller's, stored with the event.
	Header nats.Header
}

// Bounds of PublishAll: how many events are in flight at once, and how
// long an ack may take before the event is published again (its MsgID
// makes that safe).
const (
	publishAllWindow  = 256
	publishAllAckWait = 5 * time.Second
)

// PublishAll stores events with many publishes in flight at once, for bulk
// producers (a campaign's recipients) for which one round trip per event
// would be too slow. It returns nil once every event is stored; an event
// whose asynchronous publish fails or is not acknowledged in time is
// published again synchronously, retried as Publish does. It returns at the
// first event that cannot be stored, wrapping fault.ErrUnavailable; events
// before it may be stored, so callers rely on the MsgIDs for retries.
//
// Each event starts a trace of its own (one SMS, one trace, however it was
// submitted), or continues its Trace, its producer span linked to the span
// of ctx so that the bulk request and its events lead to each other.
func (b *Bus) PublishAll(ctx context.Context, events []Event) error {
	link := trace.LinkFromContext(ctx)
	for start := 0; start < len(events); start += publishAllWindow {
		if err := b.publishWindow(ctx, events[start:min(start+publishAllWindow, len(events))], link); err != nil {
			return err
		}
	}
	return nil
}

type pending struct {
	ev     Event
	msg    *nats.Msg
	span   trace.Span
	future jetstream.PubAckFuture
}

func (b *Bus) publishWindow(ctx context.Context, events []Event, link trace.Link) error {
	inflight := make([]pending, 0, len(events))
	defer func() {
		for _, p := range inflight {
			if p.span != nil {
				p.span.End()
			}
		}
	}()
	for _, ev := range events {
		data, err := proto.Marshal(ev.Msg)
		if err != nil {
			return fault.Permanent(fmt.Errorf("marshal %s: %w", ev.Msg.ProtoReflect().Descriptor().FullName(), err))
		}
		typ := string(ev.Msg.ProtoReflect().Descriptor().FullName())
		opts := []trace.SpanStartOption{
			trace.WithLinks(link),
			trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(
				attribute.String("messaging.system", "nats"),
				attribute.String("messaging.destination.name", ev.Subject),
				attribute.String("messaging.message.id", ev.MsgID),
				attribute.String("pushsms.event.type", typ),
			),
		}
		parent := ctx
		if sc := trace.SpanContextFromContext(telemetry.ContextWithTraceparent(ctx, ev.Trace)); sc.IsValid() {
			parent = trace.ContextWithRemoteSpanContext(ctx, sc)
		} else {
			opts = append(opts, trace.WithNewRoot())
		}
		sctx, span := b.tracer.Start(parent, "send "+subjectPattern(ev.Subject), opts...)
		m := nats.NewMsg(ev.Subject)
		if !ev.At.IsZero() {
			m = nats.NewMsg(ev.Hold)
			setSchedule(m.Header, ev.At, ev.Subject)
		}
		m.Data = data
		for k, vs := range ev.Header {
			m.Header[k] = vs
		}
		m.Header.Set(HeaderType, typ)
		b.prop.Inject(sctx, headerCarrier(m.Header))
		m.Header.Set(HeaderMsgID, ev.MsgID)
		p := pending{ev: ev, msg: m, span: span}
		// A failed or stalled async publish is retried synchronously below.
		p.future, _ = b.JS.PublishMsgAsync(copyMsg(m))
		inflight = append(inflight, p)
	}
	timer := time.NewTimer(publishAllAckWait)
	defer timer.Stop()
	expired := false
	for i := range inflight {
		p := &inflight[i]
		ok := false
		switch {
		case p.future == nil:
		case expired:
			// The window's time is up: take what is acked, publish the
			// rest again.
			select {
			case <-p.future.Ok():
				ok = true
			default:
			}
		default:
			select {
			case <-p.future.Ok():
				ok = true
			case <-p.future.Err():
			case <-timer.C:
				expired = true
			case <-ctx.Done():
				return fmt.Errorf("publish %s: %w", p.ev.Subject, errors.Join(ctx.Err(), fault.ErrUnavailable))
			}
		}
		if !ok {
			if err := b.publishRetry(ctx, p.msg, p.span); err != nil {
				return err
			}
		}
		p.span.End()
		p.span = nil
	}
	return nil
}

// publishRetry publishes m synchronously until it is stored, ctx ends or
// the error is not transient, as Publish does.
func (b *Bus) publishRetry(ctx context.Context, m *nats.Msg, span trace.Span) error {
	for attempt := 0; ; attempt++ {
		_, err := b.JS.PublishMsg(ctx, copyMsg(m))
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || !transient(err) || attempt >= 8 {
			span.RecordError(err)
			span.SetStatus(codes.Error, "publish failed")
			return fmt.Errorf("publish %s: %w", m.Subject, errors.Join(err, fault.ErrUnavailable))
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff(attempt)):
		}
	}
}

// copyMsg gives each attempt a message of its own: an async publish keeps
// the one it was given.
func copyMsg(m *nats.Msg) *nats.Msg {
	c := nats.NewMsg(m.Subject)
	c.Data = m.Data
	for k, v := range m.Header {
		c.Header[k] = append([]string(nil), v...)
	}
	return c
}
