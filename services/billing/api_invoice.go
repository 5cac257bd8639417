package billing

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/fault"
	adminv1 "pushsms.io/proto/gen/pushsms/admin/v1"
)

// GetInvoice computes the operator's invoice of a month, and its document
// in the format asked.
func (a *API) GetInvoice(ctx context.Context, req *adminv1.GetInvoiceRequest) (*adminv1.GetInvoiceResponse, error) {
	m, err := parseMonthField("month", req.GetMonth())
	if err != nil {
		return nil, err
	}
	inv, err := BuildInvoice(ctx, a.pool, m)
	if err != nil {
		return nil, err
	}
	resp := &adminv1.GetInvoiceResponse{Invoice: invoiceProto(inv)}
	var doc bytes.Buffer
	switch req.GetFormat() {
	case adminv1.DocumentFormat_DOCUMENT_FORMAT_UNSPECIFIED:
	case adminv1.DocumentFormat_DOCUMENT_FORMAT_CSV:
		if err := inv.WriteCSV(&doc); err != nil {
			return nil, err
		}
		resp.ContentType = "text/csv"
	case adminv1.DocumentFormat_DOCUMENT_FORMAT_JSON:
		enc := json.NewEncoder(&doc)
		enc.SetIndent("", "  ")
		if err := enc.Encode(inv); err != nil {
			return nil, fmt.Errorf("invoice %s json: %w", m, err)
		}
		resp.ContentType = "application/json"
	default:
		return nil, fault.Invalidf("format", "%d: want DOCUMENT_FORMAT_CSV or DOCUMENT_FORMAT_JSON, or none", req.GetFormat())
	}
	resp.Document = doc.Bytes()
	return resp, nil
}

func invoiceProto(inv Invoice) *adminv1.Invoice {
	out := &adminv1.Invoice{Month: inv.Month.String(), TariffVersion: inv.TariffVersion, TotalCents: inv.TotalCents, Currency: inv.Currency}
	for _, l := range inv.Lines {
		out.Lines = append(out.Lines, &adminv1.InvoiceLine{
			Kind: l.Kind, ShortCode: l.ShortCode, Description: l.Description, Quantity: l.Quantity,
			UnitMillicents: l.UnitMillicents, AmountCents: l.AmountCents, LegalEntity: l.LegalEntity, Date: l.Date.String(),
		})
	}
	return out
}

// PutTariff stores a new tariff version from its JSON document.
func (a *API) PutTariff(ctx context.Context, req *adminv1.PutTariffRequest) (*adminv1.PutTariffResponse, error) {
	t, err := ParseTariff([]byte(req.GetDocument()))
	if err != nil {
		return nil, err
	}
	if err := PutTariff(ctx, a.pool, t); err != nil {
		return nil, err
	}
	a.log.InfoContext(ctx, "tariff stored", "version", t.Version, "valid_from", t.ValidFrom.String(), "valid_to", t.ValidTo.String())
	tp, err := tariffProto(t)
	if err != nil {
		return nil, err
	}
	return &adminv1.PutTariffResponse{Tariff: tp}, nil
}

// ListTariffs lists the stored versions and the default.
func (a *API) ListTariffs(ctx context.Context, _ *adminv1.ListTariffsRequest) (*adminv1.ListTariffsResponse, error) {
	ts, err := Tariffs(ctx, a.pool)
	if err != nil {
		return nil, err
	}
	resp := &adminv1.ListTariffsResponse{}
	for _, t := range ts {
		tp, err := tariffProto(t)
		if err != nil {
			return nil, err
		}
		resp.Tariffs = append(resp.Tariffs, tp)
	}
	if resp.DefaultTariff, err = tariffProto(DefaultTariff()); err != nil {
		return nil, err
	}
	return resp, nil
}

func tariffProto(t Tariff) (*adminv1.Tariff, error) {
	doc, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("tariff %s: %w", t.Version, err)
	}
	return &adminv1.Tariff{Version: t.Version, ValidFrom: t.ValidFrom.String(), ValidTo: t.ValidTo.String(), Document: string(doc)}, nil
}

// enumToken turns an enum value into the token the catalog stores:
// SHORT_CODE_EVENT_KIND_OADC_ON with its prefix is "oadc_on".
func enumToken(v fmt.Stringer, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(v.String(), prefix))
}

