package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"pushsms.io/lib/numplan"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// message is one message of the mix.
type message struct {
	to       string // national form, as a partner sends it
	text     string
	segments int
}

// mix returns n messages of 1, 2 and 3 GSM 7-bit segments in turn, each to
// its own French mobile number (Orange blocks 06 07, 06 08, 06 30, 06 31,
// from offset on), so that no frequency cap refuses any.
func mix(n, offset int) []message {
	blocks := []string{"0607", "0608", "0630", "0631"}
	out := make([]message, n)
	for i := range out {
		k := offset + i
		segs := i%3 + 1
		out[i] = message{
			to:       blocks[(k/1_000_000)%len(blocks)] + fmt.Sprintf("%06d", k%1_000_000),
			text:     segmentText(segs, i),
			segments: segs,
		}
	}
	return out
}

// segmentText returns a GSM 7-bit text of n segments (1–3): a single one
// holds 160 characters, a part of a longer one 153.
func segmentText(n, i int) string {
	limits := map[int]int{1: 150, 2: 300, 3: 450}
	var b strings.Builder
	fmt.Fprintf(&b, "Acme : message %d. ", i)
	for b.Len() < limits[n] {
		b.WriteString("Votre commande est en route. ")
	}
	return b.String()[:limits[n]]
}

// e164Hash is the correlation key of a number, as the status view stores
// it (numplan's Hash): the bench joins the simulator's records with the
// acceptance times without ever printing a number.
func e164Hash(raw string) (string, error) {
	n, err := numplan.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("number: %w", err)
	}
	return n.Hash(), nil
}

// simHash is e164Hash of a recipient as the simulator recorded it (AdC,
// international digits without "+").
func simHash(adc string) (string, error) {
	if !strings.HasPrefix(adc, "+") {
		adc = "+" + strings.TrimPrefix(adc, "00")
	}
	return e164Hash(adc)
}

