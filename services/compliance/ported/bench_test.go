package ported_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"pushsms.io/lib/numplan"
	adminv1 "pushsms.io/proto/gen/pushsms/admin/v1"
)

// million is the size of the benchmarks' table: the order of the ported
// numbers of a real portability file.
const million = 1_000_000

// millionBatches is a full file of a million ported numbers in 0612…,
// 0613… (SFR blocks), in batches of 5 000 as the CLI sends them, with a
// handful of operator codes.
func millionBatches() [][]*adminv1.PortedNumber {
	codes := []string{"FRTE", "SFR0", "BOUY", "FRMO", "LYCA", "TRAT"}
	var batches [][]*adminv1.PortedNumber
	for i := 0; i < million; i += 5000 {
		b := make([]*adminv1.PortedNumber, 0, 5000)
		for j := i; j < i+5000; j++ {
			b = append(b, &adminv1.PortedNumber{Msisdn: fmt.Sprintf("06%08d", 12_000_000+j*2), Operator: codes[j%len(codes)]})
		}
		batches = append(batches, b)
	}
	return batches
}

// importAll streams batches as one full import.
func (e env) importAll(b *testing.B, batches [][]*adminv1.PortedNumber) *adminv1.ImportPortedNumbersResponse {
	b.Helper()
	stream, err := e.client.ImportPortedNumbers(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if err := stream.Send(&adminv1.ImportPortedNumbersRequest{Item: &adminv1.ImportPortedNumbersRequest_Spec{
		Spec: &adminv1.ImportPortedNumbersSpec{Mode: adminv1.ImportMode_IMPORT_MODE_FULL, Source: "bench"}}}); err != nil {
		b.Fatal(err)
	}
	for _, entries := range batches {
		if err := stream.Send(&adminv1.ImportPortedNumbersRequest{Item: &adminv1.ImportPortedNumbersRequest_Batch{
			Batch: &adminv1.PortedNumberBatch{Entries: entries}}}); err != nil {
			b.Fatal(err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		b.Fatal(err)
	}
	if resp.GetSize() != million || resp.GetRefused() != 0 {
		b.Fatalf("import: got size %d, %d refused; want %d, 0", resp.GetSize(), resp.GetRefused(), million)
	}
	return resp
}

// BenchmarkFullImport imports a million rows through gRPC over TCP into
// PostgreSQL, replacing a table of a million. Run with -benchtime=1x.
func BenchmarkFullImport(b *testing.B) {
	e := start(b)
	batches := millionBatches()
	e.importAll(b, batches) // the table to replace
	start, n := time.Now(), 0
	for b.Loop() {
		e.importAll(b, batches)
		n++
	}
	b.ReportMetric(float64(n*million)/time.Since(start).Seconds(), "rows/s")
}

// BenchmarkOperator looks numbers up in a table of a million entries
// loaded from PostgreSQL, as the network rule does per message: half are
// in the table, half not. It reports the snapshot's memory per entry.
func BenchmarkOperator(b *testing.B) {
	e := start(b)
	e.importAll(b, millionBatches())
	tab := e.loaded(b)
	nums := make([]numplan.Number, 1024)
	for i := range nums {
		n, err := numplan.Parse(fmt.Sprintf("06%08d", 12_000_000+i*1_001)) // odd step: every other one is in the table
		if err != nil {
			b.Fatal(err)
		}
		nums[i] = n
	}
	ctx := context.Background()
	found := 0
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_, known, err := tab.Operator(ctx, nums[i%len(nums)])
		if err != nil {
			b.Fatal(err)
		}
		if known {
			found++
		}
		i++
	}
	if want := i / 2; found < want-1 || found > want+1 {
		b.Fatalf("found %d of %d numbers, want half", found, i)
	}
	b.ReportMetric(float64(tab.MemoryBytes())/million, "B/entry")
}

// BenchmarkLoad reads a million-entry table from PostgreSQL into a new
// snapshot: the time a replica takes to serve an import once notified.
func BenchmarkLoad(b *testing.B) {
	e := start(b)
	e.importAll(b, millionBatches())
	for b.Loop() {
		if tab := e.loaded(b); tab.Len() != million {
			b.Fatalf("got %d entries, want %d", tab.Len(), million)
		}
	}
}
