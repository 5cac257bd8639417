// Package pgdb provides the PostgreSQL connection pool of a service, traced
// with OpenTelemetry, and the migrations of its schema.
package pgdb

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ErrNoURL reports a Config without a database URL.
var ErrNoURL = errors.New("pgdb: no database URL (-database-url)")

// connectWait bounds how long Open waits for a server that is not up yet,
// as when a service starts alongside PostgreSQL.
const connectWait = 30 * time.Second

// Config says which database to use.
type Config struct {
	// URL is a libpq connection string or URL,
	// postgres://user:password@host:5432/db?sslmode=disable. Parameters
	// such as search_path=billing are passed to the server.
	URL string
	// MaxConns caps the pool; 0 keeps pgxpool's default (4 or the CPU count).
	MaxConns int32
}

// RegisterFlags registers -database-url and -database-max-conns.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.URL, "database-url", "", "PostgreSQL connection URL (postgres://user:password@host:5432/db)")
	if c.MaxConns == 0 {
		c.MaxConns = 10
	}
	fs.Var((*int32Value)(&c.MaxConns), "database-max-conns", "maximum number of PostgreSQL connections in the pool")
}

type int32Value int32

func (v *int32Value) String() string { return strconv.Itoa(int(*v)) }

func (v *int32Value) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, 32)
	if err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("negative: %d", n)
	}
	*v = int32Value(n)
	return nil
}

// Open returns a pool for cfg, traced through tp (nil: no tracing). It
// waits up to 30 seconds for a server that refuses connections or is still
// starting, but fails at once on errors that waiting cannot cure, such as a
// bad password or a missing database.
//
// Spans carry the SQL text (which holds placeholders, never values: always
// pass values as arguments), never the arguments, and errors that may quote
// a value are withheld from them; see redact.
func Open(ctx context.Context, cfg Config, tp trace.TracerProvider) (*pgxpool.Pool, error) {
	if cfg.URL == "" {
		return nil, ErrNoURL
	}
	pc, err := pgxpool.ParseConfig(cfg.URL) // its errors mask the password
	if err != nil {
		return nil, fmt.Errorf("pgdb: parse database URL: %w", err)
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	// otelpgx records no query arguments and names spans by operation
	// ("SELECT") unless told otherwise; neither option may be turned on
	// here, as arguments hold phone numbers.
	pc.ConnConfig.Tracer = redactingTracer{otelpgx.NewTracer(otelpgx.WithTracerProvider(tp))}

	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("pgdb: %w", err)
	}
	if err := waitReady(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

func waitReady(ctx context.Context, pool *pgxpool.Pool) error {
	ctx, cancel := context.WithTimeoutCause(ctx, connectWait, fmt.Errorf("server not ready after %v", connectWait))
	defer cancel()
	backoff := 100 * time.Millisecond
	var last error // the server's last answer, not the context's
	for {
		err := pool.Ping(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() == nil {
			if !transient(err) {
				return fmt.Errorf("pgdb: connect: %w", err)
			}
			last = err
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
			backoff = min(2*backoff, 2*time.Second)
		}
		if ctx.Err() != nil {
			if last == nil {
				return fmt.Errorf("pgdb: connect: %w", context.Cause(ctx))
			}
			return fmt.Errorf("pgdb: connect: %w: %w", context.Cause(ctx), last)
		}
	}
}

// transient reports whether a failed connection may succeed later: the
// server is down, starting, shutting down or full, rather than refusing us.
func transient(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return true // network: refused, reset, no route, DNS not there yet
	}
	if len(pgErr.Code) < 2 {
		return false
	}
	switch pgErr.Code[:2] {
	case "57", // operator intervention: cannot_connect_now, admin_shutdown…
		"53": // insufficient resources: too_many_connections…
		return true
	}
	return false
}
