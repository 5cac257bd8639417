package ingest

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"pushsms.io/lib/pgtest"
)

// BenchmarkCampaignReport reads the compliance report of a 1 M-recipient
// campaign of which 10 % were refused (five reasons) and 5 % deferred, as
// the projection leaves its counters.
func BenchmarkCampaignReport(b *testing.B) {
	ctx := context.Background()
	db := pgtest.New(b, pgtest.Migrated(Schema, Migrations()))
	id := uuid.NewString()
	_, err := db.Pool.Exec(ctx, `INSERT INTO ingest.campaign_decisions (campaign_id, outcome, reason, shard, count)
		SELECT $1::uuid, 'refused', r, s, 100000 / 5 / $2::integer FROM unnest(ARRAY['opted_out', 'frequency_cap', 'sector_banned',
			'not_on_network', 'stop_mention_missing']) AS r, generate_series(0, $2::integer - 1) AS s
		UNION ALL SELECT $1::uuid, 'deferred', '', s, 50000 / $2::integer FROM generate_series(0, $2::integer - 1) AS s`, id, decisionShards)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		reasons, deferred, err := campaignDecisions(ctx, db.Pool, id)
		if err != nil {
			b.Fatal(err)
		}
		if len(reasons) != 5 || deferred != 50000/decisionShards*decisionShards {
			b.Fatalf("%d reasons, %d deferred, want 5 and 50000", len(reasons), deferred)
		}
	}
}

// BenchmarkCountDecision is the projection's cost of counting a refusal,
// with 8 workers refusing messages of one campaign for one reason at once
// (the worst case of the shared counters).
func BenchmarkCountDecision(b *testing.B) {
	ctx := context.Background()
	db := pgtest.New(b, pgtest.Migrated(Schema, Migrations()))
	campaign := uuid.NewString()
	refused := decisionRow{Outcome: outcomeRefused, Reason: "opted_out"}
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id, err := uuid.NewV7()
			if err != nil {
				b.Error(err)
				return
			}
			msg := messageRow{ID: id.String(), CampaignID: campaign}
			var batch pgx.Batch
			countDecision(&batch, msg, decisionRow{}, refused)
			if err := db.Pool.SendBatch(ctx, &batch).Close(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reasons, _, err := campaignDecisions(ctx, db.Pool, campaign)
	if err != nil {
		b.Fatal(err)
	}
	if len(reasons) != 1 || reasons[0].GetCount() < int64(b.N) {
		b.Fatalf("report %v after %d refusals", reasons, b.N)
	}
}
