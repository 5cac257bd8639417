package compliance

import (
	"context"
	"fmt"
	"time"

	"pushsms.io/lib/numplan"
	"pushsms.io/lib/optout"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// sourceOptOut is the source of the opt-out rule, as every decision it
// takes records it.
const sourceOptOut = `offer "Obligations of the aggregator": the right to object is honoured, a user who asked to stop ` +
	`(STOP to the short code) receives no more messages from that issuer; CPCE L.34-5 and LCEN art. 22 ` +
	`(a free way to object, honoured); CNIL SMS prospection guidance; SMS+ charter (compliance §2.3, §5.3, §5.5)`

// optOutRule refuses a message to a number that opted out of its brand, of
// its short code, or of its partner: a subscriber's STOP or a partner's
// suppression list. It applies to every category: the offer says a user
// who asked to stop receives no more messages from that issuer, and the
// partner's GetRecipientStatus answers for a brand, not a category. It
// reads the replica's in-memory index, so it costs no round trip, and an
// opt-out recorded anywhere is seen within a second.
func optOutRule(idx *optout.Index) Rule {
	return Rule{
		Name:   "optout",
		Source: sourceOptOut,
		Check: func(_ context.Context, c *Candidate) (Verdict, error) {
			acc := c.Accepted
			e, blocked := idx.Blocked(c.Number, acc.GetTenantId(), acc.GetBrand(), acc.GetShortCode())
			if !blocked {
				return Verdict{}, nil
			}
			return refuse(partnerv1.Reason_REASON_OPTED_OUT, optOutDetail(e)), nil
		},
	}
}

// optOutDetail tells the partner which opt-out stops the message and since
// when (French date), never the number.
func optOutDetail(e optout.Entry) string {
	day := e.At.In(parisTime()).Format(time.DateOnly)
	var what string
	switch e.Scope {
	case optout.ScopeBrand:
		what = fmt.Sprintf("of every message of brand %q", e.Brand)
	case optout.ScopeShortCode:
		what = fmt.Sprintf("of every message from short code %s", e.ShortCode)
	default:
		what = "of every message of this partner"
	}
	switch e.Source {
	case optout.SourceMOStop:
		return fmt.Sprintf("the recipient opted out %s on %s, by sending %q to short code %s", what, day, e.Text, e.ShortCode)
	default:
		how := "the partner's suppression list"
		if e.Note != "" {
			how = fmt.Sprintf("the partner's suppression list (%s)", e.Note)
		}
		return fmt.Sprintf("the recipient opted out %s on %s, per %s", what, day, how)
	}
}

// parisTime is the zone of the dates partners read; the embedded tzdata
// (compliance.go) makes it always available.
func parisTime() *time.Location {
	loc, err := time.LoadLocation(Zone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// issuerRecorder is where recordIssuer writes (optout.LastIssuer).
type issuerRecorder interface {
	Record(ctx context.Context, shortCode string, n numplan.Number, is optout.Issuer) error
}

// recordIssuer remembers that the message's brand is now the last to send
// to its recipient from its short code, so that a STOP answering it opts
// out of that brand. Compliance calls it for every message it clears,
// before publishing MessageCleared: a message not recorded is not sent.
// A message without a brand is recorded too: a STOP answering it cannot
// name an issuer and stops the whole short code.
func recordIssuer(ctx context.Context, li issuerRecorder, acc *eventsv1.MessageAccepted, n numplan.Number, at time.Time) error {
	err := li.Record(ctx, acc.GetShortCode(), n, optout.Issuer{
		Brand:     acc.GetBrand(),
		Tenant:    acc.GetTenantId(),
		MessageID: acc.GetMessageId(),
		At:        at,
	})
	if err != nil {
		return fmt.Errorf("message %s: last issuer: %w", acc.GetMessageId(), err)
	}
	return nil
}
