package throttle

import (
	"errors"
	"maps"
	"testing"
)

func TestParseRates(t *testing.T) {
	tests := []struct {
		in      string
		want    RateTable
		wantErr bool
	}{
		{in: "", want: RateTable{}},
		{in: "  ", want: RateTable{}},
		{in: "36000=20", want: RateTable{"36000": 20}},
		{in: "36000=20,36001=50", want: RateTable{"36000": 20, "36001": 50}},
		{in: " 36000 = 20 , 36001=150 ", want: RateTable{"36000": 20, "36001": 150}},
		{in: "36000", wantErr: true},
		{in: "36000=", wantErr: true},
		{in: "=20", wantErr: true},
		{in: "36000=0", wantErr: true},
		{in: "36000=-5", wantErr: true},
		{in: "36000=10001", wantErr: true},
		{in: "36000=ten", wantErr: true},
		{in: "36.00=10", wantErr: true},
		{in: "36000=10,36000=20", wantErr: true},
		{in: "36000=10,", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseRates(tt.in)
		if tt.wantErr {
			if !errors.Is(err, ErrRates) {
				t.Errorf("ParseRates(%q): got %v, %v, want an ErrRates", tt.in, got, err)
			}
			continue
		}
		if err != nil || !maps.Equal(got, tt.want) {
			t.Errorf("ParseRates(%q): got %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestStaticRates(t *testing.T) {
	r := StaticRates{Default: 10, Overrides: RateTable{"36000": 50}}
	tests := []struct {
		code string
		want int
	}{{"36000", 50}, {"36001", 10}, {"", 10}}
	for _, tt := range tests {
		if got := r.Rate(tt.code); got != tt.want {
			t.Errorf("Rate(%q): got %d, want %d", tt.code, got, tt.want)
		}
	}
}

// FuzzParseRates: the -rates value (or RATES from the environment) is
// typed by people. Whatever parses prints back to the same table.
func FuzzParseRates(f *testing.F) {
	for _, s := range []string{"", "36000=20", "36000=20,36001=50", " 36000 = 20 ", "36000=", "a=b,c", "36000=10,36000=10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseRates(s)
		if err != nil {
			return
		}
		again, err := ParseRates(got.String())
		if err != nil {
			t.Fatalf("ParseRates(%q) printed %q, which does not parse: %v", s, got.String(), err)
		}
		if !maps.Equal(got, again) {
			t.Fatalf("ParseRates(%q) = %v, printed and parsed again = %v", s, got, again)
		}
		for code, r := range got {
			if !isShortCode(code) || r < 1 || r > MaxRate {
				t.Fatalf("ParseRates(%q) accepted %s=%d", s, code, r)
			}
		}
	})
}
