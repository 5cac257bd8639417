package compliance

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/calendar"
	"pushsms.io/lib/fault"
	"pushsms.io/lib/numplan"
	"pushsms.io/lib/optout"
	"pushsms.io/lib/policy"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

func TestCheckFirstRefusalDecides(t *testing.T) {
	var ran []string
	rule := func(name string, v Verdict, err error) Rule {
		return Rule{Name: name, Check: func(context.Context, *Candidate) (Verdict, error) {
			ran = append(ran, name)
			return v, err
		}}
	}
	pass := Verdict{}
	optOut := Verdict{Reason: partnerv1.Reason_REASON_OPTED_OUT, Detail: "opted out"}
	capped := Verdict{Reason: partnerv1.Reason_REASON_FREQUENCY_CAP}
	down := errors.New("store down")
	tests := []struct {
		name    string
		rules   []Rule
		want    partnerv1.Reason
		wantRan string
		wantErr error
	}{
		{"all pass", []Rule{rule("a", pass, nil), rule("b", pass, nil)}, partnerv1.Reason_REASON_UNSPECIFIED, "a,b", nil},
		{"first refusal", []Rule{rule("a", pass, nil), rule("b", optOut, nil), rule("c", capped, nil)}, partnerv1.Reason_REASON_OPTED_OUT, "a,b", nil},
		{"error stops", []Rule{rule("a", pass, nil), rule("b", pass, down), rule("c", capped, nil)}, partnerv1.Reason_REASON_UNSPECIFIED, "a,b", down},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ran = nil
			s := &ruleSet{rules: tt.rules}
			v, err := s.check(context.Background(), &Candidate{Accepted: &eventsv1.MessageAccepted{MessageId: "m"}})
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("got error %v, want %v", err, tt.wantErr)
			}
			if fault.IsPermanent(err) {
				t.Errorf("a rule that cannot decide must be retried, got permanent %v", err)
			}
			if v.Reason != tt.want {
				t.Errorf("got %s, want %s", v.Reason, tt.want)
			}
			if got := strings.Join(ran, ","); got != tt.wantRan {
				t.Errorf("ran %s, want %s", got, tt.wantRan)
			}
		})
	}
}

// noKV stands for the FREQUENCY bucket where only the rule list is looked
// at: compiling never calls it.
type noKV struct{ jetstream.KeyValue }

type noSessions struct{}

func (noSessions) LastMO(context.Context, string, numplan.Number) (time.Time, bool, error) {
	return time.Time{}, false, nil
}

func TestCompileRulesOrder(t *testing.T) {
	all := "numbering,shortcode_range,shortcode_option,sender,mo_session,optout," +
		"content_sector,content_adult,content_stop_mention,content_free_claim,content_brand," +
		"validity,network,window,frequency"
	tests := []struct {
		name string
		edit func(*policy.Policy)
		deps ruleDeps
		want string
	}{
		{"every rule on", nil, ruleDeps{plan: testPlan(t), freq: noKV{}, sessions: noSessions{}, optOuts: &optout.Index{}}, all},
		{"no session store nor opt-out index", nil, ruleDeps{plan: testPlan(t), freq: noKV{}},
			strings.Replace(all, "mo_session,optout,", "", 1)},
		{"network check off, cap 0, no stop mention or brand", func(p *policy.Policy) {
			p.Network.Check = false
			p.Frequency.Cap = 0
			p.Content.StopMention = false
			p.Content.BrandInText = false
		}, ruleDeps{plan: testPlan(t), freq: noKV{}},
			"numbering,shortcode_range,shortcode_option,sender,content_sector,content_adult,content_free_claim,validity,window"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := policy.Default()
			if tt.edit != nil {
				tt.edit(&p)
			}
			rs, err := compileRules(&p, tt.deps)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, r := range rs.rules {
				names = append(names, r.Name)
				if r.Source == "" {
					t.Errorf("rule %s has no source", r.Name)
				}
			}
			if got := strings.Join(names, ","); got != tt.want {
				t.Errorf("got rules\n%s\nwant\n%s", got, tt.want)
			}
			if rs.policy.Version != p.Version {
				t.Errorf("rule set of version %q, want %q", rs.policy.Version, p.Version)
			}
		})
	}
	// A policy that checks the network needs the numbering plan.
	p := policy.Default()
	if _, err := compileRules(&p, ruleDeps{}); err == nil {
		t.Error("network check without a plan: compiled")
	}
	// An expired message to an invalid number is refused for the number.
	rs, err := compileRules(&p, ruleDeps{plan: testPlan(t)})
	if err != nil {
		t.Fatal(err)
	}
	c := &Candidate{
		Accepted: &eventsv1.MessageAccepted{MessageId: "m", Recipient: "nope", ExpiresAt: timestamppb.New(time.Unix(0, 0))},
		Now:      time.Now(),
	}
	v, err := rs.check(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if v.Reason != partnerv1.Reason_REASON_INVALID_NUMBER || v.rule != "numbering" || v.source != sourceNumbering {
		t.Errorf("got %s by %q, want %s by numbering with its source", v.Reason, v.rule, partnerv1.Reason_REASON_INVALID_NUMBER)
	}
}

