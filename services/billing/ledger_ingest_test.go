package billing_test

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/pgtest"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
	"pushsms.io/services/billing"
)

// ledgerRow is what the ledger holds for one segment.
type ledgerRow struct {
	State      billing.State
	ShortCode  string
	RecordedAt time.Time
}

// ledgerRows reads the whole ledger, by "message/segment".
func ledgerRows(ctx context.Context, db *pgtest.DB) (map[string]ledgerRow, error) {
	rows, err := db.Pool.Query(ctx, `SELECT message_id, segment_index, state, short_code, recorded_at FROM billing.ledger`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]ledgerRow{}
	for rows.Next() {
		var id string
		var seg int
		var r ledgerRow
		if err := rows.Scan(&id, &seg, &r.State, &r.ShortCode, &r.RecordedAt); err != nil {
			return nil, err
		}
		out[fmt.Sprintf("%s/%d", id, seg)] = r
	}
	return out, rows.Err()
}

// sameStates compares the ledger's states with want, key by key.
func sameStates(got map[string]ledgerRow, want map[string]billing.State) error {
	var errs []string
	for k, st := range want {
		g, ok := got[k]
		switch {
		case !ok:
			errs = append(errs, k+" missing")
		case g.State != st:
			errs = append(errs, fmt.Sprintf("%s %s, want %s", k, g.State, st))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			errs = append(errs, k+" not expected")
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("ledger has %d rows, want %d: %d differences, first %q", len(got), len(want), len(errs), errs[:min(len(errs), 5)])
	}
	return nil
}

var protoState = map[billing.State]partnerv1.SegmentState{
	billing.Delivered: partnerv1.SegmentState_SEGMENT_STATE_DELIVERED,
	billing.Failed:    partnerv1.SegmentState_SEGMENT_STATE_FAILED,
	billing.Expired:   partnerv1.SegmentState_SEGMENT_STATE_EXPIRED,
}

// finalReport is a final report of segment seg of message id, reported at
// t (short code and tenant follow from the id's number i).
func finalReport(i, seg int, st billing.State, t time.Time) *eventsv1.SegmentReport {
	r := report(fmt.Sprintf("m-%d", i), int32(seg), protoState[st])
	r.ShortCode = fmt.Sprintf("36%03d", i%4)
	r.TenantId = fmt.Sprintf("tenant-%d", i%3)
	r.At = nil
	if !t.IsZero() {
		r.At = timestamppb.New(t)
	}
	return r
}

// storedEvents is how many events the reports stream holds.
func storedEvents(t *testing.T, b *bus.Bus) uint64 {
	t.Helper()
	st, err := b.JS.Stream(context.Background(), bus.StreamReports)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// Every kind of repetition a final report meets on its way: the same event
// published twice (one Nats-Msg-Id, stored once), a report published again
// under another id (smsc-link restarted), a contradicting second report of
// a segment (delivered then failed: the first recorded wins), bad events
// among good ones, and a replay of the whole stream to a new consumer. The
// ledger ends equal to the first final report of each segment, and the
// aggregate to the ledger, with rows recorded once.
func TestDuplicatesAndRedeliveriesCountOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	day := time.Date(2026, 11, 10, 9, 0, 0, 0, time.UTC)
	want := map[string]billing.State{}
	var events []bus.Event
	add := func(r *eventsv1.SegmentReport, msgID string) {
		if msgID == "" {
			msgID = fmt.Sprintf("%s/%d/%s", r.GetMessageId(), r.GetSegmentIndex(), stateToken(r.GetState()))
		}
		events = append(events, bus.Event{Subject: bus.ReportSubject(stateToken(r.GetState()), r.GetTenantId(), r.GetShortCode()), Msg: r, MsgID: msgID})
	}
	other := map[billing.State]billing.State{billing.Delivered: billing.Failed, billing.Failed: billing.Delivered, billing.Expired: billing.Delivered}
	for i := range 300 {
		segs := i%3 + 1
		for seg := 1; seg <= segs; seg++ {
			st := billing.Delivered
			switch {
			case i%7 == 0 && seg == segs:
				st = billing.Failed
			case i%11 == 0:
				st = billing.Expired
			}
			at := day.Add(time.Duration(i) * 10 * time.Minute) // over three days
			key := fmt.Sprintf("m-%d/%d", i, seg)
			want[key] = st
			add(finalReport(i, seg, st, at), "")
			n := i*3 + seg
			if n%5 == 0 { // the same event again: stored once
				add(finalReport(i, seg, st, at), "")
			}
			if n%4 == 0 { // published again under another id
				add(finalReport(i, seg, st, at), fmt.Sprintf("%s/again", key))
			}
			if n%6 == 0 { // a later, contradicting report
				add(finalReport(i, seg, other[st], at.Add(time.Minute)), "")
			}
		}
	}
	// Bad events among them: never recorded, never blocking.
	noTenant := finalReport(1000, 1, billing.Delivered, day)
	noTenant.TenantId = ""
	add(noTenant, "")
	add(finalReport(1001, 0, billing.Delivered, day), "")
	if err := e.pub.PublishAll(ctx, events); err != nil {
		t.Fatal(err)
	}
	stored := storedEvents(t, e.pub)
	if stored >= uint64(len(events)) {
		t.Fatalf("stream holds %d of %d events: the same Nats-Msg-Id should be stored once", stored, len(events))
	}

	// One batch at a time: the reports are recorded in the stream's order,
	// so the first final report of each segment is known.
	e.run(t, func(c *billing.Config) { c.Batch, c.Workers = 64, 1 })
	e.idle(t, stored)
	first, err := ledgerRows(ctx, e.db)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameStates(first, want); err != nil {
		t.Error(err)
	}
	if err := aggregateMatchesLedger(ctx, e.db); err != nil {
		t.Error(err)
	}
	wantCounts := map[billing.State]int64{}
	for _, st := range want {
		wantCounts[st]++
	}
	gotCounts := map[billing.State]int64{}
	for _, c := range dailyCounts(t, e.db.Pool, day.AddDate(0, 0, -1), day.AddDate(0, 0, 5)) {
		gotCounts[c.State] += c.Segments
	}
	if !maps.Equal(gotCounts, wantCounts) {
		t.Errorf("daily counts by state %v, want %v", gotCounts, wantCounts)
	}

	// A new consumer is handed the whole stream again: nothing changes,
	// not even a row's recorded_at.
	e.stop()
	if err := e.pub.JS.DeleteConsumer(ctx, bus.StreamReports, billing.Name); err != nil {
		t.Fatal(err)
	}
	e.run(t, func(c *billing.Config) { c.Batch = 100 })
	e.idle(t, stored)
	again, err := ledgerRows(ctx, e.db)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.EqualFunc(again, first, func(a, b ledgerRow) bool {
		return a.State == b.State && a.ShortCode == b.ShortCode && a.RecordedAt.Equal(b.RecordedAt)
	}) {
		t.Errorf("after the replay the ledger changed: %d rows, was %d", len(again), len(first))
	}
	if err := aggregateMatchesLedger(ctx, e.db); err != nil {
		t.Error(err)
	}
	replayed := map[billing.State]int64{}
	for _, c := range dailyCounts(t, e.db.Pool, day.AddDate(0, 0, -1), day.AddDate(0, 0, 5)) {
		replayed[c.State] += c.Segments
	}
	if !maps.Equal(replayed, wantCounts) {
		t.Errorf("after the replay, daily counts by state %v, want %v", replayed, wantCounts)
	}
}

// Two replicas share the durable, and every report is published twice
// under two ids, so that both copies of a segment are often recorded at
// the same time by different replicas: each segment is recorded once, and
// the key order of the inserts keeps the database free of deadlocks.
func TestReplicasRecordEachSegmentOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	day := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	want := map[string]billing.State{}
	var events []bus.Event
	for i := range 1500 {
		for seg := 1; seg <= 2; seg++ {
			st := billing.Delivered
			if (i+seg)%8 == 0 {
				st = billing.Expired
			}
			key := fmt.Sprintf("m-%d/%d", i, seg)
			want[key] = st
			r := finalReport(i, seg, st, day.Add(time.Duration(i)*time.Second))
			subject := bus.ReportSubject(stateToken(r.GetState()), r.GetTenantId(), r.GetShortCode())
			events = append(events,
				bus.Event{Subject: subject, Msg: r, MsgID: key + "/a"},
				bus.Event{Subject: subject, Msg: r, MsgID: key + "/b"})
		}
	}
	if err := e.pub.PublishAll(ctx, events); err != nil {
		t.Fatal(err)
	}
	small := func(c *billing.Config) { c.Batch, c.Workers, c.BatchWait = 100, 2, 5*time.Millisecond }
	e.run(t, small)
	stopFirst := e.stop
	e.run(t, small)
	e.idle(t, uint64(len(events)))
	// Stopped, their database sessions end and report their statistics
	// (deadlocks included) before the check below.
	stopFirst()
	e.stop()

	rows, err := ledgerRows(ctx, e.db)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameStates(rows, want); err != nil {
		t.Error(err)
	}
	if err := aggregateMatchesLedger(ctx, e.db); err != nil {
		t.Error(err)
	}
	bustest.Eventually(t, wait, func() error {
		var deadlocks, sessions int64
		err := e.db.Pool.QueryRow(ctx, `
SELECT (SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()),
       (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid())`).Scan(&deadlocks, &sessions)
		switch {
		case err != nil:
			return err
		case deadlocks != 0:
			t.Fatalf("%d deadlocks in the database, want 0", deadlocks)
		case sessions > int64(e.db.Pool.Stat().TotalConns())-1:
			return fmt.Errorf("%d other sessions still open: the replicas' statistics may not be reported yet", sessions)
		}
		return nil
	})
}
