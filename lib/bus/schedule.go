package bus

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
