package compliance

import (
	"context"
	"fmt"
	"time"

	"pushsms.io/lib/numplan"
	"pushsms.io/lib/policy"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// sourceMOSession is the source of the MO-session rule.
const sourceMOSession = `offer "Obligations of the aggregator": 34ABC short codes carry MTs inside a session ` +
	`that the subscriber started with an MO; the session length is the aggregator's (policy mo_session)`

// SessionLookup finds the last MO a subscriber sent to a short code.
type SessionLookup interface {
	// LastMO returns when n last wrote to shortCode, and false when it
	// never did (or so long ago that it was forgotten). An error means
	// the store could not answer.
	LastMO(ctx context.Context, shortCode string, n numplan.Number) (time.Time, bool, error)
}

// checkMOSession lets an MO-session reply go only inside a session the
// recipient opened: an MO from them to the short code at most
// p.MOSession before the decision. A reply is not prospection, so it is
// exempt from the window and the content rules of marketing; without
// this rule that exemption would be a way around them.
func checkMOSession(p *policy.Policy, sessions SessionLookup) func(context.Context, *Candidate) (Verdict, error) {
	session := time.Duration(p.MOSession)
	return func(ctx context.Context, c *Candidate) (Verdict, error) {
		acc := c.Accepted
		if acc.GetCategory() != partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MO_SESSION_REPLY {
			return Verdict{}, nil
		}
		sc := acc.GetShortCode()
		at, ok, err := sessions.LastMO(ctx, sc, c.Number)
		if err != nil {
			return Verdict{}, fmt.Errorf("mo session: %w", err)
		}
		if !ok {
			return refuse(partnerv1.Reason_REASON_NO_MO_SESSION, fmt.Sprintf(
				"a reply needs a session the recipient opened with an MO to short code %s; there is none", sc)), nil
		}
		// An MO stamped a little after the decision (clocks of two
		// machines) is inside the session.
		if age := c.Now.Sub(at); age > session {
			return refuse(partnerv1.Reason_REASON_NO_MO_SESSION, fmt.Sprintf(
				"the recipient's last MO to short code %s is %s old; a session lasts %s", sc, roundAge(age), session)), nil
		}
		return Verdict{}, nil
	}
}

// roundAge keeps a detail readable: "26h0m0s", not "26h0m0.123456789s".
func roundAge(d time.Duration) time.Duration {
	if d >= time.Hour {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}
