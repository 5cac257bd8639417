package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/sync/errgroup"

	"google.golang.org/protobuf/proto"

	"pushsms.io/cmd/stack"
	"pushsms.io/lib/bus"
	"pushsms.io/lib/rate"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
	"pushsms.io/services/throttle"
)

var scenarios = map[string]func(context.Context, Config, *Report) error{
	"rates":    runRates,
	"many":     runMany,
	"priority": runPriority,
	"weights":  runWeights,
	"failover": runFailover,
	"accept":   runAccept,
	"cancel":   runCancel,
	"raise":    runRaise,
}

const (
	marketing = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING
	customer  = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP
)

// backlog runs one campaign per short code holding cfg.Duration of its
// rate in 1–3-segment messages, waits until the SMSC took all of it and
// reports the simulator's figures. The short codes are paused while the
// backlog is queued (through the whole platform, or as cleared events on
// the pacing path) and resumed together: the throttle then has the whole
// backlog at once, whatever the pace of the pipeline in front of it on the
// bench's machine.
func backlog(ctx context.Context, cfg Config, rep *Report, rates throttle.RateTable, minRatio float64) error {
	b, err := startBench(ctx, cfg, rates, 1, true)
	if err != nil {
		return err
	}
	defer b.close()
	var cs []campaign
	messages := map[string]int{}
	for c, r := range rates {
		// Two segments on average: rate × duration segments.
		n := int(math.Ceil(float64(r) * cfg.Duration.Seconds() / 2))
		cs = append(cs, campaign{shortCode: c, category: customer, messages: n, name: "backlog-" + c})
		messages[c] = n
	}
	var want map[string]int64
	if cfg.Path == "pacing" {
		if want, err = b.feedPacing(ctx, messages); err != nil {
			return err
		}
	} else if want, err = b.feedPlatform(ctx, cs); err != nil {
		return err
	}
	cpu0, cpuErr := b.cpu()
	t0 := time.Now()
	if err := b.drain(ctx, want, 2*cfg.Duration+2*time.Minute); err != nil {
		// The figures so far still tell where it stalled.
		rep.Failures = append(rep.Failures, err.Error())
	}
	var segments int64
	for _, n := range want {
		segments += n
	}
	wall := time.Since(t0)
	cpu1, err := b.cpu()
	if err = errors.Join(cpuErr, err); err != nil {
		// A figure that leaves a process out would be wrong, not rough.
		rep.Extra["cpu"] = "not measured: " + err.Error()
	} else {
		rep.Extra["cpu"] = cpuCost(cpu1-cpu0, wall, segments)
	}
	rep.Results = b.results(rates)
	rep.Extra["backlog"] = fmt.Sprintf("%v at each short code's rate, texts of 1, 2 and 3 segments in turn", cfg.Duration)
	check(rep, minRatio)
	return nil
}

// feedPlatform submits the campaigns through the partner API with their
// short codes paused, waits until compliance decided every message, then
// resumes the short codes together; it returns the segments per short
// code.
func (b *bench) feedPlatform(ctx context.Context, cs []campaign) (map[string]int64, error) {
	for _, c := range cs {
		if _, err := b.client.PauseShortCode(b.auth(ctx), &partnerv1.PauseShortCodeRequest{ShortCode: c.shortCode}); err != nil {
			return nil, fmt.Errorf("pause %s: %w", c.shortCode, err)
		}
	}
	subs, err := b.submitAll(ctx, cs)
	if err != nil {
		return nil, err
	}
	want := map[string]int64{}
	for i, c := range cs {
		if _, err := b.decided(ctx, subs[i].id, c.messages); err != nil {
			return nil, err
		}
		want[c.shortCode] = int64(subs[i].segments)
	}
	// Together: a short code resumed seconds after another would not
	// overlap with it.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, c := range cs {
		g.Go(func() error {
			if _, err := b.client.ResumeShortCode(b.auth(gctx), &partnerv1.ResumeShortCodeRequest{ShortCode: c.shortCode}); err != nil {
				return fmt.Errorf("resume %s: %w", c.shortCode, err)
			}
			return nil
		})
	}
	return want, g.Wait()
}

