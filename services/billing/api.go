package billing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/fault"
	adminv1 "pushsms.io/proto/gen/pushsms/admin/v1"
)

const (
	// maxStatementChunk bounds one chunk of an uploaded statement, far
	// below gRPC's 4 MB message limit.
	maxStatementChunk = 1 << 20
	// maxSourceName bounds the name an import is kept under.
	maxSourceName = 256
	// maxReportLines bounds the lines of a reconciliation in one
	// response: a month of differences on every short code of a large
	// aggregator, well below gRPC's 4 MB.
	maxReportLines = 10_000
)

// API is the admin BillingService. It is for the aggregator's operators,
// not partners, and has no authentication of its own: it must only be
// reachable inside the cluster, like compliance's PortedNumbersService.
type API struct {
	adminv1.UnimplementedBillingServiceServer
	pool *pgxpool.Pool
	log  *slog.Logger
	loc  *time.Location
	now  func() time.Time
}

// NewAPI returns the service, on pool migrated with Schema and Migrations.
func NewAPI(pool *pgxpool.Pool, log *slog.Logger) (*API, error) {
	loc, err := time.LoadLocation(Zone)
	if err != nil {
		return nil, fmt.Errorf("billing api: %w", err)
	}
	return &API{pool: pool, log: log, loc: loc, now: time.Now}, nil
}

// Register registers the service on a gRPC server.
func (a *API) Register(r grpc.ServiceRegistrar) { adminv1.RegisterBillingServiceServer(r, a) }

// registerAPI serves the BillingService on the service's gRPC port.
func (s *Service) registerAPI(r grpc.ServiceRegistrar) error {
	a, err := NewAPI(s.Pool, s.Log)
	if err != nil {
		return err
	}
	a.Register(r)
	return nil
}

// parseMonthField reads a month of a request, naming field when it is bad.
func parseMonthField(field, s string) (Month, error) {
	m, err := ParseMonth(s)
	if err != nil {
		return Month{}, fault.Invalid(field, err)
	}
	if m.Year < 2000 || m.Year > 2999 {
		return Month{}, fault.Invalidf(field, "%s: not a plausible month", m)
	}
	return m, nil
}

// parseDateField reads a day of a request, naming field when it is bad.
func parseDateField(field, s string) (Date, error) {
	d, err := ParseDate(s)
	if err != nil {
		return Date{}, fault.Invalid(field, err)
	}
	return d, nil
}

// ImportOperatorStatement reads the spec, then the file's chunks to the
// end of the stream, and only then validates, reconciles and stores: a
// stream cut short stores nothing.
func (a *API) ImportOperatorStatement(stream grpc.ClientStreamingServer[adminv1.ImportOperatorStatementRequest, adminv1.ImportOperatorStatementResponse]) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return fmt.Errorf("import statement: %w", err)
	}
	spec := first.GetSpec()
	if spec == nil {
		return fault.Invalidf("spec", "the stream must start with the statement's spec")
	}
	m, err := parseMonthField("spec.month", spec.GetMonth())
	if err != nil {
		return err
	}
	if len(spec.GetSource()) > maxSourceName {
		return fault.Invalidf("spec.source", "longer than %d bytes", maxSourceName)
	}
	var file bytes.Buffer
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("import statement: %w", err)
		}
		chunk, ok := req.GetItem().(*adminv1.ImportOperatorStatementRequest_Chunk)
		switch {
		case !ok:
			return fault.Invalidf("chunk", "only the first message of the stream is a spec")
		case len(chunk.Chunk) > maxStatementChunk:
			return fault.Invalidf("chunk", "%d bytes, at most %d a chunk", len(chunk.Chunk), maxStatementChunk)
		case file.Len()+len(chunk.Chunk) > MaxStatementBytes:
			return fault.Invalidf("chunk", "the file is longer than %d bytes", MaxStatementBytes)
		}
		file.Write(chunk.Chunk)
	}
	rows, err := ParseOperatorStatement(file.Bytes(), m)
	if err != nil {
		return err
	}
	rec, err := ImportOperatorStatement(ctx, a.pool, a.loc, m, spec.GetSource(), rows)
	if err != nil {
		return err
	}
	diff := rec.Differences()
	a.log.InfoContext(ctx, "operator statement reconciled", "month", m.String(), "id", rec.ID, "source", rec.Source,
		"lines", len(rows), "operator_total", rec.OperatorTotal, "ledger_total", rec.LedgerTotal, "differences", len(diff))
	return stream.SendAndClose(&adminv1.ImportOperatorStatementResponse{Reconciliation: reconciliationProto(rec, false)})
}

