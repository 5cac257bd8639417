// Package e2e drives the whole platform (cmd/stack: embedded NATS, a
// private PostgreSQL, the SMSC simulator and the five services) through the
// partner gRPC API, as a partner would.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"pushsms.io/cmd/stack"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/pgtest"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
	"pushsms.io/services/ingest"
)

// platform is a running stack with a client of the local partner.
type platform struct {
	*stack.Stack
	cfg    stack.Config
	client partnerv1.MessagingServiceClient
	conn   *grpc.ClientConn
}

// dataDir is a temp dir the postgres user can enter: as root, the private
// PostgreSQL runs as postgres, and t.TempDir's directories are 0700.
func dataDir(t *testing.T) string {
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func config(t *testing.T, dir string) stack.Config {
	cfg := stack.DefaultConfig()
	cfg.Dir = dir
	cfg.APIPort, cfg.NATSPort, cfg.PGPort, cfg.SMSCPort, cfg.SimHTTPPort, cfg.NATSMonitor, cfg.CompliancePort, cfg.BillingPort = 0, 0, 0, 0, 0, 0, 0, 0
	cfg.Rate = 50
	cfg.DRDelay = 50 * time.Millisecond
	return cfg
}

func start(t *testing.T, cfg stack.Config) *platform {
	t.Helper()
	pgtest.NeedServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := stack.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start platform: %v", err)
	}
	conn, err := grpc.NewClient(s.APIAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		s.Stop()
		t.Fatal(err)
	}
	p := &platform{Stack: s, cfg: cfg, client: partnerv1.NewMessagingServiceClient(conn), conn: conn}
	t.Cleanup(p.stop)
	return p
}

func (p *platform) stop() {
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
		p.Stack.Stop()
	}
}

// as returns a context authenticated with key.
func as(key string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+key)
}

func (p *platform) send(t *testing.T, to string) *partnerv1.Message {
	t.Helper()
	resp, err := p.client.SendMessage(as(p.APIKey()), &partnerv1.SendMessageRequest{
		ShortCode: p.cfg.ShortCodes[0],
		Brand:     "Acme",
		Category:  partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP,
		Recipient: to,
		Text:      "Votre colis arrive demain entre 8h et 12h.",
	})
	if err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	return resp.GetMessage()
}

// waitState polls the message until it reaches want (or any terminal state
// other than want, which fails at once).
func (p *platform) waitState(t *testing.T, id string, want partnerv1.MessageState, within time.Duration) *partnerv1.Message {
	t.Helper()
	var last *partnerv1.Message
	bustest.Eventually(t, within, func() error {
		resp, err := p.client.GetMessage(as(p.APIKey()), &partnerv1.GetMessageRequest{MessageId: id})
		if err != nil {
			return err
		}
		last = resp.GetMessage()
		if last.GetState() != want {
			return fmt.Errorf("message %s is %v (reason %v), want %v", id, last.GetState(), last.GetReason(), want)
		}
		return nil
	})
	return last
}

func (p *platform) ledger(t *testing.T, id string) (delivered, rows int) {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), p.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	err = pool.QueryRow(context.Background(),
		`SELECT count(*) FILTER (WHERE billable AND state = 'delivered'), count(*) FROM billing.ledger WHERE message_id = $1`, id).Scan(&delivered, &rows)
	if err != nil {
		t.Fatal(err)
	}
	return delivered, rows
}

func (p *platform) submissionsTo(adcSuffix string) int {
	n := 0
	for _, s := range p.Sim().Submissions() {
		if strings.HasSuffix(s.AdC, adcSuffix) {
			n++
		}
	}
	return n
}

