package compliance

import (
	"context"
	"strings"
	"testing"
	"time"

	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/numplan"
	"pushsms.io/lib/optout"
	"pushsms.io/lib/policy"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

func TestMOSession(t *testing.T) {
	srv := bustest.Start(t)
	b := bustest.Connect(t, srv)
	ctx := context.Background()
	// The store the MO consumer records sessions in (bucket MO_SESSIONS).
	sessions, err := optout.OpenSessions(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	p := policy.Default()
	p.MOSession = policy.Duration(24 * time.Hour)
	check := checkMOSession(&p, sessions)

	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	number := func(s string) numplan.Number {
		n, err := numplan.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	mo := func(shortCode, recipient string, at time.Time) {
		if err := sessions.Touch(ctx, shortCode, number(recipient), at); err != nil {
			t.Fatal(err)
		}
	}
	mo("34123", "0611111111", now.Add(-2*time.Hour))
	mo("34123", "0622222222", now.Add(-25*time.Hour))
	mo("34999", "0633333333", now.Add(-time.Minute))
	mo("34123", "0644444444", now.Add(time.Second)) // the MO side's clock is ahead

	tests := []struct {
		name      string
		recipient string
		category  partnerv1.TrafficCategory
		want      partnerv1.Reason
		detail    string
	}{
		{"reply 2 h after the MO", "0611111111", catMO, pass, ""},
		{"reply 25 h after the MO", "0622222222", catMO, partnerv1.Reason_REASON_NO_MO_SESSION, "25h0m0s old; a session lasts 24h0m0s"},
		{"MO to another short code", "0633333333", catMO, partnerv1.Reason_REASON_NO_MO_SESSION, "there is none"},
		{"never wrote", "0655555555", catMO, partnerv1.Reason_REASON_NO_MO_SESSION, "there is none"},
		{"MO stamped a second ahead", "0644444444", catMO, pass, ""},
		{"not a reply", "0655555555", catMarketing, pass, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Candidate{
				Accepted: &eventsv1.MessageAccepted{ShortCode: "34123", Category: tt.category},
				Now:      now,
				Number:   number(tt.recipient),
			}
			v, err := check(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if v.Reason != tt.want {
				t.Fatalf("got %s (%s), want %s", v.Reason, v.Detail, tt.want)
			}
			if !strings.Contains(v.Detail, tt.detail) {
				t.Errorf("detail %q, want it to hold %q", v.Detail, tt.detail)
			}
		})
	}

	// The store down: the message is retried, not refused.
	srv.Stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c := &Candidate{Accepted: &eventsv1.MessageAccepted{ShortCode: "34123", Category: catMO}, Now: now, Number: number("0611111111")}
	if v, err := check(ctx, c); err == nil {
		t.Errorf("store down: got %s, nil error; want an error", v.Reason)
	}
}
