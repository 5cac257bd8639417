package billing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"pushsms.io/lib/fault"
	"pushsms.io/lib/pgtest"
)

var octobre2026 = Month{Year: 2026, Month: time.October}

func apiDay(s string) Date {
	d, err := ParseDate(s)
	if err != nil {
		panic(err)
	}
	return d
}

func TestParseOperatorStatement(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []OperatorStatementRow
	}{
		{
			name: "header_comma",
			file: "date,short_code,delivered\n2026-10-01,36101,15234\n2026-10-02,36101,0\n",
			want: []OperatorStatementRow{{Line: 2, Day: apiDay("2026-10-01"), ShortCode: "36101", Delivered: 15234}, {Line: 3, Day: apiDay("2026-10-02"), ShortCode: "36101", Delivered: 0}},
		},
		{
			name: "semicolon_french_dates_bom_crlf_no_header",
			file: "\ufeff01/10/2026;36101;5\r\n31/10/2026 ; 36102 ; 7\r\n",
			want: []OperatorStatementRow{{Line: 1, Day: apiDay("2026-10-01"), ShortCode: "36101", Delivered: 5}, {Line: 2, Day: apiDay("2026-10-31"), ShortCode: "36102", Delivered: 7}},
		},
		{
			name: "comment_with_commas_before_semicolons",
			file: "# Orange, relevé d'octobre, v2\n\n2026-10-05;36101;9\n",
			want: []OperatorStatementRow{{Line: 3, Day: apiDay("2026-10-05"), ShortCode: "36101", Delivered: 9}},
		},
		{
			name: "comments_blank_lines_quotes",
			file: "# statement of October\nDATE,Short_Code,Delivered\n\n\"2026-10-03\",\"36101\",\"12\"\n",
			want: []OperatorStatementRow{{Line: 4, Day: apiDay("2026-10-03"), ShortCode: "36101", Delivered: 12}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOperatorStatement([]byte(tt.file), octobre2026)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseOperatorStatementRefuses(t *testing.T) {
	tests := []struct {
		name string
		file string
		// want are the violations, field and a part of the description.
		want [][2]string
	}{
		{"empty", "", [][2]string{{"file", "no line"}}},
		{"header_only", "date,short_code,delivered\n", [][2]string{{"file", "no line"}}},
		{"fields", "2026-10-01,36101\n2026-10-01,36101,1,2\n", [][2]string{{"line 1", "2 fields, want 3"}, {"line 2", "4 fields"}}},
		{"other_month", "2026-10-01,36101,1\n2026-11-01,36101,1\n", [][2]string{{"line 2", "not in 2026-10"}}},
		{"bad_date", "2026-10-32,36101,1\n10/01/26,36101,1\n", [][2]string{{"line 1", "date"}, {"line 2", "date"}}},
		{"short_code", "2026-10-01,3610,1\n2026-10-01,3610a,1\n", [][2]string{{"line 1", "want 5 digits"}, {"line 2", "want 5 digits"}}},
		{"counts", "2026-10-01,36101,-1\n2026-10-02,36101,1 234\n2026-10-03,36101,1.5\n2026-10-04,36101,\n2026-10-05,36101,99999999999999999999\n",
			[][2]string{{"line 1", "digits only"}, {"line 2", "digits only"}, {"line 3", "digits only"}, {"line 4", "empty"}, {"line 5", "at most"}}},
		{"duplicate", "2026-10-01,36101,1\n2026-10-02,36101,1\n01/10/2026,36101,2\n", [][2]string{{"line 3", "already on line 1"}}},
		{"broken_quote", "2026-10-01,36101,1\n\"2026-10-02,36101,1\n", [][2]string{{"line 2", "quote"}}},
		{"header_not_first", "2026-10-01,36101,1\ndate,short_code,delivered\n", [][2]string{{"line 2", "date"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOperatorStatement([]byte(tt.file), octobre2026)
			var ie *fault.InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("got %v, %v; want an InvalidError", got, err)
			}
			if len(ie.Violations) != len(tt.want) {
				t.Fatalf("got violations %+v, want %d", ie.Violations, len(tt.want))
			}
			for i, w := range tt.want {
				v := ie.Violations[i]
				if v.Field != w[0] || !strings.Contains(v.Description, w[1]) {
					t.Errorf("violation %d: got %s: %s, want %s: …%s…", i, v.Field, v.Description, w[0], w[1])
				}
			}
		})
	}
}

// A file of bad lines names the first ones and counts the others.
func TestParseOperatorStatementManyErrors(t *testing.T) {
	file := strings.Repeat("2026-10-01,x,1\n", maxLineErrors+5)
	_, err := ParseOperatorStatement([]byte(file), octobre2026)
	var ie *fault.InvalidError
	if !errors.As(err, &ie) {
		t.Fatalf("got %v, want an InvalidError", err)
	}
	if got, want := len(ie.Violations), maxLineErrors+1; got != want {
		t.Fatalf("got %d violations, want %d", got, want)
	}
	last := ie.Violations[maxLineErrors]
	if last.Field != "file" || last.Description != "5 more bad lines" {
		t.Errorf("got last violation %+v, want the 5 more", last)
	}
}

func TestReconcile(t *testing.T) {
	paris, err := time.LoadLocation(Zone)
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time { d := apiDay(s); return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, paris) }
	counts := []DailyCount{
		{Day: at("2026-10-01"), ShortCode: "36101", TenantID: "acme", State: Delivered, Segments: 3},
		{Day: at("2026-10-01"), ShortCode: "36101", TenantID: "beta", State: Delivered, Segments: 2},
		{Day: at("2026-10-01"), ShortCode: "36101", TenantID: "acme", State: Failed, Segments: 9},
		{Day: at("2026-10-02"), ShortCode: "36101", TenantID: "acme", State: Delivered, Segments: 4},
		{Day: at("2026-10-03"), ShortCode: "36102", TenantID: "acme", State: Expired, Segments: 1},
	}
	rows := []OperatorStatementRow{
		{Day: apiDay("2026-10-01"), ShortCode: "36101", Delivered: 5},
		{Day: apiDay("2026-10-03"), ShortCode: "36102", Delivered: 0},
		{Day: apiDay("2026-10-04"), ShortCode: "36102", Delivered: 2},
		{Day: apiDay("2026-10-04"), ShortCode: "36999", Delivered: 8},
	}
	got := reconcile(rows, counts, map[string]bool{"36102": true}, paris)
	want := []ReconciliationLine{
		{Day: apiDay("2026-10-01"), ShortCode: "36101", InStatement: true, Operator: 5, Ledger: 5, Known: true},
		{Day: apiDay("2026-10-02"), ShortCode: "36101", Ledger: 4, Known: true},
		{Day: apiDay("2026-10-03"), ShortCode: "36102", InStatement: true, Known: true},
		{Day: apiDay("2026-10-04"), ShortCode: "36102", InStatement: true, Operator: 2, Known: true},
		{Day: apiDay("2026-10-04"), ShortCode: "36999", InStatement: true, Operator: 8},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	kinds := []Discrepancy{DiscrepancyNone, DiscrepancyMissingFromStatement, DiscrepancyNone, DiscrepancyCountMismatch, DiscrepancyUnknownShortCode}
	for i, l := range got {
		if l.Discrepancy() != kinds[i] {
			t.Errorf("%s %s: got %s, want %s", l.Day, l.ShortCode, l.Discrepancy(), kinds[i])
		}
	}
	r := Reconciliation{Lines: got}
	if n := len(r.Differences()); n != 3 {
		t.Errorf("got %d differences, want 3", n)
	}
	totals := r.ShortCodeTotals()
	wantTotals := []ShortCodeTotal{
		{ShortCode: "36101", Operator: 5, Ledger: 9, Known: true, Differences: 1},
		{ShortCode: "36102", Operator: 2, Ledger: 0, Known: true, Differences: 1},
		{ShortCode: "36999", Operator: 8, Ledger: 0, Known: false, Differences: 1},
	}
	if !slices.Equal(totals, wantTotals) {
		t.Errorf("got totals %+v, want %+v", totals, wantTotals)
	}
}

// FuzzParseOperatorStatement checks that no file crashes the parser, and
// that what it accepts is in the month, well formed and without a
// duplicate.
func FuzzParseOperatorStatement(f *testing.F) {
	for _, s := range []string{
		"date,short_code,delivered\n2026-10-01,36101,15234\n",
		"\ufeff01/10/2026;36101;5\r\n31/10/2026;36102;7\r\n",
		"# comment\n\"2026-10-03\",\"36101\",\"12\"\n",
		"2026-10-01,36101,1\n01/10/2026,36101,2\n",
		"2026-10-01,36101,\"1\n",
		"2026-10-01,36101,1,2\n",
		"2026-11-01;3610;-1\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, err := ParseOperatorStatement(data, octobre2026)
		if err != nil {
			var ie *fault.InvalidError
			if !errors.As(err, &ie) || len(ie.Violations) == 0 || len(ie.Violations) > maxLineErrors+1 {
				t.Fatalf("error %v: want an InvalidError of 1 to %d violations", err, maxLineErrors+1)
			}
			if rows != nil {
				t.Fatalf("rows %v with error %v", rows, err)
			}
			return
		}
		if len(rows) == 0 {
			t.Fatal("no row and no error")
		}
		seen := map[statementKey]bool{}
		for _, r := range rows {
			if !octobre2026.Contains(r.Day) || !validShortCodeText(r.ShortCode) || r.Delivered < 0 || r.Delivered > maxSegmentsADay || r.Line < 1 {
				t.Fatalf("accepted %+v", r)
			}
			k := statementKey{r.Day, r.ShortCode}
			if seen[k] {
				t.Fatalf("accepted %s %s twice", r.ShortCode, r.Day)
			}
			seen[k] = true
		}
	})
}

// bigStatement is a month of 1000 short codes: 31 000 lines.
func bigStatement() []byte {
	var b strings.Builder
	b.WriteString("date;short_code;delivered\r\n")
	for d := 1; d <= 31; d++ {
		for sc := range 1000 {
			fmt.Fprintf(&b, "%02d/10/2026;%d;%d\r\n", d, 36000+sc, 1000+d*sc)
		}
	}
	return []byte(b.String())
}

func BenchmarkParseOperatorStatement(b *testing.B) {
	data := bigStatement()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParseOperatorStatement(data, octobre2026); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkImportOperatorStatement reconciles and stores a month of 1000
// short codes against a ledger with traffic on each of them every day.
func BenchmarkImportOperatorStatement(b *testing.B) {
	db := pgtest.New(b, pgtest.Migrated(Schema, Migrations()))
	ctx := context.Background()
	paris, err := time.LoadLocation(Zone)
	if err != nil {
		b.Fatal(err)
	}
	var entries []Entry
	for d := 1; d <= 31; d++ {
		for sc := range 1000 {
			entries = append(entries, Entry{MessageID: fmt.Sprintf("b-%d-%d", d, sc), SegmentIndex: 1, TenantID: "acme",
				ShortCode: strconv.Itoa(36000 + sc), State: Delivered, Billable: true, ReportedAt: time.Date(2026, 10, d, 12, 0, 0, 0, paris)})
		}
	}
	if _, err := Record(ctx, db.Pool, entries...); err != nil {
		b.Fatal(err)
	}
	rows, err := ParseOperatorStatement(bigStatement(), octobre2026)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		rec, err := ImportOperatorStatement(ctx, db.Pool, paris, octobre2026, "bench.csv", rows)
		if err != nil {
			b.Fatal(err)
		}
		if len(rec.Lines) != 31_000 {
			b.Fatalf("got %d lines, want 31000", len(rec.Lines))
		}
	}
}