// GetReconciliation reads a stored report.
func (a *API) GetReconciliation(ctx context.Context, req *adminv1.GetReconciliationRequest) (*adminv1.GetReconciliationResponse, error) {
	var m Month
	switch {
	case req.GetId() < 0:
		return nil, fault.Invalidf("id", "negative")
	case req.GetId() == 0:
		var err error
		if m, err = parseMonthField("month", req.GetMonth()); err != nil {
			return nil, err
		}
	}
	rec, err := GetReconciliation(ctx, a.pool, req.GetId(), m)
	if err != nil {
		return nil, err
	}
	return &adminv1.GetReconciliationResponse{Reconciliation: reconciliationProto(rec, req.GetAllLines())}, nil
}

// ListReconciliations lists the imports of a month.
func (a *API) ListReconciliations(ctx context.Context, req *adminv1.ListReconciliationsRequest) (*adminv1.ListReconciliationsResponse, error) {
	m, err := parseMonthField("month", req.GetMonth())
	if err != nil {
		return nil, err
	}
	recs, err := ListReconciliations(ctx, a.pool, m)
	if err != nil {
		return nil, err
	}
	resp := &adminv1.ListReconciliationsResponse{}
	for _, r := range recs {
		resp.Reconciliations = append(resp.Reconciliations, reconciliationProto(r, false))
	}
	return resp, nil
}

var discrepancyProto = map[Discrepancy]adminv1.Discrepancy{
	DiscrepancyNone:                 adminv1.Discrepancy_DISCREPANCY_NONE,
	DiscrepancyMissingFromStatement: adminv1.Discrepancy_DISCREPANCY_MISSING_FROM_STATEMENT,
	DiscrepancyCountMismatch:        adminv1.Discrepancy_DISCREPANCY_COUNT_MISMATCH,
	DiscrepancyUnknownShortCode:     adminv1.Discrepancy_DISCREPANCY_UNKNOWN_SHORT_CODE,
}

// reconciliationProto converts a report: the differing lines only unless
// all, at most maxReportLines of them.
func reconciliationProto(r Reconciliation, all bool) *adminv1.Reconciliation {
	out := &adminv1.Reconciliation{
		Id: r.ID, Month: r.Month.String(), Source: r.Source, ImportedAt: timestamppb.New(r.ImportedAt),
		OperatorTotal: r.OperatorTotal, LedgerTotal: r.LedgerTotal, Difference: r.OperatorTotal - r.LedgerTotal,
		DifferingLines: r.Differing,
	}
	for _, l := range r.Lines {
		d := l.Discrepancy()
		if d == DiscrepancyNone && !all {
			continue
		}
		if len(out.Lines) == maxReportLines {
			out.LinesLeftOut++
			continue
		}
		out.Lines = append(out.Lines, &adminv1.ReconciliationLine{
			Day: l.Day.String(), ShortCode: l.ShortCode, InStatement: l.InStatement,
			OperatorSegments: l.Operator, LedgerSegments: l.Ledger, Difference: l.Difference(),
			Discrepancy: discrepancyProto[d],
		})
	}
	for _, t := range r.ShortCodeTotals() {
		out.ShortCodes = append(out.ShortCodes, &adminv1.ReconciliationShortCode{
			ShortCode: t.ShortCode, OperatorSegments: t.Operator, LedgerSegments: t.Ledger,
			Known: t.Known, DifferingDays: int32(t.Differences),
		})
	}
	return out
}

// PutPartnerPlan stores a new plan version.
func (a *API) PutPartnerPlan(ctx context.Context, req *adminv1.PutPartnerPlanRequest) (*adminv1.PutPartnerPlanResponse, error) {
	pp := req.GetPlan()
	if pp == nil {
		return nil, fault.Invalidf("plan", "required")
	}
	from, err := parseDateField("plan.valid_from", pp.GetValidFrom())
	if err != nil {
		return nil, err
	}
	p, err := PutPartnerPlan(ctx, a.pool, PartnerPlan{
		TenantID: pp.GetTenantId(), ValidFrom: from,
		SegmentPriceMillicents: pp.GetSegmentPriceMillicents(), MonthlyFeeCents: pp.GetMonthlyFeeCents(),
		Closed: pp.GetClosed(), Note: pp.GetNote(),
	})
	if err != nil {
		return nil, err
	}
	a.log.InfoContext(ctx, "partner plan stored", "tenant_id", p.TenantID, "valid_from", p.ValidFrom.String(),
		"segment_price_millicents", p.SegmentPriceMillicents, "monthly_fee_cents", p.MonthlyFeeCents, "closed", p.Closed)
	return &adminv1.PutPartnerPlanResponse{Plan: planProto(p)}, nil
}

// ListPartnerPlans lists plan versions.
func (a *API) ListPartnerPlans(ctx context.Context, req *adminv1.ListPartnerPlansRequest) (*adminv1.ListPartnerPlansResponse, error) {
	if t := req.GetTenantId(); t != "" && !validTenantText(t) {
		return nil, fault.Invalidf("tenant_id", "want 1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit")
	}
	plans, err := ListPartnerPlans(ctx, a.pool, req.GetTenantId())
	if err != nil {
		return nil, err
	}
	resp := &adminv1.ListPartnerPlansResponse{}
	for _, p := range plans {
		resp.Plans = append(resp.Plans, planProto(p))
	}
	return resp, nil
}

