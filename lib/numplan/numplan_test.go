package numplan_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"pushsms.io/lib/numplan"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in    string
		e164  string
		class numplan.Class
	}{
		// Every input format of compliance.md §1.6 for one metropolitan mobile.
		{"06 12 34 56 78", "+33612345678", numplan.Mobile},
		{"0612345678", "+33612345678", numplan.Mobile},
		{"+33 6 12 34 56 78", "+33612345678", numplan.Mobile},
		{"+33612345678", "+33612345678", numplan.Mobile},
		{"0033612345678", "+33612345678", numplan.Mobile},
		{"0033 6 12 34 56 78", "+33612345678", numplan.Mobile},
		{"33612345678", "+33612345678", numplan.Mobile},
		{"+33 (0)6 12 34 56 78", "+33612345678", numplan.Mobile},
		{"+33(0)612345678", "+33612345678", numplan.Mobile},
		{"0033 (0) 6 12 34 56 78", "+33612345678", numplan.Mobile},
		{"33 (0)6 12 34 56 78", "+33612345678", numplan.Mobile},
		{"+330612345678", "+33612345678", numplan.Mobile},
		{"00330612345678", "+33612345678", numplan.Mobile},
		{"330612345678", "+33612345678", numplan.Mobile},
		{"06.12.34.56.78", "+33612345678", numplan.Mobile},
		{"06-12-34-56-78", "+33612345678", numplan.Mobile},
		{"06/12/34/56/78", "+33612345678", numplan.Mobile},
		{"06\u00a012\u202f34\u200956\t78", "+33612345678", numplan.Mobile},
		{"(06) 12 34 56 78", "+33612345678", numplan.Mobile},
		{"(0)6 12 34 56 78", "+33612345678", numplan.Mobile},
		{" +33 6 12 34 56 78 ", "+33612345678", numplan.Mobile},
		{"+33 6-12-34-56-78", "+33612345678", numplan.Mobile},

		// Metropolitan mobile ranges (§1.2).
		{"06 01 00 00 00", "+33601000000", numplan.Mobile},
		{"06 38 99 99 99", "+33638999999", numplan.Mobile},
		{"06 40 00 00 00", "+33640000000", numplan.Mobile},
		{"06 95 12 34 56", "+33695123456", numplan.Mobile},
		{"06 98 12 34 56", "+33698123456", numplan.Mobile},
		{"06 99 12 34 56", "+33699123456", numplan.Mobile},
		{"07 30 00 00 00", "+33730000000", numplan.Mobile}, // open, not yet allocated
		{"07 56 12 34 56", "+33756123456", numplan.Mobile},
		{"07 99 99 99 99", "+33799999999", numplan.Mobile},

		// Overseas, written nationally, under +33, or under their own code (§1.3).
		{"0690 12 34 56", "+590690123456", numplan.Overseas},
		{"+33 6 90 12 34 56", "+590690123456", numplan.Overseas},
		{"+590 690 12 34 56", "+590690123456", numplan.Overseas},
		{"+590 (0)690 12 34 56", "+590690123456", numplan.Overseas},
		{"00590690123456", "+590690123456", numplan.Overseas},
		{"590690123456", "+590690123456", numplan.Overseas},
		{"0691 22 34 56", "+590691223456", numplan.Overseas},
		{"0692 12 34 56", "+262692123456", numplan.Overseas},
		{"0693 12 34 56", "+262693123456", numplan.Overseas},
		{"0639 00 12 34", "+262639001234", numplan.Overseas}, // Mayotte
		{"+262 639 00 12 34", "+262639001234", numplan.Overseas},
		{"0694 12 34 56", "+594694123456", numplan.Overseas},
		{"0696 12 34 56", "+596696123456", numplan.Overseas},
		{"0697 12 34 56", "+596697123456", numplan.Overseas},
		{"+33 6 97 12 34 56", "+596697123456", numplan.Overseas},
		{"0708 45 12 34", "+508708451234", numplan.Overseas},
		{"+33 7 08 56 12 34", "+508708561234", numplan.Overseas},
		{"0709 01 23 45", "+590709012345", numplan.Overseas},
		{"0709 11 23 45", "+596709112345", numplan.Overseas},
		{"0709 21 23 45", "+262709212345", numplan.Overseas},
		{"0709 33 23 45", "+594709332345", numplan.Overseas},
		{"0709 37 23 45", "+262709372345", numplan.Overseas},
		{"0709 34 23 45", "+33709342345", numplan.Overseas}, // overseas space, no territory yet
		{"0709 91 23 45", "+33709912345", numplan.Overseas},
		{"0590 12 34 56", "+590590123456", numplan.Overseas},
		{"0594 12 34 56", "+594594123456", numplan.Overseas},
		{"0596 12 34 56", "+596596123456", numplan.Overseas},
		{"0262 12 34 56", "+262262123456", numplan.Overseas},
		{"0263 12 34 56", "+262263123456", numplan.Overseas},
		{"0269 12 34 56", "+262269123456", numplan.Overseas},
		{"0508 55 12 34", "+508551234", numplan.Overseas},
		{"+508 55 12 34", "+508551234", numplan.Overseas},
		{"+596 696 12 34 56", "+596696123456", numplan.Overseas},
		{"+594 694 12 34 56", "+594694123456", numplan.Overseas},

		// M2M (§1.4).
		{"07 00 00 00 00 00 00", "+337000000000000", numplan.M2M},
		{"0700 0079 999999", "+337000079999999", numplan.M2M},
		{"+33 7 00 00 00 12 34 56", "+337000000123456", numplan.M2M},
		{"0700502123456", "+590700502123456", numplan.Overseas},
		{"0700601123456", "+594700601123456", numplan.Overseas},
		{"0700702123456", "+596700702123456", numplan.Overseas},
		{"0700800123456", "+262700800123456", numplan.Overseas},
		{"0700901123456", "+262700901123456", numplan.Overseas},
		{"+33 700901123456", "+262700901123456", numplan.Overseas},
		{"+590 700502123456", "+590700502123456", numplan.Overseas},

		// Routing prefixes (§1.5).
		{"06 00 12 34 56", "+33600123456", numplan.RoutingPrefix},
		{"06 00 81 23 45", "+33600812345", numplan.RoutingPrefix},
		{"+33 6 00 41 23 45", "+33600412345", numplan.RoutingPrefix},
		{"05 09 12 34 56", "+33509123456", numplan.RoutingPrefix},
		{"05 15 12 34 56", "+33515123456", numplan.RoutingPrefix},
		{"05 26 12 34 56", "+33526123456", numplan.RoutingPrefix},
		{"05 30 12 34 56", "+33530123456", numplan.RoutingPrefix},
		{"05 23 01 23 45", "+33523012345", numplan.RoutingPrefix},
		{"05 23 41 23 45", "+33523412345", numplan.RoutingPrefix},
		{"07 08 46 12 34", "+33708461234", numplan.RoutingPrefix},
		{"07 08 49 12 34", "+33708491234", numplan.RoutingPrefix},
		{"+508 708 46 12 34", "+508708461234", numplan.RoutingPrefix},

		// Other French numbers.
		{"01 23 45 67 89", "+33123456789", numplan.NonMobile},
		{"02 99 12 34 56", "+33299123456", numplan.NonMobile},
		{"05 57 12 34 56", "+33557123456", numplan.NonMobile},
		{"05 23 51 23 45", "+33523512345", numplan.NonMobile},
		{"05 16 12 34 56", "+33516123456", numplan.NonMobile},
		{"0800 12 34 56", "+33800123456", numplan.NonMobile},
		{"09 37 12 34 56", "+33937123456", numplan.NonMobile},
		{"+33 9 72 12 34 56", "+33972123456", numplan.NonMobile},

		// Not French.
		{"+44 7911 123456", "+447911123456", numplan.Foreign},
		{"0044 7911 123456", "+447911123456", numplan.Foreign},
		{"+377 6 12 34 56 78", "+377612345678", numplan.Foreign}, // Monaco
		{"+269 321 23 45", "+2693212345", numplan.Foreign},       // Comoros, not Mayotte
		{"+687 75 12 34", "+687751234", numplan.Foreign},         // New Caledonia
		{"+1 (202) 555-0123", "+12025550123", numplan.Foreign},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			n, err := numplan.Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := n.E164(); got != tt.e164 {
				t.Errorf("E164: got %s, want %s", got, tt.e164)
			}
			if got := n.Class(); got != tt.class {
				t.Errorf("Class: got %v, want %v", got, tt.class)
			}
			again, err := numplan.Parse(n.E164())
			if err != nil || again != n {
				t.Errorf("re-parse of E164: got %v (%v), want the same number", again, err)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []string{
		"",
		"   ",
		"+",
		"abc",
		"tel:+33612345678",
		"612345678",        // 9 bare digits: ambiguous, rejected
		"6 12 34 56 78",    // same with spaces
		"06 12 34 56 7",    // too short
		"06 12 34 56 78 9", // too long
		"+33 6 12 34 56",   // too short
		"+33 6 12 34 56 78 9",
		"+33 00 12 34 56 78",
		"0700 12 34 56", // 0700 on 10 digits
		"0701 23 45 67", // not open
		"0707 23 45 67",
		"07 10 12 34 56", // 071x not mobile, no allocation
		"07 20 12 34 56",
		"0700 1000 000000", // 14 digits outside 0700 0
		"0700312345678",    // 13 digits outside 0700[5-9]
		"+0612345678",
		"06+12345678",
		"06 12 34 56 78 ext 1",
		"０６１２３４５６７８", // full-width digits
		"06\xff12345678",
		"0033",
		"00 00 00 00 00",
		"+44 1234",             // too short
		"+44 1234567890123456", // 16 digits
		"0508 00 00 00",        // SPM NSN would start with 0
		"+590 69012",           // wrong length
		"+590 700601123456",    // Guyane M2M under Guadeloupe's code
		"12345678901",
		strings.Repeat("0", 70),
	}
	for _, in := range tests {
		n, err := numplan.Parse(in)
		if !errors.Is(err, numplan.ErrInvalid) {
			t.Errorf("Parse(%q): got %v, %v; want ErrInvalid", in, n, err)
		}
		if !n.IsZero() {
			t.Errorf("Parse(%q): got non-zero number with an error", in)
		}
	}
}

// leaks reports whether out shows five consecutive digits of the number:
// the masked forms show at most the country code and one digit together.
func leaks(out, digits string) bool {
	for i := 0; i+5 <= len(digits); i++ {
		if strings.Contains(out, digits[i:i+5]) {
			return true
		}
	}
	return false
}

func TestErrorsHideDigits(t *testing.T) {
	for _, in := range []string{"06 12 34 56 7", "+33 6 12 34 56 78 9", "06 12 34 56 78 ext", "0701234567", "+4412345678901234567"} {
		_, err := numplan.Parse(in)
		if err == nil {
			t.Fatalf("Parse(%q): got no error", in)
		}
		if digits := regexp.MustCompile(`\D`).ReplaceAllString(in, ""); leaks(err.Error(), digits) {
			t.Errorf("Parse(%q) error %q shows digits", in, err)
		}
	}
}

func TestCheckMobile(t *testing.T) {
	tests := []struct {
		in       string
		allowM2M bool
		want     error
	}{
		{"06 12 34 56 78", false, nil},
		{"07 56 12 34 56", false, nil},
		{"07 00 00 00 00 00 00", false, numplan.ErrM2M},
		{"07 00 00 00 00 00 00", true, nil},
		{"0690 12 34 56", false, numplan.ErrOverseas},
		{"+33 6 90 12 34 56", true, numplan.ErrOverseas},
		{"0700502123456", true, numplan.ErrOverseas},
		{"06 00 12 34 56", false, numplan.ErrRoutingPrefix},
		{"07 08 46 12 34", false, numplan.ErrRoutingPrefix},
		{"01 23 45 67 89", false, numplan.ErrNotMobile},
		{"09 37 12 34 56", false, numplan.ErrNotMobile},
		{"+44 7911 123456", false, numplan.ErrNotFrench},
	}
	for _, tt := range tests {
		n, err := numplan.Parse(tt.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.in, err)
		}
		if got := n.CheckMobile(tt.allowM2M); got != tt.want {
			t.Errorf("CheckMobile(%q, allowM2M=%v): got %v, want %v", tt.in, tt.allowM2M, got, tt.want)
		}
	}
	if got := (numplan.Number{}).CheckMobile(true); got != numplan.ErrInvalid {
		t.Errorf("zero Number: got %v, want ErrInvalid", got)
	}
}

