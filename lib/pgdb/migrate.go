package pgdb

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"
)

// ErrSchemaName reports a schema name that Migrate does not accept.
var ErrSchemaName = errors.New("pgdb: schema name must be a lower-case identifier ([a-z_][a-z0-9_]*)")

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Migrate brings schema up to date with migrations, tern migration files
// (001_create_ledger.sql, 002_…) at the root of the file system: for an
// embed.FS holding migrations/*.sql, pass fs.Sub(fsys, "migrations").
//
// The schema is created if need be, and its version is kept in
// <schema>.schema_version. Migrations run with search_path set to the
// schema, then public, so they create unqualified objects in the schema;
// the schema name is also available to them as {{.schema}}.
//
// Replicas starting together may all call Migrate: an advisory lock per
// schema lets one migrate while the others wait, then find nothing to do.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string, migrations fs.FS) error {
	if !schemaName.MatchString(schema) {
		return fmt.Errorf("%w: %q", ErrSchemaName, schema)
	}
	// A connection of its own, not one from the pool, because tern runs
	// RESET ALL after each migration: a search_path given at connection
	// start survives that, a SET would not.
	cc := pool.Config().ConnConfig
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = map[string]string{}
	}
	cc.RuntimeParams["search_path"] = schema + ", public"
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return fmt.Errorf("pgdb: migrate %s: %w", schema, err)
	}
	// Closing also releases the advisory lock, whatever happened.
	defer conn.Close(context.WithoutCancel(ctx))

	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey(schema)); err != nil {
		return fmt.Errorf("pgdb: migrate %s: lock: %w", schema, err)
	}
	// Concurrent CREATE SCHEMA IF NOT EXISTS can fail on a unique index, so
	// it too waits for the lock.
	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return fmt.Errorf("pgdb: migrate %s: create schema: %w", schema, err)
	}
	m, err := migrate.NewMigrator(ctx, conn, schema+".schema_version")
	if err != nil {
		return fmt.Errorf("pgdb: migrate %s: %w", schema, err)
	}
	m.Data["schema"] = schema
	if err := m.LoadMigrations(migrations); err != nil {
		return fmt.Errorf("pgdb: migrate %s: load: %w", schema, err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("pgdb: migrate %s: %w", schema, err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", lockKey(schema)); err != nil {
		return fmt.Errorf("pgdb: migrate %s: unlock: %w", schema, err)
	}
	return nil
}

// lockKey is the advisory lock of one schema's migrations. tern holds one
// lock for all schemas while it runs; this one also covers CREATE SCHEMA.
func lockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("pushsms.io/lib/pgdb.Migrate " + schema))
	return int64(h.Sum64())
}
