package billing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/fault"
	"pushsms.io/lib/service"
	adminv1 "pushsms.io/proto/gen/pushsms/admin/v1"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
)

// Prepaid credit (docs/billing-prepaid.md) is kept in segments, the unit
// the partner is told at acceptance and the ledger bills: a message's
// creditReservation is its segment count, each segment is captured (delivered)
// or released (failed, expired, NACKed, rejected, cancelled) once.

// CreditDurable is the consumer of the reports the ledger does not take
// but credit must: a message rejected or cancelled before submission (no
// segment report ever comes) and a segment refused by the SMSC (NACK).
const CreditDurable = "billing-credit"

// creditSubjects are CreditDurable's subjects.
var creditSubjects = []string{
	"sms.report.rejected.>",
	"sms.report.cancelled.>",
	"sms.report.nacked.>",
}

// Limits of the credit API.
const (
	// MaxCreditItems bounds the messages of one reserve or release call:
	// an ingest chunk is 500.
	MaxCreditItems = 1000
	// MaxReservedSegments is the most segments one message may reserve
	// (ingest accepts 10; the UDH reference allows 255).
	MaxReservedSegments = 255
	// MaxTopUp bounds one top-up, against a typo of a few zeros.
	MaxTopUp              = 1_000_000_000
	maxCreditTenantLen    = 64
	maxCreditMessageIDLen = 64
	maxCreditReferenceLen = 128
	maxCreditNoteLen      = 1024
	staleGrace            = 24 * time.Hour
	staleSweepPeriod      = time.Minute
)

// CreditAccount is a tenant's prepaid credit, in segments.
type CreditAccount struct {
	TenantID  string
	ToppedUp  int64
	Captured  int64
	Reserved  int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Available is what new messages may use: the top-ups less the delivered
// segments and those in flight.
func (a CreditAccount) Available() int64 { return a.ToppedUp - a.Captured - a.Reserved }

// CreditItem is a message to reserve for.
type CreditItem struct {
	MessageID string
	Segments  int
}

// CreditDecision is the outcome of one item.
type CreditDecision struct {
	Reserved bool
	// Available is the credit when the item was decided.
	Available int64
}

// creditTx runs statements and reads rows: a transaction (or a pool when
// atomicity is not needed).
type creditTx interface {
	Querier
	Execer
}

func checkCreditTenant(field, tenant string) error {
	switch {
	case tenant == "":
		return fault.Invalidf(field, "must not be empty")
	case len(tenant) > maxCreditTenantLen:
		return fault.Invalidf(field, "longer than %d bytes", maxCreditTenantLen)
	case !creditPrintable(tenant):
		return fault.Invalidf(field, "must be creditPrintable UTF-8 without spaces")
	}
	return nil
}

func checkCreditMessageID(field, id string) error {
	switch {
	case id == "":
		return fault.Invalidf(field, "must not be empty")
	case len(id) > maxCreditMessageIDLen:
		return fault.Invalidf(field, "longer than %d bytes", maxCreditMessageIDLen)
	case !creditPrintable(id):
		return fault.Invalidf(field, "must be creditPrintable UTF-8 without spaces")
	}
	return nil
}

// creditPrintable refuses what would make a tenant id or a message id ambiguous
// in a log line or a subject: invalid UTF-8, spaces and control characters.
func creditPrintable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f })
}

// CheckTopUp validates a top-up request.
func CheckTopUp(tenant string, segments int64, reference, note string) error {
	errs := []error{checkCreditTenant("tenant_id", tenant)}
	if segments < 0 || segments > MaxTopUp {
		errs = append(errs, fault.Invalidf("segments", "%d: want 0 to %d", segments, MaxTopUp))
	}
	switch {
	case strings.TrimSpace(reference) == "":
		errs = append(errs, fault.Invalidf("reference", "must be set: one top-up per payment reference"))
	case len(reference) > maxCreditReferenceLen:
		errs = append(errs, fault.Invalidf("reference", "longer than %d bytes", maxCreditReferenceLen))
	case !utf8.ValidString(reference):
		errs = append(errs, fault.Invalidf("reference", "not valid UTF-8"))
	}
	if len(note) > maxCreditNoteLen || !utf8.ValidString(note) {
		errs = append(errs, fault.Invalidf("note", "must be valid UTF-8 of at most %d bytes", maxCreditNoteLen))
	}
	return fault.Join(errs...)
}

