package compliance

import (
	"context"
	"strings"
	"testing"

	"pushsms.io/lib/policy"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

func TestSender(t *testing.T) {
	p := policy.Default()
	p.ShortCodes = map[string]policy.ShortCode{"36123": {OAdCModification: true}}
	check := checkSender(&p)
	const refused = partnerv1.Reason_REASON_SENDER_NOT_ALLOWED
	tests := []struct {
		name, shortCode, sender string
		want                    partnerv1.Reason
		detail                  string
	}{
		{"no sender: the short code", "36999", "", pass, ""},
		{"the short code itself", "36999", "36999", pass, ""},
		{"brand without the option", "36999", "Acme", refused, "36999 has no OAdC modification option"},
		{"brand with the option", "36123", "Acme", pass, ""},
		{"brand with accents GSM-7 has", "36123", "Hélène&Cie", pass, ""},
		{"brand with a space and digits", "36123", "Acme 2026", pass, ""},
		{"11 characters", "36123", "Boulangerie", pass, ""},
		{"12 characters", "36123", "Boulangeries", refused, "12 characters; at most 11"},
		{"accent outside GSM-7", "36123", "Crêperie", refused, "not in the GSM 03.38 default alphabet"},
		{"extension character", "36123", "Acme€", refused, "not in the GSM 03.38 default alphabet"},
		{"line break", "36123", "Ac\nme", refused, "control character"},
		{"no letter", "36123", "!!-??", refused, "no letter"},
		{"leading space", "36123", " Acme", refused, "space"},
		{"an MSISDN", "36123", "0612345678", refused, "numeric"},
		{"another short code", "36123", "36999", refused, "numeric"},
		{"an E.164 number", "36123", "+33612345678", refused, "international phone number"},
		{"a formatted number", "36123", "06 12 34 56 78", refused, "reads as a phone number"},
		{"a number with the option off", "36999", "+33612345678", refused, "international phone number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := check(context.Background(), &Candidate{Accepted: &eventsv1.MessageAccepted{
				ShortCode: tt.shortCode, Sender: tt.sender, Category: catMarketing,
			}})
			if err != nil {
				t.Fatal(err)
			}
			if v.Reason != tt.want {
				t.Fatalf("got %s (%s), want %s", v.Reason, v.Detail, tt.want)
			}
			if !strings.Contains(v.Detail, tt.detail) {
				t.Errorf("detail %q, want it to hold %q", v.Detail, tt.detail)
			}
			if strings.Contains(v.Detail, "612345678") {
				t.Errorf("detail %q echoes the number", v.Detail)
			}
		})
	}
}

func TestSenderMaxLengthIsPolicy(t *testing.T) {
	p := policy.Default()
	p.Sender.MaxLength = 6
	p.ShortCodes = map[string]policy.ShortCode{"36123": {OAdCModification: true}}
	v, err := checkSender(&p)(context.Background(), &Candidate{Accepted: &eventsv1.MessageAccepted{ShortCode: "36123", Sender: "Galeries"}})
	if err != nil || v.Reason != partnerv1.Reason_REASON_SENDER_NOT_ALLOWED {
		t.Errorf("got %s, %v, want %s", v.Reason, err, partnerv1.Reason_REASON_SENDER_NOT_ALLOWED)
	}
}

func TestShortCodeOption(t *testing.T) {
	p := policy.Default()
	p.ShortCodes = map[string]policy.ShortCode{"35100": {GeoPresence: true}, "35200": {OAdCModification: true}}
	check := checkShortCodeOption(&p)
	const refused = partnerv1.Reason_REASON_SHORT_CODE_RANGE
	tests := []struct {
		shortCode string
		category  partnerv1.TrafficCategory
		want      partnerv1.Reason
	}{
		{"35100", catMarketing, pass},
		{"35200", catMarketing, refused},
		{"35300", catMarketing, refused},
		{"36123", catMarketing, pass},
		// Other categories on 35xxx are the range rule's business.
		{"35300", catCRM, pass},
	}
	for _, tt := range tests {
		v, err := check(context.Background(), &Candidate{Accepted: &eventsv1.MessageAccepted{ShortCode: tt.shortCode, Category: tt.category}})
		if err != nil {
			t.Fatal(err)
		}
		if v.Reason != tt.want {
			t.Errorf("%s %s: got %s, want %s", tt.shortCode, tt.category, v.Reason, tt.want)
		}
		if v.Reason != pass && !strings.Contains(v.Detail, "geo-presence") {
			t.Errorf("%s: detail %q does not name the missing option", tt.shortCode, v.Detail)
		}
	}
}
