package smsclink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"pushsms.io/lib/numplan"
)

// The SMSC_SUBMITTED bucket holds two kinds of keys:
//
//	<hash(recipient)>.<SCTS>   correlation: the segment a DR is about,
//	                           written on the 51 ACK (docs/events.md)
//	seg.<message id>.<index>   the segment's submission attempt, written
//	                           before its 51 so that it is never sent twice
//
// The hash is numplan's (SHA-256 of the E.164 form, 128 bits, hex): the
// key names no MSISDN, and the DR's OAdC gives the same key in whichever
// form the SMSC writes it.

// segmentRef is the value of a correlation key.
type segmentRef struct {
	MessageID  string `json:"message_id"`
	TenantID   string `json:"tenant_id"`
	CampaignID string `json:"campaign_id,omitempty"`
	ShortCode  string `json:"short_code"`
	Index      int32  `json:"index"`
	Count      int32  `json:"count"`
	// ValidUntil is the validity period the 51 carried, to tell an expiry
	// from a failure in a DR.
	ValidUntil time.Time `json:"valid_until,omitzero"`
	// Traceparent is the submit's trace (W3C), so that the DR's span joins
	// the SMS's trace.
	Traceparent string `json:"traceparent,omitempty"`
	// Trace is the trace as smsc-link stored it before cdefebe (a
	// propagator's carrier): read, never written, so that a DR for a
	// segment submitted before the upgrade still joins its trace. It can go
	// once the bucket's TTL (7 days) has passed since the last replica that
	// wrote it stopped.
	Trace map[string]string `json:"trace,omitempty"`
}

// traceparent is the submit's trace, from either form.
func (r segmentRef) traceparent() string {
	if r.Traceparent != "" {
		return r.Traceparent
	}
	return r.Trace["traceparent"]
}

func (r segmentRef) sameSegment(o segmentRef) bool {
	return r.MessageID == o.MessageID && r.Index == o.Index
}

// Attempt states.
const (
	attemptSending   = "sending"   // the 51 may be on the wire
	attemptSubmitted = "submitted" // ACKed: SCTS and Key say where
	attemptNacked    = "nacked"    // permanent NACK: EC
	attemptUnknown   = "unknown"   // no result: resent only by the UNKNOWN policy (resend.go)
)

// attempt is the value of a segment's attempt key.
type attempt struct {
	State string    `json:"state"`
	At    time.Time `json:"at"`
	SCTS  string    `json:"scts,omitempty"`
	Key   string    `json:"key,omitempty"`
	EC    string    `json:"ec,omitempty"`
	// Resend is set on an UNKNOWN attempt that may be sent again
	// (resend.go); Resends counts the resends claimed, Resent is set once
	// no more may be.
	Resend  *resendInfo `json:"resend,omitempty"`
	Resends int         `json:"resends,omitempty"`
	Resent  bool        `json:"resent,omitempty"`
}

// addrHash is the correlation hash of an address: numplan's hash of its
// E.164 form when it parses (as 33…, 0033…, 06… or +33…), else a hash of
// the address as written.
func addrHash(addr string) string {
	if n, ok := normalise(addr); ok {
		return n.Hash()
	}
	sum := sha256.Sum256([]byte(addr))
	return hex.EncodeToString(sum[:16])
}

// normalise parses an address the SMSC sent or we send: national,
// 00-prefixed, '+'-prefixed or international without '+'.
func normalise(addr string) (numplan.Number, bool) {
	if n, err := numplan.Parse(addr); err == nil {
		return n, true
	}
	if isDigits(addr) && addr[0] != '0' {
		if n, err := numplan.Parse("+" + addr); err == nil {
			return n, true
		}
	}
	return numplan.Number{}, false
}

// corrKey is the correlation key of (recipient, SCTS).
func corrKey(addr, scts string) string { return addrHash(addr) + "." + scts }

