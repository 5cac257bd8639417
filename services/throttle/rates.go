package throttle

import (
	"pushsms.io/lib/rate"
)

// MaxRate bounds a configured rate: lib/rate's bound, the same for the
// flags, the SHORT_CODES bucket and smsc-link's guard.
const MaxRate = rate.MaxRate

// ErrRates reports a malformed -rates value.
var ErrRates = rate.ErrRate

// RateSource tells the throughput subscribed for a short code, in submits
// per second. It is asked before every release and every admission, so a
// source whose values change (rate.Table, which follows the SHORT_CODES
// bucket) takes effect from the next release, without a restart. A rate of
// 0 or less holds the short code: nothing is released. Rate is called from
// many goroutines.
type RateSource interface {
	Rate(shortCode string) int
}

var _ RateSource = (*rate.Table)(nil)

// StaticRates is a fixed RateSource: one rate for every short code, some
// short codes overridden (tests, and the flags' values before the bucket
// is read).
type StaticRates struct {
	Default   int
	Overrides RateTable
}

// Rate returns the override of shortCode, else the default.
func (r StaticRates) Rate(shortCode string) int {
	if v, ok := r.Overrides[shortCode]; ok {
		return v
	}
	return r.Default
}

// RateTable maps short codes to rates: the -rates flag, "36000=20,36001=50"
// (lib/rate reads it, so that smsc-link reads the same flag the same way).
type RateTable = rate.Overrides

// ParseRates reads "36000=20,36001=50". Spaces around items are ignored; an
// empty string is an empty table.
func ParseRates(s string) (RateTable, error) { return rate.ParseOverrides(s) }

func isShortCode(s string) bool { return rate.ValidShortCode(s) }
