package ucp

import (
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// The codec needs GSM 03.38 for two things only: AMsg text (IRA hex of
// unpacked septets, ucp.md §3.1) and the alphanumeric OAdC (packed septets,
// §3.3). Segmentation and character counting belong to package gsm; this is
// the minimal default-alphabet table so that ucp has no dependency on it.

const gsmEscape = 0x1b

// gsmBasic is the GSM 03.38 default alphabet, indexed by septet.
const gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
	"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"

// gsmBasicRunes returns the rune for septet c of the default alphabet.
func gsmBasicRune(c byte) rune {
	// gsmBasic is UTF-8; walk it. Called on decode only, which is not hot.
	i := 0
	for _, r := range gsmBasic {
		if i == int(c) {
			return r
		}
		i++
	}
	return utf8.RuneError
}

// gsmExtRune returns the rune for ESC c of the extension table.
func gsmExtRune(c byte) (rune, bool) {
	switch c {
	case 0x0a:
		return '\f', true
	case 0x14:
		return '^', true
	case 0x28:
		return '{', true
	case 0x29:
		return '}', true
	case 0x2f:
		return '\\', true
	case 0x3c:
		return '[', true
	case 0x3d:
		return '~', true
	case 0x3e:
		return ']', true
	case 0x40:
		return '|', true
	case 0x65:
		return '€', true
	}
	return 0, false
}

// gsmSeptet maps a rune to its septet(s): ext reports an ESC-prefixed code.
func gsmSeptet(r rune) (c byte, ext bool, ok bool) {
	switch {
	case r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		return byte(r), false, true
	}
	switch r {
	case ' ', '!', '"', '#', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
		':', ';', '<', '=', '>', '?', '\n', '\r':
		return byte(r), false, true
	case '@':
		return 0x00, false, true
	case '$':
		return 0x02, false, true
	case '_':
		return 0x11, false, true
	case '\f':
		return 0x0a, true, true
	case '^':
		return 0x14, true, true
	case '{':
		return 0x28, true, true
	case '}':
		return 0x29, true, true
	case '\\':
		return 0x2f, true, true
	case '[':
		return 0x3c, true, true
	case '~':
		return 0x3d, true, true
	case ']':
		return 0x3e, true, true
	case '|':
		return 0x40, true, true
	case '€':
		return 0x65, true, true
	}
	if r < 0x80 || r == gsmEscape {
		return 0, false, false // '`' and control characters
	}
	i := 0
	for _, b := range gsmBasic {
		if b == r {
			return byte(i), false, true
		}
		i++
	}
	return 0, false, false
}

var errNotGSM = errors.New("ucp: character not in the GSM 03.38 default alphabet")

// gsmEncode appends the unpacked septets of text to dst.
func gsmEncode(dst []byte, text string) ([]byte, error) {
	for i, r := range text {
		c, ext, ok := gsmSeptet(r)
		if !ok {
			return dst, fmt.Errorf("offset %d: %w", i, errNotGSM)
		}
		if ext {
			dst = append(dst, gsmEscape)
		}
		dst = append(dst, c)
	}
	return dst, nil
}

// gsmSeptetCount returns the number of septets text needs.
func gsmSeptetCount(text string) (int, error) {
	n := 0
	for i, r := range text {
		_, ext, ok := gsmSeptet(r)
		if !ok {
			return 0, fmt.Errorf("offset %d: %w", i, errNotGSM)
		}
		n++
		if ext {
			n++
		}
	}
	return n, nil
}

// gsmDecode turns unpacked septets into text. It never fails: an unknown
// extension code shows the default-alphabet character (03.38 says so), a
// lone ESC becomes a space, and bytes above 0x7f (operators that send
// Latin-1 in AMsg) are read as Latin-1.
func gsmDecode(b []byte) string {
	out := make([]rune, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= 0x80:
			out = append(out, rune(c))
		case c == gsmEscape:
			if i+1 == len(b) {
				out = append(out, ' ')
				continue
			}
			i++
			n := b[i]
			if r, ok := gsmExtRune(n); ok {
				out = append(out, r)
			} else if n == gsmEscape || n >= 0x80 {
				out = append(out, ' ')
			} else {
				out = append(out, gsmBasicRune(n))
			}
		default:
			out = append(out, gsmBasicRune(c))
		}
	}
	return string(out)
}

// ucs2Encode appends text as UTF-16BE.
func ucs2Encode(dst []byte, text string) []byte {
	for _, r := range text {
		if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			dst = append(dst, byte(r1>>8), byte(r1), byte(r2>>8), byte(r2))
			continue
		}
		if r > 0xffff {
			r = utf8.RuneError
		}
		dst = append(dst, byte(r>>8), byte(r))
	}
	return dst
}

// ucs2Decode reads UTF-16BE; an odd trailing byte is dropped.
func ucs2Decode(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	return string(utf16.Decode(u))
}

// alphabet is the character set a GSM DCS selects.
type alphabet uint8

const (
	alphaGSM alphabet = iota
	alpha8bit
	alphaUCS2
)

// dcsAlphabet reads the alphabet out of a GSM 03.38 data coding scheme.
func dcsAlphabet(dcs byte) alphabet {
	switch dcs >> 4 {
	case 0x0, 0x1, 0x2, 0x3, 0x4, 0x5, 0x6, 0x7: // general data coding
		if dcs&0x20 != 0 { // compressed: treat as opaque
			return alpha8bit
		}
		switch (dcs >> 2) & 3 {
		case 1:
			return alpha8bit
		case 2:
			return alphaUCS2
		}
		return alphaGSM
	case 0xc, 0xd: // message waiting, GSM
		return alphaGSM
	case 0xe: // message waiting, UCS-2
		return alphaUCS2
	case 0xf:
		if dcs&0x04 != 0 {
			return alpha8bit
		}
		return alphaGSM
	}
	return alpha8bit // reserved groups
}

// ErrNotText is returned by Text methods for binary payloads.
var ErrNotText = errors.New("ucp: message is binary data, not text")

// messageText decodes a 5x message payload as text, taking the alphabet from
// XSer DCS when present (it wins over DCs and MCLs, ucp.md §3.5–3.6).
func messageText(mt MsgType, msg []byte, x XSer) (string, error) {
	if x.HasDCS {
		switch dcsAlphabet(x.DCS) {
		case alphaUCS2:
			return ucs2Decode(msg), nil
		case alpha8bit:
			return "", ErrNotText
		}
		if mt == MTTransparent {
			return "", ErrNotText // packed 7-bit TMsg: not produced by any SMSC we know
		}
	}
	switch mt {
	case MTNumeric:
		return string(msg), nil
	case MTAlphanumeric:
		return gsmDecode(msg), nil
	case 0:
		if len(msg) == 0 {
			return "", nil
		}
	}
	return "", ErrNotText
}

// textPayload picks GSM (MT 3) when text fits the default alphabet and
// UCS-2 (MT 4, DCS 08) otherwise, the way Kannel does.
func textPayload(text string, x *XSer) (MsgType, int, []byte) {
	if n, err := gsmSeptetCount(text); err == nil {
		msg, _ := gsmEncode(make([]byte, 0, n), text)
		return MTAlphanumeric, 0, msg
	}
	msg := ucs2Encode(make([]byte, 0, 2*len(text)), text)
	x.DCS, x.HasDCS = 0x08, true
	return MTTransparent, 8 * len(msg), msg
}
