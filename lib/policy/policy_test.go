package policy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	p := Default()
	if p.Window.Open != Clock(8*time.Hour) || p.Window.Close != Clock(22*time.Hour) {
		t.Errorf("window %s–%s, want the offer's 08:00–22:00", p.Window.Open, p.Window.Close)
	}
	if p.Frequency.Cap != 1 || p.Frequency.Period != "day" {
		t.Errorf("frequency %+v, want the offer's 1 per day", p.Frequency)
	}
	if time.Duration(p.MOSession) != 24*time.Hour {
		t.Errorf("mo_session %v", time.Duration(p.MOSession))
	}
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct{ name, key, value, want string }{
		{"unknown field", "nope", `1`, "unknown field"},
		{"window backwards", "window", `{"open": "22:00", "close": "08:00"}`, "window"},
		{"bad clock", "window", `{"open": "8h", "close": "22:00"}`, "HH:MM"},
		{"bad category", "short_code_ranges", `{"36": ["spam"]}`, "unknown category"},
		{"bad period", "frequency", `{"cap": 1, "period": "month"}`, "frequency period"},
		{"no version", "version", `""`, "version"},
		{"no stop keyword", "opt_out", `{"stop_keywords": []}`, "stop keyword"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var doc map[string]json.RawMessage
			if err := json.Unmarshal(defaultJSON, &doc); err != nil {
				t.Fatal(err)
			}
			doc[tc.key] = json.RawMessage(tc.value)
			b, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse: %v, want an error about %q", err, tc.want)
			}
		})
	}
}
