package optout_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/numplan"
	"pushsms.io/lib/optout"
)

func number(t testing.TB, s string) numplan.Number {
	t.Helper()
	n, err := numplan.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func store(t testing.TB, b *bus.Bus) *optout.Store {
	t.Helper()
	kv, err := b.JS.KeyValue(context.Background(), bus.BucketOptOuts)
	if err != nil {
		t.Fatal(err)
	}
	return optout.NewStore(kv)
}

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func stop(brand, shortCode, moID string, at time.Time) optout.Entry {
	return optout.Entry{Scope: optout.ScopeBrand, Brand: brand, ShortCode: shortCode, Tenant: "t1",
		Source: optout.SourceMOStop, At: at, MOID: moID, Text: "STOP"}
}

// A second STOP for the same brand keeps the first record and its proof;
// another brand is a record of its own; List returns both.
func TestStoreFirstRecordKept(t *testing.T) {
	ctx := context.Background()
	st := store(t, bustest.Connect(t, bustest.Start(t)))
	n := number(t, "06 12 34 56 78")

	if added, err := st.Add(ctx, n, stop("Acme", "36123", "mo/1", t0)); err != nil || !added {
		t.Fatalf("first Add: %v %v, want added", added, err)
	}
	if added, err := st.Add(ctx, n, stop(" ACME ", "36999", "mo/2", t0.Add(time.Hour))); err != nil || added {
		t.Fatalf("second Add of the same brand: %v %v, want not added", added, err)
	}
	if added, err := st.Add(ctx, n, stop("Zeta", "36123", "mo/3", t0)); err != nil || !added {
		t.Fatalf("Add for another brand: %v %v, want added", added, err)
	}
	other := number(t, "07 70 00 00 01")
	if _, err := st.Add(ctx, other, stop("Acme", "36123", "mo/4", t0)); err != nil {
		t.Fatal(err)
	}

	got, err := st.List(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("List: %d entries, want 2: %+v", len(got), got)
	}
	byBrand := map[string]optout.Entry{}
	for _, e := range got {
		byBrand[e.Brand] = e
	}
	if e := byBrand["Acme"]; e.MOID != "mo/1" || e.ShortCode != "36123" || !e.At.Equal(t0) || e.Text != "STOP" {
		t.Errorf("Acme entry %+v, want the first STOP's proof (mo/1, 36123, %v)", e, t0)
	}
	if _, ok := byBrand["Zeta"]; !ok {
		t.Errorf("no Zeta entry in %+v", got)
	}
	if got, err := st.List(ctx, number(t, "06 99 99 99 99")); err != nil || len(got) != 0 {
		t.Errorf("List of a number without opt-out: %v %v, want none", got, err)
	}
}

// Remove lifts an entry of its own source only.
func TestStoreRemove(t *testing.T) {
	ctx := context.Background()
	st := store(t, bustest.Connect(t, bustest.Start(t)))
	n := number(t, "06 12 34 56 78")
	imported := optout.Entry{Scope: optout.ScopeBrand, Brand: "Acme", Tenant: "t1", Source: optout.SourcePartnerImport, At: t0, Note: "web form"}
	if _, err := st.Add(ctx, n, imported); err != nil {
		t.Fatal(err)
	}
	// A subscriber's START does not lift the partner's suppression.
	if err := st.Remove(ctx, n, stop("Acme", "36123", "", t0)); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.List(ctx, n); len(got) != 1 {
		t.Fatalf("after a START: %d entries, want the import kept", len(got))
	}
	if err := st.Remove(ctx, n, imported); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.List(ctx, n); len(got) != 0 {
		t.Fatalf("after removing the import: %+v, want none", got)
	}
	// Removed, the number may opt out again, with the new proof.
	if added, err := st.Add(ctx, n, stop("Acme", "36123", "mo/9", t0.Add(time.Hour))); err != nil || !added {
		t.Fatalf("Add after Remove: %v %v, want added", added, err)
	}
	if got, _ := st.List(ctx, n); len(got) != 1 || got[0].MOID != "mo/9" {
		t.Fatalf("after a new STOP: %+v, want mo/9", got)
	}
	if err := st.Remove(ctx, number(t, "06 00 00 00 00"), imported); err != nil {
		t.Errorf("Remove of nothing: %v", err)
	}
}

func TestStoreRefusesInvalid(t *testing.T) {
	st := store(t, bustest.Connect(t, bustest.Start(t)))
	n := number(t, "06 12 34 56 78")
	for _, tc := range []struct {
		name string
		n    numplan.Number
		e    optout.Entry
	}{
		{"no number", numplan.Number{}, stop("Acme", "36123", "", t0)},
		{"brand scope without brand", n, stop("  ", "36123", "", t0)},
		{"unknown scope", n, optout.Entry{Scope: "world", Source: optout.SourceMOStop, At: t0}},
		{"no source", n, optout.Entry{Scope: optout.ScopeShortCode, ShortCode: "36123", At: t0}},
		{"no time", n, optout.Entry{Scope: optout.ScopePartner, Tenant: "t1", Source: optout.SourcePartnerImport}},
	} {
		if _, err := st.Add(context.Background(), tc.n, tc.e); err == nil {
			t.Errorf("%s: Add succeeded, want an error", tc.name)
		}
	}
}

// An import of 10 000 numbers, a quarter of them already suppressed: every
// new one is recorded once, and the count says how many were new.
func TestStoreAddMany(t *testing.T) {
	ctx := context.Background()
	b := bustest.Connect(t, bustest.Start(t))
	st := store(t, b)
	const total = 10000
	items := make([]optout.Item, total)
	for i := range items {
		items[i] = optout.Item{
			Number: number(t, fmt.Sprintf("06%08d", i)),
			Entry:  optout.Entry{Scope: optout.ScopePartner, Tenant: "t1", Source: optout.SourcePartnerImport, At: t0, Note: "crm export"},
		}
	}
	if added, err := st.AddMany(ctx, items[:total/4]); err != nil || added != total/4 {
		t.Fatalf("first AddMany: %d %v, want %d", added, err, total/4)
	}
	begin := time.Now()
	added, err := st.AddMany(ctx, items)
	if err != nil || added != total-total/4 {
		t.Fatalf("AddMany: %d %v, want %d new", added, err, total-total/4)
	}
	t.Logf("AddMany of %d numbers (%d new) took %v", total, added, time.Since(begin).Round(time.Millisecond))
	kv, _ := b.JS.KeyValue(ctx, bus.BucketOptOuts)
	st2, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st2.Values() != total {
		t.Errorf("bucket holds %d values, want %d", st2.Values(), total)
	}
	if got, err := st.List(ctx, items[total-1].Number); err != nil || len(got) != 1 || got[0].Note != "crm export" {
		t.Errorf("List of the last number: %+v %v", got, err)
	}
	bad := append([]optout.Item(nil), items[:3]...)
	bad[2].Number = numplan.Number{}
	if _, err := st.AddMany(ctx, bad); err == nil {
		t.Error("AddMany with an item without number succeeded")
	}
}

// An opt-out written through another connection (another replica, or
// ingest's import) is honoured by an index within a second.
func TestIndexSeesAddWithinASecond(t *testing.T) {
	ctx := context.Background()
	srv := bustest.Start(t)
	writer := store(t, bustest.Connect(t, srv))
	n := number(t, "06 12 34 56 78")
	if _, err := writer.Add(ctx, n, stop("Acme", "36123", "mo/1", t0)); err != nil {
		t.Fatal(err)
	}
	x, err := optout.WatchIndex(ctx, bustest.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Stop()
	// Loaded before WatchIndex returns.
	if _, ok := x.Blocked(n, "t1", "Acme", "36123"); !ok {
		t.Fatal("an opt-out written before WatchIndex is not in the index")
	}
	m := number(t, "07 81 22 33 44")
	written := time.Now()
	if _, err := writer.Add(ctx, m, stop("Zeta", "36123", "mo/2", t0)); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, time.Second, func() error {
		if _, ok := x.Blocked(m, "t1", "Zeta", "36999"); !ok {
			return fmt.Errorf("the new opt-out is not in the index")
		}
		return nil
	})
	t.Logf("seen by the index %v after it was written", time.Since(written).Round(time.Microsecond))
	if err := writer.Remove(ctx, m, stop("Zeta", "36123", "", t0)); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, time.Second, func() error {
		if _, ok := x.Blocked(m, "t1", "Zeta", "36999"); ok {
			return fmt.Errorf("the removed opt-out still blocks")
		}
		return nil
	})
}