// CheckReserve validates a creditReservation request.
func CheckReserve(tenant string, items []CreditItem) error {
	errs := []error{checkCreditTenant("tenant_id", tenant)}
	switch {
	case len(items) == 0:
		errs = append(errs, fault.Invalidf("items", "must not be empty"))
	case len(items) > MaxCreditItems:
		errs = append(errs, fault.Invalidf("items", "%d items: at most %d", len(items), MaxCreditItems))
	}
	for i, it := range items {
		if len(errs) > 10 {
			break // enough to tell what is wrong
		}
		errs = append(errs, checkCreditMessageID(fmt.Sprintf("items[%d].message_id", i), it.MessageID))
		if it.Segments < 1 || it.Segments > MaxReservedSegments {
			errs = append(errs, fault.Invalidf(fmt.Sprintf("items[%d].segments", i), "%d: want 1 to %d", it.Segments, MaxReservedSegments))
		}
	}
	return fault.Join(errs...)
}

// CheckRelease validates a release request.
func CheckRelease(tenant string, ids []string) error {
	errs := []error{checkCreditTenant("tenant_id", tenant)}
	switch {
	case len(ids) == 0:
		errs = append(errs, fault.Invalidf("message_ids", "must not be empty"))
	case len(ids) > MaxCreditItems:
		errs = append(errs, fault.Invalidf("message_ids", "%d ids: at most %d", len(ids), MaxCreditItems))
	}
	for i, id := range ids {
		if len(errs) > 10 {
			break
		}
		errs = append(errs, checkCreditMessageID(fmt.Sprintf("message_ids[%d]", i), id))
	}
	return fault.Join(errs...)
}

const creditAccountColumns = `tenant_id, topped_up, captured, reserved, created_at, updated_at`

func scanCreditAccount(row pgx.Row) (CreditAccount, error) {
	var a CreditAccount
	err := row.Scan(&a.TenantID, &a.ToppedUp, &a.Captured, &a.Reserved, &a.CreatedAt, &a.UpdatedAt)
	return a, err
}

// TopUpCredit records a top-up, opening the account if needed, and reports
// whether the reference was already recorded (nothing added then).
func TopUpCredit(ctx context.Context, db Beginner, tenant string, segments int64, reference, note string) (CreditAccount, bool, error) {
	if err := CheckTopUp(tenant, segments, reference, note); err != nil {
		return CreditAccount{}, false, err
	}
	var (
		acct CreditAccount
		dup  bool
	)
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO billing.credit_accounts (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING`, tenant); err != nil {
			return fmt.Errorf("open credit account of %s: %w", tenant, err)
		}
		// The account row is locked first, as by every other writer.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM billing.credit_accounts WHERE tenant_id = $1 FOR UPDATE`, tenant); err != nil {
			return fmt.Errorf("lock credit account of %s: %w", tenant, err)
		}
		tag, err := tx.Exec(ctx, `INSERT INTO billing.credit_topups (tenant_id, reference, segments, note) VALUES ($1, $2, $3, $4)
			ON CONFLICT (tenant_id, reference) DO NOTHING`, tenant, reference, segments, note)
		if err != nil {
			return fmt.Errorf("top up %s: %w", tenant, err)
		}
		dup = tag.RowsAffected() == 0
		if !dup {
			if _, err := tx.Exec(ctx, `UPDATE billing.credit_accounts SET topped_up = topped_up + $2, updated_at = now() WHERE tenant_id = $1`,
				tenant, segments); err != nil {
				return fmt.Errorf("top up %s: %w", tenant, err)
			}
		}
		acct, err = scanCreditAccount(tx.QueryRow(ctx, `SELECT `+creditAccountColumns+` FROM billing.credit_accounts WHERE tenant_id = $1`, tenant))
		if err != nil {
			return fmt.Errorf("credit account of %s: %w", tenant, err)
		}
		return nil
	})
	return acct, dup, err
}

