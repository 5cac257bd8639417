// Package numplan provides French telephone numbering: it normalises the
// ways people write French numbers to E.164, classifies the result
// (metropolitan mobile, M2M, overseas, routing prefix, other French,
// foreign) and, with a Plan, names the ARCEP block holder.
//
// Numbers are personal data. A Number prints masked (String, GoString,
// LogValue, Masked); only E164 returns it in clear, and no error from this
// package contains the digits.
package numplan

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"unicode/utf8"
)

// Sentinel errors. Parse returns only ErrInvalid; CheckMobile returns the
// others, one per Class, so a caller can map each to its own reject reason.
var (
	ErrInvalid       = errors.New("numplan: not a valid phone number")
	ErrNotFrench     = errors.New("numplan: not a French number")
	ErrNotMobile     = errors.New("numplan: not a mobile number")
	ErrOverseas      = errors.New("numplan: overseas French number")
	ErrM2M           = errors.New("numplan: M2M number")
	ErrRoutingPrefix = errors.New("numplan: portability routing prefix")
)

// Class is what kind of number a Number is.
type Class int

// The classes. Unknown is the class of the zero Number.
const (
	Unknown Class = iota
	// Mobile is a metropolitan 06/07 10-digit mobile number (compliance.md
	// §1.2): +33 6 except 600, 639, 690–694, 696, 697; +33 73–79.
	Mobile
	// M2M is a metropolitan extended-length machine-to-machine number,
	// national 0700 0… on 14 digits, +33 7000… on 13 NSN digits (§1.4).
	M2M
	// Overseas is a number of Guadeloupe/St-Martin/St-Barthélemy (+590),
	// Guyane (+594), Martinique (+596), La Réunion and Mayotte (+262) or
	// Saint-Pierre-et-Miquelon (+508), mobile or not, M2M included (§1.3).
	Overseas
	// RoutingPrefix is a mobile-portability routing prefix, never a
	// subscriber: 0600x, 0509–0515, 0526–0530, 05230–05234, 070846–070849
	// (§1.5).
	RoutingPrefix
	// NonMobile is any other French number: geographic 01–05, special 08,
	// 09 (VoIP, platforms).
	NonMobile
	// Foreign is a number under a country code that is not French.
	Foreign
)

