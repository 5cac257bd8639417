package bus

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"pushsms.io/lib/fault"
)

// BatchHandler processes events together, for a consumer whose cost is per
// batch (one database transaction for thousands of events). Its error
// decides the acks: nil acks every event, a BatchErrors settles the events
// it lists apart and acks the others, any other error settles every event
// as a Handler's error settles one. Nothing is acked before it returns.
type BatchHandler func(ctx context.Context, msgs []*Msg) error

// BatchErrors is the error of a BatchHandler whose batch is done but for
// some events: the event at each index is settled by its error (permanent:
// terminated, other: redelivered), every other event is acked. A bad event
// so never holds back the good ones.
type BatchErrors map[int]error

func (e BatchErrors) Error() string {
	idx := make([]int, 0, len(e))
	for i := range e {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	errs := make([]error, 0, len(idx))
	for _, i := range idx {
		errs = append(errs, fmt.Errorf("event %d: %w", i, e[i]))
	}
	return errors.Join(errs...).Error()
}

// ConsumeBatch is Consume for a BatchHandler: it hands h up to size events
// at once, as many as arrived within maxWait of the first. spec.Workers
// batches are handled at once (default 1) while the next one is gathered;
// MaxAckPending defaults to room for them all. With spec.DoubleAck the
// batch's acks are confirmed by one round trip to the server, not one per
// event. The batch gets one consumer span, which holds the handler's work,
// and each event one of its own in its publisher's trace, linked to it.
// Stop hands over the events gathered so far, then waits for the handlers.
func (b *Bus) ConsumeBatch(ctx context.Context, spec ConsumerSpec, size int, maxWait time.Duration, h BatchHandler) (*Consumer, error) {
	if size < 1 {
		return nil, fmt.Errorf("consumer %s on %s: batch of %d events", spec.Durable, spec.Stream, size)
	}
	if maxWait <= 0 {
		maxWait = 100 * time.Millisecond
	}
	if spec.Workers < 1 {
		spec.Workers = 1
	}
	if spec.MaxAckPending == 0 {
		// The batches in hand, the one gathered and the one prefetched.
		spec.MaxAckPending = (spec.Workers + 2) * size
	}
	spec, cons, err := b.durable(ctx, spec)
	if err != nil {
		return nil, err
	}
	c := &Consumer{info: cons, pool: newWorkers(spec.Workers)}
	h, c.untrack = b.metrics.trackBatch(spec, cons, h)
	g := &gatherer{
		in:     make(chan jetstream.Msg, size),
		stop:   make(chan struct{}),
		closed: make(chan struct{}),
	}
	cc, err := cons.Consume(func(jm jetstream.Msg) {
		select {
		case <-g.stop:
			_ = jm.Nak()
			return
		default:
		}
		select {
		case g.in <- jm:
		case <-g.stop:
			// Stopping: give it back at once rather than after AckWait.
			_ = jm.Nak()
		}
	}, jetstream.PullMaxMessages(size), jetstream.PullExpiry(batchPullExpiry))
	if err != nil {
		c.untrack() // no lag to read of a consumer that never ran
		return nil, fmt.Errorf("consume %s on %s: %w", spec.Durable, spec.Stream, err)
	}
	g.inner = cc
	c.cc = g

	// Handlers run with a context that outlives a Stop only until the batch
	// in hand is done; it carries no deadline of its own.
	base := context.WithoutCancel(ctx)
	dispatch := func(batch []jetstream.Msg) {
		c.pool.run(func() { b.handleBatch(base, spec, batch, h) })
	}
	go g.run(size, maxWait, dispatch)
	return c, nil
}

// batchPullExpiry bounds each pull request of a batch consumer. After a
// burst that kept every worker busy (and this callback waiting), the
// status view's consumer was seen waiting for its pull request to expire
// before anything more came, with 30 s, the client's default: a burst of
// 198 500 cancellation reports stood still at 58 252 for 30 s, in 3 of 6
// runs (ratebench -scenario cancel). The cause inside the client or the
// server is not isolated; with 5 s the wait is 5 s at most (1 of 6 runs),
// for one more pull request every 5 s of an idle consumer.
const batchPullExpiry = 5 * time.Second

// gatherer turns the stream of events into batches. It is the Consumer's
// ConsumeContext, so that Stop stops it after the server's subscription.
type gatherer struct {
	inner    jetstream.ConsumeContext
	in       chan jetstream.Msg
	stop     chan struct{}
	stopOnce sync.Once
	closed   chan struct{}
}

func (g *gatherer) run(size int, maxWait time.Duration, dispatch func([]jetstream.Msg)) {
	defer close(g.closed)
	timer := time.NewTimer(maxWait)
	timer.Stop()
	for {
		var batch []jetstream.Msg
		select {
		case jm := <-g.in:
			batch = append(make([]jetstream.Msg, 0, size), jm)
		case <-g.stop:
			g.flush(size, dispatch)
			return
		}
		timer.Reset(maxWait)
	fill:
		for len(batch) < size {
			select {
			case jm := <-g.in:
				batch = append(batch, jm)
			case <-timer.C:
				break fill
			case <-g.stop:
				break fill
			}
		}
		timer.Stop()
		dispatch(batch)
	}
}

// flush hands over what arrived before the subscription stopped.
func (g *gatherer) flush(size int, dispatch func([]jetstream.Msg)) {
	<-g.inner.Closed()
	var batch []jetstream.Msg
	for {
		select {
		case jm := <-g.in:
			batch = append(batch, jm)
			if len(batch) == size {
				dispatch(batch)
				batch = nil
			}
		default:
			if len(batch) > 0 {
				dispatch(batch)
			}
			return
		}
	}
}

func (g *gatherer) Stop() {
	g.inner.Stop()
	g.stopOnce.Do(func() { close(g.stop) })
}

func (g *gatherer) Drain() { g.Stop() }

func (g *gatherer) Closed() <-chan struct{} { return g.closed }

func (b *Bus) handleBatch(ctx context.Context, spec ConsumerSpec, batch []jetstream.Msg, h BatchHandler) {
	// The batch's span holds the handler's work (its database spans); each
	// event also gets its own consumer span, child of its publisher's span
	// and linked to the batch's, so that one SMS stays one trace.
	ctx, span := b.tracer.Start(ctx, "process batch "+spec.Stream,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.consumer.group.name", spec.Durable),
			attribute.Int("messaging.batch.message_count", len(batch)),
		))
	defer span.End()
	batchLink := trace.Link{SpanContext: span.SpanContext()}

	msgs := make([]*Msg, len(batch))
	spans := make([]trace.Span, len(batch))
	for i, jm := range batch {
		m := newMsg(&deferrableMsg{Msg: jm}, spec.AckWait)
		// Each event's span joins its publisher's trace, not the batch's:
		// the message's trace goes on through billing.
		_, spans[i] = b.startProcess(context.Background(), spec, m, trace.WithLinks(batchLink))
		msgs[i] = m
	}
	defer func() {
		for _, s := range spans {
			s.End()
		}
	}()

	err := h(ctx, msgs)
	var each BatchErrors
	switch {
	case err == nil:
	case errors.As(err, &each):
		span.SetAttributes(attribute.Int("pushsms.batch.failed", len(each)))
	case fault.IsPermanent(err):
		span.RecordError(err)
		span.SetStatus(codes.Error, "terminated")
		b.log.ErrorContext(ctx, "batch terminated", "consumer", spec.Durable, "events", len(msgs), "err", err)
		for i, m := range msgs {
			spans[i].SetStatus(codes.Error, "terminated")
			_ = m.raw.TermWithReason(truncate(err.Error(), 200))
		}
		return
	default:
		span.RecordError(err)
		span.SetStatus(codes.Error, "redelivered")
		b.log.WarnContext(ctx, "batch redelivered", "consumer", spec.Durable, "events", len(msgs), "err", err)
		for i, m := range msgs {
			spans[i].SetStatus(codes.Error, "redelivered")
			_ = m.raw.NakWithDelay(backoff(int(min(m.Delivered, 10))))
		}
		return
	}

	acked := 0
	var ackErr error
	for i, m := range msgs {
		if err, ok := each[i]; ok && err != nil {
			spans[i].RecordError(err)
			b.settle(trace.ContextWithSpan(ctx, spans[i]), spec, m, err)
			continue
		}
		// deferrableMsg.Ack honours a Defer.
		if err := m.raw.Ack(); err != nil && ackErr == nil {
			ackErr = err
		}
		acked++
	}
	if ackErr == nil && spec.DoubleAck && acked > 0 {
		// The server reads a connection in order: its answer to a ping sent
		// after the acks says they all arrived.
		ackErr = b.Conn.FlushTimeout(5 * time.Second)
	}
	if ackErr != nil && !errors.Is(ackErr, nats.ErrConnectionClosed) {
		b.log.WarnContext(ctx, "batch ack failed; its events will be redelivered", "consumer", spec.Durable, "events", acked, "err", ackErr)
	}
}

// settle terminates or redelivers one event, handled alone or in a batch,
// as its handler's error says.
func (b *Bus) settle(ctx context.Context, spec ConsumerSpec, m *Msg, err error) {
	span := trace.SpanFromContext(ctx)
	if fault.IsPermanent(err) {
		span.SetStatus(codes.Error, "terminated")
		b.log.ErrorContext(ctx, "event terminated", "consumer", spec.Durable, "subject", m.Subject, "sequence", m.Sequence, "err", err)
		_ = m.raw.TermWithReason(truncate(err.Error(), 200))
		return
	}
	span.SetStatus(codes.Error, "redelivered")
	b.log.WarnContext(ctx, "event redelivered", "consumer", spec.Durable, "subject", m.Subject, "delivered", m.Delivered, "err", err)
	_ = m.raw.NakWithDelay(backoff(int(min(m.Delivered, 10))))
}
