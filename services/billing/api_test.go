package billing_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"pushsms.io/lib/pgtest"
	"pushsms.io/lib/rpc"
	"pushsms.io/lib/telemetry"
	adminv1 "pushsms.io/proto/gen/pushsms/admin/v1"
	"pushsms.io/services/billing"
)

// apiEnv is the BillingService served over TCP on a fresh database, with
// the gRPC server and error mapping every service uses.
type apiEnv struct {
	ctx    context.Context
	client adminv1.BillingServiceClient
	db     *pgtest.DB
	paris  *time.Location
	seq    int
}

func startAPI(t *testing.T) *apiEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	db := pgtest.New(t, pgtest.Migrated(billing.Schema, billing.Migrations()))
	tel, err := telemetry.Setup(ctx, "billing-api-test", telemetry.Config{LogLevel: "error", LogFormat: "text"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	srv, err := rpc.Listen("127.0.0.1:0", tel, rpc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	api, err := billing.NewAPI(db.Pool, tel.Logger)
	if err != nil {
		t.Fatal(err)
	}
	api.Register(srv)
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		srv.Stop(5 * time.Second)
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	paris, err := time.LoadLocation(billing.Zone)
	if err != nil {
		t.Fatal(err)
	}
	return &apiEnv{ctx: ctx, client: adminv1.NewBillingServiceClient(conn), db: db, paris: paris}
}

// deliver records n segments of state st in the ledger, reported at
// local (a Europe/Paris wall-clock time "2006-01-02 15:04"), as the
// ledger's consumer does.
func (e *apiEnv) deliver(t *testing.T, tenant, sc string, st billing.State, local string, n int) {
	t.Helper()
	at, err := time.ParseInLocation("2006-01-02 15:04", local, e.paris)
	if err != nil {
		t.Fatal(err)
	}
	entries := make([]billing.Entry, n)
	for i := range entries {
		e.seq++
		entries[i] = billing.Entry{MessageID: fmt.Sprintf("api-%d", e.seq), SegmentIndex: 1, TenantID: tenant, ShortCode: sc,
			State: st, Billable: st == billing.Delivered, ReportedAt: at}
	}
	if _, err := billing.Record(e.ctx, e.db.Pool, entries...); err != nil {
		t.Fatal(err)
	}
}

func (e *apiEnv) activate(t *testing.T, sc, on string, throughput int32) {
	t.Helper()
	e.catalogEvent(t, sc, adminv1.ShortCodeEventKind_SHORT_CODE_EVENT_KIND_ACTIVATION, on, throughput)
}

func (e *apiEnv) catalogEvent(t *testing.T, sc string, kind adminv1.ShortCodeEventKind, on string, throughput int32) {
	t.Helper()
	_, err := e.client.RecordCatalogEvent(e.ctx, &adminv1.RecordCatalogEventRequest{Event: &adminv1.RecordCatalogEventRequest_ShortCodeEvent{
		ShortCodeEvent: &adminv1.ShortCodeEvent{ShortCode: sc, Kind: kind, Effective: on, Throughput: throughput}}})
	if err != nil {
		t.Fatalf("%s %s on %s: %v", sc, kind, on, err)
	}
}

// importStatement uploads file in chunks of chunk bytes.
func (e *apiEnv) importStatement(month, source, file string, chunk int) (*adminv1.Reconciliation, error) {
	stream, err := e.client.ImportOperatorStatement(e.ctx)
	if err != nil {
		return nil, err
	}
	send := func(req *adminv1.ImportOperatorStatementRequest) error {
		if err := stream.Send(req); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		return nil
	}
	if err := send(&adminv1.ImportOperatorStatementRequest{Item: &adminv1.ImportOperatorStatementRequest_Spec{
		Spec: &adminv1.OperatorStatementSpec{Month: month, Source: source}}}); err != nil {
		return nil, err
	}
	for b := []byte(file); len(b) > 0; {
		n := min(chunk, len(b))
		if err := send(&adminv1.ImportOperatorStatementRequest{Item: &adminv1.ImportOperatorStatementRequest_Chunk{Chunk: b[:n]}}); err != nil {
			return nil, err
		}
		b = b[n:]
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return nil, err
	}
	return resp.GetReconciliation(), nil
}

// fieldViolations returns the fields of an INVALID_ARGUMENT status with
// their descriptions, "field: description".
func fieldViolations(t *testing.T, err error) []string {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		t.Fatalf("got %v, want InvalidArgument", err)
	}
	var out []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out = append(out, v.GetField()+": "+v.GetDescription())
			}
		}
	}
	return out
}

