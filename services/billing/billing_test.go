package billing_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/pgtest"
	"pushsms.io/lib/telemetry"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
	"pushsms.io/services/billing"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const wait = 15 * time.Second

type env struct {
	addr string
	db   *pgtest.DB
	srv  *bustest.Server
	pub  *bus.Bus
	// stop stops the service started last.
	stop func()
}

// start runs the service on a fresh database and bus, stopped when t ends.
func start(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	e.run(t, nil)
	return e
}

// newEnv is a fresh database and bus, without a service yet.
func newEnv(t *testing.T) *env {
	t.Helper()
	srv := bustest.Start(t)
	return &env{
		db:   pgtest.New(t, pgtest.Migrated(billing.Schema, billing.Migrations())),
		srv:  srv,
		pub:  bustest.Connect(t, srv),
		stop: func() {},
	}
}

// run starts a service on e's database and bus, with cfg edited by edit
// (when not nil); e.stop stops it, and so does the end of t.
func (e *env) run(t *testing.T, edit func(*billing.Config)) {
	t.Helper()
	cfg := billing.DefaultConfig()
	cfg.Bus.URL = e.srv.URL()
	cfg.DB.URL = e.db.URL
	cfg.GRPCAddr, cfg.Telemetry.MetricsAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Telemetry = telemetry.Config{LogLevel: "error", LogFormat: "text"}
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := billing.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	var once sync.Once
	e.addr = s.Addr()
	e.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
			s.Close()
		})
	}
	t.Cleanup(e.stop)
}

var at = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

func report(messageID string, segment int32, st partnerv1.SegmentState) *eventsv1.SegmentReport {
	return &eventsv1.SegmentReport{
		MessageId:    messageID,
		TenantId:     "acme",
		CampaignId:   "camp-1",
		ShortCode:    "36123",
		SegmentIndex: segment,
		SegmentCount: 3,
		State:        st,
		At:           timestamppb.New(at),
		Final:        st == partnerv1.SegmentState_SEGMENT_STATE_DELIVERED || st == partnerv1.SegmentState_SEGMENT_STATE_FAILED || st == partnerv1.SegmentState_SEGMENT_STATE_EXPIRED,
	}
}

func stateToken(st partnerv1.SegmentState) string {
	return strings.ToLower(strings.TrimPrefix(st.String(), "SEGMENT_STATE_"))
}

// publish publishes r as smsc-link does, with msgID as its Nats-Msg-Id
// ("" for the documented <message_id>/<segment>/<state>).
func (e *env) publish(t *testing.T, r *eventsv1.SegmentReport, msgID string) {
	t.Helper()
	if msgID == "" {
		msgID = fmt.Sprintf("%s/%d/%s", r.GetMessageId(), r.GetSegmentIndex(), stateToken(r.GetState()))
	}
	subject := bus.ReportSubject(stateToken(r.GetState()), r.GetTenantId(), r.GetShortCode())
	if err := e.pub.Publish(context.Background(), subject, r, msgID); err != nil {
		t.Fatal(err)
	}
}

// idle waits until the billing consumer has been handed n events in all
// (redeliveries included) and holds none unacknowledged.
func (e *env) idle(t *testing.T, n uint64) {
	t.Helper()
	bustest.WaitIdle(t, e.pub, bus.StreamReports, billing.Name, n, wait)
}

func (e *env) entries(t *testing.T, messageID string) []billing.Entry {
	t.Helper()
	got, err := billing.Entries(context.Background(), e.db.Pool, messageID)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestDeliveredReportIsBillable(t *testing.T) {
	e := start(t)
	e.publish(t, report("msg-1", 1, partnerv1.SegmentState_SEGMENT_STATE_DELIVERED), "")

	bustest.Eventually(t, wait, func() error {
		n, err := billing.DeliveredCount(context.Background(), e.db.Pool, "msg-1")
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("delivered count %d, want 1", n)
		}
		return nil
	})
	got := e.entries(t, "msg-1")
	if len(got) != 1 {
		t.Fatalf("got %d rows, want 1", len(got))
	}
	g := got[0]
	want := billing.Entry{MessageID: "msg-1", SegmentIndex: 1, TenantID: "acme", CampaignID: "camp-1", ShortCode: "36123",
		State: billing.Delivered, Billable: true, ReportedAt: at, RecordedAt: g.RecordedAt}
	if !g.ReportedAt.Equal(want.ReportedAt) {
		t.Errorf("reported_at %v, want %v", g.ReportedAt, want.ReportedAt)
	}
	g.ReportedAt = want.ReportedAt
	if g != want {
		t.Errorf("got %+v, want %+v", g, want)
	}
	if g.RecordedAt.IsZero() {
		t.Error("recorded_at is not set")
	}
}

