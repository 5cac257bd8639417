package billing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"pushsms.io/lib/fault"
)

// EventKind is what happened to a short code.
type EventKind string

// Catalog events. Each one-time fee of the price list follows from one of
// them; the monthly fees follow from the state they build.
const (
	// EventActivation: the operator put the short code in service (the
	// technical and administrative activation fees). Throughput is the
	// rate subscribed from the start, the standard when 0.
	EventActivation EventKind = "activation"
	// EventThroughputChange: the subscribed rate changes to Throughput
	// (an option, or back to the standard).
	EventThroughputChange EventKind = "throughput_change"
	// EventOAdCOn and EventOAdCOff: the OAdC-modification option.
	EventOAdCOn  EventKind = "oadc_on"
	EventOAdCOff EventKind = "oadc_off"
	// EventGreenOn and EventGreenOff: the green SMS number (34ABC) or
	// geo-presence (35ABC) option.
	EventGreenOn  EventKind = "green_on"
	EventGreenOff EventKind = "green_off"
	// EventOtherChange: an IP address change or another change the price
	// list bills as "other change".
	EventOtherChange EventKind = "other_change"
	// EventClosure: termination or closure; the short code is not in
	// service from that day on.
	EventClosure EventKind = "closure"
	// EventVoid cancels the event Voids, recorded by mistake
	// (VoidShortCodeEvent): both stay in the history, neither counts.
	EventVoid EventKind = "void"
)

var eventKinds = []EventKind{EventActivation, EventThroughputChange, EventOAdCOn, EventOAdCOff,
	EventGreenOn, EventGreenOff, EventOtherChange, EventClosure}

// ShortCodeEvent is one row of a short code's history.
type ShortCodeEvent struct {
	// ID is set by the database; it orders events of the same day.
	ID        int64     `json:"id,omitempty"`
	ShortCode string    `json:"short_code"`
	Kind      EventKind `json:"kind"`
	// Effective is the day the change takes effect (Europe/Paris).
	Effective Date `json:"effective"`
	// Throughput is the SMS/s subscribed from Effective on: activation (0
	// for the standard) and throughput_change only.
	Throughput int `json:"throughput,omitempty"`
	// Voids is the ID of the event a void cancels.
	Voids int64  `json:"voids,omitempty"`
	Note  string `json:"note,omitempty"`
	// RecordedAt is set by the database.
	RecordedAt time.Time `json:"recorded_at,omitzero"`
}

// ShortCodeState is what a short code has subscribed on a day.
type ShortCodeState struct {
	ShortCode string `json:"short_code"`
	// Active: in service on the day (activated, not closed).
	Active bool `json:"active"`
	// ActivatedOn is the day of the activation in force, or of the last
	// one once closed; it ranks short codes for the fee tiers.
	ActivatedOn Date `json:"activated_on,omitzero"`
	// ClosedOn is the closure day of a closed short code.
	ClosedOn   Date `json:"closed_on,omitzero"`
	Throughput int  `json:"throughput,omitempty"`
	OAdC       bool `json:"oadc"`
	Green      bool `json:"green"`
}

