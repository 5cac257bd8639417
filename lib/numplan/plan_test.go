package numplan_test

import (
	"bufio"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"pushsms.io/lib/numplan"
)

func loadPlan(t testing.TB) *numplan.Plan {
	t.Helper()
	p, err := numplan.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return p
}

func TestHolder(t *testing.T) {
	p := loadPlan(t)
	tests := []struct {
		in     string
		holder string
		ok     bool
	}{
		{"06 07 12 34 56", numplan.Orange, true},       // 0607 FRTE
		{"+33 6 80 12 34 56", numplan.Orange, true},    // 0670–0689 FRTE
		{"06 49 51 12 34", numplan.Orange, true},       // 064951 FRTE (6-digit root)
		{"06 02 01 23 45", numplan.Orange, true},       // 06020: ARCEP says Orange, libphonenumber says SFR
		{"07 85 12 34 56", numplan.Orange, true},       // 0785–0789 FRTE
		{"06 01 00 00 00", "SFR0", true},               // 06010
		{"07 00 00 00 12 34 56", numplan.Orange, true}, // M2M 0700000
		{"07 00 00 10 12 34 56", "SFR0", true},         // M2M 0700001
		{"0700502123456", numplan.Orange, true},        // overseas M2M, Guadeloupe
		{"0639 00 12 34", numplan.Orange, true},        // Mayotte 063900
		{"0639 03 12 34", "TELC", true},                // Mayotte 063903
		{"0709 03 12 34", numplan.Orange, true},        // Guadeloupe 070903
		{"0708 56 12 34", "SPMT", true},                // Saint-Pierre-et-Miquelon
		{"07 30 00 00 00", "", false},                  // open range, no block yet
		{"06 00 12 34 56", "", false},                  // routing prefix
		{"01 23 45 67 89", "", false},                  // not in the 06/07 extract
		{"+44 7911 123456", "", false},
	}
	for _, tt := range tests {
		n, err := numplan.Parse(tt.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.in, err)
		}
		got, ok := p.Holder(n)
		if got != tt.holder || ok != tt.ok {
			t.Errorf("Holder(%q): got %q %v, want %q %v", tt.in, got, ok, tt.holder, tt.ok)
		}
	}
	if _, ok := p.Holder(numplan.Number{}); ok {
		t.Errorf("Holder(zero): got ok")
	}
}

type rawBlock struct {
	root, holder, territory string
	length                  int
}

func readData(t *testing.T) []rawBlock {
	t.Helper()
	f, err := os.Open("data/majnum-0607.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []rawBlock
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ";")
		n, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, rawBlock{root: f[0], length: n, holder: f[2], territory: f[3]})
	}
	return out
}

// TestPlanAgreesWithClasses parses the first and last number of every ARCEP
// block: metropolitan blocks must be Mobile (M2M for 14 digits), overseas
// blocks Overseas, and Holder must find the block again through the country
// code Parse chose.
func TestPlanAgreesWithClasses(t *testing.T) {
	p := loadPlan(t)
	blocks := readData(t)
	if p.Len() != len(blocks) || len(blocks) < 2000 {
		t.Fatalf("Len: got %d, data has %d blocks", p.Len(), len(blocks))
	}
	orange := 0
	for _, b := range blocks {
		if b.territory == "FR" && b.holder == numplan.Orange {
			orange++
		}
		for _, fill := range []string{"0", "9"} {
			nat := b.root + strings.Repeat(fill, b.length-len(b.root))
			n, err := numplan.Parse(nat)
			if err != nil {
				t.Errorf("block %s (%s): Parse: %v", b.root, b.territory, err)
				continue
			}
			want := numplan.Overseas
			switch {
			case b.territory == "FR" && b.length == 14:
				want = numplan.M2M
			case b.territory == "FR":
				want = numplan.Mobile
			}
			if n.Class() != want {
				t.Errorf("block %s (%s): got class %v, want %v", b.root, b.territory, n.Class(), want)
			}
			if want == numplan.Overseas && n.CountryCode() == "33" {
				t.Errorf("block %s (%s): overseas number left under +33", b.root, b.territory)
			}
			if got, ok := p.Holder(n); !ok || got != b.holder {
				t.Errorf("block %s: Holder got %q %v, want %q", b.root, got, ok, b.holder)
			}
		}
	}
	// compliance.md §2.1: 124 metropolitan 10-digit blocks + 2 M2M blocks.
	if orange != 126 {
		t.Errorf("Orange metropolitan blocks: got %d, want 126", orange)
	}
}

func TestRead(t *testing.T) {
	tests := []struct {
		name string
		data string
		ok   bool
	}{
		{"good", "# comment\n\n0607;10;FRTE;FR\n06010;10;SFR0;FR\n", true},
		{"overlap", "0607;10;FRTE;FR\n06071;10;SFR0;FR\n", false},
		{"same root other length", "0700;10;FRTE;FR\n0700;14;FRTE;FR\n", true},
		{"fields", "0607;10;FRTE\n", false},
		{"length", "0607;x;FRTE;FR\n", false},
		{"root longer than length", "06071234567;10;FRTE;FR\n", false},
		{"root not digits", "06a7;10;FRTE;FR\n", false},
		{"empty holder", "0607;10;;FR\n", false},
		{"empty", "# nothing\n", false},
	}
	for _, tt := range tests {
		_, err := numplan.Read(strings.NewReader(tt.data))
		if (err == nil) != tt.ok {
			t.Errorf("%s: got err %v, want ok %v", tt.name, err, tt.ok)
		}
	}
	if _, err := numplan.Read(errReader{}); err == nil {
		t.Errorf("reader error: got nil")
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

var holderSink string

func BenchmarkHolder(b *testing.B) {
	p := loadPlan(b)
	n, err := numplan.Parse("06 49 51 12 34")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		holderSink, _ = p.Holder(n)
	}
}

func BenchmarkParse(b *testing.B) {
	for b.Loop() {
		if _, err := numplan.Parse("+33 (0)6 12 34 56 78"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	for b.Loop() {
		if _, err := numplan.Load(); err != nil {
			b.Fatal(err)
		}
	}
}
