package ported

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrLine reports a line of a portability file that is not
// "msisdn,operator".
var ErrLine = errors.New("ported: malformed line")

// maxLine bounds a line: a formatted number and an operator code fit in
// far less.
const maxLine = 256

// ParseLine reads one line of a portability file:
//
//	msisdn,operator
//
// The separator is ',' or ';' (French spreadsheets export ';'); fields may
// be double-quoted and are trimmed. Blank lines and lines starting with
// '#' are skipped (ok false). The operator may be empty, which deletes the
// number in an incremental import. ParseLine checks the syntax only:
// ParseEntry judges the number and the code. Its errors never quote the
// line, which holds a phone number.
func ParseLine(line string) (msisdn, operator string, ok bool, err error) {
	line = strings.TrimSpace(strings.TrimPrefix(line, "\ufeff"))
	if line == "" || line[0] == '#' {
		return "", "", false, nil
	}
	if len(line) > maxLine {
		return "", "", false, fmt.Errorf("%w: longer than %d bytes", ErrLine, maxLine)
	}
	sep := ","
	if !strings.Contains(line, ",") {
		sep = ";"
	}
	fields := strings.Split(line, sep)
	switch len(fields) {
	case 1:
		return "", "", false, fmt.Errorf("%w: want msisdn%soperator", ErrLine, sep)
	case 2:
	default:
		return "", "", false, fmt.Errorf("%w: %d fields, want 2", ErrLine, len(fields))
	}
	for i, f := range fields {
		f = strings.TrimSpace(f)
		if len(f) >= 2 && f[0] == '"' && f[len(f)-1] == '"' {
			f = strings.TrimSpace(f[1 : len(f)-1])
		}
		if strings.ContainsRune(f, '"') {
			return "", "", false, fmt.Errorf("%w: stray quote in field %d", ErrLine, i+1)
		}
		fields[i] = f
	}
	if fields[0] == "" {
		return "", "", false, fmt.Errorf("%w: empty msisdn", ErrLine)
	}
	return fields[0], fields[1], true, nil
}

// isHeader reports whether the first data line of a file is a header: its
// first field has no digit, so it cannot be a number ("msisdn", "numero").
func isHeader(msisdn string) bool {
	return !strings.ContainsAny(msisdn, "0123456789")
}

// Record is one data line of a portability file.
type Record struct {
	// Line is the 1-based line number in the file.
	Line             int
	MSISDN, Operator string
}

// Reader reads the data lines of a portability file: an optional header
// line, comments and blank lines are skipped.
type Reader struct {
	sc     *bufio.Scanner
	line   int
	header bool // the first data line is still to come
}

// NewReader reads a portability file from r.
func NewReader(r io.Reader) *Reader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	return &Reader{sc: sc, header: true}
}

// Next returns the next data line, io.EOF at the end. A malformed line
// gives an error wrapping ErrLine, with the Record's Line saying which;
// reading may go on after it.
func (r *Reader) Next() (Record, error) {
	for r.sc.Scan() {
		r.line++
		m, op, ok, err := ParseLine(r.sc.Text())
		if err != nil {
			r.header = false
			return Record{Line: r.line}, err
		}
		if !ok {
			continue
		}
		if r.header {
			r.header = false
			if isHeader(m) {
				continue
			}
		}
		return Record{Line: r.line, MSISDN: m, Operator: op}, nil
	}
	if err := r.sc.Err(); err != nil {
		return Record{}, fmt.Errorf("line %d: %w", r.line+1, err)
	}
	return Record{}, io.EOF
}