// GetCreditAccountOf returns a tenant's account, or an error wrapping
// fault.ErrNotFound for a postpaid tenant.
func GetCreditAccountOf(ctx context.Context, db Querier, tenant string) (CreditAccount, error) {
	if err := checkCreditTenant("tenant_id", tenant); err != nil {
		return CreditAccount{}, err
	}
	a, err := scanCreditAccount(db.QueryRow(ctx, `SELECT `+creditAccountColumns+` FROM billing.credit_accounts WHERE tenant_id = $1`, tenant))
	if errors.Is(err, pgx.ErrNoRows) {
		return CreditAccount{}, fmt.Errorf("credit account of %s: %w", tenant, fault.ErrNotFound)
	}
	if err != nil {
		return CreditAccount{}, fmt.Errorf("credit account of %s: %w", tenant, err)
	}
	return a, nil
}

// PrepaidTenants lists the tenants with an account.
func PrepaidTenants(ctx context.Context, db Querier) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT tenant_id FROM billing.credit_accounts ORDER BY tenant_id`)
	if err != nil {
		return nil, fmt.Errorf("prepaid tenants: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("prepaid tenants: %w", err)
	}
	return out, nil
}

// ReserveCredit reserves the items' segments in order while the credit lasts (a
// later, smaller message may still fit after a refused one). A message
// reserved before counts as reserved whatever the credit left, so a retry
// never reserves twice. prepaid is false, and nothing reserved, for a
// tenant without an account.
func ReserveCredit(ctx context.Context, db Beginner, tenant string, items []CreditItem, expiresAt time.Time) (prepaid bool, decisions []CreditDecision, available int64, err error) {
	if err := CheckReserve(tenant, items); err != nil {
		return false, nil, 0, err
	}
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		// The account's lock orders the reservations of one tenant: two
		// calls never both spend the same credit.
		err := tx.QueryRow(ctx, `SELECT topped_up - captured - reserved FROM billing.credit_accounts WHERE tenant_id = $1 FOR UPDATE`,
			tenant).Scan(&available)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("lock credit account of %s: %w", tenant, err)
		}
		prepaid = true
		ids := make([]string, len(items))
		for i, it := range items {
			ids[i] = it.MessageID
		}
		owner := make(map[string]string, len(items))
		rows, err := tx.Query(ctx, `SELECT message_id, tenant_id FROM billing.credit_reservations WHERE message_id = ANY($1)`, ids)
		if err != nil {
			return fmt.Errorf("reservations of %s: %w", tenant, err)
		}
		var id, t string
		if _, err := pgx.ForEachRow(rows, []any{&id, &t}, func() error { owner[id] = t; return nil }); err != nil {
			return fmt.Errorf("reservations of %s: %w", tenant, err)
		}
		decisions = make([]CreditDecision, len(items))
		var newIDs []string
		var newSegs []int32
		total := int64(0)
		for i, it := range items {
			decisions[i].Available = available
			if o, ok := owner[it.MessageID]; ok {
				if o != tenant {
					return fault.Invalidf(fmt.Sprintf("items[%d].message_id", i), "reserved by another tenant")
				}
				decisions[i].Reserved = true
				continue
			}
			if int64(it.Segments) > available {
				continue
			}
			decisions[i].Reserved = true
			available -= int64(it.Segments)
			total += int64(it.Segments)
			owner[it.MessageID] = tenant // a repeated id in the call is reserved once
			newIDs = append(newIDs, it.MessageID)
			newSegs = append(newSegs, int32(it.Segments))
		}
		if len(newIDs) == 0 {
			return nil
		}
		tag, err := tx.Exec(ctx, `INSERT INTO billing.credit_reservations (message_id, tenant_id, segments, expires_at)
			SELECT m, $1, s, $4 FROM unnest($2::text[], $3::int4[]) AS u(m, s)
			ON CONFLICT (message_id) DO NOTHING`, tenant, newIDs, newSegs, expiresAt)
		if err != nil {
			return fmt.Errorf("reserve %d messages of %s: %w", len(newIDs), tenant, err)
		}
		if tag.RowsAffected() != int64(len(newIDs)) {
			// Another tenant's call reserved one of these ids meanwhile.
			return fmt.Errorf("reserve %d messages of %s: %d ids taken meanwhile: %w", len(newIDs), tenant,
				int64(len(newIDs))-tag.RowsAffected(), fault.ErrExists)
		}
		if _, err := tx.Exec(ctx, `UPDATE billing.credit_accounts SET reserved = reserved + $2, updated_at = now() WHERE tenant_id = $1`,
			tenant, total); err != nil {
			return fmt.Errorf("reserve %d segments of %s: %w", total, tenant, err)
		}
		return nil
	})
	if err != nil {
		return false, nil, 0, err
	}
	if !prepaid {
		return false, nil, 0, nil
	}
	return true, decisions, available, nil
}

// ReleaseCredit gives back, at once, what is still in flight of whole messages:
// rejected or cancelled before submission, never stored by ingest, or
// stale. tenant, when set, limits the release to that tenant's messages.
// It returns the segments released; a message already closed gives none.
func ReleaseCredit(ctx context.Context, db Beginner, tenant string, messageIDs []string) (int64, error) {
	var released int64
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var err error
		released, err = releaseCreditTx(ctx, tx, tenant, messageIDs)
		return err
	})
	return released, err
}

func releaseCreditTx(ctx context.Context, tx creditTx, tenant string, messageIDs []string) (int64, error) {
	rows, err := tx.Query(ctx, `SELECT message_id, tenant_id, segments - captured - released FROM billing.credit_reservations
		WHERE message_id = ANY($1) AND closed_at IS NULL AND ($2 = '' OR tenant_id = $2)
		ORDER BY message_id FOR UPDATE`, messageIDs, tenant)
	if err != nil {
		return 0, fmt.Errorf("lock reservations: %w", err)
	}
	var (
		ids     []string
		perTen  = map[string]int64{}
		id, t   string
		n       int64
		summary int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &t, &n}, func() error {
		ids = append(ids, id)
		perTen[t] += n
		summary += n
		return nil
	}); err != nil {
		return 0, fmt.Errorf("lock reservations: %w", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	if _, err := tx.Exec(ctx, `UPDATE billing.credit_reservations SET released = segments - captured, closed_at = now()
		WHERE message_id = ANY($1)`, ids); err != nil {
		return 0, fmt.Errorf("close %d reservations: %w", len(ids), err)
	}
	if err := moveCreditAccounts(ctx, tx, perTen, nil); err != nil {
		return 0, err
	}
	return summary, nil
}

// moveCreditAccounts takes released segments out of the accounts' reserved and
// moves captured ones from reserved (or, for a late capture, from nothing)
// to captured. Accounts are locked in tenant order, as by every writer of
// several accounts, so that concurrent batches cannot deadlock.
func moveCreditAccounts(ctx context.Context, tx creditTx, released map[string]int64, captured map[string]creditMove) error {
	tenants := make([]string, 0, len(released)+len(captured))
	for t := range released {
		tenants = append(tenants, t)
	}
	for t := range captured {
		if _, ok := released[t]; !ok {
			tenants = append(tenants, t)
		}
	}
	slices.Sort(tenants)
	var (
		capt = make([]int64, len(tenants))
		res  = make([]int64, len(tenants))
	)
	for i, t := range tenants {
		c := captured[t]
		capt[i] = c.captured
		res[i] = released[t] + c.fromReserved
	}
	if len(tenants) > 1 {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM billing.credit_accounts WHERE tenant_id = ANY($1) ORDER BY tenant_id FOR UPDATE`, tenants); err != nil {
			return fmt.Errorf("lock %d credit accounts: %w", len(tenants), err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE billing.credit_accounts a
		SET captured = a.captured + u.c, reserved = a.reserved - u.r, updated_at = now()
		FROM unnest($1::text[], $2::int8[], $3::int8[]) AS u(t, c, r) WHERE a.tenant_id = u.t`, tenants, capt, res); err != nil {
		return fmt.Errorf("settle %d credit accounts: %w", len(tenants), err)
	}
	return nil
}

// creditMove is what a batch of captures does to one account.
type creditMove struct {
	captured     int64 // added to captured
	fromReserved int64 // of which taken out of reserved
}

// SegmentOutcome is the final outcome of one segment for credit.
type SegmentOutcome struct {
	MessageID    string
	SegmentIndex int
	// Delivered captures the segment; otherwise it is released.
	Delivered bool
}

// SettleCredit captures the reservations of delivered segments and
// releases those of failed and expired ones, for entries newly inserted in
// this transaction. The ledger's primary key makes each entry new once, so
// this settles each segment once; nothing else is written per segment.
// Entries of postpaid tenants cost one indexed lookup per batch.
func SettleCredit(ctx context.Context, tx pgx.Tx, entries []Entry) error {
	outs := make([]SegmentOutcome, len(entries))
	for i, e := range entries {
		outs[i] = SegmentOutcome{MessageID: e.MessageID, SegmentIndex: e.SegmentIndex, Delivered: e.State == Delivered}
	}
	return settleLedger(ctx, tx, outs)
}

// creditReservation is a locked reservation row and what a settlement
// does to it.
type creditReservation struct {
	tenant                      string
	segments, captured, release int
	closed, changed             bool
}

func (r *creditReservation) inFlight() int {
	if r.closed {
		return 0
	}
	return r.segments - r.captured - r.release
}

// capture moves a delivered segment to captured: from the in-flight ones,
// or, when nothing of the message is in flight any more (released in bulk
// as stale or cancelled while on the wire, or NACKed on a resend of a
// segment delivered on its first attempt), from the released ones. The
// ledger bills it, so the credit pays it, even below zero.
func (r *creditReservation) capture(captured map[string]creditMove) {
	m := captured[r.tenant]
	m.captured++
	switch {
	case r.inFlight() > 0:
		r.captured++
		m.fromReserved++
	case r.release > 0:
		r.release--
		r.captured++
	}
	captured[r.tenant] = m
	r.changed = true
}

// captureReleased captures a delivered segment whose credit was released
// on a NACK: the release becomes a capture.
func (r *creditReservation) captureReleased(captured map[string]creditMove) {
	m := captured[r.tenant]
	m.captured++
	captured[r.tenant] = m
	if r.release > 0 {
		r.release--
		r.captured++
		r.changed = true
	}
}

// releaseOne releases a failed segment still in flight.
func (r *creditReservation) releaseOne(released map[string]int64) {
	if r.inFlight() == 0 {
		return // released with its message
	}
	r.release++
	released[r.tenant]++
	r.changed = true
}

// lockReservations locks the reservations of ids in message order (every
// writer of several reservations locks them so: no deadlock).
func lockReservations(ctx context.Context, tx creditTx, ids []string) (map[string]*creditReservation, error) {
	rows, err := tx.Query(ctx, `SELECT message_id, tenant_id, segments, captured, released, closed_at IS NOT NULL
		FROM billing.credit_reservations WHERE message_id = ANY($1) ORDER BY message_id FOR UPDATE`, ids)
	if err != nil {
		return nil, fmt.Errorf("lock reservations of %d messages: %w", len(ids), err)
	}
	res := map[string]*creditReservation{}
	var (
		id string
		r  creditReservation
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &r.tenant, &r.segments, &r.captured, &r.release, &r.closed}, func() error {
		c := r
		res[id] = &c
		return nil
	}); err != nil {
		return nil, fmt.Errorf("lock reservations of %d messages: %w", len(ids), err)
	}
	return res, nil
}

// saveSettlement writes the changed reservations and moves the accounts.
func saveSettlement(ctx context.Context, tx creditTx, res map[string]*creditReservation, released map[string]int64, captured map[string]creditMove) error {
	var (
		ids  []string
		capt []int32
		rel  []int32
	)
	for id, r := range res {
		if r.changed {
			ids, capt, rel = append(ids, id), append(capt, int32(r.captured)), append(rel, int32(r.release))
		}
	}
	if len(ids) == 0 {
		return nil
	}
	// A reservation whose every segment is settled is closed, so that the
	// stale sweep (ReleaseStaleCredit) never has to look at it again.
	if _, err := tx.Exec(ctx, `UPDATE billing.credit_reservations r SET captured = u.c, released = u.r,
		closed_at = CASE WHEN r.closed_at IS NULL AND u.c + u.r >= r.segments THEN now() ELSE r.closed_at END
		FROM unnest($1::text[], $2::int4[], $3::int4[]) AS u(m, c, r) WHERE r.message_id = u.m`, ids, capt, rel); err != nil {
		return fmt.Errorf("settle %d reservations: %w", len(ids), err)
	}
	return moveCreditAccounts(ctx, tx, released, captured)
}

type segmentKey struct {
	message string
	index   int
}

// settleLedger settles new ledger entries. A segment NACKed before (its
// credit released by CreditDurable, kept in credit_nacks) is not released
// again; if the ledger says it was delivered after all, it is captured.
func settleLedger(ctx context.Context, tx creditTx, outs []SegmentOutcome) error {
	if len(outs) == 0 {
		return nil
	}
	ids := make([]string, 0, len(outs))
	for _, o := range outs {
		ids = append(ids, o.MessageID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	res, err := lockReservations(ctx, tx, ids)
	if err != nil || len(res) == 0 {
		return err // none: postpaid traffic, or messages accepted without a check
	}
	reserved := make([]string, 0, len(res))
	for id := range res {
		reserved = append(reserved, id)
	}
	rows, err := tx.Query(ctx, `SELECT message_id, segment_index FROM billing.credit_nacks WHERE message_id = ANY($1)`, reserved)
	if err != nil {
		return fmt.Errorf("nacked segments of %d messages: %w", len(reserved), err)
	}
	nacked := map[segmentKey]bool{}
	var k segmentKey
	if _, err := pgx.ForEachRow(rows, []any{&k.message, &k.index}, func() error { nacked[k] = true; return nil }); err != nil {
		return fmt.Errorf("nacked segments of %d messages: %w", len(reserved), err)
	}
	released := map[string]int64{}
	captured := map[string]creditMove{}
	for _, o := range outs {
		r, ok := res[o.MessageID]
		if !ok {
			continue
		}
		wasNacked := nacked[segmentKey{o.MessageID, o.SegmentIndex}]
		switch {
		case o.Delivered && wasNacked:
			r.captureReleased(captured)
		case o.Delivered:
			r.capture(captured)
		case !wasNacked:
			r.releaseOne(released)
		}
	}
	return saveSettlement(ctx, tx, res, released, captured)
}

// settleNack releases a segment refused by the SMSC, once: the NACK is
// recorded in credit_nacks; a segment the ledger already holds (delivered
// on an earlier attempt) is left to the ledger.
func settleNack(ctx context.Context, tx creditTx, messageID string, index int) error {
	res, err := lockReservations(ctx, tx, []string{messageID})
	if err != nil || len(res) == 0 {
		return err
	}
	var inLedger bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM billing.ledger WHERE message_id = $1 AND segment_index = $2)`,
		messageID, index).Scan(&inLedger); err != nil {
		return fmt.Errorf("ledger of %s segment %d: %w", messageID, index, err)
	}
	if inLedger {
		return nil
	}
	tag, err := tx.Exec(ctx, `INSERT INTO billing.credit_nacks (message_id, segment_index) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
		messageID, index)
	if err != nil {
		return fmt.Errorf("record NACK of %s segment %d: %w", messageID, index, err)
	}
	if tag.RowsAffected() == 0 {
		return nil // a redelivered NACK
	}
	released := map[string]int64{}
	res[messageID].releaseOne(released)
	return saveSettlement(ctx, tx, res, released, nil)
}

// ReleaseStaleCredit releases the reservations still open staleGrace after
// their messages expired: segments that never got a final report (an
// UNKNOWN submission) must not hold the credit for ever. It returns the
// segments released.
func ReleaseStaleCredit(ctx context.Context, db Beginner, now time.Time) (int64, error) {
	var released int64
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT message_id FROM billing.credit_reservations
			WHERE closed_at IS NULL AND captured + released < segments AND expires_at < $1
			ORDER BY expires_at LIMIT $2`, now.Add(-staleGrace), MaxCreditItems)
		if err != nil {
			return fmt.Errorf("stale reservations: %w", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("stale reservations: %w", err)
		}
		if len(ids) == 0 {
			return nil
		}
		released, err = releaseCreditTx(ctx, tx, "", ids)
		return err
	})
	return released, err
}

