package compliance

import (
	"context"
	"flag"
	"strings"
	"testing"

	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

func TestDefaultShortCodeRanges(t *testing.T) {
	r, err := ParseShortCodeRanges(DefaultShortCodeRanges)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.String(); got != DefaultShortCodeRanges {
		t.Errorf("got %s, want %s", got, DefaultShortCodeRanges)
	}
}

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
	check := checkShortCodeRange(DefaultConfig().ShortCodeRanges)
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

func TestShortCodeRangesFlag(t *testing.T) {
	tests := []struct {
		in, want string // want "" for an error
	}{
		{"38=m2m+customer_relationship, 36=marketing", "36=marketing,38=m2m+customer_relationship"},
		{"34=mo_session_reply+mo_session_reply", "34=mo_session_reply"},
		{"36=promo", ""},
		{"36=unspecified", ""},
		{"360=marketing", ""},
		{"3a=marketing", ""},
		{"36", ""},
		{"36=marketing,36=m2m", ""},
		{"", ""},
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(new(strings.Builder))
		cfg.RegisterFlags(fs)
		err := fs.Parse([]string{"-shortcode-ranges", tt.in})
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("%q: got %s, want an error", tt.in, cfg.ShortCodeRanges.String())
		case tt.want != "" && err != nil:
			t.Errorf("%q: got %v, want %s", tt.in, err, tt.want)
		case tt.want != "" && cfg.ShortCodeRanges.String() != tt.want:
			t.Errorf("%q: got %s, want %s", tt.in, cfg.ShortCodeRanges.String(), tt.want)
		}
	}
	// The default table is not shared between configurations.
	if got := DefaultConfig().ShortCodeRanges.String(); got != DefaultShortCodeRanges {
		t.Errorf("default changed to %s", got)
	}
}
