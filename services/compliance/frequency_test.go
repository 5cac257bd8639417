package compliance_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
	"pushsms.io/services/compliance"
)

const customerRelationship = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP

// clockAt is a clock the test moves between publishes.
type clockAt struct{ t atomic.Pointer[time.Time] }

func newClock(t time.Time) *clockAt { c := &clockAt{}; c.set(t); return c }
func (c *clockAt) set(t time.Time)  { c.t.Store(&t) }
func (c *clockAt) now() time.Time   { return *c.t.Load() }

// startCapped runs one compliance service with the frequency cap at limit
// per day.
func startCapped(t *testing.T, clock *clockAt, limit int) env {
	t.Helper()
	return serve(t, bustest.Start(t), clock.now, capped(limit, "day"))
}

// capped sets the cap to limit per period. The STOP mention and the brand
// in the text are off: these tests send short texts of several brands,
// and the content rules have their own tests.
func capped(limit int, period string) func(*compliance.Config) {
	return func(c *compliance.Config) {
		c.Policy.Frequency.Cap, c.Policy.Frequency.Period = limit, period
		c.Policy.Content.StopMention = false
		c.Policy.Content.BrandInText = false
	}
}

func TestFrequencyCap(t *testing.T) {
	clock := newClock(workday)
	e := startCapped(t, clock, 1)
	paris, err := time.LoadLocation(compliance.Zone)
	if err != nil {
		t.Fatal(err)
	}
	const ok = partnerv1.Reason_REASON_UNSPECIFIED
	const capped = partnerv1.Reason_REASON_FREQUENCY_CAP
	tuesday := workday
	wednesday := workday.Add(24 * time.Hour)
	steps := []struct {
		name      string
		id        string
		at        time.Time
		recipient string
		brand     string
		category  partnerv1.TrafficCategory
		msgID     string // Nats-Msg-Id; another one than the id is a redelivery
		want      partnerv1.Reason
		deferred  bool
	}{
		{"first to number and brand", "f-1", tuesday, "06 07 12 34 56", "Acme", marketing, "f-1", ok, false},
		{"second same day", "f-2", tuesday.Add(2 * time.Hour), "+33 6 07 12 34 56", "Acme", marketing, "f-2", capped, false},
		{"brand written otherwise", "f-3", tuesday, "06 07 12 34 56", " ACME", marketing, "f-3", capped, false},
		{"another brand", "f-4", tuesday, "06 07 12 34 56", "Globex", marketing, "f-4", ok, false},
		{"another number", "f-5", tuesday, "06 07 12 34 57", "Acme", marketing, "f-5", ok, false},
		{"customer relationship never capped", "f-6", tuesday, "06 07 12 34 56", "Acme", customerRelationship, "f-6", ok, false},
		{"customer relationship again", "f-7", tuesday, "06 07 12 34 56", "Acme", customerRelationship, "f-7", ok, false},
		// Redelivered (another Nats-Msg-Id, as after an ingest crash): it
		// already holds the quota and passes again; outputs fails on a
		// second output (a rejection) for it.
		{"redelivery of the first", "f-1", tuesday.Add(time.Hour), "06 07 12 34 56", "Acme", marketing, "f-1#again", ok, false},
		{"next day", "f-8", wednesday, "06 07 12 34 56", "Acme", marketing, "f-8", ok, false},
		// Checked on Tuesday 22:30, after the window closed: deferred to
		// Wednesday 08:00, it counts for Wednesday, already used.
		{"deferred into a used day", "f-9", time.Date(2026, 11, 24, 22, 30, 0, 0, paris), "06 07 12 34 56", "Acme", marketing, "f-9", capped, false},
		// Tuesday of the other number is used; its Wednesday is not.
		{"deferred into a free day", "f-10", time.Date(2026, 11, 24, 22, 30, 0, 0, paris), "06 07 12 34 57", "Acme", marketing, "f-10", ok, true},
		{"after a deferral, same day", "f-11", wednesday, "06 07 12 34 57", "Acme", marketing, "f-11", capped, false},
	}
	inputs := map[string]*eventsv1.MessageAccepted{}
	for i, st := range steps {
		clock.set(st.at)
		m := accepted(st.id, st.recipient, st.category, "Soldes -50% ce week-end. STOP 36123")
		m.Brand = st.brand
		inputs[st.id] = m
		e.publish(t, m, st.msgID)
		// One at a time: each step depends on the count the ones before left.
		e.idle(t, uint64(i+1))
	}
	out := e.outputs(t)
	for _, st := range steps {
		o, found := out[st.id]
		switch {
		case !found:
			t.Errorf("%s: no output", st.name)
		case st.want == ok && o.cleared == nil:
			t.Errorf("%s: got rejected %s (%s), want cleared", st.name, o.rejected.GetReason(), o.rejected.GetDetail())
		case st.want == ok && st.deferred != (o.cleared.GetMessage().GetNotBefore() != nil):
			t.Errorf("%s: got not_before %v, want deferred %v", st.name, o.cleared.GetMessage().GetNotBefore(), st.deferred)
		case st.want != ok:
			checkRejected(t, st.name, inputs[st.id], o, st.want)
			if d := o.rejected.GetDetail(); !strings.Contains(d, "cap is 1 per user, per day and per brand") || strings.Contains(d, "607123456") {
				t.Errorf("%s: got detail %q, want the cap named and no number", st.name, d)
			}
		}
	}

	// The bucket: one key per number, brand and day, never the number in
	// clear, each holding the ids that used its quota once.
	kv, err := e.pub.JS.KeyValue(context.Background(), bus.BucketFrequency)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	n := 0
	for k := range keys.Keys() {
		n++
		if strings.Contains(k, "607123456") || strings.Contains(k, "607123457") {
			t.Errorf("key %q holds the number in clear", k)
		}
		got, err := kv.Get(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		var v struct{ IDs []string }
		if err := json.Unmarshal(got.Value(), &v); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, v.IDs...)
	}
	// f-1 Tue Acme, f-4 Tue Globex, f-5 Tue other number, f-8 Wed, f-10 Wed other number.
	if n != 5 || len(ids) != 5 {
		t.Errorf("got %d keys holding %v, want 5 keys holding f-1, f-4, f-5, f-8, f-10 once each", n, ids)
	}
}

