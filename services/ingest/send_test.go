package ingest_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/gsm"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

func TestSendMessagePublishesAccepted(t *testing.T) {
	e := start(t)
	req := sendReq("06 12 34 56 78", "Soldes d’été : -50% sur tout le magasin ! STOP 36123")
	req.Validity = durationpb.New(2 * time.Hour)
	req.Sender = "ACME"
	msg := e.send(t, req)

	if msg.GetState() != partnerv1.MessageState_MESSAGE_STATE_ACCEPTED {
		t.Errorf("state %v, want ACCEPTED", msg.GetState())
	}
	if got, want := msg.GetRecipientMasked(), "+33 6 12 •• •• 78"; got != want {
		t.Errorf("recipient_masked %q, want %q", got, want)
	}
	// French typography is normalised: the curly apostrophe does not force UCS-2.
	if msg.GetEncoding() != partnerv1.Encoding_ENCODING_GSM7 || msg.GetSegmentCount() != 1 {
		t.Errorf("encoding %v, %d segments; want GSM7, 1", msg.GetEncoding(), msg.GetSegmentCount())
	}

	events := e.streamMsgs(t, bus.StreamAccepted)
	if len(events) != 1 {
		t.Fatalf("%d events on %s, want 1", len(events), bus.StreamAccepted)
	}
	ev := events[0]
	if want := bus.AcceptedSubject(tenantA, scA); ev.subject != want {
		t.Errorf("subject %q, want %q", ev.subject, want)
	}
	if ev.msgID != msg.GetMessageId() {
		t.Errorf("Nats-Msg-Id %q, want the message id %q", ev.msgID, msg.GetMessageId())
	}
	if ev.typ != "pushsms.events.v1.MessageAccepted" {
		t.Errorf("type %q", ev.typ)
	}
	var acc eventsv1.MessageAccepted
	ev.decode(t, &acc)
	if acc.GetMessageId() != msg.GetMessageId() || acc.GetTenantId() != tenantA || acc.GetShortCode() != scA ||
		acc.GetBrand() != "Acme" || acc.GetSender() != "ACME" || acc.GetRecipient() != req.GetRecipient() ||
		acc.GetText() != req.GetText() || acc.GetCategory() != req.GetCategory() {
		t.Errorf("event %v does not match request %v", &acc, req)
	}
	if got := acc.GetExpiresAt().AsTime().Sub(acc.GetAcceptedAt().AsTime()); got != 2*time.Hour {
		t.Errorf("expires %v after accept, want 2h", got)
	}
	if acc.GetSegmentCount() != 1 || acc.GetEncoding() != partnerv1.Encoding_ENCODING_GSM7 {
		t.Errorf("event counts %v, %d segments", acc.GetEncoding(), acc.GetSegmentCount())
	}

	// The database never holds the number in clear.
	var row string
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT m::text FROM ingest.messages m WHERE id = $1`, msg.GetMessageId()).Scan(&row); err != nil {
		t.Fatal(err)
	}
	for _, digits := range []string{"12345678", "612345678", "34 56"} {
		if strings.Contains(row, digits) {
			t.Errorf("message row %s holds %q", row, digits)
		}
	}
}

func TestSendMessageDefaultValidity(t *testing.T) {
	e := start(t)
	e.send(t, sendReq("+33612345678", "Votre code : 482913"))
	var acc eventsv1.MessageAccepted
	e.streamMsgs(t, bus.StreamAccepted)[0].decode(t, &acc)
	if got := acc.GetExpiresAt().AsTime().Sub(acc.GetAcceptedAt().AsTime()); got != 48*time.Hour {
		t.Errorf("expires %v after accept, want 48h", got)
	}
}

func TestSendMessageIdempotent(t *testing.T) {
	e := start(t)
	req := sendReq("06 12 34 56 78", "Votre commande 1234 est partie.")
	req.Category = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP
	req.ClientReference = "order-1234-shipped"
	first := e.send(t, req)
	second := e.send(t, req)
	if first.GetMessageId() != second.GetMessageId() {
		t.Errorf("second send got message %s, want the first %s", second.GetMessageId(), first.GetMessageId())
	}
	if second.GetClientReference() != req.GetClientReference() {
		t.Errorf("client_reference %q, want %q", second.GetClientReference(), req.GetClientReference())
	}
	// Another reference, another message; the same reference at another tenant too.
	req.ClientReference = "order-1235-shipped"
	if third := e.send(t, req); third.GetMessageId() == first.GetMessageId() {
		t.Error("another reference returned the first message")
	}
	if n := len(e.streamMsgs(t, bus.StreamAccepted)); n != 2 {
		t.Errorf("%d MessageAccepted, want 2", n)
	}
}

func TestSendMessageInvalid(t *testing.T) {
	e := start(t)
	long := strings.Repeat("a", 153*10+1)
	tests := []struct {
		name   string
		modify func(*partnerv1.SendMessageRequest)
		fields []string
	}{
		{"short code", func(r *partnerv1.SendMessageRequest) { r.ShortCode = "3612" }, []string{"short_code"}},
		{"short code letters", func(r *partnerv1.SendMessageRequest) { r.ShortCode = "36a23" }, []string{"short_code"}},
		{"no brand for marketing", func(r *partnerv1.SendMessageRequest) { r.Brand = " " }, []string{"brand"}},
		{"no category", func(r *partnerv1.SendMessageRequest) { r.Category = 0 }, []string{"category"}},
		{"unknown category", func(r *partnerv1.SendMessageRequest) { r.Category = 99 }, []string{"category"}},
		{"no recipient", func(r *partnerv1.SendMessageRequest) { r.Recipient = "" }, []string{"recipient"}},
		{"no text", func(r *partnerv1.SendMessageRequest) { r.Text = "" }, []string{"text"}},
		{"text too long", func(r *partnerv1.SendMessageRequest) { r.Text = long }, []string{"text"}},
		{"validity too long", func(r *partnerv1.SendMessageRequest) { r.Validity = durationpb.New(73 * time.Hour) }, []string{"validity"}},
		{"validity negative", func(r *partnerv1.SendMessageRequest) { r.Validity = durationpb.New(-time.Minute) }, []string{"validity"}},
		{"several", func(r *partnerv1.SendMessageRequest) { r.ShortCode, r.Text, r.Recipient = "", "", "" }, []string{"short_code", "recipient", "text"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := sendReq("06 12 34 56 78", "Bonjour")
			tt.modify(req)
			_, err := e.client.SendMessage(as(e.keyA), req)
			st := wantCode(t, err, codes.InvalidArgument)
			if got := fieldViolations(st); !slices.Equal(got, tt.fields) {
				t.Errorf("field violations %v, want %v", got, tt.fields)
			}
		})
	}
	t.Run("not a mobile is accepted", func(t *testing.T) {
		// Compliance decides, and the message ends REJECTED with a reason.
		e.send(t, sendReq("01 23 45 67 89", "Bonjour"))
	})
	t.Run("customer relationship needs no brand", func(t *testing.T) {
		req := sendReq("06 12 34 56 78", "Votre code : 1234")
		req.Brand, req.Category = "", partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP
		e.send(t, req)
	})
	if n := len(e.streamMsgs(t, bus.StreamAccepted)); n != 2 {
		t.Errorf("%d MessageAccepted, want 2 (invalid requests publish nothing)", n)
	}
}

func TestSpansCarryNoMSISDN(t *testing.T) {
	e := start(t)
	msg := e.send(t, sendReq("06 12 34 56 78", "Bonjour"))
	e.getMessage(t, msg.GetMessageId())
	_, _ = e.client.SendMessage(as(e.keyA), sendReq("06 12 34 56 78", ""))
	spans := e.spans.Ended()
	if len(spans) == 0 {
		t.Fatal("no span recorded")
	}
	for _, s := range spans {
		var texts []string
		for _, a := range s.Attributes() {
			texts = append(texts, a.Value.Emit())
		}
		for _, ev := range s.Events() {
			texts = append(texts, ev.Name)
			for _, a := range ev.Attributes {
				texts = append(texts, a.Value.Emit())
			}
		}
		texts = append(texts, s.Status().Description, s.Name())
		for _, text := range texts {
			if strings.Contains(strings.ReplaceAll(text, " ", ""), "12345678") {
				t.Errorf("span %q carries %q", s.Name(), text)
			}
		}
	}
}

func TestSendMessageIdempotentConcurrent(t *testing.T) {
	e := start(t)
	req := sendReq("06 12 34 56 78", "Votre code : 1234")
	req.ClientReference = "login-42"
	const n = 8
	ids := make(chan string, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			resp, err := e.client.SendMessage(as(e.keyA), req)
			if err != nil {
				errs <- err
				return
			}
			ids <- resp.GetMessage().GetMessageId()
		}()
	}
	seen := map[string]bool{}
	for range n {
		select {
		case id := <-ids:
			seen[id] = true
		case err := <-errs:
			t.Fatal(err)
		}
	}
	if len(seen) != 1 {
		t.Errorf("%d concurrent sends with one reference made messages %v, want one", n, seen)
	}
	if got := len(e.streamMsgs(t, bus.StreamAccepted)); got != 1 {
		t.Errorf("%d MessageAccepted, want 1", got)
	}
}

// TestSendMessageBusDown: a message row is committed only once its
// MessageAccepted is stored, so no row is left behind when the bus is down.
func TestSendMessageBusDown(t *testing.T) {
	e := start(t)
	e.nats.Stop()
	ctx, cancel := context.WithTimeout(as(e.keyA), time.Second)
	defer cancel()
	_, err := e.client.SendMessage(ctx, sendReq("06 12 34 56 78", "Bonjour"))
	if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
		t.Fatalf("send with the bus down: %v, want Unavailable or DeadlineExceeded", err)
	}
	if ids := e.messageIDs(t); len(ids) != 0 {
		t.Fatalf("with the bus down, message rows %v exist", ids)
	}
	e.nats.Restart(t)
	bustest.Eventually(t, 20*time.Second, func() error {
		_, err := e.client.SendMessage(as(e.keyA), sendReq("06 87 65 43 21", "Bonjour"))
		return err
	})
	// The refused send is not stored later behind the partner's back (the
	// client keeps no reconnect buffer): only the second message exists,
	// with its event.
	bustest.Eventually(t, 10*time.Second, func() error {
		if !e.bus.Conn.IsConnected() {
			return errors.New("test connection not back yet")
		}
		return nil
	})
	if ids := e.messageIDs(t); len(ids) != 1 {
		t.Errorf("message rows %v, want only the one sent once the bus was back", ids)
	}
	events := map[string]bool{}
	for _, m := range e.streamMsgs(t, bus.StreamAccepted) {
		events[m.msgID] = true
	}
	for _, id := range e.messageIDs(t) {
		if !events[id] {
			t.Errorf("message %s has no MessageAccepted", id)
		}
	}
}

func (e *env) messageIDs(t *testing.T) []string {
	t.Helper()
	rows, err := e.db.Pool.Query(context.Background(), `SELECT id::text FROM ingest.messages`)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// The partner API's Encoding and lib/gsm's share their values, so each
// converts to the other by a type conversion.
func TestEncodingValuesMatchTheAPI(t *testing.T) {
	for _, tt := range []struct {
		gsm  gsm.Encoding
		want partnerv1.Encoding
	}{
		{gsm.GSM7, partnerv1.Encoding_ENCODING_GSM7},
		{gsm.UCS2, partnerv1.Encoding_ENCODING_UCS2},
		{gsm.Binary, partnerv1.Encoding_ENCODING_BINARY},
	} {
		if got := partnerv1.Encoding(tt.gsm); got != tt.want {
			t.Errorf("%v converts to %v, want %v", tt.gsm, got, tt.want)
		}
	}
}

// A message published but whose row was never committed (ingest killed,
// or PostgreSQL stopped, between the publish and the commit) is not sent
// twice when the partner retries with its client reference: the retry
// publishes the same id, stored once.
func TestSendMessageRetryAfterLostCommit(t *testing.T) {
	e := start(t)
	req := sendReq("06 12 34 56 78", "Votre commande 4321 est partie.")
	req.Category = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP
	req.ClientReference = "order-4321-shipped"
	first := e.send(t, req)
	// The commit that never happened.
	if _, err := e.db.Pool.Exec(context.Background(), `DELETE FROM ingest.messages WHERE id = $1`, first.GetMessageId()); err != nil {
		t.Fatal(err)
	}
	second := e.send(t, req)
	if second.GetMessageId() != first.GetMessageId() {
		t.Errorf("the retry got message %s, want %s again", second.GetMessageId(), first.GetMessageId())
	}
	if n := len(e.streamMsgs(t, bus.StreamAccepted)); n != 1 {
		t.Errorf("%d MessageAccepted, want 1", n)
	}
	// Without a reference a retry is another message.
	req.ClientReference = ""
	if a, b := e.send(t, req), e.send(t, req); a.GetMessageId() == b.GetMessageId() {
		t.Error("two sends without a reference got one message id")
	}
}
