package smsclink_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/gsm"
	"pushsms.io/lib/numplan"
	"pushsms.io/lib/rate"
	"pushsms.io/lib/smscsim"
	"pushsms.io/lib/telemetry"
	"pushsms.io/lib/telemetry/telemetrytest"
	"pushsms.io/lib/ucp"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
	smsclink "pushsms.io/services/smsc-link"
)

const (
	wait      = 15 * time.Second
	shortCode = "36000"
	password  = "secret"
	recipient = "+33612345678"
	tenant    = "acme"
)

type env struct {
	t   testing.TB
	srv *bustest.Server
	sim *smscsim.Sim
	pub *bus.Bus
	cfg smsclink.Config
	log *telemetrytest.Buffer
	// spans records the service's spans.
	spans *tracetest.SpanRecorder
	svc   *smsclink.Service
	// stop stops the running service.
	stop func()
}

// start runs the simulator, a bus and the service, stopped when t ends.
// tweak adjusts the service's configuration.
func start(t testing.TB, simCfg smscsim.Config, tweak func(*smsclink.Config)) *env {
	t.Helper()
	e := newEnv(t, simCfg, tweak)
	e.startService()
	return e
}

// newEnv is start without starting the service.
func newEnv(t testing.TB, simCfg smscsim.Config, tweak func(*smsclink.Config)) *env {
	t.Helper()
	srv := bustest.Start(t)
	if simCfg.Accounts == nil {
		simCfg.Accounts = []smscsim.Account{{ShortCode: shortCode, Password: password}}
	}
	if simCfg.DR.Delay == 0 {
		simCfg.DR.Delay = 20 * time.Millisecond
	}
	sim := smscsim.New(simCfg)
	if err := sim.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })

	cfg := smsclink.DefaultConfig()
	cfg.Bus.URL = srv.URL()
	cfg.GRPCAddr, cfg.Telemetry.MetricsAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.SMSCAddr = sim.Addr()
	cfg.Accounts = smsclink.AccountList{{ShortCode: shortCode, Password: password}}
	cfg.Timezone = "UTC" // the simulator's
	cfg.AckTimeout = 2 * time.Second
	// The guard's own tests set a contract; the others test other things.
	cfg.DefaultRate = rate.MaxRate
	if tweak != nil {
		tweak(&cfg)
	}
	e := &env{t: t, srv: srv, sim: sim, cfg: cfg, log: &telemetrytest.Buffer{}, pub: bustest.Connect(t, srv), spans: tracetest.NewSpanRecorder()}
	t.Cleanup(func() {
		if e.stop != nil {
			e.stop()
		}
		if t.Failed() {
			t.Logf("service log:\n%s", e.log.String())
		}
	})
	return e
}

func (e *env) startService() {
	t := e.t
	t.Helper()
	logger, err := telemetry.NewLogger(e.log, "debug", "json")
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.cfg
	// Without a recorder (benchmarks), spans are sampled out as with
	// -trace-ratio 0: what production pays for a trace it does not keep.
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	if e.spans != nil {
		tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(e.spans))
	}
	cfg.Telemetry = telemetry.Config{Logger: logger, TracerProvider: tp, MetricsAddr: "127.0.0.1:0"}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := smsclink.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	e.svc = s
	e.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		e.stop = nil
	}
}

// submitEvent is a SegmentSubmit as throttle publishes it.
func submitEvent(id string, seg *eventsv1.Segment) *eventsv1.SegmentSubmit {
	now := time.Now()
	return &eventsv1.SegmentSubmit{
		MessageId:     id,
		TenantId:      tenant,
		CampaignId:    "camp-1",
		ShortCode:     shortCode,
		Category:      partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING,
		RecipientE164: recipient,
		Segment:       seg,
		ExpiresAt:     timestamppb.New(now.Add(48 * time.Hour)),
		ReleasedAt:    timestamppb.New(now),
	}
}

// segments splits text as compliance does.
func segments(t testing.TB, text string) []*eventsv1.Segment {
	t.Helper()
	parts, _, err := gsm.Split(text, gsm.Policy{}, 0x42)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*eventsv1.Segment, len(parts))
	for i, p := range parts {
		enc := partnerv1.Encoding_ENCODING_GSM7
		if p.Encoding == gsm.UCS2 {
			enc = partnerv1.Encoding_ENCODING_UCS2
		}
		out[i] = &eventsv1.Segment{Index: int32(p.Index), Count: int32(p.Count), Encoding: enc, UserData: p.UserData, Udh: p.UDH}
	}
	return out
}

