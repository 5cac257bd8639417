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

// The hex of an alphanumeric OAdC we decode holds at most maxAlphaOctets
// octets, the length octet included, hence at most maxAlphaDecoded septets.
const (
	maxAlphaOctets  = 128
	maxAlphaDecoded = 146 // (maxAlphaOctets-1)*8/7
)

// decodeAlphanumeric reverses appendAlphanumeric. The character count is
// floor(nibbles*4/7) as Wireshark and Perl compute it, capped by the octets
// actually present. Encoders that write 2×octets as the length (go-gsm) make
// that count one too high when 7 padding bits are left; go-gsm fills them
// with CR, so trailing CRs are stripped (case C12). A trailing '@' is kept:
// zero padding read the same way would also give one, but it is exactly the
// spec encoding of a sender of 8, 16, … characters ending in '@', and the
// spec encoding wins.
func decodeAlphanumeric(s string) (string, error) {
	var septets [maxAlphaDecoded]byte
	n, err := unpackAlphanumeric(&septets, s)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(gsmDecode(septets[:n]), "\r"), nil
}

// appendAlphanumericASCII is decodeAlphanumeric for the common sender made
// only of characters that GSM 03.38 and ASCII code alike (letters, digits,
// space and most punctuation): it appends the text to dst without
// allocating, so that the caller can place it next to other strings in one
// allocation. ok is false, with dst unchanged, when some character needs
// the full decoder.
func appendAlphanumericASCII[T string | []byte](dst []byte, s T) (_ []byte, ok bool, err error) {
	var septets [maxAlphaDecoded]byte
	n, err := unpackAlphanumeric(&septets, s)
	if err != nil {
		return dst, false, err
	}
	for n > 0 && septets[n-1] == '\r' {
		n--
	}
	for _, c := range septets[:n] {
		if !asciiSeptet(c) {
			return dst, false, nil
		}
	}
	return append(dst, septets[:n]...), true, nil
}

// asciiSeptet reports whether septet c decodes to the ASCII byte c.
func asciiSeptet(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c >= ' ' && c <= '#' || c >= '%' && c <= '/' || c >= ':' && c <= '?' || c == '\n' || c == '\r'
}

// unpackAlphanumeric turns the hex of an alphanumeric OAdC into unpacked
// septets and returns their count (see decodeAlphanumeric).
func unpackAlphanumeric[T string | []byte](septets *[maxAlphaDecoded]byte, s T) (int, error) {
	if len(s) < 2 || len(s)%2 != 0 || len(s)/2 > maxAlphaOctets {
		return 0, fmt.Errorf("alphanumeric OAdC length %d: %w", len(s), ErrSyntax)
	}
	var buf [maxAlphaOctets]byte
	b := buf[:len(s)/2]
	if !decodeHexInto(b, s) {
		return 0, fmt.Errorf("alphanumeric OAdC: hex: %w", ErrSyntax)
	}
	nibbles, packed := int(b[0]), b[1:]
	n := nibbles * 4 / 7
	if most := len(packed) * 8 / 7; n > most {
		n = most
	}
	for i := 0; i < n; i++ {
		bit := 7 * i
		v := uint16(packed[bit/8])
		if bit/8+1 < len(packed) {
			v |= uint16(packed[bit/8+1]) << 8
		}
		septets[i] = byte(v>>(bit%8)) & 0x7f
	}
	return n, nil
}