// One SMS through all five services: accepted, checked, paced, submitted
// over UCP, delivered, billed once, and all of it in one trace.
func TestSendIsDeliveredBilledAndTraced(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	cfg := config(t, dataDir(t))
	cfg.SpanProcessor = rec
	p := start(t, cfg)

	begin := time.Now()
	m := p.send(t, "06 07 12 34 56")
	if m.GetMessageId() == "" {
		t.Fatal("no message id")
	}
	got := p.waitState(t, m.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_DELIVERED, 10*time.Second)
	t.Logf("accepted to DELIVERED in %v", time.Since(begin).Round(time.Millisecond))
	if n := len(got.GetSegments()); n != 1 || got.GetSegments()[0].GetState() != partnerv1.SegmentState_SEGMENT_STATE_DELIVERED {
		t.Errorf("segments %v, want one DELIVERED", got.GetSegments())
	}
	if got.GetRecipientMasked() == "" || got.GetRecipientMasked() == "+33612345678" {
		t.Errorf("recipient shown as %q, want a masked number", got.GetRecipientMasked())
	}
	bustest.Eventually(t, 5*time.Second, func() error {
		if d, rows := p.ledger(t, m.GetMessageId()); d != 1 || rows != 1 {
			return fmt.Errorf("ledger holds %d delivered of %d rows for the message, want 1 of 1", d, rows)
		}
		return nil
	})
	if n := p.submissionsTo("607123456"); n != 1 {
		t.Errorf("SMSC received %d submits, want 1", n)
	}

	// One trace covers the five services.
	want := []string{"ingest", "compliance", "throttle", "smsc-link", "billing"}
	bustest.Eventually(t, 5*time.Second, func() error {
		services := map[string]map[string]bool{} // trace id -> services
		for _, s := range rec.Ended() {
			var svc string
			for _, kv := range s.Resource().Attributes() {
				if kv.Key == "service.name" {
					svc = kv.Value.AsString()
				}
			}
			for _, kv := range s.Attributes() {
				if v := kv.Value.Emit(); len(v) >= 9 && strings.Contains(v, "607123456") {
					return fmt.Errorf("span %q of %s carries a phone number in %s", s.Name(), svc, kv.Key)
				}
			}
			id := s.SpanContext().TraceID().String()
			if services[id] == nil {
				services[id] = map[string]bool{}
			}
			services[id][svc] = true
		}
		for id, svcs := range services {
			all := true
			for _, w := range want {
				all = all && svcs[w]
			}
			if all {
				t.Logf("trace %s spans %v", id, want)
				return nil
			}
		}
		return fmt.Errorf("no trace covers %v: %v", want, services)
	})
}

// A fixed-line number is rejected with a machine-readable reason, and
// nothing reaches the SMSC.
func TestFixedLineIsRejected(t *testing.T) {
	p := start(t, config(t, dataDir(t)))
	m := p.send(t, "+33 1 23 45 67 89")
	got := p.waitState(t, m.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_REJECTED, 10*time.Second)
	if got.GetReason() != partnerv1.Reason_REASON_NOT_MOBILE {
		t.Errorf("reason %v, want REASON_NOT_MOBILE", got.GetReason())
	}
	// A valid message sent after it is delivered: the pipeline had time to
	// submit the rejected one, had it been going to.
	ok := p.send(t, "07 70 12 34 56")
	p.waitState(t, ok.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_DELIVERED, 10*time.Second)
	if n := p.submissionsTo("123456789"); n != 0 {
		t.Errorf("SMSC received %d submits for the fixed line, want 0", n)
	}
	if d, rows := p.ledger(t, m.GetMessageId()); rows != 0 {
		t.Errorf("ledger holds %d rows (%d delivered) for the rejected message, want none", rows, d)
	}
}

// Stopping the whole platform between submission and delivery loses
// nothing: after a restart on the same data, every message ends DELIVERED
// and is billed once.
func TestRestartLosesNothing(t *testing.T) {
	dir := dataDir(t)
	cfg := config(t, dir)
	cfg.DRDelay = 700 * time.Millisecond // the DR is still pending at the SMSC when we stop
	p := start(t, cfg)

	first := p.send(t, "06 30 22 33 44")
	p.waitState(t, first.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_SUBMITTED, 10*time.Second)
	second := p.send(t, "06 31 66 77 88") // stopped right after acceptance
	p.stop()

	cfg.DRDelay = 50 * time.Millisecond
	p = start(t, cfg)
	for _, m := range []*partnerv1.Message{first, second} {
		p.waitState(t, m.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_DELIVERED, 20*time.Second)
		bustest.Eventually(t, 5*time.Second, func() error {
			if d, rows := p.ledger(t, m.GetMessageId()); d != 1 || rows != 1 {
				return fmt.Errorf("ledger holds %d delivered of %d rows for %s, want 1 of 1", d, rows, m.GetMessageId())
			}
			return nil
		})
	}
}