func TestValidity(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		expires *timestamppb.Timestamp
		want    partnerv1.Reason
	}{
		{"none", nil, partnerv1.Reason_REASON_UNSPECIFIED},
		{"later", timestamppb.New(now.Add(time.Second)), partnerv1.Reason_REASON_UNSPECIFIED},
		{"now", timestamppb.New(now), partnerv1.Reason_REASON_VALIDITY_EXPIRED},
		{"earlier", timestamppb.New(now.Add(-time.Hour)), partnerv1.Reason_REASON_VALIDITY_EXPIRED},
	}
	for _, tt := range tests {
		v, err := checkValidity(context.Background(), &Candidate{Accepted: &eventsv1.MessageAccepted{ExpiresAt: tt.expires}, Now: now})
		if err != nil || v.Reason != tt.want {
			t.Errorf("%s: got %s, %v, want %s", tt.name, v.Reason, err, tt.want)
		}
	}
}

// A redelivered message must be split into the very same segments, or the
// handset would get parts of two different concatenations.
func TestSplitIsDeterministic(t *testing.T) {
	acc := &eventsv1.MessageAccepted{MessageId: "01JABCDEF", Text: strings.Repeat("Fête des mères ", 10)}
	a, err := split(acc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := split(proto.Clone(acc).(*eventsv1.MessageAccepted))
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 3 || len(a) != len(b) {
		t.Fatalf("got %d and %d segments, want 3", len(a), len(b))
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			t.Errorf("segment %d differs: %v and %v", i+1, a[i], b[i])
		}
		if a[i].GetUdh()[3] != segmentRef(acc.MessageId) {
			t.Errorf("segment %d: reference %d, want %d", i+1, a[i].GetUdh()[3], segmentRef(acc.MessageId))
		}
	}
	// Different messages spread over the references.
	seen := map[uint8]bool{}
	for i := range 1000 {
		seen[segmentRef(strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune(i)))] = true
	}
	if len(seen) < 200 {
		t.Errorf("1000 message ids use %d references, want most of 256", len(seen))
	}
}

