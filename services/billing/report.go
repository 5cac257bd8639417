package billing

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/fault"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// handleBatch records a batch of final segment reports in one transaction
// (RecordBatch); the bus acks the events only after it returns, so after
// the commit. A database error redelivers the whole batch, and the primary
// key makes the redelivery harmless. A report that can never be recorded
// is terminated alone (BatchErrors): it does not hold back the others.
func (s *Service) handleBatch(ctx context.Context, msgs []*bus.Msg) error {
	bad := bus.BatchErrors{}
	entries := make([]Entry, 0, len(msgs))
	for i, m := range msgs {
		e, err := entryOf(m)
		if err != nil {
			bad[i] = err
			continue
		}
		entries = append(entries, e)
	}
	fresh, err := RecordBatch(ctx, s.Pool, entries)
	if err != nil {
		// Every event comes back, the bad ones too: they are terminated
		// when the database answers again.
		return errors.Join(err, fault.ErrUnavailable)
	}
	s.Log.DebugContext(ctx, "batch recorded", "events", len(msgs), "new", len(fresh), "refused", len(bad))
	if len(bad) > 0 {
		return bad
	}
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
	case strings.ContainsRune(r.GetMessageId()+r.GetTenantId()+r.GetShortCode()+r.GetCampaignId(), 0):
		// PostgreSQL's text refuses NUL: the whole batch would fail, for ever.
		return Entry{}, fault.Permanent(fmt.Errorf("report on %s: a NUL byte in an id", m.Subject))
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
