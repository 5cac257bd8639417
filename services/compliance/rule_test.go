package compliance

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/calendar"
	"pushsms.io/lib/fault"
	"pushsms.io/lib/numplan"
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
			s := &Service{rules: tt.rules}
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

func TestDefaultRulesNumberingFirst(t *testing.T) {
	rules := DefaultRules(testWindow(t), DefaultConfig().ShortCodeRanges, &Network{Plan: testPlan(t), Operator: numplan.Orange}, &Frequency{Cap: 1, Loc: time.UTC})
	if len(rules) == 0 || rules[0].Name != "numbering" {
		t.Fatalf("got rules %v, want numbering first", rules)
	}
	var names []string
	for _, r := range rules {
		names = append(names, r.Name)
	}
	if got, want := strings.Join(names, ","), "numbering,shortcode_range,validity,network,window,frequency"; got != want {
		t.Errorf("got rules %s, want %s", got, want)
	}
	// An expired message to an invalid number is refused for the number.
	s := &Service{rules: rules}
	c := &Candidate{
		Accepted: &eventsv1.MessageAccepted{MessageId: "m", Recipient: "nope", ExpiresAt: timestamppb.New(time.Unix(0, 0))},
		Now:      time.Now(),
	}
	v, err := s.check(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if v.Reason != partnerv1.Reason_REASON_INVALID_NUMBER {
		t.Errorf("got %s, want %s", v.Reason, partnerv1.Reason_REASON_INVALID_NUMBER)
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
	w, err := DefaultConfig().window()
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWindow(t *testing.T) {
	w := testWindow(t)
	paris := w.Location()
	at := func(m time.Month, d, h, min int) time.Time { return time.Date(2026, m, d, h, min, 0, 0, paris) }
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
	}
	check := checkWindow(w)
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
	s := &Service{rules: []Rule{deferTo(late), deferTo(early)}}
	v, err := s.check(context.Background(), c)
	if err != nil || v.Reason != partnerv1.Reason_REASON_UNSPECIFIED || !v.NotBefore.Equal(late) {
		t.Errorf("two deferrals: got %s, %v, %v, want not before %v", v.Reason, v.NotBefore, err, late)
	}
	s.rules = append(s.rules, refuse)
	if v, _ := s.check(context.Background(), c); v.Reason != partnerv1.Reason_REASON_OPTED_OUT {
		t.Errorf("deferral then refusal: got %s, want %s", v.Reason, partnerv1.Reason_REASON_OPTED_OUT)
	}
}

func TestWallClockFlag(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"08:00", 8 * time.Hour, true},
		{"21:30", 21*time.Hour + 30*time.Minute, true},
		{"24:00", 24 * time.Hour, true},
		{"00:00", 0, true},
		{"8", 0, false},
		{"08:60", 0, false},
		{"24:01", 0, false},
		{"08:0", 0, false},
		{"-1:00", 0, false},
	}
	for _, tt := range tests {
		var w wallClock
		err := w.Set(tt.in)
		if (err == nil) != tt.ok || (tt.ok && time.Duration(w) != tt.want) {
			t.Errorf("Set(%q): got %v, %v, want %v, ok %v", tt.in, time.Duration(w), err, tt.want, tt.ok)
		}
		if tt.ok && w.String() != tt.in {
			t.Errorf("Set(%q).String() = %q", tt.in, w.String())
		}
	}
}
