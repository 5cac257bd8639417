package optout

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sync"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/numplan"
)

// Index is a compliance replica's copy of bucket OPTOUTS, kept current by a
// watch: checking a message costs a map lookup, not a round trip, and an
// opt-out written by any replica or by ingest's import is seen within a
// second (the watch pushes it as it is stored).
type Index struct {
	mu sync.RWMutex
	// byNumber maps the recipient hash (binary, the 128 bits of
	// numplan.Hash) to the number's opt-outs by key. A number has a few.
	byNumber map[[16]byte][]keyed
	w        *bus.Watcher
}

type keyed struct {
	key   string
	entry Entry
}

// WatchIndex loads every opt-out of bucket OPTOUTS and follows the changes
// until Stop. It returns once the current entries are loaded, so a replica
// never checks a message against a partial list.
func WatchIndex(ctx context.Context, b *bus.Bus) (*Index, error) {
	x := &Index{byNumber: make(map[[16]byte][]keyed)}
	w, err := b.WatchBucket(ctx, bus.BucketOptOuts, x.apply)
	if err != nil {
		return nil, fmt.Errorf("optout: index: %w", err)
	}
	x.w = w
	return x, nil
}

// apply is the watch callback: value nil removes the key.
func (x *Index) apply(key string, value []byte) {
	h, err := parseKey(key)
	if err != nil {
		return // not an opt-out of this package: nothing to honour
	}
	var e Entry
	if value != nil {
		if err := json.Unmarshal(value, &e); err != nil {
			// Only Store writes the bucket, always valid JSON; a value
			// that is not is no opt-out anyone can read either.
			return
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	list := x.byNumber[h]
	i := 0
	for ; i < len(list) && list[i].key != key; i++ {
	}
	switch {
	case value == nil && i < len(list):
		list = append(list[:i], list[i+1:]...)
	case value == nil:
	case i < len(list):
		list[i].entry = e
	default:
		list = append(list, keyed{key: key, entry: e})
	}
	if len(list) == 0 {
		delete(x.byNumber, h)
	} else {
		x.byNumber[h] = list
	}
}

// Blocked returns the opt-out that stops a message of tenant and brand from
// shortCode to n, the oldest if several do.
func (x *Index) Blocked(n numplan.Number, tenant, brand, shortCode string) (Entry, bool) {
	h, ok := hashOf(n)
	if !ok {
		return Entry{}, false
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	var (
		found Entry
		hit   bool
	)
	for _, k := range x.byNumber[h] {
		if k.entry.Blocks(tenant, brand, shortCode) && (!hit || k.entry.At.Before(found.At)) {
			found, hit = k.entry, true
		}
	}
	return found, hit
}

// Len returns how many numbers have at least one opt-out.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.byNumber)
}

// Stop ends the watch.
func (x *Index) Stop() {
	if x.w != nil {
		x.w.Stop()
	}
}

// hashOf is the binary numplan.Hash of n, computed on the stack.
func hashOf(n numplan.Number) ([16]byte, bool) {
	var h [16]byte
	e := n.E164()
	if e == "" {
		return h, false
	}
	var buf [24]byte
	sum := sha256.Sum256(append(buf[:0], e...))
	copy(h[:], sum[:16])
	return h, true
}
