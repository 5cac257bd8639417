package ingest

import (
	"context"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/rate"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// releases is the background work on the batches of campaigns still
// scheduled for release (ReleaseConfig): cancelling them with their
// campaign (cancelScheduled; the campaigns of dead uploads too,
// reapOrphans), moving them forward when their short code's rate is raised
// (retime). Close waits for it.
type releases struct {
	wg sync.WaitGroup
	// pending are the short codes whose rate changed, for the retime
	// loop; wake tells it.
	mu      sync.Mutex
	pending map[string]bool
	wake    chan struct{}
}

// cancelScheduled reports cancelled, at once, the messages of the batches
// still scheduled on filter (bus.ReleaseFilter: one campaign's, or a short
// code's), then takes the schedules back. Without it a cancelled campaign
// of a million recipients would reach CANCELLED (and give its reserved
// credit back) only as throttle met each message, at the release pace:
// hours. With before set, only batches whose messages were all accepted
// before it are cancelled (a short code's cancel: later messages go as
// usual).
//
// It runs after the cancel is recorded, in the background, until done or
// the service stops: a batch it does not reach comes due as usual and
// throttle cancels its messages then. The reports carry the ids throttle
// gives them (<message id>/cancelled), so a batch that comes due while it
// runs is reported once.
func (s *Service) cancelScheduled(ctx context.Context, filter string, before time.Time, detail string) {
	link := trace.LinkFromContext(ctx)
	s.releases.wg.Go(func() {
		ctx, span := s.tracer.Start(s.Stopping(), "cancel scheduled batches", trace.WithNewRoot(), trace.WithLinks(link),
			trace.WithAttributes(attribute.String("pushsms.release_filter", filter)))
		defer span.End()
		start := s.now()
		messages := 0
		batches, err := s.Bus.Unschedule(ctx, filter, func(ctx context.Context, m *bus.Msg) (bool, error) {
			var batch eventsv1.CampaignBatch
			if err := m.Decode(&batch); err != nil {
				// Not a batch ingest wrote: leave it to come due.
				s.Log.WarnContext(ctx, "scheduled release left as it is", "filter", filter, "sequence", m.Sequence, "err", err)
				return false, nil
			}
			events := make([]bus.Event, 0, len(batch.GetMessages()))
			for _, a := range batch.GetMessages() {
				if !before.IsZero() && !a.GetAcceptedAt().AsTime().Before(before) {
					return false, nil
				}
				events = append(events, bus.Event{
					Subject: bus.ReportSubject("cancelled", a.GetTenantId(), a.GetShortCode()),
					Msg: &eventsv1.MessageRejected{
						MessageId:  a.GetMessageId(),
						TenantId:   a.GetTenantId(),
						CampaignId: a.GetCampaignId(),
						ShortCode:  a.GetShortCode(),
						Reason:     partnerv1.Reason_REASON_CANCELLED,
						Detail:     detail,
						At:         timestamppb.New(s.now()),
					},
					MsgID: bus.CancelledID(a.GetMessageId()),
					Trace: a.GetTraceparent(),
				})
			}
			if err := s.Bus.PublishAll(ctx, events); err != nil {
				return false, err
			}
			messages += len(events)
			return true, nil
		})
		span.SetAttributes(attribute.Int("pushsms.batches", batches), attribute.Int("pushsms.messages", messages))
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "cancel scheduled batches")
			s.Log.WarnContext(ctx, "scheduled batches not all cancelled: throttle cancels the rest as they come due",
				"filter", filter, "batches", batches, "messages", messages, "err", err)
			return
		}
		if batches > 0 {
			s.Log.InfoContext(ctx, "scheduled batches cancelled", "filter", filter, "batches", batches, "messages", messages,
				"took", s.now().Sub(start).Round(time.Millisecond))
		}
	})
}

// watchRates moves a short code's scheduled batches forward when its rate
// is raised beyond what they were timed for: a campaign is released at
// twice the rate its short code had at the upload, and a rate raised more
// than twofold while it runs would otherwise not be used for the batches
// still scheduled. Each change of a "<sc>.rate" key in SHORT_CODES is
// taken up in the background, one short code at a time; the current
// values at the start too, so that a raise while the service was away is
// not missed. Batches are moved forward only: a lowered rate leaves them,
// and throttle parks what comes too early.
func (s *Service) watchRates(ctx context.Context) error {
	s.releases.pending = map[string]bool{}
	s.releases.wake = make(chan struct{}, 1)
	w, err := s.Bus.WatchBucket(ctx, bus.BucketShortCodes, func(key string, value []byte) {
		sc, ok := rate.ShortCodeOf(key)
		if !ok || value == nil {
			return
		}
		s.releases.mu.Lock()
		s.releases.pending[sc] = true
		s.releases.mu.Unlock()
		select {
		case s.releases.wake <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return err
	}
	s.OnClose(w.Stop)
	s.releases.wg.Go(func() {
		ctx := s.Stopping()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.releases.wake:
			}
			for sc := range s.takeRateChanges() {
				s.retime(ctx, sc)
			}
		}
	})
	return nil
}

// takeRateChanges returns the short codes whose rate changed since the
// last call.
func (s *Service) takeRateChanges() map[string]bool {
	s.releases.mu.Lock()
	defer s.releases.mu.Unlock()
	out := s.releases.pending
	s.releases.pending = map[string]bool{}
	return out
}

// retime moves the scheduled batches of sc timed at a slower pace than its
// rate now gives (retimed). A batch it cannot move stays as it was: it
// comes due at its old time, and the next change of the rate (or the
// service's next start) tries again.
func (s *Service) retime(ctx context.Context, sc string) {
	kv, err := s.shortCodesKV(ctx)
	if err != nil {
		s.Log.WarnContext(ctx, "scheduled batches not retimed", "short_code", sc, "err", err)
		return
	}
	contracted, known, err := contractedRate(ctx, kv, sc)
	if err != nil || !known || contracted <= 0 {
		// No rate, or held: nothing to speed up.
		return
	}
	pace := s.cfg.Release.forShortCode(contracted, known)
	ctx, span := s.tracer.Start(ctx, "retime scheduled batches", trace.WithNewRoot(),
		trace.WithAttributes(attribute.String("pushsms.short_code", sc), attribute.Int("pushsms.release_pace", pace)))
	defer span.End()
	now := s.now()
	moved, err := s.Bus.Reschedule(ctx, bus.ReleaseFilter(sc, ""), func(m *bus.Msg, due time.Time) (time.Time, bool) {
		at, ok := retimed(m.Header, due, now, pace)
		if ok {
			m.Header.Set(headerReleasePace, strconv.Itoa(pace))
		}
		return at, ok
	})
	span.SetAttributes(attribute.Int("pushsms.batches", moved))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "retime scheduled batches")
		s.Log.WarnContext(ctx, "scheduled batches not all retimed", "short_code", sc, "pace", pace, "moved", moved, "err", err)
		return
	}
	if moved > 0 {
		s.Log.InfoContext(ctx, "scheduled batches moved forward", "short_code", sc, "pace", pace, "batches", moved)
	}
}
