// Package bus is the one way services talk over NATS JetStream: the streams
// and subjects of the platform, publishing with trace context and a
// Nats-Msg-Id, and consuming with a span per message and acks decided by the
// error's kind (see package fault).
package bus

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"pushsms.io/lib/fault"
	"pushsms.io/lib/telemetry"
)

// Headers set on every event. NATS headers are case-sensitive: these are
// written and read exactly as spelled.
const (
	HeaderType  = "Pushsms-Type"
	HeaderMsgID = jetstream.MsgIDHeader
)

// Config says where the NATS server is and how many replicas streams get.
type Config struct {
	URL string
	// Replicas of every stream: 1 on one machine, 3 on a cluster.
	Replicas int
	// InProcess, when set, is a server in this process (the one-machine
	// mode), reached through memory rather than TCP: no system call per
	// read or write, on either side, for every publish, ack and delivery.
	InProcess nats.InProcessConnProvider
}

// DefaultConfig is a local server with one replica.
func DefaultConfig() Config { return Config{URL: nats.DefaultURL, Replicas: 1} }

// RegisterFlags adds -nats-url and -nats-replicas.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.URL, "nats-url", c.URL, "NATS server URL(s), comma-separated")
	fs.IntVar(&c.Replicas, "nats-replicas", c.Replicas, "replicas of each JetStream stream (1 on one machine, 3 on a cluster)")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.URL == "" {
		return errors.New("bus: nats-url is empty")
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("bus: nats-replicas %d: want 1 to 5", c.Replicas)
	}
	return nil
}

// Bus is a service's connection to JetStream.
type Bus struct {
	Conn   *nats.Conn
	JS     jetstream.JetStream
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	log    *slog.Logger
	// metrics counts the consumers' events and reads their lag (metrics.go).
	metrics *consumerMetrics
}

// Connect connects as service (the client name the server shows), waits for
// the server if it is not up yet, and ensures streams and buckets exist.
func Connect(ctx context.Context, cfg Config, service string, tel *telemetry.Telemetry) (*Bus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := tel.Logger.With("component", "bus")
	opts := []nats.Option{
		nats.Name(service),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// While disconnected, a publish fails at once instead of waiting in
		// the client's buffer: a caller told "unavailable" must be able to
		// trust that nothing will be stored later behind its back.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("nats reconnected") }),
	}
	if cfg.InProcess != nil {
		opts = append(opts, nats.InProcessServer(cfg.InProcess))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", cfg.URL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	b := &Bus{Conn: nc, JS: js, tracer: tel.Tracer("pushsms.io/lib/bus"), prop: tel.Propagator, log: log}
	if b.metrics, err = newConsumerMetrics(tel.Registerer); err != nil {
		log.Warn("consumer metrics off", "err", err)
	}
	// The server may still be starting (RetryOnFailedConnect): retry until ctx ends.
	for attempt := 0; ; attempt++ {
		err = Ensure(ctx, js, cfg.Replicas)
		if err == nil {
			return b, nil
		}
		select {
		case <-ctx.Done():
			nc.Close()
			return nil, fmt.Errorf("ensure streams: %w", err)
		case <-time.After(backoff(attempt)):
		}
	}
}

// Close drains the connection: consumers finish the message in hand and
// pending publishes are flushed.
func (b *Bus) Close() error {
	if b == nil || b.Conn == nil {
		return nil
	}
	err := b.Conn.Drain()
	for i := 0; i < 100 && !b.Conn.IsClosed(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// Publish stores msg on subject. msgID identifies the event: a retried
// publish with the same msgID is stored once (within DuplicateWindow). The
// current span's context travels in the headers, so the consumer's span
// joins the same trace. Publish retries transient failures until ctx ends.
func (b *Bus) Publish(ctx context.Context, subject string, msg proto.Message, msgID string) error {
	data, err := proto.Marshal(msg)
	if err != nil {
		return fault.Permanent(fmt.Errorf("marshal %s: %w", msg.ProtoReflect().Descriptor().FullName(), err))
	}
	typ := string(msg.ProtoReflect().Descriptor().FullName())
	ctx, span := b.tracer.Start(ctx, "send "+subjectPattern(subject), trace.WithSpanKind(trace.SpanKindProducer))
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", subject),
			attribute.String("messaging.message.id", msgID),
			attribute.String("pushsms.event.type", typ),
		)
	}

	m := nats.NewMsg(subject)
	m.Data = data
	m.Header.Set(HeaderType, typ)
	b.prop.Inject(ctx, headerCarrier(m.Header))
	if err := b.store(ctx, m, jetstream.WithMsgID(msgID)); err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "publish failed")
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	return nil
}

// store publishes m, retrying transient failures until ctx ends (the
// publish options carry a Nats-Msg-Id, which makes a retry safe). The
// error wraps fault.ErrUnavailable.
func (b *Bus) store(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) error {
	for attempt := 0; ; attempt++ {
		_, err := b.JS.PublishMsg(ctx, m, opts...)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || !transient(err) || attempt >= 8 {
			return errors.Join(err, fault.ErrUnavailable)
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff(attempt)):
		}
	}
}

// transient tells whether a publish may succeed if tried again: anything
// but an answer of the JetStream API (wrong stream, bad config) is a
// transport failure, and the Nats-Msg-Id makes the retry safe.
func transient(err error) bool {
	var apiErr *jetstream.APIError
	return !errors.As(err, &apiErr)
}

// backoff grows from 100 ms to 5 s.
func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt, 6)
	return min(d, 5*time.Second)
}

// subjectPattern keeps span names few: a subject is named after its first
// two tokens (sms.submit), three for reports (sms.report.delivered), never
// after a tenant or a short code.
func subjectPattern(subject string) string {
	keep := 2
	if strings.HasPrefix(subject, "sms.report.") {
		keep = 3
	}
	// The prefix up to the keep-th dot: a slice of subject, no allocation
	// (it names a span of every event).
	end := 0
	for range keep {
		i := strings.IndexByte(subject[end:], '.')
		if i < 0 {
			return subject
		}
		end += i + 1
	}
	return subject[:end-1]
}

// headerCarrier lets the OTel propagator read and write NATS headers. It
// keeps keys as written: nats.Header is case-sensitive, and the canonical
// form of http.Header ("Traceparent") would not match.
type headerCarrier nats.Header

func (c headerCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c headerCarrier) Set(key, value string) { c[key] = []string{value} }

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