func (e *env) publish(ev *eventsv1.SegmentSubmit) {
	e.t.Helper()
	id := fmt.Sprintf("%s/%d", ev.GetMessageId(), ev.GetSegment().GetIndex())
	if err := e.pub.Publish(context.Background(), bus.SubmitSubject(ev.GetShortCode()), ev, id); err != nil {
		e.t.Fatal(err)
	}
}

type stored struct {
	subject string
	msgID   string
	report  *eventsv1.SegmentReport
}

// streamMsgs returns every message of a stream.
func (e *env) streamMsgs(name string) []*jetstream.RawStreamMsg {
	e.t.Helper()
	ctx := context.Background()
	st, err := e.pub.JS.Stream(ctx, name)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func (e *env) reports() []stored {
	e.t.Helper()
	var out []stored
	for _, m := range e.streamMsgs(bus.StreamReports) {
		var r eventsv1.SegmentReport
		if err := proto.Unmarshal(m.Data, &r); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, stored{subject: m.Subject, msgID: m.Header.Get(bus.HeaderMsgID), report: &r})
	}
	return out
}

// waitReports waits until the reports of message id in the given subject
// states are all there, and returns them by state.
func (e *env) waitReports(id string, states ...string) map[string][]stored {
	e.t.Helper()
	var got map[string][]stored
	bustest.Eventually(e.t, wait, func() error {
		got = make(map[string][]stored)
		for _, r := range e.reports() {
			if r.report.GetMessageId() == id {
				st := strings.Split(r.subject, ".")[2]
				got[st] = append(got[st], r)
			}
		}
		for _, st := range states {
			if len(got[st]) == 0 {
				return fmt.Errorf("message %s: no %s report yet; have %v", id, st, keys(got))
			}
		}
		return nil
	})
	return got
}

func keys(m map[string][]stored) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s×%d", k, len(v)))
	}
	return out
}

// idle waits until the smsc-link consumer was handed n events and holds
// none: every submit has been acked or terminated.
func (e *env) idle(n uint64) {
	e.t.Helper()
	bustest.Eventually(e.t, wait, func() error {
		c, err := e.pub.JS.Consumer(context.Background(), bus.StreamSubmit, smsclink.Name)
		if err != nil {
			return err
		}
		ci, err := c.Info(context.Background())
		if err != nil {
			return err
		}
		if ci.Delivered.Stream < n || ci.NumPending != 0 || ci.NumAckPending != 0 {
			return fmt.Errorf("consumer at stream seq %d (want %d), pending %d, ack pending %d", ci.Delivered.Stream, n, ci.NumPending, ci.NumAckPending)
		}
		return nil
	})
}

// submissions returns the simulator's records for the recipient.
func (e *env) submissions() []smscsim.Submission {
	return e.sim.Submissions()
}

func checkReport(t *testing.T, r stored, state partnerv1.SegmentState, final bool, code string) {
	t.Helper()
	ev := r.report
	if ev.GetState() != state || ev.GetFinal() != final || ev.GetUcpErrorCode() != code ||
		ev.GetTenantId() != tenant || ev.GetShortCode() != shortCode || ev.GetCampaignId() != "camp-1" || !ev.GetAt().IsValid() {
		t.Errorf("report on %s: got %v, want state %v, final %v, code %q", r.subject, ev, state, final, code)
	}
	want := fmt.Sprintf("%s/%d/%s", ev.GetMessageId(), ev.GetSegmentIndex(), strings.Split(r.subject, ".")[2])
	if r.msgID != want || r.subject != bus.ReportSubject(strings.Split(r.subject, ".")[2], tenant, shortCode) {
		t.Errorf("report on %s: Nats-Msg-Id %q, want %q", r.subject, r.msgID, want)
	}
}

