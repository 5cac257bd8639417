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

func TestParseClock(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"08:00", 8 * time.Hour, true},
		{"21:30", 21*time.Hour + 30*time.Minute, true},
		{"24:00", 24 * time.Hour, true},
		{"00:00", 0, true},
		{"8", 0, false},
		{"08:60", 0, false},
		{"24:01", 0, false},
		{"08:0", 0, false},
		{"-1:00", 0, false},
	}
	for _, tt := range tests {
		c, err := ParseClock(tt.in)
		if (err == nil) != tt.ok || (tt.ok && time.Duration(c) != tt.want) {
			t.Errorf("ParseClock(%q): got %v, %v, want %v, ok %v", tt.in, time.Duration(c), err, tt.want, tt.ok)
		}
		if tt.ok && c.String() != tt.in {
			t.Errorf("ParseClock(%q).String() = %q", tt.in, c.String())
		}
	}
}

// A document written back by Put (MarshalIndent) parses to the same policy.
func TestRoundTrip(t *testing.T) {
	p := Default()
	p.ShortCodes = map[string]ShortCode{"36123": {OAdCModification: true, Window: &Window{Open: Clock(8 * time.Hour), Close: Clock(21*time.Hour + 30*time.Minute)}}}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	q, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := q.WindowFor("36123").Close; got != Clock(21*time.Hour+30*time.Minute) {
		t.Errorf("contract window closes at %s, want 21:30", got)
	}
	if got := q.WindowFor("36999").Close; got != Clock(22*time.Hour) {
		t.Errorf("default window closes at %s, want 22:00", got)
	}
	if q.Version != p.Version || time.Duration(q.MOSession) != time.Duration(p.MOSession) || !q.ShortCodes["36123"].OAdCModification {
		t.Errorf("round trip changed the policy: %+v", q)
	}
}
