package billing_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"pushsms.io/services/billing"
)

func sampleInvoice(t *testing.T) billing.Invoice {
	t.Helper()
	return billing.Invoice{
		Month: billing.Month{Year: 2026, Month: time.November}, TariffVersion: "ops-v2-2016-10", Currency: "EUR",
		Lines: []billing.InvoiceLine{
			{Kind: billing.LineActivationTechnical, ShortCode: "36002", Date: day(t, "2026-11-20"),
				Description: "Short-code activation (technical), short code 36002, 2026-11-20", Quantity: 1, UnitMillicents: 28_000_000, AmountCents: 28_000},
			{Kind: billing.LineDeliveredMT, Description: "SMS-MT delivered to the user, all short codes", Quantity: 5_800, UnitMillicents: 3_000, AmountCents: 17_400},
			{Kind: billing.LineQualifiedMSISDN, LegalEntity: "=HYPERLINK(\"x\")", Description: "MSISDNs qualified, \"basic\"", Quantity: 250, UnitMillicents: 1_000, AmountCents: 250},
		},
		TotalCents: 45_650,
	}
}

func TestWriteCSV(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleInvoice(t).WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	want := `month,tariff_version,kind,short_code,legal_entity,date,description,quantity,unit_price_eur,amount_eur
2026-11,ops-v2-2016-10,activation_technical,36002,,2026-11-20,"Short-code activation (technical), short code 36002, 2026-11-20",1,280.00,280.00
2026-11,ops-v2-2016-10,delivered_mt,,,,"SMS-MT delivered to the user, all short codes",5800,0.03,174.00
2026-11,ops-v2-2016-10,qualified_msisdn,,"'=HYPERLINK(""x"")",,"MSISDNs qualified, ""basic""",250,0.01,2.50
2026-11,ops-v2-2016-10,total,,,,Total excluding VAT,,,456.50
`
	if got := buf.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestInvoiceJSON(t *testing.T) {
	got, err := json.Marshal(sampleInvoice(t))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"month":"2026-11","tariff_version":"ops-v2-2016-10","currency":"EUR","lines":[` +
		`{"kind":"activation_technical","short_code":"36002","date":"2026-11-20","description":"Short-code activation (technical), short code 36002, 2026-11-20","quantity":1,"unit_millicents":28000000,"amount_cents":28000},` +
		`{"kind":"delivered_mt","description":"SMS-MT delivered to the user, all short codes","quantity":5800,"unit_millicents":3000,"amount_cents":17400},` +
		`{"kind":"qualified_msisdn","legal_entity":"=HYPERLINK(\"x\")","description":"MSISDNs qualified, \"basic\"","quantity":250,"unit_millicents":1000,"amount_cents":250}],` +
		`"total_cents":45650}`
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	var back billing.Invoice
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if back.Month != sampleInvoice(t).Month || len(back.Lines) != 3 || back.Lines[0].Date.String() != "2026-11-20" || back.TotalCents != 45_650 {
		t.Errorf("read back %+v", back)
	}
}

func TestFormatAmounts(t *testing.T) {
	cents := []struct {
		in   int64
		want string
	}{{0, "0.00"}, {5, "0.05"}, {250, "2.50"}, {1_954_150, "19541.50"}, {-5, "-0.05"}, {-1_954_150, "-19541.50"}}
	for _, tt := range cents {
		if got := billing.FormatCents(tt.in); got != tt.want {
			t.Errorf("FormatCents(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
	mcs := []struct {
		in   int64
		want string
	}{{0, "0.00"}, {1, "0.00001"}, {3_000, "0.03"}, {1_250, "0.0125"}, {333, "0.00333"}, {15_000_000, "150.00"}, {-3_000, "-0.03"}}
	for _, tt := range mcs {
		if got := billing.FormatMillicents(tt.in); got != tt.want {
			t.Errorf("FormatMillicents(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
