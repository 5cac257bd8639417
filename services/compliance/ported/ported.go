// Package ported provides the ported-numbers table of compliance: the
// operator a French mobile number is on today when it left its ARCEP block
// holder (offer "qualification mechanism": numbering plan plus
// portability; compliance.md §3.3).
//
// The aggregator imports the table from the portability files it receives
// (Server, the admin gRPC PortedNumbersService), into PostgreSQL. Each
// compliance replica keeps the whole table in memory (Table), because the
// network rule runs for every message, and reloads it when an import
// commits.
package ported

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"pushsms.io/lib/numplan"
)

// Schema is the PostgreSQL schema of the table. It is not "compliance":
// tern keeps one version table per schema, so a package with migrations of
// its own needs a schema of its own.
const Schema = "compliance_ported"

// channel is the PostgreSQL notification channel an import commits on; the
// payload is the new version.
const channel = "compliance_ported"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the tern migrations of Schema, for pgdb.Migrate and
// pgtest.Migrated.
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the directory is embedded: cannot happen
	}
	return sub
}

// Errors of an entry. They never quote the number: refusals are logged and
// shown to operators.
var (
	ErrNumber     = errors.New("ported: not a metropolitan French mobile number")
	ErrOperator   = errors.New("ported: not an ARCEP operator code")
	ErrNoOperator = errors.New("ported: no operator (deletion) in a full import")
)

// Entry is one validated line of a portability file.
type Entry struct {
	// Key is the E.164 number as an integer: 33612345678.
	Key uint64
	// Operator is the ARCEP code of the operator serving the number now;
	// "" deletes the entry (incremental imports only).
	Operator string
}

// ParseEntry validates one entry: the number, in any usual French format,
// must be a metropolitan mobile (06/07) or M2M number, and the operator an
// ARCEP operator code ("identifiant CE": FRTE, SFR0, BOUY, FRMO, SRR…),
// upper-cased. An empty operator is a deletion.
func ParseEntry(msisdn, operator string) (Entry, error) {
	n, err := numplan.Parse(msisdn)
	if err != nil {
		return Entry{}, ErrNumber
	}
	if err := n.CheckMobile(true); err != nil {
		return Entry{}, fmt.Errorf("%w (%s)", ErrNumber, n.Class())
	}
	key, ok := keyOf(n)
	if !ok {
		return Entry{}, ErrNumber
	}
	code, err := operatorCode(operator)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Key: key, Operator: code}, nil
}

// operatorCode normalises an ARCEP operator code. The ARCEP list has
// 3-to-5-character codes of upper-case letters and digits (FRTE, SRR,
// 17N), bar two oddities no mobile number is ported to. Only the shape is
// checked: the network rule lets through only the operator's own code, so
// a mistyped code can refuse a number, never send to one off the network.
// Checking against the identifiants CE list would need numplan to ship it.
func operatorCode(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if len(s) < 3 || len(s) > 5 {
		return "", fmt.Errorf("%w: %d characters, want 3 to 5", ErrOperator, len(s))
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		default:
			return "", fmt.Errorf("%w: want letters and digits only", ErrOperator)
		}
	}
	return string(b), nil
}

// keyOf returns the key of a French number: its E.164 digits as an
// integer. E164 is inlined, so the string it builds stays on the stack.
func keyOf(n numplan.Number) (uint64, bool) {
	if n.CountryCode() != "33" {
		return 0, false
	}
	e := n.E164()
	if len(e) < 2 || len(e) > 16 {
		return 0, false
	}
	var k uint64
	for i := 1; i < len(e); i++ {
		c := e[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		k = k*10 + uint64(c-'0')
	}
	return k, true
}