// credit serves CreditService and consumes CreditDurable.
type credit struct {
	adminv1.UnimplementedCreditServiceServer
	core *service.Core
	now  func() time.Time
}

// registerCredit serves CreditService on core's gRPC server; billing's New
// calls it before anything is served.
func registerCredit(core *service.Core) {
	adminv1.RegisterCreditServiceServer(core.RPC.Server, &credit{core: core, now: time.Now})
}

// consumeCredit starts CreditDurable and the stale reservations' sweeper;
// billing's Serve calls it before serving.
func consumeCredit(ctx context.Context, core *service.Core) error {
	c := &credit{core: core, now: time.Now}
	_, err := core.Consume(ctx, bus.ConsumerSpec{
		Stream:         bus.StreamReports,
		Durable:        CreditDurable,
		FilterSubjects: creditSubjects,
		Workers:        4,
		DoubleAck:      true,
	}, c.handle)
	if err != nil {
		return err
	}
	done := make(chan struct{})
	go c.sweep(core.Stopping(), done)
	core.OnClose(func() { <-done })
	return nil
}

// sweep releases stale reservations every staleSweepPeriod until stop.
// Every replica sweeps: the release locks its rows, so two sweeps of the
// same creditReservation release it once.
func (c *credit) sweep(stop context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(staleSweepPeriod)
	defer t.Stop()
	for {
		n, err := ReleaseStaleCredit(stop, c.core.Pool, c.now())
		switch {
		case err != nil && stop.Err() == nil:
			c.core.Log.WarnContext(stop, "release stale credit reservations", "err", err)
		case n > 0:
			c.core.Log.InfoContext(stop, "stale credit reservations released", "segments", n)
		}
		select {
		case <-stop.Done():
			return
		case <-t.C:
		}
	}
}

