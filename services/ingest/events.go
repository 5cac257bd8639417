package ingest

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/fault"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// cursor is where a StreamEvents resumes: the next stream sequence to
// deliver of SMS_REPORTS and of SMS_MO (0: not known, start with new
// events).
type cursor struct {
	reports, mo uint64
}

const cursorVersion = 1

// ErrCursor reports an after_cursor that StreamEvents did not issue.
var ErrCursor = errors.New("ingest: not a cursor of StreamEvents")

func (c cursor) String() string {
	b := []byte{cursorVersion}
	b = binary.AppendUvarint(b, c.reports)
	b = binary.AppendUvarint(b, c.mo)
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseCursor(s string) (cursor, error) {
	if s == "" {
		return cursor{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 3 || b[0] != cursorVersion {
		return cursor{}, ErrCursor
	}
	b = b[1:]
	var c cursor
	for _, dst := range []*uint64{&c.reports, &c.mo} {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return cursor{}, ErrCursor
		}
		*dst, b = v, b[n:]
	}
	if len(b) != 0 {
		return cursor{}, ErrCursor
	}
	return c, nil
}

// streamItem is one event read for a StreamEvents call.
type streamItem struct {
	stream string
	seq    uint64
	msg    jetstream.Msg
	err    error
}

// StreamEvents sends the partner's delivery reports (from SMS_REPORTS,
// filtered on its tenant) and inbound messages (from SMS_MO, filtered on
// its short codes) as they are stored, each with a cursor holding both
// streams' positions. Asking for neither kind means both.
func (a *api) StreamEvents(req *partnerv1.StreamEventsRequest, stream partnerv1.MessagingService_StreamEventsServer) error {
	s := a.s
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return err
	}
	cur, err := parseCursor(req.GetAfterCursor())
	if err != nil {
		return fault.Invalid("after_cursor", err)
	}
	wantReports, wantMO := req.GetDeliveryReports(), req.GetInboundMessages()
	if !wantReports && !wantMO {
		wantReports, wantMO = true, true
	}
	var moFilters []string
	if wantMO {
		codes, err := shortCodes(ctx, s.Pool, tenant)
		if err != nil {
			return dbErr("short codes", err)
		}
		for _, sc := range codes {
			moFilters = append(moFilters, bus.MOSubject(sc))
		}
	}
	// Without a cursor, start after what each stream holds now.
	if cur.reports == 0 {
		if cur.reports, err = s.nextSeq(ctx, bus.StreamReports); err != nil {
			return err
		}
	}
	if cur.mo == 0 {
		if cur.mo, err = s.nextSeq(ctx, bus.StreamMO); err != nil {
			return err
		}
	}

	items := make(chan streamItem, 64)
	if wantReports {
		if err := s.follow(ctx, bus.StreamReports, []string{bus.ReportTenantFilter(tenant)}, cur.reports, items); err != nil {
			return err
		}
	}
	if len(moFilters) > 0 {
		if err := s.follow(ctx, bus.StreamMO, moFilters, cur.mo, items); err != nil {
			return err
		}
	}
	s.Log.DebugContext(ctx, "event stream opened", "tenant", tenant, "reports", wantReports, "inbound", len(moFilters) > 0)
	for {
		var it streamItem
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.Stopping().Done():
			return fmt.Errorf("server shutting down; resume after the last cursor: %w", fault.ErrUnavailable)
		case it = <-items:
		}
		if it.err != nil {
			return fmt.Errorf("event stream: %w", errors.Join(it.err, fault.ErrUnavailable))
		}
		resp := &partnerv1.StreamEventsResponse{}
		switch it.stream {
		case bus.StreamReports:
			cur.reports = it.seq + 1
			dr, err := s.deliveryReport(ctx, tenant, it.msg)
			if err != nil {
				return err
			}
			if dr == nil {
				continue
			}
			resp.Event = &partnerv1.StreamEventsResponse_DeliveryReport{DeliveryReport: dr}
		case bus.StreamMO:
			cur.mo = it.seq + 1
			var mo eventsv1.MobileOriginated
			if err := proto.Unmarshal(it.msg.Data(), &mo); err != nil {
				s.Log.WarnContext(ctx, "undecodable MO skipped", "subject", it.msg.Subject(), "seq", it.seq)
				continue
			}
			resp.Event = &partnerv1.StreamEventsResponse_InboundMessage{InboundMessage: &partnerv1.InboundMessage{
				InboundId:  mo.GetMoId(),
				ShortCode:  mo.GetShortCode(),
				Originator: mo.GetOriginator(),
				Text:       mo.GetText(),
				ReceivedAt: mo.GetReceivedAt(),
			}}
		}
		resp.Cursor = cur.String()
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// nextSeq is the sequence the next event stored in stream will get.
func (s *Service) nextSeq(ctx context.Context, stream string) (uint64, error) {
	st, err := s.Bus.JS.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, errors.Join(err, fault.ErrUnavailable))
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, errors.Join(err, fault.ErrUnavailable))
	}
	return info.State.LastSeq + 1, nil
}

