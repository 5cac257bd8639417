package ported

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"pushsms.io/lib/numplan"
)

// ErrNotLoaded is the error of a lookup before the first Load: the network
// rule must not decide without the table, so the message is retried.
var ErrNotLoaded = errors.New("ported: table not loaded yet")

// Table is a replica's in-memory copy of the ported-numbers table. It
// implements compliance.NetworkLookup. Lookups never wait: a reload builds
// a new snapshot aside and swaps it in, so the old one serves until then.
type Table struct {
	log  *slog.Logger
	snap atomic.Pointer[snapshot]
	// poll is the safety net of Watch: a notification is lost only when
	// the listening connection breaks, and Watch checks the version again
	// when it reconnects, so this is rarely what triggers a reload.
	poll time.Duration
}

// NewTable returns an empty, not yet loaded table logging to log.
func NewTable(log *slog.Logger) *Table {
	return &Table{log: log, poll: 30 * time.Second}
}

// snapshot is one version of the table, sorted by key. 10 bytes an entry:
// a map would take several times that for the million-odd ported numbers
// of a real file, and a binary search over a million keys is about twenty
// comparisons.
type snapshot struct {
	version int64
	keys    []uint64 // E.164 digits as an integer, ascending
	ops     []uint16 // index into codes, parallel to keys
	codes   []string // distinct operator codes
	source  string
}

// Operator tells the operator a ported number is on. Known is false for a
// number the table does not hold: its ARCEP block holder serves it.
func (t *Table) Operator(_ context.Context, n numplan.Number) (string, bool, error) {
	s := t.snap.Load()
	if s == nil {
		return "", false, ErrNotLoaded
	}
	k, ok := keyOf(n)
	if !ok {
		return "", false, nil
	}
	i, found := slices.BinarySearch(s.keys, k)
	if !found {
		return "", false, nil
	}
	return s.codes[s.ops[i]], true, nil
}

// Version is the version of the snapshot in use, 0 before any import, -1
// before Load.
func (t *Table) Version() int64 {
	if s := t.snap.Load(); s != nil {
		return s.version
	}
	return -1
}

// Len is the number of entries of the snapshot in use.
func (t *Table) Len() int {
	if s := t.snap.Load(); s != nil {
		return len(s.keys)
	}
	return 0
}

// MemoryBytes is the memory the snapshot in use holds: 10 bytes an
// entry.
func (t *Table) MemoryBytes() int {
	s := t.snap.Load()
	if s == nil {
		return 0
	}
	n := cap(s.keys)*8 + cap(s.ops)*2
	for _, c := range s.codes {
		n += 16 + len(c)
	}
	return n
}

// Load reads the table from PostgreSQL if its version differs from the
// snapshot's, and swaps it in.
func (t *Table) Load(ctx context.Context, pool *pgxpool.Pool) error {
	v, err := currentVersion(ctx, pool)
	if err != nil {
		return err
	}
	if s := t.snap.Load(); s != nil && s.version == v {
		return nil
	}
	start := time.Now()
	s, err := readSnapshot(ctx, pool)
	if err != nil {
		return err
	}
	// Two loads racing (Watch and a caller) must not put an older
	// version back.
	for {
		cur := t.snap.Load()
		if cur != nil && cur.version > s.version {
			return nil
		}
		if t.snap.CompareAndSwap(cur, s) {
			break
		}
	}
	t.log.InfoContext(ctx, "ported numbers loaded", "version", s.version, "source", s.source, "entries", len(s.keys), "bytes", t.MemoryBytes(),
		"operators", len(s.codes), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

func currentVersion(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var v int64
	err := pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+Schema+`.versions`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("ported: read version: %w", err)
	}
	return v, nil
}

// readSnapshot reads a version and its rows in one repeatable-read
// transaction. The shared lock comes first so that the snapshot is taken
// after any full import holding the table (TRUNCATE is not MVCC-safe: an
// older snapshot would see the table empty).
func readSnapshot(ctx context.Context, pool *pgxpool.Pool) (*snapshot, error) {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("ported: load: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `LOCK TABLE `+Schema+`.numbers, `+Schema+`.versions IN ACCESS SHARE MODE`); err != nil {
		return nil, fmt.Errorf("ported: load: lock: %w", err)
	}
	s := &snapshot{}
	var size int64
	if err := tx.QueryRow(ctx, `
		SELECT v.version, v.source, v.size FROM `+Schema+`.versions v
		ORDER BY v.version DESC LIMIT 1`).Scan(&s.version, &s.source, &size); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("ported: load version: %w", err)
	}
	s.keys = make([]uint64, 0, size)
	s.ops = make([]uint16, 0, size)
	index := map[string]uint16{}
	rows, err := tx.Query(ctx, `SELECT msisdn, operator FROM `+Schema+`.numbers ORDER BY msisdn`)
	if err != nil {
		return nil, fmt.Errorf("ported: load: %w", err)
	}
	var (
		key  int64
		code string
	)
	_, err = pgx.ForEachRow(rows, []any{&key, &code}, func() error {
		i, ok := index[code]
		if !ok {
			if len(s.codes) == 1<<16 {
				return fmt.Errorf("more than %d operator codes", 1<<16)
			}
			i = uint16(len(s.codes))
			index[code] = i
			s.codes = append(s.codes, code)
		}
		s.keys = append(s.keys, uint64(key))
		s.ops = append(s.ops, i)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ported: load: %w", err)
	}
	return s, nil
}

// Watch keeps the table up to date until ctx is done: it LISTENs for the
// notification an import sends when it commits and reloads at once, so a
// replica serves a new import a fraction of a second after its commit
// (0.25 s to load a million numbers; 2 s promised). PostgreSQL sends a notification only on commit, so a replica
// never loads an import that is rolled back. The connection is re-made
// when it breaks, and the version is checked each time it is (a
// notification sent meanwhile is lost) and every poll interval. A failed
// reload keeps the snapshot in use and is retried.
func (t *Table) Watch(ctx context.Context, pool *pgxpool.Pool) error {
	for {
		err := t.listen(ctx, pool)
		if ctx.Err() != nil {
			return nil
		}
		t.log.WarnContext(ctx, "ported numbers watch interrupted", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (t *Table) listen(ctx context.Context, pool *pgxpool.Pool) error {
	pc, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("ported: watch: %w", err)
	}
	// A connection that LISTENed must not go back to the pool, where
	// another user would get its notifications.
	conn := pc.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		return fmt.Errorf("ported: watch: listen: %w", err)
	}
	for {
		if err := t.Load(ctx, pool); err != nil {
			t.log.WarnContext(ctx, "ported numbers reload failed; keeping the current snapshot", "version", t.Version(), "err", err)
		}
		wctx, cancel := context.WithTimeout(ctx, t.poll)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && !errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("ported: watch: %w", err)
		case n != nil:
			if v, perr := strconv.ParseInt(n.Payload, 10, 64); perr == nil && v <= t.Version() {
				continue // an older import's notification
			}
		}
	}
}
