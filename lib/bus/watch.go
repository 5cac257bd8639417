package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Watcher follows the keys of a key-value bucket.
type Watcher struct {
	kw   jetstream.KeyWatcher
	done chan struct{}
}

// WatchBucket calls fn with the current value of every key of bucket, then
// with every change, in order and from one goroutine, until Stop. A deleted,
// purged or expired key comes with a nil value. WatchBucket returns once fn
// has seen every current value, so the caller starts from a complete view
// (a throttle that started before knowing which campaigns are cancelled
// could send some of their messages).
func (b *Bus) WatchBucket(ctx context.Context, bucket string, fn func(key string, value []byte)) (*Watcher, error) {
	kv, err := b.JS.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", bucket, err)
	}
	// The watch outlives ctx, which only bounds the start: Stop ends it.
	kw, err := kv.WatchAll(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("watch bucket %s: %w", bucket, err)
	}
	w := &Watcher{kw: kw, done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		defer close(w.done)
		initial := true
		for e := range kw.Updates() {
			if e == nil {
				if initial {
					initial = false
					close(ready)
				}
				continue
			}
			var v []byte
			if e.Operation() == jetstream.KeyValuePut {
				v = e.Value()
			}
			fn(e.Key(), v)
		}
	}()
	select {
	case <-ready:
		return w, nil
	case <-w.done:
		return nil, fmt.Errorf("watch bucket %s: ended before its current values were read", bucket)
	case <-ctx.Done():
		w.Stop()
		return nil, fmt.Errorf("watch bucket %s: %w", bucket, ctx.Err())
	}
}

// Done is closed when the watch has ended: after Stop, or when the
// connection is closed.
func (w *Watcher) Done() <-chan struct{} { return w.done }

// Stop ends the watch and waits (a few seconds at most) for fn to return.
func (w *Watcher) Stop() {
	_ = w.kw.Stop()
	select {
	case <-w.done:
	case <-time.After(5 * time.Second):
	}
}
