package optout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/fault"
	"pushsms.io/lib/numplan"
)

// Issuer is who last sent to a number from a short code.
type Issuer struct {
	Brand     string    `json:"brand"`
	Tenant    string    `json:"tenant"`
	MessageID string    `json:"message_id"`
	At        time.Time `json:"at"`
}

// LastIssuer remembers, per short code and recipient, the brand that last
// sent (bucket LAST_ISSUER): a STOP to a short code opts out of that brand.
type LastIssuer struct {
	kv jetstream.KeyValue
	js jetstream.JetStream
}

// OpenLastIssuer opens bucket LAST_ISSUER on b.
func OpenLastIssuer(ctx context.Context, b *bus.Bus) (*LastIssuer, error) {
	kv, err := b.JS.KeyValue(ctx, bus.BucketLastIssuer)
	if err != nil {
		return nil, fmt.Errorf("optout: bucket %s: %w", bus.BucketLastIssuer, err)
	}
	return &LastIssuer{kv: kv, js: b.JS}, nil
}

// sessionKey is <short code>.<recipient hash>; a short code that is not
// key-safe (never, for a five-digit code) is hashed.
func sessionKey(shortCode string, n numplan.Number) (string, error) {
	if n.IsZero() {
		return "", fault.Invalidf("msisdn", "no number")
	}
	if shortCode == "" {
		return "", fault.Invalidf("short_code", "no short code")
	}
	return keyToken(shortCode) + "." + n.Hash(), nil
}

// keyToken keeps s as a key token if it is made of letters, digits, '-' and
// '_', else hashes it.
func keyToken(s string) string {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' || r == '_') {
			return "h" + shortHash(s)
		}
	}
	return s
}

// Record remembers that is.Brand sent to n from shortCode. It is called for every
// message compliance clears, so it does not wait for the server: the put
// is published asynchronously (a disconnected client fails at once, and
// that error is returned). A record the server then loses only makes a
// later STOP cover the whole short code instead of the brand.
func (l *LastIssuer) Record(ctx context.Context, shortCode string, n numplan.Number, is Issuer) error {
	key, err := sessionKey(shortCode, n)
	if err != nil {
		return err
	}
	b, err := json.Marshal(is)
	if err != nil {
		return fmt.Errorf("optout: encode issuer: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m := nats.NewMsg("$KV." + bus.BucketLastIssuer + "." + key)
	m.Data = b
	if _, err := l.js.PublishMsgAsync(m); err != nil {
		return fmt.Errorf("optout: record issuer: %w", errors.Join(err, fault.ErrUnavailable))
	}
	return nil
}

// Get returns the last issuer of shortCode to n; false when none is known
// (never sent, or more than the bucket's TTL ago).
func (l *LastIssuer) Get(ctx context.Context, shortCode string, n numplan.Number) (Issuer, bool, error) {
	key, err := sessionKey(shortCode, n)
	if err != nil {
		return Issuer{}, false, err
	}
	got, err := l.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		return Issuer{}, false, nil
	case err != nil:
		return Issuer{}, false, fmt.Errorf("optout: last issuer: %w", errors.Join(err, fault.ErrUnavailable))
	}
	var is Issuer
	if err := json.Unmarshal(got.Value(), &is); err != nil {
		return Issuer{}, false, fmt.Errorf("optout: decode issuer: %w", err)
	}
	return is, true, nil
}

// Sessions remembers a subscriber's last MO to a short code (bucket
// MO_SESSIONS): replies from a 34ABC short code need a session the
// subscriber opened.
type Sessions struct {
	kv jetstream.KeyValue
}

// OpenSessions opens bucket MO_SESSIONS on b.
func OpenSessions(ctx context.Context, b *bus.Bus) (*Sessions, error) {
	kv, err := b.JS.KeyValue(ctx, bus.BucketMOSessions)
	if err != nil {
		return nil, fmt.Errorf("optout: bucket %s: %w", bus.BucketMOSessions, err)
	}
	return &Sessions{kv: kv}, nil
}

type session struct {
	At time.Time `json:"at"`
}

// sessionAttempts bounds Touch's compare-and-set: two MOs of one subscriber
// to one short code at the same instant are the only conflict.
const sessionAttempts = 8

// Touch records an MO of n to shortCode at at. The time only moves forward:
// an old MO redelivered after a newer one does not shorten the session.
func (s *Sessions) Touch(ctx context.Context, shortCode string, n numplan.Number, at time.Time) error {
	key, err := sessionKey(shortCode, n)
	if err != nil {
		return err
	}
	b, err := json.Marshal(session{At: at.UTC()})
	if err != nil {
		return fmt.Errorf("optout: encode session: %w", err)
	}
	for range sessionAttempts {
		got, err := s.kv.Get(ctx, key)
		var rev uint64
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		case err != nil:
			return fmt.Errorf("optout: session: %w", errors.Join(err, fault.ErrUnavailable))
		default:
			var have session
			if json.Unmarshal(got.Value(), &have) == nil && !have.At.Before(at) {
				return nil
			}
			rev = got.Revision()
		}
		if rev == 0 {
			_, err = s.kv.Create(ctx, key, b)
		} else {
			_, err = s.kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("optout: session: %w", errors.Join(err, fault.ErrUnavailable))
		}
	}
	return fmt.Errorf("optout: session: still conflicting after %d attempts: %w", sessionAttempts, fault.ErrUnavailable)
}

// LastMO returns the time of n's last MO to shortCode; false when there is
// none within the bucket's TTL (30 days). Whether it still opens a session
// is the caller's policy (mo_session).
func (s *Sessions) LastMO(ctx context.Context, shortCode string, n numplan.Number) (time.Time, bool, error) {
	key, err := sessionKey(shortCode, n)
	if err != nil {
		return time.Time{}, false, err
	}
	got, err := s.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		return time.Time{}, false, nil
	case err != nil:
		return time.Time{}, false, fmt.Errorf("optout: session: %w", errors.Join(err, fault.ErrUnavailable))
	}
	var have session
	if err := json.Unmarshal(got.Value(), &have); err != nil {
		return time.Time{}, false, fmt.Errorf("optout: decode session: %w", err)
	}
	return have.At, true, nil
}