// attemptKey is the attempt key of a segment. Message ids are UUIDs; any
// other id is hashed so that the key stays within NATS's key alphabet.
func attemptKey(messageID string, index int32) string {
	id := messageID
	if !keySafe(id) {
		sum := sha256.Sum256([]byte(id))
		id = "h" + hex.EncodeToString(sum[:16])
	}
	return "seg." + id + "." + strconv.Itoa(int(index))
}

func keySafe(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '=') {
			return false
		}
	}
	return true
}

// beginAttempt records that the segment is about to be sent. It returns
// the earlier attempt when there is one: the segment must not be sent
// again.
func (s *Service) beginAttempt(ctx context.Context, key string) (*attempt, error) {
	v, err := s.encodeAttempt(attempt{State: attemptSending})
	if err != nil {
		return nil, err
	}
	_, err = s.kv.Create(ctx, key, v)
	if err == nil {
		return nil, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("record attempt: %w", err)
	}
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		// Deleted between the two calls: a concurrent attempt gave up.
		return s.beginAttempt(ctx, key)
	}
	if err != nil {
		return nil, fmt.Errorf("read attempt: %w", err)
	}
	var a attempt
	if err := json.Unmarshal(e.Value(), &a); err != nil {
		// Unreadable: assume the worst, that it may have been sent.
		a = attempt{State: attemptSending}
	}
	return &a, nil
}

// encodeAttempt is the value of an attempt record, stamped now.
func (s *Service) encodeAttempt(a attempt) ([]byte, error) {
	a.At = s.now()
	return json.Marshal(a)
}

// endAttempt records the outcome of the attempt.
func (s *Service) endAttempt(ctx context.Context, key string, a attempt) error {
	v, err := s.encodeAttempt(a)
	if err != nil {
		return err
	}
	if _, err := s.kv.Put(ctx, key, v); err != nil {
		return fmt.Errorf("record attempt outcome: %w", err)
	}
	return nil
}

// abandonAttempt forgets an attempt whose 51 was certainly not taken (not
// written, or NACKed temporarily), so that its redelivery sends it.
func (s *Service) abandonAttempt(ctx context.Context, key string) error {
	if err := s.kv.Delete(context.WithoutCancel(ctx), key); err != nil {
		return fmt.Errorf("forget attempt: %w", err)
	}
	return nil
}

// storeRef writes the correlation key of an ACKed segment, and tells
// whether the key names the segment. A key that already names another
// segment is an SCTS collision: the first stays, the collision is logged
// and counted, and no error is returned (the submit itself went well).
func (s *Service) storeRef(ctx context.Context, key string, ref segmentRef) (mine bool, err error) {
	v, err := json.Marshal(ref)
	if err != nil {
		return false, err
	}
	// A DR that overtook its ACK waits for this write rather than read the
	// bucket before it is done.
	s.beginStore(key)
	defer s.endStore(key)
	// Taken before the write, so that the cached entry never outlives the
	// bucket's key (its TTL runs from the write).
	at := s.now()
	_, err = s.kv.Create(ctx, key, v)
	if err == nil {
		s.refs.put(key, ref, at)
		return true, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return false, fmt.Errorf("store correlation: %w", err)
	}
	old, found, err := s.getRef(ctx, key)
	if err != nil {
		return false, err
	}
	if !found {
		return s.storeRef(ctx, key, ref)
	}
	if !old.sameSegment(ref) {
		s.stats.collisions.Add(1)
		s.Log.WarnContext(ctx, "smsc SCTS collision: two segments share a recipient and SCTS; the later one's DRs will not be matched",
			"message_id", ref.MessageID, "segment", ref.Index, "other_message_id", old.MessageID, "other_segment", old.Index,
			"short_code", ref.ShortCode)
		return false, nil
	}
	return true, nil
}

