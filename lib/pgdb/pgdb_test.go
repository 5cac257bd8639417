package pgdb_test

import (
	"embed"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"pushsms.io/lib/pgdb"
	"pushsms.io/lib/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

//go:embed testdata/migrations/*.sql
var testdata embed.FS

func migrations(t *testing.T) fs.FS {
	t.Helper()
	fsys, err := fs.Sub(testdata, "testdata/migrations")
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

func open(t *testing.T, dsn string, tp *sdktrace.TracerProvider) *pgxpool.Pool {
	t.Helper()
	cfg := pgdb.Config{URL: dsn}
	var pool *pgxpool.Pool
	var err error
	if tp == nil {
		// A nil *sdktrace.TracerProvider in the interface would not be nil.
		pool, err = pgdb.Open(t.Context(), cfg, nil)
	} else {
		pool, err = pgdb.Open(t.Context(), cfg, tp)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// checkMigrated checks that schema holds both test migrations, in itself
// and not in public.
func checkMigrated(t *testing.T, pool *pgxpool.Pool, schema string) {
	t.Helper()
	ctx := t.Context()
	var version int
	if err := pool.QueryRow(ctx, "SELECT version FROM "+schema+".schema_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version != 2 {
		t.Errorf("%s.schema_version = %d, want 2", schema, version)
	}
	var rows int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+schema+".schema_version").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("%s.schema_version has %d rows, want 1", schema, rows)
	}
	for _, table := range []string{"message", "receipt", "schema_version"} {
		var got string
		err := pool.QueryRow(ctx, "SELECT table_schema FROM information_schema.tables WHERE table_name = $1", table).Scan(&got)
		if err != nil {
			t.Fatalf("table %s: %v", table, err)
		}
		if got != schema {
			t.Errorf("table %s is in schema %s, want %s", table, got, schema)
		}
	}
	var comment string
	if err := pool.QueryRow(ctx, "SELECT obj_description($1::regnamespace, 'pg_namespace')", schema).Scan(&comment); err != nil {
		t.Fatal(err)
	}
	if comment != "pgdb test" {
		t.Errorf("schema comment = %q, want the one {{.schema}} names", comment)
	}
}

func TestMigrateTwice(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	pool := open(t, db.URL, nil)
	for i := range 2 {
		if err := pgdb.Migrate(t.Context(), pool, "billing", migrations(t)); err != nil {
			t.Fatalf("Migrate #%d: %v", i+1, err)
		}
	}
	checkMigrated(t, pool, "billing")
}

// TestMigrateConcurrently is replicas starting at once.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	pool := open(t, db.URL, nil)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			// Two schemas, two replicas each.
			schema := []string{"billing", "ingest"}[i%2]
			errs[i] = pgdb.Migrate(t.Context(), pool, schema, migrations(t))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate #%d: %v", i, err)
		}
	}
	if t.Failed() {
		return
	}
	var version int
	for _, schema := range []string{"billing", "ingest"} {
		if err := pool.QueryRow(t.Context(), "SELECT version FROM "+schema+".schema_version").Scan(&version); err != nil {
			t.Fatal(err)
		}
		if version != 2 {
			t.Errorf("%s.schema_version = %d, want 2", schema, version)
		}
	}
}

func TestMigrateBadSchema(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	for _, schema := range []string{"", "Billing", "bill-ing", `x"; DROP`, "1st", strings.Repeat("a", 64)} {
		err := pgdb.Migrate(t.Context(), db.Pool, schema, migrations(t))
		if !errors.Is(err, pgdb.ErrSchemaName) {
			t.Errorf("Migrate(%q): got %v, want ErrSchemaName", schema, err)
		}
	}
}

