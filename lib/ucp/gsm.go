package ucp

import (
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"pushsms.io/lib/gsm"
)

// The codec needs GSM 03.38 for two things only: AMsg text (IRA hex of
// unpacked septets, ucp.md §3.1) and the alphanumeric OAdC (packed septets,
// §3.3). The alphabet itself is package gsm's, the one table of the
// repository; what is UCP-specific stays here: the Latin-1 reading of AMsg
// bytes above 0x7F, and '?' for characters a notification text cannot carry.

// gsmDecode turns unpacked septets into text. It never fails: septets read
// as gsm.DecodeGSM7 reads them (an unknown extension code shows the
// default-alphabet character, ESC ESC a space, a lone trailing ESC
// nothing), and bytes above 0x7F, which operators that send Latin-1 in
// AMsg produce, read as Latin-1 rather than U+FFFD. An ESC just before
// such a byte escapes nothing and is dropped.
func gsmDecode(b []byte) string {
	i := indexHigh(b)
	if i < 0 {
		return gsm.DecodeGSM7(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	for i >= 0 {
		sb.WriteString(gsm.DecodeGSM7(b[:i]))
		sb.WriteRune(rune(b[i]))
		b = b[i+1:]
		i = indexHigh(b)
	}
	sb.WriteString(gsm.DecodeGSM7(b))
	return sb.String()
}

// indexHigh returns the index of the first byte above 0x7F, or -1.
func indexHigh(b []byte) int {
	for i, c := range b {
		if c > 0x7f {
			return i
		}
	}
	return -1
}

// gsmText returns the septets of text for a notification, with '?' for
// every character outside the default alphabet and its extension table.
func gsmText(text string) []byte {
	if msg, err := gsm.AppendGSM7(make([]byte, 0, len(text)), text); err == nil {
		return msg
	}
	text = strings.Map(func(r rune) rune {
		if _, ok := gsm.Septets(r); ok {
			return r
		}
		return '?'
	}, strings.ToValidUTF8(text, "?"))
	msg, _ := gsm.AppendGSM7(make([]byte, 0, len(text)), text)
	return msg
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
	if msg, err := gsm.AppendGSM7(make([]byte, 0, len(text)), text); err == nil {
		return MTAlphanumeric, 0, msg
	}
	msg := ucs2Encode(make([]byte, 0, 2*len(text)), text)
	x.DCS, x.HasDCS = 0x08, true
	return MTTransparent, 8 * len(msg), msg
}
