package ucp

import (
	"fmt"
	"time"
)

// UCP timestamps carry no zone (ucp.md §3.10): they are the SMSC's local
// time, so every helper takes the SMSC's *time.Location explicitly.

const (
	layoutSCTS = "020106150405" // DDMMYYhhmmss: SCTS, DSCTS, the SCTS in a 51 ACK
	layoutVP   = "0201061504"   // DDMMYYhhmm: VP, DDT, MVP
)

// FormatSCTS formats t as DDMMYYhhmmss in loc.
func FormatSCTS(t time.Time, loc *time.Location) string {
	return t.In(loc).Format(layoutSCTS)
}

// ParseSCTS parses a 12-digit DDMMYYhhmmss timestamp in loc. Two-digit years
// below 90 are 20YY, the others 19YY (the Wireshark rule; spec examples date
// from 1996).
func ParseSCTS(s string, loc *time.Location) (time.Time, error) {
	return parseUCPTime(s, 12, loc)
}

// FormatVP formats t as DDMMYYhhmm in loc (VP, DDT).
func FormatVP(t time.Time, loc *time.Location) string {
	return t.In(loc).Format(layoutVP)
}

// ParseVP parses a 10-digit DDMMYYhhmm time in loc.
func ParseVP(s string, loc *time.Location) (time.Time, error) {
	return parseUCPTime(s, 10, loc)
}

func parseUCPTime(s string, n int, loc *time.Location) (time.Time, error) {
	if len(s) != n {
		return time.Time{}, fmt.Errorf("timestamp of %d digits, want %d: %w", len(s), n, ErrSyntax)
	}
	var v [6]int
	for i := 0; i < n/2; i++ {
		d, ok := parseDigits(s[2*i : 2*i+2])
		if !ok {
			return time.Time{}, fmt.Errorf("timestamp: %w", ErrSyntax)
		}
		v[i] = d
	}
	day, month, yy, hh, mm, ss := v[0], v[1], v[2], v[3], v[4], v[5]
	year := 2000 + yy
	if yy >= 90 {
		year = 1900 + yy
	}
	if month < 1 || month > 12 || day < 1 || hh > 23 || mm > 59 || ss > 59 {
		return time.Time{}, fmt.Errorf("timestamp out of range: %w", ErrSyntax)
	}
	t := time.Date(year, time.Month(month), day, hh, mm, ss, 0, loc)
	if t.Day() != day {
		return time.Time{}, fmt.Errorf("timestamp: no day %d in month %d: %w", day, month, ErrSyntax)
	}
	return t, nil
}