// TestFrequencyCapRedeliveryCountsOnce: with a cap of 2, a message
// redelivered does not take the second place.
func TestFrequencyCapRedeliveryCountsOnce(t *testing.T) {
	e := startCapped(t, newClock(workday), 2)
	steps := []struct{ id, msgID, want string }{
		{"r-1", "r-1", "cleared"},
		{"r-1", "r-1#again", "cleared"},
		{"r-1", "r-1#third", "cleared"},
		{"r-2", "r-2", "cleared"},
		{"r-3", "r-3", "rejected"},
	}
	for i, st := range steps {
		e.publish(t, accepted(st.id, "06 07 12 34 56", marketing, "Soldes"), st.msgID)
		e.idle(t, uint64(i+1))
	}
	out := e.outputs(t)
	for _, st := range steps {
		o := out[st.id]
		if got := map[bool]string{true: "cleared", false: "rejected"}[o.cleared != nil]; got != st.want {
			t.Errorf("%s (%s): got %s %v, want %s", st.id, st.msgID, got, o.rejected.GetReason(), st.want)
		}
	}
}

func TestFrequencyCapZeroIsOff(t *testing.T) {
	e := startCapped(t, newClock(workday), 0)
	for i := range 3 {
		e.publish(t, accepted(fmt.Sprintf("z-%d", i), "06 07 12 34 56", marketing, "Soldes"), fmt.Sprintf("z-%d", i))
	}
	e.idle(t, 3)
	for id, o := range e.outputs(t) {
		if o.cleared == nil {
			t.Errorf("%s: got rejected %s, want cleared with the cap off", id, o.rejected.GetReason())
		}
	}
	if _, err := e.pub.JS.KeyValue(context.Background(), bus.BucketFrequency); err != nil {
		t.Fatal(err) // the bucket exists all the same: every service ensures every bucket
	}
}

