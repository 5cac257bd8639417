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
	"pushsms.io/lib/shortcode"
)

// weightsSuffix ends the SHORT_CODES key of a short code's tenant weights;
// ".rate" is lib/rate's, ".control" lib/shortcode's.
const weightsSuffix = ".weights"

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

// effectiveRate is the rate the throttle releases at, from the contracted
// rate r and the link's state: nothing while the link is down (messages
// wait in the throttle, not piled up in smsc-link), max(1, floor(r ×
// slowdown)) while smsc-link reports a slowdown, r otherwise.
func effectiveRate(r int, link shortcode.LinkState, known bool) int {
	if r <= 0 || !known {
		return r
	}
	if !link.Up {
		return 0
	}
	if link.Slowdown < 1 {
		return max(1, int(math.Floor(float64(r)*link.Slowdown)))
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
	control map[string]shortcode.Control
	weights map[string]map[string]int
	link    map[string]shortcode.LinkState
}

func newControls(log *slog.Logger, changed func(string), cancelled func(string, time.Time)) *controls {
	return &controls{log: log, changed: changed, cancelled: cancelled,
		control: map[string]shortcode.Control{}, weights: map[string]map[string]int{}, link: map[string]shortcode.LinkState{}}
}

// setShortCode applies one SHORT_CODES entry (bus.WatchBucket callback).
func (c *controls) setShortCode(key string, value []byte) {
	if sc, ok := strings.CutSuffix(key, shortcode.ControlSuffix); ok {
		c.setControl(sc, value)
		return
	}
	if sc, ok := strings.CutSuffix(key, weightsSuffix); ok {
		c.setWeights(sc, value)
	}
}

func (c *controls) setControl(sc string, value []byte) {
	ctl := shortcode.Control{State: shortcode.Running}
	if value != nil {
		var err error
		if ctl, err = shortcode.ParseControl(value); err != nil {
			c.log.Warn("bad short code control; short code held", "short_code", sc, "err", err)
		}
	}
	c.mu.Lock()
	prev := c.control[sc]
	if ctl.State == shortcode.Running && ctl.CancelledBefore.IsZero() {
		delete(c.control, sc)
	} else {
		c.control[sc] = ctl
	}
	c.mu.Unlock()
	if prev.State != ctl.State && !(prev.State == "" && ctl.State == shortcode.Running) {
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
	var st shortcode.LinkState
	known := value != nil
	if known {
		var err error
		if st, err = shortcode.ParseLinkState(value); err != nil {
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
	if had != known || prev.Up != st.Up || prev.Slowdown != st.Slowdown {
		c.log.Info("link state", "short_code", sc, "up", st.Up || !known, "slowdown", st.Slowdown, "reason", st.Reason)
	}
	c.changed(sc)
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
	return c.control[shortCode].State == shortcode.Paused
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
	paused := r.c.control[shortCode].State == shortcode.Paused
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
