package ingest

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
)

// A campaign is released at its short code's rate when the bucket tells
// it, never above the configured pace, and at that pace otherwise.
func TestReleaseForShortCode(t *testing.T) {
	c := ReleaseConfig{Rate: 1000}
	tests := []struct {
		name       string
		contracted int
		known      bool
		want       int
	}{
		{"offer rate", 150, true, 150},
		{"default rate", 10, true, 10},
		{"custom rate above the pace", 1200, true, 1000},
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

// A campaign is paced in segments, as its short code's rate counts them,
// and a batch covers at most the release's span: the throttle parks a
// batch's excess at the rate of the moment it arrives.
func TestBatchesPacedInSegments(t *testing.T) {
	now := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	u := &upload{
		s:        &Service{cfg: Config{Release: ReleaseConfig{Rate: 1000, Lead: 2 * time.Second, Span: 5 * time.Second}}},
		campaign: campaignRow{ID: "c1", TenantID: "acme", ShortCode: "36123"},
		started:  now,
		release:  10, // SMS/s: a batch holds 50 segments
		segments: 20, // the chunks before: 2 s of the pace, the lead
	}
	// 60 messages of 3 segments: 180 segments, from the 21st.
	var msgs []*eventsv1.MessageAccepted
	for i := range 60 {
		msgs = append(msgs, &eventsv1.MessageAccepted{MessageId: fmt.Sprintf("m%02d", i), SegmentCount: 3})
	}
	got := u.batches(msgs, now)
	// 17 messages (51 segments ≥ 50) a batch; the batch due when the pace
	// reaches its first segment, less the 2 s lead.
	want := []struct {
		messages int
		at       time.Duration // after now; 0: published at once
	}{{17, 0}, {17, 5100 * time.Millisecond}, {17, 10200 * time.Millisecond}, {9, 15300 * time.Millisecond}}
	if len(got) != len(want) {
		t.Fatalf("%d batches, want %d", len(got), len(want))
	}
	for i, ev := range got {
		n := len(ev.Msg.(*eventsv1.CampaignBatch).GetMessages())
		var at time.Duration
		if !ev.At.IsZero() {
			at = ev.At.Sub(now)
		}
		if n != want[i].messages || at != want[i].at {
			t.Errorf("batch %d: %d messages due %v, want %d due %v", i, n, at, want[i].messages, want[i].at)
		}
	}
}
