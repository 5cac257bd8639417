package billing_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/pgcluster"
	"pushsms.io/lib/pgdb"
	"pushsms.io/lib/pgtest"
	"pushsms.io/lib/telemetry"
	"pushsms.io/services/billing"
)

// durableCluster starts a PostgreSQL cluster of the benchmark's own, with
// fsync and synchronous_commit on: the test server of pgtest has them off,
// and ingestion is measured as it runs in production, each batch durable
// before its events are acked. It returns the URL of its postgres database.
func durableCluster(b *testing.B) string {
	b.Helper()
	pgtest.NeedServer(b)
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "billing-bench-")
	if err != nil {
		b.Fatal(err)
	}
	// The server runs as postgres when we are root: it must reach inside.
	if err := os.Chmod(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	c := &pgcluster.Cluster{DataDir: filepath.Join(dir, "data")}
	base, err := c.Start(ctx)
	if err != nil {
		os.RemoveAll(dir)
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			b.Error(err)
		}
		os.RemoveAll(dir)
	})
	var fsync, syncCommit string
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, `SELECT current_setting('fsync'), current_setting('synchronous_commit')`).Scan(&fsync, &syncCommit); err != nil {
		b.Fatal(err)
	}
	if fsync != "on" || syncCommit != "on" {
		b.Fatalf("fsync %s, synchronous_commit %s: want both on", fsync, syncCommit)
	}
	return base
}

// benchDatabase creates a migrated database named name on the server of
// base and returns its URL.
func benchDatabase(b *testing.B, base, name string) string {
	b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		b.Fatal(err)
	}
	u, err := url.Parse(base)
	if err != nil {
		b.Fatal(err)
	}
	u.Path = "/" + name
	pool, err := pgxpool.New(ctx, u.String())
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	if err := pgdb.Migrate(ctx, pool, billing.Schema, billing.Migrations()); err != nil {
		b.Fatal(err)
	}
	return u.String()
}

// ingestEvents is n final reports of distinct segments, as smsc-link
// publishes them: mostly delivered, over 22 short codes and 5 tenants.
func ingestEvents(n int, day time.Time) []bus.Event {
	events := make([]bus.Event, 0, n)
	for i := range n {
		st := billing.Delivered
		switch {
		case i%10 == 0:
			st = billing.Failed
		case i%25 == 0:
			st = billing.Expired
		}
		r := finalReport(i/2, i%2+1, st, day.Add(time.Duration(i)*time.Second))
		r.ShortCode = fmt.Sprintf("36%03d", i%22)
		r.TenantId = fmt.Sprintf("tenant-%d", i%5)
		events = append(events, bus.Event{
			Subject: bus.ReportSubject(stateToken(r.GetState()), r.GetTenantId(), r.GetShortCode()),
			Msg:     r,
			MsgID:   fmt.Sprintf("%s/%d/%s", r.GetMessageId(), r.GetSegmentIndex(), st),
		})
	}
	return events
}

