package ported_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	adminv1 "pushsms.io/proto/gen/pushsms/admin/v1"
	"pushsms.io/services/compliance/ported"
)

func TestUpload(t *testing.T) {
	e := start(t)
	file := strings.Join([]string{
		"# portability file, 2026-11-27", // 1
		"msisdn;operator",                // 2: header
		"06 12 34 56 78;FRTE",            // 3
		"06 07 12 34 56;SFR0;x",          // 4: malformed
		"06 39 12 34 56;FRTE",            // 5: Mayotte
		"",                               // 6
		"+33 7 81 23 45 67;BOUY",         // 7
		"06 98 76 54 32;ORANGE",          // 8: not a code
		"06 98 76 54 33;FRMO",            // 9
	}, "\n")
	// Batches of 2: the service's positions span batches.
	res, err := ported.Upload(context.Background(), e.client, strings.NewReader(file), full, "file.csv", 2)
	if err != nil {
		t.Fatal(err)
	}
	if res.GetVersion() != 1 || res.GetSize() != 3 || res.Lines != 6 || res.Malformed != 1 || res.GetRefused() != 2 {
		t.Errorf("got version %d size %d lines %d malformed %d refused %d; want 1 3 6 1 2",
			res.GetVersion(), res.GetSize(), res.Lines, res.Malformed, res.GetRefused())
	}
	var lines []int
	for _, le := range res.Errors {
		lines = append(lines, le.Line)
	}
	if fmt.Sprint(lines) != "[4 5 8]" {
		t.Errorf("refused lines: got %v, want [4 5 8]", lines)
	}
	wantTable(t, e.loaded(t), map[string]string{"06 12 34 56 78": "FRTE", "07 81 23 45 67": "BOUY", "06 98 76 54 33": "FRMO"})

	res, err = ported.Upload(context.Background(), e.client, strings.NewReader("0612345678,\n0698765433,SFR0\n"), incremental, "delta.csv", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if res.GetVersion() != 2 || res.GetDeleted() != 1 || res.GetUpserted() != 1 || res.GetSize() != 2 {
		t.Errorf("incremental: got %v", res.ImportPortedNumbersResponse)
	}
}

// brokenReader yields its data, then fails, as a file on a lost mount.
type brokenReader struct{ r io.Reader }

var errDisk = errors.New("input/output error")

func (b brokenReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if errors.Is(err, io.EOF) {
		return n, errDisk
	}
	return n, err
}

// TestUploadFailingMidwayChangesNothing reads a file that breaks after
// several batches went to the service: the import is cancelled and the
// table keeps its version and content.
func TestUploadFailingMidwayChangesNothing(t *testing.T) {
	e := start(t)
	e.mustImport(t, full, []entry{{"06 12 34 56 78", "FRTE"}})
	var b strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&b, "06%08d,SFR0\n", 13_000_000+i)
	}
	for _, mode := range []adminv1.ImportMode{full, incremental} {
		_, err := ported.Upload(context.Background(), e.client, brokenReader{strings.NewReader(b.String())}, mode, "broken.csv", 100)
		if !errors.Is(err, errDisk) {
			t.Errorf("%s: got %v, want the read error", mode, err)
		}
	}
	// The stream was cancelled, never closed: the service cannot have
	// reached its commit, whenever it notices the cancellation.
	st, err := e.client.GetPortedNumbers(context.Background(), &adminv1.GetPortedNumbersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetVersion() != 1 || st.GetSize() != 1 {
		t.Errorf("got version %d size %d, want 1, 1", st.GetVersion(), st.GetSize())
	}
	wantTable(t, e.loaded(t), map[string]string{"06 12 34 56 78": "FRTE", "06 13 00 00 00": ""})
}