// submitOurs offers the messages through the partner API: with a pace,
// one SendMessage each (drive); without, one customer-relationship
// campaign per short code, all at once.
func (p *platform) submitOurs(ctx context.Context, msgs []message) error {
	client, ctx, closeConn, err := p.partner(ctx)
	if err != nil {
		return err
	}
	defer closeConn()
	codes := ourCodes(p.cfg.ShortCodes)
	if p.cfg.Pace > 0 {
		run := time.Now().UnixNano()
		return drive(ctx, len(msgs), p.cfg.Pace, p.cfg.Parallel, func(ctx context.Context, i int) error {
			_, err := client.SendMessage(ctx, &partnerv1.SendMessageRequest{
				ShortCode: codes[i%len(codes)], Brand: "Acme", Category: partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP,
				Recipient: msgs[i].to, Text: msgs[i].text, ClientReference: fmt.Sprintf("loadbench-%d-%d", run, i),
			})
			if err != nil {
				return fmt.Errorf("SendMessage: %w", err)
			}
			return nil
		})
	}
	errs := make([]error, len(codes))
	var wg sync.WaitGroup
	for i, c := range codes {
		var part []message
		for j := i; j < len(msgs); j += len(codes) {
			part = append(part, msgs[j])
		}
		wg.Go(func() { errs[i] = submitCampaign(ctx, client, c, part) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func submitCampaign(ctx context.Context, client partnerv1.MessagingServiceClient, code string, msgs []message) error {
	stream, err := client.SubmitCampaign(ctx)
	if err != nil {
		return fmt.Errorf("SubmitCampaign %s: %w", code, err)
	}
	spec := &partnerv1.CampaignSpec{
		ShortCode: code, Brand: "Acme", Category: partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP,
		TextTemplate: "{{body}}", Name: "loadbench-" + code, ClientReference: fmt.Sprintf("loadbench-%s-%d", code, time.Now().UnixNano()),
	}
	if err := stream.Send(&partnerv1.SubmitCampaignRequest{Item: &partnerv1.SubmitCampaignRequest_Spec{Spec: spec}}); err != nil {
		return fmt.Errorf("campaign %s spec: %w", code, err)
	}
	// Batches of 500: the chunk size ingest stores in one transaction.
	const batch = 500
	for i := 0; i < len(msgs); i += batch {
		var rs []*partnerv1.Recipient
		for _, m := range msgs[i:min(i+batch, len(msgs))] {
			rs = append(rs, &partnerv1.Recipient{Msisdn: m.to, Variables: map[string]string{"body": m.text}})
		}
		if err := stream.Send(&partnerv1.SubmitCampaignRequest{Item: &partnerv1.SubmitCampaignRequest_Recipients{Recipients: &partnerv1.RecipientBatch{Recipients: rs}}}); err != nil {
			return fmt.Errorf("campaign %s recipients: %w", code, err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return fmt.Errorf("campaign %s: %w", code, err)
	}
	if errs := resp.GetErrors(); len(errs) > 0 {
		return fmt.Errorf("campaign %s: %d recipients refused, first: %v %s", code, len(errs), errs[0].GetReason(), errs[0].GetDetail())
	}
	return nil
}

// progress is how far the platform got, from its own records.
type progress struct {
	simAccepted int64 // segments the simulator ACKed
	done        int64 // segments with a final report in the status view
	billed      int64 // ledger rows
}

func (p *platform) ourProgress(ctx context.Context) (progress, error) {
	var pr progress
	st, err := p.stats(ctx)
	if err != nil {
		return pr, err
	}
	for _, c := range ourCodes(p.cfg.ShortCodes) {
		pr.simAccepted += st.Accounts[c].Accepted
	}
	err = p.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM ingest.segments s JOIN ingest.messages m ON m.id = s.message_id WHERE m.tenant_id = $1 AND s.done_at IS NOT NULL),
		(SELECT count(*) FROM billing.ledger WHERE tenant_id = $1)`, partnerID).Scan(&pr.done, &pr.billed)
	if err != nil {
		return pr, fmt.Errorf("progress: %w", err)
	}
	return pr, nil
}

// waitOurs waits until every segment is at the simulator, reported and
// billed, or until timeout; it reports whether all were.
func (p *platform) waitOurs(ctx context.Context, segments int64, timeout time.Duration) (bool, progress, error) {
	deadline := time.Now().Add(timeout)
	for {
		pr, err := p.ourProgress(ctx)
		if err == nil && pr.simAccepted >= segments && pr.done >= segments && pr.billed >= segments {
			return true, pr, nil
		}
		if time.Now().After(deadline) {
			return false, pr, err
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return false, pr, err
		}
	}
}

// collectOurs fills sys with the platform's figures: acceptance times from
// the status view, submits from the simulator, DR times from the status
// view's segments (the time smsc-link handled the DR; a message's is its
// last segment's), billing from the ledger.
func (p *platform) collectOurs(ctx context.Context, sys *System, start time.Time) error {
	accepted := map[string]time.Time{} // recipient hash -> acceptance
	var acceptedTS []time.Time
	rows, err := p.pool.Query(ctx, `SELECT recipient_hash, accepted_at, segment_count FROM ingest.messages WHERE tenant_id = $1`, partnerID)
	if err != nil {
		return fmt.Errorf("accepted messages: %w", err)
	}
	for rows.Next() {
		var h string
		var at time.Time
		var n int
		if err := rows.Scan(&h, &at, &n); err != nil {
			return fmt.Errorf("accepted messages: %w", err)
		}
		if p.cfg.warm(start, at) {
			accepted[h] = at
		}
		for range n {
			acceptedTS = append(acceptedTS, at)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("accepted messages: %w", err)
	}
	sys.Accepted = acceptance(start, acceptedTS)

	// A message's DR is its last segment's final report: Kannel asks the
	// SMSC for one report per message, so DR figures count messages.
	var drTS []time.Time
	var toDR []time.Duration
	rows, err = p.pool.Query(ctx, `SELECT m.accepted_at, max(s.done_at) FROM ingest.messages m JOIN ingest.segments s ON s.message_id = m.id
		WHERE m.tenant_id = $1 GROUP BY m.id, m.accepted_at, m.segment_count HAVING count(s.done_at) = m.segment_count`, partnerID)
	if err != nil {
		return fmt.Errorf("reported messages: %w", err)
	}
	for rows.Next() {
		var acc, done time.Time
		if err := rows.Scan(&acc, &done); err != nil {
			return fmt.Errorf("reported messages: %w", err)
		}
		drTS = append(drTS, done)
		if p.cfg.warm(start, acc) {
			toDR = append(toDR, done.Sub(acc))
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reported messages: %w", err)
	}
	sys.DRs, sys.AcceptToDR = throughput(drTS), percentiles(toDR)

	var billedTS []time.Time
	rows, err = p.pool.Query(ctx, `SELECT recorded_at FROM billing.ledger WHERE tenant_id = $1`, partnerID)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	for rows.Next() {
		var at time.Time
		if err := rows.Scan(&at); err != nil {
			return fmt.Errorf("ledger: %w", err)
		}
		billedTS = append(billedTS, at)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	b := throughput(billedTS)
	sys.Billed = &b

	subTS, toSubmit, err := p.submitTimes(ctx, ourCodes(p.cfg.ShortCodes), accepted)
	if err != nil {
		return err
	}
	sys.Submitted, sys.AcceptToSubmit = throughput(subTS), percentiles(toSubmit)
	if n := len(toSubmit); n < len(subTS) && p.cfg.Warmup == 0 {
		sys.Notes = append(sys.Notes, fmt.Sprintf("%d of %d submits matched to an acceptance time", n, len(subTS)))
	}
	return nil
}

// submitTimes reads every accepted 51 of codes from the simulator, and the
// time from acceptance (by recipient) to its arrival there.
func (p *platform) submitTimes(ctx context.Context, codes []string, accepted map[string]time.Time) ([]time.Time, []time.Duration, error) {
	var subs []simSubmit
	if err := getJSON(ctx, "http://"+p.simHTTP+"/submits", &subs); err != nil {
		return nil, nil, err
	}
	var ts []time.Time
	var lat []time.Duration
	for _, s := range subs {
		if s.Outcome != "accepted" || !slices.Contains(codes, s.Account) {
			continue
		}
		ts = append(ts, s.Time)
		h, err := simHash(s.AdC)
		if err != nil {
			continue
		}
		if at, ok := accepted[h]; ok {
			lat = append(lat, s.Time.Sub(at))
		}
	}
	return ts, lat, nil
}

// lag lists every JetStream consumer's backlog: what is still pending for
// it (num_pending) and what it holds unacknowledged (num_ack_pending).
func (p *platform) lag(ctx context.Context) ([]Lag, error) {
	var out []Lag
	streams := p.bus.JS.ListStreams(ctx)
	var names []string
	for si := range streams.Info() {
		names = append(names, si.Config.Name)
	}
	if err := streams.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	slices.Sort(names)
	for _, name := range names {
		// KV buckets' consumers are the services' watchers (ordered,
		// ephemeral): configuration, not the message pipeline.
		if strings.HasPrefix(name, "KV_") {
			continue
		}
		s, err := p.bus.JS.Stream(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", name, err)
		}
		cons := s.ListConsumers(ctx)
		for ci := range cons.Info() {
			out = append(out, Lag{Stream: name, Consumer: ci.Name, Pending: ci.NumPending, AckPending: ci.NumAckPending})
		}
		if err := cons.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
			return nil, fmt.Errorf("consumers of %s: %w", name, err)
		}
	}
	return out, nil
}

// partner dials the partner API as the bench's partner: the client, ctx
// carrying its API key, and what closes the connection.
func (p *platform) partner(ctx context.Context) (partnerv1.MessagingServiceClient, context.Context, func(), error) {
	conn, err := grpc.NewClient(p.apiAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("partner API: %w", err)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+p.apiKey)
	return partnerv1.NewMessagingServiceClient(conn), ctx, func() { conn.Close() }, nil
}
