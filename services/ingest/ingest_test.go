package ingest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/pgdb"
	"pushsms.io/lib/pgtest"
	"pushsms.io/lib/telemetry"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
	"pushsms.io/services/ingest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Tenants of every test: acme owns 36123 and 36124, globex 36200.
const (
	tenantA = "acme"
	tenantB = "globex"
	scA     = "36123"
	scA2    = "36124"
	scB     = "36200"
)

// env is one running ingest service with its bus, database and clients.
type env struct {
	svc    *ingest.Service
	nats   *bustest.Server
	bus    *bus.Bus // the test's own connection, playing the other services
	db     *pgtest.DB
	client partnerv1.MessagingServiceClient
	conn   *grpc.ClientConn
	keyA   string
	keyB   string
	spans  *tracetest.SpanRecorder
}

func start(t *testing.T) *env {
	t.Helper()
	return startWith(t, nil)
}

// startWith starts ingest with its configuration changed by configure.
func startWith(t *testing.T, configure func(*ingest.Config)) *env {
	t.Helper()
	e := &env{nats: bustest.Start(t), spans: tracetest.NewSpanRecorder()}
	e.db = pgtest.New(t, pgtest.Migrated(ingest.Schema, ingest.Migrations()))
	e.bus = bustest.Connect(t, e.nats)

	cfg := ingest.DefaultConfig()
	cfg.Bus = bus.Config{URL: e.nats.URL(), Replicas: 1}
	cfg.DB = pgdb.Config{URL: e.db.URL, MaxConns: 10}
	cfg.GRPCAddr, cfg.Telemetry.MetricsAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Workers = 4
	cfg.Telemetry = telemetry.Config{LogLevel: "error", LogFormat: "text",
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(e.spans))}
	if configure != nil {
		configure(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, err := ingest.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	serveCtx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- svc.Serve(serveCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if err := svc.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})

	if e.keyA, err = ingest.CreatePartner(ctx, e.db.Pool, tenantA, "Acme Retail", []string{scA, scA2}); err != nil {
		t.Fatal(err)
	}
	if e.keyB, err = ingest.CreatePartner(ctx, e.db.Pool, tenantB, "Globex", []string{scB}); err != nil {
		t.Fatal(err)
	}
	e.conn, err = grpc.NewClient(svc.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.conn.Close() })
	e.client = partnerv1.NewMessagingServiceClient(e.conn)
	// SERVING comes once Serve has created its consumers: a test that
	// stops NATS right after start must not stop it under their creation.
	health := healthpb.NewHealthClient(e.conn)
	bustest.Eventually(t, 30*time.Second, func() error {
		r, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		if r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("health %s", r.GetStatus())
		}
		return nil
	})
	return e
}

// as returns a context carrying key as "authorization: Bearer <key>".
func as(key string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+key)
}

func sendReq(recipient, text string) *partnerv1.SendMessageRequest {
	return &partnerv1.SendMessageRequest{
		ShortCode: scA,
		Brand:     "Acme",
		Category:  partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING,
		Recipient: recipient,
		Text:      text,
	}
}

func (e *env) send(t *testing.T, req *partnerv1.SendMessageRequest) *partnerv1.Message {
	t.Helper()
	resp, err := e.client.SendMessage(as(e.keyA), req)
	if err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	return resp.GetMessage()
}

// streamMsgs returns every event stored in stream.
func (e *env) streamMsgs(t *testing.T, stream string) []*streamMsg {
	t.Helper()
	ctx := context.Background()
	st, err := e.bus.JS.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*streamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		out = append(out, &streamMsg{subject: m.Subject, msgID: m.Header.Get(bus.HeaderMsgID), typ: m.Header.Get(bus.HeaderType), data: m.Data})
	}
	return out
}

// acceptedMessages returns every message of SMS_ACCEPTED in order: single
// MessageAccepted events and the messages of campaign batches, published or
// still scheduled.
func (e *env) acceptedMessages(t *testing.T) []*eventsv1.MessageAccepted {
	t.Helper()
	var out []*eventsv1.MessageAccepted
	for _, m := range e.streamMsgs(t, bus.StreamAccepted) {
		switch m.typ {
		case "pushsms.events.v1.CampaignBatch":
			var b eventsv1.CampaignBatch
			m.decode(t, &b)
			out = append(out, b.GetMessages()...)
		default:
			var acc eventsv1.MessageAccepted
			m.decode(t, &acc)
			out = append(out, &acc)
		}
	}
	return out
}

type streamMsg struct {
	subject, msgID, typ string
	data                []byte
}

func (m *streamMsg) decode(t *testing.T, v proto.Message) {
	t.Helper()
	if err := proto.Unmarshal(m.data, v); err != nil {
		t.Fatal(err)
	}
}

func wantCode(t *testing.T, err error, want codes.Code) *status.Status {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != want {
		t.Fatalf("got %v (%v), want %v", st.Code(), err, want)
	}
	return st
}

// fieldViolations lists the fields of an InvalidArgument's BadRequest.
func fieldViolations(st *status.Status) []string {
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	return fields
}

func (e *env) getMessage(t *testing.T, id string) *partnerv1.Message {
	t.Helper()
	resp, err := e.client.GetMessage(as(e.keyA), &partnerv1.GetMessageRequest{MessageId: id})
	if err != nil {
		t.Fatalf("GetMessage: %v", err)
	}
	return resp.GetMessage()
}

// waitState polls GetMessage until the message is in state want.
func (e *env) waitState(t *testing.T, id string, want partnerv1.MessageState) *partnerv1.Message {
	t.Helper()
	var msg *partnerv1.Message
	bustest.Eventually(t, 10*time.Second, func() error {
		resp, err := e.client.GetMessage(as(e.keyA), &partnerv1.GetMessageRequest{MessageId: id})
		if err != nil {
			return err
		}
		msg = resp.GetMessage()
		if msg.GetState() != want {
			return fmt.Errorf("message %s is %v, want %v", id, msg.GetState(), want)
		}
		return nil
	})
	return msg
}
