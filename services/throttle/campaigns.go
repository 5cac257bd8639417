package throttle

import (
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
)

// campaignState is a campaign's control state, as ingest writes it in the
// CAMPAIGNS bucket.
type campaignState int

const (
	campaignRunning campaignState = iota
	campaignPaused
	campaignCancelled
)

func (s campaignState) String() string {
	switch s {
	case campaignPaused:
		return "paused"
	case campaignCancelled:
		return "cancelled"
	}
	return "running"
}

// parseCampaignState reads a CAMPAIGNS value. A nil value (key deleted or
// expired) is running. A value it does not know holds the campaign: sending
// a campaign someone tried to stop cannot be undone, holding it can.
func parseCampaignState(v []byte) (campaignState, bool) {
	if v == nil {
		return campaignRunning, true
	}
	switch strings.ToLower(strings.TrimSpace(string(v))) {
	case "running", "":
		return campaignRunning, true
	case "paused":
		return campaignPaused, true
	case "cancelled", "canceled":
		return campaignCancelled, true
	}
	return campaignPaused, false
}

// campaigns is the view of the CAMPAIGNS bucket: only campaigns that are
// not running are kept.
type campaigns struct {
	log *slog.Logger
	// stopped is called (from the watch goroutine) when a campaign is
	// cancelled: its tickets leave the lanes.
	stopped func(id string)
	// changed, when set, is called when a campaign is paused or resumed:
	// its tickets stay in the lanes, which look again at once.
	changed func()
	// loaded is set once the bucket's current values are in: changes are
	// logged from then on, not the whole bucket at every start.
	loaded atomic.Bool

	mu    sync.RWMutex
	state map[string]campaignState
}

func newCampaigns(log *slog.Logger, stopped func(string)) *campaigns {
	return &campaigns{log: log, stopped: stopped, state: map[string]campaignState{}}
}

// set applies one CAMPAIGNS entry (bus.WatchBucket callback).
func (c *campaigns) set(id string, value []byte) {
	st, known := parseCampaignState(value)
	if !known {
		c.log.Warn("unknown campaign state; campaign held", "campaign_id", id, "value", truncate(string(value), 32))
	}
	c.mu.Lock()
	prev := c.state[id]
	if st == campaignRunning {
		delete(c.state, id)
	} else {
		c.state[id] = st
	}
	c.mu.Unlock()
	if st != prev && c.loaded.Load() {
		c.log.Info("campaign state", "campaign_id", id, "state", st.String())
	}
	switch {
	case st == campaignCancelled:
		c.stopped(id)
	case st != prev && c.changed != nil:
		c.changed()
	}
}

// paused tells whether campaign id is paused (or in a state throttle does
// not know, which holds it).
func (c *campaigns) paused(id string) bool { return c.get(id) == campaignPaused }

// get returns the state of campaign id; a message outside any campaign
// (id "") is always running.
func (c *campaigns) get(id string) campaignState {
	if id == "" {
		return campaignRunning
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.state[id]
}

func (c *campaigns) running(id string) bool { return c.get(id) == campaignRunning }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