// TestFrequencyCapReplicasRace: two replicas sharing the durable consumer
// check 20 marketing messages to one number and brand at once; the
// compare-and-set lets exactly one through.
func TestFrequencyCapReplicasRace(t *testing.T) {
	srv := bustest.Start(t)
	clock := newClock(workday)
	a := serve(t, srv, clock.now, capped(1, "day"))
	serve(t, srv, clock.now, capped(1, "day"))
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("race-%02d", i)
			m := accepted(id, "06 07 12 34 56", marketing, "Soldes")
			// t.Fatal (publish) is for the test goroutine only.
			if err := a.pub.Publish(context.Background(), bus.AcceptedSubject(m.GetTenantId(), m.GetShortCode()), m, id); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	a.idle(t, n)
	out := a.outputs(t)
	cleared, rejected := 0, 0
	for id, o := range out {
		switch {
		case o.cleared != nil:
			cleared++
		case o.rejected.GetReason() == partnerv1.Reason_REASON_FREQUENCY_CAP:
			rejected++
		default:
			t.Errorf("%s: got %s, want cleared or %s", id, o.rejected.GetReason(), partnerv1.Reason_REASON_FREQUENCY_CAP)
		}
	}
	if cleared != 1 || rejected != n-1 {
		t.Errorf("got %d cleared and %d capped, want 1 and %d", cleared, rejected, n-1)
	}
}

// A weekly cap counts Monday to Sunday, French time: the Saturday of the
// week of a message is capped, the next Monday is not.
func TestFrequencyCapWeek(t *testing.T) {
	clock := newClock(workday)
	e := serve(t, bustest.Start(t), clock.now, capped(1, "week"))
	paris, err := time.LoadLocation(compliance.Zone)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		id   string
		at   time.Time
		want bool // cleared
	}{
		{"w-tue", workday, true}, // Tuesday 24 November
		{"w-sat", time.Date(2026, 11, 28, 21, 0, 0, 0, paris), false},       // Saturday, same week
		{"w-sun-night", time.Date(2026, 11, 29, 23, 30, 0, 0, paris), true}, // deferred to Monday 30: next week
		{"w-mon", time.Date(2026, 11, 30, 9, 0, 0, 0, paris), false},        // Monday 30: used by the deferred one
	}
	for i, st := range steps {
		clock.set(st.at)
		m := accepted(st.id, "06 07 12 34 56", marketing, "Soldes")
		m.AcceptedAt, m.ExpiresAt = timestamppb.New(st.at), timestamppb.New(st.at.Add(48*time.Hour))
		e.publish(t, m, st.id)
		e.idle(t, uint64(i+1))
	}
	out := e.outputs(t)
	for _, st := range steps {
		o := out[st.id]
		if (o.cleared != nil) != st.want {
			t.Errorf("%s: cleared %v (%s), want %v", st.id, o.cleared != nil, o.rejected.GetDetail(), st.want)
		}
		if !st.want && !strings.Contains(o.rejected.GetDetail(), "per week") {
			t.Errorf("%s: detail %q does not name the weekly cap", st.id, o.rejected.GetDetail())
		}
	}
}

// The cap and its period are the policy's; a negative cap or another
// period than a day or a week is refused.
func TestFrequencyConfig(t *testing.T) {
	cfg := compliance.DefaultConfig()
	if cfg.Policy.Frequency.Cap != 1 || cfg.Policy.Frequency.Period != "day" {
		t.Errorf("got default cap %d per %q, want 1 per day", cfg.Policy.Frequency.Cap, cfg.Policy.Frequency.Period)
	}
	tests := []struct {
		name    string
		cap     int
		period  string
		wantErr bool
	}{
		{"default", 1, "day", false},
		{"off", 0, "", false},
		{"negative", -1, "day", true},
		{"week", 2, "week", false},
		{"month", 1, "month", true},
	}
	for _, tt := range tests {
		cfg := compliance.DefaultConfig()
		cfg.Policy.Frequency.Cap, cfg.Policy.Frequency.Period = tt.cap, tt.period
		if err := cfg.Validate(); (err != nil) != tt.wantErr {
			t.Errorf("%s: got error %v, want error %v", tt.name, err, tt.wantErr)
		}
	}
}
