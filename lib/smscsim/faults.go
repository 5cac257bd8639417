package smscsim

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"pushsms.io/lib/ucp"
)

// Faults are knobs for failure tests; set them with SetFaults or PUT /faults.
// Rates are fractions in [0, 1] drawn per event.
type Faults struct {
	AckDelay    time.Duration // delay every result to a 51
	AckJitter   time.Duration // plus a random delay in [0, AckJitter)
	DropSubmits bool          // never answer 51s (the client sees timeouts)
	NackSubmits ucp.ErrorCode // NACK every 51 with this code when non-zero
	DropMOACKs  bool          // ignore the client's results to our 52/53 (forces resends)
	// NackRate NACKs this fraction of 51s with NackCode (default 04): a
	// NACK storm, e.g. 0.3 with 04 for an SMSC shedding load.
	NackRate float64
	NackCode ucp.ErrorCode
	// DropAckRate is the fraction of accepted 51s whose ACK is lost: the
	// message is processed and its DRs follow, but the client sees a
	// timeout (and may resend: a duplicate at the handset).
	DropAckRate float64
	// GarbageRate is the fraction of frames the SMSC sends (results, 52,
	// 53) that are preceded by garbage: junk bytes outside STX…ETX, a
	// framed chunk with an unparsable header, or, before a result, a copy
	// of it with a wrong checksum. A robust client skips all three.
	GarbageRate float64
}

// faultsJSON is the wire form of Faults: durations as Go strings ("250ms"),
// codes as numbers or two-digit strings ("04").
type faultsJSON struct {
	AckDelay    string   `json:"ack_delay"`
	AckJitter   string   `json:"ack_jitter"`
	DropSubmits bool     `json:"drop_submits"`
	NackSubmits jsonCode `json:"nack_submits"`
	DropMOACKs  bool     `json:"drop_mo_acks"`
	NackRate    float64  `json:"nack_rate"`
	NackCode    jsonCode `json:"nack_code"`
	DropAckRate float64  `json:"drop_ack_rate"`
	GarbageRate float64  `json:"garbage_rate"`
}

type jsonCode ucp.ErrorCode

func (c jsonCode) MarshalJSON() ([]byte, error) {
	return []byte(strconv.Quote(fmt.Sprintf("%02d", int(c)))), nil
}

func (c *jsonCode) UnmarshalJSON(b []byte) error {
	s := string(b)
	if uq, err := strconv.Unquote(s); err == nil {
		s = uq
	}
	if s == "" || s == "null" {
		*c = 0
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 99 {
		return fmt.Errorf("smscsim: error code %s: want 0-99", b)
	}
	*c = jsonCode(n)
	return nil
}

// MarshalJSON writes the wire form documented in the package.
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsJSON{
		AckDelay: f.AckDelay.String(), AckJitter: f.AckJitter.String(), DropSubmits: f.DropSubmits,
		NackSubmits: jsonCode(f.NackSubmits), DropMOACKs: f.DropMOACKs, NackRate: f.NackRate,
		NackCode: jsonCode(f.NackCode), DropAckRate: f.DropAckRate, GarbageRate: f.GarbageRate,
	})
}

// UnmarshalJSON reads the wire form; absent fields are zero (no fault).
func (f *Faults) UnmarshalJSON(b []byte) error {
	var w faultsJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	var out Faults
	for _, d := range []struct {
		s   string
		dst *time.Duration
		key string
	}{{w.AckDelay, &out.AckDelay, "ack_delay"}, {w.AckJitter, &out.AckJitter, "ack_jitter"}} {
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil || v < 0 {
			return fmt.Errorf("smscsim: %s %q: want a duration like 250ms", d.key, d.s)
		}
		*d.dst = v
	}
	for _, r := range []struct {
		v   float64
		key string
	}{{w.NackRate, "nack_rate"}, {w.DropAckRate, "drop_ack_rate"}, {w.GarbageRate, "garbage_rate"}} {
		if r.v < 0 || r.v > 1 {
			return fmt.Errorf("smscsim: %s %v: want a fraction in [0, 1]", r.key, r.v)
		}
	}
	out.DropSubmits, out.DropMOACKs = w.DropSubmits, w.DropMOACKs
	out.NackSubmits, out.NackCode = ucp.ErrorCode(w.NackSubmits), ucp.ErrorCode(w.NackCode)
	out.NackRate, out.DropAckRate, out.GarbageRate = w.NackRate, w.DropAckRate, w.GarbageRate
	*f = out
	return nil
}

// Faults returns the current fault knobs.
func (s *Sim) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// garbage returns junk to send before frame (nil most of the time), per
// Faults.GarbageRate, and counts it for acc.
func (s *Sim) garbage(acc *account, frame []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults.GarbageRate <= 0 || s.rng.Float64() >= s.faults.GarbageRate {
		return nil
	}
	if acc != nil {
		acc.stats.Garbage++
	}
	kind := s.rng.IntN(3)
	// A corrupt copy only of a result: a corrupt operation would be
	// NACKed by the client on the TRN of the real one.
	isResult := len(frame) > 12 && frame[10] == 'R'
	switch {
	case kind == 0:
		return []byte("\r\n\x00\xffgarbage-outside-a-frame\r\n")
	case kind == 1 || !isResult:
		return []byte("\x02zz/00019/Q/xx/junk\x03")
	default:
		bad := append([]byte{}, frame...)
		// Swap the checksum's two hex digits and bump one; never valid.
		n := len(bad)
		bad[n-3], bad[n-2] = bad[n-2], bad[n-3]^0x01
		if bad[n-3] == frame[n-3] && bad[n-2] == frame[n-2] {
			bad[n-2] ^= 0x02
		}
		return bad
	}
}
