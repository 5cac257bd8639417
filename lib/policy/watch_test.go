package policy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/policy"
)

func TestWatchSeesPutOnEveryReplica(t *testing.T) {
	srv := bustest.Start(t)
	b1, b2 := bustest.Connect(t, srv), bustest.Connect(t, srv)
	ctx := context.Background()

	fallback := policy.Default()
	fallback.Version = "file-1"
	w1, err := policy.Watch(ctx, b1, fallback, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Stop()
	w2, err := policy.Watch(ctx, b2, fallback, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	if v := w1.Current().Version; v != "file-1" {
		t.Fatalf("before any push: version %q, want the fallback", v)
	}
	changed := make(chan string, 4)
	w1.OnChange(func(p *policy.Policy) { changed <- p.Version })

	next := policy.Default()
	next.Version = "2026-12-01.1"
	next.Window.Close = policy.Clock(21*time.Hour + 30*time.Minute)
	if err := policy.Put(ctx, b1, next); err != nil {
		t.Fatal(err)
	}
	for i, w := range []*policy.Watcher{w1, w2} {
		bustest.Eventually(t, time.Second, func() error {
			if p := w.Current(); p.Version != next.Version || p.Window.Close != next.Window.Close {
				return fmt.Errorf("watcher %d: version %q close %s", i+1, p.Version, p.Window.Close)
			}
			return nil
		})
	}
	select {
	case v := <-changed:
		if v != next.Version {
			t.Errorf("OnChange got %q", v)
		}
	case <-time.After(time.Second):
		t.Error("OnChange not called")
	}

	// A third replica that starts now loads the bucket's policy before
	// Watch returns, not the fallback.
	w3, err := policy.Watch(ctx, bustest.Connect(t, srv), fallback, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w3.Stop()
	if v := w3.Current().Version; v != next.Version {
		t.Errorf("new replica starts with %q, want %q", v, next.Version)
	}
	got, ok, err := policy.Get(ctx, b2)
	if err != nil || !ok || got.Version != next.Version {
		t.Errorf("Get = %q, %v, %v", got.Version, ok, err)
	}
}

func TestWatchIgnoresInvalidDocument(t *testing.T) {
	srv := bustest.Start(t)
	b := bustest.Connect(t, srv)
	ctx := context.Background()
	w, err := policy.Watch(ctx, b, policy.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// Every version the watcher switches to, in order, from before the
	// first Put: a hook registered later could still see "good" arrive.
	seen := make(chan string, 8)
	w.OnChange(func(p *policy.Policy) { seen <- p.Version })
	next := func() string {
		t.Helper()
		select {
		case v := <-seen:
			return v
		case <-time.After(time.Second):
			t.Fatal("no policy change within 1 s")
			return ""
		}
	}
	good := policy.Default()
	good.Version = "good"
	if err := policy.Put(ctx, b, good); err != nil {
		t.Fatal(err)
	}
	if v := next(); v != "good" {
		t.Fatalf("first change to %q, want good", v)
	}
	bad := good
	bad.Version = "bad"
	bad.Frequency.Period = "month"
	if err := policy.Put(ctx, b, bad); err == nil {
		t.Fatal("Put accepted an invalid policy")
	}
	// Written by hand, bypassing Put: the watchers must keep "good".
	kv, err := b.JS.KeyValue(ctx, bus.BucketPolicy)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, bus.PolicyKey, []byte(`{"version": "bad", "window": {"open": "25:00"}}`)); err != nil {
		t.Fatal(err)
	}
	// A valid document written after it proves the watcher read past the
	// bad one (updates come in order): the next change must be to it.
	after := good
	after.Version = "after"
	if err := policy.Put(ctx, b, after); err != nil {
		t.Fatal(err)
	}
	if v := next(); v != "after" {
		t.Fatalf("after the invalid document the watcher switched to %q, want after", v)
	}
	if err := kv.Delete(ctx, bus.PolicyKey); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, time.Second, func() error {
		if v := w.Current().Version; v != policy.Default().Version {
			return fmt.Errorf("after delete: version %q, want the fallback", v)
		}
		return nil
	})
}
