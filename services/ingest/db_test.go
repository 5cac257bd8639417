package ingest

import (
	"testing"

	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// Enum columns store the value name without the enum's own prefix, and read
// back to the same value; an unknown text reads as unspecified.
func TestEnumText(t *testing.T) {
	if got := enumText(partnerv1.MessageState_MESSAGE_STATE_QUEUED); got != "queued" {
		t.Errorf("MESSAGE_STATE_QUEUED stored as %q, want queued", got)
	}
	if got := enumText(partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP); got != "customer_relationship" {
		t.Errorf("stored as %q, want customer_relationship", got)
	}
	for _, r := range partnerv1.Reason_value {
		want := partnerv1.Reason(r)
		if got := parseEnum[partnerv1.Reason](enumText(want)); got != want {
			t.Errorf("%v read back as %v", want, got)
		}
	}
	if got := parseEnum[partnerv1.SegmentState]("nonsense"); got != partnerv1.SegmentState_SEGMENT_STATE_UNSPECIFIED {
		t.Errorf("unknown text read as %v, want unspecified", got)
	}
}
