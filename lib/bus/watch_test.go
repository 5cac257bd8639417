package bus_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
)

func TestWatchBucket(t *testing.T) {
	b := connect(t, bustest.Start(t), nil)
	ctx := context.Background()
	kv, err := b.JS.KeyValue(ctx, bus.BucketCampaigns)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.PutString(ctx, "c1", "paused"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.PutString(ctx, "c1", "cancelled"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.PutString(ctx, "c2", "running"); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	state := map[string]string{}
	w, err := b.WatchBucket(ctx, bus.BucketCampaigns, func(key string, value []byte) {
		mu.Lock()
		defer mu.Unlock()
		if value == nil {
			state[key] = "<deleted>"
			return
		}
		state[key] = string(value)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// The current values are in when WatchBucket returns.
	mu.Lock()
	if state["c1"] != "cancelled" || state["c2"] != "running" {
		t.Errorf("at start: got %v, want c1=cancelled c2=running", state)
	}
	mu.Unlock()

	if _, err := kv.PutString(ctx, "c2", "paused"); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 2*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if state["c1"] != "<deleted>" || state["c2"] != "paused" {
			return fmt.Errorf("got %v, want c1 deleted, c2=paused", state)
		}
		return nil
	})
	w.Stop()
	select {
	case <-w.Done():
	default:
		t.Error("Done not closed after Stop")
	}
}

func TestWatchBucketEmpty(t *testing.T) {
	b := connect(t, bustest.Start(t), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w, err := b.WatchBucket(ctx, bus.BucketCampaigns, func(string, []byte) {})
	if err != nil {
		t.Fatal(err)
	}
	w.Stop()
}