func testWindow(t *testing.T) calendar.Window {
	t.Helper()
	w, err := policy.Default().Window.Calendar()
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWindow(t *testing.T) {
	w := testWindow(t)
	paris := w.Location()
	inYear := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, paris) }
	at := func(m time.Month, d, h, min int) time.Time { return inYear(2026, m, d, h, min) }
	ts := timestamppb.New
	const (
		ok      = partnerv1.Reason_REASON_UNSPECIFIED
		expired = partnerv1.Reason_REASON_VALIDITY_EXPIRED
		mkt     = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING
	)
	sunday := at(time.November, 29, 15, 0)
	monday8 := at(time.November, 30, 8, 0)
	tests := []struct {
		name      string
		now       time.Time
		category  partnerv1.TrafficCategory
		notBefore *timestamppb.Timestamp
		expires   *timestamppb.Timestamp
		reason    partnerv1.Reason
		deferTo   time.Time
	}{
		{"marketing in the window", at(time.November, 27, 10, 0), mkt, nil, nil, ok, time.Time{}},
		{"marketing on sunday", sunday, mkt, nil, nil, ok, monday8},
		{"marketing on sunday, valid past monday 08:00", sunday, mkt, nil, ts(monday8.Add(time.Minute)), ok, monday8},
		{"marketing on sunday, expiring at monday 08:00", sunday, mkt, nil, ts(monday8), expired, time.Time{}},
		{"marketing on sunday, expiring sunday night", sunday, mkt, nil, ts(sunday.Add(3 * time.Hour)), expired, time.Time{}},
		{"marketing on 14 July 22:30 eve", at(time.July, 13, 22, 30), mkt, nil, nil, ok, at(time.July, 15, 8, 0)},
		{"scheduled for sunday", at(time.November, 27, 10, 0), mkt, ts(sunday), nil, ok, monday8},
		{"scheduled inside the window", sunday, mkt, ts(at(time.December, 1, 9, 0)), nil, ok, time.Time{}},
		{"customer relationship on sunday", sunday, partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP, nil, ts(sunday.Add(time.Hour)), ok, time.Time{}},
		{"MO-session reply on sunday", sunday, partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MO_SESSION_REPLY, nil, nil, ok, time.Time{}},
		{"interpersonal on sunday", sunday, partnerv1.TrafficCategory_TRAFFIC_CATEGORY_INTERPERSONAL, nil, nil, ok, time.Time{}},
		{"M2M on sunday", sunday, partnerv1.TrafficCategory_TRAFFIC_CATEGORY_M2M, nil, nil, ok, time.Time{}},
		// The examples, on the default 08:00–22:00 window.
		{"saturday 21:59 is sent", at(time.November, 28, 21, 59), mkt, nil, nil, ok, time.Time{}},
		{"saturday 22:00 waits for monday 08:00", at(time.November, 28, 22, 0), mkt, nil, nil, ok, monday8},
		{"saturday 22:00 before Easter Monday waits for tuesday", at(time.April, 4, 22, 0), mkt, nil, nil, ok, at(time.April, 7, 8, 0)},
		{"saturday 22:00 before Whit Monday waits for tuesday", at(time.May, 23, 22, 0), mkt, nil, nil, ok, at(time.May, 26, 8, 0)},
		{"14 July on a tuesday", at(time.July, 14, 10, 0), mkt, nil, nil, ok, at(time.July, 15, 8, 0)},
		{"14 July 2027, a wednesday", inYear(2027, time.July, 14, 10, 0), mkt, nil, nil, ok, inYear(2027, time.July, 15, 8, 0)},
		{"15 August 2025, a friday", inYear(2025, time.August, 15, 10, 0), mkt, nil, nil, ok, inYear(2025, time.August, 16, 8, 0)},
		{"15 August 2024, a thursday", inYear(2024, time.August, 15, 21, 0), mkt, nil, nil, ok, inYear(2024, time.August, 16, 8, 0)},
		{"15 August 2026, a saturday: monday", at(time.August, 15, 9, 0), mkt, nil, nil, ok, at(time.August, 17, 8, 0)},
		{"customer relationship on 15 August", at(time.August, 15, 9, 0), partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP, nil, nil, ok, time.Time{}},
	}
	check := checkWindow(windows{def: w})
	for _, tt := range tests {
		c := &Candidate{Accepted: &eventsv1.MessageAccepted{Category: tt.category, NotBefore: tt.notBefore, ExpiresAt: tt.expires}, Now: tt.now}
		v, err := check(context.Background(), c)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if v.Reason != tt.reason || !v.NotBefore.Equal(tt.deferTo) {
			t.Errorf("%s: got %s, not before %v, want %s, %v", tt.name, v.Reason, v.NotBefore, tt.reason, tt.deferTo)
		}
		if v.Reason == expired && !strings.Contains(v.Detail, "validity") {
			t.Errorf("%s: detail %q does not tell the validity", tt.name, v.Detail)
		}
	}
}

// Deferrals do not stop the rules: a later refusal still decides, and the
// latest NotBefore wins.
func TestCheckDefers(t *testing.T) {
	early, late := time.Unix(1000, 0), time.Unix(2000, 0)
	deferTo := func(at time.Time) Rule {
		return Rule{Name: "defer", Check: func(context.Context, *Candidate) (Verdict, error) { return Verdict{NotBefore: at}, nil }}
	}
	refuse := Rule{Name: "refuse", Check: func(context.Context, *Candidate) (Verdict, error) {
		return refuse(partnerv1.Reason_REASON_OPTED_OUT, "no"), nil
	}}
	c := &Candidate{Accepted: &eventsv1.MessageAccepted{MessageId: "m"}}
	s := &ruleSet{rules: []Rule{deferTo(late), deferTo(early)}}
	v, err := s.check(context.Background(), c)
	if err != nil || v.Reason != partnerv1.Reason_REASON_UNSPECIFIED || !v.NotBefore.Equal(late) {
		t.Errorf("two deferrals: got %s, %v, %v, want not before %v", v.Reason, v.NotBefore, err, late)
	}
	s.rules = append(s.rules, refuse)
	if v, _ := s.check(context.Background(), c); v.Reason != partnerv1.Reason_REASON_OPTED_OUT {
		t.Errorf("deferral then refusal: got %s, want %s", v.Reason, partnerv1.Reason_REASON_OPTED_OUT)
	}
}

