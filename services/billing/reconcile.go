package billing

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"pushsms.io/lib/fault"
)

// Limits of an operator statement: a month of 31 days for a few thousand
// short codes is far below them; what is above is not a statement.
const (
	// MaxStatementBytes bounds the CSV file of one import.
	MaxStatementBytes = 32 << 20
	// maxStatementRows bounds its data lines.
	maxStatementRows = 31 * 20_000
	// maxLineErrors is how many bad lines an import reports one by one.
	maxLineErrors = 20
	// maxSegmentsADay bounds a count: ten times the whole French market.
	maxSegmentsADay = 1_000_000_000_000
)

// OperatorStatementRow is one line of the operator's monthly statement:
// the MTs it says it delivered from a short code on a day.
type OperatorStatementRow struct {
	// Line is the 1-based line of the file, for error messages.
	Line      int
	Day       Date
	ShortCode string
	Delivered int64
}

// csvLines reads a CSV file the way every import of outside data here
// does: UTF-8 with or without a byte-order mark, ',' or ';' separator
// (the first line of data decides: French spreadsheets export ';'), CRLF
// or LF, '#' comments, fields trimmed. Each record comes with its line.
type csvLines struct {
	r *csv.Reader
}

func newCSVLines(data []byte) *csvLines {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	r := csv.NewReader(bytes.NewReader(data))
	// The first line of data decides, not a comment that may hold commas.
	for rest := data; len(rest) > 0; {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if bytes.Count(line, []byte(";")) > bytes.Count(line, []byte(",")) {
			r.Comma = ';'
		}
		break
	}
	r.Comment = '#'
	r.FieldsPerRecord = -1 // checked by the caller, with the line
	r.TrimLeadingSpace = true
	r.ReuseRecord = true
	return &csvLines{r: r}
}

// next returns the next record, trimmed, and its line; io.EOF at the end.
func (c *csvLines) next() ([]string, int, error) {
	rec, err := c.r.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, pe.StartLine, fmt.Errorf("%w", pe.Err)
		}
		return nil, 0, err
	}
	line, _ := c.r.FieldPos(0)
	for i := range rec {
		rec[i] = strings.TrimSpace(rec[i])
	}
	return rec, line, nil
}

// lineErrors gathers the violations of a file, one per bad line, up to
// maxLineErrors; the field is "line N" so that a person finds it.
type lineErrors struct {
	v    []fault.Violation
	more int
}

func (l *lineErrors) add(line int, format string, args ...any) {
	if len(l.v) == maxLineErrors {
		l.more++
		return
	}
	l.v = append(l.v, fault.Violation{Field: "line " + strconv.Itoa(line), Description: fmt.Sprintf(format, args...)})
}

func (l *lineErrors) err() error {
	if len(l.v) == 0 {
		return nil
	}
	v := l.v
	if l.more > 0 {
		v = append(slices.Clip(v), fault.Violation{Field: "file", Description: fmt.Sprintf("%d more bad lines", l.more)})
	}
	return &fault.InvalidError{Violations: v}
}

// ParseOperatorStatement reads the operator's statement of month m:
//
//	date,short_code,delivered
//	2026-11-01,36123,15234
//
// one line per day and short code; the header is optional; dates are
// YYYY-MM-DD or DD/MM/YYYY and must fall in m; a (day, short code) may
// appear once. The file is refused whole if any line is wrong: the error
// is a *fault.InvalidError naming each bad line ("line 12"), at most
// maxLineErrors of them.
func ParseOperatorStatement(data []byte, m Month) ([]OperatorStatementRow, error) {
	if len(data) > MaxStatementBytes {
		return nil, fault.Invalidf("file", "%d bytes, at most %d", len(data), MaxStatementBytes)
	}
	var (
		rows []OperatorStatementRow
		bad  lineErrors
		seen = map[statementKey]int{}
		cl   = newCSVLines(data)
	)
	for first := true; ; first = false {
		rec, line, err := cl.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// The CSV reader cannot go on after a broken quote.
			bad.add(line, "%v", err)
			break
		}
		if first && isHeader(rec, "date", "short_code", "delivered") {
			continue
		}
		if len(rows) == maxStatementRows {
			bad.add(line, "more than %d lines", maxStatementRows)
			break
		}
		row, err := parseStatementRecord(rec, m)
		if err != nil {
			bad.add(line, "%v", err)
			continue
		}
		row.Line = line
		k := statementKey{row.Day, row.ShortCode}
		if prev, dup := seen[k]; dup {
			bad.add(line, "%s %s already on line %d", row.ShortCode, row.Day, prev)
			continue
		}
		seen[k] = line
		rows = append(rows, row)
	}
	if err := bad.err(); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fault.Invalidf("file", "no line: an empty statement reconciles nothing")
	}
	return rows, nil
}

