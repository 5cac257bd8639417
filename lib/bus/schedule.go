package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"pushsms.io/lib/fault"
)

// Schedule stores m again on subject as a JetStream message schedule: at
// at, the server publishes m's payload and headers (its trace context
// included) on m's own subject, a new event for that subject's consumers
// (whose handlers must therefore take a repeated event: its Nats-Msg-Id is
// not carried over). Schedules have a resolution of a second: at is
// rounded down, so an event comes back up to a second early, never late,
// and its handler holds it the rest of the way. subject must be one of the
// stream's that no consumer reads (SubjectHold); a later schedule on the
// same subject replaces the earlier one (the server rolls the subject up).
// msgID identifies the schedule: a retried Schedule is stored once.
//
// Until it is due the schedule is a message in the stream, not an event a
// consumer holds: it costs no consumer state, and survives every restart.
func (b *Bus) Schedule(ctx context.Context, m *Msg, subject string, at time.Time, msgID string) error {
	nm := nats.NewMsg(subject)
	nm.Data = m.Data
	for k, vs := range m.Header {
		// The server's headers (ids, schedules, expectations) are not the
		// event's: they would refuse or misplace the schedule.
		if !strings.HasPrefix(k, "Nats-") {
			nm.Header[k] = vs
		}
	}
	at = setSchedule(nm.Header, at, m.Subject)
	if err := b.store(ctx, nm, jetstream.WithMsgID(msgID)); err != nil {
		return fmt.Errorf("schedule %s at %s: %w", m.Subject, at.UTC().Format(time.RFC3339), err)
	}
	return nil
}

// setSchedule makes a message with header h a schedule that the server
// publishes on target at at, rounded down to the second (the schedules'
// resolution), and returns that time. In the headers rather than as
// publish options, so that a copy of the message for a retry is the same
// schedule (PublishAll).
func setSchedule(h nats.Header, at time.Time, target string) time.Time {
	at = at.Truncate(time.Second)
	h.Set(jetstream.ScheduleHeader, "@at "+at.UTC().Format(time.RFC3339))
	h.Set(jetstream.ScheduleTargetHeader, target)
	return at
}

// Unschedule takes back the message schedules stored on the subjects
// filter matches (a hold or release filter) that have not come due. fn
// gets the event each holds (Subject is the subject it would be published
// on) and says whether to delete the schedule; it runs before the
// deletion, so that what it stores (a cancellation, say) is kept even if
// the caller stops in between. A schedule that comes due meanwhile is
// published as usual: what fn stores must be safe to meet that event too.
// It returns how many schedules it deleted, and stops at fn's first error.
func (b *Bus) Unschedule(ctx context.Context, filter string, fn func(ctx context.Context, m *Msg) (bool, error)) (int, error) {
	deleted := 0
	err := b.eachSchedule(ctx, filter, false, func(st jetstream.Stream, m *Msg, _ time.Time) error {
		del, err := fn(ctx, m)
		if err != nil || !del {
			return err
		}
		switch err := st.DeleteMsg(ctx, m.Sequence); {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			// Due meanwhile: the server published it.
		case err != nil:
			return fmt.Errorf("unschedule %s: delete %d: %w", filter, m.Sequence, errors.Join(err, fault.ErrUnavailable))
		default:
			deleted++
		}
		return nil
	})
	return deleted, err
}

