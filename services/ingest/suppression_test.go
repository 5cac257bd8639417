package ingest_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/numplan"
	"pushsms.io/lib/optout"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// importList streams spec then the batches as key's partner.
func (e *env) importList(t *testing.T, key string, spec *partnerv1.ImportSuppressionsSpec, batches ...[]string) (*partnerv1.ImportSuppressionsResponse, error) {
	t.Helper()
	st, err := partnerv1.NewSuppressionServiceClient(e.conn).ImportSuppressions(as(key))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&partnerv1.ImportSuppressionsRequest{Item: &partnerv1.ImportSuppressionsRequest_Spec{Spec: spec}}); err != nil {
		return st.CloseAndRecv()
	}
	for _, b := range batches {
		if err := st.Send(&partnerv1.ImportSuppressionsRequest{Item: &partnerv1.ImportSuppressionsRequest_Batch{Batch: &partnerv1.SuppressionBatch{Msisdns: b}}}); err != nil {
			break // the server ended the stream: CloseAndRecv says why
		}
	}
	return st.CloseAndRecv()
}

func (e *env) status(t *testing.T, key, msisdn, brand, shortCode string) *partnerv1.GetRecipientStatusResponse {
	t.Helper()
	resp, err := partnerv1.NewSuppressionServiceClient(e.conn).GetRecipientStatus(as(key),
		&partnerv1.GetRecipientStatusRequest{Msisdn: msisdn, Brand: brand, ShortCode: shortCode})
	if err != nil {
		t.Fatalf("GetRecipientStatus: %v", err)
	}
	return resp
}

// describe prints what a partner is shown, one suppression a token.
func describe(r *partnerv1.GetRecipientStatusResponse) string {
	var ss []string
	for _, s := range r.GetSuppressions() {
		ss = append(ss, fmt.Sprintf("%s/%s/%s/%s/%s/%s", strings.TrimPrefix(s.GetScope().String(), "SUPPRESSION_SCOPE_"),
			strings.TrimPrefix(s.GetSource().String(), "SUPPRESSION_SOURCE_"), s.GetBrand(), s.GetShortCode(), s.GetNote(), s.GetMoId()))
	}
	return fmt.Sprintf("blocked=%v %v", r.GetBlocked(), ss)
}

