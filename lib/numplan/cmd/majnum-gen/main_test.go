package main

import (
	"strings"
	"testing"
)

const header = "EZABPQM;Tranche_Debut;Tranche_Fin;Mnémo;Territoire;Date_Attribution\n"

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		raw  []byte
		want string
	}{
		{"escaped", []byte(`Mn\xe9mo;M\xe9tropole`), "Mnémo;Métropole"},
		{"latin-1", []byte{'M', 0xE9, 't'}, "Mét"},
		{"utf-8 with BOM", []byte("\ufeffMétropole"), "Métropole"},
	}
	for _, tt := range tests {
		if got := decode(tt.raw); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestParse(t *testing.T) {
	good := header +
		"01056;0105600000;0105699999;FRTE;Métropole;01/01/2017\n" +
		"0607;0607000000;0607999999;FRTE;Métropole;01/01/2017\n" +
		"06010;0601000000;0601099999;SFR0;Métropole;08/12/2011\n" +
		"0700000;07000000000000;07000009999999;FRTE;Métropole;01/01/2017\n" +
		"063903;0639030000;0639039999;TELC;Mayotte;02/07/2025\n"
	blocks, newest, err := parse(good)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	var roots []string
	for _, b := range blocks {
		roots = append(roots, b.root)
	}
	if got, want := strings.Join(roots, " "), "06010 0607 063903 0700000"; got != want {
		t.Errorf("roots: got %s, want %s", got, want)
	}
	if got := newest.Format("2006-01-02"); got != "2025-07-02" {
		t.Errorf("newest: got %s, want 2025-07-02", got)
	}

	bad := []struct{ name, rows string }{
		{"not a whole prefix", "0607;0607000000;0607499999;FRTE;Métropole;01/01/2017\n"},
		{"odd length", "0607;060700000;060799999;FRTE;Métropole;01/01/2017\n"},
		{"unknown territory", "0607;0607000000;0607999999;FRTE;Atlantide;01/01/2017\n"},
		{"bad holder", "0607;0607000000;0607999999;frte;Métropole;01/01/2017\n"},
		{"overlap", "0607;0607000000;0607999999;FRTE;Métropole;01/01/2017\n06071;0607100000;0607199999;SFR0;Métropole;01/01/2017\n"},
		{"no mobile blocks", "01056;0105600000;0105699999;FRTE;Métropole;01/01/2017\n"},
	}
	for _, tt := range bad {
		if _, _, err := parse(header + tt.rows); err == nil {
			t.Errorf("%s: got no error", tt.name)
		}
	}
	if _, _, err := parse("EZABPQM;Tranche_Debut\n"); err == nil {
		t.Errorf("missing columns: got no error")
	}
}
