package bus

import "testing"

// Span names keep two tokens of a subject, three of a report's: never a
// tenant or a short code (cardinality), whatever the subject's shape.
func TestSubjectPattern(t *testing.T) {
	tests := []struct{ subject, want string }{
		{"sms.cleared.acme.36000", "sms.cleared"},
		{"sms.submit.36000", "sms.submit"},
		{"sms.report.delivered.acme.36000", "sms.report.delivered"},
		{"sms.report.delivered", "sms.report.delivered"},
		{"sms.mo", "sms.mo"},
		{"sms", "sms"},
		{"", ""},
		{"sms.report.", "sms.report."},
	}
	for _, tt := range tests {
		if got := subjectPattern(tt.subject); got != tt.want {
			t.Errorf("subjectPattern(%q) = %q, want %q", tt.subject, got, tt.want)
		}
	}
}
