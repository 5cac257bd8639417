package compliance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/config"
	"pushsms.io/lib/policy"
	"pushsms.io/lib/telemetry"
	"pushsms.io/lib/telemetry/telemetrytest"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
	"pushsms.io/services/compliance"
)

const wait = 15 * time.Second

const (
	marketing = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING
	m2m       = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_M2M
)

type env struct {
	addr string
	pub  *bus.Bus
	log  *telemetrytest.Buffer
}

// workday is the clock of the tests that are not about the sending window:
// a Tuesday morning in Paris, when every message may go.
var workday = time.Date(2026, time.November, 24, 9, 0, 0, 0, time.FixedZone("CET", 3600))

// start runs the service at the workday clock; see startAt.
func start(t *testing.T) env {
	t.Helper()
	return startAt(t, workday)
}

// startAt runs the service with its clock stopped at now, logging at debug
// level into env.log, on a fresh bus; it is stopped when t ends. The
// policy is the default one but for the frequency cap (these tests send
// many marketing messages to one number) and the STOP mention and brand
// in the text: these tests are about numbering, ranges, the window and
// segments, with short texts; the content rules have their own tests
// (content_test.go) and TestContentRulesInService.
func startAt(t *testing.T, now time.Time) env {
	t.Helper()
	return serve(t, bustest.Start(t), func() time.Time { return now }, func(c *compliance.Config) {
		c.Policy.Frequency.Cap = 0
		c.Policy.Content.StopMention = false
		c.Policy.Content.BrandInText = false
	})
}

