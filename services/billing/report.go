package billing

import (
	"context"
	"errors"
	"fmt"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/fault"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// handle records one final segment report. The event is acked only when
// its row is committed: an error from the database redelivers it, and the
// primary key makes the redelivery harmless.
//
// Batching turns this into: entryOf per event, one Record per batch, then
// the acks; entryOf and Record are already shaped for it.
func (s *Service) handle(ctx context.Context, m *bus.Msg) error {
	e, err := entryOf(m)
	if err != nil {
		return err
	}
	n, err := Record(ctx, s.Pool, e)
	if err != nil {
		return fmt.Errorf("message %s segment %d: %w", e.MessageID, e.SegmentIndex, errors.Join(err, fault.ErrUnavailable))
	}
	s.Log.DebugContext(ctx, "segment recorded", "message_id", e.MessageID, "segment", e.SegmentIndex, "state", string(e.State), "new", n == 1)
	return nil
}

// entryOf turns a final segment report into its ledger entry. A report that
// cannot be billed (no message id, not final) is a publisher's bug that no
// redelivery fixes: the error is permanent.
func entryOf(m *bus.Msg) (Entry, error) {
	var r eventsv1.SegmentReport
	if err := m.Decode(&r); err != nil {
		return Entry{}, err
	}
	var st State
	switch r.GetState() {
	case partnerv1.SegmentState_SEGMENT_STATE_DELIVERED:
		st = Delivered
	case partnerv1.SegmentState_SEGMENT_STATE_FAILED:
		st = Failed
	case partnerv1.SegmentState_SEGMENT_STATE_EXPIRED:
		st = Expired
	default:
		return Entry{}, fault.Permanent(fmt.Errorf("report on %s of message %s: state %s is not final", m.Subject, r.GetMessageId(), r.GetState()))
	}
	switch {
	case r.GetMessageId() == "":
		return Entry{}, fault.Permanent(fmt.Errorf("report on %s: no message_id", m.Subject))
	case r.GetSegmentIndex() < 1:
		return Entry{}, fault.Permanent(fmt.Errorf("report on %s of message %s: segment_index %d", m.Subject, r.GetMessageId(), r.GetSegmentIndex()))
	case r.GetTenantId() == "":
		return Entry{}, fault.Permanent(fmt.Errorf("report on %s of message %s: no tenant_id", m.Subject, r.GetMessageId()))
	}
	at := m.Time
	if r.GetAt() != nil {
		at = r.GetAt().AsTime()
	}
	return Entry{
		MessageID:    r.GetMessageId(),
		SegmentIndex: int(r.GetSegmentIndex()),
		TenantID:     r.GetTenantId(),
		CampaignID:   r.GetCampaignId(),
		ShortCode:    r.GetShortCode(),
		State:        st,
		Billable:     st == Delivered,
		ReportedAt:   at,
	}, nil
}