func TestSubmitThenDelivered(t *testing.T) {
	e := start(t, smscsim.Config{}, nil)
	ev := submitEvent("0190a8e2-0000-7000-8000-000000000001", segments(t, "Hello @ 5€")[0])
	e.publish(ev)
	got := e.waitReports(ev.GetMessageId(), "submitted", "delivered")

	subs := e.submissions()
	if len(subs) != 1 {
		t.Fatalf("the SMSC got %d submits, want 1: %+v", len(subs), subs)
	}
	s := subs[0]
	vp := ev.GetExpiresAt().AsTime().UTC().Truncate(time.Minute)
	if s.AdC != "33612345678" || s.OAdC != shortCode || s.OTOA != "" || s.Text != "Hello @ 5€" || s.MT != ucp.MTAlphanumeric ||
		!s.NRq || s.NT != 7 || s.UDH != nil || s.VP != ucp.FormatVP(vp, time.UTC) || s.Outcome != "accepted" {
		t.Errorf("submit: got %+v", s)
	}
	if len(got["submitted"]) != 1 || len(got["delivered"]) != 1 {
		t.Fatalf("got reports %v, want one submitted and one delivered", keys(got))
	}
	sub, del := got["submitted"][0], got["delivered"][0]
	checkReport(t, sub, partnerv1.SegmentState_SEGMENT_STATE_SUBMITTED, false, "")
	checkReport(t, del, partnerv1.SegmentState_SEGMENT_STATE_DELIVERED, true, "")
	scts, _ := ucp.ParseSCTS(s.SCTS, time.UTC)
	if !sub.report.GetSmscTimestamp().AsTime().Equal(scts) || !del.report.GetSmscTimestamp().AsTime().Equal(scts) {
		t.Errorf("smsc_timestamp %v and %v, want the SCTS %v", sub.report.GetSmscTimestamp().AsTime(), del.report.GetSmscTimestamp().AsTime(), scts)
	}
	if sub.report.GetSegmentIndex() != 1 || sub.report.GetSegmentCount() != 1 {
		t.Errorf("segment %d of %d, want 1 of 1", sub.report.GetSegmentIndex(), sub.report.GetSegmentCount())
	}
	e.checkCorrelation(s.SCTS, ev.GetMessageId(), 1, vp)

	if strings.Contains(e.log.String(), "612345678") {
		t.Errorf("the log holds the MSISDN:\n%s", e.log.String())
	}
	e.checkTrace(ev.GetMessageId())
}

// checkTrace checks that the DR's span continues the submit's trace (one
// trace per SMS) and that no span names the MSISDN.
func (e *env) checkTrace(id string) {
	e.t.Helper()
	byName := map[string]sdktrace.ReadOnlySpan{}
	bustest.Eventually(e.t, wait, func() error {
		for _, s := range e.spans.Ended() {
			for _, kv := range s.Attributes() {
				if strings.Contains(kv.Value.Emit(), "612345678") {
					e.t.Fatalf("span %q carries the MSISDN in %s", s.Name(), kv.Key)
				}
				if kv.Key == "pushsms.message_id" && kv.Value.AsString() == id {
					byName[s.Name()] = s
				}
			}
		}
		if byName["smsc submit"] == nil || byName["smsc delivery report"] == nil {
			return fmt.Errorf("spans of message %s: %v", id, slices.Collect(maps.Keys(byName)))
		}
		return nil
	})
	sub, dr := byName["smsc submit"], byName["smsc delivery report"]
	if sub.SpanContext().TraceID() != dr.SpanContext().TraceID() || dr.Parent().SpanID() != sub.SpanContext().SpanID() {
		e.t.Errorf("DR span in trace %s under %s, want trace %s under the submit span %s",
			dr.SpanContext().TraceID(), dr.Parent().SpanID(), sub.SpanContext().TraceID(), sub.SpanContext().SpanID())
	}
}

// checkCorrelation checks the KV record of (recipient, SCTS).
func (e *env) checkCorrelation(scts, id string, idx int, vp time.Time) {
	e.t.Helper()
	n, err := numplan.Parse(recipient)
	if err != nil {
		e.t.Fatal(err)
	}
	kv, err := e.pub.JS.KeyValue(context.Background(), bus.BucketSubmitted)
	if err != nil {
		e.t.Fatal(err)
	}
	entry, err := kv.Get(context.Background(), n.Hash()+"."+scts)
	if err != nil {
		e.t.Fatalf("correlation key: %v", err)
	}
	v := string(entry.Value())
	for _, want := range []string{`"message_id":"` + id + `"`, fmt.Sprintf(`"index":%d`, idx), `"tenant_id":"acme"`, `"short_code":"36000"`, `"valid_until":"` + vp.Format(time.RFC3339)} {
		if !strings.Contains(v, want) {
			e.t.Errorf("correlation value %s lacks %s", v, want)
		}
	}
	if strings.Contains(v, "612345678") {
		e.t.Errorf("correlation value holds the MSISDN: %s", v)
	}
}

