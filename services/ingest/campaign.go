package ingest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/fault"
	"pushsms.io/lib/gsm"
	"pushsms.io/lib/rate"
	"pushsms.io/lib/telemetry"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// Campaign control values of the CAMPAIGNS bucket, read by throttle.
const (
	campaignRunning   = "running"
	campaignPaused    = "paused"
	campaignCancelled = "cancelled"
)

// MaxCampaignWeight bounds CampaignSpec.weight.
const MaxCampaignWeight = 100

const (
	// MaxScheduleAhead bounds a campaign's start_at: its messages wait in
	// streams that keep events 7 days.
	MaxScheduleAhead = 6 * 24 * time.Hour
	// campaignChunk is how many recipients are inserted and published per
	// transaction.
	campaignChunk = 500
	// maxRecipientErrors is how many refused recipients the response lists.
	maxRecipientErrors = 100
	// cleanupTimeout bounds the cancellation of an interrupted upload.
	cleanupTimeout = 10 * time.Second
)

// campaignRow is a row of ingest.campaigns.
type campaignRow struct {
	ID              string
	TenantID        string
	ClientReference string
	Name            string
	ShortCode       string
	Brand           string
	Category        string
	Sender          string
	State           string
	Accepted        int64
	Refused         int64
	StartAt         time.Time
	ExpiresAt       time.Time
	CreatedAt       time.Time
	// The spec's declarations, which every message of the campaign carries.
	Sector            string
	StopInformed      bool
	FreeClaimAttested bool
	AppendStopMention bool
	// Weight is the campaign's share of its short code against the
	// partner's other campaigns (0 = 1).
	Weight int32
}

const campaignColumns = `id, tenant_id, client_reference, name, short_code, brand, category, sender,
	state, accepted, refused, start_at, expires_at, created_at,
	sector, stop_informed_at_collection, free_claim_substantiated, append_stop_mention, weight`

func scanCampaign(row pgx.Row) (campaignRow, error) {
	var c campaignRow
	err := row.Scan(&c.ID, &c.TenantID, &c.ClientReference, &c.Name, &c.ShortCode, &c.Brand, &c.Category, &c.Sender,
		&c.State, &c.Accepted, &c.Refused, &c.StartAt, &c.ExpiresAt, &c.CreatedAt,
		&c.Sector, &c.StopInformed, &c.FreeClaimAttested, &c.AppendStopMention, &c.Weight)
	return c, err
}

// ReleaseConfig paces a campaign's messages from ingest to compliance.
//
// A campaign goes out at its short code's rate, 10 to 150 SMS/s: a million
// recipients take hours. Ingest stores every message at once (the partner
// is answered once all are durable) but does not hand them all to
// compliance at once: the first Lead's worth at the release pace is
// published, and the rest is stored as message schedules that the server
// publishes at that pace. Compliance and the status view then do a campaign's
// work as it goes out instead of racing its upload (an upload of a million
// took 3 min 14 s against 4.5 s for 200 000 without that race), and a
// subscriber's STOP or a partner's opt-out reaches the campaign's later
// messages before compliance clears them.
//
// The pace is counted in segments, as the rate is: a campaign is released
// at its short code's contracted rate (its "<sc>.rate" in SHORT_CODES when
// the upload starts), at most Rate, Lead ahead of it. It can never be sent
// faster, and what the throttle holds of it stays about Lead: a raised
// rate moves the batches still scheduled (retime), and the throttle's
// parked messages are few, so the campaign takes the new rate within
// seconds. Without a rate in the bucket (the throttle's flags decide) it is
// released at Rate, which defaults to rate.MaxRate, the highest rate any
// short code may have.
type ReleaseConfig struct {
	// Rate is the highest pace beyond the lead, segments a second.
	Rate int
	// Lead is how far ahead of the pace a campaign is released.
	Lead time.Duration
	// Span bounds the time at the pace that one batch covers. A batch
	// reaches the throttle at once, which parks what it cannot hold at the
	// short code's rate of that moment: a batch of 500 messages at 10/s
	// would be parked over 100 s, and come back at that pace even after a
	// raise. Longer spans mean fewer schedules.
	Span time.Duration
}

// DefaultReleaseConfig releases 10 s of the pace at once, the pace being
// at most rate.MaxRate segments a second, in batches of 5 s of it: within
// the throttle's lookahead.
func DefaultReleaseConfig() ReleaseConfig {
	return ReleaseConfig{Rate: rate.MaxRate, Lead: 10 * time.Second, Span: 5 * time.Second}
}

