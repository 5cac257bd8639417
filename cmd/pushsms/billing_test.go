package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/pgdb"
	"pushsms.io/lib/pgtest"
	"pushsms.io/lib/telemetry"
	adminv1 "pushsms.io/proto/gen/pushsms/admin/v1"
	"pushsms.io/services/billing"
)

// billingEnv is a real billing service (bus, database, gRPC over TCP)
// and the billing commands run against it.
type billingEnv struct {
	ctx    context.Context
	addr   string
	db     *pgtest.DB
	client adminv1.BillingServiceClient
	paris  *time.Location
	seq    int
}

func startBilling(t *testing.T) *billingEnv {
	t.Helper()
	ns := bustest.Start(t)
	db := pgtest.New(t)
	cfg := billing.DefaultConfig()
	cfg.Bus = bus.Config{URL: ns.URL(), Replicas: 1}
	cfg.DB = pgdb.Config{URL: db.URL, MaxConns: 4}
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.Telemetry = telemetry.Config{LogLevel: "error", LogFormat: "text"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	svc, err := billing.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	serveCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- svc.Serve(serveCtx) }()
	t.Cleanup(func() { stop(); <-served; svc.Close() })
	conn, err := grpc.NewClient(svc.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	paris, err := time.LoadLocation(billing.Zone)
	if err != nil {
		t.Fatal(err)
	}
	return &billingEnv{ctx: ctx, addr: svc.Addr(), db: db, client: adminv1.NewBillingServiceClient(conn), paris: paris}
}

// run runs a billing command with PUSHSMS_BILLING_ADDR set to the service.
func (e *billingEnv) run(t *testing.T, f func(*cli) func(context.Context, []string) error, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &cli{out: &out, err: &errOut, getenv: func(k string) string {
		if k == "PUSHSMS_BILLING_ADDR" {
			return e.addr
		}
		return ""
	}}
	err := f(c)(e.ctx, args)
	return out.String(), err
}

// deliver records n segments in the ledger at a Europe/Paris time.
func (e *billingEnv) deliver(t *testing.T, tenant, sc string, st billing.State, local string, n int) {
	t.Helper()
	at, err := time.ParseInLocation("2006-01-02 15:04", local, e.paris)
	if err != nil {
		t.Fatal(err)
	}
	entries := make([]billing.Entry, n)
	for i := range entries {
		e.seq++
		entries[i] = billing.Entry{MessageID: fmt.Sprintf("cli-%d", e.seq), SegmentIndex: 1, TenantID: tenant, ShortCode: sc,
			State: st, Billable: st == billing.Delivered, ReportedAt: at}
	}
	if _, err := billing.Record(e.ctx, e.db.Pool, entries...); err != nil {
		t.Fatal(err)
	}
}

// columnEnds returns where the cell of each line ends: one place for a
// right-aligned column.
func columnEnds(lines []string, cell func(string) string) map[int]bool {
	ends := map[int]bool{}
	for _, l := range lines {
		c := cell(l)
		if c == "" {
			continue
		}
		ends[strings.LastIndex(l, c)+len(c)] = true
	}
	return ends
}

// squeeze collapses the runs of spaces of out, to check a table's cells
// whatever their widths.
func squeeze(out string) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	invoiceCmd        = func(c *cli) func(context.Context, []string) error { return c.runInvoice }
	statementCmd      = func(c *cli) func(context.Context, []string) error { return c.runStatement }
	planPutCmd        = func(c *cli) func(context.Context, []string) error { return c.runPlanPut }
	planListCmd       = func(c *cli) func(context.Context, []string) error { return c.runPlanList }
	reconcileCmd      = func(c *cli) func(context.Context, []string) error { return c.runReconcile }
	forecastPutCmd    = func(c *cli) func(context.Context, []string) error { return c.runForecastPut }
	forecastReportCmd = func(c *cli) func(context.Context, []string) error { return c.runForecastReport }
	catalogAddCmd     = func(c *cli) func(context.Context, []string) error { return c.runCatalogAdd }
	catalogListCmd    = func(c *cli) func(context.Context, []string) error { return c.runCatalogList }
	tariffPutCmd      = func(c *cli) func(context.Context, []string) error { return c.runTariffPut }
	tariffListCmd     = func(c *cli) func(context.Context, []string) error { return c.runTariffList }
	qualifiedCmd      = func(c *cli) func(context.Context, []string) error { return c.runCatalogQualified }
)

