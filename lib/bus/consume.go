package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"pushsms.io/lib/fault"
)

// Msg is one event handed to a Handler.
type Msg struct {
	Subject string
	Data    []byte
	Header  nats.Header
	// Type is the protobuf full name of the payload (HeaderType).
	Type string
	// Delivered counts deliveries of this event, 1 the first time.
	Delivered uint64
	// Stream sequence: a cursor for resuming.
	Sequence uint64
	// Time the event was stored.
	Time time.Time
	raw  *deferrableMsg
	// ackWait is the consumer's: how long the server waits for an ack
	// before it hands the event to another worker or replica.
	ackWait time.Duration
}

// Decode unmarshals the payload into v.
func (m *Msg) Decode(v proto.Message) error {
	if err := proto.Unmarshal(m.Data, v); err != nil {
		return fault.Permanent(fmt.Errorf("decode %s on %s: %w", v.ProtoReflect().Descriptor().FullName(), m.Subject, err))
	}
	return nil
}

// InProgress tells the server the handler is still working, so the event is
// not redelivered to another replica while a long handler holds it.
func (m *Msg) InProgress() error { return m.raw.InProgress() }

// KeepInProgress calls InProgress every third of the consumer's AckWait
// until stop is called: for a handler that may outlast AckWait (a slow
// SMSC, a bus that is away), so that no other replica takes the event
// meanwhile and does its work a second time.
func (m *Msg) KeepInProgress() (stop func()) {
	every := m.ackWait / 3
	if every <= 0 {
		every = 10 * time.Second
	}
	// A timer, not a goroutine: almost every handler is done long before
	// the first tick, and a goroutine per event would be started (and its
	// stack grown) for nothing.
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(every, func() {
		_ = m.InProgress() // a lost one is repeated at the next tick
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			t.Reset(every)
		}
	})
	return func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
		t.Stop()
	}
}

// Handler processes one event. Its error decides the ack: nil acks the
// event, a permanent error (fault.IsPermanent) terminates it, any other
// error redelivers it later with backoff.
type Handler func(ctx context.Context, m *Msg) error

// ConsumerSpec is a durable consumer: several replicas of a service that
// use the same Durable share its events.
type ConsumerSpec struct {
	Stream         string
	Durable        string
	FilterSubjects []string
	// AckWait is how long an unacknowledged event waits before redelivery.
	AckWait time.Duration
	// MaxAckPending bounds events in flight across all replicas.
	MaxAckPending int
	// Workers is how many events a replica handles at once (default 1).
	Workers int
	// DoubleAck waits for the server to confirm each ack, for handlers
	// whose effect must not be repeated by a lost ack.
	DoubleAck bool
	// StartSequence, when above 0, is the stream sequence a durable
	// created now starts at (default: the stream's first event). Where an
	// existing durable starts was fixed when it was created and stays.
	StartSequence uint64
	// MemoryState keeps the state of a durable created now (delivered,
	// acked, pending) in the servers' memory instead of a file rewritten
	// up to 10 times a second: with hundreds of busy durables those
	// rewrites were most of the server's work. The state then survives the
	// restart of one server of a cluster (the others hold it), not the
	// restart of all: the consumer is gone and its user creates it again
	// from a checkpoint of its own (StartSequence, Consumer.Position). An
	// existing durable keeps the storage it was created with: the server
	// cannot change it in place, and creating it again would lose what it
	// holds (Bus.DeleteConsumer once it holds nothing, then create it again
	// after its Position).
	MemoryState bool
}

// Consumer is a running durable consumer.
type Consumer struct {
	cc   jetstream.ConsumeContext
	pool *workers
	info jetstream.Consumer
	// untrack stops reading the consumer's lag (metrics.go).
	untrack func()
}

// Stop stops fetching and waits for the events in hand.
func (c *Consumer) Stop() {
	c.cc.Stop()
	<-c.cc.Closed()
	c.pool.close()
	if c.untrack != nil {
		c.untrack()
	}
}

// Position is where a durable consumer stands in its stream.
type Position struct {
	// AckFloor is the stream sequence up to which every event of the
	// consumer is acknowledged (or terminated).
	AckFloor uint64
	// Delivered is the last stream sequence delivered.
	Delivered uint64
	// AckPending counts the events delivered and not yet acknowledged.
	AckPending int
	// Memory tells whether its state is in the servers' memory.
	Memory bool
}

