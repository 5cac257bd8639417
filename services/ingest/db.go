package ingest

import (
	"context"
	"errors"
	"fmt"
	"google.golang.org/protobuf/reflect/protoreflect"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"pushsms.io/lib/fault"
)

// querier is what both a pool and a transaction offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// errDatabase is what a partner is told when the database cannot answer;
// the cause stays in the wrapped error for the logs.
var errDatabase = errors.New("database unavailable")

// dbErr gives a database error its kind: a server that is down, busy or
// restarting, a lost connection, a deadlock or a serialization failure is
// Unavailable (the client may retry); anything else is Internal (a bug).
func dbErr(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			strings.HasPrefix(pgErr.Code, "40"), // transaction rollback
			strings.HasPrefix(pgErr.Code, "53"), // insufficient resources
			strings.HasPrefix(pgErr.Code, "57"): // operator intervention
			return &unavailableError{what: what, cause: err}
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	// Not an answer of the server: the connection failed.
	return &unavailableError{what: what, cause: err}
}

// unavailableError says "<what>: database unavailable" and keeps its cause
// out of the text (which lib/rpc sends to the client) but in the chain.
type unavailableError struct {
	what  string
	cause error
}

func (e *unavailableError) Error() string   { return e.what + ": " + errDatabase.Error() }
func (e *unavailableError) Unwrap() []error { return []error{e.cause, fault.ErrUnavailable} }

// isUniqueViolation reports a duplicate key.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// Enum columns hold the lower-case proto value name without the enum's
// prefix (the zero value's name less UNSPECIFIED): MESSAGE_STATE_QUEUED is
// 'queued'.
type protoEnum interface {
	~int32
	String() string
	Descriptor() protoreflect.EnumDescriptor
}

func enumPrefix(d protoreflect.EnumDescriptor) string {
	return strings.TrimSuffix(string(d.Values().ByNumber(0).Name()), "UNSPECIFIED")
}

func enumText[E protoEnum](e E) string {
	return strings.ToLower(strings.TrimPrefix(e.String(), enumPrefix(e.Descriptor())))
}

// parseEnum reads a column written by enumText; an unknown text is the
// zero (unspecified) value.
func parseEnum[E protoEnum](s string) E {
	var zero E
	d := zero.Descriptor()
	if v := d.Values().ByName(protoreflect.Name(enumPrefix(d) + strings.ToUpper(s))); v != nil {
		return E(v.Number())
	}
	return zero
}