func TestMasking(t *testing.T) {
	tests := []struct {
		in     string
		str    string
		masked string
	}{
		{"06 12 34 56 78", "+336••••••78", "+33 6 12 •• •• 78"},
		{"0690 12 34 56", "+5906••••••56", "+590 6 90 •• •• 56"},
		{"07 00 00 00 12 34 56", "+337••••••••••56", "+33 7 00 •• •• •• •• 56"},
		{"+508 55 12 34", "+5085•••34", "+508 5 51 •• 4"},
		{"+44 7911 123456", "+44••••••••56", "+44••••••••56"},
	}
	for _, tt := range tests {
		n, err := numplan.Parse(tt.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.in, err)
		}
		if got := n.String(); got != tt.str {
			t.Errorf("String(%q): got %s, want %s", tt.in, got, tt.str)
		}
		if got := n.Masked(); got != tt.masked {
			t.Errorf("Masked(%q): got %s, want %s", tt.in, got, tt.masked)
		}
		digits := n.E164()[1:]
		for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
			if got := fmt.Sprintf(f, n); leaks(got, digits) {
				t.Errorf("Sprintf(%q) shows the number: %s", f, got)
			}
		}
		var buf bytes.Buffer
		// The time goes: its nanoseconds can hold five of the number's digits by chance.
		noTime := &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}
		slog.New(slog.NewJSONHandler(&buf, noTime)).Info("send", "to", n, "err", fmt.Errorf("send to %v: %w", n, numplan.ErrM2M))
		if leaks(buf.String(), digits) {
			t.Errorf("slog shows the number: %s", buf.String())
		}
	}
	if got := (numplan.Number{}).String(); got != "<none>" {
		t.Errorf("zero String: got %q", got)
	}
}

func TestHash(t *testing.T) {
	a, _ := numplan.Parse("06 12 34 56 78")
	b, _ := numplan.Parse("+33 (0)6 12 34 56 78")
	c, _ := numplan.Parse("06 12 34 56 79")
	if a.Hash() != b.Hash() {
		t.Errorf("same number, different hashes: %s %s", a.Hash(), b.Hash())
	}
	if a.Hash() == c.Hash() {
		t.Errorf("different numbers, same hash %s", a.Hash())
	}
	// printf '+33612345678' | sha256sum | cut -c1-32
	if got, want := a.Hash(), "42d573cfc315801d4cd8eddd5416b416"; got != want {
		t.Errorf("Hash: got %s, want %s", got, want)
	}
	k1, k2 := a.KeyedHash([]byte("k1")), a.KeyedHash([]byte("k2"))
	if k1 == k2 || k1 == a.Hash() || len(k1) != 32 {
		t.Errorf("KeyedHash: got %s, %s (hash %s)", k1, k2, a.Hash())
	}
	if b.KeyedHash([]byte("k1")) != k1 {
		t.Errorf("KeyedHash not stable across formats")
	}
}
