package smsclink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"pushsms.io/lib/gsm"
)

// Parts of a concatenated MO wait for each other in the SMSC_SUBMITTED
// bucket (a bucket of their own would need lib/bus), under
//
//	mo.<hash(originator)>.<short code>.<ref>.<index>
//
// with the bucket's TTL. Each 52 is ACKed once its part is stored; the
// part that completes the set publishes one MobileOriginated with the
// texts joined in order, then the parts are deleted. Its id is
// mo/<short code>/<hash(originator)>/<SCTS of part 1>-<ref>: the last part
// delivered again (our ACK lost) finds the set complete again, or the parts
// gone and waits alone; the Nats-Msg-Id keeps it from being stored twice
// within the stream's duplicate window.
//
// The reference is 8 or 16 bits and a phone reuses it, so parts older than
// moPartMaxAge are not taken for parts of a new message with the same
// reference: they are overwritten or ignored, and expire with the bucket.
const moPartMaxAge = time.Hour

// moPart is the value of a part's key.
type moPart struct {
	Text  string    `json:"text"`
	SCTS  string    `json:"scts"`
	Total int       `json:"total"`
	At    time.Time `json:"at"`
}

func moPartPrefix(shortCode, originator string, c gsm.Concat) string {
	return "mo." + addrHash(originator) + "." + shortCode + "." + strconv.Itoa(int(c.Ref)) + "."
}

// storeMOPart stores one part and reports whether the set is complete;
// then it returns the whole message: the joined text and part 1's SCTS.
func (s *Service) storeMOPart(ctx context.Context, shortCode, originator string, c gsm.Concat, p moPart) (moPart, bool, error) {
	prefix := moPartPrefix(shortCode, originator, c)
	p.At = s.now()
	v, err := json.Marshal(p)
	if err != nil {
		return moPart{}, false, err
	}
	if _, err := s.kv.Put(ctx, prefix+strconv.Itoa(c.Index), v); err != nil {
		return moPart{}, false, fmt.Errorf("store MO part: %w", err)
	}
	s.stats.moParts.Add(1)
	var text strings.Builder
	var first moPart
	for i := 1; i <= c.Total; i++ {
		part := p
		if i != c.Index {
			e, err := s.kv.Get(ctx, prefix+strconv.Itoa(i))
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				return moPart{}, false, nil
			}
			if err != nil {
				return moPart{}, false, fmt.Errorf("read MO part: %w", err)
			}
			if err := json.Unmarshal(e.Value(), &part); err != nil || part.Total != c.Total || s.now().Sub(part.At) > moPartMaxAge {
				// Another message's part (or garbage): not this one's.
				return moPart{}, false, nil
			}
		}
		if i == 1 {
			first = part
		}
		text.WriteString(part.Text)
	}
	return moPart{Text: text.String(), SCTS: first.SCTS, Total: c.Total}, true, nil
}

// deleteMOParts forgets a published set, so that its reference can be
// used again. Failing is logged: the parts expire with the bucket.
func (s *Service) deleteMOParts(ctx context.Context, shortCode, originator string, c gsm.Concat) {
	prefix := moPartPrefix(shortCode, originator, c)
	for i := 1; i <= c.Total; i++ {
		if err := s.kv.Delete(context.WithoutCancel(ctx), prefix+strconv.Itoa(i)); err != nil {
			s.Log.WarnContext(ctx, "smsc MO part not deleted", "short_code", shortCode, "err", err)
			return
		}
	}
}
