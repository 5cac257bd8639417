package gsm

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrUnencodable reports a character that has no code in the GSM 03.38
// default alphabet nor in its extension table.
var ErrUnencodable = errors.New("gsm: character not in the GSM 03.38 alphabet")

// esc is the escape to the extension table; an extension character costs
// two septets, esc then its code.
const esc = 0x1B

// basic is the GSM 03.38 (3GPP TS 23.038 §6.2.1) default alphabet indexed by
// septet. 0x09 decodes as capital Ç as 3GPP and Android do; the Unicode
// GSM0338.TXT lower-case ç reading is deliberately not used (see compliance.md
// §6). 0x1B is the escape and never decodes on its own.
var basic = [128]rune{
	'@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å',
	'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', ' ', 'Æ', 'æ', 'ß', 'É',
	' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
	'0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
	'¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
	'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§',
	'¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
	'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
}

// code returns the GSM septet for r. ext reports that r lives in the
// extension table and must be sent as esc, c.
func code(r rune) (c byte, ext, ok bool) {
	// Most of printable ASCII maps to itself; the exceptions are '$' (0x24 is
	// ¤ in GSM), '@' (0x40 is ¡), '_', '`' and the bracket/brace family.
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
		r >= ' ' && r <= '#', r >= '%' && r <= '/', r >= ':' && r <= '?',
		r == '\n', r == '\r':
		return byte(r), false, true
	}
	switch r {
	case '@':
		return 0x00, false, true
	case '£':
		return 0x01, false, true
	case '$':
		return 0x02, false, true
	case '¥':
		return 0x03, false, true
	case 'è':
		return 0x04, false, true
	case 'é':
		return 0x05, false, true
	case 'ù':
		return 0x06, false, true
	case 'ì':
		return 0x07, false, true
	case 'ò':
		return 0x08, false, true
	case 'Ç':
		return 0x09, false, true
	case 'Ø':
		return 0x0B, false, true
	case 'ø':
		return 0x0C, false, true
	case 'Å':
		return 0x0E, false, true
	case 'å':
		return 0x0F, false, true
	case 'Δ':
		return 0x10, false, true
	case '_':
		return 0x11, false, true
	case 'Φ':
		return 0x12, false, true
	case 'Γ':
		return 0x13, false, true
	case 'Λ':
		return 0x14, false, true
	case 'Ω':
		return 0x15, false, true
	case 'Π':
		return 0x16, false, true
	case 'Ψ':
		return 0x17, false, true
	case 'Σ':
		return 0x18, false, true
	case 'Θ':
		return 0x19, false, true
	case 'Ξ':
		return 0x1A, false, true
	case 'Æ':
		return 0x1C, false, true
	case 'æ':
		return 0x1D, false, true
	case 'ß':
		return 0x1E, false, true
	case 'É':
		return 0x1F, false, true
	case '¤':
		return 0x24, false, true
	case '¡':
		return 0x40, false, true
	case 'Ä':
		return 0x5B, false, true
	case 'Ö':
		return 0x5C, false, true
	case 'Ñ':
		return 0x5D, false, true
	case 'Ü':
		return 0x5E, false, true
	case '§':
		return 0x5F, false, true
	case '¿':
		return 0x60, false, true
	case 'ä':
		return 0x7B, false, true
	case 'ö':
		return 0x7C, false, true
	case 'ñ':
		return 0x7D, false, true
	case 'ü':
		return 0x7E, false, true
	case 'à':
		return 0x7F, false, true

	// Extension table (TS 23.038 §6.2.1.1).
	case '\f':
		return 0x0A, true, true
	case '^':
		return 0x14, true, true
	case '{':
		return 0x28, true, true
	case '}':
		return 0x29, true, true
	case '\\':
		return 0x2F, true, true
	case '[':
		return 0x3C, true, true
	case '~':
		return 0x3D, true, true
	case ']':
		return 0x3E, true, true
	case '|':
		return 0x40, true, true
	case '€':
		return 0x65, true, true
	}
	return 0, false, false
}

// extension decodes the septet that follows an escape.
func extension(c byte) (rune, bool) {
	switch c {
	case 0x0A:
		return '\f', true
	case 0x14:
		return '^', true
	case 0x28:
		return '{', true
	case 0x29:
		return '}', true
	case 0x2F:
		return '\\', true
	case 0x3C:
		return '[', true
	case 0x3D:
		return '~', true
	case 0x3E:
		return ']', true
	case 0x40:
		return '|', true
	case 0x65:
		return '€', true
	}
	return 0, false
}

