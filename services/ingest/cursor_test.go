package ingest

import (
	"errors"
	"testing"
)

func TestCursor(t *testing.T) {
	for _, c := range []cursor{{1, 1}, {42, 7}, {1 << 40, 3}, {0, 0}} {
		got, err := parseCursor(c.String())
		if err != nil || got != c {
			t.Errorf("parseCursor(%v.String()) = %v, %v", c, got, err)
		}
	}
	if got, err := parseCursor(""); err != nil || got != (cursor{}) {
		t.Errorf(`parseCursor("") = %v, %v; want zero`, got, err)
	}
	for _, bad := range []string{"garbage", "AQ", "AgEB", cursor{1, 2}.String() + "A", "!!!!"} {
		if _, err := parseCursor(bad); !errors.Is(err, ErrCursor) {
			t.Errorf("parseCursor(%q): %v, want %v", bad, err, ErrCursor)
		}
	}
}

func FuzzCursor(f *testing.F) {
	f.Add(cursor{1, 1}.String())
	f.Add(cursor{1 << 50, 12345}.String())
	f.Add("AQEB")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCursor(s)
		if err != nil || s == "" {
			return
		}
		again, err := parseCursor(c.String())
		if err != nil || again != c {
			t.Fatalf("cursor %v from %q does not round-trip: %v, %v", c, s, again, err)
		}
	})
}
