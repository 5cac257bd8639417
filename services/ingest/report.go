package ingest

import (
	"cmp"
	"context"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// decisionShards is how many rows each count of ingest.campaign_decisions
// is split over: more than a replica's workers, so that two of them
// recording the same outcome for the same campaign seldom wait on one row.
const decisionShards = 32

var (
	outcomeRefused  = enumText(partnerv1.DecisionOutcome_DECISION_OUTCOME_REFUSED)
	outcomeDeferred = enumText(partnerv1.DecisionOutcome_DECISION_OUTCOME_DEFERRED)
)

// reported tells whether the campaign report counts a decision: refusals
// (by reason) and deferrals.
func reported(d decisionRow) bool {
	return d.Outcome == outcomeRefused || d.Outcome == outcomeDeferred
}

// countDecision queues the move of a campaign message from the report's
// count of its previous decision to that of its new one. It goes in the
// transaction that writes the message's decision, under the message's row
// lock, so a redelivered event (which changes nothing) counts nothing.
func countDecision(b *pgx.Batch, msg messageRow, from, to decisionRow) {
	if msg.CampaignID == "" || (from.Outcome == to.Outcome && from.Reason == to.Reason) {
		return
	}
	type delta struct {
		d decisionRow
		n int64
	}
	var ds []delta
	if reported(from) {
		ds = append(ds, delta{from, -1})
	}
	if reported(to) {
		ds = append(ds, delta{to, 1})
	}
	// Rows locked in one order by every worker cannot deadlock.
	slices.SortFunc(ds, func(a, b delta) int {
		return cmp.Or(cmp.Compare(a.d.Outcome, b.d.Outcome), cmp.Compare(a.d.Reason, b.d.Reason))
	})
	shard := messageShard(msg.ID)
	for _, d := range ds {
		b.Queue(`INSERT INTO ingest.campaign_decisions AS c (campaign_id, outcome, reason, shard, count)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (campaign_id, outcome, reason, shard) DO UPDATE SET count = c.count + excluded.count`,
			msg.CampaignID, d.d.Outcome, d.d.Reason, shard, d.n)
	}
}

// messageShard spreads a campaign's messages over the shards: the last
// byte of a UUIDv7 is random.
func messageShard(id string) int16 {
	u, err := uuid.Parse(id)
	if err != nil {
		return 0
	}
	return int16(u[15] % decisionShards)
}

// campaignDecisions is the campaign's compliance report: its refused
// messages by reason, most frequent first (then by reason name, so that
// the order is stable), and how many messages compliance deferred. It
// reads at most decisionShards rows per reason.
func campaignDecisions(ctx context.Context, q querier, id string) ([]*partnerv1.ReasonCount, int64, error) {
	rows, err := q.Query(ctx, `SELECT outcome, reason, sum(count)::bigint FROM ingest.campaign_decisions
		WHERE campaign_id = $1 GROUP BY outcome, reason HAVING sum(count) > 0`, id)
	if err != nil {
		return nil, 0, err
	}
	var reasons []*partnerv1.ReasonCount
	var deferred int64
	var outcome, reason string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&outcome, &reason, &n}, func() error {
		switch outcome {
		case outcomeRefused:
			reasons = append(reasons, &partnerv1.ReasonCount{Reason: parseEnum[partnerv1.Reason](reason), Count: n})
		case outcomeDeferred:
			deferred += n
		}
		return nil
	})
	slices.SortFunc(reasons, func(a, b *partnerv1.ReasonCount) int {
		return cmp.Or(cmp.Compare(b.GetCount(), a.GetCount()), cmp.Compare(a.GetReason().String(), b.GetReason().String()))
	})
	return reasons, deferred, err
}