// handle releases a rejected or cancelled message's creditReservation, or the
// creditReservation of a NACKed segment. The event is acked once committed.
func (c *credit) handle(ctx context.Context, m *bus.Msg) error {
	parts := strings.Split(m.Subject, ".")
	if len(parts) < 3 {
		return fault.Permanent(fmt.Errorf("credit: subject %q is not a report subject", m.Subject))
	}
	switch parts[2] {
	case "rejected", "cancelled":
		var r eventsv1.MessageRejected
		if err := m.Decode(&r); err != nil {
			return err
		}
		if err := checkCreditMessageID("message_id", r.GetMessageId()); err != nil {
			return fmt.Errorf("credit: %s: %w", m.Subject, err)
		}
		if _, err := ReleaseCredit(ctx, c.core.Pool, "", []string{r.GetMessageId()}); err != nil {
			return fmt.Errorf("credit: release %s: %w", r.GetMessageId(), errors.Join(err, fault.ErrUnavailable))
		}
		return nil
	case "nacked":
		var r eventsv1.SegmentReport
		if err := m.Decode(&r); err != nil {
			return err
		}
		if err := checkCreditMessageID("message_id", r.GetMessageId()); err != nil {
			return fmt.Errorf("credit: %s: %w", m.Subject, err)
		}
		if r.GetSegmentIndex() < 1 {
			return fault.Permanent(fmt.Errorf("credit: %s of message %s: segment_index %d", m.Subject, r.GetMessageId(), r.GetSegmentIndex()))
		}
		id, idx := r.GetMessageId(), int(r.GetSegmentIndex())
		err := pgx.BeginFunc(ctx, c.core.Pool, func(tx pgx.Tx) error { return settleNack(ctx, tx, id, idx) })
		if err != nil {
			return fmt.Errorf("credit: release %s segment %d: %w", id, idx, errors.Join(err, fault.ErrUnavailable))
		}
		return nil
	}
	return fault.Permanent(fmt.Errorf("credit: subject %q: not a rejected, cancelled or nacked report", m.Subject))
}

