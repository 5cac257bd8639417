// Package pgtest gives each test a database of its own on a throwaway
// PostgreSQL server.
//
// The server is started on first use, once per test binary, and stopped
// when the tests end, which is why a package using pgtest must have
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// When TEST_DATABASE_URL (postgres://user:password@host:5432/db) is set, its
// server is used instead; its role needs CREATEDB. Otherwise pgtest runs the PostgreSQL server binaries of the
// machine on a temporary directory; without them, tests skip, or fail when
// the CI variable is set, saying what to install.
//
// Each New creates a fresh database, cloned from a template database that
// is set up (migrated) once per test binary, so a test starts from a known
// state in milliseconds however long the migrations take.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"pushsms.io/lib/pgcluster"
	"pushsms.io/lib/pgdb"
)

// DB is a database of one test, dropped when the test ends.
type DB struct {
	// Name is the database name.
	Name string
	// URL connects to the database, as a service's Config wants it.
	URL string
	// Pool is a pool on the database for the test's own queries; it is
	// closed when the test ends.
	Pool *pgxpool.Pool
}

// Template prepares the databases of New. Its Setup runs once per test
// binary, on the template database; every New given the same Name clones
// the result, so one Name must always come with the same Setup.
type Template struct {
	Name  string
	Setup func(ctx context.Context, pool *pgxpool.Pool) error
}

// Migrated is the Template of databases holding schema migrated by
// pgdb.Migrate.
func Migrated(schema string, migrations fs.FS) Template {
	return Template{
		Name: "pgdb.Migrate " + schema,
		Setup: func(ctx context.Context, pool *pgxpool.Pool) error {
			return pgdb.Migrate(ctx, pool, schema, migrations)
		},
	}
}

// server is the PostgreSQL server of this test binary. It has to be
// package state: one server for all the tests of the binary is the point.
var server = struct {
	mu        sync.Mutex
	main      bool // Main runs the tests
	started   bool
	err       error
	tmpDir    string // the cluster's, "" with TEST_DATABASE_URL
	cluster   *pgcluster.Cluster
	base      string // URL of the maintenance database
	admin     *pgxpool.Pool
	version   int    // server_version_num
	tag       string // makes database names unique to this binary
	n         int
	templates map[string]*templateDB
}{templates: map[string]*templateDB{}}

type templateDB struct {
	done chan struct{}
	name string
	err  error
}

// Main runs the tests, then stops the server if one was started.
func Main(m *testing.M) {
	server.mu.Lock()
	server.main = true
	server.mu.Unlock()
	code := m.Run()
	if err := shutdown(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// New returns a fresh database for t, cloned from the template made by
// templates (their Setups in turn), or empty without any.
func New(t testing.TB, templates ...Template) *DB {
	t.Helper()
	if err := start(); err != nil {
		if errors.Is(err, pgcluster.ErrNotFound) {
			NeedServer(t)
		}
		t.Fatal(err)
	}
	ctx := t.Context()

	from := ""
	if len(templates) > 0 {
		var err error
		if from, err = templateFor(ctx, templates); err != nil {
			t.Fatal(err)
		}
	}

	name := nextName("test")
	create := "CREATE DATABASE " + ident(name)
	if from != "" {
		create += " TEMPLATE " + ident(from)
	}
	if _, err := server.admin.Exec(ctx, create); err != nil {
		t.Fatalf("pgtest: %s: %v", create, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := drop(ctx, name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})

	u := urlFor(server.base, name)
	pool, err := pgxpool.New(context.Background(), u)
	if err != nil {
		t.Fatalf("pgtest: pool on %s: %v", name, err)
	}
	t.Cleanup(pool.Close) // before the drop, as cleanups run last first
	return &DB{Name: name, URL: u, Pool: pool}
}

// start starts the server, or reports why the first attempt failed.
func start() error {
	server.mu.Lock()
	defer server.mu.Unlock()
	if !server.main {
		return errors.New("pgtest: TestMain must call pgtest.Main(m), which stops PostgreSQL when the tests end")
	}
	if server.started {
		return server.err
	}
	server.started = true
	server.err = startLocked()
	return server.err
}

func startLocked() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var tag [4]byte
	if _, err := rand.Read(tag[:]); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	server.tag = hex.EncodeToString(tag[:])

	server.base = os.Getenv("TEST_DATABASE_URL")
	if server.base != "" {
		// DB.URL is a URL, made from this one.
		if u, err := url.Parse(server.base); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return errors.New("pgtest: TEST_DATABASE_URL must be a URL: postgres://user:password@host:5432/db")
		}
	} else {
		if _, err := pgcluster.Find(); err != nil {
			return err
		}
		sweep(ctx)
		dir, err := os.MkdirTemp("", "pgtest-")
		if err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		server.tmpDir = dir
		// The server may run as another user (postgres, when we are root),
		// who must reach the data and socket dirs inside.
		if err := os.Chmod(dir, 0o755); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		server.cluster = &pgcluster.Cluster{
			DataDir:   filepath.Join(dir, "data"),
			SocketDir: filepath.Join(dir, "sock"),
			NoSync:    true,
			// Parallel tests each hold a pool, and so do the services
			// they run.
			Settings: []string{"max_connections=300"},
		}
		if server.base, err = server.cluster.Start(ctx); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
	}

	var err error
	if server.admin, err = pgxpool.New(ctx, server.base); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if err := server.admin.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&server.version); err != nil {
		return fmt.Errorf("pgtest: connect: %w", err)
	}
	return nil
}

