package throttle

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// MaxRate bounds a configured rate: far above any offer (150 SMS/s), low
// enough that a typo ("360000" for "36000=...") is caught.
const MaxRate = 10000

// ErrRates reports a malformed -rates value.
var ErrRates = errors.New("throttle: bad rates")

// RateSource tells the throughput subscribed for a short code, in submits
// per second. It is asked before every release and every admission, so a
// source whose values change (a KV bucket, later) takes effect without a
// restart. A rate of 0 or less holds the short code: nothing is released.
// Rate is called from many goroutines.
type RateSource interface {
	Rate(shortCode string) int
}

// StaticRates is the RateSource of the flags: one rate for every short
// code, some short codes overridden.
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

// RateTable maps short codes to rates. As a flag.Value it reads and prints
// "36000=20,36001=50".
type RateTable map[string]int

// ParseRates reads "36000=20,36001=50". Spaces around items are ignored; an
// empty string is an empty table.
func ParseRates(s string) (RateTable, error) {
	t := RateTable{}
	if strings.TrimSpace(s) == "" {
		return t, nil
	}
	for item := range strings.SplitSeq(s, ",") {
		code, rate, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return nil, fmt.Errorf("%w: %q: want short_code=rate", ErrRates, item)
		}
		code, rate = strings.TrimSpace(code), strings.TrimSpace(rate)
		if !isShortCode(code) {
			return nil, fmt.Errorf("%w: short code %q: want digits", ErrRates, code)
		}
		if _, dup := t[code]; dup {
			return nil, fmt.Errorf("%w: short code %s given twice", ErrRates, code)
		}
		n, err := strconv.Atoi(rate)
		if err != nil || n < 1 || n > MaxRate {
			return nil, fmt.Errorf("%w: short code %s: rate %q: want 1 to %d", ErrRates, code, rate, MaxRate)
		}
		t[code] = n
	}
	return t, nil
}

// String prints the table sorted by short code, as ParseRates reads it.
func (t RateTable) String() string {
	codes := slices.Sorted(maps.Keys(t))
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = c + "=" + strconv.Itoa(t[c])
	}
	return strings.Join(parts, ",")
}

// Set replaces the table (flag.Value).
func (t *RateTable) Set(s string) error {
	v, err := ParseRates(s)
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// Short codes are the 5-digit numbers of the offer; any length of digits is
// accepted so that a future numbering does not need a code change.
func isShortCode(s string) bool {
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