func planProto(p PartnerPlan) *adminv1.PartnerPlan {
	return &adminv1.PartnerPlan{
		TenantId: p.TenantID, ValidFrom: p.ValidFrom.String(),
		SegmentPriceMillicents: p.SegmentPriceMillicents, MonthlyFeeCents: p.MonthlyFeeCents,
		Closed: p.Closed, Note: p.Note, CreatedAt: timestamppb.New(p.CreatedAt),
	}
}

// GetPartnerStatement computes a partner's statement.
func (a *API) GetPartnerStatement(ctx context.Context, req *adminv1.GetPartnerStatementRequest) (*adminv1.GetPartnerStatementResponse, error) {
	m, err := parseMonthField("month", req.GetMonth())
	if err != nil {
		return nil, err
	}
	st, err := BuildPartnerStatement(ctx, a.pool, a.loc, req.GetTenantId(), m)
	if err != nil {
		return nil, err
	}
	out := &adminv1.PartnerStatement{
		TenantId: st.TenantID, Month: st.Month.String(),
		DeliveredSegments: st.DeliveredSegments, TotalCents: st.TotalCents,
	}
	for _, l := range st.Lines {
		out.Lines = append(out.Lines, &adminv1.PartnerStatementLine{
			Kind: l.Kind, ShortCode: l.ShortCode, Description: l.Description, PlanValidFrom: l.PlanFrom.String(),
			Quantity: l.Quantity, UnitMillicents: l.UnitMillicents, AmountCents: l.AmountCents,
		})
	}
	return &adminv1.GetPartnerStatementResponse{Statement: out}, nil
}

// PutForecast stores a new revision of the forecasts of the request's
// short codes.
func (a *API) PutForecast(ctx context.Context, req *adminv1.PutForecastRequest) (*adminv1.PutForecastResponse, error) {
	period, err := ParseHalfYear(req.GetPeriod())
	if err != nil {
		return nil, fault.Invalid("period", err)
	}
	entries := make([]ForecastEntry, len(req.GetEntries()))
	var errs []error
	for i, e := range req.GetEntries() {
		m, err := parseMonthField(fmt.Sprintf("entries[%d].month", i), e.GetMonth())
		errs = append(errs, err)
		entries[i] = ForecastEntry{ShortCode: e.GetShortCode(), Month: m, Volume: e.GetVolume(), Throughput: int(e.GetThroughput())}
	}
	if err := fault.Join(errs...); err != nil {
		return nil, err
	}
	fs, err := PutForecast(ctx, a.pool, period, req.GetNote(), entries)
	if err != nil {
		return nil, err
	}
	resp := &adminv1.PutForecastResponse{}
	for _, f := range fs {
		resp.Forecasts = append(resp.Forecasts, &adminv1.ForecastRevision{
			ShortCode: f.ShortCode, Revision: int32(f.Revision), SubmittedAt: timestamppb.New(f.SubmittedAt),
		})
	}
	a.log.InfoContext(ctx, "forecast stored", "period", period.String(), "short_codes", len(fs))
	return resp, nil
}

var progressProto = map[MonthProgress]adminv1.MonthProgress{
	MonthClosed:     adminv1.MonthProgress_MONTH_PROGRESS_CLOSED,
	MonthInProgress: adminv1.MonthProgress_MONTH_PROGRESS_IN_PROGRESS,
	MonthFuture:     adminv1.MonthProgress_MONTH_PROGRESS_FUTURE,
}

// GetForecastReport compares a period's actuals with its forecasts.
func (a *API) GetForecastReport(ctx context.Context, req *adminv1.GetForecastReportRequest) (*adminv1.GetForecastReportResponse, error) {
	period, err := ParseHalfYear(req.GetPeriod())
	if err != nil {
		return nil, fault.Invalid("period", err)
	}
	rep, err := BuildForecastReport(ctx, a.pool, a.loc, period, int(req.GetDriftThresholdBp()), a.now())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ForecastReport{Period: rep.Period.String(), DriftThresholdBp: int32(rep.ThresholdBP)}
	for _, l := range rep.Lines {
		if l.Flagged() {
			out.FlaggedLines++
		}
		out.Lines = append(out.Lines, &adminv1.ForecastReportLine{
			ShortCode: l.ShortCode, Month: l.Month.String(), Progress: progressProto[l.Progress],
			Revision: int32(l.Revision), ForecastVolume: l.ForecastVolume, ActualVolume: l.ActualVolume,
			DriftBp: l.DriftBP, VolumeDrift: l.VolumeDrift,
			ForecastThroughput: int32(l.ForecastThroughput), ContractedThroughput: int32(l.ContractedThroughput),
			ThroughputMismatch: l.ThroughputMismatch, Unforecast: l.Unforecast,
		})
	}
	return &adminv1.GetForecastReportResponse{Report: out}, nil
}