// findRef looks for the correlation key of a segment among its recipient's
// keys, and returns the SCTS it was stored under. It serves the rare
// redelivery of a segment whose attempt is still "sending": the ACK's
// handling stores the key and records no outcome (submitted).
func (s *Service) findRef(ctx context.Context, recipient string, ref segmentRef) (scts string, found bool, err error) {
	prefix := addrHash(recipient) + "."
	lister, err := s.kv.ListKeysFiltered(ctx, prefix+"*")
	if err != nil {
		return "", false, fmt.Errorf("look for correlation: %w", err)
	}
	defer lister.Stop()
	for key := range lister.Keys() {
		if found {
			continue // read to the end: the lister's goroutine ends once every key is sent
		}
		r, ok, err := s.getRef(ctx, key)
		if err != nil {
			return "", false, err
		}
		if ok && r.sameSegment(ref) {
			scts, found = strings.TrimPrefix(key, prefix), true
		}
	}
	return scts, found, nil
}

func (s *Service) getRef(ctx context.Context, key string) (segmentRef, bool, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return segmentRef{}, false, nil
	}
	if err != nil {
		return segmentRef{}, false, fmt.Errorf("read correlation: %w", err)
	}
	var ref segmentRef
	if err := json.Unmarshal(e.Value(), &ref); err != nil {
		return segmentRef{}, false, fmt.Errorf("read correlation: %w", err)
	}
	// Dated by the key's write, not the read: the entry goes when the key
	// does. A BUFFERED then a final DR, or a resent one, are read once.
	s.refs.put(key, ref, e.Created())
	return ref, true, nil
}

// lookupRef finds the segment of a DR's key, waiting up to DRWait for it:
// the DR can overtake the storing of its submit's ACK. A key stored or read
// here before is taken from the cache, without a read. A key being stored
// here is waited for, then taken from the cache; others are read from the
// bucket, again every 100 ms until found.
func (s *Service) lookupRef(ctx context.Context, key string) (ref segmentRef, found bool, err error) {
	read := false
	defer func() {
		if read {
			s.stats.refMisses.Add(1)
		} else if found {
			s.stats.refHits.Add(1)
		}
	}()
	now := s.now()
	if ref, ok := s.refs.get(key, now); ok {
		return ref, true, nil // the usual case, without registering a wait
	}
	deadline := now.Add(s.cfg.DRWait)
	for {
		ch, storing := s.waitRef(key)
		if ref, ok := s.refs.get(key, s.now()); ok {
			s.unwaitRef(key, ch)
			return ref, true, nil
		}
		left := deadline.Sub(s.now())
		if !storing || left <= 0 {
			read = true
			ref, found, err := s.getRef(ctx, key)
			left = deadline.Sub(s.now())
			if found || err != nil || left <= 0 {
				s.unwaitRef(key, ch)
				return ref, found, err
			}
		}
		t := time.NewTimer(min(left, 100*time.Millisecond))
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		s.unwaitRef(key, ch)
		if ctx.Err() != nil {
			return segmentRef{}, false, ctx.Err()
		}
	}
}

// waitRef registers a wait for key, woken when a write of it here ends; it
// tells whether one is under way.
func (s *Service) waitRef(key string) (chan struct{}, bool) {
	ch := make(chan struct{})
	s.waitMu.Lock()
	s.waiters[key] = append(s.waiters[key], ch)
	storing := s.storing[key] > 0
	s.waitMu.Unlock()
	return ch, storing
}

func (s *Service) unwaitRef(key string, ch chan struct{}) {
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	list := s.waiters[key]
	for i, c := range list {
		if c == ch {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.waiters, key)
	} else {
		s.waiters[key] = list
	}
}

func (s *Service) beginStore(key string) {
	s.waitMu.Lock()
	s.storing[key]++
	s.waitMu.Unlock()
}

// endStore wakes the DRs waiting for key, whether the write went well (the
// cache has it) or not (they read the bucket).
func (s *Service) endStore(key string) {
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	if s.storing[key]--; s.storing[key] <= 0 {
		delete(s.storing, key)
	}
	for _, ch := range s.waiters[key] {
		close(ch)
	}
	delete(s.waiters, key)
}
