package pgtest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgxpool"

	"pushsms.io/lib/pgcluster"
)

func TestMain(m *testing.M) { Main(m) }

func tableExists(t *testing.T, pool *pgxpool.Pool, table string) bool {
	t.Helper()
	var ok bool
	if err := pool.QueryRow(t.Context(), "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestIsolation(t *testing.T) {
	t.Parallel()
	a, b := New(t), New(t)
	if a.Name == b.Name || a.URL == b.URL {
		t.Fatalf("two databases share a name: %s %s", a.URL, b.URL)
	}
	if _, err := a.Pool.Exec(t.Context(), "CREATE TABLE only_in_a (n int)"); err != nil {
		t.Fatal(err)
	}
	if !tableExists(t, a.Pool, "only_in_a") {
		t.Error("a: got no table only_in_a, want it")
	}
	if tableExists(t, b.Pool, "only_in_a") {
		t.Error("b: got table only_in_a, want it only in a")
	}

	var current string
	if err := b.Pool.QueryRow(t.Context(), "SELECT current_database()").Scan(&current); err != nil {
		t.Fatal(err)
	}
	if current != b.Name {
		t.Errorf("b.Pool is on %s, want %s", current, b.Name)
	}
}

func TestDroppedAfterTest(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("user", func(t *testing.T) {
		name = New(t).Name
	})
	db := New(t)
	var n int
	if err := db.Pool.QueryRow(t.Context(), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s of a finished test still exists", name)
	}
}

func TestTemplate(t *testing.T) {
	t.Parallel()
	var setups atomic.Int32
	tmpl := Template{
		Name: t.Name(),
		Setup: func(ctx context.Context, pool *pgxpool.Pool) error {
			setups.Add(1)
			_, err := pool.Exec(ctx, "CREATE TABLE seeded (n int); INSERT INTO seeded VALUES (1)")
			return err
		},
	}
	for _, name := range []string{"a", "b", "c", "d"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := New(t, tmpl)
			ctx := t.Context()
			// Each clone is its own: a row added here shows nowhere else.
			if _, err := db.Pool.Exec(ctx, "INSERT INTO seeded VALUES (2)"); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM seeded").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 2 {
				t.Errorf("got %d rows, want the seeded one and ours", n)
			}
		})
	}
	t.Cleanup(func() {
		if got := setups.Load(); got != 1 {
			t.Errorf("Setup ran %d times, want once", got)
		}
	})
}

func TestTemplateError(t *testing.T) {
	t.Parallel()
	if err := start(); err != nil {
		New(t) // skips or fails the test the way New does
	}
	errSetup := errors.New("setup broke")
	var setups atomic.Int32
	tmpl := Template{
		Name: t.Name(),
		Setup: func(ctx context.Context, pool *pgxpool.Pool) error {
			setups.Add(1)
			return errSetup
		},
	}
	for range 2 {
		_, err := templateFor(t.Context(), []Template{tmpl})
		if !errors.Is(err, errSetup) {
			t.Errorf("templateFor: got %v, want %v", err, errSetup)
		}
	}
	if got := setups.Load(); got != 1 {
		t.Errorf("failing Setup ran %d times, want once", got)
	}
}

func TestMigrated(t *testing.T) {
	t.Parallel()
	migrations := fstest.MapFS{
		"001_create_thing.sql": {Data: []byte("CREATE TABLE thing (id bigint PRIMARY KEY);")},
	}
	db := New(t, Migrated("pgtest_migrated", migrations))
	if !tableExists(t, db.Pool, "pgtest_migrated.thing") {
		t.Error("got no table pgtest_migrated.thing, want it migrated")
	}
}

func TestTemplatesCombine(t *testing.T) {
	t.Parallel()
	table := func(name string) Template {
		return Template{Name: t.Name() + name, Setup: func(ctx context.Context, pool *pgxpool.Pool) error {
			_, err := pool.Exec(ctx, "CREATE TABLE "+name+" (n int)")
			return err
		}}
	}
	db := New(t, table("one"), table("two"))
	for _, name := range []string{"one", "two"} {
		if !tableExists(t, db.Pool, name) {
			t.Errorf("got no table %s, want both templates applied", name)
		}
	}
}

func TestURLFor(t *testing.T) {
	tests := []struct {
		base, want string
	}{
		{"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "postgres://postgres@127.0.0.1:5432/test_1?sslmode=disable"},
		{"postgresql://u:p%40ss@db:5432", "postgresql://u:p%40ss@db:5432/test_1"},
	}
	for _, tt := range tests {
		if got := urlFor(tt.base, "test_1"); got != tt.want {
			t.Errorf("urlFor(%q) = %q, want %q", tt.base, got, tt.want)
		}
	}
}

func BenchmarkNew(b *testing.B) {
	tmpl := Migrated("pgtest_bench", fstest.MapFS{
		"001_create_thing.sql": {Data: []byte("CREATE TABLE thing (id bigint PRIMARY KEY, body text);")},
	})
	New(b, tmpl) // the first builds the template
	for b.Loop() {
		New(b, tmpl) // dropped when the benchmark ends
	}
}

// TestSweep leaves a cluster as a test binary killed mid-run would, and
// checks that the next binary stops and removes it.
func TestSweep(t *testing.T) {
	t.Parallel()
	if err := start(); err != nil {
		New(t) // skips or fails the test the way New does
	}
	if server.cluster == nil {
		t.Skip("TEST_DATABASE_URL: no cluster of ours to leave behind")
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	orphan := &pgcluster.Cluster{DataDir: filepath.Join(dir, "data"), NoSync: true}
	if _, err := orphan.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { orphan.Stop(context.Background()) })
	// The dead owner only once the cluster runs: a test binary of another
	// package starting meanwhile sweeps too, and would remove the
	// directory under initdb.
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(dead.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}

	sweep(t.Context())
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("orphaned %s: got %v, want it removed", dir, err)
	}
	// Our own cluster, whose owner lives, is left alone.
	if _, err := os.Stat(server.tmpDir); err != nil {
		t.Errorf("live %s: %v", server.tmpDir, err)
	}
}
