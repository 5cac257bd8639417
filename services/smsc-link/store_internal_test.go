package smsclink

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestRefTraceForms: a correlation record names its submit's trace in
// either form it was ever stored in, so that a DR joins the SMS's trace
// across the upgrade; a record written now holds the traceparent alone.
func TestRefTraceForms(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name, stored, want string
	}{
		{"written now", `{"message_id":"m","short_code":"36000","index":1,"count":1,"traceparent":"` + tp + `"}`, tp},
		{"written before cdefebe", `{"message_id":"m","short_code":"36000","index":1,"count":1,"trace":{"traceparent":"` + tp + `","tracestate":""}}`, tp},
		{"no span context", `{"message_id":"m","short_code":"36000","index":1,"count":1}`, ""},
	}
	for _, tt := range tests {
		var ref segmentRef
		if err := json.Unmarshal([]byte(tt.stored), &ref); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := ref.traceparent(); got != tt.want {
			t.Errorf("%s: traceparent %q, want %q", tt.name, got, tt.want)
		}
	}
	b, err := json.Marshal(segmentRef{MessageID: "m", ShortCode: "36000", Index: 1, Count: 1, Traceparent: tp})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"traceparent":"`+tp+`"`) || strings.Contains(string(b), `"trace"`) {
		t.Errorf("written as %s, want the traceparent alone", b)
	}
}
