package ingest

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

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

// A batch moves forward in proportion to the new pace, from now for a
// campaign under way and from its start for one that has not started.
func TestRetimed(t *testing.T) {
	now := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	c := ReleaseConfig{Rate: 1000, Lead: 10 * time.Second}
	running := c.header(20, now.Add(-time.Hour))
	tomorrow := c.header(20, now.Add(24*time.Hour))
	tests := []struct {
		name   string
		h      nats.Header
		due    time.Time
		pace   int
		want   time.Time
		wantOK bool
	}{
		{"under way: from now", running, now.Add(100 * time.Second), 200, now.Add(10 * time.Second), true},
		{"not started: from its start less the lead", tomorrow, now.Add(24*time.Hour - 10*time.Second + 100*time.Second), 40, now.Add(24*time.Hour - 10*time.Second + 50*time.Second), true},
		{"same pace", running, now.Add(100 * time.Second), 20, time.Time{}, false},
		{"slower pace: left as it is", running, now.Add(100 * time.Second), 10, time.Time{}, false},
		{"due already", running, now.Add(-time.Second), 200, time.Time{}, false},
		{"no timing headers (before they existed)", nats.Header{}, now.Add(100 * time.Second), 200, time.Time{}, false},
	}
	for _, tt := range tests {
		got, ok := retimed(tt.h, tt.due, now, tt.pace)
		if ok != tt.wantOK || !got.Equal(tt.want) {
			t.Errorf("%s: %v %v, want %v %v", tt.name, got, ok, tt.want, tt.wantOK)
		}
	}
}