// Validate checks the pace.
func (c ReleaseConfig) Validate() error {
	if c.Rate < 1 || c.Lead < 0 || c.Span < time.Second {
		return fmt.Errorf("campaign release: rate %d/s, lead %v, span %v: want a rate of at least 1, a lead of 0 or more and a span of 1s or more (schedules have a resolution of a second)", c.Rate, c.Lead, c.Span)
	}
	return nil
}

// forShortCode is the pace of a campaign on a short code whose contracted
// rate (SMS-MT a second) is contracted, if known: that rate, never more
// than c.Rate. Unknown (no rate in the bucket, the throttle's flags decide)
// or 0 (held): c.Rate.
func (c ReleaseConfig) forShortCode(contracted int, known bool) int {
	if !known || contracted <= 0 {
		return c.Rate
	}
	return min(c.Rate, contracted)
}

// at is when the segment at index n (0-based, counted over the campaign's
// messages in order) of a campaign starting at start, released at rate
// segments a second, is due at compliance; zero means now (within the
// lead, or already due).
func (c ReleaseConfig) at(rate int, start, now time.Time, n int64) time.Time {
	due := start.Add(time.Duration(float64(n)/float64(rate)*float64(time.Second)) - c.Lead)
	// Schedules have a resolution of a second: one due within it goes now.
	if due.Before(now.Add(time.Second)) {
		return time.Time{}
	}
	return due
}

// batchSegments is how many segments a batch released at rate holds at
// most.
func (c ReleaseConfig) batchSegments(rate int) int64 {
	return max(int64(float64(rate)*c.Span.Seconds()), 1)
}

// Headers of a scheduled batch that say how it was timed, so that it can
// be moved when its short code's rate is raised (retime).
const (
	// headerReleasePace is the release pace, segments a second.
	headerReleasePace = "Pushsms-Release-Pace"
	// headerReleaseOrigin is when the release clock started (RFC 3339):
	// the campaign's start less the lead.
	headerReleaseOrigin = "Pushsms-Release-Origin"
)

// header is the timing of a batch of a campaign starting at start and
// released at rate segments a second.
func (c ReleaseConfig) header(rate int, start time.Time) nats.Header {
	return nats.Header{
		headerReleasePace:   {strconv.Itoa(rate)},
		headerReleaseOrigin: {start.Add(-c.Lead).UTC().Format(time.RFC3339Nano)},
	}
}

// retimed is when a batch timed by h, due at due, is due at pace instead:
// as many segments past the release clock's start (its origin, or now if
// later) at the new pace as it was at the old one. False when the batch
// does not say how it was timed, or pace is not faster.
func retimed(h nats.Header, due, now time.Time, pace int) (time.Time, bool) {
	old, err := strconv.Atoi(h.Get(headerReleasePace))
	if err != nil || old <= 0 || pace <= old {
		return time.Time{}, false
	}
	origin, err := time.Parse(time.RFC3339Nano, h.Get(headerReleaseOrigin))
	if err != nil {
		return time.Time{}, false
	}
	if origin.Before(now) {
		origin = now
	}
	if !due.After(origin) {
		return time.Time{}, false
	}
	return origin.Add(time.Duration(float64(due.Sub(origin)) * float64(old) / float64(pace))), true
}

// contractedRate reads sc's rate in the SHORT_CODES bucket kv, if it is
// there.
func contractedRate(ctx context.Context, kv jetstream.KeyValue, sc string) (int, bool, error) {
	e, err := kv.Get(ctx, rate.Key(sc))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("short code %s: rate: %w", sc, errors.Join(err, fault.ErrUnavailable))
	}
	r, err := rate.ParseRate(e.Value())
	return r, err == nil, nil
}

// maxBatchBytes bounds a CampaignBatch: well under the server's 1 MB
// message limit, whatever the texts' lengths.
const maxBatchBytes = 256 << 10

// upload is one SubmitCampaign in progress.
type upload struct {
	s        *Service
	campaign campaignRow
	header   header
	tpl      template
	// started is when the upload began: a campaign that starts at once
	// is released from then, at release segments a second.
	started time.Time
	release int
	// position is the 0-based index of the next recipient in the stream
	// (receive's reading goroutine only).
	position int64
	// accepted and refused count what is stored, segments the accepted
	// messages' segments (receive's storing side).
	accepted, refused, segments int64
	// errors lists the first refused recipients, from both sides.
	mu     sync.Mutex
	errors []*partnerv1.RecipientError
}