type recLine struct {
	day, sc  string
	in       bool
	op, ours int64
	kind     adminv1.Discrepancy
}

func recLines(r *adminv1.Reconciliation) []recLine {
	var out []recLine
	for _, l := range r.GetLines() {
		out = append(out, recLine{l.GetDay(), l.GetShortCode(), l.GetInStatement(), l.GetOperatorSegments(), l.GetLedgerSegments(), l.GetDiscrepancy()})
	}
	return out
}

// The operator's October statement against the ledger: a day missing
// from the statement, an extra count, an unknown short code; a late report
// after the import does not change the stored report.
func TestReconciliationThroughAPI(t *testing.T) {
	e := startAPI(t)
	for _, sc := range []string{"36101", "36102", "36103"} {
		e.activate(t, sc, "2026-09-01", 0)
	}
	// 00:30 in Paris on 1 October is still 30 September in UTC.
	e.deliver(t, "acme", "36101", billing.Delivered, "2026-10-01 00:30", 3)
	e.deliver(t, "beta", "36101", billing.Delivered, "2026-10-01 18:00", 2)
	e.deliver(t, "acme", "36101", billing.Failed, "2026-10-01 18:00", 4)
	e.deliver(t, "acme", "36101", billing.Delivered, "2026-10-02 12:00", 3)
	e.deliver(t, "acme", "36101", billing.Delivered, "2026-10-03 23:59", 2)
	e.deliver(t, "acme", "36102", billing.Delivered, "2026-10-01 09:00", 4)
	e.deliver(t, "acme", "36102", billing.Expired, "2026-10-02 09:00", 1)
	// November in Paris, 31 October in UTC: not October's.
	e.deliver(t, "acme", "36101", billing.Delivered, "2026-11-01 00:30", 6)
	e.deliver(t, "acme", "36101", billing.Delivered, "2026-09-30 23:59", 6)

	file := "date;short_code;delivered\r\n" +
		"01/10/2026;36101;5\r\n" +
		"2026-10-02;36101;3\r\n" +
		"2026-10-01;36102;6\r\n" +
		"2026-10-02;36102;0\r\n" +
		"2026-10-05;36103;0\r\n" +
		"2026-10-04;36199;7\r\n"
	rec, err := e.importStatement("2026-10", "orange-2026-10.csv", file, 7)
	if err != nil {
		t.Fatal(err)
	}
	wantDiff := []recLine{
		{"2026-10-01", "36102", true, 6, 4, adminv1.Discrepancy_DISCREPANCY_COUNT_MISMATCH},
		{"2026-10-03", "36101", false, 0, 2, adminv1.Discrepancy_DISCREPANCY_MISSING_FROM_STATEMENT},
		{"2026-10-04", "36199", true, 7, 0, adminv1.Discrepancy_DISCREPANCY_UNKNOWN_SHORT_CODE},
	}
	if got := recLines(rec); !slices.Equal(got, wantDiff) {
		t.Errorf("got differences\n%v\nwant\n%v", got, wantDiff)
	}
	if rec.GetOperatorTotal() != 21 || rec.GetLedgerTotal() != 14 || rec.GetDifference() != 7 || rec.GetDifferingLines() != 3 {
		t.Errorf("got totals operator %d ledger %d difference %d differing %d, want 21 14 7 3",
			rec.GetOperatorTotal(), rec.GetLedgerTotal(), rec.GetDifference(), rec.GetDifferingLines())
	}
	wantCodes := []*adminv1.ReconciliationShortCode{
		{ShortCode: "36101", OperatorSegments: 8, LedgerSegments: 10, Known: true, DifferingDays: 1},
		{ShortCode: "36102", OperatorSegments: 6, LedgerSegments: 4, Known: true, DifferingDays: 1},
		{ShortCode: "36103", OperatorSegments: 0, LedgerSegments: 0, Known: true},
		{ShortCode: "36199", OperatorSegments: 7, LedgerSegments: 0, Known: false, DifferingDays: 1},
	}
	if len(rec.GetShortCodes()) != len(wantCodes) {
		t.Fatalf("got short codes %v, want %v", rec.GetShortCodes(), wantCodes)
	}
	for i, w := range wantCodes {
		if !proto.Equal(rec.GetShortCodes()[i], w) {
			t.Errorf("short code %d: got %v, want %v", i, rec.GetShortCodes()[i], w)
		}
	}

	// A report arriving after the import: the stored report stays the one
	// the aggregator acted on.
	e.deliver(t, "acme", "36101", billing.Delivered, "2026-10-03 10:00", 5)
	got, err := e.client.GetReconciliation(e.ctx, &adminv1.GetReconciliationRequest{Month: "2026-10", AllLines: true})
	if err != nil {
		t.Fatal(err)
	}
	all := got.GetReconciliation()
	if all.GetId() != rec.GetId() || all.GetSource() != "orange-2026-10.csv" || all.GetLedgerTotal() != 14 {
		t.Errorf("got report %d from %q ledger %d, want %d from orange-2026-10.csv ledger 14", all.GetId(), all.GetSource(), all.GetLedgerTotal(), rec.GetId())
	}
	wantAll := []recLine{
		{"2026-10-01", "36101", true, 5, 5, adminv1.Discrepancy_DISCREPANCY_NONE},
		{"2026-10-01", "36102", true, 6, 4, adminv1.Discrepancy_DISCREPANCY_COUNT_MISMATCH},
		{"2026-10-02", "36101", true, 3, 3, adminv1.Discrepancy_DISCREPANCY_NONE},
		{"2026-10-02", "36102", true, 0, 0, adminv1.Discrepancy_DISCREPANCY_NONE},
		{"2026-10-03", "36101", false, 0, 2, adminv1.Discrepancy_DISCREPANCY_MISSING_FROM_STATEMENT},
		{"2026-10-04", "36199", true, 7, 0, adminv1.Discrepancy_DISCREPANCY_UNKNOWN_SHORT_CODE},
		{"2026-10-05", "36103", true, 0, 0, adminv1.Discrepancy_DISCREPANCY_NONE},
	}
	if got := recLines(all); !slices.Equal(got, wantAll) {
		t.Errorf("got all lines\n%v\nwant\n%v", got, wantAll)
	}

	// A second import sees the late report.
	rec2, err := e.importStatement("2026-10", "orange-2026-10-v2.csv", strings.Replace(file, "\r\n2026-10-04;36199;7", "\r\n2026-10-03;36101;7", 1), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if rec2.GetLedgerTotal() != 19 || rec2.GetDifferingLines() != 1 || rec2.GetId() <= rec.GetId() {
		t.Errorf("second import: got ledger %d differing %d id %d, want 19, 1 (36102), after %d",
			rec2.GetLedgerTotal(), rec2.GetDifferingLines(), rec2.GetId(), rec.GetId())
	}
	list, err := e.client.ListReconciliations(e.ctx, &adminv1.ListReconciliationsRequest{Month: "2026-10"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.GetReconciliations()); n != 2 || list.GetReconciliations()[0].GetId() != rec2.GetId() ||
		list.GetReconciliations()[0].GetDifferingLines() != 1 || list.GetReconciliations()[1].GetDifferingLines() != 3 {
		t.Errorf("got imports %v, want 2, latest first, with 1 and 3 differing lines", list.GetReconciliations())
	}
	byID, err := e.client.GetReconciliation(e.ctx, &adminv1.GetReconciliationRequest{Id: rec.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if got := recLines(byID.GetReconciliation()); !slices.Equal(got, wantDiff) {
		t.Errorf("first report by id: got %v, want %v", got, wantDiff)
	}
}

func TestReconciliationRefusals(t *testing.T) {
	e := startAPI(t)
	tests := []struct {
		name, month, file string
		want              []string
	}{
		{"bad_month", "2026-13", "2026-10-01,36101,1\n", []string{"spec.month: month \"2026-13\": want YYYY-MM"}},
		{"bad_lines", "2026-10", "2026-10-01,36101,1\n2026-10-01,3610,1\n2026-11-01,36101,1\n2026-10-02,36101,-4\n",
			[]string{"line 2: short code \"3610\": want 5 digits", "line 3: date 2026-11-01 is not in 2026-10", "line 4: delivered \"-4\": want digits only"}},
		{"empty", "2026-10", "", []string{"file: no line: an empty statement reconciles nothing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.importStatement(tt.month, "x.csv", tt.file, 5)
			if got := fieldViolations(t, err); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	// Nothing was stored.
	_, err := e.client.GetReconciliation(e.ctx, &adminv1.GetReconciliationRequest{Month: "2026-10"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("got %v, want NotFound", err)
	}
	// A stream without its spec.
	stream, err := e.client.ImportOperatorStatement(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(&adminv1.ImportOperatorStatementRequest{Item: &adminv1.ImportOperatorStatementRequest_Chunk{Chunk: []byte("x")}})
	_, err = stream.CloseAndRecv()
	if got := fieldViolations(t, err); !slices.Equal(got, []string{"spec: the stream must start with the statement's spec"}) {
		t.Errorf("got %q", got)
	}
}

type stmtLine struct {
	kind, sc, plan string
	qty, unit, amt int64
}

// A partner's October statement, worked out by hand: the price changes on
// the 15th, failed and expired segments and another partner's are not
// billed, the monthly fee is the version in force on the 1st.
func TestPartnerStatementThroughAPI(t *testing.T) {
	e := startAPI(t)
	put := func(p *adminv1.PartnerPlan) error {
		_, err := e.client.PutPartnerPlan(e.ctx, &adminv1.PutPartnerPlanRequest{Plan: p})
		return err
	}
	// 0.045 EUR a segment and 250 EUR a month, then 0.03333 and 300.
	if err := put(&adminv1.PartnerPlan{TenantId: "acme", ValidFrom: "2026-09-01", SegmentPriceMillicents: 4500, MonthlyFeeCents: 25000}); err != nil {
		t.Fatal(err)
	}
	if err := put(&adminv1.PartnerPlan{TenantId: "acme", ValidFrom: "2026-10-15", SegmentPriceMillicents: 3333, MonthlyFeeCents: 30000, Note: "renegotiated"}); err != nil {
		t.Fatal(err)
	}
	if err := put(&adminv1.PartnerPlan{TenantId: "beta", ValidFrom: "2026-01-01", SegmentPriceMillicents: 9999, MonthlyFeeCents: 1}); err != nil {
		t.Fatal(err)
	}
	e.deliver(t, "acme", "36101", billing.Delivered, "2026-10-01 00:10", 3)
	e.deliver(t, "acme", "36101", billing.Delivered, "2026-10-10 14:00", 200)
	e.deliver(t, "acme", "36101", billing.Failed, "2026-10-10 14:00", 50)
	e.deliver(t, "acme", "36102", billing.Delivered, "2026-10-14 23:59", 11)
	e.deliver(t, "acme", "36102", billing.Delivered, "2026-10-15 00:00", 1)
	e.deliver(t, "acme", "36101", billing.Delivered, "2026-10-20 08:00", 7)
	e.deliver(t, "acme", "36101", billing.Expired, "2026-10-20 08:00", 4)
	e.deliver(t, "beta", "36101", billing.Delivered, "2026-10-20 08:00", 1000)
	e.deliver(t, "acme", "36101", billing.Delivered, "2026-09-30 23:59", 9)
	e.deliver(t, "acme", "36101", billing.Delivered, "2026-11-01 00:00", 9)

	resp, err := e.client.GetPartnerStatement(e.ctx, &adminv1.GetPartnerStatementRequest{TenantId: "acme", Month: "2026-10"})
	if err != nil {
		t.Fatal(err)
	}
	st := resp.GetStatement()
	var got []stmtLine
	for _, l := range st.GetLines() {
		got = append(got, stmtLine{l.GetKind(), l.GetShortCode(), l.GetPlanValidFrom(), l.GetQuantity(), l.GetUnitMillicents(), l.GetAmountCents()})
	}
	want := []stmtLine{
		// 203 × 0.045 EUR = 9.135 EUR → 9.14 (half up).
		{"segments", "36101", "2026-09-01", 203, 4500, 914},
		// 7 × 0.03333 EUR = 0.23331 EUR → 0.23.
		{"segments", "36101", "2026-10-15", 7, 3333, 23},
		// 11 × 0.045 EUR = 0.495 EUR → 0.50.
		{"segments", "36102", "2026-09-01", 11, 4500, 50},
		// 1 × 0.03333 EUR → 0.03.
		{"segments", "36102", "2026-10-15", 1, 3333, 3},
		{"monthly_fee", "", "2026-09-01", 1, 25_000_000, 25000},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got lines\n%v\nwant\n%v", got, want)
	}
	// 9.14 + 0.23 + 0.50 + 0.03 + 250.00 = 259.90 EUR.
	if st.GetTotalCents() != 25990 || st.GetDeliveredSegments() != 222 || st.GetMonth() != "2026-10" || st.GetTenantId() != "acme" {
		t.Errorf("got total %d delivered %d, want 25990 and 222", st.GetTotalCents(), st.GetDeliveredSegments())
	}

	plans, err := e.client.ListPartnerPlans(e.ctx, &adminv1.ListPartnerPlansRequest{TenantId: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(plans.GetPlans()); n != 2 || plans.GetPlans()[1].GetNote() != "renegotiated" || plans.GetPlans()[1].GetCreatedAt() == nil {
		t.Errorf("got plans %v, want the two versions of acme", plans.GetPlans())
	}

	// A version is never replaced.
	err = put(&adminv1.PartnerPlan{TenantId: "acme", ValidFrom: "2026-10-15", SegmentPriceMillicents: 1})
	if status.Code(err) != codes.AlreadyExists {
		t.Errorf("second version on one day: got %v, want AlreadyExists", err)
	}
	bad := []struct {
		plan *adminv1.PartnerPlan
		want []string
	}{
		{nil, []string{"plan: required"}},
		{&adminv1.PartnerPlan{TenantId: "acme", ValidFrom: "2026-02-30"}, []string{"plan.valid_from: date \"2026-02-30\": want YYYY-MM-DD"}},
		{&adminv1.PartnerPlan{TenantId: "Acme", ValidFrom: "2026-12-01", SegmentPriceMillicents: -1, Closed: true},
			[]string{"tenant_id: want 1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit", "segment_price_millicents: want 0 to 1000000", "closed: a closing version has no price"}},
	}
	for _, b := range bad {
		if got := fieldViolations(t, put(b.plan)); !slices.Equal(got, b.want) {
			t.Errorf("plan %v: got %q, want %q", b.plan, got, b.want)
		}
	}
	_, err = e.client.GetPartnerStatement(e.ctx, &adminv1.GetPartnerStatementRequest{TenantId: "acme", Month: "octobre"})
	if got := fieldViolations(t, err); len(got) != 1 || !strings.HasPrefix(got[0], "month: ") {
		t.Errorf("statement of a bad month: got %q", got)
	}
}

type fcLine struct {
	sc, month        string
	forecast, actual int64
	drift            bool
	fTP, cTP         int32
	mismatch, unfc   bool
}

// Forecasts of the first half of 2026 against actuals: months beyond ±20 %
// are flagged, a short code whose option changed is flagged for
// throughput, traffic without a forecast is flagged; a revision replaces
// the forecast.
func TestForecastThroughAPI(t *testing.T) {
	e := startAPI(t)
	e.activate(t, "36101", "2025-12-01", 20)
	e.activate(t, "36102", "2026-01-01", 0)
	e.catalogEvent(t, "36102", adminv1.ShortCodeEventKind_SHORT_CODE_EVENT_KIND_THROUGHPUT_CHANGE, "2026-03-10", 50)

	var entries []*adminv1.ForecastEntry
	for _, m := range []string{"2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"} {
		entries = append(entries,
			&adminv1.ForecastEntry{ShortCode: "36101", Month: m, Volume: 100, Throughput: 20},
			&adminv1.ForecastEntry{ShortCode: "36102", Month: m, Volume: 1000, Throughput: 10})
	}
	put, err := e.client.PutForecast(e.ctx, &adminv1.PutForecastRequest{Period: "2026-H1", Note: "sent 2025-11-20", Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	if len(put.GetForecasts()) != 2 || put.GetForecasts()[0].GetRevision() != 1 {
		t.Fatalf("got %v, want revision 1 of two short codes", put.GetForecasts())
	}
	// 36101: on forecast, +21 %, −20 % (in), −21 %, nothing, +20 % (in).
	for _, d := range []struct {
		at string
		n  int
	}{{"2026-01-15 10:00", 100}, {"2026-02-01 00:05", 121}, {"2026-03-31 23:00", 80}, {"2026-04-10 10:00", 79}, {"2026-06-30 23:59", 120}} {
		e.deliver(t, "acme", "36101", billing.Delivered, d.at, d.n)
	}
	e.deliver(t, "acme", "36101", billing.Failed, "2026-05-10 10:00", 500)
	e.deliver(t, "acme", "36102", billing.Delivered, "2026-02-10 10:00", 1000)
	e.deliver(t, "beta", "36103", billing.Delivered, "2026-02-10 10:00", 5)

	report := func(bp int32) ([]fcLine, *adminv1.ForecastReport) {
		t.Helper()
		resp, err := e.client.GetForecastReport(e.ctx, &adminv1.GetForecastReportRequest{Period: "2026-H1", DriftThresholdBp: bp})
		if err != nil {
			t.Fatal(err)
		}
		var out []fcLine
		for _, l := range resp.GetReport().GetLines() {
			if l.GetProgress() != adminv1.MonthProgress_MONTH_PROGRESS_CLOSED {
				t.Errorf("%s %s: got %s, want a closed month", l.GetShortCode(), l.GetMonth(), l.GetProgress())
			}
			out = append(out, fcLine{l.GetShortCode(), l.GetMonth(), l.GetForecastVolume(), l.GetActualVolume(), l.GetVolumeDrift(),
				l.GetForecastThroughput(), l.GetContractedThroughput(), l.GetThroughputMismatch(), l.GetUnforecast()})
		}
		return out, resp.GetReport()
	}
	got, rep := report(0)
	want := []fcLine{
		{"36101", "2026-01", 100, 100, false, 20, 20, false, false},
		{"36101", "2026-02", 100, 121, true, 20, 20, false, false},
		{"36101", "2026-03", 100, 80, false, 20, 20, false, false},
		{"36101", "2026-04", 100, 79, true, 20, 20, false, false},
		{"36101", "2026-05", 100, 0, true, 20, 20, false, false},
		{"36101", "2026-06", 100, 120, false, 20, 20, false, false},
		{"36102", "2026-01", 1000, 0, true, 10, 10, false, false},
		{"36102", "2026-02", 1000, 1000, false, 10, 10, false, false},
		// The option of 10 March bills all of March at 50 SMS/s.
		{"36102", "2026-03", 1000, 0, true, 10, 50, true, false},
		{"36102", "2026-04", 1000, 0, true, 10, 50, true, false},
		{"36102", "2026-05", 1000, 0, true, 10, 50, true, false},
		{"36102", "2026-06", 1000, 0, true, 10, 50, true, false},
		{"36103", "2026-01", 0, 0, false, 0, 0, false, false},
		{"36103", "2026-02", 0, 5, false, 0, 0, false, true},
		{"36103", "2026-03", 0, 0, false, 0, 0, false, false},
		{"36103", "2026-04", 0, 0, false, 0, 0, false, false},
		{"36103", "2026-05", 0, 0, false, 0, 0, false, false},
		{"36103", "2026-06", 0, 0, false, 0, 0, false, false},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%v\nwant\n%v", got, want)
	}
	if rep.GetDriftThresholdBp() != 2000 || rep.GetFlaggedLines() != 9 {
		t.Errorf("got threshold %d, %d flagged, want 2000 and 9", rep.GetDriftThresholdBp(), rep.GetFlaggedLines())
	}
	if l := rep.GetLines()[1]; l.GetDriftBp() != 2100 {
		t.Errorf("36101 February: got %d bp, want 2100", l.GetDriftBp())
	}

	// At 25 %, February and April of 36101 are within.
	got, _ = report(2500)
	if got[1].drift || got[3].drift || !got[4].drift {
		t.Errorf("at 25 %%: got %v", got[:6])
	}

	// A correction of 36102 from March: revision 2, throughput 50.
	var fix []*adminv1.ForecastEntry
	for i, m := range []string{"2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"} {
		tp := int32(50)
		if i < 2 {
			tp = 10
		}
		fix = append(fix, &adminv1.ForecastEntry{ShortCode: "36102", Month: m, Volume: 0, Throughput: tp})
	}
	fix[1].Volume = 1000
	put, err = e.client.PutForecast(e.ctx, &adminv1.PutForecastRequest{Period: "2026-H1", Entries: fix})
	if err != nil {
		t.Fatal(err)
	}
	if put.GetForecasts()[0].GetRevision() != 2 {
		t.Errorf("got revision %d, want 2", put.GetForecasts()[0].GetRevision())
	}
	got, rep = report(0)
	for _, l := range got[6:12] {
		if l.drift || l.mismatch {
			t.Errorf("after the correction: got %v flagged", l)
		}
	}
	if rep.GetFlaggedLines() != 4 {
		t.Errorf("after the correction: got %d flagged lines, want 4", rep.GetFlaggedLines())
	}

	bad := []struct {
		req  *adminv1.PutForecastRequest
		want []string
	}{
		{&adminv1.PutForecastRequest{Period: "2026-H3", Entries: entries}, []string{"period: period \"2026-H3\": want YYYY-H1 or YYYY-H2"}},
		{&adminv1.PutForecastRequest{Period: "2026-H1", Entries: entries[:11]}, []string{"entries: short code 36102 has 5 months of 2026-H1, want all 6"}},
		{&adminv1.PutForecastRequest{Period: "2026-H2", Entries: entries[:2]}, []string{
			"entries[0].month: 2026-01 is not in 2026-H2", "entries[1].month: 2026-01 is not in 2026-H2"}},
		{&adminv1.PutForecastRequest{Period: "2026-H1", Entries: []*adminv1.ForecastEntry{{ShortCode: "36101", Month: "janvier"}}}, []string{
			"entries[0].month: month \"janvier\": want YYYY-MM"}},
	}
	for _, b := range bad {
		_, err := e.client.PutForecast(e.ctx, b.req)
		if got := fieldViolations(t, err); !slices.Equal(got, b.want) {
			t.Errorf("got %q, want %q", got, b.want)
		}
	}
	_, err = e.client.GetForecastReport(e.ctx, &adminv1.GetForecastReportRequest{Period: "2026-H1", DriftThresholdBp: -1})
	if got := fieldViolations(t, err); len(got) != 1 || !strings.HasPrefix(got[0], "drift_threshold_bp: ") {
		t.Errorf("negative threshold: got %q", got)
	}
}

// The invoice, tariffs and catalog through the API: the document formats
// and the refusals.
func TestInvoiceThroughAPI(t *testing.T) {
	e := startAPI(t)
	e.activate(t, "36101", "2026-10-05", 0)
	e.deliver(t, "acme", "36101", billing.Delivered, "2026-10-10 10:00", 1000)

	resp, err := e.client.GetInvoice(e.ctx, &adminv1.GetInvoiceRequest{Month: "2026-10", Format: adminv1.DocumentFormat_DOCUMENT_FORMAT_CSV})
	if err != nil {
		t.Fatal(err)
	}
	inv := resp.GetInvoice()
	want, err := billing.BuildInvoice(e.ctx, e.db.Pool, billing.Month{Year: 2026, Month: time.October})
	if err != nil {
		t.Fatal(err)
	}
	if inv.GetTotalCents() != want.TotalCents || len(inv.GetLines()) != len(want.Lines) || inv.GetTariffVersion() != want.TariffVersion || inv.GetCurrency() != "EUR" {
		t.Fatalf("got %v, want %+v", inv, want)
	}
	var delivered *adminv1.InvoiceLine
	for _, l := range inv.GetLines() {
		if l.GetKind() == billing.LineDeliveredMT {
			delivered = l
		}
	}
	// 1000 × 0.030 EUR = 30.00 EUR.
	if delivered == nil || delivered.GetQuantity() != 1000 || delivered.GetUnitMillicents() != 3000 || delivered.GetAmountCents() != 3000 {
		t.Errorf("got delivered line %v, want 1000 × 3000 millicents = 3000 cents", delivered)
	}
	if resp.GetContentType() != "text/csv" || !strings.HasPrefix(string(resp.GetDocument()), "month,tariff_version,kind,") {
		t.Errorf("got %s document %q", resp.GetContentType(), resp.GetDocument())
	}
	js, err := e.client.GetInvoice(e.ctx, &adminv1.GetInvoiceRequest{Month: "2026-10", Format: adminv1.DocumentFormat_DOCUMENT_FORMAT_JSON})
	if err != nil {
		t.Fatal(err)
	}
	if js.GetContentType() != "application/json" || !strings.Contains(string(js.GetDocument()), fmt.Sprintf(`"total_cents": %d`, want.TotalCents)) {
		t.Errorf("got %s document %s", js.GetContentType(), js.GetDocument())
	}
	plain, err := e.client.GetInvoice(e.ctx, &adminv1.GetInvoiceRequest{Month: "2026-10"})
	if err != nil || len(plain.GetDocument()) != 0 {
		t.Errorf("without a format: got %v, %d bytes", err, len(plain.GetDocument()))
	}
	_, err = e.client.GetInvoice(e.ctx, &adminv1.GetInvoiceRequest{Month: "10/2026"})
	if got := fieldViolations(t, err); len(got) != 1 || !strings.HasPrefix(got[0], "month: ") {
		t.Errorf("bad month: got %q", got)
	}

	tariffs, err := e.client.ListTariffs(e.ctx, &adminv1.ListTariffsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(tariffs.GetTariffs()) != 0 || tariffs.GetDefaultTariff().GetVersion() != billing.DefaultTariff().Version {
		t.Fatalf("got %v, want only the default", tariffs)
	}
	doc := strings.Replace(tariffs.GetDefaultTariff().GetDocument(), billing.DefaultTariff().Version, "ops-2027", 1)
	doc = strings.Replace(doc, `"2016-10-01"`, `"2027-01-01"`, 1)
	doc = strings.Replace(doc, `"0.030"`, `"0.028"`, 1)
	put, err := e.client.PutTariff(e.ctx, &adminv1.PutTariffRequest{Document: doc})
	if err != nil {
		t.Fatal(err)
	}
	if put.GetTariff().GetVersion() != "ops-2027" || put.GetTariff().GetValidFrom() != "2027-01-01" {
		t.Errorf("got %v", put.GetTariff())
	}
	_, err = e.client.PutTariff(e.ctx, &adminv1.PutTariffRequest{Document: `{"version": "x"`})
	if got := fieldViolations(t, err); len(got) != 1 || !strings.HasPrefix(got[0], "tariff: ") {
		t.Errorf("bad document: got %q", got)
	}

	_, err = e.client.RecordCatalogEvent(e.ctx, &adminv1.RecordCatalogEventRequest{Event: &adminv1.RecordCatalogEventRequest_ShortCodeEvent{
		ShortCodeEvent: &adminv1.ShortCodeEvent{ShortCode: "36101", Kind: adminv1.ShortCodeEventKind_SHORT_CODE_EVENT_KIND_OADC_ON, Effective: "2026-10-01"}}})
	if got := fieldViolations(t, err); len(got) != 1 || !strings.Contains(got[0], "not activated yet") {
		t.Errorf("option before activation: got %q", got)
	}
	e.catalogEvent(t, "36101", adminv1.ShortCodeEventKind_SHORT_CODE_EVENT_KIND_OADC_ON, "2026-10-20", 0)
	_, err = e.client.RecordCatalogEvent(e.ctx, &adminv1.RecordCatalogEventRequest{Event: &adminv1.RecordCatalogEventRequest_QualificationEvent{
		QualificationEvent: &adminv1.QualificationEvent{LegalEntity: "PushSMS SAS", Kind: adminv1.QualificationEventKind_QUALIFICATION_EVENT_KIND_SUBSCRIBE, Effective: "2026-10-01"}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.client.RecordCatalogEvent(e.ctx, &adminv1.RecordCatalogEventRequest{Event: &adminv1.RecordCatalogEventRequest_QualifiedMsisdns{
		QualifiedMsisdns: &adminv1.QualifiedMsisdns{LegalEntity: "PushSMS SAS", Month: "2026-10", Msisdns: 1234}}})
	if err != nil {
		t.Fatal(err)
	}
	events, err := e.client.ListCatalogEvents(e.ctx, &adminv1.ListCatalogEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	sce := events.GetShortCodeEvents()
	if len(sce) != 2 || sce[0].GetKind() != adminv1.ShortCodeEventKind_SHORT_CODE_EVENT_KIND_ACTIVATION || sce[0].GetThroughput() != 10 ||
		sce[1].GetKind() != adminv1.ShortCodeEventKind_SHORT_CODE_EVENT_KIND_OADC_ON || sce[1].GetEffective() != "2026-10-20" {
		t.Errorf("got short code events %v", sce)
	}
	if q := events.GetQualificationEvents(); len(q) != 1 || q[0].GetKind() != adminv1.QualificationEventKind_QUALIFICATION_EVENT_KIND_SUBSCRIBE {
		t.Errorf("got qualification events %v", q)
	}
	if q := events.GetQualifiedMsisdns(); len(q) != 1 || q[0].GetMsisdns() != 1234 || q[0].GetMonth() != "2026-10" {
		t.Errorf("got qualified counts %v", q)
	}
	only, err := e.client.ListCatalogEvents(e.ctx, &adminv1.ListCatalogEventsRequest{ShortCode: "36101"})
	if err != nil || len(only.GetShortCodeEvents()) != 2 || len(only.GetQualificationEvents()) != 0 {
		t.Errorf("one short code: got %v, %v", only, err)
	}
	_, err = e.client.RecordCatalogEvent(e.ctx, &adminv1.RecordCatalogEventRequest{})
	if got := fieldViolations(t, err); len(got) != 1 || !strings.HasPrefix(got[0], "event: ") {
		t.Errorf("no event: got %q", got)
	}
}
