package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"pushsms.io/lib/fault"
	adminv1 "pushsms.io/proto/gen/pushsms/admin/v1"
	"pushsms.io/services/billing"
)

// The billing commands talk to billing's internal gRPC port, which has no
// API key: the aggregator runs them from inside the cluster.

// billingFlags are the flags of the commands on billing's internal port.
func (c *cli) billingFlags(fs *flag.FlagSet) *internalFlags {
	return c.internalFlags(fs, "billing", "PUSHSMS_BILLING_ADDR", "localhost:9094")
}

// textTable prints aligned columns: text left, numbers right.
type textTable struct {
	head  []string
	right []bool
	rows  [][]string
}

func (t *textTable) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *textTable) print(w io.Writer) {
	width := make([]int, len(t.head))
	for _, r := range append([][]string{t.head}, t.rows...) {
		for i, cell := range r {
			width[i] = max(width[i], utf8.RuneCountInString(cell))
		}
	}
	for _, r := range append([][]string{t.head}, t.rows...) {
		var b strings.Builder
		for i, cell := range r {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(cell))
			if i > 0 {
				b.WriteString("  ")
			}
			if t.right[i] {
				b.WriteString(pad + cell)
			} else {
				b.WriteString(cell + pad)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// localInvalid prints the bad lines of a file checked before sending.
func localInvalid(file string, err error) error {
	var ie *fault.InvalidError
	if !errors.As(err, &ie) {
		return fmt.Errorf("%s: %w", file, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: nothing sent:", file)
	for _, v := range ie.Violations {
		fmt.Fprintf(&b, "\n  %s: %s", v.Field, v.Description)
	}
	return errors.New(b.String())
}

// noArgs parses fs and refuses positional arguments.
func noArgs(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

const invoiceUsage = `Usage: pushsms invoice -month YYYY-MM [-format table|csv|json] [-addr host:port]

Prints the operator's invoice of a month as billing computes it from the
ledger (delivered segments of the month's Europe/Paris days), the tariff in
force on the month's first day and the short-code catalog: one line per
item, amounts in EUR excluding VAT, exact to the cent. -format csv and json
print the export documents instead of the table.

Flags:
`

// runInvoice prints a month's invoice.
func (c *cli) runInvoice(ctx context.Context, args []string) error {
	fs := c.flags("invoice", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(c.err, invoiceUsage); fs.PrintDefaults() }
	bf := c.billingFlags(fs)
	month := fs.String("month", "", "the month, YYYY-MM (required)")
	format := fs.String("format", "table", "table, csv or json")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	req := &adminv1.GetInvoiceRequest{Month: *month}
	switch *format {
	case "table":
	case "csv":
		req.Format = adminv1.DocumentFormat_DOCUMENT_FORMAT_CSV
	case "json":
		req.Format = adminv1.DocumentFormat_DOCUMENT_FORMAT_JSON
	default:
		return fmt.Errorf("invoice: -format %q: want table, csv or json", *format)
	}
	client, done, err := dialInternal(bf, adminv1.NewBillingServiceClient)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.GetInvoice(ctx, req)
	if err != nil {
		return apiError(err)
	}
	if req.Format != adminv1.DocumentFormat_DOCUMENT_FORMAT_UNSPECIFIED {
		_, err := c.out.Write(resp.GetDocument())
		return err
	}
	inv := resp.GetInvoice()
	fmt.Fprintf(c.out, "Operator invoice %s, tariff %s (%s, excluding VAT)\n\n", inv.GetMonth(), inv.GetTariffVersion(), inv.GetCurrency())
	t := &textTable{
		head:  []string{"KIND", "FOR", "DATE", "DESCRIPTION", "QUANTITY", "UNIT EUR", "AMOUNT EUR"},
		right: []bool{false, false, false, false, true, true, true},
	}
	for _, l := range inv.GetLines() {
		who := l.GetShortCode()
		if who == "" {
			who = l.GetLegalEntity()
		}
		t.add(l.GetKind(), who, l.GetDate(), l.GetDescription(), strconv.FormatInt(l.GetQuantity(), 10),
			billing.FormatMillicents(l.GetUnitMillicents()), billing.FormatCents(l.GetAmountCents()))
	}
	t.add("TOTAL", "", "", "", "", "", billing.FormatCents(inv.GetTotalCents()))
	t.print(c.out)
	return nil
}

const statementUsage = `Usage: pushsms statement -tenant ID -month YYYY-MM [-addr host:port]

Prints a partner's statement of a month: its delivered segments per short
code priced at the plan version in force on each Europe/Paris day (see
"pushsms plan"), days without a plan at zero, and the monthly fee; amounts
in EUR excluding VAT, each line rounded once to the cent.

Flags:
`

// runStatement prints a partner's monthly statement.
func (c *cli) runStatement(ctx context.Context, args []string) error {
	fs := c.flags("statement", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(c.err, statementUsage); fs.PrintDefaults() }
	bf := c.billingFlags(fs)
	tenant := fs.String("tenant", "", "the partner (required)")
	month := fs.String("month", "", "the month, YYYY-MM (required)")
	client, done, err := parsedClient(fs, args, bf, adminv1.NewBillingServiceClient)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.GetPartnerStatement(ctx, &adminv1.GetPartnerStatementRequest{TenantId: *tenant, Month: *month})
	if err != nil {
		return apiError(err)
	}
	st := resp.GetStatement()
	fmt.Fprintf(c.out, "Statement of %s for %s (EUR, excluding VAT): %d delivered segments\n\n", st.GetTenantId(), st.GetMonth(), st.GetDeliveredSegments())
	t := &textTable{
		head:  []string{"KIND", "SHORT CODE", "PLAN FROM", "DESCRIPTION", "QUANTITY", "UNIT EUR", "AMOUNT EUR"},
		right: []bool{false, false, false, false, true, true, true},
	}
	for _, l := range st.GetLines() {
		t.add(l.GetKind(), l.GetShortCode(), l.GetPlanValidFrom(), l.GetDescription(), strconv.FormatInt(l.GetQuantity(), 10),
			billing.FormatMillicents(l.GetUnitMillicents()), billing.FormatCents(l.GetAmountCents()))
	}
	t.add("TOTAL", "", "", "", "", "", billing.FormatCents(st.GetTotalCents()))
	t.print(c.out)
	return nil
}

const planUsage = `Usage: pushsms plan put -tenant ID -from YYYY-MM-DD -segment EUR -monthly EUR [-note TEXT]
       pushsms plan put -tenant ID -from YYYY-MM-DD -closed
       pushsms plan list [-tenant ID]

A partner's price plan: the price of one delivered segment (up to 5
decimals, 0.045) and a monthly fee (up to 2 decimals), in force from a day
until the next version. A version is never changed: to correct a price,
add a version from a later day. -closed ends the plan.

Flags:
`

// runPlanPut stores a plan version.
func (c *cli) runPlanPut(ctx context.Context, args []string) error {
	fs := c.flags("plan put", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(c.err, planUsage); fs.PrintDefaults() }
	bf := c.billingFlags(fs)
	tenant := fs.String("tenant", "", "the partner (required)")
	from := fs.String("from", "", "first day in force, YYYY-MM-DD (required)")
	segment := fs.String("segment", "0", "price of a delivered segment, EUR (0.045)")
	monthly := fs.String("monthly", "0", "monthly fee, EUR (250 or 250.00)")
	closed := fs.Bool("closed", false, "end the plan from -from")
	note := fs.String("note", "", "kept with the version")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	seg, err := billing.Price(*segment).Millicents()
	if err != nil {
		return fmt.Errorf("plan put: -segment: %w", err)
	}
	fee, err := billing.Price(*monthly).Millicents()
	if err != nil {
		return fmt.Errorf("plan put: -monthly: %w", err)
	}
	if fee%1000 != 0 {
		return fmt.Errorf("plan put: -monthly %s: at most 2 decimals", *monthly)
	}
	client, done, err := dialInternal(bf, adminv1.NewBillingServiceClient)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.PutPartnerPlan(ctx, &adminv1.PutPartnerPlanRequest{Plan: &adminv1.PartnerPlan{
		TenantId: *tenant, ValidFrom: *from, SegmentPriceMillicents: seg, MonthlyFeeCents: fee / 1000, Closed: *closed, Note: *note,
	}})
	if err != nil {
		return apiError(err)
	}
	p := resp.GetPlan()
	if p.GetClosed() {
		fmt.Fprintf(c.out, "plan of %s closed from %s\n", p.GetTenantId(), p.GetValidFrom())
		return nil
	}
	fmt.Fprintf(c.out, "plan of %s from %s: %s EUR a delivered segment, %s EUR a month\n", p.GetTenantId(), p.GetValidFrom(),
		billing.FormatMillicents(p.GetSegmentPriceMillicents()), billing.FormatCents(p.GetMonthlyFeeCents()))
	return nil
}

// runPlanList prints plan versions.
func (c *cli) runPlanList(ctx context.Context, args []string) error {
	fs := c.flags("plan list", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(c.err, planUsage); fs.PrintDefaults() }
	bf := c.billingFlags(fs)
	tenant := fs.String("tenant", "", "one partner's versions (default: all)")
	client, done, err := parsedClient(fs, args, bf, adminv1.NewBillingServiceClient)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.ListPartnerPlans(ctx, &adminv1.ListPartnerPlansRequest{TenantId: *tenant})
	if err != nil {
		return apiError(err)
	}
	t := &textTable{
		head:  []string{"TENANT", "FROM", "SEGMENT EUR", "MONTHLY EUR", "NOTE"},
		right: []bool{false, false, true, true, false},
	}
	for _, p := range resp.GetPlans() {
		seg, fee := billing.FormatMillicents(p.GetSegmentPriceMillicents()), billing.FormatCents(p.GetMonthlyFeeCents())
		if p.GetClosed() {
			seg, fee = "closed", "closed"
		}
		t.add(p.GetTenantId(), p.GetValidFrom(), seg, fee, p.GetNote())
	}
	t.print(c.out)
	return nil
}

const reconcileUsage = `Usage: pushsms reconcile -month YYYY-MM [-source NAME] [-all] FILE.csv
       pushsms reconcile -month YYYY-MM -show [-id N] [-all]

Imports the operator's statement of a month and prints its differences
with the ledger, per day and short code: a day the statement lacks, a
count that differs, a short code billing does not know. One line per day
and short code, the header optional, ',' or ';':

    date,short_code,delivered
    2026-11-01,36123,15234

dates YYYY-MM-DD or DD/MM/YYYY, all in the month. A bad line refuses the
whole file, naming the line. The report is stored: -show prints the latest
of the month again (or import -id N), -all prints matching lines too.

Flags:
`

// runReconcile imports an operator statement, or shows a stored report.
func (c *cli) runReconcile(ctx context.Context, args []string) error {
	fs := c.flags("reconcile", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(c.err, reconcileUsage); fs.PrintDefaults() }
	bf := c.billingFlags(fs)
	month := fs.String("month", "", "the statement's month, YYYY-MM")
	source := fs.String("source", "", "name kept with the report (default: the file name)")
	show := fs.Bool("show", false, "print a stored report instead of importing")
	id := fs.Int64("id", 0, "with -show: the import to print (default: the month's latest)")
	all := fs.Bool("all", false, "print matching lines too")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *show != (fs.NArg() == 0) || fs.NArg() > 1 {
		fs.Usage()
		return errors.New("reconcile: want FILE.csv, or -show")
	}
	client, done, err := dialInternal(bf, adminv1.NewBillingServiceClient)
	if err != nil {
		return err
	}
	defer done()
	var rec *adminv1.Reconciliation
	if *show {
		resp, err := client.GetReconciliation(ctx, &adminv1.GetReconciliationRequest{Id: *id, Month: *month, AllLines: *all})
		if err != nil {
			return apiError(err)
		}
		rec = resp.GetReconciliation()
	} else {
		file := fs.Arg(0)
		if *source == "" {
			*source = filepath.Base(file)
		}
		rec, err = uploadStatement(ctx, client, file, *month, *source)
		if err != nil {
			return fmt.Errorf("%s: nothing imported: %w", file, apiError(err))
		}
		if *all {
			resp, err := client.GetReconciliation(ctx, &adminv1.GetReconciliationRequest{Id: rec.GetId(), AllLines: true})
			if err != nil {
				return apiError(err)
			}
			rec = resp.GetReconciliation()
		}
	}
	c.printReconciliation(rec)
	return nil
}

// statementChunk is the size of one chunk of an uploaded statement.
const statementChunk = 256 << 10

// uploadStatement streams file to ImportOperatorStatement.
func uploadStatement(ctx context.Context, client adminv1.BillingServiceClient, file, month, source string) (*adminv1.Reconciliation, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(ctx)
	// Cancelling the call when the file cannot be read to its end is what
	// keeps the service from importing part of it.
	defer cancel()
	stream, err := client.ImportOperatorStatement(ctx)
	if err != nil {
		return nil, err
	}
	send := func(req *adminv1.ImportOperatorStatementRequest) error {
		if err := stream.Send(req); err != nil {
			if errors.Is(err, io.EOF) {
				// The service ended the call; its status says why.
				_, err = stream.CloseAndRecv()
			}
			return err
		}
		return nil
	}
	if err := send(&adminv1.ImportOperatorStatementRequest{Item: &adminv1.ImportOperatorStatementRequest_Spec{
		Spec: &adminv1.OperatorStatementSpec{Month: month, Source: source}}}); err != nil {
		return nil, err
	}
	buf := make([]byte, statementChunk)
	for {
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			if err := send(&adminv1.ImportOperatorStatementRequest{Item: &adminv1.ImportOperatorStatementRequest_Chunk{Chunk: buf[:n]}}); err != nil {
				return nil, err
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return nil, err
	}
	return resp.GetReconciliation(), nil
}

var discrepancyText = map[adminv1.Discrepancy]string{
	adminv1.Discrepancy_DISCREPANCY_NONE:                   "",
	adminv1.Discrepancy_DISCREPANCY_MISSING_FROM_STATEMENT: "missing from statement",
	adminv1.Discrepancy_DISCREPANCY_COUNT_MISMATCH:         "count differs",
	adminv1.Discrepancy_DISCREPANCY_UNKNOWN_SHORT_CODE:     "unknown short code",
}

func signed(n int64) string {
	if n > 0 {
		return "+" + strconv.FormatInt(n, 10)
	}
	return strconv.FormatInt(n, 10)
}

func (c *cli) printReconciliation(r *adminv1.Reconciliation) {
	fmt.Fprintf(c.out, "Reconciliation %d of %s (%s, imported %s)\n", r.GetId(), r.GetMonth(), r.GetSource(),
		r.GetImportedAt().AsTime().Local().Format("2006-01-02 15:04"))
	fmt.Fprintf(c.out, "operator %d, ledger %d delivered MTs: difference %s; %d lines differ\n\n",
		r.GetOperatorTotal(), r.GetLedgerTotal(), signed(r.GetDifference()), r.GetDifferingLines())
	if len(r.GetLines()) > 0 {
		t := &textTable{
			head:  []string{"DAY", "SHORT CODE", "OPERATOR", "LEDGER", "DIFFERENCE", "ISSUE"},
			right: []bool{false, false, true, true, true, false},
		}
		for _, l := range r.GetLines() {
			op := strconv.FormatInt(l.GetOperatorSegments(), 10)
			if !l.GetInStatement() {
				op = "-"
			}
			t.add(l.GetDay(), l.GetShortCode(), op, strconv.FormatInt(l.GetLedgerSegments(), 10), signed(l.GetDifference()), discrepancyText[l.GetDiscrepancy()])
		}
		t.print(c.out)
		if r.GetLinesLeftOut() > 0 {
			fmt.Fprintf(c.out, "… and %d more lines\n", r.GetLinesLeftOut())
		}
		fmt.Fprintln(c.out)
	}
	t := &textTable{
		head:  []string{"SHORT CODE", "OPERATOR", "LEDGER", "DIFFERENCE", "DAYS DIFFERING", "KNOWN"},
		right: []bool{false, true, true, true, true, false},
	}
	for _, s := range r.GetShortCodes() {
		known := "yes"
		if !s.GetKnown() {
			known = "NO"
		}
		t.add(s.GetShortCode(), strconv.FormatInt(s.GetOperatorSegments(), 10), strconv.FormatInt(s.GetLedgerSegments(), 10),
			signed(s.GetOperatorSegments()-s.GetLedgerSegments()), strconv.Itoa(int(s.GetDifferingDays())), known)
	}
	t.print(c.out)
}

const forecastUsage = `Usage: pushsms forecast put -period YYYY-H1|YYYY-H2 [-note TEXT] FILE.csv
       pushsms forecast report -period YYYY-H1|YYYY-H2 [-threshold PERCENT]

put stores the forecasts sent to the operator for a half year (H1: January
to June, H2: July to December), a new revision for each short code of the
file, which must give its six months:

    short_code,month,volume,throughput
    36123,2027-01,1500000,20

volume in delivered segments, throughput in SMS/s. report compares each
month with the latest revision: the ledger's delivered segments (a month
drifts beyond -threshold percent, default 20, either way once closed,
upwards while in progress), the catalog's contracted throughput, and
traffic on short codes without a forecast.

Flags:
`

// runForecastPut uploads a forecast file.
func (c *cli) runForecastPut(ctx context.Context, args []string) error {
	fs := c.flags("forecast put", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(c.err, forecastUsage); fs.PrintDefaults() }
	bf := c.billingFlags(fs)
	period := fs.String("period", "", "the half year, YYYY-H1 or YYYY-H2 (required)")
	note := fs.String("note", "", "kept with the revision (e.g. when it was sent)")
	file, err := oneArg(fs, args, "FILE.csv")
	if err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	entries, err := billing.ParseForecastCSV(f)
	f.Close()
	if err != nil {
		return localInvalid(file, err)
	}
	req := &adminv1.PutForecastRequest{Period: *period, Note: *note}
	for _, e := range entries {
		req.Entries = append(req.Entries, &adminv1.ForecastEntry{ShortCode: e.ShortCode, Month: e.Month.String(), Volume: e.Volume, Throughput: int32(e.Throughput)})
	}
	client, done, err := dialInternal(bf, adminv1.NewBillingServiceClient)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.PutForecast(ctx, req)
	if err != nil {
		return fmt.Errorf("%s: nothing stored: %w", file, apiError(err))
	}
	for _, r := range resp.GetForecasts() {
		fmt.Fprintf(c.out, "%s %s: revision %d\n", *period, r.GetShortCode(), r.GetRevision())
	}
	return nil
}

// parsePercent reads a percentage with up to 2 decimals as basis points.
func parsePercent(s string) (int32, error) {
	mc, err := billing.Price(s).Millicents()
	if err != nil || mc%1000 != 0 || mc > 1000*100_000 {
		return 0, fmt.Errorf("%q: want a percentage such as 20 or 12.5", s)
	}
	return int32(mc / 1000), nil
}

// runForecastReport prints actuals against forecasts.
func (c *cli) runForecastReport(ctx context.Context, args []string) error {
	fs := c.flags("forecast report", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(c.err, forecastUsage); fs.PrintDefaults() }
	bf := c.billingFlags(fs)
	period := fs.String("period", "", "the half year, YYYY-H1 or YYYY-H2 (required)")
	threshold := fs.String("threshold", "20", "drift flagged beyond this percentage")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	bp, err := parsePercent(*threshold)
	if err != nil {
		return fmt.Errorf("forecast report: -threshold %w", err)
	}
	client, done, err := dialInternal(bf, adminv1.NewBillingServiceClient)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.GetForecastReport(ctx, &adminv1.GetForecastReportRequest{Period: *period, DriftThresholdBp: bp})
	if err != nil {
		return apiError(err)
	}
	rep := resp.GetReport()
	fmt.Fprintf(c.out, "Forecasts of %s against actuals, drift flagged beyond ±%s %%: %d lines flagged\n\n",
		rep.GetPeriod(), strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%d.%02d", rep.GetDriftThresholdBp()/100, rep.GetDriftThresholdBp()%100), "00"), "."), rep.GetFlaggedLines())
	t := &textTable{
		head:  []string{"SHORT CODE", "MONTH", "STATUS", "FORECAST", "ACTUAL", "DRIFT", "FORECAST SMS/S", "CONTRACT SMS/S", "FLAGS"},
		right: []bool{false, false, false, true, true, true, true, true, false},
	}
	for _, l := range rep.GetLines() {
		forecast, drift := strconv.FormatInt(l.GetForecastVolume(), 10), ""
		if l.GetRevision() == 0 {
			forecast = "-"
		} else if l.GetProgress() != adminv1.MonthProgress_MONTH_PROGRESS_FUTURE && l.GetForecastVolume() > 0 {
			drift = percentOfBP(l.GetDriftBp())
		}
		actual := strconv.FormatInt(l.GetActualVolume(), 10)
		if l.GetProgress() == adminv1.MonthProgress_MONTH_PROGRESS_FUTURE {
			actual = "-"
		}
		var flags []string
		if l.GetVolumeDrift() {
			flags = append(flags, "VOLUME")
		}
		if l.GetThroughputMismatch() {
			flags = append(flags, "THROUGHPUT")
		}
		if l.GetUnforecast() {
			flags = append(flags, "NO FORECAST")
		}
		t.add(l.GetShortCode(), l.GetMonth(), strings.ToLower(enumName(l.GetProgress(), "MONTH_PROGRESS_")), forecast, actual, drift,
			strconv.Itoa(int(l.GetForecastThroughput())), strconv.Itoa(int(l.GetContractedThroughput())), strings.Join(flags, ","))
	}
	t.print(c.out)
	return nil
}

// percentOfBP writes basis points as a signed percentage: 2100 → "+21.00%".
func percentOfBP(bp int64) string {
	sign := "+"
	if bp < 0 {
		sign, bp = "-", -bp
	}
	return fmt.Sprintf("%s%d.%02d%%", sign, bp/100, bp%100)
}

const tariffUsage = `Usage: pushsms tariff put FILE.json
       pushsms tariff list [-default]

The operator's price list is data: a JSON document per version, in force
on the days [valid_from, valid_to) (docs/billing-invoice.md). put stores a
new version (a stored version still open is closed at its valid_from);
list prints the stored versions, -default the embedded default document
(the offer's price list) to start a new version from.

Flags:
`

// runTariffPut stores a tariff version.
func (c *cli) runTariffPut(ctx context.Context, args []string) error {
	fs := c.flags("tariff put", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(c.err, tariffUsage); fs.PrintDefaults() }
	bf := c.billingFlags(fs)
	file, err := oneArg(fs, args, "FILE.json")
	if err != nil {
		return err
	}
	doc, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	client, done, err := dialInternal(bf, adminv1.NewBillingServiceClient)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.PutTariff(ctx, &adminv1.PutTariffRequest{Document: string(doc)})
	if err != nil {
		return fmt.Errorf("%s: nothing stored: %w", file, apiError(err))
	}
	t := resp.GetTariff()
	fmt.Fprintf(c.out, "tariff %s stored, in force from %s%s\n", t.GetVersion(), t.GetValidFrom(), until(t.GetValidTo()))
	return nil
}

func until(validTo string) string {
	if validTo == "" {
		return ""
	}
	return " until " + validTo + " (excluded)"
}

// runTariffList prints the tariff versions, or the default document.
func (c *cli) runTariffList(ctx context.Context, args []string) error {
	fs := c.flags("tariff list", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(c.err, tariffUsage); fs.PrintDefaults() }
	bf := c.billingFlags(fs)
	def := fs.Bool("default", false, "print the default tariff's JSON document")
	client, done, err := parsedClient(fs, args, bf, adminv1.NewBillingServiceClient)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.ListTariffs(ctx, &adminv1.ListTariffsRequest{})
	if err != nil {
		return apiError(err)
	}
	if *def {
		fmt.Fprintln(c.out, resp.GetDefaultTariff().GetDocument())
		return nil
	}
	t := &textTable{head: []string{"VERSION", "FROM", "UNTIL"}, right: []bool{false, false, false}}
	for _, v := range resp.GetTariffs() {
		t.add(v.GetVersion(), v.GetValidFrom(), v.GetValidTo())
	}
	d := resp.GetDefaultTariff()
	t.add(d.GetVersion()+" (default)", d.GetValidFrom(), d.GetValidTo())
	t.print(c.out)
	return nil
}

const catalogUsage = `Usage: pushsms catalog add -short-code S -kind KIND -on YYYY-MM-DD [-throughput N] [-note TEXT]
       pushsms catalog add -legal-entity NAME -kind subscribe|unsubscribe -on YYYY-MM-DD [-note TEXT]
       pushsms catalog qualified -legal-entity NAME -month YYYY-MM -msisdns N [-note TEXT]
       pushsms catalog list [-short-code S | -legal-entity NAME]

The history the invoice's fees follow from. A short code's KIND is one of
activation (-throughput: the subscribed rate, default the standard),
throughput_change (-throughput: the new rate), oadc_on, oadc_off, green_on,
green_off, other_change, closure. A legal entity subscribes to or
unsubscribes from the basic qualification; qualified records the MSISDNs
it qualified in a month (negative to correct). The history is never
edited: a mistake is corrected by another event.

Flags:
`

// runCatalogAdd records a short-code or qualification event.
func (c *cli) runCatalogAdd(ctx context.Context, args []string) error {
	fs := c.flags("catalog add", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(c.err, catalogUsage); fs.PrintDefaults() }
	bf := c.billingFlags(fs)
	sc := fs.String("short-code", "", "the short code")
	entity := fs.String("legal-entity", "", "the legal entity (basic qualification)")
	kind := fs.String("kind", "", "what happens (see above)")
	on := fs.String("on", "", "the day it takes effect, YYYY-MM-DD")
	throughput := fs.Int("throughput", 0, "SMS/s, for activation and throughput_change")
	note := fs.String("note", "", "kept with the event")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	req := &adminv1.RecordCatalogEventRequest{}
	token := strings.ToUpper(strings.NewReplacer("-", "_", " ", "_").Replace(*kind))
	switch {
	case (*sc == "") == (*entity == ""):
		return errors.New("catalog add: want -short-code or -legal-entity")
	case *sc != "":
		k, ok := adminv1.ShortCodeEventKind_value["SHORT_CODE_EVENT_KIND_"+token]
		if !ok || k == 0 {
			return fmt.Errorf("catalog add: -kind %q: want activation, throughput_change, oadc_on, oadc_off, green_on, green_off, other_change or closure", *kind)
		}
		req.Event = &adminv1.RecordCatalogEventRequest_ShortCodeEvent{ShortCodeEvent: &adminv1.ShortCodeEvent{
			ShortCode: *sc, Kind: adminv1.ShortCodeEventKind(k), Effective: *on, Throughput: int32(*throughput), Note: *note}}
	default:
		k, ok := adminv1.QualificationEventKind_value["QUALIFICATION_EVENT_KIND_"+token]
		if !ok || k == 0 {
			return fmt.Errorf("catalog add: -kind %q: want subscribe or unsubscribe", *kind)
		}
		req.Event = &adminv1.RecordCatalogEventRequest_QualificationEvent{QualificationEvent: &adminv1.QualificationEvent{
			LegalEntity: *entity, Kind: adminv1.QualificationEventKind(k), Effective: *on, Note: *note}}
	}
	client, done, err := dialInternal(bf, adminv1.NewBillingServiceClient)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.RecordCatalogEvent(ctx, req)
	if err != nil {
		return apiError(err)
	}
	fmt.Fprintf(c.out, "event %d recorded\n", resp.GetId())
	return nil
}

// runCatalogQualified records a count of qualified MSISDNs.
func (c *cli) runCatalogQualified(ctx context.Context, args []string) error {
	fs := c.flags("catalog qualified", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(c.err, catalogUsage); fs.PrintDefaults() }
	bf := c.billingFlags(fs)
	entity := fs.String("legal-entity", "", "the legal entity (required)")
	month := fs.String("month", "", "the month, YYYY-MM (required)")
	n := fs.Int64("msisdns", 0, "MSISDNs qualified (negative to correct)")
	note := fs.String("note", "", "kept with the count")
	client, done, err := parsedClient(fs, args, bf, adminv1.NewBillingServiceClient)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.RecordCatalogEvent(ctx, &adminv1.RecordCatalogEventRequest{Event: &adminv1.RecordCatalogEventRequest_QualifiedMsisdns{
		QualifiedMsisdns: &adminv1.QualifiedMsisdns{LegalEntity: *entity, Month: *month, Msisdns: *n, Note: *note}}})
	if err != nil {
		return apiError(err)
	}
	fmt.Fprintf(c.out, "count %d recorded\n", resp.GetId())
	return nil
}

// runCatalogList prints the histories.
func (c *cli) runCatalogList(ctx context.Context, args []string) error {
	fs := c.flags("catalog list", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(c.err, catalogUsage); fs.PrintDefaults() }
	bf := c.billingFlags(fs)
	sc := fs.String("short-code", "", "only this short code's events")
	entity := fs.String("legal-entity", "", "only this legal entity's")
	client, done, err := parsedClient(fs, args, bf, adminv1.NewBillingServiceClient)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.ListCatalogEvents(ctx, &adminv1.ListCatalogEventsRequest{ShortCode: *sc, LegalEntity: *entity})
	if err != nil {
		return apiError(err)
	}
	t := &textTable{head: []string{"ID", "FOR", "EFFECTIVE", "KIND", "SMS/S", "NOTE"}, right: []bool{true, false, false, false, true, false}}
	for _, e := range resp.GetShortCodeEvents() {
		tp := ""
		if e.GetThroughput() != 0 {
			tp = strconv.Itoa(int(e.GetThroughput()))
		}
		t.add(strconv.FormatInt(e.GetId(), 10), e.GetShortCode(), e.GetEffective(), strings.ToLower(enumName(e.GetKind(), "SHORT_CODE_EVENT_KIND_")), tp, e.GetNote())
	}
	for _, e := range resp.GetQualificationEvents() {
		t.add(strconv.FormatInt(e.GetId(), 10), e.GetLegalEntity(), e.GetEffective(), strings.ToLower(enumName(e.GetKind(), "QUALIFICATION_EVENT_KIND_")), "", e.GetNote())
	}
	t.print(c.out)
	if q := resp.GetQualifiedMsisdns(); len(q) > 0 {
		fmt.Fprintln(c.out)
		qt := &textTable{head: []string{"ID", "LEGAL ENTITY", "MONTH", "MSISDNS", "NOTE"}, right: []bool{true, false, false, true, false}}
		for _, x := range q {
			qt.add(strconv.FormatInt(x.GetId(), 10), x.GetLegalEntity(), x.GetMonth(), strconv.FormatInt(x.GetMsisdns(), 10), x.GetNote())
		}
		qt.print(c.out)
	}
	return nil
}