// Each scope stops what it says, and nothing else.
func TestIndexBlockedPerScope(t *testing.T) {
	ctx := context.Background()
	b := bustest.Connect(t, bustest.Start(t))
	st := store(t, b)
	brand := number(t, "06 11 11 11 11")
	code := number(t, "06 22 22 22 22")
	partner := number(t, "06 33 33 33 33")
	clean := number(t, "06 44 44 44 44")
	for _, it := range []optout.Item{
		{Number: brand, Entry: stop("Acme", "36123", "mo/1", t0)},
		{Number: code, Entry: optout.Entry{Scope: optout.ScopeShortCode, ShortCode: "36123", Source: optout.SourceMOStop, At: t0, MOID: "mo/2", Text: "Stop"}},
		{Number: partner, Entry: optout.Entry{Scope: optout.ScopePartner, Tenant: "t1", Source: optout.SourcePartnerImport, At: t0}},
	} {
		if _, err := st.Add(ctx, it.Number, it.Entry); err != nil {
			t.Fatal(err)
		}
	}
	x, err := optout.WatchIndex(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Stop()
	for _, tc := range []struct {
		name                     string
		n                        numplan.Number
		tenant, brand, shortCode string
		want                     optout.Scope
	}{
		{"brand, the short code of the STOP", brand, "t1", "Acme", "36123", optout.ScopeBrand},
		{"brand, another short code", brand, "t1", "Acme", "36999", optout.ScopeBrand},
		{"brand, written otherwise", brand, "t2", "  aCME", "35000", optout.ScopeBrand},
		{"brand, another brand", brand, "t1", "Zeta", "36123", ""},
		{"short code, any brand", code, "t1", "Zeta", "36123", optout.ScopeShortCode},
		{"short code, another short code", code, "t1", "Zeta", "36999", ""},
		{"partner, any brand and short code", partner, "t1", "Zeta", "38000", optout.ScopePartner},
		{"partner, another partner", partner, "t2", "Zeta", "38000", ""},
		{"a number without opt-out", clean, "t1", "Acme", "36123", ""},
		{"no number", numplan.Number{}, "t1", "Acme", "36123", ""},
	} {
		e, ok := x.Blocked(tc.n, tc.tenant, tc.brand, tc.shortCode)
		if ok != (tc.want != "") || e.Scope != tc.want {
			t.Errorf("%s: blocked %v by scope %q, want %q", tc.name, ok, e.Scope, tc.want)
		}
	}
}

func BenchmarkIndexBlocked(b *testing.B) {
	ctx := context.Background()
	bs := bustest.Connect(b, bustest.Start(b))
	st := store(b, bs)
	items := make([]optout.Item, 1000)
	for i := range items {
		items[i] = optout.Item{Number: number(b, "06"+strconv.Itoa(10000000+i)), Entry: stop("Acme", "36123", "mo", t0)}
	}
	if _, err := st.AddMany(ctx, items); err != nil {
		b.Fatal(err)
	}
	x, err := optout.WatchIndex(ctx, bs)
	if err != nil {
		b.Fatal(err)
	}
	defer x.Stop()
	hit, miss := items[500].Number, number(b, "07 81 22 33 44")
	b.Run("opted-out", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := x.Blocked(hit, "t1", "ACME", "36999"); !ok {
				b.Fatal("not blocked")
			}
		}
	})
	b.Run("clean", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := x.Blocked(miss, "t1", "Acme", "36123"); ok {
				b.Fatal("blocked")
			}
		}
	})
}
