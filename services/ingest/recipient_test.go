package ingest

import (
	"strings"
	"testing"
)

func TestRecipient(t *testing.T) {
	tests := []struct {
		raw, wantMasked string
	}{
		{"06 12 34 56 78", "+33 6 12 •• •• 78"},
		{"+33612345678", "+33 6 12 •• •• 78"},
		{"0033 6 12 34 56 78", "+33 6 12 •• •• 78"},
		{"not a number 0612345678", "no" + strings.Repeat("•", 19) + "78"},
		{"12345", "•••••"},
	}
	for _, tt := range tests {
		r := newRecipient(tt.raw)
		if r.masked != tt.wantMasked {
			t.Errorf("newRecipient(%q).masked = %q, want %q", tt.raw, r.masked, tt.wantMasked)
		}
		if len(r.hash) != 32 {
			t.Errorf("newRecipient(%q).hash = %q, want 32 hex digits", tt.raw, r.hash)
		}
		if strings.Contains(r.masked, "345") {
			t.Errorf("newRecipient(%q).masked = %q shows the middle digits", tt.raw, r.masked)
		}
	}
	if a, b := newRecipient("06 12 34 56 78"), newRecipient("+33 6 12 34 56 78"); a.hash != b.hash {
		t.Errorf("two writings of one number hash to %s and %s", a.hash, b.hash)
	}
}