func TestMigrateBrokenMigration(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	broken := fstest.MapFS{"001_broken.sql": {Data: []byte("CREATE TABLE t (;")}}
	err := pgdb.Migrate(t.Context(), db.Pool, "svc", broken)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42601" {
		t.Errorf("got %v, want a syntax error (42601)", err)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	pool, err := pgdb.Open(t.Context(), pgdb.Config{URL: db.URL, MaxConns: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if got := pool.Config().MaxConns; got != 3 {
		t.Errorf("MaxConns = %d, want 3", got)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	missing := strings.Replace(db.URL, "/"+db.Name, "/no_such_db", 1)
	tests := []struct {
		name string
		url  string
		code string // SQLSTATE, "" for a client-side error
	}{
		{"no url", "", ""},
		{"bad url", "postgres://u:secret@host:notaport/db", ""},
		// Waiting cannot make a database appear: Open must fail at once
		// rather than after its connect wait.
		{"no database", missing, "3D000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := pgdb.Open(t.Context(), pgdb.Config{URL: tt.url}, nil)
			if err == nil {
				pool.Close()
				t.Fatal("got no error")
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows the password", err)
			}
			if tt.url == "" && !errors.Is(err, pgdb.ErrNoURL) {
				t.Errorf("got %v, want ErrNoURL", err)
			}
			var pgErr *pgconn.PgError
			if tt.code != "" && (!errors.As(err, &pgErr) || pgErr.Code != tt.code) {
				t.Errorf("got %v, want SQLSTATE %s", err, tt.code)
			}
		})
	}
}

// TestOpenWaitsForServer has Open meet a server that is not up yet, as when
// a service starts before PostgreSQL: connections are dropped until Open
// has been turned away once, then passed to the real server.
func TestOpenWaitsForServer(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	u, err := url.Parse(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	server := u.Host
	var up atomic.Bool
	turnedAway := make(chan struct{}, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if !up.Load() {
				c.Close()
				select {
				case turnedAway <- struct{}{}:
				default:
				}
				continue
			}
			go pipe(c, server)
		}
	}()

	u.Host = l.Addr().String()
	type result struct {
		pool *pgxpool.Pool
		err  error
	}
	done := make(chan result, 1)
	go func() {
		p, err := pgdb.Open(t.Context(), pgdb.Config{URL: u.String()}, nil)
		done <- result{p, err}
	}()
	select {
	case <-turnedAway:
	case r := <-done:
		t.Fatalf("Open before the server was up: got %v, %v; want it to wait", r.pool, r.err)
	}
	up.Store(true)
	r := <-done
	if r.err != nil {
		t.Fatalf("Open: %v", r.err)
	}
	defer r.pool.Close()
	var one int
	if err := r.pool.QueryRow(t.Context(), "SELECT 1").Scan(&one); err != nil {
		t.Errorf("query through %s to %s: %v", u.Host, server, err)
	}
}

func pipe(c net.Conn, to string) {
	defer c.Close()
	s, err := net.Dial("tcp", to)
	if err != nil {
		return
	}
	defer s.Close()
	go io.Copy(s, c)
	io.Copy(c, s)
}

// TestSpansHoldNoPhoneNumber runs queries whose argument is a phone number,
// some failing on it, and checks that no span records it.
func TestSpansHoldNoPhoneNumber(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	pool := open(t, db.URL, tp)
	ctx, span := tp.Tracer("test").Start(t.Context(), "test")

	const phone = "+33 6 12 34 56 78"
	const digits = "12 34 56"
	if _, err := pool.Exec(ctx, "CREATE TABLE m (msisdn text UNIQUE, n int)"); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "INSERT INTO m (msisdn) VALUES ($1)", phone); err != nil {
		t.Fatal(err)
	}
	failing := []struct {
		sql  string
		args []any
	}{
		{"INSERT INTO m (msisdn) VALUES ($1)", []any{phone}},                // 23505, key in the detail
		{"SELECT $1::bigint", []any{phone}},                                 // 22P02 quotes the value
		{"INSERT INTO m (n) VALUES ($1)", []any{struct{ P string }{phone}}}, // pgx cannot encode, quotes it
	}
	for _, f := range failing {
		_, err := pool.Exec(ctx, f.sql, f.args...)
		if err == nil {
			t.Fatalf("%s: got no error", f.sql)
		}
		if !strings.Contains(err.Error(), digits) && !strings.Contains(err.Error(), "+33") {
			t.Logf("%s: the error itself does not quote the number: %v", f.sql, err)
		}
	}
	var got string
	if err := pool.QueryRow(ctx, "SELECT msisdn FROM m WHERE msisdn = $1", phone).Scan(&got); err != nil {
		t.Fatal(err)
	}
	span.End()

	spans := rec.Ended()
	if len(spans) < 5 {
		t.Fatalf("got %d spans, want one per query", len(spans))
	}
	leaks := func(s string) bool { return strings.Contains(s, digits) || strings.Contains(s, "612345678") }
	var withError int
	for _, s := range spans {
		if leaks(s.Name()) {
			t.Errorf("span name %q holds the phone number", s.Name())
		}
		for _, a := range s.Attributes() {
			if leaks(a.Value.Emit()) {
				t.Errorf("span %s: attribute %s = %q holds the phone number", s.Name(), a.Key, a.Value.Emit())
			}
		}
		for _, e := range s.Events() {
			for _, a := range e.Attributes {
				if leaks(a.Value.Emit()) {
					t.Errorf("span %s: event %s: %s = %q holds the phone number", s.Name(), e.Name, a.Key, a.Value.Emit())
				}
			}
		}
		if leaks(s.Status().Description) {
			t.Errorf("span %s: status %q holds the phone number", s.Name(), s.Status().Description)
		}
		if s.Status().Description != "" {
			withError++
		}
	}
	if withError < len(failing) {
		t.Errorf("got %d spans with an error, want at least %d", withError, len(failing))
	}
}