// follow reads stream from sequence from on, with an ordered consumer (no
// acks, no server state beyond the call), into items until ctx is done.
func (s *Service) follow(ctx context.Context, stream string, filters []string, from uint64, items chan<- streamItem) error {
	cons, err := s.Bus.JS.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: filters,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    max(from, 1),
	})
	if err != nil {
		return fmt.Errorf("follow %s: %w", stream, errors.Join(err, fault.ErrUnavailable))
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("follow %s: %w", stream, errors.Join(err, fault.ErrUnavailable))
	}
	go func() {
		<-ctx.Done()
		it.Stop()
	}()
	go func() {
		for {
			m, err := it.Next()
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					select {
					case items <- streamItem{stream: stream, err: err}:
					case <-ctx.Done():
					}
				}
				return
			}
			md, err := m.Metadata()
			if err != nil {
				continue
			}
			select {
			case items <- streamItem{stream: stream, seq: md.Sequence.Stream, msg: m}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return nil
}

// deliveryReport turns a report event into what the partner sees, with
// the message's state after the report. It returns nil for an event that
// is not the tenant's or cannot be read.
func (s *Service) deliveryReport(ctx context.Context, tenant string, m jetstream.Msg) (*partnerv1.DeliveryReport, error) {
	typ := m.Headers().Get(bus.HeaderType)
	state := reportState(m.Subject())
	if typ == "" {
		typ = typeSegmentReport
		if state == "rejected" || state == "cancelled" {
			typ = typeMessageRejected
		}
	}
	switch typ {
	case typeMessageRejected:
		var ev eventsv1.MessageRejected
		if err := proto.Unmarshal(m.Data(), &ev); err != nil || ev.GetTenantId() != tenant {
			return nil, nil
		}
		st := partnerv1.MessageState_MESSAGE_STATE_REJECTED
		if state == "cancelled" {
			st = partnerv1.MessageState_MESSAGE_STATE_CANCELLED
		}
		dr := &partnerv1.DeliveryReport{
			MessageId:    ev.GetMessageId(),
			CampaignId:   ev.GetCampaignId(),
			MessageState: st,
			At:           ev.GetAt(),
			Reason:       ev.GetReason(),
			ReasonDetail: ev.GetDetail(),
		}
		msg, _, err := s.loadForReport(ctx, tenant, ev.GetMessageId())
		if err != nil {
			return nil, err
		}
		if msg != nil {
			dr.ClientReference = msg.ClientReference
			dr.SegmentCount = msg.SegmentCount
		}
		return dr, nil
	case typeSegmentReport:
		var ev eventsv1.SegmentReport
		if err := proto.Unmarshal(m.Data(), &ev); err != nil || ev.GetTenantId() != tenant {
			return nil, nil
		}
		dr := &partnerv1.DeliveryReport{
			MessageId:    ev.GetMessageId(),
			CampaignId:   ev.GetCampaignId(),
			SegmentIndex: ev.GetSegmentIndex(),
			SegmentCount: ev.GetSegmentCount(),
			SegmentState: ev.GetState(),
			UcpErrorCode: ev.GetUcpErrorCode(),
			At:           ev.GetAt(),
		}
		msg, segs, err := s.loadForReport(ctx, tenant, ev.GetMessageId())
		if err != nil {
			return nil, err
		}
		// The state after this report, whether or not the status view has
		// applied it yet.
		f := facts{Cleared: true}
		if msg != nil {
			dr.ClientReference = msg.ClientReference
			f = msg.facts(segs, s.now())
		}
		f.Segments = withReport(f.Segments, &ev)
		dr.MessageState = derive(f)
		if st := ev.GetState(); st == partnerv1.SegmentState_SEGMENT_STATE_FAILED || st == partnerv1.SegmentState_SEGMENT_STATE_EXPIRED {
			f := failure{report: &ev, nacked: state == "nacked"}
			dr.Reason, dr.ReasonDetail = f.reason()
		}
		return dr, nil
	}
	return nil, nil
}

// withReport returns segment states with the report applied, as the
// status view applies it.
func withReport(states []partnerv1.SegmentState, ev *eventsv1.SegmentReport) []partnerv1.SegmentState {
	n := max(len(states), int(ev.GetSegmentCount()), int(ev.GetSegmentIndex()))
	out := make([]partnerv1.SegmentState, n)
	copy(out, states)
	for i := len(states); i < n; i++ {
		out[i] = partnerv1.SegmentState_SEGMENT_STATE_PENDING
	}
	if i := int(ev.GetSegmentIndex()) - 1; i >= 0 && advances(out[i], ev.GetState()) {
		out[i] = ev.GetState()
	}
	return out
}

// loadForReport reads the tenant's message and segments, or nil for a
// message the database does not hold (yet).
func (s *Service) loadForReport(ctx context.Context, tenant, id string) (*messageRow, []segmentRow, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, nil, nil
	}
	m, err := scanMessage(s.Pool.QueryRow(ctx, `SELECT `+messageColumns+` FROM ingest.messages WHERE id = $1 AND tenant_id = $2`, id, tenant))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, dbErr("get message", err)
	}
	segs, err := loadSegments(ctx, s.Pool, id)
	if err != nil {
		return nil, nil, dbErr("get segments", err)
	}
	return &m, segs, nil
}
