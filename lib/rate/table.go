package rate

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync/atomic"

	"pushsms.io/lib/bus"
)

// rateSuffix ends the keys of bus.BucketShortCodes that hold a rate; the
// bucket's other keys (".control", ".weights") are someone else's.
const rateSuffix = ".rate"

// Table is the rate of every short code: the bucket's value, else the
// override, else the default. Rate is a lock-free read, cheap enough to
// call before every release.
type Table struct {
	def       int
	overrides Overrides
	// bucket holds the rates read from the bucket. The watch goroutine is
	// the only writer: it replaces the whole map (copy on write), so
	// readers never lock.
	bucket atomic.Pointer[map[string]int]
	w      *bus.Watcher
	log    *slog.Logger
}

// WatchTable follows the rates of bus.BucketShortCodes on b and returns once
// the current ones are loaded, so that no release happens at a rate the
// bucket has already changed. def (1 to MaxRate) applies to short codes with
// neither a bucket value nor an override. A bucket value that is not a rate
// (0 to MaxRate) is logged and ignored: the short code falls back to its
// override or the default, as if the key were deleted.
func WatchTable(ctx context.Context, b *bus.Bus, def int, overrides map[string]int, log *slog.Logger) (*Table, error) {
	if def < 1 || def > MaxRate {
		return nil, fmt.Errorf("%w: default rate %d: want 1 to %d", ErrRate, def, MaxRate)
	}
	for c, r := range overrides {
		if !ValidShortCode(c) || r < 1 || r > MaxRate {
			return nil, fmt.Errorf("%w: override %s=%d: want digits=1 to %d", ErrRate, c, r, MaxRate)
		}
	}
	t := &Table{def: def, overrides: maps.Clone(overrides), log: log}
	empty := map[string]int{}
	t.bucket.Store(&empty)
	w, err := b.WatchBucket(ctx, bus.BucketShortCodes, t.apply)
	if err != nil {
		return nil, fmt.Errorf("watch rates: %w", err)
	}
	t.w = w
	return t, nil
}

// apply takes one change of the bucket.
func (t *Table) apply(key string, value []byte) {
	code, ok := ShortCodeOf(key)
	if !ok {
		return
	}
	cur := *t.bucket.Load()
	next := maps.Clone(cur)
	if value == nil {
		delete(next, code)
	} else if r, err := ParseRate(value); err != nil {
		t.log.Error("ignoring bad rate in bucket", "short_code", code, "err", err)
		delete(next, code)
	} else {
		if old, had := cur[code]; !had || old != r {
			t.log.Info("rate set", "short_code", code, "rate", r)
		}
		next[code] = r
	}
	t.bucket.Store(&next)
}

// Rate returns the rate of shortCode in SMS-MT per second; 0 holds it.
func (t *Table) Rate(shortCode string) int {
	if r, ok := (*t.bucket.Load())[shortCode]; ok {
		return r
	}
	if r, ok := t.overrides[shortCode]; ok {
		return r
	}
	return t.def
}

// Stop ends the watch; Rate keeps answering with the last values.
func (t *Table) Stop() { t.w.Stop() }

// Key is the key of bus.BucketShortCodes that holds shortCode's rate.
func Key(shortCode string) string { return shortCode + rateSuffix }

// ShortCodeOf is the short code whose rate key is key, if key is one.
func ShortCodeOf(key string) (string, bool) { return strings.CutSuffix(key, rateSuffix) }

// ParseRate reads a "<sc>.rate" value: decimal SMS-MT per second, 0 to
// MaxRate.
func ParseRate(v []byte) (int, error) {
	r, err := strconv.Atoi(strings.TrimSpace(string(v)))
	if err != nil || r < 0 || r > MaxRate {
		return 0, fmt.Errorf("%w: %q: want 0 to %d", ErrRate, truncate(string(v), 32), MaxRate)
	}
	return r, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// PutRate sets the rate of shortCode in the bucket (0 to MaxRate; 0 holds
// it). Every Table sees it within a second, without a restart.
func PutRate(ctx context.Context, b *bus.Bus, shortCode string, r int) error {
	if !ValidShortCode(shortCode) {
		return fmt.Errorf("%w: short code %q: want digits", ErrRate, shortCode)
	}
	if r < 0 || r > MaxRate {
		return fmt.Errorf("%w: short code %s: rate %d: want 0 to %d", ErrRate, shortCode, r, MaxRate)
	}
	kv, err := b.JS.KeyValue(ctx, bus.BucketShortCodes)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", bus.BucketShortCodes, err)
	}
	if _, err := kv.Put(ctx, Key(shortCode), []byte(strconv.Itoa(r))); err != nil {
		return fmt.Errorf("put rate of %s: %w", shortCode, err)
	}
	return nil
}