// TestAddresses: the sender and the AdC form change what goes on the wire,
// and the DR is matched all the same.
func TestAddresses(t *testing.T) {
	tests := []struct {
		name, sender, format     string
		wantAdC, wantOAdC, wantO string
	}{
		{"alphanumeric sender", "Acme Shop", smsclink.AdCInternational, "33612345678", "Acme Shop", ucp.OTOAAlphanumeric},
		{"numeric sender is the short code", "0612000000", smsclink.AdCInternational, "33612345678", shortCode, ""},
		{"00 form", "", smsclink.AdCPrefix00, "0033612345678", shortCode, ""},
		{"national form", "", smsclink.AdCNational, "0612345678", shortCode, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, smscsim.Config{}, func(c *smsclink.Config) { c.AdCFormat = tt.format })
			ev := submitEvent(fmt.Sprintf("0190a8e2-0000-7000-8000-1000000000%02d", i), segments(t, "addresses")[0])
			ev.Sender = tt.sender
			e.publish(ev)
			got := e.waitReports(ev.GetMessageId(), "submitted", "delivered")
			checkReport(t, got["delivered"][0], partnerv1.SegmentState_SEGMENT_STATE_DELIVERED, true, "")
			subs := e.submissions()
			if len(subs) != 1 || subs[0].AdC != tt.wantAdC || subs[0].OAdC != tt.wantOAdC || subs[0].OTOA != tt.wantO {
				t.Errorf("submits %+v, want AdC %s, OAdC %s, OTOA %q", subs, tt.wantAdC, tt.wantOAdC, tt.wantO)
			}
		})
	}
}

func TestUCS2ThreeParts(t *testing.T) {
	e := start(t, smscsim.Config{}, nil)
	text := strings.Repeat("Привет, мир! ", 12) // 156 UCS-2 characters: 67 + 67 + 22
	segs := segments(t, text)
	if len(segs) != 3 {
		t.Fatalf("split into %d parts, want 3", len(segs))
	}
	const id = "0190a8e2-0000-7000-8000-000000000002"
	for _, seg := range segs {
		e.publish(submitEvent(id, seg))
	}
	bustest.Eventually(t, wait, func() error {
		n := 0
		for _, r := range e.reports() {
			if r.report.GetState() == partnerv1.SegmentState_SEGMENT_STATE_DELIVERED {
				n++
			}
		}
		if n != 3 {
			return fmt.Errorf("%d delivered reports, want 3", n)
		}
		return nil
	})
	subs := e.submissions()
	if len(subs) != 3 {
		t.Fatalf("the SMSC got %d submits, want 3", len(subs))
	}
	var joined strings.Builder
	seen := map[int]bool{}
	byIndex := map[int]string{}
	for _, s := range subs {
		c, ok := gsm.ParseConcat(s.UDH)
		if !ok || c.Total != 3 || c.Ref != 0x42 || s.MT != ucp.MTTransparent || s.DCS != 0x08 || s.Outcome != "accepted" {
			t.Errorf("submit: UDH % x (%+v), MT %d, DCS %#x, outcome %s", s.UDH, c, s.MT, s.DCS, s.Outcome)
		}
		seen[c.Index] = true
		byIndex[c.Index] = s.Text
	}
	for i := 1; i <= 3; i++ {
		if !seen[i] {
			t.Errorf("no part %d", i)
		}
		joined.WriteString(byIndex[i])
	}
	if joined.String() != text {
		t.Errorf("parts join to %q, want %q", joined.String(), text)
	}
	got := e.waitReports(id, "submitted", "delivered")
	idx := map[string]map[int32]bool{}
	for st, rs := range got {
		idx[st] = map[int32]bool{}
		for _, r := range rs {
			idx[st][r.report.GetSegmentIndex()] = true
			if r.report.GetSegmentCount() != 3 {
				t.Errorf("%s report of segment %d: count %d, want 3", st, r.report.GetSegmentIndex(), r.report.GetSegmentCount())
			}
		}
	}
	if len(idx["submitted"]) != 3 || len(idx["delivered"]) != 3 {
		t.Errorf("got reports %v, want submitted and delivered for each of 3 segments", keys(got))
	}
}

