package throttle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/telemetry"
)

func TestLease(t *testing.T) {
	at := time.Date(2026, 11, 27, 20, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		value string
		// free at at; first release of the next owner.
		free  bool
		first time.Time
		bad   bool
	}{
		{name: "held", value: `{"owner":"r1","until":"2026-11-27T20:00:01Z"}`, first: at.Add(1500 * time.Millisecond)},
		{name: "expired", value: `{"owner":"r1","until":"2026-11-27T19:59:59Z"}`, free: true, first: at.Add(-time.Second + 500*time.Millisecond)},
		{name: "ends_now", value: `{"owner":"r1","until":"2026-11-27T20:00:00Z"}`, free: true, first: at.Add(500 * time.Millisecond)},
		// Given back at 20:00 (last release then): the next owner waits a
		// full second after it.
		{name: "given_back", value: `{"owner":"","until":"2026-11-27T20:00:00.5Z"}`, free: true, first: at.Add(time.Second)},
		{name: "unreadable", value: `r1`, bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := parseLease([]byte(tt.value))
			if tt.bad {
				if err == nil {
					t.Fatalf("parsed %q", tt.value)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := l.free(at); got != tt.free {
				t.Errorf("free = %v, want %v", got, tt.free)
			}
			if got := l.firstRelease(); !got.Equal(tt.first) {
				t.Errorf("first release %v, want %v", got, tt.first)
			}
		})
	}
}

// The timing constants keep two owners' releases at least a second apart
// and a dead owner's short codes owned again within 5 s.
func TestLeaseTiming(t *testing.T) {
	// The last release of an owner that renewed at r is before its fence;
	// the next owner's first is at firstRelease of that lease.
	r := time.Date(2026, 11, 27, 20, 0, 0, 0, time.UTC)
	l := lease{Owner: "r1", Until: r.Add(leaseTTL)}
	if gap := l.firstRelease().Sub(l.Until.Add(-leaseMargin)); gap < time.Second {
		t.Errorf("releases of two owners %v apart, want at least 1s", gap)
	}
	// Dead just after renewing: claimed at Until, released from its
	// first release on.
	if worst := l.firstRelease().Sub(r); worst > 3*time.Second {
		t.Errorf("a dead owner's short code waits up to %v for its next release", worst)
	}
	if replicaTTL > leaseTTL {
		t.Errorf("a dead replica counts as alive %v after its leases end", replicaTTL-leaseTTL)
	}
}

func TestOwnershipFence(t *testing.T) {
	now := time.Now()
	o := newOwnership("36000")
	o.extend(now.Add(time.Second))
	if !o.releasable(now) || o.releasable(now.Add(time.Second)) {
		t.Fatal("fence not at its time")
	}
	o.drop()
	o.extend(now.Add(time.Hour)) // a renewal that raced with the loss
	if o.releasable(now) {
		t.Error("a dropped short code is releasable again")
	}
	select {
	case <-o.lost:
	default:
		t.Error("lost not closed")
	}
	o.drop() // idempotent
}

func TestValidConsumerToken(t *testing.T) {
	for sc, want := range map[string]bool{"36000": true, "_": true, "": false, "36.000": false, "3*": false, "a b": false} {
		if got := validConsumerToken(sc); got != want {
			t.Errorf("validConsumerToken(%q) = %v, want %v", sc, got, want)
		}
	}
}

// An owner whose lease was taken (another replica, an operator) stops
// releasing at once and gives its events back; they all go out once the
// short code is owned again.
func TestLeaseTakenStopsReleases(t *testing.T) {
	h := newHarness(t)
	r := h.startReplica("r1")
	sc := "36200"
	want := h.publishBacklogs([]string{sc}, 4*haRate)
	h.waitCount(5*time.Second, bus.StreamSubmit, bus.SubmitSubject(sc), haRate/2)

	ctx := context.Background()
	kv, err := h.bus.JS.KeyValue(ctx, bus.BucketThrottleLeases)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := json.Marshal(lease{Owner: "operator", Until: time.Now().Add(time.Hour)})
	if _, err := kv.Put(ctx, sc, v); err != nil {
		t.Fatal(err)
	}
	taken := time.Now()
	bustest.Eventually(t, 2*time.Second, func() error {
		if own := r.owner.owned(); len(own) != 0 {
			return fmt.Errorf("still owns %v", own)
		}
		return nil
	})
	time.Sleep(time.Second)
	var after int
	for _, e := range h.submits(sc) {
		// A renewal comes every 500 ms: releases may go on until the
		// owner sees the lease changed at its next one.
		if e.at.After(taken.Add(leaseRenew + 100*time.Millisecond)) {
			after++
		}
	}
	if after != 0 {
		t.Errorf("%d segments released after the lease was taken", after)
	}
	if n := len(h.submits(sc)); n >= len(want[sc]) {
		t.Fatalf("backlog done (%d) before the lease was taken: the test proves nothing", n)
	}

	if err := kv.Delete(ctx, sc); err != nil {
		t.Fatal(err)
	}
	h.checkReleasedOnce(15*time.Second, want)
}

func TestReplicaID(t *testing.T) {
	a, b := newReplicaID(), newReplicaID()
	if !replicaIDPattern.MatchString(a) || a == b {
		t.Errorf("replica ids %q, %q: want valid and distinct (a restarted process is a new owner)", a, b)
	}
	for id, ok := range map[string]bool{"": true, "r1": true, "host-1_a": true, "a.b": false, "replica 1": false} {
		cfg := DefaultConfig()
		cfg.ReplicaID = id
		if err := cfg.Validate(); (err == nil) != ok {
			t.Errorf("replica id %q: Validate = %v", id, err)
		}
	}
}

// serveReplica starts a replica on h's server and returns it, a channel
// closed when Serve returns, and Serve's result (once closed).
func (h *harness) serveReplica(t *testing.T) (*Service, <-chan struct{}, func() error) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Bus = bus.Config{URL: h.srv.URL(), Replicas: 1}
	cfg.Telemetry = telemetry.Config{LogLevel: "error", LogFormat: "text"}
	cfg.GRPCAddr, cfg.Telemetry.MetricsAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Rates = RateTable{"36000": 50}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var serveErr error
	go func() { serveErr = s.Serve(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		s.Close()
	})
	return s, done, func() error { <-done; return serveErr }
}

