// Package fault gives errors a kind, so that libraries and services decide
// what went wrong and one place per transport decides how to say it: rpc maps
// kinds to gRPC status codes, bus maps them to JetStream acks.
package fault

import (
	"errors"
	"fmt"
	"strings"
)

// Kinds of failure. Wrap them: fmt.Errorf("campaign %s: %w", id, fault.ErrNotFound).
var (
	ErrNotFound        = errors.New("not found")
	ErrExists          = errors.New("already exists")
	ErrDenied          = errors.New("permission denied")
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrExhausted       = errors.New("resource exhausted")
	ErrUnavailable     = errors.New("unavailable")
	// ErrPermanent marks a failure that retrying cannot fix: a bus consumer
	// terminates the message instead of redelivering it.
	ErrPermanent = errors.New("permanent failure")
)

// Violation is one bad field of a request.
type Violation struct {
	Field       string
	Description string
}

// InvalidError is bad input, with the fields at fault. It is permanent.
type InvalidError struct {
	Violations []Violation
}

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = v.Field + ": " + v.Description
	}
	return "invalid argument: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrPermanent) true for bad input.
func (e *InvalidError) Is(target error) bool { return target == ErrPermanent }

// PreconditionError is a request the system's state refuses (e.g. a prepaid
// credit too low): retrying it as is cannot succeed until that state
// changes, so it is permanent. Type, Subject and Description say which
// precondition failed; Reason and Metadata are for programs (an upper-case
// reason, figures by name).
type PreconditionError struct {
	Type, Subject, Description string
	Reason                     string
	Metadata                   map[string]string
	// Message is the error's text.
	Message string
}

func (e *PreconditionError) Error() string { return e.Message }

// Is makes errors.Is(err, ErrPermanent) true.
func (e *PreconditionError) Is(target error) bool { return target == ErrPermanent }

// Invalid reports that field is wrong because of err.
func Invalid(field string, err error) error {
	return &InvalidError{Violations: []Violation{{Field: field, Description: err.Error()}}}
}

// Invalidf reports that field is wrong, with a formatted description.
func Invalidf(field, format string, args ...any) error {
	return &InvalidError{Violations: []Violation{{Field: field, Description: fmt.Sprintf(format, args...)}}}
}

// Join merges the violations of several Invalid errors into one, ignoring
// nils. It returns nil when there is nothing to report, and the first
// non-Invalid error as is.
func Join(errs ...error) error {
	var out InvalidError
	for _, err := range errs {
		if err == nil {
			continue
		}
		var ie *InvalidError
		if !errors.As(err, &ie) {
			return err
		}
		out.Violations = append(out.Violations, ie.Violations...)
	}
	if len(out.Violations) == 0 {
		return nil
	}
	return &out
}

// Permanent marks err as not worth retrying.
func Permanent(err error) error {
	if err == nil || errors.Is(err, ErrPermanent) {
		return err
	}
	return permanent{err}
}

type permanent struct{ error }

func (p permanent) Unwrap() []error { return []error{p.error, ErrPermanent} }

// IsPermanent tells whether retrying err is pointless.
func IsPermanent(err error) bool { return errors.Is(err, ErrPermanent) }