func TestPermanentNack(t *testing.T) {
	e := start(t, smscsim.Config{}, nil)
	e.sim.SetFaults(smscsim.Faults{NackSubmits: ucp.ECAdCInvalid})
	ev := submitEvent("0190a8e2-0000-7000-8000-000000000003", segments(t, "nack")[0])
	e.publish(ev)
	got := e.waitReports(ev.GetMessageId(), "nacked")
	e.idle(1)
	if len(got) != 1 || len(got["nacked"]) != 1 {
		t.Fatalf("got reports %v, want one nacked", keys(got))
	}
	checkReport(t, got["nacked"][0], partnerv1.SegmentState_SEGMENT_STATE_FAILED, true, "06")
	if n := len(e.submissions()); n != 1 {
		t.Errorf("the SMSC got %d submits, want 1", n)
	}
}

func TestTemporaryNackRedelivered(t *testing.T) {
	e := start(t, smscsim.Config{}, nil)
	e.sim.SetFaults(smscsim.Faults{NackSubmits: ucp.ECNotAllowed})
	ev := submitEvent("0190a8e2-0000-7000-8000-000000000004", segments(t, "throttled")[0])
	e.publish(ev)
	bustest.Eventually(t, wait, func() error {
		if n := len(e.submissions()); n < 2 {
			return fmt.Errorf("%d submits, want a retry", n)
		}
		return nil
	})
	if r := e.reports(); len(r) != 0 {
		t.Fatalf("reports after temporary NACKs: %v", r)
	}
	e.sim.SetFaults(smscsim.Faults{})
	got := e.waitReports(ev.GetMessageId(), "submitted", "delivered")
	if len(got) != 2 {
		t.Errorf("got reports %v, want submitted and delivered only", keys(got))
	}
	accepted := 0
	for _, s := range e.submissions() {
		switch s.Outcome {
		case "accepted":
			accepted++
		case "rejected":
			if s.Nack != ucp.ECNotAllowed {
				t.Errorf("submit NACKed with %v", s.Nack)
			}
		}
	}
	if accepted != 1 {
		t.Errorf("%d accepted submits, want 1", accepted)
	}
}

func TestAckTimeoutNeverResends(t *testing.T) {
	e := start(t, smscsim.Config{}, func(c *smsclink.Config) { c.AckTimeout = 300 * time.Millisecond })
	e.sim.SetFaults(smscsim.Faults{DropSubmits: true})
	ev := submitEvent("0190a8e2-0000-7000-8000-000000000005", segments(t, "lost")[0])
	e.publish(ev)
	got := e.waitReports(ev.GetMessageId(), "unknown")
	e.idle(1)
	checkReport(t, got["unknown"][0], partnerv1.SegmentState_SEGMENT_STATE_UNKNOWN, false, "")
	if len(got) != 1 {
		t.Errorf("got reports %v, want unknown only", keys(got))
	}
	// Acked: a redelivery (which would find the attempt) cannot come.
	if n := len(e.submissions()); n != 1 {
		t.Errorf("the SMSC got %d submits, want exactly 1", n)
	}
}

// TestInterruptedAttemptNotResent: a segment redelivered after an attempt
// that left no outcome (a crash while its 51 was on the wire) is reported
// UNKNOWN and not sent again.
func TestInterruptedAttemptNotResent(t *testing.T) {
	e := start(t, smscsim.Config{}, nil)
	const id = "0190a8e2-0000-7000-8000-000000000006"
	kv, err := e.pub.JS.KeyValue(context.Background(), bus.BucketSubmitted)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(context.Background(), "seg."+id+".1", []byte(`{"state":"sending"}`)); err != nil {
		t.Fatal(err)
	}
	e.publish(submitEvent(id, segments(t, "crash")[0]))
	got := e.waitReports(id, "unknown")
	e.idle(1)
	checkReport(t, got["unknown"][0], partnerv1.SegmentState_SEGMENT_STATE_UNKNOWN, false, "")
	if n := len(e.submissions()); n != 0 {
		t.Errorf("the SMSC got %d submits, want none", n)
	}
}

