package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"

	"pushsms.io/lib/bus"
)

// Watcher follows the policy in the POLICY bucket. Current is what every
// decision reads: one atomic load, no lock on the hot path.
type Watcher struct {
	cur atomic.Pointer[Policy]
	w   *bus.Watcher
	log *slog.Logger

	mu       sync.Mutex
	onChange []func(*Policy)
}

// Watch starts following bus.PolicyKey in bus.BucketPolicy. It returns once
// the bucket's current value is loaded, so the caller's first decision
// already uses it. Until the bucket holds a valid document Current is
// fallback (the -policy file, or Default). A document that does not parse
// or validate is logged and ignored: the policy before it stays, because a
// typo pushed by hand must not stop every replica from deciding. A deleted
// key goes back to fallback.
func Watch(ctx context.Context, b *bus.Bus, fallback Policy, log *slog.Logger) (*Watcher, error) {
	if err := fallback.Validate(); err != nil {
		return nil, fmt.Errorf("policy: fallback: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	w := &Watcher{log: log}
	fb := fallback
	w.cur.Store(&fb)
	bw, err := b.WatchBucket(ctx, bus.BucketPolicy, func(key string, value []byte) {
		if key != bus.PolicyKey {
			return
		}
		if value == nil {
			w.set(&fb)
			return
		}
		p, err := Parse(value)
		if err != nil {
			w.log.Error("policy in the bucket ignored, the previous one stays", "previous_version", w.Current().Version, "error", err)
			return
		}
		w.set(&p)
	})
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	w.w = bw
	return w, nil
}

func (w *Watcher) set(p *Policy) {
	old := w.cur.Swap(p)
	w.log.Info("policy in force", "version", p.Version, "previous_version", old.Version)
	w.mu.Lock()
	hooks := append([]func(*Policy){}, w.onChange...)
	w.mu.Unlock()
	for _, f := range hooks {
		f(p)
	}
}

// Current returns the policy in force; never nil. The caller must not
// modify it: every reader shares it.
func (w *Watcher) Current() *Policy { return w.cur.Load() }

// OnChange calls f with every policy that comes into force after this call,
// from the watch goroutine, in order (a service recompiles its rules
// there). f must not block.
func (w *Watcher) OnChange(f func(*Policy)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.onChange = append(w.onChange, f)
}

// Done is closed when the watch has ended (Stop, or the connection closed).
func (w *Watcher) Done() <-chan struct{} { return w.w.Done() }

// Stop ends the watch; Current keeps returning the last policy.
func (w *Watcher) Stop() { w.w.Stop() }

// Put validates p and stores it as the current policy of every replica.
// The bucket's history keeps the versions before it.
func Put(ctx context.Context, b *bus.Bus, p Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("policy: encode: %w", err)
	}
	kv, err := b.JS.KeyValue(ctx, bus.BucketPolicy)
	if err != nil {
		return fmt.Errorf("policy: bucket %s: %w", bus.BucketPolicy, err)
	}
	if _, err := kv.Put(ctx, bus.PolicyKey, data); err != nil {
		return fmt.Errorf("policy: put: %w", err)
	}
	return nil
}

// Get returns the policy stored in the bucket, and false when there is none.
func Get(ctx context.Context, b *bus.Bus) (Policy, bool, error) {
	kv, err := b.JS.KeyValue(ctx, bus.BucketPolicy)
	if err != nil {
		return Policy{}, false, fmt.Errorf("policy: bucket %s: %w", bus.BucketPolicy, err)
	}
	e, err := kv.Get(ctx, bus.PolicyKey)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return Policy{}, false, nil
		}
		return Policy{}, false, fmt.Errorf("policy: get: %w", err)
	}
	p, err := Parse(e.Value())
	if err != nil {
		return Policy{}, false, fmt.Errorf("policy: revision %d in the bucket: %w", e.Revision(), err)
	}
	return p, true, nil
}