// refuse records a refused recipient for the response (the first
// maxRecipientErrors).
func (u *upload) refuse(pos int64, reason partnerv1.Reason, detail string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.errors) < maxRecipientErrors {
		u.errors = append(u.errors, &partnerv1.RecipientError{Position: pos, Reason: reason, Detail: detail})
	}
}

// SubmitCampaign takes the spec, then batches of recipients. Each chunk of
// recipients is inserted and published in one transaction, so the campaign
// is never held in memory and no accepted message is lost. An upload that
// fails or is abandoned half way cancels the campaign: the partner sees it
// CANCELLED, with the counts of what went out, and may submit it again
// under another client reference.
func (a *api) SubmitCampaign(stream partnerv1.MessagingService_SubmitCampaignServer) error {
	s := a.s
	ctx := stream.Context()
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return err
	}
	spec, err := firstSpec[*partnerv1.SubmitCampaignRequest, partnerv1.CampaignSpec](stream.Recv, "campaign")
	if err != nil {
		return err
	}
	u, err := s.startCampaign(ctx, tenant, spec)
	if err != nil {
		return err
	}
	stop := u.heartbeat(ctx)
	err = u.receive(ctx, stream)
	stop()
	if err != nil {
		u.abandon(ctx, err)
		return err
	}
	c, err := u.finish(ctx)
	if err != nil {
		return err
	}
	return stream.SendAndClose(&partnerv1.SubmitCampaignResponse{Campaign: c, Errors: u.errors})
}