// A report redelivered after a crash of smsc-link comes back with another
// Nats-Msg-Id, so the bus stores it again: the ledger must not bill twice.
func TestRepeatedReportIsBilledOnce(t *testing.T) {
	e := start(t)
	r := report("msg-2", 1, partnerv1.SegmentState_SEGMENT_STATE_DELIVERED)
	for i := range 3 {
		e.publish(t, r, fmt.Sprintf("msg-2/1/delivered#%d", i))
	}
	e.idle(t, 3)
	if got := e.entries(t, "msg-2"); len(got) != 1 {
		t.Errorf("got %d rows, want 1", len(got))
	}
	n, err := billing.DeliveredCount(context.Background(), e.db.Pool, "msg-2")
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("delivered count %d, want 1", n)
	}
}

func TestFinalStates(t *testing.T) {
	e := start(t)
	tests := []struct {
		id       string
		state    partnerv1.SegmentState
		want     billing.State
		billable bool
	}{
		{"msg-d", partnerv1.SegmentState_SEGMENT_STATE_DELIVERED, billing.Delivered, true},
		{"msg-f", partnerv1.SegmentState_SEGMENT_STATE_FAILED, billing.Failed, false},
		{"msg-e", partnerv1.SegmentState_SEGMENT_STATE_EXPIRED, billing.Expired, false},
	}
	for _, tt := range tests {
		e.publish(t, report(tt.id, 2, tt.state), "")
	}
	e.idle(t, uint64(len(tests)))
	for _, tt := range tests {
		got := e.entries(t, tt.id)
		if len(got) != 1 {
			t.Errorf("%s: got %d rows, want 1", tt.state, len(got))
			continue
		}
		if got[0].State != tt.want || got[0].Billable != tt.billable || got[0].SegmentIndex != 2 {
			t.Errorf("%s: got state %s billable %v segment %d, want %s %v 2", tt.state, got[0].State, got[0].Billable, got[0].SegmentIndex, tt.want, tt.billable)
		}
	}
}

// A message is billed per delivered segment; its first final report per
// segment decides.
func TestSegmentsOfAMessage(t *testing.T) {
	e := start(t)
	e.publish(t, report("msg-3", 1, partnerv1.SegmentState_SEGMENT_STATE_DELIVERED), "")
	e.publish(t, report("msg-3", 2, partnerv1.SegmentState_SEGMENT_STATE_DELIVERED), "")
	e.publish(t, report("msg-3", 3, partnerv1.SegmentState_SEGMENT_STATE_FAILED), "")
	e.idle(t, 3)
	// A late, contradicting report does not change the ledger.
	e.publish(t, report("msg-3", 3, partnerv1.SegmentState_SEGMENT_STATE_DELIVERED), "")
	e.idle(t, 4)

	n, err := billing.DeliveredCount(context.Background(), e.db.Pool, "msg-3")
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("delivered count %d, want 2", n)
	}
	got := e.entries(t, "msg-3")
	if len(got) != 3 || got[2].State != billing.Failed {
		t.Errorf("got %+v, want 3 rows, the third failed", got)
	}
}

func TestNonFinalReportsAreNotConsumed(t *testing.T) {
	e := start(t)
	e.publish(t, report("msg-4", 1, partnerv1.SegmentState_SEGMENT_STATE_SUBMITTED), "")
	e.publish(t, report("msg-4", 1, partnerv1.SegmentState_SEGMENT_STATE_BUFFERED), "")
	e.publish(t, report("msg-4", 1, partnerv1.SegmentState_SEGMENT_STATE_UNKNOWN), "")
	rej := &eventsv1.MessageRejected{MessageId: "msg-5", TenantId: "acme", ShortCode: "36123", Reason: partnerv1.Reason_REASON_NOT_MOBILE}
	if err := e.pub.Publish(context.Background(), bus.ReportSubject("rejected", "acme", "36123"), rej, "msg-5/rejected"); err != nil {
		t.Fatal(err)
	}
	// A final report after them: once it is recorded, the others were
	// either skipped or handed over before it.
	e.publish(t, report("msg-6", 1, partnerv1.SegmentState_SEGMENT_STATE_DELIVERED), "")
	e.idle(t, 1)

	c, err := e.pub.JS.Consumer(context.Background(), bus.StreamReports, billing.Name)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ci.Delivered.Consumer != 1 {
		t.Errorf("consumer was handed %d events, want 1 (the delivered report only)", ci.Delivered.Consumer)
	}
	for _, id := range []string{"msg-4", "msg-5"} {
		if got := e.entries(t, id); len(got) != 0 {
			t.Errorf("%s: got %d rows, want none", id, len(got))
		}
	}
	if got := e.entries(t, "msg-6"); len(got) != 1 {
		t.Errorf("msg-6: got %d rows, want 1", len(got))
	}
}

