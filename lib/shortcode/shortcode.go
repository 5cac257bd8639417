// Package shortcode is what the services tell each other about a short
// code through the buckets, defined once: its control (bus.BucketShortCodes,
// "<sc>.control": written by ingest, obeyed by throttle) and its link state
// (bus.BucketLinkState, key "<sc>": written by smsc-link, read by throttle
// and ingest). Its rate, "<sc>.rate", is lib/rate's.
package shortcode

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// ControlSuffix ends the SHORT_CODES key of a short code's control.
const ControlSuffix = ".control"

// ControlKey is the SHORT_CODES key of sc's control.
func ControlKey(sc string) string { return sc + ControlSuffix }

// States of Control.State.
const (
	Running = "running"
	Paused  = "paused"
)

// Control is a short code's control: whether it releases, and which of its
// messages are cancelled.
type Control struct {
	// State is Running or Paused; paused releases nothing.
	State string `json:"state"`
	// CancelledBefore: messages accepted before it and not yet released
	// are cancelled. Zero: never.
	CancelledBefore time.Time `json:"cancelled_before,omitzero"`
}

// ParseControl reads a control value. A value it cannot read, or a state it
// does not know, holds the short code (and is an error): holding can be
// undone, sending cannot.
func ParseControl(v []byte) (Control, error) {
	var c Control
	if err := json.Unmarshal(v, &c); err != nil {
		return Control{State: Paused}, fmt.Errorf("short code control: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(c.State)) {
	case Running, "":
		c.State = Running
	case Paused:
		c.State = Paused
	default:
		st := c.State
		if len(st) > 32 {
			st = st[:32] + "…"
		}
		c.State = Paused
		return c, fmt.Errorf("short code control: unknown state %q", st)
	}
	return c, nil
}

// LinkState is smsc-link's view of a short code's link, the value of its
// key in bus.BucketLinkState (docs/smsc-link.md, "Back-pressure").
type LinkState struct {
	// Up: a session of the short code is logged in; while false nothing
	// is released.
	Up bool `json:"up"`
	// Slowdown is the fraction of the contracted rate the link takes now,
	// 0.1 to 1 (1 when absent).
	Slowdown float64 `json:"slowdown"`
	// Reason of the last slowdown or of the link being down; empty when
	// the link is up at full rate.
	Reason string `json:"reason,omitempty"`
	// Achieved is the SMS-MT the SMSC accepted per second, averaged over
	// the last 10 whole seconds.
	Achieved float64 `json:"achieved"`
	// AckMillis is the mean time an accepted 51 held a place of the rate
	// guard beyond 1 s over the last 3 seconds (its grant's lateness plus
	// grant to ACK), in milliseconds: the guard counts a 51 until one
	// second after its ACK (lib/rate.Guard), so R 51s take 1 s plus this;
	// the throttle paces at that, not faster.
	AckMillis float64   `json:"ack_ms"`
	At        time.Time `json:"at,omitzero"`
}

// ParseLinkState reads a LINK_STATE value; a slowdown it does not say is 1.
func ParseLinkState(v []byte) (LinkState, error) {
	s := LinkState{Slowdown: 1}
	if err := json.Unmarshal(v, &s); err != nil {
		return LinkState{}, fmt.Errorf("link state: %w", err)
	}
	if math.IsNaN(s.Slowdown) || s.Slowdown < 0 {
		return LinkState{}, fmt.Errorf("link state: slowdown %v: want 0 to 1", s.Slowdown)
	}
	if math.IsNaN(s.AckMillis) || s.AckMillis < 0 {
		return LinkState{}, fmt.Errorf("link state: ack_ms %v: want 0 or more", s.AckMillis)
	}
	return s, nil
}
