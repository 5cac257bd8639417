package compliance

import (
	"context"
	"strings"
	"testing"

	"pushsms.io/lib/policy"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// Every range × every category, with the default table.
func TestShortCodeRange(t *testing.T) {
	const (
		mkt = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING
		crm = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP
		mo  = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MO_SESSION_REPLY
		ip  = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_INTERPERSONAL
		m2m = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_M2M
		uns = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_UNSPECIFIED
	)
	allowed := map[string][]partnerv1.TrafficCategory{
		"34123": {mo},
		"35123": {mkt},
		"36123": {mkt, crm},
		"37123": {ip},
		"38123": {m2m},
		"33700": nil,
		"39123": nil,
		"3":     nil,
		"":      nil,
	}
	def := policy.Default()
	check := checkShortCodeRange(rangesFromPolicy(&def))
	for sc, ok := range allowed {
		for _, cat := range []partnerv1.TrafficCategory{uns, mkt, crm, mo, ip, m2m} {
			want := partnerv1.Reason_REASON_SHORT_CODE_RANGE
			for _, a := range ok {
				if a == cat {
					want = partnerv1.Reason_REASON_UNSPECIFIED
				}
			}
			c := &Candidate{Accepted: &eventsv1.MessageAccepted{ShortCode: sc, Category: cat}}
			v, err := check(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			if v.Reason != want {
				t.Errorf("%q %s: got %s, want %s", sc, cat, v.Reason, want)
			}
			if want != partnerv1.Reason_REASON_UNSPECIFIED && len(sc) == 5 {
				if !strings.Contains(v.Detail, sc[:2]+"xxx") || !strings.Contains(v.Detail, strings.ReplaceAll(categoryName(cat), "_", " ")) {
					t.Errorf("%q %s: detail %q names neither range nor category", sc, cat, v.Detail)
				}
			}
		}
	}
}

// The range table is the policy's: an aggregator whose operator confirms
// 38xxx for customer relationship adds it without code.
func TestShortCodeRangesFromPolicy(t *testing.T) {
	p := policy.Default()
	p.ShortCodeRanges["38"] = []string{"m2m", "customer_relationship", "m2m"}
	delete(p.ShortCodeRanges, "37")
	r := rangesFromPolicy(&p)
	for _, tt := range []struct {
		sc   string
		cat  partnerv1.TrafficCategory
		want bool
	}{
		{"38123", partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP, true},
		{"38123", partnerv1.TrafficCategory_TRAFFIC_CATEGORY_M2M, true},
		{"37123", partnerv1.TrafficCategory_TRAFFIC_CATEGORY_INTERPERSONAL, false},
	} {
		if got := r.Allows(tt.sc, tt.cat); got != tt.want {
			t.Errorf("%s %s: allowed %v, want %v", tt.sc, tt.cat, got, tt.want)
		}
	}
	if n := len(r["38"]); n != 2 {
		t.Errorf("38xxx carries %d categories, want 2 (no duplicate)", n)
	}
	// The default policy is not changed by editing a copy's table.
	if got := policy.Default().ShortCodeRanges["38"]; len(got) != 1 {
		t.Errorf("default 38xxx changed to %v", got)
	}
}
