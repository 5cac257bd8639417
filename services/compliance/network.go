package compliance

import (
	"context"
	"fmt"

	"pushsms.io/lib/numplan"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// NetworkLookup tells the operator a number is on now: a ported-numbers
// table or a real-time (HLR) lookup. Known false means it has no answer
// and the ARCEP block holder decides. An error means it could not tell:
// the message is retried.
type NetworkLookup interface {
	Operator(ctx context.Context, n numplan.Number) (code string, known bool, err error)
}

// Network is the configuration of the network rule.
type Network struct {
	// Plan gives the ARCEP block holder, the prior every port breaks
	// (compliance §3.3).
	Plan *numplan.Plan
	// Operator is the ARCEP code that counts as on-network (numplan.Orange).
	Operator string
	// Lookup, when set, is asked first: it knows ported numbers.
	Lookup NetworkLookup
}

// checkNetwork lets through only recipients on the operator's network (offer
// "qualification mechanism": numbering plan plus portability). A number
// outside every allocated block is refused too: nothing says it is on it.
func checkNetwork(nw Network) func(context.Context, *Candidate) (Verdict, error) {
	return func(ctx context.Context, c *Candidate) (Verdict, error) {
		if nw.Lookup != nil {
			code, known, err := nw.Lookup.Operator(ctx, c.Number)
			if err != nil {
				return Verdict{}, fmt.Errorf("network lookup: %w", err)
			}
			if known {
				return onNetwork(nw.Operator, code, "the recipient's number is now with another operator"), nil
			}
		}
		holder, ok := nw.Plan.Holder(c.Number)
		if !ok {
			return refuse(partnerv1.Reason_REASON_NOT_ON_NETWORK, "the recipient's number is in no allocated block of the numbering plan"), nil
		}
		return onNetwork(nw.Operator, holder, "the recipient's number belongs to another operator's block"), nil
	}
}

func onNetwork(want, got, why string) Verdict {
	if got == want {
		return Verdict{}
	}
	return refuse(partnerv1.Reason_REASON_NOT_ON_NETWORK, fmt.Sprintf("%s (%s), not on the operator's network (%s)", why, got, want))
}

// Lookups asks each lookup in turn (the ported-numbers table, then a
// real-time lookup); the first that knows the number, or fails, decides.
type Lookups []NetworkLookup

func (ls Lookups) Operator(ctx context.Context, n numplan.Number) (string, bool, error) {
	for _, l := range ls {
		if l == nil {
			continue
		}
		if code, known, err := l.Operator(ctx, n); err != nil || known {
			return code, known, err
		}
	}
	return "", false, nil
}