// startCampaign checks the spec and records the campaign, RECEIVING.
func (s *Service) startCampaign(ctx context.Context, tenant string, spec *partnerv1.CampaignSpec) (*upload, error) {
	h, herr := checkHeader("spec.", spec.GetShortCode(), spec.GetBrand(), spec.GetCategory(), spec.GetSender(), spec.GetValidity())
	var errs []error
	errs = append(errs, herr, checkClientReference("spec.client_reference", spec.GetClientReference()),
		checkSector("spec.sector", spec.GetSector()))
	tpl, err := parseTemplate(spec.GetTextTemplate())
	switch {
	case strings.TrimSpace(spec.GetTextTemplate()) == "":
		errs = append(errs, fault.Invalidf("spec.text_template", "must not be empty"))
	case len(spec.GetTextTemplate()) > maxTextBytes:
		errs = append(errs, fault.Invalidf("spec.text_template", "longer than %d segments", MaxSegments))
	case err != nil:
		errs = append(errs, fault.Invalid("spec.text_template", err))
	}
	if spec.GetWeight() > MaxCampaignWeight {
		errs = append(errs, fault.Invalidf("spec.weight", "%d: want 0 to %d (0 means 1)", spec.GetWeight(), MaxCampaignWeight))
	}
	if len(spec.GetName()) > maxNameLen {
		errs = append(errs, fault.Invalidf("spec.name", "longer than %d bytes", maxNameLen))
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	start := now
	if ts := spec.GetStartAt(); ts != nil {
		switch t := ts.AsTime(); {
		case !ts.IsValid():
			errs = append(errs, fault.Invalidf("spec.start_at", "not a valid time"))
		case t.After(now.Add(MaxScheduleAhead)):
			errs = append(errs, fault.Invalidf("spec.start_at", "more than %v ahead", MaxScheduleAhead))
		case t.After(now):
			start = t.UTC().Truncate(time.Microsecond)
		}
	}
	if err := fault.Join(errs...); err != nil {
		return nil, err
	}
	if err := checkShortCode(ctx, s.Pool, tenant, h.shortCode); err != nil {
		return nil, err
	}

	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("campaign id: %w", err)
	}
	c := campaignRow{
		ID:              id.String(),
		TenantID:        tenant,
		ClientReference: spec.GetClientReference(),
		Name:            spec.GetName(),
		ShortCode:       h.shortCode,
		Brand:           h.brand,
		Category:        enumText(h.category),
		Sender:          h.sender,
		State:           enumText(partnerv1.CampaignState_CAMPAIGN_STATE_RECEIVING),
		StartAt:         start,
		ExpiresAt:       start.Add(h.validity),
		CreatedAt:       now,

		Sector:            spec.GetSector(),
		StopInformed:      spec.GetAttestations().GetStopInformedAtCollection(),
		FreeClaimAttested: spec.GetAttestations().GetFreeClaimSubstantiated(),
		AppendStopMention: spec.GetAppendStopMention(),
		Weight:            int32(min(spec.GetWeight(), MaxCampaignWeight)),
	}
	err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO ingest.campaigns (id, tenant_id, client_reference, name, short_code, brand,
				category, sender, state, start_at, expires_at, created_at, updated_at,
				sector, stop_informed_at_collection, free_claim_substantiated, append_stop_mention, weight)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14, $15, $16, $17)`,
			c.ID, c.TenantID, c.ClientReference, c.Name, c.ShortCode, c.Brand, c.Category, c.Sender, c.State,
			c.StartAt, c.ExpiresAt, c.CreatedAt,
			c.Sector, c.StopInformed, c.FreeClaimAttested, c.AppendStopMention, c.Weight)
		if isUniqueViolation(err) {
			return fmt.Errorf("campaign with client reference %q: %w", truncate(c.ClientReference, 40), fault.ErrExists)
		}
		if err != nil {
			return dbErr("insert campaign", err)
		}
		// Throttle learns of the campaign before any of its messages.
		if _, err := s.campaigns.Put(ctx, c.ID, []byte(campaignRunning)); err != nil {
			return fmt.Errorf("campaign %s: control state: %w", c.ID, errors.Join(err, fault.ErrUnavailable))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.Log.InfoContext(ctx, "campaign receiving", "campaign_id", c.ID, "tenant", tenant, "start_at", c.StartAt)
	kv, err := s.shortCodesKV(ctx)
	if err != nil {
		return nil, err
	}
	contracted, known, err := contractedRate(ctx, kv, c.ShortCode)
	if err != nil {
		return nil, err
	}
	return &upload{s: s, campaign: c, header: h, tpl: tpl, started: now, release: s.cfg.Release.forShortCode(contracted, known)}, nil
}

// receive reads the recipients and stores them chunk by chunk. Reading
// and rendering the next chunks (a goroutine of their own) overlap the
// storing of the current one (a transaction, a COPY, publishes): each side
// waits on the other's machine otherwise.
func (u *upload) receive(ctx context.Context, stream partnerv1.MessagingService_SubmitCampaignServer) error {
	type item struct {
		c   prepared
		err error
	}
	items := make(chan item, 2)
	done := make(chan struct{})
	defer close(done)
	go func() {
		defer close(items)
		send := func(it item) bool {
			select {
			case items <- it:
				return it.err == nil
			case <-done:
				return false
			}
		}
		for {
			req, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				send(item{err: err})
				return
			}
			batch := req.GetRecipients()
			if batch == nil {
				send(item{err: fault.Invalidf("spec", "only the first item of the stream may be a spec")})
				return
			}
			rs := batch.GetRecipients()
			for len(rs) > 0 {
				n := min(len(rs), campaignChunk)
				c, err := u.prepare(ctx, rs[:n])
				if !send(item{c: c, err: err}) {
					return
				}
				rs = rs[n:]
			}
		}
	}()
	for it := range items {
		if it.err != nil {
			return it.err
		}
		if err := u.store(ctx, it.c); err != nil {
			return err
		}
	}
	return nil
}

// prepared is a chunk rendered: its rows and messages, ready to store.
type prepared struct {
	now       time.Time
	rows      [][]any
	msgs      []*eventsv1.MessageAccepted
	positions []int64
	refused   int64
}

// prepare renders some recipients. Each message starts a trace of its own
// (one SMS, one trace), linked to the SubmitCampaign call's span: its
// context travels in the message, since the batch's headers carry the
// batch's.
func (u *upload) prepare(ctx context.Context, rs []*partnerv1.Recipient) (prepared, error) {
	s, c := u.s, u.campaign
	link := trace.LinkFromContext(ctx)
	now := s.now().UTC().Truncate(time.Microsecond)
	rows := make([][]any, 0, len(rs))
	msgs := make([]*eventsv1.MessageAccepted, 0, len(rs))
	positions := make([]int64, 0, len(rs))
	refused := int64(0)
	notBefore := c.StartAt
	accepted := enumText(partnerv1.MessageState_MESSAGE_STATE_ACCEPTED)
	campaignID, err := uuid.Parse(c.ID)
	if err != nil {
		return prepared{}, err
	}
	// Shared by the chunk's events: only marshalled, never changed.
	attestations := &partnerv1.ContentAttestations{
		StopInformedAtCollection: c.StopInformed,
		FreeClaimSubstantiated:   c.FreeClaimAttested,
	}
	acceptedAt, notBeforeTS, expiresAt := timestamppb.New(now), timestamppb.New(notBefore), timestamppb.New(c.ExpiresAt)
	// The chunk's row, its values boxed once: a row copies them and sets
	// its own (id, recipient, encoding, segments), instead of boxing all
	// 21 again for each recipient.
	// [16]byte, not uuid.UUID: pgx encodes an array as a uuid directly, a
	// uuid.UUID through its driver.Valuer, as text.
	base := []any{
		nil, c.TenantID, [16]byte(campaignID), "", c.ShortCode, c.Brand, c.Category, c.Sender,
		nil, nil, nil, nil,
		accepted, now, notBefore, c.ExpiresAt, now,
		c.Sector, c.StopInformed, c.FreeClaimAttested, c.AppendStopMention,
	}
	encodings := map[partnerv1.Encoding]any{}
	for _, r := range rs {
		pos := u.position
		u.position++
		text, an, reason, detail := u.render(r)
		if reason != partnerv1.Reason_REASON_UNSPECIFIED {
			refused++
			u.refuse(pos, reason, detail)
			continue
		}
		uid, err := uuid.NewV7()
		if err != nil {
			return prepared{}, fmt.Errorf("message id: %w", err)
		}
		id := uid.String()
		rcpt := newRecipient(r.GetMsisdn())
		positions = append(positions, pos)
		row := make([]any, len(base))
		copy(row, base)
		enc := partnerv1.Encoding(an.Encoding)
		if _, ok := encodings[enc]; !ok {
			encodings[enc] = enumText(enc)
		}
		row[0], row[8], row[9], row[10], row[11] = [16]byte(uid), rcpt.masked, rcpt.hash, encodings[enc], int32(an.Segments)
		rows = append(rows, row)
		msgs = append(msgs, &eventsv1.MessageAccepted{
			MessageId:    id,
			TenantId:     c.TenantID,
			CampaignId:   c.ID,
			ShortCode:    c.ShortCode,
			Brand:        c.Brand,
			Category:     u.header.category,
			Sender:       c.Sender,
			Recipient:    r.GetMsisdn(),
			Text:         text,
			AcceptedAt:   acceptedAt,
			NotBefore:    notBeforeTS,
			ExpiresAt:    expiresAt,
			Encoding:     partnerv1.Encoding(an.Encoding),
			SegmentCount: int32(an.Segments),

			Sector:              c.Sector,
			Attestations:        attestations,
			StopMentionAppended: c.AppendStopMention,
			Weight:              uint32(c.Weight),
			Traceparent:         u.traceparent(ctx, id, link),
		})
	}
	return prepared{now: now, rows: rows, msgs: msgs, positions: positions, refused: refused}, nil
}

// store records and publishes a prepared chunk in one transaction.
func (u *upload) store(ctx context.Context, p prepared) error {
	s, c, now, refused := u.s, u.campaign, p.now, p.refused
	// Recipients beyond a prepaid tenant's credit are refused one by one.
	rows, msgs, hold, noCredit, err := u.reserveChunk(ctx, p.rows, p.msgs, p.positions)
	if err != nil {
		return err
	}
	refused += noCredit
	defer hold.undo(ctx)
	err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		if len(rows) > 0 {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"ingest", "messages"}, []string{
				"id", "tenant_id", "campaign_id", "client_reference", "short_code", "brand", "category", "sender",
				"recipient_masked", "recipient_hash", "encoding", "segment_count",
				"state", "accepted_at", "not_before", "expires_at", "updated_at",
				"sector", "stop_informed_at_collection", "free_claim_substantiated", "stop_mention_appended",
			}, pgx.CopyFromRows(rows))
			if err != nil {
				return dbErr("copy campaign messages", err)
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE ingest.campaigns SET accepted = accepted + $2, refused = refused + $3, updated_at = $4 WHERE id = $1`,
			c.ID, len(rows), refused, now); err != nil {
			return dbErr("count campaign messages", err)
		}
		// Commit only once the events are stored: a failed publish leaves
		// no message the bus does not know.
		pctx, cancel := context.WithTimeout(ctx, publishTimeout)
		defer cancel()
		if err := s.Bus.PublishAll(pctx, u.batches(msgs, now)); err != nil {
			return fmt.Errorf("campaign %s: %w", c.ID, errors.Join(err, fault.ErrUnavailable))
		}
		return nil
	})
	if err != nil {
		return err
	}
	hold.keep()
	u.accepted += int64(len(rows))
	u.refused += refused
	for _, m := range msgs {
		u.segments += int64(m.GetSegmentCount())
	}
	return nil
}

