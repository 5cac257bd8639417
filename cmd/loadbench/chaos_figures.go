package main

import (
	"context"
	"fmt"
	"time"
)

// maxSample is how many offending messages an invariant names (by id:
// never a number) so that a finding can be followed in the logs.
const maxSample = 10

// figures reads what the invariants are judged on: the status view and
// the ledger (one PostgreSQL cluster, two schemas), the simulator's
// records over its incarnations, the driver's acceptances.
func (c *chaos) figures(ctx context.Context, start time.Time, faults []FaultRecord) (chaosFigures, error) {
	p := c.p
	f := chaosFigures{ByState: map[string]int64{}, SegmentsByState: map[string]int64{}, Window: p.cfg.Window}
	c.mu.Lock()
	f.Accepted, f.Abandoned = len(c.accepted), c.abandoned
	accepted := make(map[string]struct{}, len(c.accepted))
	for id := range c.accepted {
		accepted[id] = struct{}{}
	}
	c.mu.Unlock()

	rows, err := p.pool.Query(ctx, `SELECT id::text, state, segment_count FROM ingest.messages WHERE tenant_id = $1`, partnerID)
	if err != nil {
		return f, fmt.Errorf("status view: %w", err)
	}
	seen := map[string]struct{}{}
	for rows.Next() {
		var id, state string
		var n int64
		if err := rows.Scan(&id, &state, &n); err != nil {
			return f, fmt.Errorf("status view: %w", err)
		}
		f.Rows++
		f.ByState[state]++
		f.SegmentsExpected += n
		seen[id] = struct{}{}
		if _, ok := accepted[id]; !ok {
			f.ExtraRows++
		}
	}
	if err := rows.Err(); err != nil {
		return f, fmt.Errorf("status view: %w", err)
	}
	for id := range accepted {
		if _, ok := seen[id]; !ok {
			f.MissingRows++
			if len(f.MissingSample) < maxSample {
				f.MissingSample = append(f.MissingSample, id)
			}
		}
	}

	// The messages still open, with their segments' states: which state
	// they stopped in is the finding.
	rows, err = p.pool.Query(ctx, `SELECT m.id::text, m.state, coalesce(string_agg(s.idx || '=' || s.state, ',' ORDER BY s.idx), '')
		FROM ingest.messages m LEFT JOIN ingest.segments s ON s.message_id = m.id
		WHERE m.tenant_id = $1 AND m.state <> ALL($2) GROUP BY m.id, m.state ORDER BY m.id`, partnerID, terminalStates)
	if err != nil {
		return f, fmt.Errorf("open messages: %w", err)
	}
	for rows.Next() {
		var id, state, segs string
		if err := rows.Scan(&id, &state, &segs); err != nil {
			return f, fmt.Errorf("open messages: %w", err)
		}
		f.NonTerminal++
		if len(f.NonTerminalList) < maxSample {
			f.NonTerminalList = append(f.NonTerminalList, fmt.Sprintf("%s %s segments [%s]", id, state, segs))
		}
	}
	if err := rows.Err(); err != nil {
		return f, fmt.Errorf("open messages: %w", err)
	}

	rows, err = p.pool.Query(ctx, `SELECT s.state, count(*) FROM ingest.segments s JOIN ingest.messages m ON m.id = s.message_id
		WHERE m.tenant_id = $1 GROUP BY s.state`, partnerID)
	if err != nil {
		return f, fmt.Errorf("segments: %w", err)
	}
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			return f, fmt.Errorf("segments: %w", err)
		}
		f.SegmentsByState[state] = n
	}
	if err := rows.Err(); err != nil {
		return f, fmt.Errorf("segments: %w", err)
	}

	// A delivered, failed or expired message whose segments are not all
	// final (or not all there): its state would then not be the rule's.
	err = p.pool.QueryRow(ctx, `SELECT count(*) FROM ingest.messages m WHERE m.tenant_id = $1 AND m.state = ANY($2)
		AND (SELECT count(*) FROM ingest.segments s WHERE s.message_id = m.id AND s.state = ANY($2)) <> m.segment_count`,
		partnerID, finalSegmentStates).Scan(&f.Incoherent)
	if err != nil {
		return f, fmt.Errorf("coherence: %w", err)
	}

	err = p.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT (message_id, segment_index)), count(*) FILTER (WHERE state = 'delivered')
		FROM billing.ledger WHERE tenant_id = $1`, partnerID).Scan(&f.LedgerRows, &f.LedgerDistinct, &f.LedgerDelivered)
	if err != nil {
		return f, fmt.Errorf("ledger: %w", err)
	}
	err = p.pool.QueryRow(ctx, `SELECT count(*) FROM ingest.segments s JOIN ingest.messages m ON m.id = s.message_id
		LEFT JOIN billing.ledger l ON l.message_id = s.message_id::text AND l.segment_index = s.idx AND l.state = 'delivered'
		WHERE m.tenant_id = $1 AND s.state = 'delivered' AND l.message_id IS NULL`, partnerID).Scan(&f.DeliveredNotBilled)
	if err != nil {
		return f, fmt.Errorf("delivered not billed: %w", err)
	}
	rows, err = p.pool.Query(ctx, `SELECT l.message_id || '#' || l.segment_index || ' ledger ' || l.state || ', view ' || coalesce(s.state, 'none')
		FROM billing.ledger l LEFT JOIN ingest.segments s ON s.message_id::text = l.message_id AND s.idx = l.segment_index
		WHERE l.tenant_id = $1 AND l.state = 'delivered' AND s.state IS DISTINCT FROM 'delivered'`, partnerID)
	if err != nil {
		return f, fmt.Errorf("billed not delivered: %w", err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return f, fmt.Errorf("billed not delivered: %w", err)
		}
		f.BilledNotDelivered++
		if len(f.LedgerSample) < maxSample {
			f.LedgerSample = append(f.LedgerSample, s)
		}
	}
	if err := rows.Err(); err != nil {
		return f, fmt.Errorf("billed not delivered: %w", err)
	}

	var subs []simSubmit
	if err := getJSON(ctx, "http://"+p.simHTTP+"/submits", &subs); err != nil {
		return f, err
	}
	st, err := p.stats(ctx)
	if err != nil {
		return f, err
	}
	codes := ourCodes(p.cfg.ShortCodes)
	for _, s := range append(c.statPast, st) {
		for _, code := range codes {
			a := s.Accounts[code]
			f.SimSubmits += a.Submits
			f.SimAccepted += a.Accepted
			f.Violations += a.Violations
		}
	}
	ours := subsFrom(append(c.simPast, subs...), codes)
	f.DupSegments, f.DupSubmits, f.Resubmits = countDuplicates(ours, codes)
	f.DupWhen, f.ViolationWhen = whenDuplicated(ours, start, faults), whenViolated(ours, start, faults)
	f.Crashes = linkCrashes(faults)
	return f, nil
}

// linkCrashes counts the faults that can leave submits in doubt (a 51
// written, its result never read): a kill of smsc-link, a cut of the
// link, a restart of the NATS server (the attempt records and correlation
// keys are in its buckets). Each may cost at most a window of resends.
func linkCrashes(faults []FaultRecord) int {
	n := 0
	for _, f := range faults {
		if f.Kind == FaultLinkCut || f.Kind == FaultNATS || (f.Kind == FaultKill && f.Target == "smsc-link") {
			n++
		}
	}
	return n
}
