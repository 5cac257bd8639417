package pgdb

import (
	"context"
	"errors"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// redactingTracer is otelpgx's tracer fed with errors that cannot quote an
// argument: otelpgx puts err.Error() in the span status and an exception
// event, and both PostgreSQL (`invalid input syntax for type bigint:
// "+33 6…"`) and pgx (`unable to encode "+336…" into …`) quote the offending
// value, which may be a phone number.
type redactingTracer struct {
	*otelpgx.Tracer
}

func (t redactingTracer) TraceQueryEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryEndData) {
	data.Err = redact(data.Err)
	t.Tracer.TraceQueryEnd(ctx, conn, data)
}

func (t redactingTracer) TraceBatchQuery(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchQueryData) {
	data.Err = redact(data.Err)
	t.Tracer.TraceBatchQuery(ctx, conn, data)
}

func (t redactingTracer) TraceBatchEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchEndData) {
	data.Err = redact(data.Err)
	t.Tracer.TraceBatchEnd(ctx, conn, data)
}

func (t redactingTracer) TraceCopyFromEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceCopyFromEndData) {
	data.Err = redact(data.Err)
	t.Tracer.TraceCopyFromEnd(ctx, conn, data)
}

func (t redactingTracer) TracePrepareEnd(ctx context.Context, conn *pgx.Conn, data pgx.TracePrepareEndData) {
	data.Err = redact(data.Err)
	t.Tracer.TracePrepareEnd(ctx, conn, data)
}

// Connect and acquire errors hold no arguments: TraceConnectEnd and
// TraceAcquireEnd pass through.

var (
	_ pgx.QueryTracer       = redactingTracer{}
	_ pgx.BatchTracer       = redactingTracer{}
	_ pgx.CopyFromTracer    = redactingTracer{}
	_ pgx.PrepareTracer     = redactingTracer{}
	_ pgx.ConnectTracer     = redactingTracer{}
	_ pgxpool.AcquireTracer = redactingTracer{}
)

// withheldError stands for an error whose text may quote an argument.
type withheldError struct{}

func (withheldError) Error() string { return "error text withheld: it may quote a query argument" }

// redact returns an error safe for a span. A PostgreSQL error keeps its
// SQLSTATE and the names of the objects involved, and its message unless it
// is of class 22 (data exception), whose messages quote the bad value; the
// detail, which quotes rows and keys, is dropped. Context errors pass; any
// other client-side error (encoding, scanning) is withheld, as pgx quotes
// values there too.
func redact(err error) error {
	if err == nil || errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		safe := &pgconn.PgError{
			Severity:            pgErr.Severity,
			Code:                pgErr.Code,
			Message:             pgErr.Message,
			SchemaName:          pgErr.SchemaName,
			TableName:           pgErr.TableName,
			ColumnName:          pgErr.ColumnName,
			DataTypeName:        pgErr.DataTypeName,
			ConstraintName:      pgErr.ConstraintName,
			SeverityUnlocalized: pgErr.SeverityUnlocalized,
		}
		if len(safe.Code) >= 2 && safe.Code[:2] == "22" {
			safe.Message = "data exception (message withheld: it may quote a query argument)"
		}
		return safe
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) || errors.Is(err, pgconn.ErrConnClosed) {
		return err // the connection failed, no value is involved
	}
	return withheldError{}
}