// TestRedeliveredAfterAck: a segment delivered again after its ACK was
// handled (a process that stopped before acking the event) is reported
// SUBMITTED, found by its correlation key, and not sent again.
func TestRedeliveredAfterAck(t *testing.T) {
	e := start(t, smscsim.Config{}, nil)
	// Two segments to one recipient: two correlation keys under the
	// recipient's hash, and the redelivered segment must find its own.
	const id = "0190a8e2-0000-7000-8000-0000000000c1"
	parts := segments(t, strings.Repeat("again and again ", 12))
	if len(parts) != 2 {
		t.Fatalf("%d segments, want 2", len(parts))
	}
	for _, p := range parts {
		e.publish(submitEvent(id, p))
	}
	bustest.Eventually(t, wait, func() error {
		got := e.waitReports(id, "submitted", "delivered")
		if n := len(got["submitted"]); n != 2 {
			return fmt.Errorf("%d segments submitted, want 2", n)
		}
		return nil
	})
	// The second segment's event again, as the bus redelivers it.
	ev := submitEvent(id, parts[1])
	if err := e.pub.Publish(t.Context(), bus.SubmitSubject(ev.GetShortCode()), ev, id+"/2/again"); err != nil {
		t.Fatal(err)
	}
	e.idle(3)
	got := e.waitReports(id, "submitted", "delivered")
	if len(got["unknown"]) != 0 {
		t.Errorf("reports %v: the redelivered ACKed segment was reported unknown", keys(got))
	}
	if n := len(e.submissions()); n != 2 {
		t.Errorf("the SMSC got %d submits, want 2", n)
	}
}

func TestUnknownShortCode(t *testing.T) {
	e := start(t, smscsim.Config{}, nil)
	ev := submitEvent("0190a8e2-0000-7000-8000-000000000007", segments(t, "who")[0])
	ev.ShortCode = "39999"
	e.publish(ev)
	e.idle(1)
	var failed []stored
	for _, r := range e.reports() {
		failed = append(failed, r)
	}
	if len(failed) != 1 || failed[0].subject != bus.ReportSubject("failed", tenant, "39999") ||
		failed[0].report.GetState() != partnerv1.SegmentState_SEGMENT_STATE_FAILED || !failed[0].report.GetFinal() {
		t.Fatalf("got reports %v, want one final failed on sms.report.failed.acme.39999", failed)
	}
	if n := len(e.submissions()); n != 0 {
		t.Errorf("the SMSC got %d submits, want none", n)
	}
}

func TestExpired(t *testing.T) {
	e := start(t, smscsim.Config{DR: smscsim.DRConfig{Expired: 1}}, nil)

	// Before submission: not sent.
	late := submitEvent("0190a8e2-0000-7000-8000-000000000008", segments(t, "late")[0])
	late.ExpiresAt = timestamppb.New(time.Now().Add(-time.Minute))
	e.publish(late)
	got := e.waitReports(late.GetMessageId(), "expired")
	checkReport(t, got["expired"][0], partnerv1.SegmentState_SEGMENT_STATE_EXPIRED, true, "")

	// At the SMSC: a DSt 2 DR dated at the validity end.
	ev := submitEvent("0190a8e2-0000-7000-8000-000000000009", segments(t, "expires")[0])
	e.publish(ev)
	got = e.waitReports(ev.GetMessageId(), "submitted", "expired")
	checkReport(t, got["expired"][0], partnerv1.SegmentState_SEGMENT_STATE_EXPIRED, true, "108")
	if n := len(e.submissions()); n != 1 {
		t.Errorf("the SMSC got %d submits, want 1 (not the late one)", n)
	}
}

func TestFailedDR(t *testing.T) {
	e := start(t, smscsim.Config{DR: smscsim.DRConfig{Failed: 1, FailedRsn: 1, Buffered: 1}}, nil)
	ev := submitEvent("0190a8e2-0000-7000-8000-00000000000a", segments(t, "absent")[0])
	e.publish(ev)
	got := e.waitReports(ev.GetMessageId(), "submitted", "buffered", "failed")
	checkReport(t, got["buffered"][0], partnerv1.SegmentState_SEGMENT_STATE_BUFFERED, false, "107")
	checkReport(t, got["failed"][0], partnerv1.SegmentState_SEGMENT_STATE_FAILED, true, "001")
}