// batches packs a chunk's messages, in order, into CampaignBatch events of
// at most maxBatchBytes and the release's Span of the pace, each published
// now or scheduled for when the release pace reaches its first segment
// (ReleaseConfig).
func (u *upload) batches(msgs []*eventsv1.MessageAccepted, now time.Time) []bus.Event {
	c := u.campaign
	subject := bus.AcceptedSubject(c.TenantID, c.ShortCode)
	start := u.started
	if c.StartAt.After(start) {
		start = c.StartAt
	}
	span := u.s.cfg.Release.batchSegments(u.release)
	var out []bus.Event
	var cur *eventsv1.CampaignBatch
	size := 0
	seg, first := u.segments, int64(0) // the message's first segment, the batch's
	for _, m := range msgs {
		n := proto.Size(m) + 4
		if cur == nil || size+n > maxBatchBytes || seg-first >= span {
			cur, size, first = &eventsv1.CampaignBatch{}, 0, seg
			ev := bus.Event{
				Subject: subject,
				Msg:     cur,
				// The first message's id names the batch: ids are fresh
				// UUIDs, and a retried publish of this chunk reuses them.
				MsgID: m.GetMessageId() + "/batch",
				At:    u.s.cfg.Release.at(u.release, start, now, seg),
				Hold:  bus.ReleaseSubject(c.ShortCode, c.ID, m.GetMessageId()),
			}
			if !ev.At.IsZero() {
				// Only a schedule is ever moved (retime).
				ev.Header = u.s.cfg.Release.header(u.release, start)
			}
			out = append(out, ev)
		}
		cur.Messages = append(cur.Messages, m)
		size += n
		seg += int64(m.GetSegmentCount())
	}
	return out
}

