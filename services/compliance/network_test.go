package compliance

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"pushsms.io/lib/numplan"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

func testPlan(t *testing.T) *numplan.Plan {
	t.Helper()
	p, err := numplan.Load()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// portedMap is a ported-numbers table: E.164 → current operator.
type portedMap map[string]string

func (p portedMap) Operator(_ context.Context, n numplan.Number) (string, bool, error) {
	code, ok := p[n.E164()]
	return code, ok, nil
}

type failingLookup struct{ err error }

func (f failingLookup) Operator(context.Context, numplan.Number) (string, bool, error) {
	return "", false, f.err
}

func TestNetwork(t *testing.T) {
	plan := testPlan(t)
	const (
		orange06 = "06 07 12 34 56" // block 0607, FRTE
		orange07 = "07 70 12 34 56" // block 07701, FRTE
		sfr      = "06 12 34 56 78" // block 0612, SFR0
		bouygues = "06 98 76 54 32" // block 0698, BOUY
		free     = "07 81 23 45 67" // block 0781, FRMO
		noBlock  = "07 99 99 99 99" // no block in the extract
	)
	const ok = partnerv1.Reason_REASON_UNSPECIFIED
	const off = partnerv1.Reason_REASON_NOT_ON_NETWORK
	tests := []struct {
		name      string
		recipient string
		lookup    NetworkLookup
		want      partnerv1.Reason
	}{
		{"Orange 06 block", orange06, nil, ok},
		{"Orange 07 block", orange07, nil, ok},
		{"SFR block", sfr, nil, off},
		{"Bouygues block", bouygues, nil, off},
		{"Free block", free, nil, off},
		{"no block", noBlock, nil, off},
		{"SFR block ported to Orange", sfr, portedMap{"+33612345678": numplan.Orange}, ok},
		{"Orange block ported to Free", orange06, portedMap{"+33607123456": "FRMO"}, off},
		{"no block, lookup says Orange", noBlock, portedMap{"+33799999999": numplan.Orange}, ok},
		{"lookup does not know: block holder decides", orange07, portedMap{}, ok},
		{"lookup does not know, SFR block", sfr, portedMap{}, off},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := numplan.Parse(tt.recipient)
			if err != nil {
				t.Fatal(err)
			}
			c := &Candidate{Accepted: &eventsv1.MessageAccepted{Recipient: tt.recipient}, Number: n}
			v, err := checkNetwork(Network{Plan: plan, Operator: numplan.Orange, Lookup: tt.lookup})(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			if v.Reason != tt.want {
				t.Errorf("got %s (%q), want %s", v.Reason, v.Detail, tt.want)
			}
			if d := strings.ReplaceAll(tt.recipient, " ", ""); strings.Contains(v.Detail, d[1:]) {
				t.Errorf("detail %q holds the number", v.Detail)
			}
		})
	}
}

// A lookup that fails leaves the message undecided: the error goes back to
// the consumer, which has the event redelivered.
func TestNetworkLookupErrorIsRetried(t *testing.T) {
	down := errors.New("lookup: connection refused")
	s := &ruleSet{rules: []Rule{
		{Name: "numbering", Check: checkNumbering},
		{Name: "network", Check: checkNetwork(Network{Plan: testPlan(t), Operator: numplan.Orange, Lookup: failingLookup{down}})},
	}}
	c := &Candidate{Accepted: &eventsv1.MessageAccepted{MessageId: "m", Recipient: "06 07 12 34 56"}, Now: time.Now()}
	v, err := s.check(context.Background(), c)
	if !errors.Is(err, down) {
		t.Errorf("got verdict %+v, error %v, want error %v", v, err, down)
	}
}

func TestLookupsAskInTurn(t *testing.T) {
	n, err := numplan.Parse("06 12 34 56 78")
	if err != nil {
		t.Fatal(err)
	}
	down := errors.New("lookup down")
	for _, tc := range []struct {
		name      string
		ls        Lookups
		wantCode  string
		wantKnown bool
		wantErr   error
	}{
		{"table knows: the real-time lookup is not asked", Lookups{portedMap{n.E164(): "FRTE"}, failingLookup{down}}, "FRTE", true, nil},
		{"table does not know: next lookup answers", Lookups{portedMap{}, portedMap{n.E164(): "SFR0"}}, "SFR0", true, nil},
		{"a failing lookup decides (retry), no fallback to the block", Lookups{portedMap{}, failingLookup{down}}, "", false, down},
		{"nil entries are skipped", Lookups{nil, portedMap{}}, "", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, known, err := tc.ls.Operator(context.Background(), n)
			if code != tc.wantCode || known != tc.wantKnown || !errors.Is(err, tc.wantErr) {
				t.Fatalf("Operator = %q, %v, %v; want %q, %v, %v", code, known, err, tc.wantCode, tc.wantKnown, tc.wantErr)
			}
		})
	}
}