func TestBadPasswordBacksOff(t *testing.T) {
	e := start(t, smscsim.Config{}, func(c *smsclink.Config) {
		c.Accounts = smsclink.AccountList{{ShortCode: shortCode, Password: "wrong"}}
	})
	failures := func() int64 { return e.sim.Stats().Accounts[shortCode].LoginFailures }
	bustest.Eventually(t, wait, func() error {
		if failures() == 0 {
			return errors.New("no login yet")
		}
		return nil
	})
	// The window in which a tight loop would show: the next try is 30 s away.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if n := failures(); n != 1 {
			t.Fatalf("%d refused logins within 2 s, want 1", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := e.svc.Stats(); st.AuthFailures != 1 {
		t.Errorf("service counted %d auth failures, want 1", st.AuthFailures)
	}
	if st := health(t, e.svc.Addr()); st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health %v, want NOT_SERVING without a session", st)
	}
	if strings.Contains(e.log.String(), "wrong") {
		t.Errorf("the log holds the password:\n%s", e.log.String())
	}
}

func health(t *testing.T, addr string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetStatus()
}

func TestHealthServingOnceLoggedIn(t *testing.T) {
	e := start(t, smscsim.Config{}, nil)
	bustest.Eventually(t, wait, func() error {
		if st := health(t, e.svc.Addr()); st != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("health %v", st)
		}
		return nil
	})
	e.sim.DropSessions()
	// Back after the reconnection.
	bustest.Eventually(t, wait, func() error {
		if n := e.sim.Stats().Accounts[shortCode].Logins; n != 2 {
			return fmt.Errorf("%d logins, want 2", n)
		}
		if st := health(t, e.svc.Addr()); st != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("health %v", st)
		}
		return nil
	})
}

func TestMobileOriginated(t *testing.T) {
	e := start(t, smscsim.Config{}, nil)
	mos := []smscsim.MO{
		{ShortCode: shortCode, Originator: "33698765432", Text: "STOP"},
		{ShortCode: shortCode, Originator: "0698765433", Text: "Привет €"},
	}
	for _, mo := range mos {
		bustest.Eventually(t, wait, func() error { return e.sim.InjectMO(t.Context(), mo) })
	}
	var got []*eventsv1.MobileOriginated
	var ids []string
	bustest.Eventually(t, wait, func() error {
		got, ids = nil, nil
		for _, m := range e.streamMsgs(bus.StreamMO) {
			var mo eventsv1.MobileOriginated
			if err := proto.Unmarshal(m.Data, &mo); err != nil {
				return err
			}
			if m.Subject != bus.MOSubject(shortCode) {
				return fmt.Errorf("MO on %s", m.Subject)
			}
			got = append(got, &mo)
			ids = append(ids, m.Header.Get(bus.HeaderMsgID))
		}
		if len(got) != 2 {
			return fmt.Errorf("%d MOs, want 2", len(got))
		}
		return nil
	})
	// Handled concurrently: the order on the stream is not the sim's.
	want := map[string]string{"+33698765432": "STOP", "+33698765433": "Привет €"}
	for i, mo := range got {
		n, _ := numplan.Parse(mo.GetOriginator())
		scts := ucp.FormatSCTS(mo.GetSmscTimestamp().AsTime(), time.UTC)
		wantID := "mo/" + shortCode + "/" + n.Hash() + "/" + scts
		text, ok := want[mo.GetOriginator()]
		if !ok || mo.GetText() != text || mo.GetShortCode() != shortCode ||
			mo.GetMoId() != wantID || ids[i] != wantID || !mo.GetReceivedAt().IsValid() {
			t.Errorf("MO %d: got %v (id %s), want one of %q with id %s", i, mo, ids[i], want, wantID)
		}
		delete(want, mo.GetOriginator())
	}
	bustest.Eventually(t, wait, func() error {
		if n := e.sim.Stats().Accounts[shortCode].MOsAcked; n != 2 {
			return fmt.Errorf("%d MOs ACKed", n)
		}
		return nil
	})
}

