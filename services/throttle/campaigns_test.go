package throttle

import (
	"io"
	"log/slog"
	"testing"
)

func TestParseCampaignState(t *testing.T) {
	tests := []struct {
		in        []byte
		want      campaignState
		wantKnown bool
	}{
		{in: nil, want: campaignRunning, wantKnown: true},
		{in: []byte("running"), want: campaignRunning, wantKnown: true},
		{in: []byte("paused"), want: campaignPaused, wantKnown: true},
		{in: []byte("cancelled"), want: campaignCancelled, wantKnown: true},
		{in: []byte(" Cancelled\n"), want: campaignCancelled, wantKnown: true},
		{in: []byte("canceled"), want: campaignCancelled, wantKnown: true},
		// Unknown values hold the campaign rather than send it.
		{in: []byte("stopped"), want: campaignPaused, wantKnown: false},
	}
	for _, tt := range tests {
		got, known := parseCampaignState(tt.in)
		if got != tt.want || known != tt.wantKnown {
			t.Errorf("parseCampaignState(%q): got %v %v, want %v %v", tt.in, got, known, tt.want, tt.wantKnown)
		}
	}
}

func TestCampaignsTellStops(t *testing.T) {
	var stopped []string
	changed := 0
	c := newCampaigns(slog.New(slog.NewTextHandler(io.Discard, nil)), func(id string) { stopped = append(stopped, id) })
	c.changed = func() { changed++ }
	c.set("a", []byte("paused"))
	if !c.paused("a") || changed != 1 || len(stopped) != 0 {
		t.Errorf("pause: paused %v, %d changes, stopped %v; want paused, 1 change, none stopped (kept in the lanes)", c.paused("a"), changed, stopped)
	}
	c.set("b", []byte("running"))
	c.set("a", []byte("cancelled"))
	c.set("c", []byte("cancelled"))
	c.set("c", nil) // deleted: back to running
	tests := []struct {
		id   string
		want campaignState
	}{{"a", campaignCancelled}, {"b", campaignRunning}, {"c", campaignRunning}, {"", campaignRunning}, {"unknown", campaignRunning}}
	for _, tt := range tests {
		if got := c.get(tt.id); got != tt.want {
			t.Errorf("get(%q): got %v, want %v", tt.id, got, tt.want)
		}
	}
	if want := []string{"a", "c"}; len(stopped) != len(want) || stopped[0] != "a" || stopped[1] != "c" {
		t.Errorf("stopped: got %v, want %v", stopped, want)
	}
}