// legacyConsumer creates the single consumer of the versions before
// ownership and has it take and ack the stream's events, as a previous
// version that released them would; it leaves the last held unacked.
func (h *harness) legacyConsumer(t *testing.T, hold int) {
	t.Helper()
	ctx := context.Background()
	cons, err := h.bus.JS.CreateOrUpdateConsumer(ctx, bus.StreamCleared, jetstream.ConsumerConfig{
		Durable: LegacyDurable, FilterSubjects: []string{bus.SubjectCleared}, AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := int(info.NumPending)
	batch, err := cons.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for m := range batch.Messages() {
		if i < n-hold {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
		}
		i++
	}
	if i != n {
		t.Fatalf("legacy consumer took %d of %d events", i, n)
	}
}

// Upgrading in place: a replica retires the single consumer of the
// versions before ownership once it holds nothing, and releases only what
// came after it, not the stream's history again.
func TestMigratesFromLegacyConsumer(t *testing.T) {
	h := newHarness(t)
	old, _ := backlog("old", "36000", 20)
	h.publish(old...)
	h.legacyConsumer(t, 0)
	fresh, freshIDs := backlog("new", "36000", 30)
	h.publish(fresh...)

	s, _, _ := h.serveReplica(t)
	h.waitCount(10*time.Second, bus.StreamSubmit, "sms.submit.36000", len(freshIDs))
	time.Sleep(500 * time.Millisecond) // an old event released late would show now
	checkExactlyOnce(t, h.submits("36000"), freshIDs)
	if _, err := h.bus.JS.Consumer(context.Background(), bus.StreamCleared, LegacyDurable); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("legacy consumer after the migration: %v, want it deleted", err)
	}
	if own := s.Owned(); !slices.Equal(own, []string{"36000"}) {
		t.Errorf("owns %v, want [36000]", own)
	}
}

// A legacy consumer still holding events is left alone: the replica
// refuses to start and says why, so that they are neither lost nor
// released twice.
func TestRefusesBesideBusyLegacyConsumer(t *testing.T) {
	h := newHarness(t)
	old, _ := backlog("old", "36000", 10)
	h.publish(old...)
	h.legacyConsumer(t, 2)

	s, done, result := h.serveReplica(t)
	select {
	case <-done:
		if err := result(); err == nil || !strings.Contains(err.Error(), "holds 2 events") {
			t.Fatalf("Serve beside a busy legacy consumer: %v, want a refusal naming its 2 events", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not refuse")
	}
	if own := s.Owned(); len(own) != 0 {
		t.Errorf("owns %v", own)
	}
	if _, err := h.bus.JS.Consumer(context.Background(), bus.StreamCleared, LegacyDurable); err != nil {
		t.Errorf("legacy consumer: %v, want it kept", err)
	}
}
