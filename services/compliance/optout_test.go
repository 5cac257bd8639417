package compliance

import (
	"context"
	"fmt"
	"testing"
	"time"

	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/optout"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// The opt-out rule refuses with the scope and the French date in words,
// and lets through what no opt-out covers, whatever the category.
func TestOptOutRule(t *testing.T) {
	e := newMOEnv(t)
	ctx := context.Background()
	stopped := mustNumber(t, "06 12 34 56 78")
	coded := mustNumber(t, "06 22 33 44 55")
	imported := mustNumber(t, "07 81 00 00 01")
	late := time.Date(2026, 11, 27, 23, 30, 0, 0, time.UTC) // 28 November in Paris
	for _, it := range []optout.Item{
		{Number: stopped, Entry: optout.Entry{Scope: optout.ScopeBrand, Brand: "Acme", Tenant: "t1", ShortCode: "36123", Source: optout.SourceMOStop, At: moT0, MOID: "mo/1", Text: "STOP"}},
		{Number: coded, Entry: optout.Entry{Scope: optout.ScopeShortCode, ShortCode: "36123", Source: optout.SourceMOStop, At: late, MOID: "mo/2", Text: "Arrêt"}},
		{Number: imported, Entry: optout.Entry{Scope: optout.ScopePartner, Tenant: "t1", Source: optout.SourcePartnerImport, At: moT0, Note: "web form 2026-11"}},
		{Number: imported, Entry: optout.Entry{Scope: optout.ScopeBrand, Brand: "Zeta", Tenant: "t2", Source: optout.SourcePartnerImport, At: moT0}},
	} {
		if _, err := e.store.Add(ctx, it.Number, it.Entry); err != nil {
			t.Fatal(err)
		}
	}
	// The index is another connection's copy, fed in order: wait until it
	// has the last entry written.
	bustest.Eventually(t, time.Second, func() error {
		if _, ok := e.index.Blocked(imported, "t2", "Zeta", "36000"); !ok {
			return fmt.Errorf("the index does not have the last opt-out yet")
		}
		return nil
	})
	customer := partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP
	for _, tc := range []struct {
		name                     string
		to                       string
		tenant, brand, shortCode string
		category                 partnerv1.TrafficCategory
		want                     string // the detail; "" lets the message through
	}{
		{"brand STOP, same short code", "06 12 34 56 78", "t1", "Acme", "36123", 0,
			`the recipient opted out of every message of brand "Acme" on 2026-11-27, by sending "STOP" to short code 36123`},
		{"brand STOP, another short code and partner", "+33 6 12 34 56 78", "t9", " acme ", "35000", 0,
			`the recipient opted out of every message of brand "Acme" on 2026-11-27, by sending "STOP" to short code 36123`},
		{"brand STOP, customer relationship too", "06 12 34 56 78", "t1", "Acme", "36123", customer,
			`the recipient opted out of every message of brand "Acme" on 2026-11-27, by sending "STOP" to short code 36123`},
		{"brand STOP, another brand", "06 12 34 56 78", "t1", "Zeta", "36123", 0, ""},
		{"short-code STOP, any brand, French date", "06 22 33 44 55", "t2", "Zeta", "36123", 0,
			`the recipient opted out of every message from short code 36123 on 2026-11-28, by sending "Arrêt" to short code 36123`},
		{"short-code STOP, another short code", "06 22 33 44 55", "t2", "Zeta", "36124", 0, ""},
		{"partner import with a note", "07 81 00 00 01", "t1", "Acme", "38000", 0,
			`the recipient opted out of every message of this partner on 2026-11-27, per the partner's suppression list (web form 2026-11)`},
		{"brand import without a note", "07 81 00 00 01", "t3", "ZETA", "36000", 0,
			`the recipient opted out of every message of brand "Zeta" on 2026-11-27, per the partner's suppression list`},
		{"import of another partner and brand", "07 81 00 00 01", "t3", "Acme", "36000", 0, ""},
	} {
		acc := clearedFor(tc.brand, tc.tenant, tc.shortCode, "m")
		if tc.category != 0 {
			acc.Category = tc.category
		}
		v, err := e.rule.Check(ctx, &Candidate{Accepted: acc, Number: mustNumber(t, tc.to), Now: moT0})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		switch {
		case tc.want == "" && v.Reason != partnerv1.Reason_REASON_UNSPECIFIED:
			t.Errorf("%s: %v (%s), want accepted", tc.name, v.Reason, v.Detail)
		case tc.want != "" && (v.Reason != partnerv1.Reason_REASON_OPTED_OUT || v.Detail != tc.want):
			t.Errorf("%s: %v %q, want REASON_OPTED_OUT %q", tc.name, v.Reason, v.Detail, tc.want)
		}
	}
	if r := optOutRule(e.index); r.Name != "optout" || r.Source == "" {
		t.Errorf("rule %q with source %q, want optout with its source", r.Name, r.Source)
	}
}