// Position reads where c stands. The error wraps
// jetstream.ErrConsumerNotFound when the consumer is gone.
func (c *Consumer) Position(ctx context.Context) (Position, error) {
	ci, err := c.info.Info(ctx)
	if err != nil {
		return Position{}, err
	}
	return positionOf(ci), nil
}

func positionOf(ci *jetstream.ConsumerInfo) Position {
	return Position{AckFloor: ci.AckFloor.Stream, Delivered: ci.Delivered.Stream,
		AckPending: ci.NumAckPending, Memory: ci.Config.MemoryStorage}
}

// ConsumerPosition reads where the durable of stream stands, without
// consuming.
func (b *Bus) ConsumerPosition(ctx context.Context, stream, durable string) (Position, error) {
	cons, err := b.JS.Consumer(ctx, stream, durable)
	if err != nil {
		return Position{}, fmt.Errorf("consumer %s on %s: %w", durable, stream, err)
	}
	return positionOf(cons.CachedInfo()), nil
}

// DeleteConsumer deletes the durable of stream; one that is not there is
// not an error.
func (b *Bus) DeleteConsumer(ctx context.Context, stream, durable string) error {
	err := b.JS.DeleteConsumer(ctx, stream, durable)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("delete consumer %s on %s: %w", durable, stream, err)
	}
	return nil
}

// Pending returns the number of events not yet delivered to the consumer.
func (c *Consumer) Pending(ctx context.Context) (uint64, error) {
	ci, err := c.info.Info(ctx)
	if err != nil {
		return 0, err
	}
	return ci.NumPending + uint64(ci.NumAckPending), nil
}

// Consume creates (or updates) the durable consumer of spec and hands its
// events to h until Stop. Each event gets a consumer span, child of the
// publisher's span carried in the headers.
func (b *Bus) Consume(ctx context.Context, spec ConsumerSpec, h Handler) (*Consumer, error) {
	if spec.MaxAckPending == 0 {
		spec.MaxAckPending = 1000
	}
	spec, cons, err := b.durable(ctx, spec)
	if err != nil {
		return nil, err
	}
	c := &Consumer{info: cons, pool: newWorkers(spec.Workers)}
	h, c.untrack = b.metrics.track(spec, cons, h)
	// Handlers run with a context that outlives a Stop only until the event
	// in hand is done; it carries no deadline of its own.
	base := context.WithoutCancel(ctx)
	cc, err := cons.Consume(func(jm jetstream.Msg) {
		c.pool.run(func() { b.handle(base, spec, &deferrableMsg{Msg: jm}, h) })
	}, jetstream.PullMaxMessages(max(2*spec.Workers, 16)))
	if err != nil {
		c.pool.close()
		c.untrack() // no lag to read of a consumer that never ran
		return nil, fmt.Errorf("consume %s on %s: %w", spec.Durable, spec.Stream, err)
	}
	c.cc = cc
	return c, nil
}

// workerIdle is how long a handler goroutine waits for the next event
// before it exits.
const workerIdle = 5 * time.Second

// workers runs a consumer's handlers on goroutines kept between events. A
// goroutine started for each event grew its stack anew every time (JSON
// and tracing go a few frames deep: 3 % of the CPU of the 200-short-code
// benchmark went to copying stacks) and was created and torn down for
// every event. At most n handlers run at once, on at most n goroutines; a
// goroutine idle for workerIdle exits.
type workers struct {
	sem  chan struct{}
	jobs chan func()
	live atomic.Int32
	wg   sync.WaitGroup
}

func newWorkers(n int) *workers {
	return &workers{sem: make(chan struct{}, n), jobs: make(chan func())}
}

