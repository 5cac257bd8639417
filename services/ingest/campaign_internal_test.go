package ingest

import "testing"

// A campaign is released at twice its short code's rate when the bucket
// tells it, never above the configured pace, and at that pace otherwise.
func TestReleaseForShortCode(t *testing.T) {
	c := ReleaseConfig{Rate: 1000}
	tests := []struct {
		name       string
		contracted int
		known      bool
		want       int
	}{
		{"offer rate", 150, true, 300},
		{"default rate", 10, true, 20},
		{"custom rate above half the pace", 800, true, 1000},
		{"no rate in the bucket: the throttle's flags decide", 0, false, 1000},
		{"held (0): its next rate is unknown", 0, true, 1000},
	}
	for _, tt := range tests {
		if got := c.forShortCode(tt.contracted, tt.known); got != tt.want {
			t.Errorf("%s: %d/s, want %d/s", tt.name, got, tt.want)
		}
	}
}