// A partner cannot read another partner's message, nor learn it exists.
func TestPartnerCannotReadAnothersMessage(t *testing.T) {
	p := start(t, config(t, dataDir(t)))
	m := p.send(t, "06 07 12 34 56")

	pool, err := pgxpool.New(context.Background(), p.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	otherKey, err := ingest.CreatePartner(context.Background(), pool, "other", "Other partner", []string{"36999"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.client.GetMessage(as(otherKey), &partnerv1.GetMessageRequest{MessageId: m.GetMessageId()})
	if c := status.Code(err); c != codes.NotFound && c != codes.PermissionDenied {
		t.Fatalf("other partner reading the message: %v, want NotFound or PermissionDenied", err)
	}
	_, err = p.client.GetMessage(context.Background(), &partnerv1.GetMessageRequest{MessageId: m.GetMessageId()})
	if c := status.Code(err); c != codes.Unauthenticated {
		t.Fatalf("reading without a key: %v, want Unauthenticated", err)
	}
	if _, err := p.client.GetMessage(as(p.APIKey()), &partnerv1.GetMessageRequest{MessageId: m.GetMessageId()}); err != nil {
		t.Fatalf("owner reading the message: %v", err)
	}
}

// A 3-part UCS-2 message: three submits with one consistent concatenation
// header, three delivery reports, one DELIVERED message, three billed
// segments.
func TestLongUCS2MessageIsThreeSegments(t *testing.T) {
	p := start(t, config(t, dataDir(t)))
	text := strings.Repeat("Привет, ваш заказ в пути ✈ ", 6) // Cyrillic: UCS-2, 162 characters
	resp, err := p.client.SendMessage(as(p.APIKey()), &partnerv1.SendMessageRequest{
		ShortCode: p.cfg.ShortCodes[0],
		Category:  partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP,
		Recipient: "06 08 76 54 32",
		Text:      text,
	})
	if err != nil {
		t.Fatal(err)
	}
	m := resp.GetMessage()
	if m.GetEncoding() != partnerv1.Encoding_ENCODING_UCS2 || m.GetSegmentCount() != 3 {
		t.Fatalf("accepted as %v in %d segments, want UCS2 in 3", m.GetEncoding(), m.GetSegmentCount())
	}
	got := p.waitState(t, m.GetMessageId(), partnerv1.MessageState_MESSAGE_STATE_DELIVERED, 15*time.Second)
	for _, s := range got.GetSegments() {
		if s.GetState() != partnerv1.SegmentState_SEGMENT_STATE_DELIVERED {
			t.Errorf("segment %d is %v", s.GetIndex(), s.GetState())
		}
	}
	var udhs [][]byte
	for _, s := range p.Sim().Submissions() {
		if strings.HasSuffix(s.AdC, "608765432") {
			udhs = append(udhs, s.UDH)
		}
	}
	if len(udhs) != 3 {
		t.Fatalf("SMSC received %d submits, want 3", len(udhs))
	}
	seen := map[byte]bool{}
	for _, u := range udhs {
		// 05 00 03 ref total seq: one reference, total 3, each part once.
		if len(u) != 6 || u[0] != 5 || u[1] != 0 || u[2] != 3 || u[3] != udhs[0][3] || u[4] != 3 || seen[u[5]] {
			t.Errorf("UDH % x inconsistent with % x", u, udhs[0])
		}
		seen[u[5]] = true
	}
	bustest.Eventually(t, 5*time.Second, func() error {
		if d, rows := p.ledger(t, m.GetMessageId()); d != 3 || rows != 3 {
			return fmt.Errorf("ledger holds %d delivered of %d rows, want 3 of 3", d, rows)
		}
		return nil
	})
}