// Septets returns the number of septets r costs in GSM-7 (1, or 2 for an
// extension-table character) and whether r is representable at all.
func Septets(r rune) (int, bool) {
	_, ext, ok := code(r)
	switch {
	case !ok:
		return 0, false
	case ext:
		return 2, true
	}
	return 1, true
}

// EncodeGSM7 converts s to unpacked septets, one per byte, with extension
// characters written as 0x1B followed by their code. It applies no
// normalisation: a character outside the alphabet is an error wrapping
// ErrUnencodable (the message names the code point, not the text, because
// message bodies may hold personal data).
func EncodeGSM7(s string) ([]byte, error) {
	out, err := AppendGSM7(make([]byte, 0, len(s)), s)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AppendGSM7 is EncodeGSM7 appending to dst, for callers that encode into a
// reused or stack buffer (the UCP codec). On error dst is returned with
// the septets of the characters before the bad one appended.
func AppendGSM7(dst []byte, s string) ([]byte, error) {
	for i, r := range s {
		c, ext, ok := code(r)
		if !ok {
			if r == utf8.RuneError {
				return dst, fmt.Errorf("encode byte %d: invalid UTF-8: %w", i, ErrUnencodable)
			}
			return dst, fmt.Errorf("encode byte %d: %U: %w", i, r, ErrUnencodable)
		}
		if ext {
			dst = append(dst, esc)
		}
		dst = append(dst, c)
	}
	return dst, nil
}

// DecodeGSM7 converts unpacked septets (one per byte) to text. It never
// fails, so that a malformed MO still yields something to log or store:
//   - a byte above 0x7F becomes U+FFFD;
//   - an escape followed by a code the extension table does not define
//     decodes as the basic-table character for that code, as TS 23.038
//     requires of receivers;
//   - escape escape (reserved for a future table) decodes as a space, also
//     per TS 23.038;
//   - a trailing lone escape is dropped.
//
// Decode concatenated parts after joining their septets, not part by part:
// some handsets do split an escape pair across parts.
func DecodeGSM7(septets []byte) string {
	var b strings.Builder
	b.Grow(len(septets))
	for i := 0; i < len(septets); i++ {
		c := septets[i]
		if c > 0x7F {
			b.WriteRune(utf8.RuneError)
			continue
		}
		if c != esc {
			b.WriteRune(basic[c])
			continue
		}
		if i+1 == len(septets) {
			break
		}
		i++
		n := septets[i]
		switch {
		case n > 0x7F:
			b.WriteRune(utf8.RuneError)
		case n == esc:
			b.WriteByte(' ')
		default:
			if r, ok := extension(n); ok {
				b.WriteRune(r)
			} else {
				b.WriteRune(basic[n])
			}
		}
	}
	return b.String()
}

// PackSeptets packs unpacked septets into the 7-bit packed form carried in a
// TP-UD field, least significant bit first. fill is the number of zero bits
// to put first so that the septets start on a septet boundary after a UDH
// (see FillBits); it is taken modulo 7.
//
// No CR padding is added when 7 spare bits remain: the caller carries the
// septet count (TP-UDL) so the receiver knows where the text ends.
func PackSeptets(septets []byte, fill int) []byte {
	fill = ((fill % 7) + 7) % 7
	nbits := fill + 7*len(septets)
	out := make([]byte, (nbits+7)/8)
	bit := fill
	for _, s := range septets {
		v := uint16(s&0x7F) << (bit % 8)
		out[bit/8] |= byte(v)
		if hi := byte(v >> 8); hi != 0 {
			out[bit/8+1] |= hi
		}
		bit += 7
	}
	return out
}

// UnpackSeptets is the inverse of PackSeptets: it reads n septets after fill
// bits. It returns fewer than n septets if packed is too short.
func UnpackSeptets(packed []byte, n, fill int) []byte {
	fill = ((fill % 7) + 7) % 7
	if n < 0 {
		n = 0
	}
	if avail := (8*len(packed) - fill) / 7; n > avail {
		n = max(avail, 0)
	}
	out := make([]byte, n)
	bit := fill
	for i := range out {
		v := uint16(packed[bit/8])
		if bit/8+1 < len(packed) {
			v |= uint16(packed[bit/8+1]) << 8
		}
		out[i] = byte(v>>(bit%8)) & 0x7F
		bit += 7
	}
	return out
}

// FillBits returns the number of fill bits needed after a UDH of udhLen
// octets (including its length octet) so that GSM-7 text starts on a septet
// boundary: 1 for the 6-octet concatenation header.
func FillBits(udhLen int) int {
	return (7 - (8*udhLen)%7) % 7
}