type statementKey struct {
	day Date
	sc  string
}

// isHeader tells whether rec is the header of the format; a first line
// that is not a header is data, and judged as such.
func isHeader(rec []string, names ...string) bool {
	if len(rec) != len(names) {
		return false
	}
	for i, n := range names {
		if !strings.EqualFold(rec[i], n) {
			return false
		}
	}
	return true
}

func parseStatementRecord(rec []string, m Month) (OperatorStatementRow, error) {
	if len(rec) != 3 {
		return OperatorStatementRow{}, fmt.Errorf("%d fields, want 3: date,short_code,delivered", len(rec))
	}
	day, err := parseCivilDay(rec[0])
	if err != nil {
		return OperatorStatementRow{}, err
	}
	if !m.Contains(day) {
		return OperatorStatementRow{}, fmt.Errorf("date %s is not in %s", day, m)
	}
	if !validShortCodeText(rec[1]) {
		return OperatorStatementRow{}, fmt.Errorf("short code %q: want 5 digits", rec[1])
	}
	n, err := parseCount(rec[2], maxSegmentsADay)
	if err != nil {
		return OperatorStatementRow{}, fmt.Errorf("delivered %q: %w", rec[2], err)
	}
	return OperatorStatementRow{Day: day, ShortCode: rec[1], Delivered: n}, nil
}

// parseCivilDay reads YYYY-MM-DD or DD/MM/YYYY.
func parseCivilDay(s string) (Date, error) {
	for _, layout := range []string{time.DateOnly, "02/01/2006"} {
		if d, err := time.Parse(layout, s); err == nil {
			return DateOf(d), nil
		}
	}
	return Date{}, fmt.Errorf("date %q: want YYYY-MM-DD or DD/MM/YYYY", s)
}

// parseCount reads a count of plain digits (no sign, no separators: a
// "1 234" or "1,234" is refused rather than guessed), at most most.
func parseCount(s string, most int64) (int64, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, errors.New("want digits only")
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > most {
		return 0, fmt.Errorf("at most %d", most)
	}
	return n, nil
}

