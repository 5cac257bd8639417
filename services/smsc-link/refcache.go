package smsclink

import (
	"sync"
	"time"
)

// DefaultRefCache is the default of Config.RefCache: at 5 000 SMS/s, 20 s
// of submits, longer than most DRs take (a few seconds), for a few hundred
// bytes each (tens of MB).
const DefaultRefCache = 100_000

// refCache holds the correlation refs this process stored or read, so
// that a DR arriving where its segment was submitted (the common case)
// is matched without a round trip to the bucket. The bucket stays the
// truth: the cache only ever holds what the bucket holds under the key
// (the first ref of an SCTS collision), and another replica or a restart
// finds the key there. An entry is kept until evicted, not on its first
// DR, because a segment can have several (BUFFERED, then final; a DR the
// SMSC sends again).
//
// Eviction is first in, first out: a DR's delay after its submit is what
// decides whether it still finds its entry, not how often it was read.
type refCache struct {
	max    int           // entries; 0 disables the cache
	maxAge time.Duration // not beyond the bucket's TTL: the key is gone then

	mu      sync.Mutex
	entries map[string]refEntry
	// order is a ring of the keys in insertion order; next is the slot of
	// the oldest once the ring is full.
	order []string
	next  int
}

type refEntry struct {
	ref segmentRef
	at  time.Time // when the bucket's key was written or read, at the latest
}

func newRefCache(max int, maxAge time.Duration) *refCache {
	return &refCache{max: max, maxAge: maxAge, entries: make(map[string]refEntry)}
}

// get returns the ref of key if it is cached and not older than maxAge.
func (c *refCache) get(key string, now time.Time) (segmentRef, bool) {
	if c.max == 0 {
		return segmentRef{}, false
	}
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if !ok || now.Sub(e.at) >= c.maxAge {
		return segmentRef{}, false
	}
	return e.ref, true
}

// put caches the ref the bucket holds under key. at must not be later than
// the bucket's write of the key (or the read that found it), so that the
// entry never outlives the key. A key already cached keeps its entry: the
// bucket's first ref never changes.
func (c *refCache) put(key string, ref segmentRef, at time.Time) {
	if c.max == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok {
		if at.Sub(e.at) < c.maxAge {
			return
		}
		// Expired in place: the key was written again since (a new TTL),
		// which only happens after the bucket dropped the old one.
		c.entries[key] = refEntry{ref: ref, at: at}
		return
	}
	if len(c.order) < c.max {
		c.order = append(c.order, key)
	} else {
		delete(c.entries, c.order[c.next])
		c.order[c.next] = key
		c.next = (c.next + 1) % c.max
	}
	c.entries[key] = refEntry{ref: ref, at: at}
}

func (c *refCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