func TestSuppressions(t *testing.T) {
	e := start(t)
	resp, err := e.importList(t, e.keyA, &partnerv1.ImportSuppressionsSpec{Brand: "Acme", Note: "web form 2026-11"},
		[]string{"06 12 34 56 78", "06 12 34"}, []string{"+33 7 98 76 54 32", "01 23 45 67 89"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetImported() != 2 || resp.GetRefused() != 2 {
		t.Errorf("imported %d refused %d, want 2 and 2", resp.GetImported(), resp.GetRefused())
	}
	var refusals []string
	for _, r := range resp.GetErrors() {
		refusals = append(refusals, fmt.Sprintf("%d:%s", r.GetPosition(), strings.TrimPrefix(r.GetReason().String(), "REASON_")))
	}
	if want := []string{"1:INVALID_NUMBER", "3:NOT_MOBILE"}; !slices.Equal(refusals, want) {
		t.Errorf("refusals %v, want %v", refusals, want)
	}

	// Globex suppresses a number from all its messages; a subscriber sent
	// STOP to Globex's short code for its brand Zeta.
	if _, err := e.importList(t, e.keyB, &partnerv1.ImportSuppressionsSpec{Note: "crm"}, []string{"0033 6 12 34 56 78"}); err != nil {
		t.Fatal(err)
	}
	kv, err := e.bus.JS.KeyValue(context.Background(), bus.BucketOptOuts)
	if err != nil {
		t.Fatal(err)
	}
	n, err := numplan.Parse("0798765432")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := optout.NewStore(kv).Add(context.Background(), n, optout.Entry{Scope: optout.ScopeBrand, Brand: "Zeta", ShortCode: scB,
		Tenant: tenantB, Source: optout.SourceMOStop, At: time.Now(), MOID: "mo-1", Text: "Stop"}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, key, msisdn, brand, sc string
		want                         string
	}{
		{"own import, its brand", e.keyA, "0612345678", "Acme", "", "blocked=true [BRAND/PARTNER_IMPORT/Acme//web form 2026-11/]"},
		{"brand compared case-folded", e.keyA, "+33612345678", " ACME", scA, "blocked=true [BRAND/PARTNER_IMPORT/Acme//web form 2026-11/]"},
		{"own import, another brand", e.keyA, "06 12 34 56 78", "Zeta", "", "blocked=false [BRAND/PARTNER_IMPORT/Acme//web form 2026-11/]"},
		{"no brand: a brand opt-out does not apply, nor another partner's", e.keyA, "06 12 34 56 78", "", "", "blocked=false [BRAND/PARTNER_IMPORT/Acme//web form 2026-11/]"},
		{"another partner's import is not shown", e.keyB, "06 12 34 56 78", "Zeta", "", "blocked=true [PARTNER/PARTNER_IMPORT///crm/]"},
		{"own import and a STOP, oldest first", e.keyA, "0798765432", "Acme", "", "blocked=true [BRAND/PARTNER_IMPORT/Acme//web form 2026-11/ BRAND/MO_STOP/Zeta/36200//mo-1]"},
		{"a STOP is shown to every partner", e.keyB, "0798765432", "Zeta", scB, "blocked=true [BRAND/MO_STOP/Zeta/36200//mo-1]"},
		// The brand's subscriber opted out through Acme's partner: Globex,
		// sending for the same brand, would be refused; the proof is not its.
		{"blocked by another partner's import of the same brand", e.keyB, "0612345678", "Acme", "", "blocked=true [PARTNER/PARTNER_IMPORT///crm/]"},
		{"nothing", e.keyB, "0611111111", "Acme", "", "blocked=false []"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.status(t, tt.key, tt.msisdn, tt.brand, tt.sc)
			if d := describe(got); d != tt.want {
				t.Errorf("got %s, want %s", d, tt.want)
			}
			if !strings.Contains(got.GetRecipientMasked(), "••") {
				t.Errorf("recipient %q is not masked", got.GetRecipientMasked())
			}
		})
	}

	t.Run("import again keeps the first record", func(t *testing.T) {
		resp, err := e.importList(t, e.keyA, &partnerv1.ImportSuppressionsSpec{Brand: "acme", Note: "second"}, []string{"0612345678"})
		if err != nil || resp.GetImported() != 1 {
			t.Fatalf("import: %v %v, want 1 imported", resp, err)
		}
		if d, want := describe(e.status(t, e.keyA, "0612345678", "Acme", "")), "blocked=true [BRAND/PARTNER_IMPORT/Acme//web form 2026-11/]"; d != want {
			t.Errorf("got %s, want %s", d, want)
		}
	})
}

func TestSuppressionsRefused(t *testing.T) {
	e := start(t)
	client := partnerv1.NewSuppressionServiceClient(e.conn)
	t.Run("status unauthenticated", func(t *testing.T) {
		_, err := client.GetRecipientStatus(context.Background(), &partnerv1.GetRecipientStatusRequest{Msisdn: "0612345678"})
		wantCode(t, err, codes.Unauthenticated)
	})
	t.Run("import unauthenticated", func(t *testing.T) {
		_, err := e.importList(t, "psk_nope", &partnerv1.ImportSuppressionsSpec{Brand: "Acme"}, []string{"0612345678"})
		wantCode(t, err, codes.Unauthenticated)
	})
	t.Run("status invalid", func(t *testing.T) {
		_, err := client.GetRecipientStatus(as(e.keyA), &partnerv1.GetRecipientStatusRequest{Msisdn: "12", ShortCode: "361"})
		st := wantCode(t, err, codes.InvalidArgument)
		if got, want := fieldViolations(st), []string{"msisdn", "short_code"}; !slices.Equal(got, want) {
			t.Errorf("field violations %v, want %v", got, want)
		}
	})
	t.Run("import without a spec", func(t *testing.T) {
		st, err := client.ImportSuppressions(as(e.keyA))
		if err != nil {
			t.Fatal(err)
		}
		_ = st.Send(&partnerv1.ImportSuppressionsRequest{Item: &partnerv1.ImportSuppressionsRequest_Batch{Batch: &partnerv1.SuppressionBatch{Msisdns: []string{"0612345678"}}}})
		_, err = st.CloseAndRecv()
		wantCode(t, err, codes.InvalidArgument)
	})
	t.Run("import with a long note", func(t *testing.T) {
		_, err := e.importList(t, e.keyA, &partnerv1.ImportSuppressionsSpec{Note: strings.Repeat("n", 257)})
		st := wantCode(t, err, codes.InvalidArgument)
		if got := fieldViolations(st); !slices.Equal(got, []string{"spec.note"}) {
			t.Errorf("field violations %v, want [spec.note]", got)
		}
	})
}