// The operator's invoice and a partner's statement, printed by the CLI
// from a real billing service.
func TestCLIInvoiceAndStatement(t *testing.T) {
	e := startBilling(t)
	for _, sc := range []string{"36101", "36102"} {
		if out, err := e.run(t, catalogAddCmd, "-short-code", sc, "-kind", "activation", "-on", "2026-10-05"); err != nil || !strings.HasPrefix(out, "event ") {
			t.Fatalf("catalog add: %v, %q", err, out)
		}
	}
	if _, err := e.run(t, catalogAddCmd, "-short-code", "36101", "-kind", "oadc-on", "-on", "2026-10-01"); err == nil || !strings.Contains(err.Error(), "not activated yet") {
		t.Errorf("option before activation: got %v", err)
	}
	if _, err := e.run(t, catalogAddCmd, "-short-code", "36101", "-kind", "promotion", "-on", "2026-10-01"); err == nil || !strings.Contains(err.Error(), "-kind") {
		t.Errorf("unknown kind: got %v", err)
	}
	out, err := e.run(t, catalogListCmd, "-short-code", "36101")
	if err != nil || !strings.Contains(squeeze(out), "1 36101 2026-10-05 activation 10") {
		t.Errorf("catalog list: %v\n%s", err, out)
	}
	e.deliver(t, "acme", "36101", billing.Delivered, "2026-10-10 10:00", 1000)
	e.deliver(t, "acme", "36102", billing.Delivered, "2026-10-20 10:00", 234)
	e.deliver(t, "acme", "36102", billing.Failed, "2026-10-20 10:00", 66)

	// By hand: activations 2 × (280 + 300), short codes 2 × 150, 1234 MT
	// × 0.030 = 37.02: 1160 + 300 + 37.02 = 1497.02 EUR.
	out, err = e.run(t, invoiceCmd, "-month", "2026-10")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "TOTAL") || !strings.HasSuffix(last, " 1497.02") {
		t.Errorf("got total line %q, want TOTAL … 1497.02\n%s", last, out)
	}
	if !strings.Contains(out, "1234") || !strings.Contains(out, "0.03") || !strings.Contains(out, "37.02") {
		t.Errorf("no delivered MT line of 1234 × 0.03 = 37.02:\n%s", out)
	}
	table := lines[2:]
	amounts := columnEnds(table, func(l string) string { f := strings.Fields(l); return f[len(f)-1] })
	if len(amounts) != 1 {
		t.Errorf("amount column not right-aligned:\n%s", out)
	}
	csv, err := e.run(t, invoiceCmd, "-month", "2026-10", "-format", "csv")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(csv, "month,tariff_version,kind,") || !strings.Contains(csv, ",total,") || !strings.HasSuffix(strings.TrimSpace(csv), "1497.02") {
		t.Errorf("got csv\n%s", csv)
	}
	js, err := e.run(t, invoiceCmd, "-month", "2026-10", "-format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		TotalCents int64 `json:"total_cents"`
	}
	if err := json.Unmarshal([]byte(js), &doc); err != nil || doc.TotalCents != 149702 {
		t.Errorf("got json total %d (%v), want 149702", doc.TotalCents, err)
	}
	if _, err := e.run(t, invoiceCmd, "-month", "2026/10"); err == nil || !strings.Contains(err.Error(), "InvalidArgument") || !strings.Contains(err.Error(), "month:") {
		t.Errorf("bad month: got %v, want InvalidArgument naming month", err)
	}
	if _, err := e.run(t, invoiceCmd, "-month", "2026-10", "-format", "pdf"); err == nil {
		t.Error("format pdf accepted")
	}

	if out, err := e.run(t, planPutCmd, "-tenant", "acme", "-from", "2026-09-01", "-segment", "0.045", "-monthly", "250"); err != nil ||
		out != "plan of acme from 2026-09-01: 0.045 EUR a delivered segment, 250.00 EUR a month\n" {
		t.Errorf("plan put: %v, %q", err, out)
	}
	if _, err := e.run(t, planPutCmd, "-tenant", "acme", "-from", "2026-10-15", "-segment", "0.03333", "-monthly", "300.00"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.run(t, planPutCmd, "-tenant", "acme", "-from", "2026-10-15", "-segment", "0.01"); err == nil || !strings.Contains(err.Error(), "AlreadyExists") {
		t.Errorf("second version on a day: got %v, want AlreadyExists", err)
	}
	if _, err := e.run(t, planPutCmd, "-tenant", "acme", "-from", "2026-12-01", "-monthly", "10.005"); err == nil || !strings.Contains(err.Error(), "2 decimals") {
		t.Errorf("fee with 3 decimals: got %v", err)
	}
	out, err = e.run(t, planListCmd, "-tenant", "acme")
	if err != nil || !strings.Contains(out, "0.03333") || strings.Count(out, "\n") != 3 {
		t.Errorf("plan list: %v\n%s", err, out)
	}

	// By hand: 36101 1000 × 0.045 = 45.00; 36102 234 × 0.03333 = 7.79922
	// → 7.80; the fee of the version in force on the 1st, 250.00.
	out, err = e.run(t, statementCmd, "-tenant", "acme", "-month", "2026-10")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Statement of acme for 2026-10 (EUR, excluding VAT): 1234 delivered segments",
		"segments 36101 2026-09-01",
		"1000 0.045 45.00",
		"234 0.03333 7.80",
		"monthly_fee",
		"1 250.00 250.00",
	} {
		if !strings.Contains(squeeze(out), want) {
			t.Errorf("statement lacks %q:\n%s", want, out)
		}
	}
	lines = strings.Split(strings.TrimRight(out, "\n"), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "TOTAL") || !strings.HasSuffix(last, " 302.80") {
		t.Errorf("got total line %q, want 302.80", last)
	}
	if _, err := e.run(t, statementCmd, "-tenant", "ACME", "-month", "2026-10"); err == nil || !strings.Contains(err.Error(), "tenant_id:") {
		t.Errorf("bad tenant: got %v", err)
	}
}