func creditAccountProto(a CreditAccount) *adminv1.CreditAccount {
	return &adminv1.CreditAccount{
		TenantId:  a.TenantID,
		ToppedUp:  a.ToppedUp,
		Captured:  a.Captured,
		Reserved:  a.Reserved,
		Available: a.Available(),
		CreatedAt: timestamppb.New(a.CreatedAt),
		UpdatedAt: timestamppb.New(a.UpdatedAt),
	}
}

func (c *credit) TopUp(ctx context.Context, req *adminv1.TopUpRequest) (*adminv1.TopUpResponse, error) {
	a, dup, err := TopUpCredit(ctx, c.core.Pool, req.GetTenantId(), req.GetSegments(), req.GetReference(), req.GetNote())
	if err != nil {
		return nil, err
	}
	c.core.Log.InfoContext(ctx, "credit topped up", "tenant", a.TenantID, "segments", req.GetSegments(),
		"duplicate", dup, "available", a.Available())
	return &adminv1.TopUpResponse{Account: creditAccountProto(a), Duplicate: dup}, nil
}

func (c *credit) GetCreditAccount(ctx context.Context, req *adminv1.GetCreditAccountRequest) (*adminv1.GetCreditAccountResponse, error) {
	a, err := GetCreditAccountOf(ctx, c.core.Pool, req.GetTenantId())
	if err != nil {
		return nil, err
	}
	return &adminv1.GetCreditAccountResponse{Account: creditAccountProto(a)}, nil
}

