// Package rate is the one definition of a short code's rate, shared by the
// throttle (which shapes traffic) and smsc-link (whose guard is the last
// line before the SMSC).
//
// The offer sells a throughput per short code (10 SMS/s by default, options
// 20/50/100/150), counted in submitted SMS-MT: every part of a concatenated
// message counts as one.
//
// Rate R of a short code: at most R segments released in any 1-second
// window.
//
// A window is half-open, [t, t+1s): two releases exactly 1 s apart are in
// different windows. A rate of 0 holds the short code: nothing is released.
//
// Two mechanisms enforce it, each suited to its place:
//
//   - smsc-link's Guard is exact as the SMSC counts: it counts a submit
//     from its grant until one second after its result (the ACK, whose
//     arrival proves the SMSC has counted it), so that whatever the delays
//     between us and the SMSC's clock, no second there holds R+1. Under
//     backlog R submits go every 1 s plus the round trip (grant to ACK).
//   - The throttle shapes (Pacing): releases are scheduled every
//     (1s + slack)/R, slack being the link's round trip (published by
//     smsc-link) or -rate-guard, whichever is longer, so that what it
//     releases the guard lets through without queueing; never more than R
//     in a second of its own clock (History). A release made late by a
//     timer or a busy machine is caught up at once, within the second's R;
//     time left unused by an idle short code is not saved.
//
// Rates are data: the bucket bus.BucketShortCodes, key "<sc>.rate" (decimal
// SMS-MT per second, 0 holds), over the -rates flag ("36000=20,36001=50"),
// over -default-rate (10). Table follows the bucket, so a rate changes
// without a restart.
package rate

import (
	"errors"
	"time"
)

// MaxRate bounds a rate, from a flag or from the bucket: well above any
// offer (150 SMS/s) and the largest custom quote we expect, low enough that
// a typo ("360000" for "36000=...") is caught, and the bound of a Guard's
// memory (one timestamp per grant of the last second).
const MaxRate = 1000

// DefaultRate is the rate of a short code nobody configured: the offer's
// base throughput.
const DefaultRate = 10

// ErrRate reports a malformed rate or short code.
var ErrRate = errors.New("rate: bad rate")

// Pacing returns the scheduled spacing between releases at rate (> 0),
// (1s + slack)/rate, where slack is what the link adds to each second (its
// round trip).
func Pacing(rate int, slack time.Duration) time.Duration {
	return (time.Second + slack) / time.Duration(rate)
}

// ValidShortCode reports whether s is a short code: digits only. The offer
// uses 5 digits; any length up to 16 is accepted so that a future numbering
// does not need a code change.
func ValidShortCode(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
