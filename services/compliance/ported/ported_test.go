package ported_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"pushsms.io/lib/numplan"
	"pushsms.io/lib/pgdb"
	"pushsms.io/lib/pgtest"
	"pushsms.io/lib/rpc"
	"pushsms.io/lib/telemetry"
	adminv1 "pushsms.io/proto/gen/pushsms/admin/v1"
	"pushsms.io/services/compliance/ported"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	full        = adminv1.ImportMode_IMPORT_MODE_FULL
	incremental = adminv1.ImportMode_IMPORT_MODE_INCREMENTAL
)

// env is a migrated database and the admin service on a real TCP port.
type env struct {
	db     *pgtest.DB
	client adminv1.PortedNumbersServiceClient
}

func newDB(t testing.TB) *pgtest.DB {
	t.Helper()
	return pgtest.New(t, pgtest.Migrated(ported.Schema, ported.Migrations()))
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testLogger logs into the test's log, shown when it fails.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func start(t testing.TB) env {
	t.Helper()
	db := newDB(t)
	tel, err := telemetry.Setup(context.Background(), "compliance", telemetry.Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := rpc.Listen("127.0.0.1:0", tel, rpc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ported.NewServer(db.Pool, discard()).Register(srv)
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop(5 * time.Second)
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return env{db: db, client: adminv1.NewPortedNumbersServiceClient(conn)}
}

// entry is one line of a portability file.
type entry struct{ msisdn, operator string }

// importBatches streams a spec and the batches and returns the outcome.
func (e env) importBatches(ctx context.Context, mode adminv1.ImportMode, batches ...[]entry) (*adminv1.ImportPortedNumbersResponse, error) {
	stream, err := e.client.ImportPortedNumbers(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&adminv1.ImportPortedNumbersRequest{Item: &adminv1.ImportPortedNumbersRequest_Spec{
		Spec: &adminv1.ImportPortedNumbersSpec{Mode: mode, Source: "test.csv"}}}); err != nil {
		return nil, err
	}
	for _, b := range batches {
		pb := &adminv1.PortedNumberBatch{}
		for _, en := range b {
			pb.Entries = append(pb.Entries, &adminv1.PortedNumber{Msisdn: en.msisdn, Operator: en.operator})
		}
		if err := stream.Send(&adminv1.ImportPortedNumbersRequest{Item: &adminv1.ImportPortedNumbersRequest_Batch{Batch: pb}}); err != nil {
			if errors.Is(err, io.EOF) {
				break // the server ended the call: CloseAndRecv tells why
			}
			return nil, err
		}
	}
	return stream.CloseAndRecv()
}

func (e env) mustImport(t testing.TB, mode adminv1.ImportMode, batches ...[]entry) *adminv1.ImportPortedNumbersResponse {
	t.Helper()
	resp, err := e.importBatches(context.Background(), mode, batches...)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	return resp
}

// loaded returns a table loaded from e's database, as a replica starts.
func (e env) loaded(t testing.TB) *ported.Table {
	t.Helper()
	tab := ported.NewTable(discard())
	if err := tab.Load(context.Background(), e.db.Pool); err != nil {
		t.Fatal(err)
	}
	return tab
}

// lookup asks tab for a number written in any French format; "" is a
// number the table does not hold.
func lookup(t testing.TB, tab *ported.Table, msisdn string) string {
	t.Helper()
	n, err := numplan.Parse(msisdn)
	if err != nil {
		t.Fatal(err)
	}
	code, known, err := tab.Operator(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	if !known {
		return ""
	}
	return code
}

type counts struct{ version, upserted, deleted, refused, size int64 }

func countsOf(r *adminv1.ImportPortedNumbersResponse) counts {
	return counts{r.GetVersion(), r.GetUpserted(), r.GetDeleted(), r.GetRefused(), r.GetSize()}
}

// wantTable checks the operator of each number.
func wantTable(t *testing.T, tab *ported.Table, want map[string]string) {
	t.Helper()
	for msisdn, op := range want {
		if got := lookup(t, tab, msisdn); got != op {
			t.Errorf("%s: got operator %q, want %q", numplanMasked(t, msisdn), got, op)
		}
	}
}

func numplanMasked(t testing.TB, msisdn string) string {
	n, err := numplan.Parse(msisdn)
	if err != nil {
		t.Fatal(err)
	}
	return n.Masked()
}

func TestFullThenIncrementalImport(t *testing.T) {
	e := start(t)
	resp := e.mustImport(t, full,
		[]entry{
			{"06 12 34 56 78", "FRTE"},     // SFR block, ported to Orange
			{"+33 6 07 12 34 56", "sfr0"},  // Orange block, ported to SFR; code upper-cased
			{"0033 7 81 23 45 67", "BOUY"}, // Free block, ported to Bouygues
		},
		[]entry{
			{"06 39 12 34 56", "FRTE"},       // Mayotte: not metropolitan
			{"06 98 76 54 32", "ORANGE"},     // not an ARCEP code
			{"01 23 45 67 89", "FRTE"},       // fixed line
			{"07 00 00 10 12 34 56", "FRTE"}, // M2M: allowed
			{"06 98 76 54 32", ""},           // no operator in a full import
		})
	if got, want := countsOf(resp), (counts{version: 1, upserted: 4, refused: 4, size: 4}); got != want {
		t.Errorf("full import: got %+v, want %+v", got, want)
	}
	var positions []int64
	for _, er := range resp.GetErrors() {
		positions = append(positions, er.GetPosition())
		if er.GetDetail() == "" {
			t.Errorf("refusal at %d without detail", er.GetPosition())
		}
	}
	if fmt.Sprint(positions) != "[3 4 5 7]" {
		t.Errorf("refused positions: got %v, want [3 4 5 7]", positions)
	}
	tab := e.loaded(t)
	wantTable(t, tab, map[string]string{
		"+33612345678":         "FRTE",
		"06 07 12 34 56":       "SFR0",
		"07 81 23 45 67":       "BOUY",
		"07 00 00 10 12 34 56": "FRTE",
		"06 98 76 54 32":       "",
	})

	resp = e.mustImport(t, incremental, []entry{
		{"06 07 12 34 56", "FRMO"},  // moves again
		{"07 81 23 45 67", ""},      // back to its block holder
		{"06 98 76 54 32", "SFR0"},  // new
		{"06 12 34 56 78", "FRTE"},  // unchanged: not counted
		{"06 11 11 11 11", ""},      // deletion of a number not there
		{"06 11 22 33 44", "FR TE"}, // refused
	})
	if got, want := countsOf(resp), (counts{version: 2, upserted: 2, deleted: 1, refused: 1, size: 4}); got != want {
		t.Errorf("incremental import: got %+v, want %+v", got, want)
	}
	if err := tab.Load(context.Background(), e.db.Pool); err != nil {
		t.Fatal(err)
	}
	wantTable(t, tab, map[string]string{
		"+33612345678":   "FRTE",
		"06 07 12 34 56": "FRMO",
		"07 81 23 45 67": "",
		"06 98 76 54 32": "SFR0",
	})

	// A full import replaces everything: what it does not list goes.
	resp = e.mustImport(t, full, []entry{{"06 98 76 54 32", "BOUY"}, {"06 98 76 54 32", "FRMO"}})
	if got, want := countsOf(resp), (counts{version: 3, upserted: 1, deleted: 3, size: 1}); got != want {
		t.Errorf("second full import: got %+v, want %+v", got, want)
	}
	if err := tab.Load(context.Background(), e.db.Pool); err != nil {
		t.Fatal(err)
	}
	wantTable(t, tab, map[string]string{
		"+33612345678":   "",
		"06 07 12 34 56": "",
		"06 98 76 54 32": "FRMO", // the last entry of a number wins
	})
	if tab.Version() != 3 || tab.Len() != 1 {
		t.Errorf("table: got version %d, %d entries; want 3, 1", tab.Version(), tab.Len())
	}

	st, err := e.client.GetPortedNumbers(context.Background(), &adminv1.GetPortedNumbersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetVersion() != 3 || st.GetSize() != 1 || st.GetSource() != "test.csv" || st.GetImportedAt() == nil {
		t.Errorf("status: got %v", st)
	}
}

func TestStatusBeforeAnyImport(t *testing.T) {
	e := start(t)
	st, err := e.client.GetPortedNumbers(context.Background(), &adminv1.GetPortedNumbersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetVersion() != 0 || st.GetSize() != 0 {
		t.Errorf("got %v, want version 0, size 0", st)
	}
	tab := e.loaded(t)
	if tab.Version() != 0 || lookup(t, tab, "06 12 34 56 78") != "" {
		t.Errorf("empty table: got version %d", tab.Version())
	}
}

func TestLookupBeforeLoad(t *testing.T) {
	n, err := numplan.Parse("06 12 34 56 78")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = ported.NewTable(discard()).Operator(context.Background(), n)
	if !errors.Is(err, ported.ErrNotLoaded) {
		t.Errorf("got %v, want ErrNotLoaded (the message is retried, not decided)", err)
	}
}

// badRequest returns the fields of an InvalidArgument status.
func badRequest(t *testing.T, err error) []string {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("got %v, want InvalidArgument", err)
	}
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	return fields
}

// TestFailedImportChangesNothing breaks imports in every way a stream can
// break, after a first import, and checks the table did not move.
func TestFailedImportChangesNothing(t *testing.T) {
	e := start(t)
	e.mustImport(t, full, []entry{{"06 12 34 56 78", "FRTE"}})
	valid := []entry{{"06 98 76 54 32", "FRTE"}, {"06 12 34 56 78", "BOUY"}}

	t.Run("spec twice", func(t *testing.T) {
		stream, err := e.client.ImportPortedNumbers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		spec := &adminv1.ImportPortedNumbersRequest{Item: &adminv1.ImportPortedNumbersRequest_Spec{Spec: &adminv1.ImportPortedNumbersSpec{Mode: full}}}
		batch := &adminv1.ImportPortedNumbersRequest{Item: &adminv1.ImportPortedNumbersRequest_Batch{Batch: &adminv1.PortedNumberBatch{
			Entries: []*adminv1.PortedNumber{{Msisdn: "06 98 76 54 32", Operator: "FRTE"}}}}}
		for _, m := range []*adminv1.ImportPortedNumbersRequest{spec, batch, spec} {
			if err := stream.Send(m); err != nil && !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
		}
		_, err = stream.CloseAndRecv()
		if got := fmt.Sprint(badRequest(t, err)); got != "[batch]" {
			t.Errorf("got fields %s, want [batch]", got)
		}
	})
	t.Run("batch without spec", func(t *testing.T) {
		stream, err := e.client.ImportPortedNumbers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&adminv1.ImportPortedNumbersRequest{Item: &adminv1.ImportPortedNumbersRequest_Batch{Batch: &adminv1.PortedNumberBatch{}}}); err != nil {
			t.Fatal(err)
		}
		_, err = stream.CloseAndRecv()
		if got := fmt.Sprint(badRequest(t, err)); got != "[spec]" {
			t.Errorf("got fields %s, want [spec]", got)
		}
	})
	t.Run("no mode", func(t *testing.T) {
		_, err := e.importBatches(context.Background(), adminv1.ImportMode_IMPORT_MODE_UNSPECIFIED, valid)
		if got := fmt.Sprint(badRequest(t, err)); got != "[spec.mode]" {
			t.Errorf("got fields %s, want [spec.mode]", got)
		}
	})
	t.Run("full import of nothing valid", func(t *testing.T) {
		_, err := e.importBatches(context.Background(), full, []entry{{"01 23 45 67 89", "FRTE"}})
		if got := fmt.Sprint(badRequest(t, err)); got != "[batch.entries]" {
			t.Errorf("got fields %s, want [batch.entries]", got)
		}
	})
	t.Run("batch too large", func(t *testing.T) {
		big := make([]entry, ported.MaxBatch+1)
		for i := range big {
			big[i] = entry{fmt.Sprintf("06 12 %06d", i), "FRTE"}
		}
		_, err := e.importBatches(context.Background(), full, valid, big)
		if got := fmt.Sprint(badRequest(t, err)); got != "[batch.entries]" {
			t.Errorf("got fields %s, want [batch.entries]", got)
		}
	})
	for _, mode := range []adminv1.ImportMode{full, incremental} {
		t.Run("cancelled "+mode.String(), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			stream, err := e.client.ImportPortedNumbers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(&adminv1.ImportPortedNumbersRequest{Item: &adminv1.ImportPortedNumbersRequest_Spec{Spec: &adminv1.ImportPortedNumbersSpec{Mode: mode}}}); err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(&adminv1.ImportPortedNumbersRequest{Item: &adminv1.ImportPortedNumbersRequest_Batch{Batch: &adminv1.PortedNumberBatch{
				Entries: []*adminv1.PortedNumber{{Msisdn: "06 98 76 54 32", Operator: "FRTE"}, {Msisdn: "06 12 34 56 78", Operator: ""}}}}}); err != nil {
				t.Fatal(err)
			}
			// The server has staged the batch once it asks for the next one;
			// wait until the staging transaction is there, then break the
			// stream midway.
			waitStaging(t, e.db.Pool)
			cancel()
			if _, err := stream.CloseAndRecv(); status.Code(err) != codes.Canceled {
				t.Errorf("got %v, want Canceled", err)
			}
		})
	}
	st, err := e.client.GetPortedNumbers(context.Background(), &adminv1.GetPortedNumbersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetVersion() != 1 || st.GetSize() != 1 {
		t.Errorf("after failed imports: got version %d size %d, want 1, 1", st.GetVersion(), st.GetSize())
	}
	wantTable(t, e.loaded(t), map[string]string{"06 12 34 56 78": "FRTE", "06 98 76 54 32": ""})
}

// waitStaging waits until a session holds the staging table of an
// import with rows in it (pg_stat_activity shows the COPY done: the
// session is idle in transaction).
func waitStaging(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		err := pool.QueryRow(context.Background(), `
			SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND state = 'idle in transaction' AND query LIKE 'copy%'`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no import staged its batch within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReplicaSeesImport runs two replicas' tables, each with a pool of its
// own, watching the database: an import made through the service is served
// by both within 2 s, without restarting them.
func TestReplicaSeesImport(t *testing.T) {
	e := start(t)
	var tables []*ported.Table
	for range 2 {
		pool, err := pgdb.Open(context.Background(), pgdb.Config{URL: e.db.URL, MaxConns: 3}, nil)
		if err != nil {
			t.Fatal(err)
		}
		tab := ported.NewTable(discard())
		if err := tab.Load(context.Background(), pool); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- tab.Watch(ctx, pool) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("watch: %v", err)
			}
			pool.Close()
		})
		tables = append(tables, tab)
	}
	for _, step := range []struct {
		mode    adminv1.ImportMode
		entries []entry
		want    map[string]string
	}{
		{full, []entry{{"06 12 34 56 78", "FRTE"}}, map[string]string{"06 12 34 56 78": "FRTE"}},
		{incremental, []entry{{"06 12 34 56 78", ""}, {"06 07 12 34 56", "SFR0"}}, map[string]string{"06 12 34 56 78": "", "06 07 12 34 56": "SFR0"}},
	} {
		resp := e.mustImport(t, step.mode, step.entries)
		committed := time.Now()
		for i, tab := range tables {
			for tab.Version() != resp.GetVersion() {
				if time.Since(committed) > 2*time.Second {
					t.Fatalf("replica %d: still at version %d 2s after import %d committed", i, tab.Version(), resp.GetVersion())
				}
				time.Sleep(5 * time.Millisecond)
			}
			wantTable(t, tab, step.want)
		}
	}
}

// TestReplicaRecoversFromLostConnection kills the connection a replica
// listens on, then imports while it is down: the notification is lost, and
// the replica still serves the import, found when it reconnects.
func TestReplicaRecoversFromLostConnection(t *testing.T) {
	e := start(t)
	e.mustImport(t, full, []entry{{"06 12 34 56 78", "FRTE"}})
	tab := e.loaded(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tab.Watch(ctx, e.db.Pool) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watch: %v", err)
		}
	}()
	listening := func() int {
		var n int
		if err := e.db.Pool.QueryRow(context.Background(), `
			SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND query = 'LISTEN compliance_ported'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	for listening() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the replica never listened")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := e.db.Pool.Exec(context.Background(), `
		SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query = 'LISTEN compliance_ported'`); err != nil {
		t.Fatal(err)
	}
	resp := e.mustImport(t, incremental, []entry{{"06 12 34 56 78", "SFR0"}})
	deadline = time.Now().Add(10 * time.Second)
	for tab.Version() != resp.GetVersion() {
		if time.Now().After(deadline) {
			t.Fatalf("replica at version %d, import %d: never reloaded after losing its connection", tab.Version(), resp.GetVersion())
		}
		time.Sleep(10 * time.Millisecond)
	}
	wantTable(t, tab, map[string]string{"06 12 34 56 78": "SFR0"})
}

// TestConcurrentImports runs incremental imports at once: each gets a
// version of its own and every change is kept.
func TestConcurrentImports(t *testing.T) {
	e := start(t)
	const n = 4
	versions := make(chan int64, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			resp, err := e.importBatches(context.Background(), incremental, []entry{{fmt.Sprintf("06 12 34 56 %02d", i), "FRTE"}})
			if err != nil {
				errs <- err
				return
			}
			versions <- resp.GetVersion()
		}()
	}
	seen := map[int64]bool{}
	for range n {
		select {
		case err := <-errs:
			t.Fatal(err)
		case v := <-versions:
			seen[v] = true
		}
	}
	if len(seen) != n || !seen[1] || !seen[n] {
		t.Errorf("got versions %v, want 1 to %d once each", seen, n)
	}
	tab := e.loaded(t)
	if tab.Len() != n || tab.Version() != n {
		t.Errorf("got %d entries at version %d, want %d at %d", tab.Len(), tab.Version(), n, n)
	}
}