// traceparent starts and ends the root span of a campaign message's trace
// and returns its context, for compliance to continue; "" if the trace is
// not sampled (nothing would be recorded: the bytes are saved).
func (u *upload) traceparent(ctx context.Context, id string, link trace.Link) string {
	_, span := u.s.tracer.Start(ctx, "accept campaign message", trace.WithNewRoot(), trace.WithLinks(link),
		trace.WithSpanKind(trace.SpanKindProducer))
	defer span.End()
	if !span.SpanContext().IsSampled() {
		return ""
	}
	span.SetAttributes(attribute.String("pushsms.message_id", id), attribute.String("pushsms.campaign_id", u.campaign.ID))
	return telemetry.Traceparent(trace.ContextWithSpan(ctx, span))
}

// render makes one recipient's text and counts it, or says why the
// recipient is refused.
func (u *upload) render(r *partnerv1.Recipient) (string, gsm.Analysis, partnerv1.Reason, string) {
	if err := checkRecipient("msisdn", r.GetMsisdn()); err != nil {
		return "", gsm.Analysis{}, partnerv1.Reason_REASON_INVALID_NUMBER, "msisdn " + violation(err)
	}
	text, err := u.tpl.render(r.GetVariables())
	if err != nil {
		return "", gsm.Analysis{}, partnerv1.Reason_REASON_CONTENT, strings.TrimPrefix(err.Error(), "ingest: template: ")
	}
	if strings.TrimSpace(text) == "" {
		return "", gsm.Analysis{}, partnerv1.Reason_REASON_CONTENT, "empty text"
	}
	text = withStopMention(text, u.campaign.ShortCode, u.campaign.AppendStopMention)
	an, err := analyzeText("text", text)
	if err != nil {
		return "", an, partnerv1.Reason_REASON_CONTENT, "text " + violation(err)
	}
	return text, an, partnerv1.Reason_REASON_UNSPECIFIED, ""
}

