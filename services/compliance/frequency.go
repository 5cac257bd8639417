package compliance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// casAttempts bounds the compare-and-set retries of one check. Each
// conflict means another replica counted a message for the same key, so
// with N replicas a check loses at most N-1 races per message counted.
const casAttempts = 64

// Frequency is the configuration of the frequency cap rule.
type Frequency struct {
	// KV is the FREQUENCY bucket, shared by every replica.
	KV jetstream.KeyValue
	// Cap is how many marketing messages a recipient may get per brand and
	// day; 0 turns the rule off.
	Cap int
	// Loc is where the calendar day is taken (Europe/Paris).
	Loc *time.Location
}

// frequencyEntry is the value of a FREQUENCY key: the messages that used
// the day's quota. Their count is the count; keeping the ids makes a
// redelivered message pass again instead of counting twice.
type frequencyEntry struct {
	IDs []string `json:"ids"`
}

// checkFrequency lets a recipient get at most f.Cap marketing messages per
// brand and French calendar day (offer "Obligations of the aggregator":
// at most one direct-marketing message per user, per day and per brand).
// It is the last rule: a message it counts is cleared. The day is the one
// the message will be sent on: its not_before (the partner's, or the
// window's deferral), else now.
func checkFrequency(f Frequency) func(context.Context, *Candidate) (Verdict, error) {
	return func(ctx context.Context, c *Candidate) (Verdict, error) {
		acc := c.Accepted
		if acc.GetCategory() != partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING {
			return Verdict{}, nil
		}
		at := c.Now
		if nb := acc.GetNotBefore(); nb != nil && nb.AsTime().After(at) {
			at = nb.AsTime()
		}
		if c.NotBefore.After(at) {
			at = c.NotBefore
		}
		key := frequencyKey(c.Number.Hash(), acc.GetBrand(), at.In(f.Loc))
		id := acc.GetMessageId()
		for range casAttempts {
			var (
				e   frequencyEntry
				rev uint64
			)
			got, err := f.KV.Get(ctx, key)
			switch {
			case errors.Is(err, jetstream.ErrKeyNotFound):
			case err != nil:
				return Verdict{}, fmt.Errorf("frequency: read: %w", err)
			default:
				if err := json.Unmarshal(got.Value(), &e); err != nil {
					return Verdict{}, fmt.Errorf("frequency: decode: %w", err)
				}
				rev = got.Revision()
			}
			if slices.Contains(e.IDs, id) {
				return Verdict{}, nil // a redelivery: already counted
			}
			if len(e.IDs) >= f.Cap {
				return refuse(partnerv1.Reason_REASON_FREQUENCY_CAP, fmt.Sprintf(
					"the recipient already got %d marketing message(s) from brand %q on %s (French time); the cap is %d per user, per day and per brand",
					len(e.IDs), acc.GetBrand(), at.In(f.Loc).Format(time.DateOnly), f.Cap)), nil
			}
			e.IDs = append(e.IDs, id)
			b, err := json.Marshal(e)
			if err != nil {
				return Verdict{}, fmt.Errorf("frequency: encode: %w", err)
			}
			if rev == 0 {
				_, err = f.KV.Create(ctx, key, b)
			} else {
				_, err = f.KV.Update(ctx, key, b, rev)
			}
			if err == nil {
				return Verdict{}, nil
			}
			if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				return Verdict{}, fmt.Errorf("frequency: write: %w", err)
			}
			// Another replica wrote the key since it was read: read again.
		}
		return Verdict{}, fmt.Errorf("frequency: still conflicting after %d attempts", casAttempts)
	}
}

// frequencyKey is <recipient hash>.<brand hash>.<yyyymmdd>: hex and digits
// only, inside the NATS key alphabet whatever the brand is written with,
// and never the number in clear. The brand is compared trimmed and
// case-folded: "Acme" and "ACME " are one brand to the recipient.
func frequencyKey(recipientHash, brand string, day time.Time) string {
	b := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(brand))))
	return recipientHash + "." + hex.EncodeToString(b[:8]) + "." + day.Format("20060102")
}
