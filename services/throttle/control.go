package throttle

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"pushsms.io/lib/bus"
)

// Keys of bus.BucketShortCodes this file reads; ".rate" is lib/rate's.
const (
	controlSuffix = ".control"
	weightsSuffix = ".weights"
)

// ShortCodeControl is the value of "<sc>.control" in bus.BucketShortCodes,
// written by ingest (PauseShortCode, ResumeShortCode, CancelShortCode).
type ShortCodeControl struct {
	// State is "running" or "paused"; paused releases nothing.
	State string `json:"state"`
	// CancelledBefore: messages accepted before it and not yet released
	// are cancelled. Zero: never.
	CancelledBefore time.Time `json:"cancelled_before,omitzero"`
}

// Short code states of ShortCodeControl.State.
const (
	ShortCodeRunning = "running"
	ShortCodePaused  = "paused"
)

// ParseShortCodeControl reads a "<sc>.control" value. A state it does not
// know holds the short code, as an unknown campaign state holds the
// campaign: holding can be undone, sending cannot.
func ParseShortCodeControl(v []byte) (ShortCodeControl, error) {
	var c ShortCodeControl
	if err := json.Unmarshal(v, &c); err != nil {
		return ShortCodeControl{State: ShortCodePaused}, fmt.Errorf("short code control: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(c.State)) {
	case ShortCodeRunning, "":
		c.State = ShortCodeRunning
	case ShortCodePaused:
		c.State = ShortCodePaused
	default:
		st := c.State
		c.State = ShortCodePaused
		return c, fmt.Errorf("short code control: unknown state %q", truncate(st, 32))
	}
	return c, nil
}

// MaxWeight bounds a weight: a tenant's on a short code, a campaign's.
const MaxWeight = 100

// ParseWeights reads a "<sc>.weights" value: {"tenant": weight}, each
// weight 1 to MaxWeight.
func ParseWeights(v []byte) (map[string]int, error) {
	var w map[string]int
	if err := json.Unmarshal(v, &w); err != nil {
		return nil, fmt.Errorf("short code weights: %w", err)
	}
	for tenant, n := range w {
		if n < 1 || n > MaxWeight {
			return nil, fmt.Errorf("short code weights: tenant %q: weight %d: want 1 to %d", truncate(tenant, 64), n, MaxWeight)
		}
	}
	return w, nil
}

// LinkState is smsc-link's view of a short code's link, the value of
// bus.BucketLinkState (key: short code).
type LinkState struct {
	// Up is false while no bind can submit: nothing is released.
	Up bool `json:"up"`
	// Slowdown below 1 scales the rate down (temporary NACKs, ACK
	// timeouts); absent or 1 and above: the contracted rate.
	Slowdown *float64 `json:"slowdown,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	// Achieved is the segments submitted per second lately.
	Achieved float64 `json:"achieved,omitempty"`
	// AckMillis is the longest time from smsc-link's guard grant to the
	// ACK lately, in milliseconds: the guard lets R segments go per 1 s
	// plus this (lib/rate.Guard).
	AckMillis float64   `json:"ack_ms,omitempty"`
	At        time.Time `json:"at,omitzero"`
}

// ParseLinkState reads a LINK_STATE value.
func ParseLinkState(v []byte) (LinkState, error) {
	var s LinkState
	if err := json.Unmarshal(v, &s); err != nil {
		return LinkState{}, fmt.Errorf("link state: %w", err)
	}
	if s.Slowdown != nil && (math.IsNaN(*s.Slowdown) || *s.Slowdown < 0) {
		return LinkState{}, fmt.Errorf("link state: slowdown %v: want 0 to 1", *s.Slowdown)
	}
	if math.IsNaN(s.AckMillis) || s.AckMillis < 0 {
		return LinkState{}, fmt.Errorf("link state: ack_ms %v: want 0 or more", s.AckMillis)
	}
	return s, nil
}

// effectiveRate is the rate the throttle releases at, from the contracted
// rate r and the link's state: nothing while the link is down (messages
// wait in the throttle, not piled up in smsc-link), max(1, floor(r ×
// slowdown)) while smsc-link reports a slowdown, r otherwise.
func effectiveRate(r int, link LinkState, known bool) int {
	if r <= 0 || !known {
		return r
	}
	if !link.Up {
		return 0
	}
	if link.Slowdown != nil && *link.Slowdown < 1 {
		return max(1, int(math.Floor(float64(r)**link.Slowdown)))
	}
	return r
}

// controls is the throttle's view of the short codes' control data
// (SHORT_CODES ".control" and ".weights") and of their links (LINK_STATE).
// Its callbacks run on the watch goroutines.
type controls struct {
	log *slog.Logger
	// changed is called when a short code's release conditions changed
	// (pause, resume, link, weights): its lane looks again at once.
	changed func(shortCode string)
	// cancelled is called when a short code is cancelled before a time.
	cancelled func(shortCode string, before time.Time)

	mu      sync.RWMutex
	control map[string]ShortCodeControl
	weights map[string]map[string]int
	link    map[string]LinkState
}

func newControls(log *slog.Logger, changed func(string), cancelled func(string, time.Time)) *controls {
	return &controls{log: log, changed: changed, cancelled: cancelled,
		control: map[string]ShortCodeControl{}, weights: map[string]map[string]int{}, link: map[string]LinkState{}}
}

// setShortCode applies one SHORT_CODES entry (bus.WatchBucket callback).
func (c *controls) setShortCode(key string, value []byte) {
	if sc, ok := strings.CutSuffix(key, controlSuffix); ok {
		c.setControl(sc, value)
		return
	}
	if sc, ok := strings.CutSuffix(key, weightsSuffix); ok {
		c.setWeights(sc, value)
	}
}

func (c *controls) setControl(sc string, value []byte) {
	ctl := ShortCodeControl{State: ShortCodeRunning}
	if value != nil {
		var err error
		if ctl, err = ParseShortCodeControl(value); err != nil {
			c.log.Warn("bad short code control; short code held", "short_code", sc, "err", err)
		}
	}
	c.mu.Lock()
	prev := c.control[sc]
	if ctl.State == ShortCodeRunning && ctl.CancelledBefore.IsZero() {
		delete(c.control, sc)
	} else {
		c.control[sc] = ctl
	}
	c.mu.Unlock()
	if prev.State != ctl.State && !(prev.State == "" && ctl.State == ShortCodeRunning) {
		c.log.Info("short code state", "short_code", sc, "state", ctl.State)
	}
	if !ctl.CancelledBefore.IsZero() && !ctl.CancelledBefore.Equal(prev.CancelledBefore) {
		c.log.Info("short code cancelled", "short_code", sc, "before", ctl.CancelledBefore)
		c.cancelled(sc, ctl.CancelledBefore)
	}
	c.changed(sc)
}

func (c *controls) setWeights(sc string, value []byte) {
	var w map[string]int
	if value != nil {
		var err error
		if w, err = ParseWeights(value); err != nil {
			// Equal shares rather than a guess: nobody is starved.
			c.log.Warn("bad short code weights; equal shares", "short_code", sc, "err", err)
			w = nil
		}
	}
	c.mu.Lock()
	if w == nil {
		delete(c.weights, sc)
	} else {
		c.weights[sc] = w
	}
	c.mu.Unlock()
	c.changed(sc)
}

// setLink applies one LINK_STATE entry (bus.WatchBucket callback).
func (c *controls) setLink(sc string, value []byte) {
	var st LinkState
	known := value != nil
	if known {
		var err error
		if st, err = ParseLinkState(value); err != nil {
			// Ignored: the contracted rate is the safe side, smsc-link's
			// guard still holds it.
			c.log.Warn("bad link state ignored", "short_code", sc, "err", err)
			known = false
		}
	}
	c.mu.Lock()
	prev, had := c.link[sc]
	if known {
		c.link[sc] = st
	} else {
		delete(c.link, sc)
	}
	c.mu.Unlock()
	if had != known || prev.Up != st.Up || !sameSlowdown(prev.Slowdown, st.Slowdown) {
		c.log.Info("link state", "short_code", sc, "up", st.Up || !known, "slowdown", slowdownOf(st), "reason", st.Reason)
	}
	c.changed(sc)
}

func sameSlowdown(a, b *float64) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

func slowdownOf(s LinkState) float64 {
	if s.Slowdown == nil {
		return 1
	}
	return *s.Slowdown
}

// maxRoundTrip bounds the round trip the pacing takes from the link
// state: beyond it the link is too slow to be paced by, its slowdown
// (timeouts) takes over.
const maxRoundTrip = time.Second

// roundTrip is the link's grant-to-ACK time of shortCode, 0 if unknown.
func (c *controls) roundTrip(shortCode string) time.Duration {
	c.mu.RLock()
	ms := c.link[shortCode].AckMillis
	c.mu.RUnlock()
	return min(time.Duration(ms*float64(time.Millisecond)), maxRoundTrip)
}

// paused tells whether shortCode is paused.
func (c *controls) paused(shortCode string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.control[shortCode].State == ShortCodePaused
}

// cancelledAt tells whether a message of shortCode accepted at accepted
// is cancelled. A message without an acceptance time is not: it predates
// the field, and cancelling it by guess cannot be undone.
func (c *controls) cancelledAt(shortCode string, accepted time.Time) bool {
	if accepted.IsZero() {
		return false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return accepted.Before(c.control[shortCode].CancelledBefore)
}

// dropped is lanes.dropped.
func (c *controls) dropped(shortCode string, t *ticket) bool {
	return c.cancelledAt(shortCode, t.accepted)
}

// weight is the weight of tenant on shortCode, 1 by default.
func (c *controls) weight(shortCode, tenant string) int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if w, ok := c.weights[shortCode][tenant]; ok {
		return w
	}
	return 1
}

// rates wraps the contracted rates: the rate a lane releases at is 0 while
// its short code is paused or its link down, and scaled down while the
// link slows down.
func (c *controls) rates(contracted RateSource) RateSource {
	return controlledRates{contracted: contracted, c: c}
}

type controlledRates struct {
	contracted RateSource
	c          *controls
}

func (r controlledRates) Rate(shortCode string) int {
	rt := r.contracted.Rate(shortCode)
	r.c.mu.RLock()
	paused := r.c.control[shortCode].State == ShortCodePaused
	link, known := r.c.link[shortCode]
	r.c.mu.RUnlock()
	if paused {
		return 0
	}
	return effectiveRate(rt, link, known)
}

// watch starts following SHORT_CODES and LINK_STATE; both are loaded when
// it returns, so that no release happens before a pause is seen.
func (c *controls) watch(ctx context.Context, b *bus.Bus) ([]*bus.Watcher, error) {
	w1, err := b.WatchBucket(ctx, bus.BucketShortCodes, c.setShortCode)
	if err != nil {
		return nil, fmt.Errorf("watch short codes: %w", err)
	}
	w2, err := b.WatchBucket(ctx, bus.BucketLinkState, c.setLink)
	if err != nil {
		w1.Stop()
		return nil, fmt.Errorf("watch link state: %w", err)
	}
	return []*bus.Watcher{w1, w2}, nil
}