// runRates: short codes at 10, 20, 50, 100 and 150 SMS/s.
func runRates(ctx context.Context, cfg Config, rep *Report) error {
	rates := throttle.RateTable{"36010": 10, "36020": 20, "36050": 50, "36100": 100, "36150": 150}
	return backlog(ctx, cfg, rep, rates, 0.99)
}

// runMany: 200 short codes with mixed rates, 5 000 SMS/s or more together.
func runMany(ctx context.Context, cfg Config, rep *Report) error {
	rates := throttle.RateTable{}
	// The offer's rates, most short codes on the smaller ones: 6 000 SMS/s,
	// or 5 000 (the floor) with fewer at 20 and 50.
	mix := []int{10, 20, 50, 100, 10, 20, 50, 10, 20, 10}
	switch cfg.ManyMix {
	case "", "6000":
	case "5000":
		mix = []int{10, 20, 50, 100, 10, 20, 10, 10, 10, 10}
	default:
		return fmt.Errorf("-many-mix %q: want 6000 or 5000", cfg.ManyMix)
	}
	if cfg.ManyRate > 0 {
		mix = []int{cfg.ManyRate}
	}
	total := 0
	for i := range 200 {
		r := mix[i%len(mix)]
		rates[strconv.Itoa(36000+i)] = r
		total += r
	}
	rep.Extra["total_contracted"] = fmt.Sprintf("%d SMS/s over %d short codes", total, len(rates))
	return backlog(ctx, cfg, rep, rates, 0.98)
}

// checkMarketingWindow returns why a scenario that queues marketing on
// code cannot run now: marketing flows only in the sending window (all day
// in the bench's contracts, not on Sundays and holidays), and the platform
// holds it otherwise, so the scenario would measure nothing.
func checkMarketingWindow(code string) error {
	w, err := allDay([]string{code}).WindowFor(code).Calendar()
	if err != nil {
		return err
	}
	if now := time.Now(); !w.Open(now) {
		return fmt.Errorf("the marketing window is closed (French time %s, opens %s): no marketing would be queued",
			now.In(w.Location()).Format("Mon 15:04"), w.NextOpen(now).In(w.Location()).Format("Mon 15:04"))
	}
	return nil
}