// While the database refuses connections the report stays on the bus and
// is redelivered; it is recorded once the database is back.
func TestDatabaseDownRedelivers(t *testing.T) {
	e := start(t)
	admin := adminConn(t, e.db)
	ctx := context.Background()
	db := pgx.Identifier{e.db.Name}.Sanitize()

	// Take the database away from the service: no new connections, and
	// the pool's open ones are cut.
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+db+" WITH ALLOW_CONNECTIONS false"); err != nil {
		t.Fatal(err)
	}
	allow := func() {
		if _, err := admin.Exec(ctx, "ALTER DATABASE "+db+" WITH ALLOW_CONNECTIONS true"); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(allow) // so that pgtest can drop it whatever happens
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", e.db.Name); err != nil {
		t.Fatal(err)
	}

	e.publish(t, report("msg-7", 1, partnerv1.SegmentState_SEGMENT_STATE_DELIVERED), "")
	// The handler fails and the event is not acked: it comes back.
	bustest.Eventually(t, wait, func() error {
		c, err := e.pub.JS.Consumer(ctx, bus.StreamReports, billing.Name)
		if err != nil {
			return err
		}
		ci, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if ci.NumRedelivered < 1 || ci.AckFloor.Consumer != 0 {
			return fmt.Errorf("redelivered %d, ack floor %d: want a redelivery and no ack", ci.NumRedelivered, ci.AckFloor.Consumer)
		}
		return nil
	})

	allow()
	e.idle(t, 2)
	// The test's own pool may hold a connection that was cut: retry.
	bustest.Eventually(t, wait, func() error {
		n, err := billing.DeliveredCount(ctx, e.db.Pool, "msg-7")
		if err != nil {
			return err
		}
		if n != 1 {
			t.Fatalf("delivered count %d, want 1", n)
		}
		return nil
	})
}

// adminConn connects to the maintenance database of db's server, which
// stays reachable while db is refused.
func adminConn(t *testing.T, db *pgtest.DB) *pgx.Conn {
	t.Helper()
	u, err := url.Parse(db.URL)
	if err != nil || u.Scheme == "" {
		t.Fatalf("database URL %q is not a URL: %v", db.URL, err)
	}
	u.Path = "/postgres"
	conn, err := pgx.Connect(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestRecordBatch(t *testing.T) {
	db := pgtest.New(t, pgtest.Migrated(billing.Schema, billing.Migrations()))
	ctx := context.Background()
	entry := func(id string, seg int, st billing.State) billing.Entry {
		return billing.Entry{MessageID: id, SegmentIndex: seg, TenantID: "acme", ShortCode: "36123", State: st, Billable: st == billing.Delivered, ReportedAt: at}
	}
	n, err := billing.Record(ctx, db.Pool,
		entry("b-1", 1, billing.Delivered),
		entry("b-1", 2, billing.Delivered),
		entry("b-1", 2, billing.Delivered), // the same segment twice in one batch
		entry("b-2", 1, billing.Expired),
	)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("first batch: %d new rows, want 3", n)
	}
	n, err = billing.Record(ctx, db.Pool, entry("b-1", 1, billing.Delivered), entry("b-2", 2, billing.Failed))
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("second batch: %d new rows, want 1", n)
	}
	if n, err := billing.Record(ctx, db.Pool); n != 0 || err != nil {
		t.Errorf("empty batch: got %d, %v, want 0, nil", n, err)
	}
	got := entriesOf(t, db, "b-1")
	if len(got) != 2 || got[0].CampaignID != "" {
		t.Errorf("b-1: got %+v, want 2 rows without campaign", got)
	}

	// The database refuses an entry that would bill a failed segment.
	bad := entry("b-3", 1, billing.Failed)
	bad.Billable = true
	if _, err := billing.Record(ctx, db.Pool, bad); err == nil {
		t.Error("billable failed segment: got no error")
	}
}

func entriesOf(t *testing.T, db *pgtest.DB, id string) []billing.Entry {
	t.Helper()
	got, err := billing.Entries(context.Background(), db.Pool, id)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestConfigValidate(t *testing.T) {
	valid := func() billing.Config {
		cfg := billing.DefaultConfig()
		cfg.DB.URL = "postgres://localhost/x"
		return cfg
	}
	tests := []struct {
		name string
		edit func(*billing.Config)
		ok   bool
	}{
		{"defaults with a database", func(*billing.Config) {}, true},
		{"no database URL", func(c *billing.Config) { c.DB.URL = "" }, false},
		{"0 workers", func(c *billing.Config) { c.Workers = 0 }, false},
		{"65 workers", func(c *billing.Config) { c.Workers = 65 }, false},
		{"batch of 1", func(c *billing.Config) { c.Batch = 1 }, true},
		{"batch of 0", func(c *billing.Config) { c.Batch = 0 }, false},
		{"batch above the most", func(c *billing.Config) { c.Batch = billing.MaxBatch + 1 }, false},
		{"no batch wait", func(c *billing.Config) { c.BatchWait = 0 }, false},
		{"batch wait of a minute", func(c *billing.Config) { c.BatchWait = time.Minute }, false},
		{"ack wait under a second", func(c *billing.Config) { c.AckWait = 500 * time.Millisecond }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.edit(&cfg)
			err := cfg.Validate()
			if got := err == nil; got != tt.ok {
				t.Errorf("got %v, want valid %v", err, tt.ok)
			}
		})
	}
}
