package optout_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/optout"
)

// The last issuer is per short code and recipient, and the latest record
// wins.
func TestLastIssuer(t *testing.T) {
	ctx := context.Background()
	b := bustest.Connect(t, bustest.Start(t))
	li, err := optout.OpenLastIssuer(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	n := number(t, "06 12 34 56 78")
	if _, ok, err := li.Get(ctx, "36123", n); err != nil || ok {
		t.Fatalf("Get before any record: %v %v, want none", ok, err)
	}
	for _, is := range []optout.Issuer{
		{Brand: "Zeta", Tenant: "t2", MessageID: "m1", At: t0},
		{Brand: "Acme", Tenant: "t1", MessageID: "m2", At: t0.Add(time.Minute)},
	} {
		if err := li.Record(ctx, "36123", n, is); err != nil {
			t.Fatal(err)
		}
	}
	bustest.Eventually(t, time.Second, func() error {
		got, ok, err := li.Get(ctx, "36123", n)
		if err != nil || !ok || got.Brand != "Acme" || got.Tenant != "t1" || got.MessageID != "m2" || !got.At.Equal(t0.Add(time.Minute)) {
			return fmt.Errorf("Get: %+v %v %v, want Acme's m2", got, ok, err)
		}
		return nil
	})
	if _, ok, err := li.Get(ctx, "36999", n); err != nil || ok {
		t.Errorf("Get on another short code: %v %v, want none", ok, err)
	}
}

// An MO session only moves forward: an old MO redelivered late does not
// shorten it.
func TestSessions(t *testing.T) {
	ctx := context.Background()
	b := bustest.Connect(t, bustest.Start(t))
	s, err := optout.OpenSessions(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	n := number(t, "06 12 34 56 78")
	if _, ok, err := s.LastMO(ctx, "34123", n); err != nil || ok {
		t.Fatalf("LastMO before any MO: %v %v", ok, err)
	}
	for _, at := range []time.Time{t0, t0.Add(time.Hour), t0.Add(time.Minute)} {
		if err := s.Touch(ctx, "34123", n, at); err != nil {
			t.Fatal(err)
		}
	}
	if got, ok, err := s.LastMO(ctx, "34123", n); err != nil || !ok || !got.Equal(t0.Add(time.Hour)) {
		t.Errorf("LastMO: %v %v %v, want %v", got, ok, err, t0.Add(time.Hour))
	}
	if _, ok, _ := s.LastMO(ctx, "34999", n); ok {
		t.Error("LastMO on another short code found a session")
	}
}

// BenchmarkLastIssuerRecord is the cost compliance pays per cleared
// message to remember its brand.
func BenchmarkLastIssuerRecord(b *testing.B) {
	ctx := context.Background()
	bs := bustest.Connect(b, bustest.Start(b))
	li, err := optout.OpenLastIssuer(ctx, bs)
	if err != nil {
		b.Fatal(err)
	}
	n := number(b, "06 12 34 56 78")
	is := optout.Issuer{Brand: "Acme", Tenant: "t1", MessageID: "0196f0c4-0000-7000-8000-000000000000", At: t0}
	b.ReportAllocs()
	for b.Loop() {
		if err := li.Record(ctx, "36123", n, is); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-bs.JS.PublishAsyncComplete():
	case <-time.After(10 * time.Second):
		b.Fatal("puts not acknowledged")
	}
}
