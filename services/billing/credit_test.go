package billing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/fault"
	"pushsms.io/lib/pgtest"
	"pushsms.io/lib/service"
	"pushsms.io/lib/telemetry"
	adminv1 "pushsms.io/proto/gen/pushsms/admin/v1"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

var creditExpiry = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func creditDB(t testing.TB) *pgtest.DB {
	t.Helper()
	return pgtest.New(t, pgtest.Migrated(Schema, Migrations()))
}

func account(t testing.TB, db Querier, tenant string) CreditAccount {
	t.Helper()
	a, err := GetCreditAccountOf(context.Background(), db, tenant)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// wantAccount checks an account's counters: top-ups, captured, in flight,
// and that available is what is left of them.
func wantAccount(t testing.TB, db Querier, tenant string, toppedUp, captured, reserved int64) {
	t.Helper()
	a := account(t, db, tenant)
	if a.ToppedUp != toppedUp || a.Captured != captured || a.Reserved != reserved {
		t.Errorf("%s: got topped up %d, captured %d, reserved %d; want %d, %d, %d", tenant, a.ToppedUp, a.Captured, a.Reserved, toppedUp, captured, reserved)
	}
	if a.Available() != toppedUp-captured-reserved {
		t.Errorf("%s: available %d, want %d", tenant, a.Available(), toppedUp-captured-reserved)
	}
}

func reserve(t testing.TB, db Beginner, tenant string, items ...CreditItem) []bool {
	t.Helper()
	prepaid, ds, _, err := ReserveCredit(context.Background(), db, tenant, items, creditExpiry)
	if err != nil {
		t.Fatal(err)
	}
	if !prepaid {
		t.Fatalf("%s: not prepaid", tenant)
	}
	out := make([]bool, len(ds))
	for i, d := range ds {
		out[i] = d.Reserved
	}
	return out
}

// settle records final reports as the ledger's batch does: the entries
// new to the ledger, and only those, are settled in the same transaction.
func settle(t testing.TB, db Beginner, entries ...Entry) {
	t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		fresh, err := newLedgerEntries(ctx, tx, entries)
		if err != nil {
			return err
		}
		return SettleCredit(ctx, tx, fresh)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// newLedgerEntries inserts entries in the ledger (schema of migration
// 001) and returns those that were not there.
func newLedgerEntries(ctx context.Context, tx pgx.Tx, entries []Entry) ([]Entry, error) {
	var fresh []Entry
	for _, e := range entries {
		tag, err := tx.Exec(ctx, `INSERT INTO billing.ledger (message_id, segment_index, tenant_id, short_code, state, billable, reported_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
			e.MessageID, e.SegmentIndex, e.TenantID, e.ShortCode, string(e.State), e.Billable, e.ReportedAt)
		if err != nil {
			return nil, err
		}
		if tag.RowsAffected() == 1 {
			fresh = append(fresh, e)
		}
	}
	return fresh, nil
}

// settleFresh settles entries as new ledger entries, without the ledger
// (the benchmark: what SettleCredit adds to a batch).
func settleFresh(t testing.TB, db Beginner, entries ...Entry) {
	t.Helper()
	ctx := context.Background()
	if err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error { return SettleCredit(ctx, tx, entries) }); err != nil {
		t.Fatal(err)
	}
}

// nack releases a NACKed segment as CreditDurable does.
func nack(t testing.TB, db Beginner, id string, seg int) {
	t.Helper()
	ctx := context.Background()
	if err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error { return settleNack(ctx, tx, id, seg) }); err != nil {
		t.Fatal(err)
	}
}

func entry(id string, seg int, st State) Entry {
	return Entry{MessageID: id, SegmentIndex: seg, TenantID: "acme", ShortCode: "36123", State: st, Billable: st == Delivered, ReportedAt: creditExpiry}
}

// The must-show at the level of the database: 100 segments of credit
// take 100 segments, the 101st is refused; a failure gives its segment
// back, a delivery captures it.
func TestCreditReserveCaptureRelease(t *testing.T) {
	db := creditDB(t)
	ctx := context.Background()
	if _, dup, err := TopUpCredit(ctx, db.Pool, "acme", 100, "order-1", "first"); err != nil || dup {
		t.Fatalf("top up: dup %v, err %v", dup, err)
	}
	// 50 messages of 2 segments: the whole credit.
	for i := range 50 {
		if got := reserve(t, db.Pool, "acme", CreditItem{fmt.Sprintf("m-%d", i), 2}); !got[0] {
			t.Fatalf("message %d refused with credit left", i)
		}
	}
	wantAccount(t, db.Pool, "acme", 100, 0, 100)
	prepaid, ds, avail, err := ReserveCredit(ctx, db.Pool, "acme", []CreditItem{{"m-101", 1}}, creditExpiry)
	if err != nil || !prepaid {
		t.Fatalf("101st segment: prepaid %v, err %v", prepaid, err)
	}
	if ds[0].Reserved || ds[0].Available != 0 || avail != 0 {
		t.Errorf("101st segment: got %+v available %d, want refused with 0 left", ds[0], avail)
	}
	// A retried reservation of an accepted message is granted, not charged.
	if got := reserve(t, db.Pool, "acme", CreditItem{"m-7", 2}); !got[0] {
		t.Error("retried reservation refused")
	}
	wantAccount(t, db.Pool, "acme", 100, 0, 100)

	// m-0 delivered, m-1 failed and expired, m-2 one of each.
	settle(t, db.Pool, entry("m-0", 1, Delivered), entry("m-0", 2, Delivered),
		entry("m-1", 1, Failed), entry("m-1", 2, Expired),
		entry("m-2", 1, Delivered), entry("m-2", 2, Failed),
		entry("postpaid-msg", 1, Delivered))
	wantAccount(t, db.Pool, "acme", 100, 3, 94)
	// The same reports again (a redelivered batch) change nothing.
	settle(t, db.Pool, entry("m-0", 1, Delivered), entry("m-1", 1, Failed), entry("m-2", 2, Failed))
	wantAccount(t, db.Pool, "acme", 100, 3, 94)

	// The credit freed by failures is spent again.
	if got := reserve(t, db.Pool, "acme", CreditItem{"m-101", 1}, CreditItem{"m-102", 3}, CreditItem{"m-103", 2}); fmt.Sprint(got) != "[true false true]" {
		t.Errorf("after failures: got %v, want [true false true] (3 segments left)", got)
	}
	wantAccount(t, db.Pool, "acme", 100, 3, 97)

	// A top-up retried with its reference adds nothing.
	if _, dup, err := TopUpCredit(ctx, db.Pool, "acme", 100, "order-1", "again"); err != nil || !dup {
		t.Errorf("repeated top-up: dup %v, err %v; want a duplicate", dup, err)
	}
	if _, _, err := TopUpCredit(ctx, db.Pool, "acme", 10, "order-2", ""); err != nil {
		t.Fatal(err)
	}
	wantAccount(t, db.Pool, "acme", 110, 3, 97)
}

// A message rejected or cancelled before submission releases its whole
// reservation once; a segment delivered after that (cancelled while on
// the wire) is still captured: the ledger bills it.
func TestCreditReleaseWholeMessage(t *testing.T) {
	db := creditDB(t)
	ctx := context.Background()
	if _, _, err := TopUpCredit(ctx, db.Pool, "acme", 10, "o", ""); err != nil {
		t.Fatal(err)
	}
	reserve(t, db.Pool, "acme", CreditItem{"a", 3}, CreditItem{"b", 3})
	settle(t, db.Pool, entry("a", 1, Delivered))
	wantAccount(t, db.Pool, "acme", 10, 1, 5)

	tests := []struct {
		name     string
		tenant   string
		ids      []string
		released int64
	}{
		{"another tenant's message is left alone", "other", []string{"a"}, 0},
		{"the rest of a", "acme", []string{"a"}, 2},
		{"again", "acme", []string{"a"}, 0},
		{"b and an unknown id, any tenant", "", []string{"b", "nope"}, 3},
	}
	for _, tt := range tests {
		n, err := ReleaseCredit(ctx, db.Pool, tt.tenant, tt.ids)
		if err != nil {
			t.Fatal(err)
		}
		if n != tt.released {
			t.Errorf("%s: released %d, want %d", tt.name, n, tt.released)
		}
	}
	wantAccount(t, db.Pool, "acme", 10, 1, 0)
	// Late reports: a's segment 2 delivered after the release is captured,
	// b's segment 1 failed changes nothing.
	settle(t, db.Pool, entry("a", 2, Delivered), entry("b", 1, Failed))
	wantAccount(t, db.Pool, "acme", 10, 2, 0)
	var captured, released int
	if err := db.Pool.QueryRow(ctx, `SELECT captured, released FROM billing.credit_reservations WHERE message_id = 'a'`).Scan(&captured, &released); err != nil {
		t.Fatal(err)
	}
	if captured != 2 || released != 1 {
		t.Errorf("a: captured %d, released %d; want 2, 1", captured, released)
	}
}

// A reservation still open a day after its message expired is released.
func TestCreditReleaseStale(t *testing.T) {
	db := creditDB(t)
	ctx := context.Background()
	if _, _, err := TopUpCredit(ctx, db.Pool, "acme", 10, "o", ""); err != nil {
		t.Fatal(err)
	}
	reserve(t, db.Pool, "acme", CreditItem{"s", 4})
	for _, tt := range []struct {
		now  time.Time
		want int64
	}{
		{creditExpiry.Add(staleGrace - time.Second), 0},
		{creditExpiry.Add(staleGrace + time.Second), 4},
		{creditExpiry.Add(2 * staleGrace), 0},
	} {
		n, err := ReleaseStaleCredit(ctx, db.Pool, tt.now)
		if err != nil {
			t.Fatal(err)
		}
		if n != tt.want {
			t.Errorf("at %v: released %d, want %d", tt.now, n, tt.want)
		}
	}
	wantAccount(t, db.Pool, "acme", 10, 0, 0)
}

// A NACKed segment is released once; the ledger does not release it
// again, and captures it if it was delivered after all (a resend NACKed
// after a first attempt that reached the handset); a NACK after the
// ledger's report changes nothing.
func TestCreditNacks(t *testing.T) {
	db := creditDB(t)
	ctx := context.Background()
	if _, _, err := TopUpCredit(ctx, db.Pool, "acme", 20, "o", ""); err != nil {
		t.Fatal(err)
	}
	reserve(t, db.Pool, "acme", CreditItem{"n1", 3}, CreditItem{"n2", 2})
	wantAccount(t, db.Pool, "acme", 20, 0, 5)
	nack(t, db.Pool, "n1", 1)
	nack(t, db.Pool, "n1", 1) // redelivered
	wantAccount(t, db.Pool, "acme", 20, 0, 4)
	// The ledger's failed report of the NACKed segment: not released again.
	settle(t, db.Pool, entry("n1", 1, Failed))
	wantAccount(t, db.Pool, "acme", 20, 0, 4)
	// n2 segment 1 NACKed, then reported delivered: captured.
	nack(t, db.Pool, "n2", 1)
	wantAccount(t, db.Pool, "acme", 20, 0, 3)
	settle(t, db.Pool, entry("n2", 1, Delivered))
	wantAccount(t, db.Pool, "acme", 20, 1, 3)
	// n2 segment 2 delivered, then a NACK of it: the ledger decided.
	settle(t, db.Pool, entry("n2", 2, Delivered))
	nack(t, db.Pool, "n2", 2)
	wantAccount(t, db.Pool, "acme", 20, 2, 2)
	// Unknown message: nothing.
	nack(t, db.Pool, "postpaid", 1)
	settle(t, db.Pool, entry("n1", 2, Delivered), entry("n1", 3, Expired))
	wantAccount(t, db.Pool, "acme", 20, 3, 0)
}

// Concurrent reservations of one tenant never spend more than its credit.
func TestCreditConcurrentReservations(t *testing.T) {
	db := creditDB(t)
	ctx := context.Background()
	if _, _, err := TopUpCredit(ctx, db.Pool, "acme", 100, "o", ""); err != nil {
		t.Fatal(err)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		granted int
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				_, ds, _, err := ReserveCredit(ctx, db.Pool, "acme", []CreditItem{{fmt.Sprintf("c-%d-%d", w, i), 1}}, creditExpiry)
				if err != nil {
					t.Error(err)
					return
				}
				if ds[0].Reserved {
					mu.Lock()
					granted++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if granted != 100 {
		t.Errorf("granted %d reservations of 1 segment, want 100", granted)
	}
	wantAccount(t, db.Pool, "acme", 100, 0, 100)
}

func TestCreditPostpaidAndTopUpsAppendOnly(t *testing.T) {
	db := creditDB(t)
	ctx := context.Background()
	prepaid, ds, _, err := ReserveCredit(ctx, db.Pool, "postpaid", []CreditItem{{"x", 1}}, creditExpiry)
	if err != nil || prepaid || ds != nil {
		t.Errorf("postpaid tenant: got prepaid %v, %v, %v; want false, nil, nil", prepaid, ds, err)
	}
	if _, err := GetCreditAccountOf(ctx, db.Pool, "postpaid"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("postpaid account: got %v, want not found", err)
	}
	if _, _, err := TopUpCredit(ctx, db.Pool, "acme", 0, "open", ""); err != nil {
		t.Fatal(err)
	}
	ts, err := PrepaidTenants(ctx, db.Pool)
	if err != nil || fmt.Sprint(ts) != "[acme]" {
		t.Errorf("prepaid tenants: got %v, %v; want [acme]", ts, err)
	}
	for _, q := range []string{
		`UPDATE billing.credit_topups SET segments = 1000`,
		`DELETE FROM billing.credit_topups`,
	} {
		if _, err := db.Pool.Exec(ctx, q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: got %v, want append-only refusal", q, err)
		}
	}
}

func TestCreditValidation(t *testing.T) {
	long := strings.Repeat("x", 200)
	tests := []struct {
		name string
		err  error
		want string // a field named in the violations; "" for none
	}{
		{"top-up ok", CheckTopUp("acme", 100, "inv-1", ""), ""},
		{"top-up no tenant", CheckTopUp("", 100, "inv-1", ""), "tenant_id"},
		{"top-up negative", CheckTopUp("acme", -1, "inv-1", ""), "segments"},
		{"top-up too much", CheckTopUp("acme", MaxTopUp+1, "inv-1", ""), "segments"},
		{"top-up no reference", CheckTopUp("acme", 1, "  ", ""), "reference"},
		{"top-up long reference", CheckTopUp("acme", 1, long, ""), "reference"},
		{"top-up tenant with space", CheckTopUp("ac me", 1, "r", ""), "tenant_id"},
		{"top-up bad note", CheckTopUp("acme", 1, "r", "\xff"), "note"},
		{"reserve ok", CheckReserve("acme", []CreditItem{{"m", 10}}), ""},
		{"reserve empty", CheckReserve("acme", nil), "items"},
		{"reserve no id", CheckReserve("acme", []CreditItem{{"", 1}}), "items[0].message_id"},
		{"reserve 0 segments", CheckReserve("acme", []CreditItem{{"m", 0}}), "items[0].segments"},
		{"reserve 256 segments", CheckReserve("acme", []CreditItem{{"m", 256}}), "items[0].segments"},
		{"reserve too many", CheckReserve("acme", make([]CreditItem, MaxCreditItems+1)), "items"},
		{"release ok", CheckRelease("acme", []string{"m"}), ""},
		{"release none", CheckRelease("acme", nil), "message_ids"},
		{"release control char", CheckRelease("acme", []string{"a\nb"}), "message_ids[0]"},
	}
	for _, tt := range tests {
		var ie *fault.InvalidError
		switch {
		case tt.want == "" && tt.err != nil:
			t.Errorf("%s: got %v, want nil", tt.name, tt.err)
		case tt.want == "":
		case !errors.As(tt.err, &ie):
			t.Errorf("%s: got %v, want an invalid argument on %s", tt.name, tt.err, tt.want)
		default:
			found := false
			for _, v := range ie.Violations {
				found = found || v.Field == tt.want
			}
			if !found {
				t.Errorf("%s: got %v, want a violation on %s", tt.name, tt.err, tt.want)
			}
		}
	}
}

// FuzzCheckReserve: whatever a caller sends, validation does not panic,
// and what it accepts is what the table's constraints accept.
func FuzzCheckReserve(f *testing.F) {
	f.Add("acme", "0190f5c4-7c1e-7a3b-8f00-000000000001", 2, 1)
	f.Add("", "", 0, 0)
	f.Add("a b", "m\x00", 256, 1001)
	f.Fuzz(func(t *testing.T, tenant, id string, segments, n int) {
		n = n % (MaxCreditItems + 2)
		if n < 0 {
			n = -n
		}
		items := make([]CreditItem, n)
		for i := range items {
			items[i] = CreditItem{MessageID: id, Segments: segments}
		}
		err := CheckReserve(tenant, items)
		if err != nil {
			var ie *fault.InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("got %T %v, want an invalid argument", err, err)
			}
			return
		}
		if tenant == "" || len(tenant) > maxCreditTenantLen || n == 0 || n > MaxCreditItems ||
			id == "" || len(id) > maxCreditMessageIDLen || segments < 1 || segments > MaxReservedSegments ||
			!creditPrintable(tenant) || !creditPrintable(id) {
			t.Fatalf("accepted tenant %q id %q segments %d items %d", tenant, id, segments, n)
		}
	})
}

// FuzzCheckTopUp: what validation accepts fits the top-ups table.
func FuzzCheckTopUp(f *testing.F) {
	f.Add("acme", int64(100), "inv-2026-11", "note")
	f.Add("", int64(-1), "", "\xff")
	f.Fuzz(func(t *testing.T, tenant string, segments int64, ref, note string) {
		if err := CheckTopUp(tenant, segments, ref, note); err != nil {
			return
		}
		if tenant == "" || segments < 0 || segments > MaxTopUp || strings.TrimSpace(ref) == "" ||
			len(ref) > maxCreditReferenceLen || len(note) > maxCreditNoteLen {
			t.Fatalf("accepted tenant %q segments %d reference %q note %q", tenant, segments, ref, note)
		}
	})
}

// creditService runs the credit part of billing (CreditService over TCP
// and CreditDurable on a real bus) as billing's New and Serve do.
func creditService(t *testing.T) (adminv1.CreditServiceClient, *pgtest.DB, *bus.Bus) {
	t.Helper()
	db := creditDB(t)
	srv := bustest.Start(t)
	cfg := service.DefaultConfig("127.0.0.1:0")
	cfg.Bus.URL = srv.URL()
	cfg.Telemetry = telemetry.Config{LogLevel: "error", LogFormat: "text"}
	dbCfg := DefaultConfig().DB
	dbCfg.URL = db.URL
	ctx, cancel := context.WithCancel(context.Background())
	core, err := service.Open(ctx, service.Options{Name: Name, Config: cfg, DB: &dbCfg, Schema: Schema, Migrations: Migrations()})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	registerCredit(core)
	if err := consumeCredit(ctx, core); err != nil {
		cancel()
		core.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- core.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		core.Close()
	})
	conn, err := grpc.NewClient(core.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return adminv1.NewCreditServiceClient(conn), db, bustest.Connect(t, srv)
}

// Through gRPC and the bus: a top-up, reservations up to the credit, then
// a rejection, a cancellation and a NACK give their segments back.
func TestCreditServiceAndReports(t *testing.T) {
	client, db, pub := creditService(t)
	ctx := context.Background()
	if _, err := client.TopUp(ctx, &adminv1.TopUpRequest{TenantId: "acme", Segments: 10, Reference: "inv-1"}); err != nil {
		t.Fatal(err)
	}
	_, err := client.TopUp(ctx, &adminv1.TopUpRequest{TenantId: "acme", Segments: -5, Reference: "inv-2"})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("negative top-up: got %v, want InvalidArgument", err)
	}
	resp, err := client.ReserveCredit(ctx, &adminv1.ReserveCreditRequest{
		TenantId: "acme", ExpiresAt: timestamppb.New(creditExpiry),
		Items: []*adminv1.CreditItem{{MessageId: "rej", Segments: 3}, {MessageId: "can", Segments: 3}, {MessageId: "nak", Segments: 3}, {MessageId: "big", Segments: 2}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []bool
	for _, d := range resp.GetDecisions() {
		got = append(got, d.GetReserved())
	}
	if !resp.GetPrepaid() || fmt.Sprint(got) != "[true true true false]" || resp.GetAvailable() != 1 {
		t.Fatalf("reserve: got prepaid %v, %v, available %d; want true, [true true true false], 1", resp.GetPrepaid(), got, resp.GetAvailable())
	}
	if _, err := client.ReserveCredit(ctx, &adminv1.ReserveCreditRequest{TenantId: "acme", Items: []*adminv1.CreditItem{{MessageId: "x", Segments: 1}}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("no expiry: got %v, want InvalidArgument", err)
	}
	pp, err := client.ReserveCredit(ctx, &adminv1.ReserveCreditRequest{TenantId: "postpaid", ExpiresAt: timestamppb.New(creditExpiry),
		Items: []*adminv1.CreditItem{{MessageId: "p", Segments: 1}}})
	if err != nil || pp.GetPrepaid() {
		t.Errorf("postpaid: got %v, %v; want not prepaid", pp, err)
	}
	list, err := client.ListPrepaidTenants(ctx, &adminv1.ListPrepaidTenantsRequest{})
	if err != nil || fmt.Sprint(list.GetTenantIds()) != "[acme]" {
		t.Errorf("prepaid tenants: got %v, %v", list.GetTenantIds(), err)
	}

	events := []struct {
		subject, id string
		payload     proto.Message
	}{
		{bus.ReportSubject("rejected", "acme", "36123"), "rej/rejected",
			&eventsv1.MessageRejected{MessageId: "rej", TenantId: "acme", ShortCode: "36123", Reason: partnerv1.Reason_REASON_OPTED_OUT}},
		{bus.ReportSubject("cancelled", "acme", "36123"), "can/cancelled",
			&eventsv1.MessageRejected{MessageId: "can", TenantId: "acme", ShortCode: "36123", Reason: partnerv1.Reason_REASON_CANCELLED}},
		{bus.ReportSubject("nacked", "acme", "36123"), "nak/2/nacked",
			&eventsv1.SegmentReport{MessageId: "nak", TenantId: "acme", ShortCode: "36123", SegmentIndex: 2, SegmentCount: 3,
				State: partnerv1.SegmentState_SEGMENT_STATE_FAILED, Final: true}},
		// The same NACK again under another id: released once.
		{bus.ReportSubject("nacked", "acme", "36123"), "nak/2/nacked#2",
			&eventsv1.SegmentReport{MessageId: "nak", TenantId: "acme", ShortCode: "36123", SegmentIndex: 2, SegmentCount: 3,
				State: partnerv1.SegmentState_SEGMENT_STATE_FAILED, Final: true}},
	}
	for _, e := range events {
		if err := pub.Publish(ctx, e.subject, e.payload, e.id); err != nil {
			t.Fatal(err)
		}
	}
	bustest.WaitIdle(t, pub, bus.StreamReports, CreditDurable, uint64(len(events)), 15*time.Second)
	acct, err := client.GetCreditAccount(ctx, &adminv1.GetCreditAccountRequest{TenantId: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	a := acct.GetAccount()
	// 9 reserved; rej and can give 3 each back, nak one segment: 2 in flight.
	if a.GetToppedUp() != 10 || a.GetCaptured() != 0 || a.GetReserved() != 2 || a.GetAvailable() != 8 {
		t.Errorf("account: got %+v, want topped up 10, captured 0, reserved 2, available 8", a)
	}
	if _, err := client.GetCreditAccount(ctx, &adminv1.GetCreditAccountRequest{TenantId: "postpaid"}); status.Code(err) != codes.NotFound {
		t.Errorf("postpaid account: got %v, want NotFound", err)
	}
	rel, err := client.ReleaseCredit(ctx, &adminv1.ReleaseCreditRequest{TenantId: "acme", MessageIds: []string{"nak"}})
	if err != nil || rel.GetReleased() != 2 {
		t.Errorf("release: got %v, %v; want 2 released", rel, err)
	}
	wantAccount(t, db.Pool, "acme", 10, 0, 0)
}

// BenchmarkSettleCredit is what SettleCredit adds to a ledger batch of
// 2000 entries: for postpaid traffic one indexed lookup that finds
// nothing; for prepaid traffic the settlement rows and counters.
func BenchmarkSettleCredit(b *testing.B) {
	const batch = 2000
	for _, prepaid := range []bool{false, true} {
		b.Run(fmt.Sprintf("prepaid=%v", prepaid), func(b *testing.B) {
			db := creditDB(b)
			ctx := context.Background()
			if _, _, err := TopUpCredit(ctx, db.Pool, "acme", MaxTopUp, "bench", ""); err != nil {
				b.Fatal(err)
			}
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				entries := make([]Entry, batch)
				items := make([]CreditItem, 0, MaxCreditItems)
				for i := range entries {
					id := fmt.Sprintf("bench-%d", n)
					n++
					entries[i] = entry(id, 1, Delivered)
					if prepaid {
						items = append(items, CreditItem{id, 1})
						if len(items) == MaxCreditItems {
							b.StopTimer()
							reserve(b, db.Pool, "acme", items...)
							items = items[:0]
							b.StartTimer()
						}
					}
				}
				settleFresh(b, db.Pool, entries...)
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkReserveCredit is one prepaid message's reservation, as
// SendMessage makes it (without the gRPC hop).
func BenchmarkReserveCredit(b *testing.B) {
	db := creditDB(b)
	ctx := context.Background()
	if _, _, err := TopUpCredit(ctx, db.Pool, "acme", MaxTopUp, "bench", ""); err != nil {
		b.Fatal(err)
	}
	n := 0
	for b.Loop() {
		n++
		if got := reserve(b, db.Pool, "acme", CreditItem{fmt.Sprintf("r-%d", n), 2}); !got[0] {
			b.Fatal("refused")
		}
	}
}

// The stale sweep takes only what is still in flight: messages whose every
// segment was settled are closed, so that however many of them expired
// before it, a stale reservation is released at its first sweep.
func TestCreditReleaseStaleSkipsSettled(t *testing.T) {
	db := creditDB(t)
	ctx := context.Background()
	if _, _, err := TopUpCredit(ctx, db.Pool, "acme", 5000, "o", ""); err != nil {
		t.Fatal(err)
	}
	// More settled messages than one sweep takes, all before the stale one
	// in the sweep's order.
	var items []CreditItem
	var entries []Entry
	for i := range MaxCreditItems + 10 {
		id := fmt.Sprintf("a%04d", i)
		items = append(items, CreditItem{id, 1})
		entries = append(entries, entry(id, 1, Delivered))
	}
	for chunk := range slices.Chunk(items, MaxCreditItems) {
		reserve(t, db.Pool, "acme", chunk...)
	}
	settle(t, db.Pool, entries...)
	reserve(t, db.Pool, "acme", CreditItem{"z-stale", 3})
	var open int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM billing.credit_reservations WHERE closed_at IS NULL`).Scan(&open); err != nil {
		t.Fatal(err)
	}
	if open != 1 {
		t.Errorf("%d reservations open, want only the unsettled one", open)
	}
	n, err := ReleaseStaleCredit(ctx, db.Pool, creditExpiry.Add(staleGrace+time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("first sweep released %d segments, want the stale message's 3", n)
	}
	wantAccount(t, db.Pool, "acme", 5000, int64(len(entries)), 0)
}