// violation is the description of a one-field fault.Invalid error.
func violation(err error) string {
	var ie *fault.InvalidError
	if errors.As(err, &ie) && len(ie.Violations) == 1 {
		return ie.Violations[0].Description
	}
	return err.Error()
}

// finish ends the upload: the campaign is scheduled or running.
func (u *upload) finish(ctx context.Context) (*partnerv1.Campaign, error) {
	s := u.s
	_, err := s.Pool.Exec(ctx, `UPDATE ingest.campaigns SET state = $2, updated_at = $3 WHERE id = $1 AND state = $4`,
		u.campaign.ID, enumText(partnerv1.CampaignState_CAMPAIGN_STATE_RUNNING), s.now(),
		enumText(partnerv1.CampaignState_CAMPAIGN_STATE_RECEIVING))
	if err != nil {
		u.abandon(ctx, err)
		return nil, dbErr("finish campaign", err)
	}
	s.Log.InfoContext(ctx, "campaign submitted", "campaign_id", u.campaign.ID, "accepted", u.accepted, "refused", u.refused)
	return s.getCampaign(ctx, u.campaign.TenantID, u.campaign.ID)
}

// abandon cancels the campaign of an upload that cannot finish, so that
// the part already accepted does not go out on its own.
func (u *upload) abandon(ctx context.Context, cause error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	s := u.s
	s.Log.WarnContext(ctx, "campaign upload interrupted; cancelling the campaign", "campaign_id", u.campaign.ID,
		"accepted", u.accepted, "err", cause)
	if _, err := s.cancelCampaign(ctx, u.campaign.TenantID, u.campaign.ID); err != nil {
		s.Log.ErrorContext(ctx, "cancel interrupted campaign", "campaign_id", u.campaign.ID, "err", err)
	}
}

func (a *api) GetCampaign(ctx context.Context, req *partnerv1.GetCampaignRequest) (*partnerv1.GetCampaignResponse, error) {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return nil, err
	}
	c, err := a.s.getCampaign(ctx, tenant, req.GetCampaignId())
	if err != nil {
		return nil, err
	}
	return &partnerv1.GetCampaignResponse{Campaign: c}, nil
}

// CancelCampaign marks the campaign cancelled and tells throttle through
// the CAMPAIGNS bucket, which drops the campaign's unsent messages (each
// then reported cancelled). Cancelling a cancelled or completed campaign
// changes nothing.
func (a *api) CancelCampaign(ctx context.Context, req *partnerv1.CancelCampaignRequest) (*partnerv1.CancelCampaignResponse, error) {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return nil, err
	}
	c, err := a.s.cancelCampaign(ctx, tenant, req.GetCampaignId())
	if err != nil {
		return nil, err
	}
	a.s.Log.InfoContext(ctx, "campaign cancelled", "campaign_id", c.GetCampaignId(), "tenant", tenant)
	return &partnerv1.CancelCampaignResponse{Campaign: c}, nil
}

func errNoCampaign(id string) error {
	return fmt.Errorf("campaign %s: %w", id, fault.ErrNotFound)
}

func (s *Service) cancelCampaign(ctx context.Context, tenant, id string) (*partnerv1.Campaign, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, fault.Invalidf("campaign_id", "not a campaign id")
	}
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		c, err := scanCampaign(tx.QueryRow(ctx, `SELECT `+campaignColumns+` FROM ingest.campaigns WHERE id = $1 AND tenant_id = $2 FOR UPDATE`, id, tenant))
		if errors.Is(err, pgx.ErrNoRows) {
			return errNoCampaign(id)
		}
		if err != nil {
			return dbErr("get campaign", err)
		}
		counts, err := campaignCounts(ctx, tx, id, s.now())
		if err != nil {
			return dbErr("count campaign messages", err)
		}
		switch c.state(counts, s.now()) {
		case partnerv1.CampaignState_CAMPAIGN_STATE_CANCELLED, partnerv1.CampaignState_CAMPAIGN_STATE_COMPLETED:
			return nil
		}
		// The bucket first: a cancel the database records must reach throttle.
		if _, err := s.campaigns.Put(ctx, id, []byte(campaignCancelled)); err != nil {
			return fmt.Errorf("campaign %s: control state: %w", id, errors.Join(err, fault.ErrUnavailable))
		}
		_, err = tx.Exec(ctx, `UPDATE ingest.campaigns SET state = $2, updated_at = $3 WHERE id = $1`,
			id, enumText(partnerv1.CampaignState_CAMPAIGN_STATE_CANCELLED), s.now())
		return dbErr("cancel campaign", err)
	})
	if err != nil {
		return nil, err
	}
	c, err := s.getCampaign(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	// Again on a campaign cancelled before: what a first call could not
	// finish is done now.
	if c.GetState() == partnerv1.CampaignState_CAMPAIGN_STATE_CANCELLED {
		s.cancelScheduled(ctx, bus.ReleaseFilter(c.GetShortCode(), id), time.Time{}, bus.CampaignCancelled)
	}
	return c, nil
}

