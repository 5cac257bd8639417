package rate

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Overrides maps short codes to rates: the -rates flag. As a flag.Value it
// reads and prints "36000=20,36001=50".
type Overrides map[string]int

// ParseOverrides reads "36000=20,36001=50". Spaces around items are
// ignored; an empty string is an empty table. Each rate is 1 to MaxRate (a
// short code is held through the bucket, not the flags).
func ParseOverrides(s string) (Overrides, error) {
	t := Overrides{}
	if strings.TrimSpace(s) == "" {
		return t, nil
	}
	for item := range strings.SplitSeq(s, ",") {
		code, r, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return nil, fmt.Errorf("%w: %q: want short_code=rate", ErrRate, item)
		}
		code, r = strings.TrimSpace(code), strings.TrimSpace(r)
		if !ValidShortCode(code) {
			return nil, fmt.Errorf("%w: short code %q: want digits", ErrRate, code)
		}
		if _, dup := t[code]; dup {
			return nil, fmt.Errorf("%w: short code %s given twice", ErrRate, code)
		}
		n, err := strconv.Atoi(r)
		if err != nil || n < 1 || n > MaxRate {
			return nil, fmt.Errorf("%w: short code %s: rate %q: want 1 to %d", ErrRate, code, r, MaxRate)
		}
		t[code] = n
	}
	return t, nil
}

// String prints the table sorted by short code, as ParseOverrides reads it.
func (t Overrides) String() string {
	codes := slices.Sorted(maps.Keys(t))
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = c + "=" + strconv.Itoa(t[c])
	}
	return strings.Join(parts, ",")
}

// Set replaces the table (flag.Value).
func (t *Overrides) Set(s string) error {
	v, err := ParseOverrides(s)
	if err != nil {
		return err
	}
	*t = v
	return nil
}