// runPriority: customer-relationship messages sent while marketing is
// queued on the same short code; time from SendMessage to the SMSC.
func runPriority(ctx context.Context, cfg Config, rep *Report) error {
	const code = singleCode
	if err := checkMarketingWindow(code); err != nil {
		return err
	}
	b, rates, err := startSingle(ctx, cfg, 1)
	if err != nil {
		return err
	}
	defer b.close()
	mkt, err := b.submit(ctx, campaign{shortCode: code, category: marketing, messages: cfg.Marketing, name: "marketing"})
	if err != nil {
		return err
	}
	// The marketing is queued on the short code once it flows: accepted,
	// the rest of it at the throttle or waiting for its release, which
	// ingest paces at the short code's rate (compliance decides it as it
	// goes out, not all at once).
	for begin := time.Now(); b.accepted()[code] < int64(2*cfg.Rate); {
		if time.Since(begin) > 2*time.Minute {
			return fmt.Errorf("no marketing reached the SMSC in 2 min")
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	queued := b.st.Sim().Stats().Accounts[code].Accepted
	if queued >= int64(mkt.segments)-int64(2*cfg.Rate) {
		return fmt.Errorf("the marketing backlog (%d segments) was nearly all sent before the customer messages: raise -marketing", mkt.segments)
	}
	sent := map[string]time.Time{} // recipient's national digits -> SendMessage
	for i := range cfg.Priority {
		to := b.recipient()
		at := time.Now()
		_, err := b.client.SendMessage(b.auth(ctx), &partnerv1.SendMessageRequest{
			ShortCode: code, Brand: "Acme", Category: customer, Recipient: to,
			Text: fmt.Sprintf("Acme : votre code de connexion est %06d.", i),
		})
		if err != nil {
			return fmt.Errorf("SendMessage: %w", err)
		}
		sent[to[1:]] = at
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	lat, err := b.reached(ctx, sent, 30*time.Second)
	if err != nil {
		return err
	}
	p50, p99 := percentile(lat, 0.50), percentile(lat, 0.99)
	rep.Extra["marketing_queued"] = fmt.Sprintf("%d messages (%d segments), %d segments at the SMSC when the first customer message was sent", cfg.Marketing, mkt.segments, queued)
	rep.Extra["customer_to_smsc"] = fmt.Sprintf("%d messages: p50 %v, p99 %v, max %v", len(lat), p50, p99, slices.Max(lat))
	rep.Results = b.results(rates)
	if p99 > time.Second {
		rep.Failures = append(rep.Failures, fmt.Sprintf("customer messages reach the SMSC in %v at p99, want ≤ 1 s", p99))
	}
	check(rep, 0)
	return nil
}

// decided waits until compliance decided every message of a campaign
// (none left ACCEPTED) and returns its counts by state.
func (b *bench) decided(ctx context.Context, id string, messages int) (map[string]int64, error) {
	var bar *progressbar.ProgressBar
	if b.cfg.Progress && !b.cfg.JSON {
		bar = progressbar.NewOptions(messages, progressbar.OptionSetWriter(os.Stderr), progressbar.OptionSetDescription("past compliance"),
			progressbar.OptionShowCount(), progressbar.OptionThrottle(500*time.Millisecond))
		defer bar.Finish()
	}
	deadline := time.Now().Add(10*time.Minute + time.Duration(messages)*10*time.Millisecond)
	for {
		resp, err := b.client.GetCampaign(b.auth(ctx), &partnerv1.GetCampaignRequest{CampaignId: id})
		if err != nil {
			return nil, fmt.Errorf("GetCampaign: %w", err)
		}
		counts := map[string]int64{}
		var total int64
		for _, c := range resp.GetCampaign().GetCounts() {
			counts[strings.TrimPrefix(c.GetState().String(), "MESSAGE_STATE_")] = c.GetCount()
			total += c.GetCount()
		}
		if bar != nil {
			_ = bar.Set64(total - counts["ACCEPTED"])
		}
		if total >= int64(messages) && counts["ACCEPTED"] == 0 {
			return counts, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("compliance has not decided campaign %s in time: %v", id, counts)
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// reached waits for the SMSC to accept a submit to each recipient and
// returns the delays since SendMessage.
func (b *bench) reached(ctx context.Context, sent map[string]time.Time, timeout time.Duration) ([]time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for {
		first := map[string]time.Time{}
		for _, s := range b.st.Sim().Submissions() {
			if s.Outcome != "accepted" || len(s.AdC) < 9 {
				continue
			}
			k := s.AdC[len(s.AdC)-9:]
			if _, ok := sent[k]; ok {
				if t, seen := first[k]; !seen || s.Time.Before(t) {
					first[k] = s.Time
				}
			}
		}
		if len(first) == len(sent) {
			var lat []time.Duration
			for k, t := range first {
				lat = append(lat, t.Sub(sent[k]))
			}
			slices.Sort(lat)
			return lat, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d customer messages reached the SMSC within %v", len(first), len(sent), timeout)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// runWeights: two campaigns weighted 3 and 1 on one short code; the
// shares of the SMSC's submits while both have messages waiting.
func runWeights(ctx context.Context, cfg Config, rep *Report) error {
	const code = singleCode
	if err := checkMarketingWindow(code); err != nil {
		return err
	}
	b, rates, err := startSingle(ctx, cfg, 1)
	if err != nil {
		return err
	}
	defer b.close()
	// Each campaign alone holds the whole duration: both always wait.
	// Marketing: weights share the bulk class; customer messages go
	// first, in order (docs/throttle.md, "Fairness").
	n := int(math.Ceil(float64(cfg.Rate) * cfg.Duration.Seconds() / 2))
	subs, err := b.submitAll(ctx, []campaign{
		{shortCode: code, category: marketing, messages: n, weight: 3, name: "weight-3"},
		{shortCode: code, category: marketing, messages: n, weight: 1, name: "weight-1"},
	})
	if err != nil {
		return err
	}
	if err := b.weightCarried(ctx, code); err != nil {
		return err
	}
	owner := map[string]int{}
	for i, s := range subs {
		for _, r := range s.recipients {
			owner[r[1:]] = i
		}
	}
	if err := sleep(ctx, cfg.Duration); err != nil {
		return err
	}
	var count [2]int
	var firstAt, lastAt time.Time
	for _, s := range b.st.Sim().Submissions() {
		if s.Outcome != "accepted" || len(s.AdC) < 9 {
			continue
		}
		i, ok := owner[s.AdC[len(s.AdC)-9:]]
		if !ok {
			continue
		}
		if firstAt.IsZero() {
			firstAt = s.Time
		}
		lastAt = s.Time
		count[i]++
	}
	total := count[0] + count[1]
	if total == 0 {
		return fmt.Errorf("no submit reached the SMSC in %v", cfg.Duration)
	}
	share := float64(count[0]) / float64(total)
	rep.Extra["shares"] = fmt.Sprintf("weight 3: %d segments (%.1f %%), weight 1: %d (%.1f %%) over %v", count[0], 100*share, count[1], 100-100*share, lastAt.Sub(firstAt).Round(time.Second))
	rep.Results = b.results(rates)
	if math.Abs(share-0.75) > 0.03 {
		rep.Failures = append(rep.Failures, fmt.Sprintf("weight-3 campaign got %.1f %% of the submits, want 75 ± 3 %%", 100*share))
	}
	check(rep, 0.99)
	return nil
}

// weightCarried checks that the campaign's weight reaches the throttle:
// the last campaign batch ingest released on the short code carries a
// weight.
func (b *bench) weightCarried(ctx context.Context, code string) error {
	str, err := b.bus.JS.Stream(ctx, bus.StreamAccepted)
	if err != nil {
		return fmt.Errorf("stream %s: %w", bus.StreamAccepted, err)
	}
	raw, err := str.GetLastMsgForSubject(ctx, bus.AcceptedSubject(stack.LocalPartner, code))
	if err != nil {
		return fmt.Errorf("last accepted message of %s: %w", code, err)
	}
	// Campaigns reach the subject in batches.
	var batch eventsv1.CampaignBatch
	if err := proto.Unmarshal(raw.Data, &batch); err != nil || len(batch.GetMessages()) == 0 {
		return fmt.Errorf("decode the last CampaignBatch of %s: %v", code, err)
	}
	if m := batch.GetMessages()[0]; m.GetWeight() == 0 {
		return fmt.Errorf("%w: campaign weights: MessageAccepted.weight is not set by ingest", ErrFeature)
	}
	return nil
}

// runFailover: three throttle replicas; the owner of a busy short code is
// stopped; another must take over within 5 s, with no violation and no
// message lost.
func runFailover(ctx context.Context, cfg Config, rep *Report) error {
	const code = singleCode
	b, rates, err := startSingle(ctx, cfg, 3)
	if err != nil {
		return err
	}
	defer b.close()
	kv, err := b.bus.JS.KeyValue(ctx, bus.BucketThrottleLeases)
	if err != nil {
		return fmt.Errorf("%w: throttle ownership: bucket %s: %v", ErrFeature, bus.BucketThrottleLeases, err)
	}
	n := int(math.Ceil(float64(cfg.Rate) * cfg.Duration.Seconds() / 2))
	sub, err := b.submit(ctx, campaign{shortCode: code, category: customer, messages: n, name: "failover"})
	if err != nil {
		return err
	}
	lease := func() string {
		e, err := kv.Get(ctx, code)
		if err != nil {
			return ""
		}
		return leaseOwner(e.Value())
	}
	for start := time.Now(); lease() == ""; {
		if time.Since(start) > 10*time.Second {
			return fmt.Errorf("%w: throttle ownership: no lease for %s in %s after 10 s", ErrFeature, code, bus.BucketThrottleLeases)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	if err := sleep(ctx, 3*time.Second); err != nil { // busy: the backlog flows
		return err
	}
	// The stack does not say which replica holds a lease: stop them in
	// turn until the lease changes hands. Stopping a replica that owns
	// nothing must not disturb the short code either.
	var killedAt time.Time
	owner := lease()
	for i := range b.st.ThrottleReplicas() - 1 {
		killedAt = time.Now()
		if err := b.st.StopThrottle(i); err != nil {
			return err
		}
		changed := false
		for time.Since(killedAt) < 6*time.Second {
			if l := lease(); l != owner && l != "" {
				changed = true
				break
			}
			if err := sleep(ctx, 50*time.Millisecond); err != nil {
				return err
			}
		}
		if changed {
			rep.Extra["owner_stopped"] = fmt.Sprintf("replica %d (lease %q), new owner %q", i, owner, lease())
			break
		}
		if i == b.st.ThrottleReplicas()-2 {
			return fmt.Errorf("the lease of %s stayed with %q after stopping the other replicas", code, owner)
		}
	}
	if err := b.drain(ctx, map[string]int64{code: int64(sub.segments)}, 2*cfg.Duration+time.Minute); err != nil {
		rep.Failures = append(rep.Failures, err.Error())
	}
	var next time.Time
	distinct := map[string]int{}
	for _, s := range b.st.Sim().Submissions() {
		if s.Outcome != "accepted" {
			continue
		}
		if next.IsZero() && s.Time.After(killedAt) {
			next = s.Time
		}
		distinct[s.AdC+":"+string(s.UDH)]++
	}
	dups := 0
	for _, c := range distinct {
		dups += c - 1
	}
	gap := next.Sub(killedAt)
	st := b.st.Sim().Stats().Accounts[code]
	lost := int64(sub.segments) - int64(len(distinct))
	rep.Extra["takeover"] = fmt.Sprintf("next submit %v after the owner stopped", gap.Round(time.Millisecond))
	rep.Extra["segments"] = fmt.Sprintf("accepted %d, submitted %d distinct, lost %d, duplicates %d", sub.segments, len(distinct), lost, dups)
	rep.Results = b.results(rates)
	if next.IsZero() || gap > 5*time.Second {
		rep.Failures = append(rep.Failures, fmt.Sprintf("no submit within 5 s of the owner stopping (next after %v)", gap))
	}
	if lost != 0 {
		rep.Failures = append(rep.Failures, fmt.Sprintf("%d segments lost", lost))
	}
	if st.Violations > 0 {
		rep.Failures = append(rep.Failures, fmt.Sprintf("%d violations at the SMSC", st.Violations))
	}
	return nil
}

// leaseOwner reads the owner of a THROTTLE_LEASES value: JSON {"owner",
// "until"} (renewals change "until" only), or the bare replica name; ""
// for a lease given back or not yet known ("?").
func leaseOwner(v []byte) string {
	var l struct {
		Owner string `json:"owner"`
	}
	if json.Unmarshal(v, &l) != nil {
		l.Owner = string(v)
	}
	if l.Owner == "?" {
		return ""
	}
	return l.Owner
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// runAccept: one campaign of -recipients recipients (1–3 segments each)
// streamed through the partner API; how long until SubmitCampaign answers
// (every recipient stored: the campaign accepted), while the rest of the
// platform (compliance, the status view, the throttle) works on it in the
// same process. The process's peak RSS is everything's: NATS, the five
// services, the simulator and the bench.
func runAccept(ctx context.Context, cfg Config, rep *Report) error {
	const code = singleCode
	b, _, err := startSingle(ctx, cfg, 1)
	if err != nil {
		return err
	}
	defer b.close()
	cpu0 := processCPU()
	start := time.Now()
	c, err := b.submit(ctx, campaign{shortCode: code, category: customer, messages: cfg.Recipients, name: "accept"})
	if err != nil {
		return err
	}
	took := time.Since(start)
	cpu := processCPU() - cpu0
	rep.Extra["campaign"] = c.id
	rep.Extra["recipients"] = cfg.Recipients
	rep.Extra["accepted_in"] = took.Round(time.Millisecond).String()
	rep.Extra["accepted_per_s"] = int(float64(cfg.Recipients) / took.Seconds())
	rep.Extra["cpu_per_recipient"] = (cpu / time.Duration(cfg.Recipients)).String()
	rep.Extra["peak_rss_mb"] = peakRSS() >> 20
	if took > 30*time.Second {
		rep.Failures = append(rep.Failures, fmt.Sprintf("%d recipients accepted in %v, want ≤ 30 s", cfg.Recipients, took.Round(time.Millisecond)))
	}
	return nil
}

// runCancel: one campaign of -recipients recipients at -rate, cancelled
// once it goes out: how long after CancelCampaign the SMSC saw its last
// submit (issue 5: within 1 s), and how long until every message is in a
// final state (the status view's counts: nothing accepted, queued or
// scheduled left), which for the messages still waiting for their release
// is ingest's work, not the release pace's (docs/events.md, "Campaign
// release").
func runCancel(ctx context.Context, cfg Config, rep *Report) error {
	const code = singleCode
	b, _, err := startSingle(ctx, cfg, 1)
	if err != nil {
		return err
	}
	defer b.close()
	c, err := b.submit(ctx, campaign{shortCode: code, category: customer, messages: cfg.Recipients, name: "cancel"})
	if err != nil {
		return err
	}
	// Going out: a few seconds of submits at the SMSC.
	for len(b.st.Sim().Submissions()) < 3*cfg.Rate {
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	cancelled := time.Now()
	if _, err := b.client.CancelCampaign(b.auth(ctx), &partnerv1.CancelCampaignRequest{CampaignId: c.id}); err != nil {
		return fmt.Errorf("CancelCampaign: %w", err)
	}
	answered := time.Since(cancelled)
	final := map[partnerv1.MessageState]bool{
		partnerv1.MessageState_MESSAGE_STATE_CANCELLED: true, partnerv1.MessageState_MESSAGE_STATE_DELIVERED: true,
		partnerv1.MessageState_MESSAGE_STATE_FAILED: true, partnerv1.MessageState_MESSAGE_STATE_EXPIRED: true,
		partnerv1.MessageState_MESSAGE_STATE_REJECTED: true,
	}
	var counts map[partnerv1.MessageState]int64
	// unreleased is when no message is left waiting for its release
	// (ACCEPTED): ingest's part. The rest, QUEUED at throttle, is
	// cancelled as throttle meets each message: those it parked, at the
	// short code's pace.
	var unreleased time.Duration
	deadline := time.Now().Add(10 * time.Minute)
	for {
		got, err := b.client.GetCampaign(b.auth(ctx), &partnerv1.GetCampaignRequest{CampaignId: c.id})
		if err != nil {
			return fmt.Errorf("GetCampaign: %w", err)
		}
		counts = map[partnerv1.MessageState]int64{}
		pending := int64(0)
		for _, sc := range got.GetCampaign().GetCounts() {
			counts[sc.GetState()] = sc.GetCount()
			if !final[sc.GetState()] {
				pending += sc.GetCount()
			}
		}
		if counts[partnerv1.MessageState_MESSAGE_STATE_ACCEPTED] == 0 && unreleased == 0 {
			unreleased = time.Since(cancelled)
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d messages not final 10 min after the cancel: %v", pending, counts)
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
	allFinal := time.Since(cancelled)
	var last time.Time
	for _, s := range b.st.Sim().Submissions() {
		if s.Time.After(last) {
			last = s.Time
		}
	}
	rep.Extra["recipients"] = cfg.Recipients
	rep.Extra["cancel_answered_in"] = answered.Round(time.Millisecond).String()
	rep.Extra["last_submit_after_cancel"] = last.Sub(cancelled).Round(time.Millisecond).String()
	rep.Extra["unreleased_final_in"] = unreleased.Round(time.Millisecond).String()
	rep.Extra["all_final_in"] = allFinal.Round(time.Millisecond).String()
	rep.Extra["cancelled"] = counts[partnerv1.MessageState_MESSAGE_STATE_CANCELLED]
	rep.Extra["submitted_before_cancel"] = int64(cfg.Recipients) - counts[partnerv1.MessageState_MESSAGE_STATE_CANCELLED]
	if d := last.Sub(cancelled); d > time.Second {
		rep.Failures = append(rep.Failures, fmt.Sprintf("last submit %v after the cancel, want ≤ 1 s", d.Round(time.Millisecond)))
	}
	return nil
}

// runRaise: one campaign on a short code at -rate, its rate raised to
// -raise-to after 10 s, as the operator's contract changes (the simulator
// first): the achieved rate over the -duration after the raise (its first
// 2 s left out: the throttle and smsc-link take the new rate within a
// second) against the new rate. A campaign is released to compliance at
// twice the rate its short code had at the upload; without moving its
// scheduled batches forward it could not use a rate raised more than
// twofold.
func runRaise(ctx context.Context, cfg Config, rep *Report) error {
	const code = singleCode
	if cfg.RaiseTo <= cfg.Rate {
		return fmt.Errorf("-raise-to %d: want more than -rate %d", cfg.RaiseTo, cfg.Rate)
	}
	b, rates, err := startSingle(ctx, cfg, 1)
	if err != nil {
		return err
	}
	defer b.close()
	const before, settle = 10 * time.Second, 2 * time.Second
	// Segments for the time before the raise and for the measure, 2 a
	// message on average, and a margin so that the backlog never runs dry.
	segments := float64(cfg.Rate)*(before+settle).Seconds() + float64(cfg.RaiseTo)*cfg.Duration.Seconds()
	messages := int(segments/2*1.1) + 1
	c, err := b.submit(ctx, campaign{shortCode: code, category: customer, messages: messages, name: "raise"})
	if err != nil {
		return err
	}
	if err := sleep(ctx, before); err != nil {
		return err
	}
	raised := time.Now()
	b.st.SetSimRate(code, cfg.RaiseTo)
	if err := rate.PutRate(ctx, b.bus, code, cfg.RaiseTo); err != nil {
		return err
	}
	if err := sleep(ctx, settle+cfg.Duration+time.Second); err != nil {
		return err
	}
	from, to := raised.Add(settle).Unix()+1, raised.Add(settle+cfg.Duration).Unix()
	st := b.st.Sim().Stats().Accounts[code]
	var sum, lowest int64 = 0, -1
	perSecond := map[int64]int64{}
	for _, s := range st.PerSecond {
		perSecond[s.Second] = s.Accepted
	}
	for t := from; t < to; t++ {
		sum += perSecond[t]
		if lowest < 0 || perSecond[t] < lowest {
			lowest = perSecond[t]
		}
	}
	seconds := to - from
	achieved := float64(sum) / float64(seconds)
	rates[code] = cfg.RaiseTo
	rep.Results = b.results(rates)
	rep.Extra["campaign"] = c.id
	rep.Extra["raised_from"] = cfg.Rate
	rep.Extra["raised_to"] = cfg.RaiseTo
	rep.Extra["measured_seconds"] = seconds
	rep.Extra["achieved_after_raise"] = fmt.Sprintf("%.2f/s = %.1f %% of %d/s (lowest second %d)", achieved, 100*achieved/float64(cfg.RaiseTo), cfg.RaiseTo, lowest)
	if st.Violations > 0 {
		rep.Failures = append(rep.Failures, fmt.Sprintf("%d violations, want 0", st.Violations))
	}
	if achieved < 0.99*float64(cfg.RaiseTo) {
		rep.Failures = append(rep.Failures, fmt.Sprintf("achieved %.2f/s after the raise, want ≥ 99 %% of %d/s", achieved, cfg.RaiseTo))
	}
	return nil
}

// singleCode is the short code of the one-short-code scenarios.
const singleCode = "36000"

// startSingle starts the platform with singleCode at -rate, served by
// replicas throttles.
func startSingle(ctx context.Context, cfg Config, replicas int) (*bench, throttle.RateTable, error) {
	rates := throttle.RateTable{singleCode: cfg.Rate}
	b, err := startBench(ctx, cfg, rates, replicas, false)
	return b, rates, err
}