// Reschedule moves the message schedules stored on the subjects filter
// matches that have not come due. at gets each one's headers (Data is
// empty: only headers are read until a schedule is to move) and the time
// it is due, and returns its new time, or false to leave it; the headers
// it changes are stored with it. A moved schedule is stored again on its
// subject, which replaces it, unless it came due (or was moved by another
// replica) since it was read: the subject's last sequence is expected. A
// time less than a second ahead becomes a second ahead (the schedules'
// resolution). It returns how many it moved.
func (b *Bus) Reschedule(ctx context.Context, filter string, at func(m *Msg, due time.Time) (time.Time, bool)) (int, error) {
	moved := 0
	err := b.eachSchedule(ctx, filter, true, func(st jetstream.Stream, m *Msg, due time.Time) error {
		next, ok := at(m, due)
		if !ok {
			return nil
		}
		stored, err := st.GetMsg(ctx, m.Sequence)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reschedule %s: get %d: %w", filter, m.Sequence, errors.Join(err, fault.ErrUnavailable))
		}
		nm := nats.NewMsg(stored.Subject)
		nm.Data = stored.Data
		for k, vs := range m.Header {
			if !strings.HasPrefix(k, "Nats-") {
				nm.Header[k] = vs
			}
		}
		if soon := time.Now().Add(time.Second); next.Before(soon) {
			next = soon
		}
		next = setSchedule(nm.Header, next, m.Subject)
		id := fmt.Sprintf("%s@%d", m.Header.Get(HeaderMsgID), next.Unix())
		_, err = b.JS.PublishMsg(ctx, nm, jetstream.WithMsgID(id), jetstream.WithExpectLastSequencePerSubject(m.Sequence))
		var apiErr *jetstream.APIError
		switch {
		case errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant):
			// Due, or moved, meanwhile.
		case err != nil:
			return fmt.Errorf("reschedule %s: store %s: %w", filter, stored.Subject, errors.Join(err, fault.ErrUnavailable))
		default:
			moved++
		}
		return nil
	})
	return moved, err
}

// eachSchedule calls fn with each message schedule stored on the subjects
// filter matches, in stream order, its headers only when headersOnly, and
// the time it is due; Subject is the subject it would be published on.
//
// It streams them with an ordered consumer (Messages: one consumer for the
// whole walk; its Fetch would create a consumer again at each call) and
// ends at the last one pending when it started, or when none comes for
// scheduleIdle: the schedules left came due meanwhile.
func (b *Bus) eachSchedule(ctx context.Context, filter string, headersOnly bool, fn func(st jetstream.Stream, m *Msg, due time.Time) error) error {
	name, err := b.JS.StreamNameBySubject(ctx, filter)
	if err != nil {
		return fmt.Errorf("schedules %s: stream: %w", filter, errors.Join(err, fault.ErrUnavailable))
	}
	st, err := b.JS.Stream(ctx, name)
	if err != nil {
		return fmt.Errorf("schedules %s: stream %s: %w", filter, name, errors.Join(err, fault.ErrUnavailable))
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return fmt.Errorf("schedules %s: stream %s: %w", filter, name, errors.Join(err, fault.ErrUnavailable))
	}
	if len(info.State.Subjects) == 0 {
		return nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, HeadersOnly: headersOnly})
	if err != nil {
		return fmt.Errorf("schedules %s: consumer: %w", filter, errors.Join(err, fault.ErrUnavailable))
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(scheduleBatch))
	if err != nil {
		return fmt.Errorf("schedules %s: consume: %w", filter, errors.Join(err, fault.ErrUnavailable))
	}
	defer it.Stop()
	for {
		nctx, cancel := context.WithTimeout(ctx, scheduleIdle)
		jm, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		switch {
		case err != nil && ctx.Err() != nil:
			return fmt.Errorf("schedules %s: %w", filter, errors.Join(ctx.Err(), fault.ErrUnavailable))
		case errors.Is(err, context.DeadlineExceeded):
			return nil
		case err != nil:
			return fmt.Errorf("schedules %s: next: %w", filter, errors.Join(err, fault.ErrUnavailable))
		}
		md, err := jm.Metadata()
		if err != nil {
			return fmt.Errorf("schedules %s: %w", filter, err)
		}
		h := jm.Headers()
		if due, ok := scheduledAt(h); ok {
			m := &Msg{Subject: h.Get(jetstream.ScheduleTargetHeader), Data: jm.Data(), Header: h, Type: h.Get(HeaderType),
				Sequence: md.Sequence.Stream, Time: md.Timestamp}
			if err := fn(st, m, due); err != nil {
				return err
			}
		}
		if md.NumPending == 0 {
			return nil
		}
	}
}

// scheduledAt is the time of a one-shot schedule's header (setSchedule).
func scheduledAt(h nats.Header) (time.Time, bool) {
	v, ok := strings.CutPrefix(h.Get(jetstream.ScheduleHeader), "@at ")
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, v)
	return t, err == nil
}

// How eachSchedule reads: up to scheduleBatch schedules a request, and it
// stops when none comes for scheduleIdle.
const (
	scheduleBatch = 64
	scheduleIdle  = 2 * time.Second
)
