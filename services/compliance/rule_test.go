package compliance

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/fault"
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
	rules := DefaultRules()
	if len(rules) == 0 || rules[0].Name != "numbering" {
		t.Fatalf("got rules %v, want numbering first", rules)
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