func (s *Service) getCampaign(ctx context.Context, tenant, id string) (*partnerv1.Campaign, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, fault.Invalidf("campaign_id", "not a campaign id")
	}
	c, err := scanCampaign(s.Pool.QueryRow(ctx, `SELECT `+campaignColumns+` FROM ingest.campaigns WHERE id = $1 AND tenant_id = $2`, id, tenant))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNoCampaign(id)
	}
	if err != nil {
		return nil, dbErr("get campaign", err)
	}
	now := s.now()
	counts, err := campaignCounts(ctx, s.Pool, id, now)
	if err != nil {
		return nil, dbErr("count campaign messages", err)
	}
	out := c.proto(counts, now)
	if out.Reasons, out.Deferred, err = campaignDecisions(ctx, s.Pool, id); err != nil {
		return nil, dbErr("count campaign decisions", err)
	}
	return out, nil
}

// campaignCounts counts the campaign's messages by state, in the order of
// the enum.
func campaignCounts(ctx context.Context, q querier, id string, now time.Time) ([]*partnerv1.StateCount, error) {
	rows, err := q.Query(ctx, `SELECT CASE WHEN state = 'deferred' AND not_before <= $2 THEN 'queued' ELSE state END AS st, count(*)
		FROM ingest.messages WHERE campaign_id = $1 GROUP BY st`, id, now)
	if err != nil {
		return nil, err
	}
	var out []*partnerv1.StateCount
	var st string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&st, &n}, func() error {
		out = append(out, &partnerv1.StateCount{
			State: parseEnum[partnerv1.MessageState](st),
			Count: n,
		})
		return nil
	})
	slices.SortFunc(out, func(a, b *partnerv1.StateCount) int { return cmp.Compare(a.GetState(), b.GetState()) })
	return out, err
}

func (c campaignRow) state(counts []*partnerv1.StateCount, now time.Time) partnerv1.CampaignState {
	st := parseEnum[partnerv1.CampaignState](c.State)
	if st != partnerv1.CampaignState_CAMPAIGN_STATE_RUNNING {
		return st
	}
	open := int64(0)
	for _, sc := range counts {
		if !terminal(sc.GetState()) {
			open += sc.GetCount()
		}
	}
	switch {
	case open == 0:
		return partnerv1.CampaignState_CAMPAIGN_STATE_COMPLETED
	case c.StartAt.After(now):
		return partnerv1.CampaignState_CAMPAIGN_STATE_SCHEDULED
	}
	return partnerv1.CampaignState_CAMPAIGN_STATE_RUNNING
}

func (c campaignRow) proto(counts []*partnerv1.StateCount, now time.Time) *partnerv1.Campaign {
	return &partnerv1.Campaign{
		CampaignId:      c.ID,
		ClientReference: c.ClientReference,
		Name:            c.Name,
		ShortCode:       c.ShortCode,
		Brand:           c.Brand,
		Category:        parseEnum[partnerv1.TrafficCategory](c.Category),
		State:           c.state(counts, now),
		Accepted:        c.Accepted,
		Refused:         c.Refused,
		Counts:          counts,
		CreatedAt:       timestamppb.New(c.CreatedAt),
		StartAt:         timestamppb.New(c.StartAt),
	}
}

// firstSpec reads the first item of a client stream, which must be its
// spec (what names it in the error).
func firstSpec[R interface{ GetSpec() *S }, S any](recv func() (R, error), what string) (*S, error) {
	first, err := recv()
	if errors.Is(err, io.EOF) {
		return nil, fault.Invalidf("spec", "the stream must start with the %s spec", what)
	}
	if err != nil {
		return nil, err
	}
	spec := first.GetSpec()
	if spec == nil {
		return nil, fault.Invalidf("spec", "the stream must start with the %s spec", what)
	}
	return spec, nil
}
