// Package optout keeps who must not receive messages: the STOPs subscribers
// send to short codes and the partners' own suppression lists, each with its
// proof. Opt-outs live in the JetStream key-value bucket OPTOUTS, keyed by
// recipient hash first; every compliance replica holds a copy in memory (an
// Index) fed by a watch of that bucket, so an opt-out recorded anywhere is
// honoured everywhere within a second. The package also reads subscribers'
// MOs for the stop and re-subscribe keywords, and keeps the two facts an MO
// needs: which brand last sent to a number from a short code (LAST_ISSUER)
// and when the subscriber last wrote to it (MO_SESSIONS).
package optout

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"pushsms.io/lib/fault"
	"pushsms.io/lib/numplan"
)

// Scope is whose messages an opt-out stops.
type Scope string

const (
	// ScopeBrand stops every message of one issuer (brand), on every short
	// code and from every partner.
	ScopeBrand Scope = "brand"
	// ScopeShortCode stops every message from one short code: a STOP to a
	// short code no brand had sent to the number from.
	ScopeShortCode Scope = "short_code"
	// ScopePartner stops every message of one partner (tenant): a partner's
	// import without a brand.
	ScopePartner Scope = "partner"
)

// Source is how an opt-out came to be.
type Source string

const (
	// SourceMOStop: the subscriber sent a stop keyword to a short code.
	SourceMOStop Source = "mo_stop"
	// SourcePartnerImport: a partner imported it (SuppressionService).
	SourcePartnerImport Source = "partner_import"
)

// Entry is one opt-out and its proof.
type Entry struct {
	Scope Scope `json:"scope"`
	// Brand is the issuer (scope brand), as first written.
	Brand string `json:"brand,omitempty"`
	// ShortCode is the scope's short code (scope short_code), or the short
	// code an MO STOP was sent to (proof, any scope).
	ShortCode string `json:"short_code,omitempty"`
	// Tenant is the partner (scope partner), or the partner that imported
	// the entry, or the partner of the brand a STOP answered.
	Tenant string    `json:"tenant,omitempty"`
	Source Source    `json:"source"`
	At     time.Time `json:"at"`
	// MOID and Text are the proof of an MO STOP: the MO's id and its text
	// as received.
	MOID string `json:"mo_id,omitempty"`
	Text string `json:"text,omitempty"`
	// Note is a partner's note on an import ("web form 2026-11").
	Note string `json:"note,omitempty"`
}

// Blocks tells whether e stops a message of tenant and brand sent from
// shortCode. Brands are compared trimmed and case-folded, as the frequency
// cap counts them: "Acme" and " ACME" are one issuer to the subscriber.
func (e Entry) Blocks(tenant, brand, shortCode string) bool {
	switch e.Scope {
	case ScopeBrand:
		return e.Brand != "" && sameBrand(e.Brand, brand)
	case ScopeShortCode:
		return e.ShortCode != "" && e.ShortCode == shortCode
	case ScopePartner:
		return e.Tenant != "" && e.Tenant == tenant
	}
	return false
}

// scopeID is the last token of an entry's key: what, within its scope, the
// entry is about.
func (e Entry) scopeID() (string, error) {
	var v string
	switch e.Scope {
	case ScopeBrand:
		v = NormaliseBrand(e.Brand)
	case ScopeShortCode:
		v = e.ShortCode
	case ScopePartner:
		v = e.Tenant
	default:
		return "", fault.Invalidf("scope", "unknown opt-out scope %q", e.Scope)
	}
	if v == "" {
		return "", fault.Invalidf("scope", "a %s opt-out needs its %s", e.Scope, scopeField(e.Scope))
	}
	return shortHash(v), nil
}

func scopeField(s Scope) string {
	switch s {
	case ScopeBrand:
		return "brand"
	case ScopeShortCode:
		return "short code"
	}
	return "tenant"
}

// validate checks what Store writes: a key must be derivable and the proof
// must say where the entry comes from.
func (e Entry) validate() error {
	if _, err := e.scopeID(); err != nil {
		return err
	}
	if e.Source != SourceMOStop && e.Source != SourcePartnerImport {
		return fault.Invalidf("source", "unknown opt-out source %q", e.Source)
	}
	if e.At.IsZero() {
		return fault.Invalidf("at", "an opt-out needs its time")
	}
	return nil
}

// NormaliseBrand is the form brands are compared in: trimmed, lower case
// (the frequency cap's form too).
func NormaliseBrand(brand string) string { return strings.ToLower(strings.TrimSpace(brand)) }

// sameBrand is NormaliseBrand(a) == NormaliseBrand(b) without allocating:
// Index.Blocked runs it for every marketing message.
func sameBrand(a, b string) bool {
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb && unicode.ToLower(ra) != unicode.ToLower(rb) {
			return false
		}
		a, b = a[na:], b[nb:]
	}
	return a == "" && b == ""
}

// shortHash is the first 64 bits of SHA-256(v) in hex: inside the NATS key
// alphabet whatever v is written with, and the same brand hash as the
// FREQUENCY bucket's.
func shortHash(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:8])
}

// Key is the entry's key in bucket OPTOUTS:
// <recipient hash>.<scope>.<hash of the brand, short code or tenant>. The
// recipient comes first so that every entry of a number is one filtered
// read (<hash>.>).
func Key(n numplan.Number, e Entry) (string, error) {
	if n.IsZero() {
		return "", fault.Invalidf("msisdn", "an opt-out needs a number")
	}
	id, err := e.scopeID()
	if err != nil {
		return "", err
	}
	return n.Hash() + "." + string(e.Scope) + "." + id, nil
}

// ErrKey is returned for a key of bucket OPTOUTS that is not
// <32 hex>.<scope>.<id>: written by something else than this package.
var ErrKey = errors.New("optout: malformed key")

// parseKey returns the recipient hash of a key as 16 bytes.
func parseKey(key string) (h [16]byte, err error) {
	hx, rest, ok := strings.Cut(key, ".")
	if !ok || len(hx) != 32 || !strings.Contains(rest, ".") {
		return h, fmt.Errorf("%w: %q", ErrKey, key)
	}
	if _, err := hex.Decode(h[:], []byte(hx)); err != nil {
		return h, fmt.Errorf("%w: %q", ErrKey, key)
	}
	return h, nil
}
