package ucp

import (
	"fmt"
	"strings"

	"pushsms.io/lib/gsm"
)

// OTOA values (5x field 29).
const (
	OTOAInternational = "1139"
	OTOAAlphanumeric  = "5039"
)

// maxAlphaSeptets is the alphanumeric OAdC limit: 11 characters, i.e. at
// most 22 hex characters on the wire (ucp.md §3.3).
const maxAlphaSeptets = 11

// appendAlphanumeric appends the OTOA 5039 form of sender: a length octet
// counting the useful semi-octets, ceil(7n/4), then the GSM 03.40 packed
// septets, all in upper-case hex. It does not allocate.
func appendAlphanumeric(dst []byte, sender string) ([]byte, error) {
	if strings.ContainsAny(sender, "\r\n\f") {
		return dst, fmt.Errorf("alphanumeric OAdC: control character: %w", ErrField)
	}
	var buf [2 * maxAlphaSeptets]byte
	septets, err := gsm.AppendGSM7(buf[:0], sender)
	if err != nil {
		return dst, fmt.Errorf("alphanumeric OAdC: %w: %w", err, ErrField)
	}
	n := len(septets)
	if n > maxAlphaSeptets {
		return dst, fmt.Errorf("alphanumeric OAdC: %d septets, at most %d: %w", n, maxAlphaSeptets, ErrField)
	}
	l := byte((7*n + 3) / 4)
	dst = append(dst, hexUpper[l>>4], hexUpper[l&0x0f])
	var acc uint32
	bits := 0
	for _, c := range septets {
		acc |= uint32(c&0x7f) << bits
		bits += 7
		for bits >= 8 {
			o := byte(acc)
			dst = append(dst, hexUpper[o>>4], hexUpper[o&0x0f])
			acc >>= 8
			bits -= 8
		}
	}
	if bits > 0 {
		o := byte(acc)
		dst = append(dst, hexUpper[o>>4], hexUpper[o&0x0f])
	}
	return dst, nil
}

// decodeAlphanumeric reverses appendAlphanumeric. The character count is
// floor(nibbles*4/7) as Wireshark and Perl compute it, capped by the octets
// actually present. Encoders that write 2×octets as the length (go-gsm) make
// that count one too high when 7 padding bits are left; go-gsm fills them
// with CR, so trailing CRs are stripped (case C12). A trailing '@' is kept:
// zero padding read the same way would also give one, but it is exactly the
// spec encoding of a sender of 8, 16, … characters ending in '@', and the
// spec encoding wins.
func decodeAlphanumeric(s string) (string, error) {
	if len(s) < 2 || len(s)%2 != 0 {
		return "", fmt.Errorf("alphanumeric OAdC length %d: %w", len(s), ErrSyntax)
	}
	var buf [128]byte
	if len(s)/2 > len(buf) {
		return "", fmt.Errorf("alphanumeric OAdC length %d: %w", len(s), ErrSyntax)
	}
	b := buf[:len(s)/2]
	if !decodeHexInto(b, s) {
		return "", fmt.Errorf("alphanumeric OAdC: hex: %w", ErrSyntax)
	}
	nibbles, packed := int(b[0]), b[1:]
	n := nibbles * 4 / 7
	if most := len(packed) * 8 / 7; n > most {
		n = most
	}
	var septets [146]byte
	for i := 0; i < n; i++ {
		bit := 7 * i
		v := uint16(packed[bit/8])
		if bit/8+1 < len(packed) {
			v |= uint16(packed[bit/8+1]) << 8
		}
		septets[i] = byte(v>>(bit%8)) & 0x7f
	}
	text := gsmDecode(septets[:n])
	return strings.TrimRight(text, "\r"), nil
}