// apply advances s by e, or says why e cannot happen in state s. The
// errors name the field of e at fault.
func (s *ShortCodeState) apply(e ShortCodeEvent) error {
	if e.Kind != EventActivation && !s.Active {
		if !s.ClosedOn.IsZero() {
			return fault.Invalidf("effective", "%s: short code %s is closed since %s", e.Effective, e.ShortCode, s.ClosedOn)
		}
		return fault.Invalidf("effective", "%s: short code %s is not activated yet", e.Effective, e.ShortCode)
	}
	already := func(what string) error {
		return fault.Invalidf("kind", "%s on %s: short code %s %s", e.Kind, e.Effective, e.ShortCode, what)
	}
	switch e.Kind {
	case EventActivation:
		if s.Active {
			return already(fmt.Sprintf("is already active since %s", s.ActivatedOn))
		}
		*s = ShortCodeState{ShortCode: e.ShortCode, Active: true, ActivatedOn: e.Effective, Throughput: e.Throughput}
	case EventThroughputChange:
		if e.Throughput == s.Throughput {
			return fault.Invalidf("throughput", "%d: short code %s already has %d SMS/s on %s", e.Throughput, e.ShortCode, s.Throughput, e.Effective)
		}
		s.Throughput = e.Throughput
	case EventOAdCOn, EventOAdCOff:
		on := e.Kind == EventOAdCOn
		if s.OAdC == on {
			return already(fmt.Sprintf("already has the OAdC option %s", onOff(on)))
		}
		s.OAdC = on
	case EventGreenOn, EventGreenOff:
		on := e.Kind == EventGreenOn
		if s.Green == on {
			return already(fmt.Sprintf("already has the green number / geo-presence option %s", onOff(on)))
		}
		s.Green = on
	case EventOtherChange:
	case EventClosure:
		*s = ShortCodeState{ShortCode: s.ShortCode, ActivatedOn: s.ActivatedOn, ClosedOn: e.Effective}
	default:
		return fault.Invalidf("kind", "%q: want one of %s", e.Kind, kindList())
	}
	return nil
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

func kindList() string {
	s := make([]string, len(eventKinds))
	for i, k := range eventKinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// compareEvents is the replay order: by day, then as recorded.
func compareEvents(a, b ShortCodeEvent) int {
	if c := a.Effective.Compare(b.Effective); c != 0 {
		return c
	}
	switch {
	case a.ID == 0: // not recorded yet: after the day's recorded ones
		return 1
	case b.ID == 0:
		return -1
	}
	return cmpInt64(a.ID, b.ID)
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// stateOn replays the events of one short code (in replay order) that are
// effective on or before d.
func stateOn(shortCode string, events []ShortCodeEvent, d Date) (ShortCodeState, error) {
	s := ShortCodeState{ShortCode: shortCode}
	for _, e := range events {
		if d.Before(e.Effective) {
			break
		}
		if err := s.apply(e); err != nil {
			return s, fmt.Errorf("short code %s history, event %d: %w", shortCode, e.ID, err)
		}
	}
	return s, nil
}

// maxNote bounds the free text of an event.
const maxNote = 500

func validShortCode(sc string) bool { return len(sc) == 5 && digits(sc) }

func checkDay(field string, d Date) error {
	switch {
	case d.IsZero():
		return fault.Invalidf(field, "required (YYYY-MM-DD)")
	case d.Year < 2000 || d.Year > 2999:
		return fault.Invalidf(field, "%s: not a plausible day", d)
	}
	return nil
}

// check validates the fields of a new event on their own.
func (e ShortCodeEvent) check() error {
	var errs []error
	if !validShortCode(e.ShortCode) {
		errs = append(errs, fault.Invalidf("short_code", "%q: want 5 digits", e.ShortCode))
	}
	if !slices.Contains(eventKinds, e.Kind) {
		errs = append(errs, fault.Invalidf("kind", "%q: want one of %s", e.Kind, kindList()))
	}
	errs = append(errs, checkDay("effective", e.Effective))
	switch {
	case e.Kind == EventThroughputChange && e.Throughput <= 0:
		errs = append(errs, fault.Invalidf("throughput", "required for %s (SMS/s)", e.Kind))
	case e.Kind != EventThroughputChange && e.Kind != EventActivation && e.Throughput != 0:
		errs = append(errs, fault.Invalidf("throughput", "only for %s and %s", EventActivation, EventThroughputChange))
	case e.Throughput < 0:
		errs = append(errs, fault.Invalidf("throughput", "%d: negative", e.Throughput))
	}
	if len(e.Note) > maxNote {
		errs = append(errs, fault.Invalidf("note", "longer than %d bytes", maxNote))
	}
	if e.ID != 0 || !e.RecordedAt.IsZero() {
		errs = append(errs, fault.Invalidf("id", "set by the database"))
	}
	if e.Voids != 0 {
		errs = append(errs, fault.Invalidf("voids", "only for a void (VoidShortCodeEvent)"))
	}
	return fault.Join(errs...)
}

// RecordShortCodeEvent appends e to its short code's history, after
// checking that the whole history still replays with it: an event may be
// recorded late (backdated), but never so as to make a later one
// impossible. A throughput must be the standard or an option of the
// tariff of e's month. It returns e as stored.
func RecordShortCodeEvent(ctx context.Context, db Beginner, e ShortCodeEvent) (ShortCodeEvent, error) {
	if err := e.check(); err != nil {
		return ShortCodeEvent{}, fmt.Errorf("short code event: %w", err)
	}
	err := inTx(ctx, db, func(tx pgx.Tx) error {
		if err := lockShortCode(ctx, tx, e.ShortCode); err != nil {
			return err
		}
		if e.Kind == EventActivation || e.Kind == EventThroughputChange {
			t, err := TariffOn(ctx, tx, MonthOf(e.Effective).First())
			if err != nil {
				return fmt.Errorf("short code %s: %w", e.ShortCode, err)
			}
			p, err := t.prices()
			if err != nil {
				return err
			}
			if e.Kind == EventActivation && e.Throughput == 0 {
				e.Throughput = p.standardThroughput
			}
			if !p.allowsThroughput(e.Throughput) {
				rates := p.throughputRates()
				slices.Sort(rates)
				return fault.Invalidf("throughput", "%d SMS/s: tariff %s offers %v", e.Throughput, t.Version, rates)
			}
		}
		history, err := shortCodeEvents(ctx, tx, e.ShortCode, Date{})
		if err != nil {
			return err
		}
		all := append(history, e)
		slices.SortStableFunc(all, compareEvents)
		s := ShortCodeState{ShortCode: e.ShortCode}
		for _, x := range all {
			if err := s.apply(x); err != nil {
				if x.ID != 0 {
					return fault.Invalidf("effective", "%s: the history would no longer hold: %s of %s (event %d): %v",
						e.Effective, x.Kind, x.Effective, x.ID, err)
				}
				return err
			}
		}
		return tx.QueryRow(ctx, `
INSERT INTO billing.short_code_events (short_code, kind, effective, throughput, note)
VALUES ($1, $2, $3, nullif($4, 0), $5)
RETURNING id, recorded_at`, e.ShortCode, string(e.Kind), e.Effective.Time(), e.Throughput, e.Note).Scan(&e.ID, &e.RecordedAt)
	})
	if err != nil {
		return ShortCodeEvent{}, fmt.Errorf("short code %s %s on %s: %w", e.ShortCode, e.Kind, e.Effective, err)
	}
	return e, nil
}

// shortCodeEvents returns the events that count in the history of
// shortCode ("" for all short codes), effective on or before upTo (zero:
// all), by short code then in replay order: voids and the events they
// cancel are left out.
func shortCodeEvents(ctx context.Context, q Querier, shortCode string, upTo Date) ([]ShortCodeEvent, error) {
	return queryShortCodeEvents(ctx, q, `
SELECT id, short_code, kind, effective, coalesce(throughput, 0), coalesce(voids, 0), note, recorded_at
FROM billing.short_code_events e
WHERE ($1 = '' OR short_code = $1) AND ($2::date IS NULL OR effective <= $2)
  AND kind <> 'void' AND NOT EXISTS (SELECT 1 FROM billing.short_code_events v WHERE v.voids = e.id)
ORDER BY short_code, effective, id`, shortCode, nullDate(upTo))
}

func queryShortCodeEvents(ctx context.Context, q Querier, sql string, args ...any) ([]ShortCodeEvent, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("short code events: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ShortCodeEvent, error) {
		var e ShortCodeEvent
		var eff time.Time
		var thr int32
		err := row.Scan(&e.ID, &e.ShortCode, &e.Kind, &eff, &thr, &e.Voids, &e.Note, &e.RecordedAt)
		e.Effective, e.Throughput = DateOf(eff), int(thr)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("short code events: %w", err)
	}
	return out, nil
}

// ShortCodeHistory returns every row of a short code's history, voids and
// voided events included, in the order recorded: the audit trail.
func ShortCodeHistory(ctx context.Context, q Querier, shortCode string) ([]ShortCodeEvent, error) {
	if !validShortCode(shortCode) {
		return nil, fault.Invalidf("short_code", "%q: want 5 digits", shortCode)
	}
	return queryShortCodeEvents(ctx, q, `
SELECT id, short_code, kind, effective, coalesce(throughput, 0), coalesce(voids, 0), note, recorded_at
FROM billing.short_code_events WHERE short_code = $1 ORDER BY id`, shortCode)
}

// VoidShortCodeEvent cancels event id, recorded by mistake, by appending a
// void naming it: the event no longer counts for the state nor for the
// fees, and both rows stay in the history. The history must still replay
// without it (void a later event that depends on it first). Invoices of
// the months it touched change when computed again: the difference is the
// credit (or debit) note to ask the operator for.
func VoidShortCodeEvent(ctx context.Context, db Beginner, id int64, note string) (ShortCodeEvent, error) {
	if len(note) > maxNote {
		return ShortCodeEvent{}, fault.Invalidf("note", "longer than %d bytes", maxNote)
	}
	var v ShortCodeEvent
	err := inTx(ctx, db, func(tx pgx.Tx) error {
		var sc string
		if err := tx.QueryRow(ctx, `SELECT short_code FROM billing.short_code_events WHERE id = $1`, id).Scan(&sc); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("event %d: %w", id, fault.ErrNotFound)
			}
			return fmt.Errorf("event %d: %w", id, err)
		}
		if err := lockShortCode(ctx, tx, sc); err != nil {
			return err
		}
		history, err := shortCodeEvents(ctx, tx, sc, Date{})
		if err != nil {
			return err
		}
		i := slices.IndexFunc(history, func(e ShortCodeEvent) bool { return e.ID == id })
		if i < 0 {
			return fault.Invalidf("id", "event %d is a void or already voided", id)
		}
		target := history[i]
		s := ShortCodeState{ShortCode: sc}
		for _, x := range slices.Delete(slices.Clone(history), i, i+1) {
			if err := s.apply(x); err != nil {
				return fault.Invalidf("id", "without event %d the history no longer holds: %s of %s (event %d): %v",
					id, x.Kind, x.Effective, x.ID, err)
			}
		}
		v = ShortCodeEvent{ShortCode: sc, Kind: EventVoid, Effective: target.Effective, Voids: id, Note: note}
		return tx.QueryRow(ctx, `
INSERT INTO billing.short_code_events (short_code, kind, effective, voids, note) VALUES ($1, 'void', $2, $3, $4)
RETURNING id, recorded_at`, sc, target.Effective.Time(), id, note).Scan(&v.ID, &v.RecordedAt)
	})
	if err != nil {
		return ShortCodeEvent{}, fmt.Errorf("void short code event %d: %w", id, err)
	}
	return v, nil
}

func lockShortCode(ctx context.Context, tx pgx.Tx, sc string) error {
	// Two changes of one short code's history are checked one after the
	// other.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('billing.short_code_events ' || $1, 0))`, sc); err != nil {
		return fmt.Errorf("lock short code %s: %w", sc, err)
	}
	return nil
}