// run hands f to an idle goroutine, or a new one; it blocks while n
// handlers run. It must not be called after close.
func (w *workers) run(f func()) {
	w.sem <- struct{}{}
	for {
		select {
		case w.jobs <- f:
			return
		default:
		}
		if l := w.live.Load(); l < int32(cap(w.sem)) {
			if w.live.CompareAndSwap(l, l+1) {
				w.wg.Add(1)
				go w.loop(f)
				return
			}
			continue
		}
		// n goroutines and fewer than n handlers: one of them is on its
		// way back to jobs, unless it is leaving (idle): look again soon.
		t := time.NewTimer(time.Millisecond)
		select {
		case w.jobs <- f:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (w *workers) loop(f func()) {
	defer w.wg.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f()
		<-w.sem
		idle.Reset(workerIdle)
		var ok bool
		select {
		case f, ok = <-w.jobs:
			if !ok {
				w.live.Add(-1)
				return
			}
		case <-idle.C:
			w.live.Add(-1)
			return
		}
	}
}

// close lets the idle goroutines go, and waits for the handlers running.
func (w *workers) close() {
	close(w.jobs)
	w.wg.Wait()
}

func (b *Bus) handle(ctx context.Context, spec ConsumerSpec, jm *deferrableMsg, h Handler) {
	m := newMsg(jm, spec.AckWait)
	ctx, span := b.startProcess(ctx, spec, m)
	defer span.End()

	err := h(ctx, m)
	switch {
	case err == nil:
		if spec.DoubleAck {
			ackCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err = jm.DoubleAck(ackCtx)
			cancel()
		} else {
			err = jm.Ack()
		}
		if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			b.log.WarnContext(ctx, "ack failed; the event will be redelivered", "consumer", spec.Durable, "err", err)
		}
	default:
		span.RecordError(err)
		b.settle(ctx, spec, m, err)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// durable creates or updates the durable consumer of spec, once its
// defaults are set (Workers 1, AckWait 30 s; MaxAckPending is the caller's).
func (b *Bus) durable(ctx context.Context, spec ConsumerSpec) (ConsumerSpec, jetstream.Consumer, error) {
	if spec.Workers < 1 {
		spec.Workers = 1
	}
	if spec.AckWait == 0 {
		spec.AckWait = 30 * time.Second
	}
	cfg := jetstream.ConsumerConfig{
		Durable:        spec.Durable,
		FilterSubjects: spec.FilterSubjects,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        spec.AckWait,
		MaxAckPending:  spec.MaxAckPending,
		MemoryStorage:  spec.MemoryState,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		MaxDeliver:     -1,
	}
	// What the server cannot change in place stays as the durable was
	// created: where it starts, and where its state is kept.
	cur, err := b.JS.Consumer(ctx, spec.Stream, spec.Durable)
	switch {
	case err == nil:
		ci := cur.CachedInfo().Config
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.MemoryStorage = ci.DeliverPolicy, ci.OptStartSeq, ci.MemoryStorage
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		if spec.StartSequence > 0 {
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, spec.StartSequence
		}
	default:
		return spec, nil, fmt.Errorf("consumer %s on %s: %w", spec.Durable, spec.Stream, err)
	}
	cons, err := b.JS.CreateOrUpdateConsumer(ctx, spec.Stream, cfg)
	if err != nil {
		return spec, nil, fmt.Errorf("consumer %s on %s: %w", spec.Durable, spec.Stream, err)
	}
	return spec, cons, nil
}

// newMsg is the event of a delivery.
func newMsg(jm *deferrableMsg, ackWait time.Duration) *Msg {
	m := &Msg{Subject: jm.Subject(), Data: jm.Data(), Header: jm.Headers(), raw: jm, ackWait: ackWait}
	if m.Header != nil {
		m.Type = m.Header.Get(HeaderType)
	}
	if md, err := jm.Metadata(); err == nil {
		m.Delivered, m.Sequence, m.Time = md.NumDelivered, md.Sequence.Stream, md.Timestamp
	}
	return m
}

// startProcess starts the consumer span of m, child of the publisher's span
// carried in its headers (ctx's otherwise).
func (b *Bus) startProcess(ctx context.Context, spec ConsumerSpec, m *Msg, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if m.Header != nil {
		ctx = b.prop.Extract(ctx, headerCarrier(m.Header))
	}
	opts = append(opts, trace.WithSpanKind(trace.SpanKindConsumer))
	ctx, span := b.tracer.Start(ctx, "process "+subjectPattern(m.Subject), opts...)
	// Most events are not sampled: their attributes would be built for
	// nothing, at every event (no sampler here decides on attributes).
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", m.Subject),
			attribute.String("messaging.consumer.group.name", spec.Durable),
			attribute.Int64("messaging.message.delivery_count", int64(m.Delivered)),
			attribute.String("pushsms.event.type", m.Type),
		)
	}
	return ctx, span
}
