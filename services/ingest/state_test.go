package ingest

import (
	"testing"

	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

func TestDerive(t *testing.T) {
	const (
		pending   = partnerv1.SegmentState_SEGMENT_STATE_PENDING
		submitted = partnerv1.SegmentState_SEGMENT_STATE_SUBMITTED
		buffered  = partnerv1.SegmentState_SEGMENT_STATE_BUFFERED
		delivered = partnerv1.SegmentState_SEGMENT_STATE_DELIVERED
		failed    = partnerv1.SegmentState_SEGMENT_STATE_FAILED
		expired   = partnerv1.SegmentState_SEGMENT_STATE_EXPIRED
		unknown   = partnerv1.SegmentState_SEGMENT_STATE_UNKNOWN
	)
	segs := func(s ...partnerv1.SegmentState) []partnerv1.SegmentState { return s }
	tests := []struct {
		name string
		f    facts
		want partnerv1.MessageState
	}{
		{"nothing known", facts{}, partnerv1.MessageState_MESSAGE_STATE_ACCEPTED},
		{"rejected", facts{Rejected: true}, partnerv1.MessageState_MESSAGE_STATE_REJECTED},
		{"rejected wins over segments", facts{Rejected: true, Cleared: true, Segments: segs(delivered)}, partnerv1.MessageState_MESSAGE_STATE_REJECTED},
		{"rejected wins over cancelled", facts{Rejected: true, Cancelled: true}, partnerv1.MessageState_MESSAGE_STATE_REJECTED},
		{"cancelled", facts{Cancelled: true, Cleared: true, Segments: segs(pending, pending)}, partnerv1.MessageState_MESSAGE_STATE_CANCELLED},
		{"failed wins over expired", facts{Cleared: true, Segments: segs(expired, failed)}, partnerv1.MessageState_MESSAGE_STATE_FAILED},
		{"failed with delivered", facts{Cleared: true, Segments: segs(delivered, failed, delivered)}, partnerv1.MessageState_MESSAGE_STATE_FAILED},
		{"failed with pending", facts{Cleared: true, Segments: segs(failed, pending)}, partnerv1.MessageState_MESSAGE_STATE_FAILED},
		{"expired", facts{Cleared: true, Segments: segs(delivered, expired)}, partnerv1.MessageState_MESSAGE_STATE_EXPIRED},
		{"expired with unknown", facts{Cleared: true, Segments: segs(unknown, expired)}, partnerv1.MessageState_MESSAGE_STATE_EXPIRED},
		{"delivered single", facts{Cleared: true, Segments: segs(delivered)}, partnerv1.MessageState_MESSAGE_STATE_DELIVERED},
		{"delivered all", facts{Cleared: true, Segments: segs(delivered, delivered, delivered)}, partnerv1.MessageState_MESSAGE_STATE_DELIVERED},
		{"delivered but one buffered", facts{Cleared: true, Segments: segs(delivered, buffered)}, partnerv1.MessageState_MESSAGE_STATE_SUBMITTED},
		{"unknown single", facts{Cleared: true, Segments: segs(unknown)}, partnerv1.MessageState_MESSAGE_STATE_UNKNOWN},
		{"unknown with delivered", facts{Cleared: true, Segments: segs(delivered, unknown)}, partnerv1.MessageState_MESSAGE_STATE_UNKNOWN},
		{"unknown with buffered and submitted", facts{Cleared: true, Segments: segs(submitted, unknown, buffered)}, partnerv1.MessageState_MESSAGE_STATE_UNKNOWN},
		{"unknown with pending is submitting", facts{Cleared: true, Segments: segs(unknown, pending)}, partnerv1.MessageState_MESSAGE_STATE_SUBMITTING},
		{"submitted single", facts{Cleared: true, Segments: segs(submitted)}, partnerv1.MessageState_MESSAGE_STATE_SUBMITTED},
		{"buffered is submitted", facts{Cleared: true, Segments: segs(buffered)}, partnerv1.MessageState_MESSAGE_STATE_SUBMITTED},
		{"all at least submitted", facts{Cleared: true, Segments: segs(submitted, delivered, buffered)}, partnerv1.MessageState_MESSAGE_STATE_SUBMITTED},
		{"submitting", facts{Cleared: true, Segments: segs(submitted, pending, pending)}, partnerv1.MessageState_MESSAGE_STATE_SUBMITTING},
		{"submitting with delivered", facts{Cleared: true, Segments: segs(pending, delivered)}, partnerv1.MessageState_MESSAGE_STATE_SUBMITTING},
		{"queued", facts{Cleared: true, Segments: segs(pending, pending)}, partnerv1.MessageState_MESSAGE_STATE_QUEUED},
		{"queued without segment rows", facts{Cleared: true}, partnerv1.MessageState_MESSAGE_STATE_QUEUED},
		{"deferred", facts{Cleared: true, Deferred: true, Segments: segs(pending)}, partnerv1.MessageState_MESSAGE_STATE_DEFERRED},
		{"deferred does not hide a submission", facts{Cleared: true, Deferred: true, Segments: segs(submitted)}, partnerv1.MessageState_MESSAGE_STATE_SUBMITTED},
		{"report before cleared", facts{Segments: segs(submitted, pending)}, partnerv1.MessageState_MESSAGE_STATE_SUBMITTING},
		{"pending segments known before cleared", facts{Segments: segs(pending)}, partnerv1.MessageState_MESSAGE_STATE_QUEUED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := derive(tt.f); got != tt.want {
				t.Errorf("derive(%+v) = %v, want %v", tt.f, got, tt.want)
			}
		})
	}
}

func TestAdvances(t *testing.T) {
	const (
		pending   = partnerv1.SegmentState_SEGMENT_STATE_PENDING
		submitted = partnerv1.SegmentState_SEGMENT_STATE_SUBMITTED
		buffered  = partnerv1.SegmentState_SEGMENT_STATE_BUFFERED
		delivered = partnerv1.SegmentState_SEGMENT_STATE_DELIVERED
		failed    = partnerv1.SegmentState_SEGMENT_STATE_FAILED
		expired   = partnerv1.SegmentState_SEGMENT_STATE_EXPIRED
		unknown   = partnerv1.SegmentState_SEGMENT_STATE_UNKNOWN
		none      = partnerv1.SegmentState_SEGMENT_STATE_UNSPECIFIED
	)
	tests := []struct {
		from, to partnerv1.SegmentState
		want     bool
	}{
		{none, pending, true},
		{pending, submitted, true},
		{pending, unknown, true},
		{pending, failed, true},
		{submitted, buffered, true},
		{submitted, delivered, true},
		{unknown, delivered, true},
		{buffered, delivered, true},
		{buffered, expired, true},
		{submitted, submitted, false},
		{submitted, unknown, false},
		{unknown, submitted, false},
		{buffered, submitted, false},
		{delivered, buffered, false},
		{delivered, failed, false},
		{failed, delivered, false},
		{expired, delivered, false},
		{submitted, pending, false},
		{delivered, none, false},
	}
	for _, tt := range tests {
		if got := advances(tt.from, tt.to); got != tt.want {
			t.Errorf("advances(%v, %v) = %v, want %v", tt.from, tt.to, got, tt.want)
		}
	}
}