func (c Class) String() string {
	switch c {
	case Unknown:
		return "unknown"
	case Mobile:
		return "mobile"
	case M2M:
		return "m2m"
	case Overseas:
		return "overseas"
	case RoutingPrefix:
		return "routing-prefix"
	case NonMobile:
		return "non-mobile"
	case Foreign:
		return "foreign"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// Number is a parsed phone number. The zero Number is not a number (Class
// Unknown). Numbers are comparable: two Numbers are equal when their E.164
// forms are.
type Number struct {
	cc    string // French country code; "" for Foreign
	nsn   string // national significant number; every digit for Foreign
	class Class
}

// E164 returns the number in clear as "+" and digits. It is the only way to
// get the digits out; do not log it.
func (n Number) E164() string {
	if n.class == Unknown {
		return ""
	}
	return "+" + n.cc + n.nsn
}

// CountryCode returns the country code ("33", "262", "508", "590", "594",
// "596"), or "" for a Foreign or zero Number.
func (n Number) CountryCode() string { return n.cc }

// Class returns the class of the number.
func (n Number) Class() Class { return n.class }

// IsZero reports whether n is the zero Number.
func (n Number) IsZero() bool { return n.class == Unknown }

// CheckMobile reports whether n is a metropolitan mobile subscriber that may
// receive SMS: nil for Mobile, nil for M2M when allowM2M (the caller knows
// whether the traffic is machine traffic), else the sentinel for the class.
func (n Number) CheckMobile(allowM2M bool) error {
	switch n.class {
	case Mobile:
		return nil
	case M2M:
		if allowM2M {
			return nil
		}
		return ErrM2M
	case Overseas:
		return ErrOverseas
	case RoutingPrefix:
		return ErrRoutingPrefix
	case NonMobile:
		return ErrNotMobile
	case Foreign:
		return ErrNotFrench
	}
	return ErrInvalid
}

const mask = "•"

// String returns a masked form for logs: country code, first NSN digit,
// last two digits ("+336••••••78"). Foreign numbers keep their first two and
// last two digits.
func (n Number) String() string {
	if n.class == Unknown {
		return "<none>"
	}
	head, body := n.cc+n.nsn[:1], n.nsn[1:]
	if n.cc == "" {
		head, body = n.nsn[:2], n.nsn[2:]
	}
	if len(body) <= 2 {
		return "+" + head + strings.Repeat(mask, len(body))
	}
	return "+" + head + strings.Repeat(mask, len(body)-2) + body[len(body)-2:]
}

// GoString masks too, so that %#v does not print the digits.
func (n Number) GoString() string { return "numplan.Number(" + n.String() + ")" }

// LogValue makes slog print the masked form.
func (n Number) LogValue() slog.Value { return slog.StringValue(n.String()) }

// Masked returns the grouped, masked form shown to partners:
// "+33 6 12 •• •• 78". The first digit and first pair stay, as does the
// last pair; every digit between is masked. Foreign numbers use String.
func (n Number) Masked() string {
	if n.class == Unknown || n.cc == "" {
		return n.String()
	}
	rest := n.nsn[1:]
	var groups []string
	for len(rest) > 0 {
		k := min(2, len(rest))
		groups = append(groups, rest[:k])
		rest = rest[k:]
	}
	for i := 1; i < len(groups)-1; i++ {
		groups[i] = strings.Repeat(mask, len(groups[i]))
	}
	if len(groups) == 1 {
		groups[0] = strings.Repeat(mask, len(groups[0]))
	}
	return "+" + n.cc + " " + n.nsn[:1] + " " + strings.Join(groups, " ")
}

// hashLen is the length in bytes of Hash and KeyedHash before hex: 128 bits
// keeps collisions out of reach for any subscriber base.
const hashLen = 16

// Hash returns a correlation key: the first 128 bits of SHA-256(E164), in
// hex. It is pseudonymous, not anonymous: French mobile numbers are few
// enough to brute-force, so treat it as personal data and prefer KeyedHash
// for anything stored or shared.
func (n Number) Hash() string {
	sum := sha256.Sum256([]byte(n.E164()))
	return hex.EncodeToString(sum[:hashLen])
}

// KeyedHash returns the first 128 bits of HMAC-SHA256(key, E164) in hex: a
// correlation key that cannot be reversed without the key.
func (n Number) KeyedHash(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(n.E164()))
	return hex.EncodeToString(m.Sum(nil)[:hashLen])
}

// maxInput bounds the work done on outside input; a formatted number with
// every separator allowed stays well below it.
const maxInput = 64

// Parse normalises a French-style phone number to E.164 and classifies it
// (compliance.md §1.6). It accepts, with spaces, dots, dashes, slashes,
// parentheses, NBSP and narrow NBSP anywhere:
//
//	06 12 34 56 78           national (07… and overseas 0690…, 0262… too)
//	+33 6 12 34 56 78        E.164
//	+33 (0)6 12 34 56 78     "(0)" after a country code is dropped
//	+33 0612345678           trunk 0 after a country code is dropped
//	0033 6…, 0033 (0)6…      international prefix 00
//	33612345678              country code without "+" (CSV exports), also
//	                         330612345678 and 262/508/590/594/596 + 9 digits
//	07 00 00 00 00 00 00     14-digit M2M; 0700[5-9] on 13 digits overseas M2M
//
// Nine bare digits ("612345678", a CSV that lost its 0) are rejected, not
// guessed: prefixing 0 is the caller's decision.
//
// Overseas numbers get their own country code, whether written nationally
// or wrongly under +33: "0690 12 34 56" and "+33 6 90 12 34 56" both become
// +590690123456 with Class Overseas. A number under a non-French country
// code parses with Class Foreign if it has 7 to 15 digits.
//
// Parse fails only with an error wrapping ErrInvalid; whether the number may
// be used is CheckMobile's business.
func Parse(input string) (Number, error) {
	if len(input) > maxInput {
		return Number{}, fmt.Errorf("parse: longer than %d bytes: %w", maxInput, ErrInvalid)
	}
	s, err := clean(input)
	if err != nil {
		return Number{}, err
	}
	switch {
	case strings.HasPrefix(s, "+"):
		return international(s[1:])
	case strings.HasPrefix(s, "00"):
		return international(s[2:])
	case strings.HasPrefix(s, "0"):
		return national(s)
	case len(s) == 9:
		return Number{}, fmt.Errorf("parse: 9 digits without trunk 0 or country code: %w", ErrInvalid)
	}
	// Country code without "+": accept only French shapes, since bare
	// foreign numbers cannot be told from garbage.
	if strings.HasPrefix(s, "33") {
		return french33(s[2:])
	}
	if cc := overseasPrefix(s); cc != "" && len(s) == len(cc)+9 {
		return overseas(cc, s[len(cc):])
	}
	return Number{}, fmt.Errorf("parse: %d digits without trunk 0 or country code: %w", len(s), ErrInvalid)
}

// clean strips separators and a "(0)" that follows a country code, leaving
// an optional leading "+" and digits.
func clean(input string) (string, error) {
	var b strings.Builder
	b.Grow(len(input))
	for i := 0; i < len(input); {
		r, size := utf8.DecodeRuneInString(input[i:])
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+':
			if b.Len() != 0 {
				return "", fmt.Errorf("parse: '+' after digits: %w", ErrInvalid)
			}
			b.WriteRune(r)
		case r == '(' && strings.HasPrefix(input[i:], "(0)") && afterCountryCode(b.String()):
			// The trunk prefix written for national callers: +33 (0)6….
			size = len("(0)")
		case r == '(', r == ')', r == ' ', r == '.', r == '-', r == '/', r == '\t',
			r == '\u00a0', r == '\u202f', r == '\u2009', r == '\u2007', r == '\u2010', r == '\u2011':
		default:
			return "", fmt.Errorf("parse: unexpected character %q: %w", r, ErrInvalid)
		}
		i += size
	}
	s := b.String()
	if s == "" || s == "+" {
		return "", fmt.Errorf("parse: no digits: %w", ErrInvalid)
	}
	return s, nil
}

// afterCountryCode reports whether s, the cleaned input so far, is a
// country code: "+33", "0033", "33".
func afterCountryCode(s string) bool {
	switch {
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	case strings.HasPrefix(s, "00"):
		s = s[2:]
	}
	return len(s) >= 1 && len(s) <= 3 && s[0] != '0'
}
