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
//   - The throttle spaces releases (Pacing): two releases are never less
//     than 1/R apart, and are scheduled every (1s + guard)/R so that the
//     jitter between the release and the SMSC (publish, smsc-link, the UCP
//     link) cannot put R+1 submits into one window as the SMSC sees it. The
//     schedule is a token bucket of depth 1: time left unused is not saved,
//     so there is never a burst.
//   - smsc-link's Guard counts: a submit goes out only if, with it, the
//     last window (1 s plus a small slack) holds at most R submits. In
//     normal operation the throttle's spacing already satisfies it and the
//     guard never waits more than the jitter; after a slow SMSC or a
//     reconnect, segments queued in smsc-link cannot leave as a burst
//     beyond what the definition allows.
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

// Pacing returns the spacing between releases at rate (> 0): period is the
// schedule, (1s + guard)/rate, where guard is slack for the delays between
// a release and the SMSC; floor is the hard minimum spacing, 1/rate.
func Pacing(rate int, guard time.Duration) (period, floor time.Duration) {
	return (time.Second + guard) / time.Duration(rate), time.Second / time.Duration(rate)
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