// An operator statement reconciled from the command line, then a forecast
// uploaded and reported.
func TestCLIReconcileAndForecast(t *testing.T) {
	e := startBilling(t)
	if _, err := e.client.RecordCatalogEvent(e.ctx, &adminv1.RecordCatalogEventRequest{Event: &adminv1.RecordCatalogEventRequest_ShortCodeEvent{
		ShortCodeEvent: &adminv1.ShortCodeEvent{ShortCode: "36101", Kind: adminv1.ShortCodeEventKind_SHORT_CODE_EVENT_KIND_ACTIVATION, Effective: "2026-01-01"}}}); err != nil {
		t.Fatal(err)
	}
	e.deliver(t, "acme", "36101", billing.Delivered, "2026-10-01 10:00", 5)
	e.deliver(t, "acme", "36101", billing.Delivered, "2026-10-02 10:00", 3)

	bad := writeFile(t, "bad.csv", "date,short_code,delivered\n2026-10-01,36101,5\n2026-10-02,3610,3\n")
	if _, err := e.run(t, reconcileCmd, "-month", "2026-10", bad); err == nil || !strings.Contains(err.Error(), "nothing imported") || !strings.Contains(err.Error(), "line 3: short code") {
		t.Errorf("bad statement: got %v, want line 3 named", err)
	}
	file := writeFile(t, "orange-2026-10.csv", "date;short_code;delivered\n01/10/2026;36101;5\n2026-10-04;36199;7\n")
	out, err := e.run(t, reconcileCmd, "-month", "2026-10", file)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"(orange-2026-10.csv, imported",
		"operator 12, ledger 8 delivered MTs: difference +4; 2 lines differ",
		"2026-10-02 36101 - 3 -3 missing from statement",
		"2026-10-04 36199 7 0 +7 unknown short code",
		"36199 7 0 +7 1 NO",
	} {
		if !strings.Contains(squeeze(out), want) {
			t.Errorf("reconcile output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(squeeze(out), "2026-10-01 36101") {
		t.Errorf("a matching line printed without -all:\n%s", out)
	}
	out, err = e.run(t, reconcileCmd, "-month", "2026-10", "-show", "-all")
	if err != nil || !strings.Contains(squeeze(out), "2026-10-01 36101 5 5 0") {
		t.Errorf("reconcile -show -all: %v\n%s", err, out)
	}

	var b strings.Builder
	b.WriteString("short_code,month,volume,throughput\n")
	for m := 1; m <= 6; m++ {
		fmt.Fprintf(&b, "36101,2026-%02d,100,10\n", m)
	}
	fc := writeFile(t, "forecast.csv", b.String())
	out, err = e.run(t, forecastPutCmd, "-period", "2026-H1", "-note", "sent in November", fc)
	if err != nil || out != "2026-H1 36101: revision 1\n" {
		t.Errorf("forecast put: %v, %q", err, out)
	}
	badFC := writeFile(t, "bad-forecast.csv", "36101,2026-01,100,10\n36101,2026-1,100,10\n")
	if _, err := e.run(t, forecastPutCmd, "-period", "2026-H1", badFC); err == nil || !strings.Contains(err.Error(), "line 2: month") {
		t.Errorf("bad forecast: got %v, want line 2 named", err)
	}
	e.deliver(t, "acme", "36101", billing.Delivered, "2026-02-10 10:00", 130)
	e.deliver(t, "acme", "36101", billing.Delivered, "2026-03-10 10:00", 100)
	out, err = e.run(t, forecastReportCmd, "-period", "2026-H1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Forecasts of 2026-H1 against actuals, drift flagged beyond ±20 %: 5 lines flagged",
		"36101 2026-02 closed 100 130 +30.00% 10 10 VOLUME",
		"36101 2026-03 closed 100 100 +0.00% 10 10\n",
		"36101 2026-04 closed 100 0 -100.00% 10 10 VOLUME",
	} {
		if !strings.Contains(squeeze(out), want) {
			t.Errorf("forecast report lacks %q:\n%s", want, out)
		}
	}
	out, err = e.run(t, forecastReportCmd, "-period", "2026-H1", "-threshold", "35")
	if err != nil || !strings.Contains(out, "beyond ±35 %: 4 lines flagged") {
		t.Errorf("threshold 35: %v\n%s", err, out)
	}
}

// A new tariff version from the default document, as an operator would
// start one.
func TestCLITariff(t *testing.T) {
	e := startBilling(t)
	def, err := e.run(t, tariffListCmd, "-default")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(def), &doc); err != nil {
		t.Fatalf("default document: %v\n%s", err, def)
	}
	doc["version"], doc["valid_from"] = "ops-2027", "2027-01-01"
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, "tariff.json", string(b))
	if out, err := e.run(t, tariffPutCmd, file); err != nil || out != "tariff ops-2027 stored, in force from 2027-01-01\n" {
		t.Errorf("tariff put: %v, %q", err, out)
	}
	if _, err := e.run(t, tariffPutCmd, file); err == nil || !strings.Contains(err.Error(), "AlreadyExists") {
		t.Errorf("same version again: got %v, want AlreadyExists", err)
	}
	bad := writeFile(t, "bad.json", `{"version": "x", "currency": "USD"}`)
	if _, err := e.run(t, tariffPutCmd, bad); err == nil || !strings.Contains(err.Error(), "currency:") {
		t.Errorf("bad tariff: got %v, want the currency named", err)
	}
	out, err := e.run(t, tariffListCmd)
	if err != nil || !strings.Contains(squeeze(out), "ops-2027 2027-01-01") || !strings.Contains(out, "(default)") {
		t.Errorf("tariff list: %v\n%s", err, out)
	}

	// The basic qualification of a legal entity, and its month's count.
	if _, err := e.run(t, qualifiedCmd, "-legal-entity", "PushSMS SAS", "-month", "2026-10", "-msisdns", "1000"); err == nil || !strings.Contains(err.Error(), "no basic-qualification subscription") {
		t.Errorf("count without a subscription: got %v", err)
	}
	if _, err := e.run(t, catalogAddCmd, "-legal-entity", "PushSMS SAS", "-kind", "subscribe", "-on", "2026-10-01"); err != nil {
		t.Fatal(err)
	}
	if out, err := e.run(t, qualifiedCmd, "-legal-entity", "PushSMS SAS", "-month", "2026-10", "-msisdns", "1000"); err != nil || !strings.HasPrefix(out, "count ") {
		t.Fatalf("qualified: %v, %q", err, out)
	}
	out, err = e.run(t, catalogListCmd, "-legal-entity", "PushSMS SAS")
	if err != nil || !strings.Contains(squeeze(out), "PushSMS SAS 2026-10-01 subscribe") || !strings.Contains(squeeze(out), "PushSMS SAS 2026-10 1000") {
		t.Errorf("catalog list: %v\n%s", err, out)
	}
	// 200 EUR a month and 1000 × 0.01 EUR.
	out, err = e.run(t, invoiceCmd, "-month", "2026-10")
	if err != nil || !strings.HasSuffix(strings.TrimSpace(out), " 210.00") {
		t.Errorf("invoice with qualification: %v\n%s", err, out)
	}
}
