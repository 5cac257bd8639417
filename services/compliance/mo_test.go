package compliance

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/numplan"
	"pushsms.io/lib/optout"
	"pushsms.io/lib/policy"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// moPolicy is a policy that does not change.
type moPolicy struct{ p policy.Policy }

func (m *moPolicy) Current() *policy.Policy { return &m.p }

// moEnv is an MO consumer on a fresh bus, with the stores it writes and an
// index that reads them as another replica would.
type moEnv struct {
	b        *bus.Bus
	c        *moConsumer
	store    *optout.Store
	issuers  *optout.LastIssuer
	sessions *optout.Sessions
	index    *optout.Index
	pol      *moPolicy
	rule     Rule
}

func newMOEnv(t *testing.T) *moEnv {
	t.Helper()
	ctx := context.Background()
	srv := bustest.Start(t)
	b := bustest.Connect(t, srv)
	kv, err := b.JS.KeyValue(ctx, bus.BucketOptOuts)
	if err != nil {
		t.Fatal(err)
	}
	e := &moEnv{b: b, store: optout.NewStore(kv), pol: &moPolicy{p: policy.Default()}}
	if e.issuers, err = optout.OpenLastIssuer(ctx, b); err != nil {
		t.Fatal(err)
	}
	if e.sessions, err = optout.OpenSessions(ctx, b); err != nil {
		t.Fatal(err)
	}
	if e.index, err = optout.WatchIndex(ctx, bustest.Connect(t, srv)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.index.Stop)
	e.c = newMOConsumer(b, e.store, e.issuers, e.sessions, e.pol, slog.New(slog.NewTextHandler(io.Discard, nil)))
	e.rule = optOutRule(e.index)
	return e
}

// run consumes MOs from the stream until t ends.
func (e *moEnv) run(t *testing.T) {
	t.Helper()
	cons, err := e.b.Consume(context.Background(), e.c.spec(), e.c.handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cons.Stop)
}

// cleared is what compliance cleared of messageCategory, for recording the
// last issuer as clear.go does.
func clearedFor(brand, tenant, shortCode, id string) *eventsv1.MessageAccepted {
	return &eventsv1.MessageAccepted{MessageId: id, TenantId: tenant, ShortCode: shortCode, Brand: brand,
		Category: partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING}
}

func (e *moEnv) sent(t *testing.T, n numplan.Number, brand, tenant, shortCode, id string) {
	t.Helper()
	if err := recordIssuer(context.Background(), e.issuers, clearedFor(brand, tenant, shortCode, id), n, moT0); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 2*time.Second, func() error {
		is, ok, err := e.issuers.Get(context.Background(), shortCode, n)
		if err != nil || !ok || is.MessageID != id {
			return fmt.Errorf("last issuer %+v %v %v, want message %s", is, ok, err, id)
		}
		return nil
	})
}

var moT0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func moEvent(n numplan.Number, shortCode, text, id string, at time.Time) *eventsv1.MobileOriginated {
	return &eventsv1.MobileOriginated{MoId: id, ShortCode: shortCode, Originator: n.E164(), Text: text, ReceivedAt: timestamppb.New(at)}
}

func (e *moEnv) publishMO(t *testing.T, mo *eventsv1.MobileOriginated) {
	t.Helper()
	if err := e.b.Publish(context.Background(), bus.MOSubject(mo.GetShortCode()), mo, mo.GetMoId()); err != nil {
		t.Fatal(err)
	}
}

// deliver hands mo to the handler directly, as a redelivery would.
func (e *moEnv) deliver(t *testing.T, mo *eventsv1.MobileOriginated) {
	t.Helper()
	data, err := proto.Marshal(mo)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.c.handle(context.Background(), &bus.Msg{Subject: bus.MOSubject(mo.GetShortCode()), Data: data, Time: mo.GetReceivedAt().AsTime()}); err != nil {
		t.Fatalf("handle %s: %v", mo.GetMoId(), err)
	}
}

