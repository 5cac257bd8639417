package ingest

import (
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// facts are what the status view knows of a message: its own events and
// its segments' states. The message's state is derived from them, never
// stored independently, so that a redelivered or late event cannot make it
// disagree with its segments.
type facts struct {
	// Rejected: compliance refused the message.
	Rejected bool
	// Cancelled: the message was dropped before submission.
	Cancelled bool
	// Cleared: compliance passed it (a segment report implies it too).
	Cleared bool
	// Deferred: cleared but held until its start time.
	Deferred bool
	// Segments are the states of the known segments, in index order.
	Segments []partnerv1.SegmentState
}

// derive is THE rule of docs/messages.md ("Message state: the rule"),
// implemented here and nowhere else: first match wins.
func derive(f facts) partnerv1.MessageState {
	switch {
	case f.Rejected:
		return partnerv1.MessageState_MESSAGE_STATE_REJECTED
	case f.Cancelled:
		return partnerv1.MessageState_MESSAGE_STATE_CANCELLED
	}
	segs := f.Segments
	if len(segs) > 0 {
		var failed, expired, unknown bool
		delivered, atLeastSubmitted := 0, 0
		for _, s := range segs {
			switch s {
			case partnerv1.SegmentState_SEGMENT_STATE_FAILED:
				failed = true
			case partnerv1.SegmentState_SEGMENT_STATE_EXPIRED:
				expired = true
			case partnerv1.SegmentState_SEGMENT_STATE_DELIVERED:
				delivered++
			case partnerv1.SegmentState_SEGMENT_STATE_UNKNOWN:
				unknown = true
			}
			if segmentRank(s) >= segmentRank(partnerv1.SegmentState_SEGMENT_STATE_SUBMITTED) {
				atLeastSubmitted++
			}
		}
		switch {
		case failed:
			return partnerv1.MessageState_MESSAGE_STATE_FAILED
		case expired:
			return partnerv1.MessageState_MESSAGE_STATE_EXPIRED
		case delivered == len(segs):
			return partnerv1.MessageState_MESSAGE_STATE_DELIVERED
		case unknown && atLeastSubmitted == len(segs):
			return partnerv1.MessageState_MESSAGE_STATE_UNKNOWN
		case atLeastSubmitted == len(segs):
			return partnerv1.MessageState_MESSAGE_STATE_SUBMITTED
		case atLeastSubmitted > 0:
			return partnerv1.MessageState_MESSAGE_STATE_SUBMITTING
		}
	}
	if f.Cleared || len(segs) > 0 {
		if f.Deferred {
			return partnerv1.MessageState_MESSAGE_STATE_DEFERRED
		}
		return partnerv1.MessageState_MESSAGE_STATE_QUEUED
	}
	return partnerv1.MessageState_MESSAGE_STATE_ACCEPTED
}

// segmentRank orders segment states as docs/messages.md does: PENDING <
// SUBMITTED, UNKNOWN < BUFFERED < DELIVERED, FAILED, EXPIRED. A segment only
// moves to a state of higher rank.
func segmentRank(s partnerv1.SegmentState) int {
	switch s {
	case partnerv1.SegmentState_SEGMENT_STATE_PENDING:
		return 1
	case partnerv1.SegmentState_SEGMENT_STATE_SUBMITTED, partnerv1.SegmentState_SEGMENT_STATE_UNKNOWN:
		return 2
	case partnerv1.SegmentState_SEGMENT_STATE_BUFFERED:
		return 3
	case partnerv1.SegmentState_SEGMENT_STATE_DELIVERED, partnerv1.SegmentState_SEGMENT_STATE_FAILED, partnerv1.SegmentState_SEGMENT_STATE_EXPIRED:
		return 4
	}
	return 0
}

// advances tells whether a segment in state from may move to state to.
func advances(from, to partnerv1.SegmentState) bool {
	return segmentRank(to) > segmentRank(from)
}

// terminal reports the message states nothing changes any more.
func terminal(s partnerv1.MessageState) bool {
	switch s {
	case partnerv1.MessageState_MESSAGE_STATE_REJECTED,
		partnerv1.MessageState_MESSAGE_STATE_CANCELLED,
		partnerv1.MessageState_MESSAGE_STATE_DELIVERED,
		partnerv1.MessageState_MESSAGE_STATE_FAILED,
		partnerv1.MessageState_MESSAGE_STATE_EXPIRED:
		return true
	}
	return false
}