// serve runs one compliance service on srv with the clock now and the
// default configuration changed by set; several may share one server, as
// replicas do. It is stopped when t ends.
func serve(t *testing.T, srv *bustest.Server, now func() time.Time, set func(*compliance.Config)) env {
	t.Helper()
	logs := &telemetrytest.Buffer{}
	logger, err := telemetry.NewLogger(logs, "debug", "json")
	if err != nil {
		t.Fatal(err)
	}
	cfg := compliance.DefaultConfig()
	cfg.Bus.URL = srv.URL()
	cfg.GRPCAddr, cfg.Telemetry.MetricsAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Telemetry = telemetry.Config{Logger: logger}
	if set != nil {
		set(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := compliance.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if s.Addr() == "" {
		t.Error("no gRPC address")
	}
	compliance.SetClock(s, now)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return env{addr: s.Addr(), pub: bustest.Connect(t, srv), log: logs}
}

// accepted is a message accepted at the workday clock, valid 48 hours.
func accepted(id, recipient string, cat partnerv1.TrafficCategory, text string) *eventsv1.MessageAccepted {
	now := workday
	return &eventsv1.MessageAccepted{
		MessageId:    id,
		TenantId:     "acme",
		CampaignId:   "camp-1",
		ShortCode:    "36123",
		Brand:        "Acme",
		Category:     cat,
		Recipient:    recipient,
		Text:         text,
		AcceptedAt:   timestamppb.New(now),
		ExpiresAt:    timestamppb.New(now.Add(48 * time.Hour)),
		Encoding:     partnerv1.Encoding_ENCODING_GSM7,
		SegmentCount: 1,
	}
}

// publish publishes m as ingest does, with msgID as its Nats-Msg-Id.
func (e env) publish(t *testing.T, m *eventsv1.MessageAccepted, msgID string) {
	t.Helper()
	if err := e.pub.Publish(context.Background(), bus.AcceptedSubject(m.GetTenantId(), m.GetShortCode()), m, msgID); err != nil {
		t.Fatal(err)
	}
}

// idle waits until the compliance consumer was handed n events and holds
// none.
func (e env) idle(t *testing.T, n uint64) {
	t.Helper()
	bustest.WaitIdle(t, e.pub, bus.StreamAccepted, compliance.Name, n, wait)
}

// output is one event compliance stored.
type output struct {
	msgID string
	// traceparent is the W3C trace context the event carries.
	traceparent string
	subject     string
	cleared     *eventsv1.MessageCleared
	rejected    *eventsv1.MessageRejected
}

// outputs reads every event of SMS_CLEARED and SMS_REPORTS, by message id.
// A message id seen twice fails the test.
func (e env) outputs(t *testing.T) map[string]output {
	t.Helper()
	ctx := context.Background()
	out := map[string]output{}
	for _, name := range []string{bus.StreamCleared, bus.StreamReports} {
		st, err := e.pub.JS.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
			raw, err := st.GetMsg(ctx, seq)
			if err != nil {
				t.Fatal(err)
			}
			o := output{msgID: raw.Header.Get(bus.HeaderMsgID), subject: raw.Subject, traceparent: raw.Header.Get("traceparent")}
			var id string
			switch typ := raw.Header.Get(bus.HeaderType); typ {
			case "pushsms.events.v1.MessageCleared":
				o.cleared = &eventsv1.MessageCleared{}
				if err := proto.Unmarshal(raw.Data, o.cleared); err != nil {
					t.Fatal(err)
				}
				id = o.cleared.GetMessage().GetMessageId()
			case "pushsms.events.v1.MessageRejected":
				o.rejected = &eventsv1.MessageRejected{}
				if err := proto.Unmarshal(raw.Data, o.rejected); err != nil {
					t.Fatal(err)
				}
				id = o.rejected.GetMessageId()
			default:
				t.Fatalf("%s: unexpected event type %q", raw.Subject, typ)
			}
			if prev, dup := out[id]; dup {
				t.Errorf("%s: second output %s after %s", id, o.msgID, prev.msgID)
			}
			out[id] = o
		}
	}
	return out
}

func TestDecisions(t *testing.T) {
	e := start(t)
	const ok = partnerv1.Reason_REASON_UNSPECIFIED
	tests := []struct {
		name      string
		recipient string
		category  partnerv1.TrafficCategory
		reason    partnerv1.Reason
		e164      string
	}{
		{"06 national", "06 07 12 34 56", marketing, ok, "+33607123456"},
		{"07 national dotted", "07.70.12.34.56", marketing, ok, "+33770123456"},
		{"+33 6", "+33 6 07 12 34 56", marketing, ok, "+33607123456"},
		{"+33 (0)7", "+33 (0)7 72 01 23 45", marketing, ok, "+33772012345"},
		{"0033", "0033607123456", marketing, ok, "+33607123456"},
		{"33 without plus", "33607123456", marketing, ok, "+33607123456"},
		{"+33 1 fixed line", "+33 1 23 45 67 89", marketing, partnerv1.Reason_REASON_NOT_MOBILE, ""},
		{"08 special rate", "08 92 12 34 56", marketing, partnerv1.Reason_REASON_NOT_MOBILE, ""},
		{"+262 Reunion", "+262 692 12 34 56", marketing, partnerv1.Reason_REASON_OVERSEAS, ""},
		{"0690 Guadeloupe", "0690 12 34 56", marketing, partnerv1.Reason_REASON_OVERSEAS, ""},
		{"Mayotte 06 39 written under +33", "+33 6 39 00 12 34", marketing, partnerv1.Reason_REASON_OVERSEAS, ""},
		{"Mayotte 06 39 national form", "06 39 00 12 34", marketing, partnerv1.Reason_REASON_OVERSEAS, ""},
		{"+32 Belgium", "+32 470 12 34 56", marketing, partnerv1.Reason_REASON_NOT_FRENCH, ""},
		{"0032 Belgium", "0032 470 12 34 56", marketing, partnerv1.Reason_REASON_NOT_FRENCH, ""},
		{"0700 M2M in marketing", "07 00 00 01 23 45 67", marketing, partnerv1.Reason_REASON_M2M_NUMBER, ""},
		{"0700 M2M in M2M", "07 00 00 01 23 45 67", m2m, ok, "+337000001234567"},
		{"06 in M2M", "06 07 12 34 56", m2m, ok, "+33607123456"},
		// Network: the block holder must be Orange (FRTE).
		{"SFR block", "06 12 34 56 78", marketing, partnerv1.Reason_REASON_NOT_ON_NETWORK, ""},
		{"Bouygues block", "06 98 76 54 32", marketing, partnerv1.Reason_REASON_NOT_ON_NETWORK, ""},
		{"Free block", "07 81 23 45 67", marketing, partnerv1.Reason_REASON_NOT_ON_NETWORK, ""},
		{"SFR M2M block", "07 00 00 11 23 45 67", m2m, partnerv1.Reason_REASON_NOT_ON_NETWORK, ""},
		// Short-code range: the component test sends from 36123 (38123 for M2M).
		{"customer relationship on 36xxx", "06 07 12 34 56", partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP, ok, "+33607123456"},
		{"interpersonal on 36xxx", "06 07 12 34 56", partnerv1.TrafficCategory_TRAFFIC_CATEGORY_INTERPERSONAL, partnerv1.Reason_REASON_SHORT_CODE_RANGE, ""},
		{"MO-session reply on 36xxx", "06 07 12 34 56", partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MO_SESSION_REPLY, partnerv1.Reason_REASON_SHORT_CODE_RANGE, ""},
		{"0600x routing prefix", "06 00 12 34 56", marketing, partnerv1.Reason_REASON_ROUTING_PREFIX, ""},
		{"garbage", "call me maybe", marketing, partnerv1.Reason_REASON_INVALID_NUMBER, ""},
		{"empty", "", marketing, partnerv1.Reason_REASON_INVALID_NUMBER, ""},
		{"nine digits", "612345678", marketing, partnerv1.Reason_REASON_INVALID_NUMBER, ""},
		{"too short", "06 12 34", marketing, partnerv1.Reason_REASON_INVALID_NUMBER, ""},
	}
	inputs := map[string]*eventsv1.MessageAccepted{}
	for i, tt := range tests {
		m := accepted(fmt.Sprintf("msg-%02d", i), tt.recipient, tt.category, "Soldes -50% ce week-end. STOP 36123")
		if tt.category == m2m {
			m.ShortCode = "38123" // 38ABC: functional MTs to M2M SIMs
		}
		inputs[m.MessageId] = m
		e.publish(t, m, m.MessageId)
		// The same event again with another Nats-Msg-Id: the bus stores it,
		// as after a crash of ingest between its commit and its publish
		// confirmation; compliance must still publish one output.
		e.publish(t, m, m.MessageId+"#again")
	}
	expired := accepted("msg-expired", "06 07 12 34 56", marketing, "Trop tard")
	expired.ExpiresAt = timestamppb.New(workday.Add(-time.Minute))
	inputs[expired.MessageId] = expired
	e.publish(t, expired, expired.MessageId)

	e.idle(t, uint64(2*len(tests)+1))
	out := e.outputs(t)
	if len(out) != len(inputs) {
		t.Errorf("got %d outputs, want %d", len(out), len(inputs))
	}

	check := func(name string, in *eventsv1.MessageAccepted, reason partnerv1.Reason, e164 string) {
		t.Helper()
		o, found := out[in.MessageId]
		if !found {
			t.Errorf("%s: no output", name)
			return
		}
		if reason != ok {
			if o.rejected == nil {
				t.Errorf("%s: got cleared to %s, want rejected %s", name, o.cleared.GetRecipientE164(), reason)
				return
			}
			checkRejected(t, name, in, o, reason)
			return
		}
		if o.cleared == nil {
			t.Errorf("%s: got rejected %s (%s), want cleared", name, o.rejected.GetReason(), o.rejected.GetDetail())
			return
		}
		checkCleared(t, name, in, o, e164, 1)
	}
	for i, tt := range tests {
		check(tt.name, inputs[fmt.Sprintf("msg-%02d", i)], tt.reason, tt.e164)
	}
	check("expired", expired, partnerv1.Reason_REASON_VALIDITY_EXPIRED, "")

	// Decisions are logged at debug level, never with a number in clear.
	bustest.Eventually(t, wait, func() error {
		logs := e.log.String()
		if !strings.Contains(logs, `"msg":"message cleared"`) || !strings.Contains(logs, `"msg":"message rejected"`) {
			return fmt.Errorf("no decision in the logs:\n%s", logs)
		}
		return nil
	})
	logs := e.log.String()
	for _, tt := range tests {
		for _, s := range []string{tt.e164, digits(tt.recipient)} {
			if len(s) >= 6 && strings.Contains(logs, s) {
				t.Errorf("%s: the logs hold the number %q in clear", tt.name, s)
			}
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if strings.Contains(line, `"msg":"message cleared"`) || strings.Contains(line, `"msg":"message rejected"`) {
			if !strings.Contains(line, `"level":"DEBUG"`) {
				t.Errorf("decision not at debug level: %s", line)
			}
		}
	}
}

func checkRejected(t *testing.T, name string, in *eventsv1.MessageAccepted, o output, reason partnerv1.Reason) {
	t.Helper()
	r := o.rejected
	if want := in.MessageId + "/rejected"; o.msgID != want {
		t.Errorf("%s: Nats-Msg-Id %q, want %q", name, o.msgID, want)
	}
	if want := bus.ReportSubject("rejected", in.TenantId, in.ShortCode); o.subject != want {
		t.Errorf("%s: subject %q, want %q", name, o.subject, want)
	}
	if r.GetAt() == nil {
		t.Errorf("%s: no time", name)
	}
	if r.GetDetail() == "" {
		t.Errorf("%s: no detail", name)
	}
	if d := digits(in.Recipient); len(d) >= 6 && strings.Contains(digits(r.GetDetail()), d[len(d)-6:]) {
		t.Errorf("%s: detail %q holds the number", name, r.GetDetail())
	}
	d := r.GetDecision()
	if d.GetOutcome() != partnerv1.DecisionOutcome_DECISION_OUTCOME_REFUSED || d.GetReason() != reason ||
		d.GetDetail() != r.GetDetail() || !proto.Equal(d.GetDecidedAt(), r.GetAt()) || d.GetNotBefore() != nil {
		t.Errorf("%s: decision %v, want refused for %s with the event's detail and time", name, d, reason)
	}
	if rules := ruleOf[reason]; !slices.Contains(rules, d.GetRule()) {
		t.Errorf("%s: decided by rule %q, want one of %v", name, d.GetRule(), rules)
	}
	if d.GetSource() == "" {
		t.Errorf("%s: decision without a source", name)
	}
	if d.GetPolicyVersion() != policy.Default().Version {
		t.Errorf("%s: policy version %q, want the default's %q", name, d.GetPolicyVersion(), policy.Default().Version)
	}
	want := &eventsv1.MessageRejected{
		MessageId:  in.MessageId,
		TenantId:   in.TenantId,
		CampaignId: in.CampaignId,
		ShortCode:  in.ShortCode,
		Reason:     reason,
		Detail:     r.GetDetail(),
		At:         r.GetAt(),
		Decision:   d,
	}
	if !proto.Equal(r, want) {
		t.Errorf("%s: got %v, want %v", name, r, want)
	}
}

// ruleOf are the rules that may refuse for a reason (docs/rules.md).
var ruleOf = map[partnerv1.Reason][]string{
	partnerv1.Reason_REASON_INVALID_NUMBER:   {"numbering"},
	partnerv1.Reason_REASON_NOT_FRENCH:       {"numbering"},
	partnerv1.Reason_REASON_NOT_MOBILE:       {"numbering"},
	partnerv1.Reason_REASON_OVERSEAS:         {"numbering"},
	partnerv1.Reason_REASON_M2M_NUMBER:       {"numbering"},
	partnerv1.Reason_REASON_ROUTING_PREFIX:   {"numbering"},
	partnerv1.Reason_REASON_SHORT_CODE_RANGE: {"shortcode_range", "shortcode_option"},
	partnerv1.Reason_REASON_NOT_ON_NETWORK:   {"network"},
	partnerv1.Reason_REASON_VALIDITY_EXPIRED: {"validity", "window"},
	partnerv1.Reason_REASON_FREQUENCY_CAP:    {"frequency"},
	partnerv1.Reason_REASON_CONTENT:          {"length"},
}

// checkCleared checks a cleared message. Its decision is accepted, or
// deferred by the window rule to the message's not_before.
func checkCleared(t *testing.T, name string, in *eventsv1.MessageAccepted, o output, e164 string, segments int) {
	t.Helper()
	c := o.cleared
	d := c.GetDecision()
	switch d.GetOutcome() {
	case partnerv1.DecisionOutcome_DECISION_OUTCOME_ACCEPTED:
		if d.GetRule() != "" || d.GetReason() != partnerv1.Reason_REASON_UNSPECIFIED || d.GetNotBefore() != nil {
			t.Errorf("%s: accepted with %v", name, d)
		}
	case partnerv1.DecisionOutcome_DECISION_OUTCOME_DEFERRED:
		if d.GetRule() != "window" || d.GetSource() == "" || !proto.Equal(d.GetNotBefore(), c.GetMessage().GetNotBefore()) {
			t.Errorf("%s: deferred with %v, want rule window until the message's not_before %v", name, d, c.GetMessage().GetNotBefore())
		}
	default:
		t.Errorf("%s: cleared with decision %v", name, d)
	}
	if d.GetPolicyVersion() != policy.Default().Version || !proto.Equal(d.GetDecidedAt(), c.GetClearedAt()) {
		t.Errorf("%s: decision of policy %q at %v, want %q at the clearing time", name, d.GetPolicyVersion(), d.GetDecidedAt(), policy.Default().Version)
	}
	if want := in.MessageId + "/cleared"; o.msgID != want {
		t.Errorf("%s: Nats-Msg-Id %q, want %q", name, o.msgID, want)
	}
	if want := bus.ClearedSubject(in.TenantId, in.ShortCode); o.subject != want {
		t.Errorf("%s: subject %q, want %q", name, o.subject, want)
	}
	if c.GetRecipientE164() != e164 {
		t.Errorf("%s: recipient %q, want %q", name, c.GetRecipientE164(), e164)
	}
	if !proto.Equal(c.GetMessage(), in) {
		t.Errorf("%s: message %v, want the accepted one %v", name, c.GetMessage(), in)
	}
	if c.GetClearedAt() == nil {
		t.Errorf("%s: no time", name)
	}
	if len(c.GetSegments()) != segments {
		t.Errorf("%s: %d segments, want %d", name, len(c.GetSegments()), segments)
	}
}

func digits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestSegments(t *testing.T) {
	e := start(t)
	// ê is not in GSM-7 and the French policy keeps accents: UCS-2, 67
	// characters per part, so 150 characters make 3 parts.
	long := strings.Repeat("Fête des mères ", 10)
	tests := []struct {
		name     string
		text     string
		encoding partnerv1.Encoding
		parts    int
	}{
		{"short GSM-7", "Votre code : 123456", partnerv1.Encoding_ENCODING_GSM7, 1},
		{"160 GSM-7", strings.Repeat("a", 160), partnerv1.Encoding_ENCODING_GSM7, 1},
		{"161 GSM-7", strings.Repeat("a", 161), partnerv1.Encoding_ENCODING_GSM7, 2},
		{"typography kept GSM-7", "C’est l’été… «\u00a0Soldes\u00a0»", partnerv1.Encoding_ENCODING_GSM7, 1},
		{"3-part UCS-2", long, partnerv1.Encoding_ENCODING_UCS2, 3},
	}
	inputs := make([]*eventsv1.MessageAccepted, len(tests))
	for i, tt := range tests {
		m := accepted(fmt.Sprintf("seg-%d", i), "06 07 12 34 56", marketing, tt.text)
		m.Encoding, m.SegmentCount = tt.encoding, int32(tt.parts)
		inputs[i] = m
		e.publish(t, m, m.MessageId)
		e.publish(t, m, m.MessageId+"#again")
	}
	e.idle(t, uint64(2*len(tests)))
	out := e.outputs(t)
	for i, tt := range tests {
		o := out[inputs[i].MessageId]
		if o.cleared == nil {
			t.Errorf("%s: not cleared: %v", tt.name, o.rejected)
			continue
		}
		checkCleared(t, tt.name, inputs[i], o, "+33607123456", tt.parts)
		segs := o.cleared.GetSegments()
		var ref byte
		var ucs2 []uint16
		for j, s := range segs {
			if s.GetIndex() != int32(j+1) || s.GetCount() != int32(tt.parts) || s.GetEncoding() != tt.encoding {
				t.Errorf("%s: segment %d is %d/%d %s, want %d/%d %s", tt.name, j, s.GetIndex(), s.GetCount(), s.GetEncoding(), j+1, tt.parts, tt.encoding)
			}
			if tt.parts == 1 {
				if len(s.GetUdh()) != 0 {
					t.Errorf("%s: single segment has UDH % x", tt.name, s.GetUdh())
				}
			} else {
				udh := s.GetUdh()
				if j == 0 && len(udh) == 6 {
					ref = udh[3]
				}
				if want := []byte{5, 0, 3, ref, byte(tt.parts), byte(j + 1)}; !bytes.Equal(udh, want) {
					t.Errorf("%s: segment %d UDH % x, want % x", tt.name, j+1, udh, want)
				}
			}
			if tt.encoding == partnerv1.Encoding_ENCODING_UCS2 {
				ud := s.GetUserData()
				if len(ud) > 134 {
					t.Errorf("%s: segment %d has %d octets of user data, want at most 134", tt.name, j+1, len(ud))
				}
				for k := 0; k+1 < len(ud); k += 2 {
					ucs2 = append(ucs2, uint16(ud[k])<<8|uint16(ud[k+1]))
				}
			}
		}
		if tt.encoding == partnerv1.Encoding_ENCODING_UCS2 {
			if got := string(utf16.Decode(ucs2)); got != tt.text {
				t.Errorf("%s: segments hold %q, want %q", tt.name, got, tt.text)
			}
		}
	}
}

// A text longer than 255 parts cannot be sent: it is rejected, not lost.
func TestTooLongIsRejected(t *testing.T) {
	e := start(t)
	m := accepted("too-long", "06 07 12 34 56", marketing, strings.Repeat("ê", 67*255+1))
	e.publish(t, m, m.MessageId)
	e.idle(t, 1)
	o := e.outputs(t)[m.MessageId]
	if o.rejected == nil {
		t.Fatalf("got %v, want rejected", o.cleared)
	}
	checkRejected(t, "too long", m, o, partnerv1.Reason_REASON_CONTENT)
}

// A marketing message checked on a Sunday is not rejected but deferred to
// Monday 08:00 Paris time; other categories go at once; a marketing
// message whose validity ends before Monday 08:00 is rejected.
func TestSendingWindow(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	sunday := time.Date(2026, time.November, 29, 15, 0, 0, 0, paris)
	monday8 := time.Date(2026, time.November, 30, 8, 0, 0, 0, paris)
	e := startAt(t, sunday)

	mkt := accepted("sunday-marketing", "06 07 12 34 56", marketing, "Soldes !")
	crm := accepted("sunday-crm", "06 07 12 34 56", partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP, "Votre colis arrive")
	short := accepted("sunday-marketing-short", "06 07 12 34 56", marketing, "Vente flash ce soir")
	short.ExpiresAt = timestamppb.New(sunday.Add(6 * time.Hour))
	for _, m := range []*eventsv1.MessageAccepted{mkt, crm} {
		m.AcceptedAt, m.ExpiresAt = timestamppb.New(sunday), timestamppb.New(sunday.Add(48*time.Hour))
	}
	short.AcceptedAt = timestamppb.New(sunday)
	for _, m := range []*eventsv1.MessageAccepted{mkt, crm, short} {
		e.publish(t, m, m.MessageId)
	}
	e.idle(t, 3)
	out := e.outputs(t)

	o := out[mkt.MessageId]
	if o.cleared == nil {
		t.Fatalf("marketing on sunday: got %v, want cleared", o.rejected)
	}
	if got := o.cleared.GetMessage().GetNotBefore(); got == nil || !got.AsTime().Equal(monday8) {
		t.Errorf("marketing on sunday: not_before %v, want %v", got.AsTime(), monday8)
	}
	want := proto.Clone(mkt).(*eventsv1.MessageAccepted)
	want.NotBefore = timestamppb.New(monday8)
	checkCleared(t, "marketing on sunday", want, o, "+33607123456", 1)
	if got := o.cleared.GetDecision().GetOutcome(); got != partnerv1.DecisionOutcome_DECISION_OUTCOME_DEFERRED {
		t.Errorf("marketing on sunday: outcome %s, want deferred", got)
	}

	o = out[crm.MessageId]
	if o.cleared == nil {
		t.Fatalf("customer relationship on sunday: got %v, want cleared", o.rejected)
	}
	if o.cleared.GetMessage().GetNotBefore() != nil {
		t.Errorf("customer relationship on sunday: not_before %v, want none", o.cleared.GetMessage().GetNotBefore().AsTime())
	}
	checkCleared(t, "customer relationship on sunday", crm, o, "+33607123456", 1)
	if got := o.cleared.GetDecision().GetOutcome(); got != partnerv1.DecisionOutcome_DECISION_OUTCOME_ACCEPTED {
		t.Errorf("customer relationship on sunday: outcome %s, want accepted", got)
	}

	o = out[short.MessageId]
	if o.rejected == nil {
		t.Fatalf("marketing expiring sunday night: got %v, want rejected", o.cleared)
	}
	checkRejected(t, "marketing expiring sunday night", short, o, partnerv1.Reason_REASON_VALIDITY_EXPIRED)
	if d := o.rejected.GetDetail(); !strings.Contains(d, "validity") {
		t.Errorf("marketing expiring sunday night: detail %q does not tell the validity", d)
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := compliance.DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
	for _, tt := range []struct {
		name string
		edit func(*compliance.Config)
	}{
		{"0 workers", func(c *compliance.Config) { c.Workers = 0 }},
		{"no gRPC address", func(c *compliance.Config) { c.GRPCAddr = "" }},
		{"window closing before it opens", func(c *compliance.Config) {
			c.Policy.Window.Open, c.Policy.Window.Close = policy.Clock(22*time.Hour), policy.Clock(8*time.Hour)
		}},
		{"network check without an operator", func(c *compliance.Config) { c.Policy.Network.Operator = "" }},
		{"no short-code range", func(c *compliance.Config) { c.Policy.ShortCodeRanges = nil }},
		{"no policy at all", func(c *compliance.Config) { c.Policy = policy.Policy{} }},
	} {
		cfg := compliance.DefaultConfig()
		tt.edit(&cfg)
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: got no error", tt.name)
		}
	}
	cfg.Policy.Network.Check, cfg.Policy.Network.Operator = false, ""
	if err := cfg.Validate(); err != nil {
		t.Errorf("no network check, no operator: %v", err)
	}
}

// The policy comes from a file named by -policy or COMPLIANCE_POLICY, so
// the aggregator changes the rules without code; a bad file stops the
// start with the file's error.
func TestPolicyFlag(t *testing.T) {
	p := policy.Default()
	p.Version = "acme-2026-12"
	p.Window.Close = policy.Clock(21*time.Hour + 30*time.Minute)
	p.ShortCodeRanges["38"] = []string{"m2m", "customer_relationship"}
	p.Network.Operator = "SFR0"
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(good, b, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"version": "x", "window": {"open": "8h"}}`), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := compliance.DefaultConfig()
	fs := flag.NewFlagSet("compliance", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	env := map[string]string{"COMPLIANCE_POLICY": good}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := config.ParseEnv(fs, "COMPLIANCE", nil, lookup); err != nil {
		t.Fatal(err)
	}
	if cfg.Policy.Version != "acme-2026-12" || cfg.Policy.Window.Close != p.Window.Close ||
		cfg.Policy.Network.Operator != "SFR0" || len(cfg.Policy.ShortCodeRanges["38"]) != 2 {
		t.Errorf("got policy %+v, want the file's", cfg.Policy)
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
	if err := fs.Set("policy", bad); err == nil || !strings.Contains(err.Error(), "HH:MM") {
		t.Errorf("-policy %s: got %v, want the file's error", bad, err)
	}
	if err := fs.Set("policy", filepath.Join(dir, "missing.json")); err == nil {
		t.Error("-policy on a missing file: got no error")
	}
}

// A policy pushed to the bucket applies to the next message without a
// restart, and every decision records the version that took it; a bucket
// policy present at start wins over the file.
func TestPolicyHotReload(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	// Friday 21:45: inside the offer's window, outside the af2m charter's.
	friday := time.Date(2026, time.November, 27, 21, 45, 0, 0, paris)
	saturday8 := time.Date(2026, time.November, 28, 8, 0, 0, 0, paris)
	srv := bustest.Start(t)
	relaxed := func(c *compliance.Config) {
		c.Policy.Frequency.Cap = 0
		c.Policy.Content.StopMention = false
		c.Policy.Content.BrandInText = false
	}
	e := serve(t, srv, func() time.Time { return friday }, relaxed)
	ctx := context.Background()

	send := func(id string) *eventsv1.MessageAccepted {
		m := accepted(id, "06 07 12 34 56", marketing, "Soldes !")
		m.AcceptedAt, m.ExpiresAt = timestamppb.New(friday), timestamppb.New(friday.Add(48*time.Hour))
		e.publish(t, m, m.MessageId)
		return m
	}
	send("before")
	e.idle(t, 1)

	charter := policy.Default()
	charter.Version = "af2m-2026"
	charter.Window.Close = policy.Clock(21*time.Hour + 30*time.Minute)
	charter.Frequency.Cap, charter.Content.StopMention, charter.Content.BrandInText = 0, false, false
	if err := policy.Put(ctx, e.pub, charter); err != nil {
		t.Fatal(err)
	}
	// The service logs the rules in force once it has compiled them.
	bustest.Eventually(t, time.Second, func() error {
		if !strings.Contains(e.log.String(), `"policy_version":"af2m-2026"`) {
			return fmt.Errorf("policy af2m-2026 not in force yet")
		}
		return nil
	})
	send("after")
	e.idle(t, 2)

	// A replica started now reads the bucket, not its file.
	e2 := serve(t, srv, func() time.Time { return friday }, relaxed)
	_ = e2

	out := e.outputs(t)
	before, after := out["before"].cleared, out["after"].cleared
	if before == nil || after == nil {
		t.Fatalf("got %v and %v, want both cleared", out["before"], out["after"])
	}
	if d := before.GetDecision(); d.GetOutcome() != partnerv1.DecisionOutcome_DECISION_OUTCOME_ACCEPTED || d.GetPolicyVersion() != policy.Default().Version {
		t.Errorf("before the push: decision %v, want accepted under %s", d, policy.Default().Version)
	}
	d := after.GetDecision()
	if d.GetOutcome() != partnerv1.DecisionOutcome_DECISION_OUTCOME_DEFERRED || d.GetRule() != "window" ||
		!d.GetNotBefore().AsTime().Equal(saturday8) || d.GetPolicyVersion() != "af2m-2026" {
		t.Errorf("after the push: decision %v, want deferred by window to %v under af2m-2026", d, saturday8)
	}
	if !strings.Contains(e2.log.String(), `"policy_version":"af2m-2026"`) {
		t.Errorf("a replica started after the push does not use the bucket's policy: %s", e2.log.String())
	}
}

// A campaign batch is decided message by message, as single events are: a
// message that can never be decided does not hold back the others, and a
// batch delivered again publishes nothing new.
func TestCampaignBatch(t *testing.T) {
	e := start(t)
	ok := accepted("batch-ok", "06 07 12 34 56", marketing, "Soldes -20 %")
	fixed := accepted("batch-fixed", "+33 1 23 45 67 89", marketing, "Soldes -20 %")
	noID := accepted("", "06 07 12 34 57", marketing, "Soldes -20 %")
	last := accepted("batch-last", "06 07 12 34 58", marketing, "Soldes -20 %")
	// The message's own trace, as ingest starts it.
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	ok.Traceparent = "00-" + traceID + "-00f067aa0ba902b7-01"
	b := &eventsv1.CampaignBatch{Messages: []*eventsv1.MessageAccepted{ok, fixed, noID, last}}
	subject := bus.AcceptedSubject("acme", "36123")
	for _, id := range []string{"batch", "batch#again"} {
		if err := e.pub.Publish(context.Background(), subject, b, id); err != nil {
			t.Fatal(err)
		}
	}
	e.idle(t, 2)
	out := e.outputs(t)
	if len(out) != 3 {
		t.Errorf("%d messages decided, want 3 (the one without an id skipped)", len(out))
	}
	for _, m := range []*eventsv1.MessageAccepted{ok, last} {
		if o := out[m.GetMessageId()]; o.cleared == nil {
			t.Errorf("%s: not cleared: %v", m.GetMessageId(), o.rejected)
		} else {
			// The accepted message as cleared: its traceparent moves to
			// the event's headers.
			want := proto.CloneOf(m)
			want.Traceparent = ""
			checkCleared(t, m.GetMessageId(), want, o, o.cleared.GetRecipientE164(), 1)
		}
	}
	if tp := out["batch-ok"].traceparent; !strings.Contains(tp, "-"+traceID+"-") {
		t.Errorf("cleared in trace %q, want the message's own trace %s", tp, traceID)
	}
	if tp := out["batch-ok"].cleared.GetMessage().GetTraceparent(); tp != "" {
		t.Errorf("MessageCleared still carries the message's traceparent %q: its headers do", tp)
	}
	if tp := out["batch-last"].traceparent; tp == "" || strings.Contains(tp, traceID) {
		t.Errorf("a message without a trace context cleared in trace %q, want a trace of its own", tp)
	}
	if o := out["batch-fixed"]; o.rejected.GetReason() != partnerv1.Reason_REASON_NOT_MOBILE {
		t.Errorf("fixed line: %v, want rejected NOT_MOBILE", o.rejected)
	}
}