func (c *credit) ListPrepaidTenants(ctx context.Context, _ *adminv1.ListPrepaidTenantsRequest) (*adminv1.ListPrepaidTenantsResponse, error) {
	ts, err := PrepaidTenants(ctx, c.core.Pool)
	if err != nil {
		return nil, errors.Join(err, fault.ErrUnavailable)
	}
	return &adminv1.ListPrepaidTenantsResponse{TenantIds: ts}, nil
}

func (c *credit) ReserveCredit(ctx context.Context, req *adminv1.ReserveCreditRequest) (*adminv1.ReserveCreditResponse, error) {
	items := make([]CreditItem, len(req.GetItems()))
	for i, it := range req.GetItems() {
		items[i] = CreditItem{MessageID: it.GetMessageId(), Segments: int(it.GetSegments())}
	}
	exp := req.GetExpiresAt()
	if exp == nil || !exp.IsValid() {
		return nil, fault.Join(CheckReserve(req.GetTenantId(), items), fault.Invalidf("expires_at", "must be a valid time"))
	}
	prepaid, ds, avail, err := ReserveCredit(ctx, c.core.Pool, req.GetTenantId(), items, exp.AsTime())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ReserveCreditResponse{Prepaid: prepaid, Available: avail}
	for _, d := range ds {
		out.Decisions = append(out.Decisions, &adminv1.CreditDecision{Reserved: d.Reserved, Available: d.Available})
	}
	return out, nil
}

func (c *credit) ReleaseCredit(ctx context.Context, req *adminv1.ReleaseCreditRequest) (*adminv1.ReleaseCreditResponse, error) {
	if err := CheckRelease(req.GetTenantId(), req.GetMessageIds()); err != nil {
		return nil, err
	}
	n, err := ReleaseCredit(ctx, c.core.Pool, req.GetTenantId(), req.GetMessageIds())
	if err != nil {
		return nil, err
	}
	return &adminv1.ReleaseCreditResponse{Released: n}, nil
}
