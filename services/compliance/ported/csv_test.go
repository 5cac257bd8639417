package ported_test

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"pushsms.io/services/compliance/ported"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		line             string
		msisdn, operator string
		ok, bad          bool
	}{
		{line: "0612345678,FRTE", msisdn: "0612345678", operator: "FRTE", ok: true},
		{line: "+33 6 12 34 56 78 ; SFR0\r", msisdn: "+33 6 12 34 56 78", operator: "SFR0", ok: true},
		{line: `"06 12 34 56 78","BOUY"`, msisdn: "06 12 34 56 78", operator: "BOUY", ok: true},
		{line: "0612345678,", msisdn: "0612345678", operator: "", ok: true}, // deletion
		{line: "\ufeff33612345678;FRMO", msisdn: "33612345678", operator: "FRMO", ok: true},
		{line: ""},
		{line: "   "},
		{line: "# portability file of 27/11/2026"},
		{line: "0612345678", bad: true},
		{line: "0612345678,FRTE,2026-11-27", bad: true},
		{line: ",FRTE", bad: true},
		{line: `"0612345678,FRTE`, bad: true},
		{line: "0612345678," + strings.Repeat("A", 300), bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			m, op, ok, err := ported.ParseLine(tt.line)
			if (err != nil) != tt.bad {
				t.Fatalf("got error %v, want error %v", err, tt.bad)
			}
			if err != nil && !errors.Is(err, ported.ErrLine) {
				t.Errorf("got %v, want ErrLine", err)
			}
			if m != tt.msisdn || op != tt.operator || ok != tt.ok {
				t.Errorf("got %q %q %v, want %q %q %v", m, op, ok, tt.msisdn, tt.operator, tt.ok)
			}
		})
	}
}

func TestReader(t *testing.T) {
	file := "# export 2026-11-27\nmsisdn;operateur\n\n06 12 34 56 78;FRTE\nbad line\n0607123456;\n"
	r := ported.NewReader(strings.NewReader(file))
	var got []string
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			got = append(got, fmt.Sprintf("error at %d", rec.Line))
			continue
		}
		got = append(got, fmt.Sprintf("%d:%s:%s", rec.Line, rec.MSISDN, rec.Operator))
	}
	want := "[4:06 12 34 56 78:FRTE error at 5 6:0607123456:]"
	if fmt.Sprint(got) != want {
		t.Errorf("got %v, want %s", got, want)
	}
	// Without a header, the first line is data.
	rec, err := ported.NewReader(strings.NewReader("0612345678,FRTE\n")).Next()
	if err != nil || rec.Line != 1 || rec.MSISDN != "0612345678" {
		t.Errorf("got %+v, %v; want line 1", rec, err)
	}
}

func TestParseEntry(t *testing.T) {
	tests := []struct {
		msisdn, operator string
		key              string
		code             string
		err              error
	}{
		{"06 12 34 56 78", "FRTE", "+33612345678", "FRTE", nil},
		{"+33 (0)7 81 23 45 67", "frmo", "+33781234567", "FRMO", nil},
		{"0033612345678", "SRR", "+33612345678", "SRR", nil},
		{"07 00 00 10 12 34 56", "SFR0", "+33700001012345 6", "SFR0", nil},
		{"06 12 34 56 78", "", "+33612345678", "", nil},         // deletion
		{"06 39 12 34 56", "FRTE", "", "", ported.ErrNumber},    // Mayotte
		{"+33 6 90 12 34 56", "FRTE", "", "", ported.ErrNumber}, // Guadeloupe under +33
		{"01 23 45 67 89", "FRTE", "", "", ported.ErrNumber},
		{"+44 7700 900123", "FRTE", "", "", ported.ErrNumber},
		{"06 00 12 34 56", "FRTE", "", "", ported.ErrNumber}, // routing prefix
		{"612345678", "FRTE", "", "", ported.ErrNumber},
		{"06 12 34 56 78", "ORANGE", "", "", ported.ErrOperator},
		{"06 12 34 56 78", "FR", "", "", ported.ErrOperator},
		{"06 12 34 56 78", "FR-T", "", "", ported.ErrOperator},
		{"06 12 34 56 78", "FRTÉ", "", "", ported.ErrOperator},
	}
	for _, tt := range tests {
		t.Run(tt.msisdn+" "+tt.operator, func(t *testing.T) {
			e, err := ported.ParseEntry(tt.msisdn, tt.operator)
			if !errors.Is(err, tt.err) {
				t.Fatalf("got error %v, want %v", err, tt.err)
			}
			if err != nil {
				digits := strings.Map(func(r rune) rune {
					if r < '0' || r > '9' {
						return -1
					}
					return r
				}, tt.msisdn)
				if strings.Contains(err.Error(), digits[len(digits)-6:]) {
					t.Errorf("error %q quotes the number: it may be logged", err)
				}
				return
			}
			if got := fmt.Sprintf("+%d", e.Key); got != strings.ReplaceAll(tt.key, " ", "") || e.Operator != tt.code {
				t.Errorf("got %s %s, want %s %s", got, e.Operator, tt.key, tt.code)
			}
		})
	}
}

// FuzzParseLine checks that no line crashes the parser, that what it
// returns is trimmed and unquoted, and that a line it accepts does not
// yield a number with the separator in it.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		"0612345678,FRTE", "+33 6 12 34 56 78;SFR0", `"06 12 34 56 78","BOUY"`, "0612345678,",
		"# comment", "msisdn,operator", "a,b,c", `",`, "\ufeff0612345678,FRMO\r",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m, op, ok, err := ported.ParseLine(line)
		if err != nil {
			if ok || m != "" || op != "" {
				t.Fatalf("error %v with results %q %q %v", err, m, op, ok)
			}
			return
		}
		if !ok {
			return
		}
		if m == "" {
			t.Fatal("accepted an empty msisdn")
		}
		for _, f := range []string{m, op} {
			if strings.TrimSpace(f) != f || strings.ContainsRune(f, '"') || strings.ContainsRune(f, ',') {
				t.Fatalf("field %q not trimmed, unquoted, split", f)
			}
		}
		if utf8.ValidString(line) && !utf8.ValidString(m+op) {
			t.Fatalf("valid line gave invalid fields %q %q", m, op)
		}
		// What ParseLine accepts, ParseEntry judges without crashing.
		_, _ = ported.ParseEntry(m, op)
	})
}
