package ingest

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// An upload whose process dies (kill -9, a lost node) cannot cancel its
// campaign as an upload that fails does (abandon): the campaign stays
// RECEIVING for good, what it had accepted goes out, and its partner,
// whose stream broke, learns neither how far it got nor that it ended. So
// a live upload marks its campaign (updated_at) every OrphanAfter/12, and
// every replica cancels, every OrphanAfter/4, the RECEIVING campaigns not
// marked for OrphanAfter: the partner sees them CANCELLED with the counts
// of what went out, the batches still scheduled are cancelled with them
// (cancelScheduled), and it may send the rest under another client
// reference.

// DefaultOrphanAfter is how long a RECEIVING campaign may go unmarked
// before it is taken for the upload of a dead process: a dozen marks.
const DefaultOrphanAfter = 2 * time.Minute

// heartbeat marks the upload's campaign alive until the returned stop is
// called.
func (u *upload) heartbeat(ctx context.Context) (stop func()) {
	s := u.s
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		every(ctx, s.cfg.OrphanAfter/12, func() {
			// A failed mark is tried again at the next tick; eleven in a
			// row fail only with the database away, when the upload fails
			// too.
			_, err := s.Pool.Exec(ctx, `UPDATE ingest.campaigns SET updated_at = $2 WHERE id = $1 AND state = $3`,
				u.campaign.ID, s.now(), enumText(partnerv1.CampaignState_CAMPAIGN_STATE_RECEIVING))
			if err != nil && ctx.Err() == nil {
				s.Log.WarnContext(ctx, "campaign upload not marked alive", "campaign_id", u.campaign.ID, "err", err)
			}
		})
	}()
	return func() {
		cancel()
		<-done
	}
}

// reapOrphans cancels, until the service stops, the campaigns whose
// upload died (see above). Several replicas may cancel one: a cancel
// repeated is harmless.
func (s *Service) reapOrphans() {
	s.releases.wg.Go(func() {
		ctx := s.Stopping()
		every(ctx, s.cfg.OrphanAfter/4, func() {
			if err := s.cancelOrphans(ctx); err != nil && ctx.Err() == nil {
				s.Log.WarnContext(ctx, "orphaned campaign uploads not cancelled", "err", err)
			}
		})
	})
}

// every calls f every d until ctx is done.
func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// cancelOrphans cancels the RECEIVING campaigns not marked alive for
// OrphanAfter.
func (s *Service) cancelOrphans(ctx context.Context) error {
	rows, err := s.Pool.Query(ctx, `SELECT tenant_id, id FROM ingest.campaigns WHERE state = $1 AND updated_at < $2 ORDER BY updated_at LIMIT 100`,
		enumText(partnerv1.CampaignState_CAMPAIGN_STATE_RECEIVING), s.now().Add(-s.cfg.OrphanAfter))
	if err != nil {
		return dbErr("find orphaned campaigns", err)
	}
	type orphan struct{ tenant, id string }
	found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (orphan, error) {
		var o orphan
		return o, r.Scan(&o.tenant, &o.id)
	})
	if err != nil {
		return dbErr("find orphaned campaigns", err)
	}
	var errs []error
	for _, o := range found {
		s.Log.WarnContext(ctx, "campaign upload orphaned: its process stopped in the middle; cancelling the campaign",
			"campaign_id", o.id, "tenant", o.tenant)
		if _, err := s.cancelCampaign(ctx, o.tenant, o.id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
