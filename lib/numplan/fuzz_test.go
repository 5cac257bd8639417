package numplan_test

import (
	"strings"
	"testing"

	"pushsms.io/lib/numplan"
)

// FuzzParse feeds arbitrary recipient strings: Parse must not panic, and a
// parsed number must come back unchanged from its own E.164 form, with a
// class, a CheckMobile verdict and a masked form that hides it.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"06 12 34 56 78", "+33 (0)6 12 34 56 78", "0033 (0) 6 12 34 56 78", "33612345678",
		"+330612345678", "0690 12 34 56", "07 00 00 00 00 00 00", "0700502123456",
		"06 00 12 34 56", "0508 55 12 34", "+44 7911 123456", "612345678", "0709 34 12 34",
	} {
		f.Add(s)
	}
	p, err := numplan.Load()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in string) {
		n, err := numplan.Parse(in)
		_, _ = p.Holder(n)
		if err != nil {
			if !n.IsZero() {
				t.Fatalf("Parse(%q) returned a number with error %v", in, err)
			}
			return
		}
		e := n.E164()
		if n.Class() == numplan.Unknown || !strings.HasPrefix(e, "+") || len(e) > 16 || len(e) < 8 {
			t.Fatalf("Parse(%q) = %q class %v", in, e, n.Class())
		}
		again, err := numplan.Parse(e)
		if err != nil || again != n {
			t.Fatalf("Parse(%q) = %q, re-parse gives %v %v", in, e, again.E164(), err)
		}
		if strings.Contains(n.String(), e[1:]) || strings.Contains(n.Masked(), e[1:]) {
			t.Fatalf("masked forms show %q: %s, %s", e, n.String(), n.Masked())
		}
		if err := n.CheckMobile(false); (err == nil) != (n.Class() == numplan.Mobile) {
			t.Fatalf("Parse(%q): class %v but CheckMobile %v", in, n.Class(), err)
		}
	})
}