// TestRestartBetweenAckAndDR: the DR comes after smsc-link restarted; the
// bucket still matches it to its segment.
func TestRestartBetweenAckAndDR(t *testing.T) {
	e := start(t, smscsim.Config{DR: smscsim.DRConfig{Delay: 500 * time.Millisecond}}, nil)
	ev := submitEvent("0190a8e2-0000-7000-8000-00000000000b", segments(t, "restart")[0])
	e.publish(ev)
	e.waitReports(ev.GetMessageId(), "submitted")
	e.idle(1)
	e.stop()
	if n := e.sim.Stats().Accounts[shortCode].DRsAcked; n != 0 {
		t.Fatalf("the DR was ACKed before the restart (%d): the test restarted too late", n)
	}
	e.startService()
	got := e.waitReports(ev.GetMessageId(), "submitted", "delivered")
	checkReport(t, got["delivered"][0], partnerv1.SegmentState_SEGMENT_STATE_DELIVERED, true, "")
	// The new process never stored the key: the bucket matched the DR.
	if st := e.svc.Stats(); st.RefCacheHits != 0 || st.RefCacheMisses != 1 {
		t.Errorf("after the restart: %d cache hits, %d misses; want 0, 1", st.RefCacheHits, st.RefCacheMisses)
	}
	if n := len(e.submissions()); n != 1 {
		t.Errorf("the SMSC got %d submits, want 1", n)
	}
	bustest.Eventually(t, wait, func() error {
		if n := e.sim.Stats().Accounts[shortCode].DRsAcked; n != 1 {
			return fmt.Errorf("%d DRs ACKed, want 1", n)
		}
		return nil
	})
}

// TestUnmatchedDRIsNacked: a DR whose submit is unknown is NACKed, for the
// SMSC to send it again, rather than dropped.
func TestUnmatchedDRIsNacked(t *testing.T) {
	e := start(t, smscsim.Config{RetryDelay: time.Hour}, func(c *smsclink.Config) { c.DRWait = 50 * time.Millisecond })
	bustest.Eventually(t, wait, func() error {
		if st := health(t, e.svc.Addr()); st != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("health %v", st)
		}
		return nil
	})
	// A submit made by another client on the account: smsc-link has no record.
	c, err := ucp.Dial(t.Context(), e.sim.Addr(), ucp.Options{Login: shortCode, Password: password, KeepAlive: -1})
	if err != nil {
		t.Fatal(err)
	}
	s := &ucp.Submit{AdC: "33612345678", OAdC: shortCode, NRq: true}
	s.SetText("elsewhere")
	if _, err := c.Submit(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	c.Close() // the DR goes to smsc-link's session
	bustest.Eventually(t, wait, func() error {
		if n := e.sim.Stats().Accounts[shortCode].DRsNacked; n != 1 {
			return fmt.Errorf("%d DRs NACKed, want 1", n)
		}
		return nil
	})
	if st := e.svc.Stats(); st.DRsUnmatched != 1 {
		t.Errorf("service counted %d unmatched DRs, want 1", st.DRsUnmatched)
	}
	if r := e.reports(); len(r) != 0 {
		t.Errorf("reports for an unknown DR: %v", r)
	}
}

// TestBusOutageBetweenAckAndRecord: the NATS server goes away while a 51
// is on the wire and stays away longer than a few retries; the ACK's
// correlation and outcome are stored once it is back, so the segment is
// SUBMITTED then DELIVERED by its DR, not UNKNOWN for good (chaos run of
// 28 Nov 2026 13:02 UTC).
func TestBusOutageBetweenAckAndRecord(t *testing.T) {
	e := newEnv(t, smscsim.Config{}, func(c *smsclink.Config) { c.AckTimeout = 30 * time.Second })
	e.sim.SetFaults(smscsim.Faults{AckDelay: time.Second})
	e.startService()
	ev := submitEvent("0190a8e2-0000-7000-8000-0000000000b5", segments(t, "outage")[0])
	e.publish(ev)
	bustest.Eventually(t, wait, func() error {
		if n := len(e.submissions()); n != 1 {
			return fmt.Errorf("%d submits at the SMSC, want 1", n)
		}
		return nil
	})
	e.srv.Stop() // the ACK comes in 1 s, to a process without its bus
	time.Sleep(8 * time.Second)
	e.srv.Restart(t)
	// The test's own connection is back too before it reads the reports.
	bustest.Eventually(t, wait, func() error {
		_, err := e.pub.JS.Stream(t.Context(), bus.StreamReports)
		return err
	})
	got := e.waitReports(ev.GetMessageId(), "submitted", "delivered")
	if len(got["unknown"]) != 0 {
		t.Errorf("reports %v: the ACKed segment was reported unknown", keys(got))
	}
	if n := len(e.submissions()); n != 1 {
		t.Errorf("the SMSC got %d submits, want 1", n)
	}
}
