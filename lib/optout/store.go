package optout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"pushsms.io/lib/fault"
	"pushsms.io/lib/numplan"
)

// Store writes and reads opt-outs in bucket OPTOUTS (bus.BucketOptOuts).
type Store struct {
	kv jetstream.KeyValue
}

// NewStore uses kv, the OPTOUTS bucket.
func NewStore(kv jetstream.KeyValue) *Store { return &Store{kv: kv} }

// Item is one opt-out of AddMany.
type Item struct {
	Number numplan.Number
	Entry  Entry
}

// addWindow is how many creates AddMany keeps in flight: enough to hide the
// round trip (an import of 100 000 numbers takes seconds, not minutes)
// without flooding the server's API queue.
const addWindow = 128

// Add records e for n unless the number already has an opt-out of the same
// scope key (same brand, short code or tenant): the first record and its
// proof are kept, and added is false. A redelivered STOP or a re-imported
// list thus changes nothing.
func (s *Store) Add(ctx context.Context, n numplan.Number, e Entry) (added bool, err error) {
	if err := e.validate(); err != nil {
		return false, err
	}
	key, err := Key(n, e)
	if err != nil {
		return false, err
	}
	return s.create(ctx, key, e)
}

func (s *Store) create(ctx context.Context, key string, e Entry) (bool, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return false, fmt.Errorf("optout: encode: %w", err)
	}
	_, err = s.kv.Create(ctx, key, b)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyExists):
		return false, nil
	}
	return false, fmt.Errorf("optout: record: %w", errors.Join(err, fault.ErrUnavailable))
}

// AddMany is Add for many numbers, with up to 128 writes in flight: a
// partner's suppression list of 100 000 numbers is one call. Every item is
// checked before anything is written; an invalid item fails the call with
// fault.Invalid naming its 0-based position. On a write error it returns
// the count added so far: entries are idempotent, so the caller retries the
// whole list.
func (s *Store) AddMany(ctx context.Context, items []Item) (added int, err error) {
	keys := make([]string, len(items))
	for i, it := range items {
		if err := it.Entry.validate(); err != nil {
			return 0, fmt.Errorf("item %d: %w", i, err)
		}
		if keys[i], err = Key(it.Number, it.Entry); err != nil {
			return 0, fmt.Errorf("item %d: %w", i, err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
		next  = make(chan int)
	)
	for range min(addWindow, len(items)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				ok, err := s.create(ctx, keys[i], items[i].Entry)
				mu.Lock()
				if ok {
					added++
				}
				if err != nil && first == nil {
					first = fmt.Errorf("item %d: %w", i, err)
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range items {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = fmt.Errorf("optout: import: %w", errors.Join(ctx.Err(), fault.ErrUnavailable))
	}
	return added, first
}

// Remove deletes the number's opt-out of e's scope key if it has e's
// source: a subscriber's START never lifts a partner's suppression, nor a
// partner's call a subscriber's STOP. The delete is conditional on the
// revision read, so an entry written again in between stays.
func (s *Store) Remove(ctx context.Context, n numplan.Number, e Entry) error {
	key, err := Key(n, e)
	if err != nil {
		return err
	}
	got, err := s.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		return nil
	case err != nil:
		return fmt.Errorf("optout: read: %w", errors.Join(err, fault.ErrUnavailable))
	}
	var have Entry
	if err := json.Unmarshal(got.Value(), &have); err != nil {
		return fmt.Errorf("optout: decode %s: %w", got.Key(), err)
	}
	if e.Source != "" && have.Source != e.Source {
		return nil
	}
	err = s.kv.Delete(ctx, key, jetstream.LastRevision(got.Revision()))
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("optout: remove: %w", errors.Join(err, fault.ErrUnavailable))
	}
	return nil
}

// List returns every opt-out of the number, oldest write first.
func (s *Store) List(ctx context.Context, n numplan.Number) ([]Entry, error) {
	if n.IsZero() {
		return nil, fault.Invalidf("msisdn", "no number")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.kv.Watch(ctx, n.Hash()+".>", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("optout: list: %w", errors.Join(err, fault.ErrUnavailable))
	}
	defer w.Stop()
	var out []Entry
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("optout: list: %w", errors.Join(ctx.Err(), fault.ErrUnavailable))
		case kve, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("optout: list: watch ended: %w", fault.ErrUnavailable)
			}
			if kve == nil {
				return out, nil
			}
			var e Entry
			if err := json.Unmarshal(kve.Value(), &e); err != nil {
				return nil, fmt.Errorf("optout: decode %s: %w", kve.Key(), err)
			}
			out = append(out, e)
		}
	}
}