// BenchmarkIngest measures final reports recorded per second through the
// real consumer: b.N reports wait on the bus, billing starts, and the clock
// runs until every report is committed in the ledger (fsync on) and acked.
// Run it with a fixed count of reports:
//
//	go test -run '^$' -bench Ingest -benchtime 100000x -count 3
func BenchmarkIngest(b *testing.B) {
	base := durableCluster(b)
	n := 0
	for _, bc := range []struct{ batch, workers int }{{500, 4}, {2000, 1}, {2000, 2}, {2000, 4}, {5000, 4}} {
		b.Run(fmt.Sprintf("batch=%d/workers=%d", bc.batch, bc.workers), func(b *testing.B) {
			n++
			dbURL := benchDatabase(b, base, fmt.Sprintf("ingest_%d", n))
			srv := bustest.Start(b)
			pub := bustest.Connect(b, srv)
			ctx := context.Background()
			if err := pub.PublishAll(ctx, ingestEvents(b.N, time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC))); err != nil {
				b.Fatal(err)
			}
			cfg := billing.DefaultConfig()
			cfg.Bus.URL, cfg.DB.URL = srv.URL(), dbURL
			cfg.GRPCAddr = "127.0.0.1:0"
			cfg.Telemetry = telemetry.Config{LogLevel: "error", LogFormat: "text"}
			cfg.Batch, cfg.Workers = bc.batch, bc.workers
			sctx, cancel := context.WithCancel(ctx)
			s, err := billing.New(sctx, cfg)
			if err != nil {
				cancel()
				b.Fatal(err)
			}
			done := make(chan error, 1)
			b.ResetTimer()
			go func() { done <- s.Serve(sctx) }()
			bustest.WaitIdle(b, pub, bus.StreamReports, billing.Name, uint64(b.N), 5*time.Minute)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			cancel()
			if err := <-done; err != nil {
				b.Error(err)
			}
			s.Close()
			pool, err := pgxpool.New(ctx, dbURL)
			if err != nil {
				b.Fatal(err)
			}
			defer pool.Close()
			var rows int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM billing.ledger`).Scan(&rows); err != nil {
				b.Fatal(err)
			}
			if rows != b.N {
				b.Fatalf("ledger holds %d rows, want %d", rows, b.N)
			}
		})
	}
}

// monthRows is the ledger of BenchmarkDailyCountsMonth: 10 million final
// segments in November 2026, over 22 short codes and 5 tenants.
const monthRows = 10_000_000

// monthLedger is a template database (made once per test binary, cloned
// by each run) whose ledger holds monthRows segments of November 2026,
// written by generate_series through the ledger's trigger like any insert.
func monthLedger() pgtest.Template {
	return pgtest.Template{
		Name: "billing: 10 million segments in November 2026",
		Setup: func(ctx context.Context, pool *pgxpool.Pool) error {
			const chunk = 1_000_000
			for lo := 1; lo <= monthRows; lo += chunk {
				_, err := pool.Exec(ctx, `
INSERT INTO billing.ledger (message_id, segment_index, tenant_id, short_code, state, billable, reported_at)
SELECT 'm-' || lpad(g::text, 8, '0'), 1, 'tenant-' || g % 5, '36' || lpad((g % 22)::text, 3, '0'),
       CASE WHEN g % 10 = 0 THEN 'failed' WHEN g % 25 = 0 THEN 'expired' ELSE 'delivered' END,
       g % 10 <> 0 AND g % 25 <> 0,
       timestamptz '2026-11-01 00:00 Europe/Paris' + ((g - 1)::float8 / $3 * 30 * 86400) * interval '1 second'
FROM generate_series($1::int, $2::int) g`, lo, lo+chunk-1, monthRows)
				if err != nil {
					return err
				}
			}
			_, err := pool.Exec(ctx, `VACUUM ANALYZE billing.ledger, billing.ledger_daily`)
			return err
		},
	}
}

// BenchmarkDailyCountsMonth reads a month's counts, what an invoice reads,
// with 10 million segments of that month in the ledger. For comparison,
// ledger-scan counts the same from the ledger itself.
//
//	go test -run '^$' -bench DailyCountsMonth -benchtime 3s -count 3
func BenchmarkDailyCountsMonth(b *testing.B) {
	db := pgtest.New(b, pgtest.Migrated(billing.Schema, billing.Migrations()), monthLedger())
	ctx := context.Background()
	loc := paris(b)
	from, to := time.Date(2026, 11, 1, 0, 0, 0, 0, loc), time.Date(2026, 12, 1, 0, 0, 0, 0, loc)

	b.Run("aggregate", func(b *testing.B) {
		for b.Loop() {
			counts, err := billing.DailyCounts(ctx, db.Pool, from, to)
			if err != nil {
				b.Fatal(err)
			}
			var sum int64
			for _, c := range counts {
				sum += c.Segments
			}
			if sum != monthRows {
				b.Fatalf("the month counts %d segments, want %d", sum, monthRows)
			}
		}
	})
	b.Run("ledger-scan", func(b *testing.B) {
		for b.Loop() {
			var sum int64
			err := db.Pool.QueryRow(ctx, `
SELECT sum(n) FROM (
    SELECT (reported_at AT TIME ZONE 'Europe/Paris')::date, short_code, tenant_id, state, count(*) AS n
    FROM billing.ledger WHERE reported_at >= $1 AND reported_at < $2
    GROUP BY 1, 2, 3, 4) d`, from, to).Scan(&sum)
			if err != nil {
				b.Fatal(err)
			}
			if sum != monthRows {
				b.Fatalf("the month counts %d segments, want %d", sum, monthRows)
			}
		}
	})
}

// BenchmarkRecordBatch measures the database's part alone: RecordBatch of
// 2000 new entries at a time, one transaction after the other (fsync on).
//
//	go test -run '^$' -bench RecordBatch -benchtime 100000x -count 3
func BenchmarkRecordBatch(b *testing.B) {
	base := durableCluster(b)
	n := 0
	for _, size := range []int{500, 2000, 5000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			n++
			ctx := context.Background()
			pool, err := pgxpool.New(ctx, benchDatabase(b, base, fmt.Sprintf("record_%d", n)))
			if err != nil {
				b.Fatal(err)
			}
			defer pool.Close()
			day := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
			entries := make([]billing.Entry, b.N)
			for i := range entries {
				st := billing.Delivered
				if i%10 == 0 {
					st = billing.Failed
				}
				entries[i] = ledgerEntry(fmt.Sprintf("m-%d", i/2), i%2+1, fmt.Sprintf("36%03d", i%22), fmt.Sprintf("tenant-%d", i%5), st, day.Add(time.Duration(i)*time.Second))
			}
			b.ResetTimer()
			for lo := 0; lo < len(entries); lo += size {
				fresh, err := billing.RecordBatch(ctx, pool, entries[lo:min(lo+size, len(entries))])
				if err != nil {
					b.Fatal(err)
				}
				if len(fresh) != min(size, len(entries)-lo) {
					b.Fatalf("%d new entries, want %d", len(fresh), min(size, len(entries)-lo))
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
