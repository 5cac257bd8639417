package billing

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/fault"
	"pushsms.io/lib/service"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

func msgOf(t *testing.T, r *eventsv1.SegmentReport) *bus.Msg {
	t.Helper()
	data, err := proto.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return &bus.Msg{Subject: "sms.report.delivered.acme.36123", Data: data, Time: time.Unix(1700000000, 0)}
}

func TestEntryOf(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	ok := func() *eventsv1.SegmentReport {
		return &eventsv1.SegmentReport{MessageId: "m", TenantId: "acme", ShortCode: "36123", SegmentIndex: 1,
			State: partnerv1.SegmentState_SEGMENT_STATE_DELIVERED, At: timestamppb.New(at)}
	}
	tests := []struct {
		name   string
		edit   func(r *eventsv1.SegmentReport)
		want   Entry
		refuse bool
	}{
		{"delivered", func(*eventsv1.SegmentReport) {},
			Entry{MessageID: "m", SegmentIndex: 1, TenantID: "acme", ShortCode: "36123", State: Delivered, Billable: true, ReportedAt: at}, false},
		{"failed", func(r *eventsv1.SegmentReport) { r.State = partnerv1.SegmentState_SEGMENT_STATE_FAILED },
			Entry{MessageID: "m", SegmentIndex: 1, TenantID: "acme", ShortCode: "36123", State: Failed, ReportedAt: at}, false},
		{"expired without time", func(r *eventsv1.SegmentReport) { r.State, r.At = partnerv1.SegmentState_SEGMENT_STATE_EXPIRED, nil },
			Entry{MessageID: "m", SegmentIndex: 1, TenantID: "acme", ShortCode: "36123", State: Expired, ReportedAt: time.Unix(1700000000, 0)}, false},
		{"buffered", func(r *eventsv1.SegmentReport) { r.State = partnerv1.SegmentState_SEGMENT_STATE_BUFFERED }, Entry{}, true},
		{"no message id", func(r *eventsv1.SegmentReport) { r.MessageId = "" }, Entry{}, true},
		{"segment 0", func(r *eventsv1.SegmentReport) { r.SegmentIndex = 0 }, Entry{}, true},
		{"no tenant", func(r *eventsv1.SegmentReport) { r.TenantId = "" }, Entry{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok()
			tt.edit(r)
			got, err := entryOf(msgOf(t, r))
			if tt.refuse {
				if !fault.IsPermanent(err) {
					t.Errorf("got error %v, want a permanent one", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.ReportedAt.Equal(tt.want.ReportedAt) {
				t.Errorf("reported at %v, want %v", got.ReportedAt, tt.want.ReportedAt)
			}
			got.ReportedAt = tt.want.ReportedAt
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	if _, err := entryOf(&bus.Msg{Subject: "sms.report.delivered.a.b", Data: []byte{0xff}}); !fault.IsPermanent(err) {
		t.Errorf("garbage: got %v, want a permanent error", err)
	}
}

// A database error must reach the bus as a retryable error for the whole
// batch: its events are then redelivered, never acked nor terminated. A
// batch of bad events only is refused event by event, permanently, without
// the database.
func TestHandleBatchErrors(t *testing.T) {
	pool, err := pgxpool.New(context.Background(), "postgres://127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	pool.Close()
	s := &Service{Core: &service.Core{Pool: pool, Log: slog.New(slog.DiscardHandler)}}
	good := &eventsv1.SegmentReport{MessageId: "m", TenantId: "acme", ShortCode: "36123", SegmentIndex: 1, State: partnerv1.SegmentState_SEGMENT_STATE_DELIVERED}
	bad := &eventsv1.SegmentReport{MessageId: "m", TenantId: "acme", ShortCode: "36123", SegmentIndex: 0, State: partnerv1.SegmentState_SEGMENT_STATE_DELIVERED}

	err = s.handleBatch(context.Background(), []*bus.Msg{msgOf(t, good), msgOf(t, bad)})
	if err == nil {
		t.Fatal("database down: got nil, the events would be acked")
	}
	var each bus.BatchErrors
	if fault.IsPermanent(err) || errors.As(err, &each) {
		t.Errorf("database down: got %v, want one retryable error for the batch", err)
	}

	err = s.handleBatch(context.Background(), []*bus.Msg{msgOf(t, bad), msgOf(t, bad)})
	if !errors.As(err, &each) {
		t.Fatalf("bad events only: got %v, want BatchErrors", err)
	}
	if len(each) != 2 || !fault.IsPermanent(each[0]) || !fault.IsPermanent(each[1]) {
		t.Errorf("bad events only: got %v, want both permanent", each)
	}
}
