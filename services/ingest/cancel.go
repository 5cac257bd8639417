package ingest

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// Details of a message reported cancelled, as throttle words them.
const (
	campaignCancelledDetail  = "campaign cancelled"
	shortCodeCancelledDetail = "short code cancelled"
)

// unreleaser cancels the batches of campaigns still scheduled for release
// (ReleaseConfig) in the background, and lets Close wait for it.
type unreleaser struct {
	wg sync.WaitGroup
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
	s.unreleaser.wg.Go(func() {
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
					MsgID: a.GetMessageId() + "/cancelled",
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