// ShortCodeOn returns the state of a short code on day d; a short code
// without history is fault.ErrNotFound.
func ShortCodeOn(ctx context.Context, q Querier, shortCode string, d Date) (ShortCodeState, error) {
	if !validShortCode(shortCode) {
		return ShortCodeState{}, fault.Invalidf("short_code", "%q: want 5 digits", shortCode)
	}
	events, err := shortCodeEvents(ctx, q, shortCode, d)
	if err != nil {
		return ShortCodeState{}, err
	}
	if len(events) == 0 {
		return ShortCodeState{}, fmt.Errorf("short code %s on %s: %w", shortCode, d, fault.ErrNotFound)
	}
	return stateOn(shortCode, events, d)
}

// CatalogOn returns the state on day d of every short code with history
// by then, by short code.
func CatalogOn(ctx context.Context, q Querier, d Date) ([]ShortCodeState, error) {
	events, err := shortCodeEvents(ctx, q, "", d)
	if err != nil {
		return nil, err
	}
	var out []ShortCodeState
	for sc, evs := range byShortCode(events) {
		s, err := stateOn(sc, evs, d)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// byShortCode yields the runs of one short code of events sorted by short
// code.
func byShortCode(events []ShortCodeEvent) func(yield func(string, []ShortCodeEvent) bool) {
	return func(yield func(string, []ShortCodeEvent) bool) {
		for i := 0; i < len(events); {
			j := i + 1
			for j < len(events) && events[j].ShortCode == events[i].ShortCode {
				j++
			}
			if !yield(events[i].ShortCode, events[i:j]) {
				return
			}
			i = j
		}
	}
}

// shortCodeMonth is what a short code subscribed during a month, the
// monthly fees' basis: every option is a calendar-month subscription, so
// one day in service with it bills the whole month.
type shortCodeMonth struct {
	shortCode string
	// activatedOn is the first activation in force during the month: the
	// short code's rank for the tiers.
	activatedOn Date
	// throughput is the highest rate in force on a day of the month.
	throughput  int
	oadc, green bool
}

// monthOf returns what shortCode (its events in replay order, at least
// those up to the month's end) subscribed in m; ok is false when it was
// in service on no day of m. The state changes only on event days, so the
// month's states are the one of its first day and those at the end of
// each of its event days (a state that lasted less than a day, undone the
// same day, was never in force).
func monthOf(shortCode string, events []ShortCodeEvent, m Month) (shortCodeMonth, bool, error) {
	out := shortCodeMonth{shortCode: shortCode}
	seen := false
	s := ShortCodeState{ShortCode: shortCode}
	look := func() {
		if !s.Active {
			return
		}
		if !seen {
			out.activatedOn, seen = s.ActivatedOn, true
		}
		out.throughput = max(out.throughput, s.Throughput)
		out.oadc = out.oadc || s.OAdC
		out.green = out.green || s.Green
	}
	first, last := m.First(), m.Last()
	i := 0
	for ; i < len(events) && !first.Before(events[i].Effective); i++ {
		if err := s.apply(events[i]); err != nil {
			return out, false, fmt.Errorf("short code %s history, event %d: %w", shortCode, events[i].ID, err)
		}
	}
	look()
	for i < len(events) && !last.Before(events[i].Effective) {
		d := events[i].Effective
		for ; i < len(events) && events[i].Effective == d; i++ {
			if err := s.apply(events[i]); err != nil {
				return out, false, fmt.Errorf("short code %s history, event %d: %w", shortCode, events[i].ID, err)
			}
		}
		look()
	}
	return out, seen, nil
}

// QualificationKind is a change of a legal entity's basic-qualification
// subscription.
type QualificationKind string

// Qualification events.
const (
	QualificationSubscribe   QualificationKind = "subscribe"
	QualificationUnsubscribe QualificationKind = "unsubscribe"
)

// QualificationEvent is one row of a legal entity's basic-qualification
// history: subscribed from Effective (subscribe), or no longer from
// Effective (unsubscribe).
type QualificationEvent struct {
	ID          int64             `json:"id,omitempty"`
	LegalEntity string            `json:"legal_entity"`
	Kind        QualificationKind `json:"kind"`
	Effective   Date              `json:"effective"`
	Note        string            `json:"note,omitempty"`
	RecordedAt  time.Time         `json:"recorded_at,omitzero"`
}

// maxLegalEntity bounds a legal entity's name (raison sociale).
const maxLegalEntity = 200

func checkLegalEntity(s string) error {
	if strings.TrimSpace(s) == "" || len(s) > maxLegalEntity || strings.ContainsAny(s, "\r\n") {
		return fault.Invalidf("legal_entity", "want a name of 1 to %d bytes on one line", maxLegalEntity)
	}
	return nil
}

// RecordQualificationEvent appends e to its legal entity's history, if the
// history still alternates subscribe / unsubscribe with it.
func RecordQualificationEvent(ctx context.Context, db Beginner, e QualificationEvent) (QualificationEvent, error) {
	var errs []error
	errs = append(errs, checkLegalEntity(e.LegalEntity), checkDay("effective", e.Effective))
	if e.Kind != QualificationSubscribe && e.Kind != QualificationUnsubscribe {
		errs = append(errs, fault.Invalidf("kind", "%q: want %s or %s", e.Kind, QualificationSubscribe, QualificationUnsubscribe))
	}
	if len(e.Note) > maxNote {
		errs = append(errs, fault.Invalidf("note", "longer than %d bytes", maxNote))
	}
	if err := fault.Join(errs...); err != nil {
		return QualificationEvent{}, fmt.Errorf("qualification event: %w", err)
	}
	err := inTx(ctx, db, func(tx pgx.Tx) error {
		if err := lockLegalEntity(ctx, tx, e.LegalEntity); err != nil {
			return err
		}
		history, err := qualificationEvents(ctx, tx, e.LegalEntity, Date{})
		if err != nil {
			return err
		}
		all := append(history, e)
		// Recorded events of a day before the new one: ID 0 sorts last.
		slices.SortStableFunc(all, func(a, b QualificationEvent) int {
			if c := a.Effective.Compare(b.Effective); c != 0 {
				return c
			}
			return cmpInt64(idOrLast(a.ID), idOrLast(b.ID))
		})
		on := false
		for _, x := range all {
			if (x.Kind == QualificationSubscribe) == on {
				if x.ID != 0 {
					return fault.Invalidf("effective", "%s: the history would no longer hold: %s of %s (event %d) would repeat the state",
						e.Effective, x.Kind, x.Effective, x.ID)
				}
				return fault.Invalidf("kind", "%s on %s: already %sd", x.Kind, x.Effective, x.Kind)
			}
			on = !on
		}
		return tx.QueryRow(ctx, `
INSERT INTO billing.qualification_events (legal_entity, kind, effective, note) VALUES ($1, $2, $3, $4)
RETURNING id, recorded_at`, e.LegalEntity, string(e.Kind), e.Effective.Time(), e.Note).Scan(&e.ID, &e.RecordedAt)
	})
	if err != nil {
		return QualificationEvent{}, fmt.Errorf("qualification of %q %s on %s: %w", e.LegalEntity, e.Kind, e.Effective, err)
	}
	return e, nil
}

func idOrLast(id int64) int64 {
	if id == 0 {
		return 1<<63 - 1
	}
	return id
}

func lockLegalEntity(ctx context.Context, tx pgx.Tx, entity string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('billing.qualification ' || $1, 0))`, entity); err != nil {
		return fmt.Errorf("lock legal entity: %w", err)
	}
	return nil
}

// qualificationEvents returns the history of entity ("" for all) effective
// on or before upTo (zero: all), by entity then in replay order.
func qualificationEvents(ctx context.Context, q Querier, entity string, upTo Date) ([]QualificationEvent, error) {
	rows, err := q.Query(ctx, `
SELECT id, legal_entity, kind, effective, note, recorded_at
FROM billing.qualification_events
WHERE ($1 = '' OR legal_entity = $1) AND ($2::date IS NULL OR effective <= $2)
ORDER BY legal_entity, effective, id`, entity, nullDate(upTo))
	if err != nil {
		return nil, fmt.Errorf("qualification events: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (QualificationEvent, error) {
		var e QualificationEvent
		var eff time.Time
		err := row.Scan(&e.ID, &e.LegalEntity, &e.Kind, &eff, &e.Note, &e.RecordedAt)
		e.Effective = DateOf(eff)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("qualification events: %w", err)
	}
	return out, nil
}

// QualificationHistory returns the events of a legal entity in replay
// order.
func QualificationHistory(ctx context.Context, q Querier, entity string) ([]QualificationEvent, error) {
	if err := checkLegalEntity(entity); err != nil {
		return nil, err
	}
	return qualificationEvents(ctx, q, entity, Date{})
}

// subscribedIn returns the legal entities subscribed on at least one day
// of m: the subscription is per calendar month, like the throughput
// options (offer, note 5 of the options table).
func subscribedIn(events []QualificationEvent, m Month) []string {
	var out []string
	first, last := m.First(), m.Last()
	for i := 0; i < len(events); {
		entity := events[i].LegalEntity
		on, hit := false, false
		// The state of the first day, then after each event day of the
		// month (events are in replay order).
		for ; i < len(events) && events[i].LegalEntity == entity && !first.Before(events[i].Effective); i++ {
			on = events[i].Kind == QualificationSubscribe
		}
		hit = on
		for ; i < len(events) && events[i].LegalEntity == entity; i++ {
			if last.Before(events[i].Effective) {
				continue
			}
			on = events[i].Kind == QualificationSubscribe
			// As for short codes, what counts is the state at the end of
			// an event day.
			if i+1 == len(events) || events[i+1].LegalEntity != entity || events[i+1].Effective != events[i].Effective {
				hit = hit || on
			}
		}
		if hit {
			out = append(out, entity)
		}
	}
	return out
}

// QualifiedCount is a count of MSISDNs a legal entity qualified in a
// month, as the operator's extranet reports it; a negative count corrects
// an earlier one.
type QualifiedCount struct {
	ID          int64     `json:"id,omitempty"`
	LegalEntity string    `json:"legal_entity"`
	Month       Month     `json:"month"`
	MSISDNs     int64     `json:"msisdns"`
	Note        string    `json:"note,omitempty"`
	RecordedAt  time.Time `json:"recorded_at,omitzero"`
}

// maxQualified bounds one count: far above any contact file.
const maxQualified = 1_000_000_000_000

// RecordQualified appends a count. The legal entity must be subscribed to
// the basic qualification on a day of the month, and the month's sum must
// stay at or above zero.
func RecordQualified(ctx context.Context, db Beginner, c QualifiedCount) (QualifiedCount, error) {
	var errs []error
	errs = append(errs, checkLegalEntity(c.LegalEntity))
	if c.Month.Year < 2000 || c.Month.Year > 2999 || c.Month.Month < time.January || c.Month.Month > time.December {
		errs = append(errs, fault.Invalidf("month", "%q: want YYYY-MM", c.Month))
	}
	if c.MSISDNs == 0 || c.MSISDNs > maxQualified || c.MSISDNs < -maxQualified {
		errs = append(errs, fault.Invalidf("msisdns", "%d: want a count other than 0, at most %d either way", c.MSISDNs, int64(maxQualified)))
	}
	if len(c.Note) > maxNote {
		errs = append(errs, fault.Invalidf("note", "longer than %d bytes", maxNote))
	}
	if err := fault.Join(errs...); err != nil {
		return QualifiedCount{}, fmt.Errorf("qualified MSISDNs: %w", err)
	}
	err := inTx(ctx, db, func(tx pgx.Tx) error {
		if err := lockLegalEntity(ctx, tx, c.LegalEntity); err != nil {
			return err
		}
		events, err := qualificationEvents(ctx, tx, c.LegalEntity, c.Month.Last())
		if err != nil {
			return err
		}
		if len(subscribedIn(events, c.Month)) == 0 {
			return fault.Invalidf("month", "%s: %q has no basic-qualification subscription that month", c.Month, c.LegalEntity)
		}
		var sum int64
		if err := tx.QueryRow(ctx, `
SELECT coalesce(sum(msisdns), 0) FROM billing.qualified_msisdns WHERE legal_entity = $1 AND month = $2`,
			c.LegalEntity, c.Month.First().Time()).Scan(&sum); err != nil {
			return fmt.Errorf("qualified MSISDNs: %w", err)
		}
		if sum+c.MSISDNs < 0 {
			return fault.Invalidf("msisdns", "%d: the month's count would be %d, below zero", c.MSISDNs, sum+c.MSISDNs)
		}
		return tx.QueryRow(ctx, `
INSERT INTO billing.qualified_msisdns (legal_entity, month, msisdns, note) VALUES ($1, $2, $3, $4)
RETURNING id, recorded_at`, c.LegalEntity, c.Month.First().Time(), c.MSISDNs, c.Note).Scan(&c.ID, &c.RecordedAt)
	})
	if err != nil {
		return QualifiedCount{}, fmt.Errorf("qualified MSISDNs of %q in %s: %w", c.LegalEntity, c.Month, err)
	}
	return c, nil
}

// qualifiedIn returns the MSISDNs qualified in m per legal entity.
func qualifiedIn(ctx context.Context, q Querier, m Month) (map[string]int64, error) {
	rows, err := q.Query(ctx, `
SELECT legal_entity, sum(msisdns)::bigint FROM billing.qualified_msisdns WHERE month = $1 GROUP BY legal_entity`, m.First().Time())
	if err != nil {
		return nil, fmt.Errorf("qualified MSISDNs in %s: %w", m, err)
	}
	out := map[string]int64{}
	var entity string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&entity, &n}, func() error {
		out[entity] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("qualified MSISDNs in %s: %w", m, err)
	}
	return out, nil
}