// check runs the opt-out rule on a marketing message.
func (e *moEnv) check(t *testing.T, n numplan.Number, tenant, brand, shortCode string) Verdict {
	t.Helper()
	acc := clearedFor(brand, tenant, shortCode, "x")
	v, err := e.rule.Check(context.Background(), &Candidate{Accepted: acc, Number: n, Now: moT0})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// confirmations returns the MessageCleared events published on subject.
func (e *moEnv) confirmations(t *testing.T, filter string) []*eventsv1.MessageCleared {
	t.Helper()
	ctx := context.Background()
	c, err := e.b.JS.OrderedConsumer(ctx, bus.StreamCleared, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		t.Fatal(err)
	}
	var out []*eventsv1.MessageCleared
	for {
		batch, err := c.FetchNoWait(100)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			var ev eventsv1.MessageCleared
			if err := proto.Unmarshal(m.Data(), &ev); err != nil {
				t.Fatal(err)
			}
			out = append(out, &ev)
			got++
		}
		if got == 0 {
			return out
		}
	}
}

func mustNumber(t *testing.T, s string) numplan.Number {
	t.Helper()
	n, err := numplan.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

var uuidShape = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// A STOP answering brand Acme's message from 36123 opts the subscriber out
// of Acme on every short code, not of brand Zeta; it is confirmed once,
// from 36123, naming Acme, even when the MO is delivered again.
func TestMOStopOptsOutOfLastIssuer(t *testing.T) {
	e := newMOEnv(t)
	e.run(t)
	n := mustNumber(t, "06 12 34 56 78")
	e.sent(t, n, "Zeta", "t2", "36123", "m0")
	e.sent(t, n, "Acme", "t1", "36123", "m1") // the last one before the STOP

	stop := moEvent(n, "36123", " Stop. ", "mo/36123/h/261127100500", moT0.Add(5*time.Minute))
	e.publishMO(t, stop)
	bustest.Eventually(t, 2*time.Second, func() error {
		if v := e.check(t, n, "t1", "Acme", "36999"); v.Reason != partnerv1.Reason_REASON_OPTED_OUT {
			return fmt.Errorf("Acme on 36999: %v, want REASON_OPTED_OUT", v.Reason)
		}
		return nil
	})
	v := e.check(t, n, "t1", "ACME", "36123")
	if v.Reason != partnerv1.Reason_REASON_OPTED_OUT {
		t.Errorf("Acme on 36123: %v, want REASON_OPTED_OUT", v.Reason)
	}
	if want := `the recipient opted out of every message of brand "Acme" on 2026-11-27, by sending " Stop. " to short code 36123`; v.Detail != want {
		t.Errorf("detail %q, want %q", v.Detail, want)
	}
	if strings.Contains(v.Detail, "12345678") || strings.Contains(v.Detail, n.Hash()) {
		t.Errorf("detail %q holds the number", v.Detail)
	}
	if v := e.check(t, n, "t2", "Zeta", "36123"); v.Reason != partnerv1.Reason_REASON_UNSPECIFIED {
		t.Errorf("Zeta on 36123: %v, want accepted", v.Reason)
	}
	if v := e.check(t, mustNumber(t, "06 12 34 56 79"), "t1", "Acme", "36123"); v.Reason != partnerv1.Reason_REASON_UNSPECIFIED {
		t.Errorf("Acme to another number: %v, want accepted", v.Reason)
	}
	if at, ok, err := e.sessions.LastMO(context.Background(), "36123", n); err != nil || !ok || !at.Equal(stop.GetReceivedAt().AsTime()) {
		t.Errorf("MO session: %v %v %v, want the STOP's time", at, ok, err)
	}

	// The proof.
	entries, err := e.store.List(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("%d opt-outs, want 1: %+v", len(entries), entries)
	}
	if got := entries[0]; got.Scope != optout.ScopeBrand || got.Brand != "Acme" || got.Tenant != "t1" || got.ShortCode != "36123" ||
		got.Source != optout.SourceMOStop || got.MOID != stop.GetMoId() || got.Text != " Stop. " || !got.At.Equal(stop.GetReceivedAt().AsTime()) {
		t.Errorf("opt-out %+v, want Acme's with the MO as proof", got)
	}

	var conf []*eventsv1.MessageCleared
	bustest.Eventually(t, 2*time.Second, func() error {
		if conf = e.confirmations(t, "sms.cleared.t1.36123"); len(conf) != 1 {
			return fmt.Errorf("%d confirmations, want 1", len(conf))
		}
		return nil
	})

	// Delivered again after Zeta sent from 36123: nothing changes, and the
	// confirmation is published again with the same id, stored once.
	e.sent(t, n, "Zeta", "t2", "36123", "m2")
	e.deliver(t, stop)
	if entries, _ := e.store.List(context.Background(), n); len(entries) != 1 {
		t.Errorf("after a redelivery: %d opt-outs, want 1: %+v", len(entries), entries)
	}
	if got := e.confirmations(t, "sms.cleared.>"); len(got) != 1 {
		t.Errorf("after a redelivery: %d confirmations, want 1", len(got))
	}

	c := conf[0]
	acc := c.GetMessage()
	if want := "Votre demande est prise en compte : vous ne recevrez plus de SMS de Acme."; acc.GetText() != want {
		t.Errorf("confirmation text %q, want %q", acc.GetText(), want)
	}
	if c.GetRecipientE164() != n.E164() || acc.GetRecipient() != n.E164() || acc.GetShortCode() != "36123" || acc.GetTenantId() != "t1" ||
		acc.GetCategory() != partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP {
		t.Errorf("confirmation %v, want a customer-relationship message from 36123 to the subscriber for t1", acc)
	}
	if !uuidShape.MatchString(acc.GetMessageId()) || acc.GetMessageId() != confirmationID(stop.GetMoId()) {
		t.Errorf("confirmation id %q, want a UUID derived from the MO id", acc.GetMessageId())
	}
	if n := len(c.GetSegments()); n != 1 || acc.GetSegmentCount() != 1 {
		t.Errorf("confirmation has %d segments (count %d), want 1", n, acc.GetSegmentCount())
	}
	if d := c.GetDecision(); d.GetOutcome() != partnerv1.DecisionOutcome_DECISION_OUTCOME_ACCEPTED || d.GetPolicyVersion() != e.pol.p.Version {
		t.Errorf("decision %v, want accepted under policy %s", d, e.pol.p.Version)
	}
}

// A STOP to a short code no brand sent from opts out of that short code:
// every brand there, no brand elsewhere. The confirmation names the short
// code and belongs to no partner.
func TestMOStopWithoutIssuerOptsOutOfShortCode(t *testing.T) {
	e := newMOEnv(t)
	e.run(t)
	n := mustNumber(t, "07 81 22 33 44")
	e.sent(t, n, "Acme", "t1", "36999", "m1") // another short code
	e.publishMO(t, moEvent(n, "36123", "ARRÊT au 36123", "mo/1", moT0))
	bustest.Eventually(t, 2*time.Second, func() error {
		if v := e.check(t, n, "t2", "Zeta", "36123"); v.Reason != partnerv1.Reason_REASON_OPTED_OUT {
			return fmt.Errorf("Zeta on 36123: %v, want REASON_OPTED_OUT", v.Reason)
		}
		return nil
	})
	if v := e.check(t, n, "t1", "Acme", "36999"); v.Reason != partnerv1.Reason_REASON_UNSPECIFIED {
		t.Errorf("Acme on 36999: %v, want accepted", v.Reason)
	}
	if v := e.check(t, n, "t1", "Acme", "36123"); !strings.Contains(v.Detail, "of every message from short code 36123") {
		t.Errorf("detail %q, want the short-code scope", v.Detail)
	}
	bustest.Eventually(t, 2*time.Second, func() error {
		conf := e.confirmations(t, "sms.cleared._.36123")
		if len(conf) != 1 {
			return fmt.Errorf("%d confirmations, want 1", len(conf))
		}
		if want := "Votre demande est prise en compte : vous ne recevrez plus de SMS de 36123."; conf[0].GetMessage().GetText() != want {
			return fmt.Errorf("text %q, want %q", conf[0].GetMessage().GetText(), want)
		}
		return nil
	})
}

// START lifts the subscriber's STOPs to that short code only, never a
// partner's suppression, and a second STOP of an opted-out subscriber is
// not confirmed twice. Without a confirmation in the policy, none is sent.
func TestMOResubscribe(t *testing.T) {
	e := newMOEnv(t)
	e.pol.p.OptOut.Confirmation = ""
	ctx := context.Background()
	n := mustNumber(t, "06 98 76 54 32")
	e.sent(t, n, "Acme", "t1", "36123", "m1")
	e.sent(t, n, "Zeta", "t2", "36999", "m2")
	e.deliver(t, moEvent(n, "36123", "stop", "mo/1", moT0.Add(time.Minute)))
	e.deliver(t, moEvent(n, "36999", "STOP 36999", "mo/2", moT0.Add(2*time.Minute)))
	if _, err := e.store.Add(ctx, n, optout.Entry{Scope: optout.ScopePartner, Tenant: "t1", Source: optout.SourcePartnerImport, At: moT0}); err != nil {
		t.Fatal(err)
	}
	// A START older than the STOP (redelivered late) lifts nothing.
	e.deliver(t, moEvent(n, "36123", "START", "mo/0", moT0))
	if got, _ := e.store.List(ctx, n); len(got) != 3 {
		t.Fatalf("after a START older than the STOP: %d opt-outs, want 3", len(got))
	}
	e.deliver(t, moEvent(n, "36123", "Start !", "mo/3", moT0.Add(3*time.Minute)))
	got, err := e.store.List(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, x := range got {
		kept = append(kept, string(x.Scope)+"/"+x.Brand+x.Tenant)
	}
	if len(got) != 2 || strings.Contains(strings.Join(kept, " "), "Acme") {
		t.Errorf("after START to 36123: %v, want Zeta's STOP and the partner's suppression", kept)
	}
	if got := e.confirmations(t, "sms.cleared.>"); len(got) != 0 {
		t.Errorf("%d confirmations without a confirmation text, want 0", len(got))
	}
	// An MO that is no keyword only opens a session.
	e.deliver(t, moEvent(n, "34000", "je veux pas stop", "mo/4", moT0.Add(4*time.Minute)))
	if got, _ := e.store.List(ctx, n); len(got) != 2 {
		t.Errorf("after an ordinary MO: %d opt-outs, want 2", len(got))
	}
	if _, ok, _ := e.sessions.LastMO(ctx, "34000", n); !ok {
		t.Error("an ordinary MO opened no session")
	}
}

// A subscriber already opted out of a brand who sends STOP again gets no
// second confirmation: one per opt-out.
func TestMOStopTwiceConfirmedOnce(t *testing.T) {
	e := newMOEnv(t)
	n := mustNumber(t, "06 11 22 33 44")
	e.sent(t, n, "Acme", "t1", "36123", "m1")
	e.deliver(t, moEvent(n, "36123", "STOP", "mo/1", moT0))
	e.deliver(t, moEvent(n, "36123", "stop", "mo/2", moT0.Add(time.Minute)))
	if got := e.confirmations(t, "sms.cleared.>"); len(got) != 1 {
		t.Errorf("%d confirmations, want 1", len(got))
	}
}

// The MO sessions the consumer keeps are the ones the MO-session rule reads.
var _ SessionLookup = (*optout.Sessions)(nil)