// shutdown stops the server, or on a shared server (TEST_DATABASE_URL)
// drops the templates.
func shutdown() error {
	server.mu.Lock()
	defer server.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	if server.admin != nil {
		if server.cluster == nil {
			for _, tmpl := range server.templates {
				<-tmpl.done
				if tmpl.err == nil {
					if err := drop(ctx, tmpl.name); err != nil {
						errs = append(errs, fmt.Errorf("pgtest: %w", err))
					}
				}
			}
		}
		server.admin.Close()
	}
	if server.cluster != nil {
		if err := server.cluster.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("pgtest: %w", err))
		}
	}
	if server.tmpDir != "" {
		if err := os.RemoveAll(server.tmpDir); err != nil {
			errs = append(errs, fmt.Errorf("pgtest: %w", err))
		}
	}
	return errors.Join(errs...)
}

// templateFor returns the template database for templates, making it on
// first use. Tests asking for one being made wait for it.
func templateFor(ctx context.Context, templates []Template) (string, error) {
	names := make([]string, len(templates))
	for i, tmpl := range templates {
		names[i] = tmpl.Name
	}
	key := strings.Join(names, "\x00")

	server.mu.Lock()
	tmpl, ok := server.templates[key]
	if !ok {
		tmpl = &templateDB{done: make(chan struct{}), name: nextNameLocked("tmpl")}
		server.templates[key] = tmpl
	}
	server.mu.Unlock()

	if ok {
		select {
		case <-tmpl.done:
			return tmpl.name, tmpl.err
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	defer close(tmpl.done)
	tmpl.err = makeTemplate(ctx, tmpl.name, templates)
	if tmpl.err != nil {
		tmpl.err = fmt.Errorf("pgtest: template %s: %w", strings.Join(names, " + "), tmpl.err)
	}
	return tmpl.name, tmpl.err
}

func makeTemplate(ctx context.Context, name string, templates []Template) error {
	if _, err := server.admin.Exec(ctx, "CREATE DATABASE "+ident(name)); err != nil {
		return err
	}
	err := func() error {
		pool, err := pgxpool.New(ctx, urlFor(server.base, name))
		if err != nil {
			return err
		}
		// Cloning needs the template free of connections.
		defer pool.Close()
		for _, tmpl := range templates {
			if err := tmpl.Setup(ctx, pool); err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil {
		if dropErr := drop(context.WithoutCancel(ctx), name); dropErr != nil {
			return errors.Join(err, dropErr)
		}
	}
	return err
}

func drop(ctx context.Context, name string) error {
	sql := "DROP DATABASE IF EXISTS " + ident(name)
	if server.version >= 130000 {
		// A service under test may not have closed its pool yet.
		sql += " WITH (FORCE)"
	}
	if _, err := server.admin.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

func nextName(kind string) string {
	server.mu.Lock()
	defer server.mu.Unlock()
	return nextNameLocked(kind)
}

// nextNameLocked names databases uniquely even on a server shared by test
// binaries running in parallel.
func nextNameLocked(kind string) string {
	server.n++
	return fmt.Sprintf("%s_%s_%d", kind, server.tag, server.n)
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// urlFor returns base pointing at database name instead.
func urlFor(base, name string) string {
	u, err := url.Parse(base)
	if err != nil {
		panic(err) // start checked base
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// sweep removes the servers and directories of test binaries that died
// without running their cleanup (a -timeout panic, a kill).
func sweep(ctx context.Context) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pgtest-*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err != nil {
			continue // not ours, or its owner is still starting
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || processAlive(pid) {
			continue
		}
		c := &pgcluster.Cluster{DataDir: filepath.Join(dir, "data")}
		if err := c.Stop(ctx); err != nil {
			continue
		}
		os.RemoveAll(dir)
	}
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// NeedServer skips t on a machine without PostgreSQL's server binaries and
// without TEST_DATABASE_URL, saying what to install; under CI (CI set) it
// fails instead, so that a green CI always ran the database tests.
func NeedServer(t testing.TB) {
	t.Helper()
	if os.Getenv("TEST_DATABASE_URL") != "" {
		return
	}
	if _, err := pgcluster.Find(); err != nil {
		msg := fmt.Sprintf("pgtest: %v; or set TEST_DATABASE_URL", err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}
