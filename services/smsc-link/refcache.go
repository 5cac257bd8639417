package smsclink

import (
	"sync"
	"time"
)

// DefaultRefCache is the default of Config.RefCache: at 5 000 SMS/s, 20 s
// of submits, longer than most DRs take (a few seconds), for a few hundred
// bytes each (tens of MB).
const DefaultRefCache = 100_000

// DefaultRefCacheFor is the default of Config.RefCacheFor: most DRs come
// within seconds of their submit. A short code at 150 SMS/s kept 100 000
// entries, 11 minutes of its submits, and smsc-link's memory grew from 56
// to 133 MB over 5 minutes of a campaign; a minute is 9 000 entries.
const DefaultRefCacheFor = time.Minute

// refCache holds the correlation refs this process stored or read, so
// that a DR arriving where its segment was submitted (the common case)
// is matched without a round trip to the bucket. The bucket stays the
// truth: the cache only ever holds what the bucket holds under the key
// (the first ref of an SCTS collision), and another replica or a restart
// finds the key there. An entry is kept until evicted, not on its first
// DR, because a segment can have several (BUFFERED, then final; a DR the
// SMSC sends again).
//
// Eviction is first in, first out, once the cache holds max entries or an
// entry is older than keep: a DR's delay after its submit is what decides
// whether it still finds its entry, not how often it was read.
type refCache struct {
	max    int           // entries; 0 disables the cache
	keep   time.Duration // how long an entry stays at most
	maxAge time.Duration // not beyond the bucket's TTL: the key is gone then

	mu      sync.Mutex
	entries map[string]refEntry
	// queue holds the keys in insertion order, the oldest at head. A key
	// written again after its age is queued again; its older place is
	// passed over when it comes out.
	queue []queued
	head  int
}

type refEntry struct {
	ref segmentRef
	at  time.Time // when the bucket's key was written or read, at the latest
}

type queued struct {
	key string
	at  time.Time
}

func newRefCache(max int, keep, maxAge time.Duration) *refCache {
	return &refCache{max: max, keep: min(keep, maxAge), maxAge: maxAge, entries: make(map[string]refEntry)}
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
	if e, ok := c.entries[key]; ok && at.Sub(e.at) < c.maxAge {
		return
	}
	// New, or expired in place: the key was written again since (a new
	// TTL), which only happens after the bucket dropped the old one.
	for c.head < len(c.queue) && (len(c.entries) >= c.max || at.Sub(c.queue[c.head].at) >= c.keep) {
		q := c.queue[c.head]
		c.queue[c.head] = queued{}
		c.head++
		if e, ok := c.entries[q.key]; ok && e.at.Equal(q.at) {
			delete(c.entries, q.key)
		}
	}
	if c.head > len(c.queue)/2 {
		c.queue = append(c.queue[:0], c.queue[c.head:]...)
		c.head = 0
	}
	c.entries[key] = refEntry{ref: ref, at: at}
	c.queue = append(c.queue, queued{key: key, at: at})
}

func (c *refCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