// RecordCatalogEvent appends a short-code event, a qualification event or
// a count of qualified MSISDNs.
func (a *API) RecordCatalogEvent(ctx context.Context, req *adminv1.RecordCatalogEventRequest) (*adminv1.RecordCatalogEventResponse, error) {
	switch ev := req.GetEvent().(type) {
	case *adminv1.RecordCatalogEventRequest_ShortCodeEvent:
		e := ev.ShortCodeEvent
		if e.GetKind() == adminv1.ShortCodeEventKind_SHORT_CODE_EVENT_KIND_UNSPECIFIED {
			return nil, fault.Invalidf("short_code_event.kind", "required")
		}
		d, err := parseDateField("short_code_event.effective", e.GetEffective())
		if err != nil {
			return nil, err
		}
		got, err := RecordShortCodeEvent(ctx, a.pool, ShortCodeEvent{
			ShortCode: e.GetShortCode(), Kind: EventKind(enumToken(e.GetKind(), "SHORT_CODE_EVENT_KIND_")),
			Effective: d, Throughput: int(e.GetThroughput()), Note: e.GetNote(),
		})
		if err != nil {
			return nil, err
		}
		a.log.InfoContext(ctx, "short code event recorded", "short_code", got.ShortCode, "kind", string(got.Kind), "effective", got.Effective.String(), "id", got.ID)
		return &adminv1.RecordCatalogEventResponse{Id: got.ID}, nil
	case *adminv1.RecordCatalogEventRequest_QualificationEvent:
		e := ev.QualificationEvent
		if e.GetKind() == adminv1.QualificationEventKind_QUALIFICATION_EVENT_KIND_UNSPECIFIED {
			return nil, fault.Invalidf("qualification_event.kind", "required")
		}
		d, err := parseDateField("qualification_event.effective", e.GetEffective())
		if err != nil {
			return nil, err
		}
		got, err := RecordQualificationEvent(ctx, a.pool, QualificationEvent{
			LegalEntity: e.GetLegalEntity(), Kind: QualificationKind(enumToken(e.GetKind(), "QUALIFICATION_EVENT_KIND_")),
			Effective: d, Note: e.GetNote(),
		})
		if err != nil {
			return nil, err
		}
		a.log.InfoContext(ctx, "qualification event recorded", "kind", string(got.Kind), "effective", got.Effective.String(), "id", got.ID)
		return &adminv1.RecordCatalogEventResponse{Id: got.ID}, nil
	case *adminv1.RecordCatalogEventRequest_QualifiedMsisdns:
		e := ev.QualifiedMsisdns
		m, err := parseMonthField("qualified_msisdns.month", e.GetMonth())
		if err != nil {
			return nil, err
		}
		got, err := RecordQualified(ctx, a.pool, QualifiedCount{LegalEntity: e.GetLegalEntity(), Month: m, MSISDNs: e.GetMsisdns(), Note: e.GetNote()})
		if err != nil {
			return nil, err
		}
		a.log.InfoContext(ctx, "qualified msisdns recorded", "month", m.String(), "msisdns", got.MSISDNs, "id", got.ID)
		return &adminv1.RecordCatalogEventResponse{Id: got.ID}, nil
	}
	return nil, fault.Invalidf("event", "required: short_code_event, qualification_event or qualified_msisdns")
}

// ListCatalogEvents lists the histories.
func (a *API) ListCatalogEvents(ctx context.Context, req *adminv1.ListCatalogEventsRequest) (*adminv1.ListCatalogEventsResponse, error) {
	sc, entity := req.GetShortCode(), req.GetLegalEntity()
	if sc != "" && entity != "" {
		return nil, fault.Invalidf("legal_entity", "give a short code or a legal entity, not both")
	}
	resp := &adminv1.ListCatalogEventsResponse{}
	if entity == "" {
		var (
			events []ShortCodeEvent
			err    error
		)
		if sc != "" {
			events, err = ShortCodeHistory(ctx, a.pool, sc)
		} else {
			events, err = shortCodeEvents(ctx, a.pool, "", Date{})
		}
		if err != nil {
			return nil, err
		}
		for _, e := range events {
			resp.ShortCodeEvents = append(resp.ShortCodeEvents, &adminv1.ShortCodeEvent{
				Id: e.ID, ShortCode: e.ShortCode, Effective: e.Effective.String(), Throughput: int32(e.Throughput),
				Kind:       adminv1.ShortCodeEventKind(adminv1.ShortCodeEventKind_value["SHORT_CODE_EVENT_KIND_"+strings.ToUpper(string(e.Kind))]),
				Note:       e.Note,
				RecordedAt: timestamppb.New(e.RecordedAt),
			})
		}
	}
	if sc == "" {
		var (
			events []QualificationEvent
			err    error
		)
		if entity != "" {
			events, err = QualificationHistory(ctx, a.pool, entity)
		} else {
			events, err = qualificationEvents(ctx, a.pool, "", Date{})
		}
		if err != nil {
			return nil, err
		}
		for _, e := range events {
			resp.QualificationEvents = append(resp.QualificationEvents, &adminv1.QualificationEvent{
				Id: e.ID, LegalEntity: e.LegalEntity, Effective: e.Effective.String(), Note: e.Note,
				Kind:       adminv1.QualificationEventKind(adminv1.QualificationEventKind_value["QUALIFICATION_EVENT_KIND_"+strings.ToUpper(string(e.Kind))]),
				RecordedAt: timestamppb.New(e.RecordedAt),
			})
		}
		counts, err := qualifiedCounts(ctx, a.pool, entity)
		if err != nil {
			return nil, err
		}
		for _, c := range counts {
			resp.QualifiedMsisdns = append(resp.QualifiedMsisdns, &adminv1.QualifiedMsisdns{
				Id: c.ID, LegalEntity: c.LegalEntity, Month: c.Month.String(), Msisdns: c.MSISDNs, Note: c.Note,
				RecordedAt: timestamppb.New(c.RecordedAt),
			})
		}
	}
	return resp, nil
}

// qualifiedCounts lists the recorded counts of entity ("" for all), by
// month then as recorded.
func qualifiedCounts(ctx context.Context, q Querier, entity string) ([]QualifiedCount, error) {
	rows, err := q.Query(ctx, `
		SELECT id, legal_entity, month, msisdns, note, recorded_at FROM billing.qualified_msisdns
		WHERE $1 = '' OR legal_entity = $1 ORDER BY month, id`, entity)
	if err != nil {
		return nil, fmt.Errorf("qualified MSISDNs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (QualifiedCount, error) {
		var (
			c     QualifiedCount
			month time.Time
		)
		err := row.Scan(&c.ID, &c.LegalEntity, &month, &c.MSISDNs, &c.Note, &c.RecordedAt)
		c.Month = monthOfDate(month)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("qualified MSISDNs: %w", err)
	}
	return out, nil
}