// validShortCodeText tells whether s is a short code: 5 digits.
func validShortCodeText(s string) bool {
	if len(s) != 5 {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Discrepancy is how a (day, short code) of a reconciliation compares.
type Discrepancy string

const (
	// DiscrepancyNone: the statement and the ledger agree.
	DiscrepancyNone Discrepancy = "match"
	// DiscrepancyMissingFromStatement: the ledger has delivered segments on a day the
	// statement does not list.
	DiscrepancyMissingFromStatement Discrepancy = "missing_from_statement"
	// DiscrepancyCountMismatch: both have the day, with different counts (an extra
	// count on one side, the ledger at zero included).
	DiscrepancyCountMismatch Discrepancy = "count_mismatch"
	// DiscrepancyUnknownShortCode: the statement bills a short code that is neither
	// in the catalog nor in the ledger's month.
	DiscrepancyUnknownShortCode Discrepancy = "unknown_short_code"
)

// ReconciliationLine compares one (day, short code).
type ReconciliationLine struct {
	Day       Date
	ShortCode string
	// InStatement is false when the statement has no line for it.
	InStatement bool
	Operator    int64
	Ledger      int64
	// Known is whether the short code is ours: in the catalog or in the
	// ledger of the month.
	Known bool
}

// Discrepancy tells how the line compares.
func (l ReconciliationLine) Discrepancy() Discrepancy {
	switch {
	case !l.Known:
		return DiscrepancyUnknownShortCode
	case !l.InStatement:
		if l.Ledger == 0 {
			return DiscrepancyNone
		}
		return DiscrepancyMissingFromStatement
	case l.Operator != l.Ledger:
		return DiscrepancyCountMismatch
	}
	return DiscrepancyNone
}

// Difference is the operator's count minus the ledger's.
func (l ReconciliationLine) Difference() int64 { return l.Operator - l.Ledger }

// Reconciliation is the comparison of an operator's statement with the
// ledger, as made at import.
type Reconciliation struct {
	ID         int64
	Month      Month
	Source     string
	ImportedAt time.Time
	// Lines are by day, then short code: every (day, short code) of the
	// statement or of the ledger's delivered segments.
	Lines         []ReconciliationLine
	OperatorTotal int64
	LedgerTotal   int64
	// Differing is the number of lines that do not match, kept with the
	// import so that a list of imports tells it without the lines.
	Differing int64
}

// Differences are the lines that do not match.
func (r Reconciliation) Differences() []ReconciliationLine {
	var out []ReconciliationLine
	for _, l := range r.Lines {
		if l.Discrepancy() != DiscrepancyNone {
			out = append(out, l)
		}
	}
	return out
}

// ShortCodeTotal is the month of one short code in a reconciliation.
type ShortCodeTotal struct {
	ShortCode string
	Operator  int64
	Ledger    int64
	Known     bool
	// Differences counts the days that do not match.
	Differences int
}

// ShortCodeTotals sums the lines per short code, by short code.
func (r Reconciliation) ShortCodeTotals() []ShortCodeTotal {
	idx := map[string]int{}
	var out []ShortCodeTotal
	for _, l := range r.Lines {
		i, ok := idx[l.ShortCode]
		if !ok {
			i = len(out)
			idx[l.ShortCode] = i
			out = append(out, ShortCodeTotal{ShortCode: l.ShortCode, Known: l.Known})
		}
		out[i].Operator += l.Operator
		out[i].Ledger += l.Ledger
		if l.Discrepancy() != DiscrepancyNone {
			out[i].Differences++
		}
	}
	slices.SortFunc(out, func(a, b ShortCodeTotal) int { return strings.Compare(a.ShortCode, b.ShortCode) })
	return out
}

// reconcile compares the statement's rows with the delivered segments of
// counts (summed over tenants), for the days of m. catalog holds the short
// codes the catalog knows; those of the ledger's month are known too.
func reconcile(rows []OperatorStatementRow, counts []DailyCount, catalog map[string]bool, loc *time.Location) []ReconciliationLine {
	lines := map[statementKey]*ReconciliationLine{}
	known := map[string]bool{}
	for sc, ok := range catalog {
		known[sc] = ok
	}
	for _, c := range counts {
		if c.State != Delivered {
			continue
		}
		known[c.ShortCode] = true
		k := statementKey{civilDayOf(c.Day, loc), c.ShortCode}
		l := lines[k]
		if l == nil {
			l = &ReconciliationLine{Day: k.day, ShortCode: k.sc}
			lines[k] = l
		}
		l.Ledger += c.Segments
	}
	for _, r := range rows {
		k := statementKey{r.Day, r.ShortCode}
		l := lines[k]
		if l == nil {
			l = &ReconciliationLine{Day: k.day, ShortCode: k.sc}
			lines[k] = l
		}
		l.InStatement, l.Operator = true, r.Delivered
	}
	out := make([]ReconciliationLine, 0, len(lines))
	for _, l := range lines {
		l.Known = known[l.ShortCode]
		out = append(out, *l)
	}
	slices.SortFunc(out, func(a, b ReconciliationLine) int {
		if c := a.Day.Compare(b.Day); c != 0 {
			return c
		}
		return strings.Compare(a.ShortCode, b.ShortCode)
	})
	return out
}

// civilDayOf is the date of t in loc (Europe/Paris).
func civilDayOf(t time.Time, loc *time.Location) Date { return DateOf(t.In(loc)) }

// monthBounds is [first day 00:00, first day of next month 00:00) in loc.
func monthBounds(m Month, loc *time.Location) (time.Time, time.Time) {
	from := time.Date(m.Year, m.Month, 1, 0, 0, 0, 0, loc)
	return from, from.AddDate(0, 1, 0)
}

// monthOfDate is the month of a date read from PostgreSQL.
func monthOfDate(d time.Time) Month { return MonthOf(DateOf(d)) }

// ImportOperatorStatement reconciles the statement's rows with the ledger
// of month m and stores both, in one transaction, so that the report is
// the one of the ledger as it was at that instant. A short code is known
// when the catalog has history for it by the month's end, or the ledger
// has delivered segments from it in the month.
func ImportOperatorStatement(ctx context.Context, db Beginner, loc *time.Location, m Month, source string, rows []OperatorStatementRow) (Reconciliation, error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return Reconciliation{}, fmt.Errorf("import statement of %s: %w", m, errors.Join(err, fault.ErrUnavailable))
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// The ledger keeps receiving reports: the counts and the statement
	// rows must be compared on one snapshot.
	if _, err := tx.Exec(ctx, `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ`); err != nil {
		return Reconciliation{}, fmt.Errorf("import statement of %s: %w", m, err)
	}
	from, to := monthBounds(m, loc)
	counts, err := DailyCounts(ctx, tx, from, to)
	if err != nil {
		return Reconciliation{}, fmt.Errorf("import statement of %s: %w", m, err)
	}
	events, err := shortCodeEvents(ctx, tx, "", m.Last())
	if err != nil {
		return Reconciliation{}, fmt.Errorf("import statement of %s: %w", m, err)
	}
	catalog := map[string]bool{}
	for _, e := range events {
		catalog[e.ShortCode] = true
	}
	rec := Reconciliation{Month: m, Source: source, Lines: reconcile(rows, counts, catalog, loc)}
	for _, l := range rec.Lines {
		rec.OperatorTotal += l.Operator
		rec.LedgerTotal += l.Ledger
	}
	rec.Differing = int64(len(rec.Differences()))
	err = tx.QueryRow(ctx, `
		INSERT INTO billing.operator_statements (month, source, operator_total, ledger_total, differing)
		VALUES ($1, $2, $3, $4, $5) RETURNING id, imported_at`,
		m.First().Time(), source, rec.OperatorTotal, rec.LedgerTotal, rec.Differing).Scan(&rec.ID, &rec.ImportedAt)
	if err != nil {
		return Reconciliation{}, fmt.Errorf("import statement of %s: %w", m, err)
	}
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"billing", "reconciliation_lines"},
		[]string{"statement_id", "day", "short_code", "operator_segments", "ledger_segments", "known"},
		pgx.CopyFromSlice(len(rec.Lines), func(i int) ([]any, error) {
			l := rec.Lines[i]
			var op *int64
			if l.InStatement {
				op = &l.Operator
			}
			return []any{rec.ID, l.Day.Time(), l.ShortCode, op, l.Ledger, l.Known}, nil
		}))
	if err != nil {
		return Reconciliation{}, fmt.Errorf("import statement of %s: lines: %w", m, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return Reconciliation{}, fmt.Errorf("import statement of %s: commit: %w", m, err)
	}
	return rec, nil
}

// GetReconciliation reads a stored reconciliation: by id, or with id 0 the
// latest import of month m.
func GetReconciliation(ctx context.Context, q Querier, id int64, m Month) (Reconciliation, error) {
	var (
		rec   Reconciliation
		month time.Time
		err   error
	)
	const cols = `SELECT id, month, source, imported_at, operator_total, ledger_total, differing FROM billing.operator_statements`
	if id != 0 {
		err = q.QueryRow(ctx, cols+` WHERE id = $1`, id).Scan(&rec.ID, &month, &rec.Source, &rec.ImportedAt, &rec.OperatorTotal, &rec.LedgerTotal, &rec.Differing)
	} else {
		err = q.QueryRow(ctx, cols+` WHERE month = $1 ORDER BY id DESC LIMIT 1`, m.First().Time()).Scan(&rec.ID, &month, &rec.Source, &rec.ImportedAt, &rec.OperatorTotal, &rec.LedgerTotal, &rec.Differing)
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows) && id != 0:
		return Reconciliation{}, fmt.Errorf("reconciliation %d: %w", id, fault.ErrNotFound)
	case errors.Is(err, pgx.ErrNoRows):
		return Reconciliation{}, fmt.Errorf("no operator statement imported for %s: %w", m, fault.ErrNotFound)
	case err != nil:
		return Reconciliation{}, fmt.Errorf("reconciliation: %w", err)
	}
	rec.Month = monthOfDate(month)
	rows, err := q.Query(ctx, `
		SELECT day, short_code, operator_segments, ledger_segments, known
		FROM billing.reconciliation_lines WHERE statement_id = $1 ORDER BY day, short_code`, rec.ID)
	if err != nil {
		return Reconciliation{}, fmt.Errorf("reconciliation %d: %w", rec.ID, err)
	}
	rec.Lines, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (ReconciliationLine, error) {
		var (
			l   ReconciliationLine
			op  *int64
			day time.Time
		)
		err := row.Scan(&day, &l.ShortCode, &op, &l.Ledger, &l.Known)
		l.Day = DateOf(day)
		if op != nil {
			l.InStatement, l.Operator = true, *op
		}
		return l, err
	})
	if err != nil {
		return Reconciliation{}, fmt.Errorf("reconciliation %d: %w", rec.ID, err)
	}
	return rec, nil
}

// ListReconciliations returns the imports of month m, latest first,
// without their lines.
func ListReconciliations(ctx context.Context, q Querier, m Month) ([]Reconciliation, error) {
	rows, err := q.Query(ctx, `
		SELECT id, month, source, imported_at, operator_total, ledger_total, differing
		FROM billing.operator_statements WHERE month = $1 ORDER BY id DESC`, m.First().Time())
	if err != nil {
		return nil, fmt.Errorf("reconciliations of %s: %w", m, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Reconciliation, error) {
		var (
			r     Reconciliation
			month time.Time
		)
		err := row.Scan(&r.ID, &month, &r.Source, &r.ImportedAt, &r.OperatorTotal, &r.LedgerTotal, &r.Differing)
		r.Month = monthOfDate(month)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("reconciliations of %s: %w", m, err)
	}
	return out, nil
}