// A short code with its own contract window (the af2m charter's 21:30)
// defers at 21:45 what the default window still lets through.
func TestWindowPerContract(t *testing.T) {
	p := policy.Default()
	p.ShortCodes = map[string]policy.ShortCode{"36999": {Window: &policy.Window{
		Open: policy.Clock(8 * time.Hour), Close: policy.Clock(21*time.Hour + 30*time.Minute),
	}}}
	ws, err := compileWindows(&p)
	if err != nil {
		t.Fatal(err)
	}
	paris := ws.def.Location()
	fri2145 := time.Date(2026, time.November, 27, 21, 45, 0, 0, paris)
	sat8 := time.Date(2026, time.November, 28, 8, 0, 0, 0, paris)
	check := checkWindow(ws)
	for _, tt := range []struct {
		shortCode string
		want      time.Time
	}{
		{"36123", time.Time{}},
		{"36999", sat8},
	} {
		c := &Candidate{Accepted: &eventsv1.MessageAccepted{ShortCode: tt.shortCode, Category: partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING}, Now: fri2145}
		v, err := check(context.Background(), c)
		if err != nil || v.Reason != partnerv1.Reason_REASON_UNSPECIFIED || !v.NotBefore.Equal(tt.want) {
			t.Errorf("%s on Friday 21:45: got %s, not before %v, %v, want %v", tt.shortCode, v.Reason, v.NotBefore, err, tt.want)
		}
	}
}

// The cap's fast create and its KV fallback keep counting right when a
// key exists, was deleted (a tombstone: the fast create fails, the KV
// create succeeds at the tombstone's revision) or holds a redelivered id.
func TestFrequencyKeyLifecycle(t *testing.T) {
	bb := bustest.Connect(t, bustest.Start(t))
	ctx := context.Background()
	kv, err := bb.JS.KeyValue(ctx, bus.BucketFrequency)
	if err != nil {
		t.Fatal(err)
	}
	paris, err := time.LoadLocation(Zone)
	if err != nil {
		t.Fatal(err)
	}
	n, err := numplan.Parse("06 07 12 34 56")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, time.November, 24, 10, 0, 0, 0, paris)
	for _, conn := range []*nats.Conn{bb.Conn, nil} {
		name := map[bool]string{true: "fast create", false: "KV only"}[conn != nil]
		t.Run(name, func(t *testing.T) {
			check := checkFrequency(Frequency{KV: kv, Conn: conn, Cap: 1, Period: "day", Loc: paris})
			brand := "Acme " + name
			decide := func(id string) partnerv1.Reason {
				t.Helper()
				v, err := check(ctx, &Candidate{Now: now, Number: n, Accepted: &eventsv1.MessageAccepted{
					MessageId: id, Brand: brand, Category: partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING,
				}})
				if err != nil {
					t.Fatal(err)
				}
				return v.Reason
			}
			const ok, capped = partnerv1.Reason_REASON_UNSPECIFIED, partnerv1.Reason_REASON_FREQUENCY_CAP
			key := frequencyKey(n.Hash(), brand, "day", now)
			steps := []struct {
				id     string
				delete bool
				want   partnerv1.Reason
			}{
				{"m1", false, ok},
				{"m1", false, ok}, // redelivery
				{"m2", false, capped},
				{"m3", true, ok}, // key deleted by hand: counting starts again
				{"m4", false, capped},
			}
			for _, st := range steps {
				if st.delete {
					if err := kv.Delete(ctx, key); err != nil {
						t.Fatal(err)
					}
				}
				if got := decide(st.id); got != st.want {
					t.Errorf("%s: got %s, want %s", st.id, got, st.want)
				}
			}
		})
	}
}
