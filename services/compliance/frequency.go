package compliance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
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
	// Conn, when set, creates new keys with one bare request (createFast)
	// instead of the KV client's; nil uses KV only.
	Conn *nats.Conn
	// Cap is how many marketing messages a recipient may get per brand and
	// period; 0 turns the rule off.
	Cap int
	// Period is "day" (a calendar day) or "week" (Monday to Sunday).
	Period string
	// Loc is where days and weeks are taken (Europe/Paris).
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
		key := frequencyKey(c.Number.Hash(), acc.GetBrand(), f.Period, f.periodStart(at))
		id := acc.GetMessageId()
		// Most keys are new (a campaign reaches each recipient once a
		// day): Create first costs one round trip where a read then a
		// create cost two. Create fails if the key exists, so atomicity
		// is the same; only then is the key read and updated at the
		// revision read.
		var (
			e    frequencyEntry
			rev  uint64
			read bool
		)
		if f.Conn != nil {
			created, err := f.createFast(ctx, key, id)
			if err != nil {
				return Verdict{}, err
			}
			if created {
				return Verdict{}, nil
			}
			// The key exists: read it below, then update it at its revision.
			read = true
			if e, rev, err = readFrequency(ctx, f.KV, key); err != nil {
				return Verdict{}, err
			}
		}
		for range casAttempts {
			if read {
				if slices.Contains(e.IDs, id) {
					return Verdict{}, nil // a redelivery: already counted
				}
				if len(e.IDs) >= f.Cap {
					return refuse(partnerv1.Reason_REASON_FREQUENCY_CAP, f.detail(len(e.IDs), acc.GetBrand(), at)), nil
				}
			}
			b, err := json.Marshal(frequencyEntry{IDs: append(slices.Clip(e.IDs), id)})
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
			// The key exists, or another replica wrote it since it was
			// read: read it (again).
			// A key deleted or expired since reads as empty: created again.
			read = true
			if e, rev, err = readFrequency(ctx, f.KV, key); err != nil {
				return Verdict{}, err
			}
		}
		return Verdict{}, fmt.Errorf("frequency: still conflicting after %d attempts", casAttempts)
	}
}

// createFast creates key holding only id, as KeyValue.Create does (a
// publish to the key's subject that JetStream stores only if the subject
// has no message yet: Nats-Expected-Last-Subject-Sequence 0), without the
// KV client's per-call costs (key validation by regexp, options, a
// decoded acknowledgement): it is the one round trip of most marketing
// decisions. It reports false when the key exists (or existed: a deleted
// key's tombstone counts, and the KV path after it deals with it).
func (f Frequency) createFast(ctx context.Context, key, id string) (bool, error) {
	// Message ids are ULIDs: nothing to escape in the JSON.
	data := make([]byte, 0, len(id)+12)
	data = append(data, `{"ids":["`...)
	data = append(data, id...)
	data = append(data, `"]}`...)
	m := &nats.Msg{
		Subject: "$KV." + f.KV.Bucket() + "." + key,
		Data:    data,
		Header:  nats.Header{jetstream.ExpectedLastSubjSeqHeader: []string{"0"}},
	}
	if !jsonSafe(id) {
		b, err := json.Marshal(frequencyEntry{IDs: []string{id}})
		if err != nil {
			return false, fmt.Errorf("frequency: encode: %w", err)
		}
		m.Data = b
	}
	resp, err := f.Conn.RequestMsgWithContext(ctx, m)
	if err != nil {
		return false, fmt.Errorf("frequency: create: %w", err)
	}
	ack := resp.Data
	if !bytes.Contains(ack, []byte(`"error"`)) && bytes.Contains(ack, []byte(`"seq"`)) {
		return true, nil // the common case, told without decoding
	}
	var a struct {
		Error *struct {
			ErrCode     jetstream.ErrorCode `json:"err_code"`
			Description string              `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(ack, &a); err != nil || a.Error == nil {
		return false, fmt.Errorf("frequency: create: unexpected answer %q", ack)
	}
	switch a.Error.ErrCode {
	case jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant:
		return false, nil // the key exists (replicated streams say 10164)
	}
	return false, fmt.Errorf("frequency: create: %s (%d)", a.Error.Description, a.Error.ErrCode)
}

// jsonSafe reports whether s needs no escaping inside a JSON string.
func jsonSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			return false
		}
	}
	return true
}

// periodStart is the French calendar day of at, or the Monday of its week.
func (f Frequency) periodStart(at time.Time) time.Time {
	d := at.In(f.Loc)
	if f.Period == "week" {
		// Monday is day 0 of the French week; Go's weeks start on Sunday.
		back := (int(d.Weekday()) + 6) % 7
		y, m, dd := d.Date()
		d = time.Date(y, m, dd-back, 12, 0, 0, 0, f.Loc)
	}
	return d
}

func (f Frequency) detail(got int, brand string, at time.Time) string {
	d := at.In(f.Loc)
	if f.Period == "week" {
		start := f.periodStart(at)
		return fmt.Sprintf("the recipient already got %d marketing message(s) from brand %q in the week of %s (Monday to Sunday, French time); the cap is %d per user, per week and per brand",
			got, brand, start.Format(time.DateOnly), f.Cap)
	}
	return fmt.Sprintf("the recipient already got %d marketing message(s) from brand %q on %s (French time); the cap is %d per user, per day and per brand",
		got, brand, d.Format(time.DateOnly), f.Cap)
}

// frequencyKey is <recipient hash>.<brand hash>.<yyyymmdd> for a daily
// cap, and .w<yyyymmdd of the Monday> for a weekly one, so that the two
// counts never share a key when the policy changes period: hex, digits
// and "w" only, inside the NATS key alphabet whatever the brand is
// written with, and never the number in clear. The brand is compared
// trimmed and case-folded: "Acme" and "ACME " are one brand to the
// recipient.
func frequencyKey(recipientHash, brand, period string, start time.Time) string {
	b := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(brand))))
	day := start.Format("20060102")
	if period == "week" {
		day = "w" + day
	}
	return recipientHash + "." + hex.EncodeToString(b[:8]) + "." + day
}

// readFrequency reads a key's entry and revision; a missing key is an
// empty entry at revision 0 (to create).
func readFrequency(ctx context.Context, kv jetstream.KeyValue, key string) (frequencyEntry, uint64, error) {
	var e frequencyEntry
	got, err := kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return e, 0, nil
	case err != nil:
		return e, 0, fmt.Errorf("frequency: read: %w", err)
	}
	if err := json.Unmarshal(got.Value(), &e); err != nil {
		return e, 0, fmt.Errorf("frequency: decode: %w", err)
	}
	return e, got.Revision(), nil
}
