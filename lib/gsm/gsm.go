// Package gsm provides SMS text encoding and segmentation: the GSM 03.38
// (3GPP TS 23.038) 7-bit default alphabet with its extension table, UCS-2
// (UTF-16BE, surrogate pairs kept whole), and the concatenation header.
//
// Analyze is the one place that decides encoding and counts septets, code
// units and parts. Preview, splitting, throttling and billing must all call
// it (Split does) so that the number of parts a customer is shown is the
// number the SMSC receives and the ledger charges.
package gsm

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Size limits of the TP-UD field (140 octets), per TS 23.038 §6.1.2 and
// TS 23.040. The concatenated limits leave room for the 6-octet UDH with an
// 8-bit reference (05 00 03 ref total seq).
const (
	MaxSeptets         = 160
	MaxSeptetsConcat   = 153
	MaxUCS2Units       = 70
	MaxUCS2UnitsConcat = 67
	MaxOctets          = 140
	MaxOctetsConcat    = 134
	MaxParts           = 255 // the 8-bit total field of the concatenation IE
)

const (
	concatHeaderLen     = 6
	concatIEI8          = 0x00
	concatIEI16         = 0x08
	concatIELen8        = 3
	concatIELen16       = 4
	utf16SurrogateWidth = 2
)

// ErrTooLong reports a message that needs more than MaxParts parts.
var ErrTooLong = errors.New("gsm: message needs more than 255 parts")

// Encoding is the character set of a message.
type Encoding int

// The encodings. Binary is never chosen by Analyze; it exists for SplitBinary
// and for callers that carry 8-bit data. The values are the partner API's
// (pushsms.partner.v1.Encoding, 0 = unspecified), so a conversion between
// the two is a type conversion.
const (
	GSM7 Encoding = iota + 1
	UCS2
	Binary
)

func (e Encoding) String() string {
	switch e {
	case GSM7:
		return "GSM7"
	case UCS2:
		return "UCS2"
	case Binary:
		return "Binary"
	}
	return fmt.Sprintf("Encoding(%d)", int(e))
}

// DCS returns the TP-DCS value for the encoding (general data coding, no
// message class): 0x00, 0x08 or 0x04.
func (e Encoding) DCS() byte {
	switch e {
	case UCS2:
		return 0x08
	case Binary:
		return 0x04
	}
	return 0x00
}

// limits returns the per-message and per-part capacity in the encoding's
// unit (septets, UTF-16 code units or octets).
func (e Encoding) limits() (single, concat int) {
	switch e {
	case UCS2:
		return MaxUCS2Units, MaxUCS2UnitsConcat
	case Binary:
		return MaxOctets, MaxOctetsConcat
	}
	return MaxSeptets, MaxSeptetsConcat
}

// Analysis is what a message will cost once sent.
type Analysis struct {
	Encoding Encoding
	// Text is the text that will be sent: the input after Policy
	// normalisation when that made it fit GSM-7, otherwise the input as is
	// (invalid UTF-8 replaced by U+FFFD).
	Text string
	// Normalised reports that Text differs from the input.
	Normalised bool
	// Length is in septets for GSM7 (extension characters count 2) and in
	// UTF-16 code units for UCS2 (characters outside the BMP count 2).
	Length int
	// Segments is the number of parts, at least 1 (an empty message is
	// still one SMS).
	Segments int
	// Remaining is how many more units fit in the last part without adding
	// one; a 2-unit character may not fit even when Remaining is 1.
	Remaining int
	// UCS2Chars lists, once each and in order of first appearance, the
	// characters that forced UCS-2 (after any normalisation the policy
	// allows). Nil for GSM7.
	UCS2Chars []rune
}

// Analyze chooses the encoding of text under p and counts its length and
// parts.
func Analyze(text string, p Policy) Analysis {
	a := analyze(text, p)
	a.Normalised = a.Text != text
	return a
}

func analyze(text string, p Policy) Analysis {
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, string(utf8.RuneError))
	}
	if n, ok := gsmLength(text); ok {
		return finish(Analysis{Encoding: GSM7, Text: text, Length: n})
	}
	blocking := text
	if p.rewrites() {
		norm := normalise(text, p)
		if n, ok := gsmLength(norm); ok {
			return finish(Analysis{Encoding: GSM7, Text: norm, Length: n})
		}
		blocking = norm
	}
	a := Analysis{Encoding: UCS2, Text: text, UCS2Chars: unencodable(blocking)}
	for _, r := range text {
		a.Length += utf16Width(r)
	}
	return finish(a)
}

// finish fills Segments and Remaining by laying text out the way Split does.
func finish(a Analysis) Analysis {
	single, concat := a.Encoding.limits()
	if a.Length <= single {
		a.Segments, a.Remaining = 1, single-a.Length
		return a
	}
	var l layout
	l.limit = concat
	for _, r := range a.Text {
		l.add(a.width(r))
	}
	a.Segments, a.Remaining = l.parts, concat-l.used
	return a
}

func (a Analysis) width(r rune) int {
	if a.Encoding == UCS2 {
		return utf16Width(r)
	}
	n, _ := Septets(r)
	return n
}

// layout fills parts greedily, never splitting a unit of width 2 (an escape
// pair or a surrogate pair) across two parts.
type layout struct {
	limit int
	parts int
	used  int
}

// add places a character of width w and reports whether it opens a new part.
func (l *layout) add(w int) bool {
	if l.parts == 0 || l.used+w > l.limit {
		l.parts++
		l.used = w
		return true
	}
	l.used += w
	return false
}

func gsmLength(s string) (int, bool) {
	n := 0
	for _, r := range s {
		w, ok := Septets(r)
		if !ok {
			return 0, false
		}
		n += w
	}
	return n, true
}

func utf16Width(r rune) int {
	if r >= 0x10000 {
		return utf16SurrogateWidth
	}
	return 1
}

func unencodable(s string) []rune {
	var out []rune
	seen := make(map[rune]bool)
	for _, r := range s {
		if _, ok := Septets(r); ok || seen[r] {
			continue
		}
		seen[r] = true
		out = append(out, r)
	}
	return out
}

// Segment is one part of a message, ready for the SMSC.
type Segment struct {
	// Index is the 1-based part number, as carried in the UDH; Count is the
	// number of parts.
	Index, Count int
	Encoding     Encoding
	// UserData is unpacked septets one per byte for GSM7 (an extension
	// character is 0x1B then its code; never split), UTF-16BE for UCS2,
	// raw octets for Binary.
	UserData []byte
	// UDH is the whole user data header including its length octet
	// (05 00 03 ref total seq) when Count > 1, empty otherwise.
	UDH []byte
}

// Split analyses text under p and cuts it into parts. ref is the
// concatenation reference shared by the parts; the caller picks it (per
// destination, incrementing) so that a handset does not merge two messages.
func Split(text string, p Policy, ref uint8) ([]Segment, Analysis, error) {
	a := Analyze(text, p)
	if a.Segments > MaxParts {
		return nil, a, fmt.Errorf("split into %d parts: %w", a.Segments, ErrTooLong)
	}
	var units [][]byte
	switch a.Encoding {
	case GSM7:
		septets, err := EncodeGSM7(a.Text)
		if err != nil {
			return nil, a, fmt.Errorf("gsm: analysed text does not encode: %w", err)
		}
		units = splitGSM7(septets)
	case UCS2:
		units = splitUCS2(a.Text)
	}
	if len(units) != a.Segments {
		// The counter and the splitter disagree: billing would be wrong.
		return nil, a, fmt.Errorf("gsm: split into %d parts but counted %d", len(units), a.Segments)
	}
	return segments(units, a.Encoding, ref), a, nil
}

func splitGSM7(septets []byte) [][]byte {
	single, concat := GSM7.limits()
	if len(septets) <= single {
		return [][]byte{septets}
	}
	l := layout{limit: concat}
	var parts [][]byte
	start := 0
	for i := 0; i < len(septets); {
		w := 1
		if septets[i] == esc {
			w = 2
		}
		if l.add(w) && i > 0 {
			parts = append(parts, septets[start:i])
			start = i
		}
		i += w
	}
	return append(parts, septets[start:])
}

func splitUCS2(text string) [][]byte {
	units := make([]uint16, 0, len(text))
	for _, r := range text {
		if r >= 0x10000 {
			hi, lo := utf16.EncodeRune(r)
			units = append(units, uint16(hi), uint16(lo))
		} else {
			units = append(units, uint16(r))
		}
	}
	single, concat := UCS2.limits()
	l := layout{limit: single}
	if len(units) > single {
		l.limit = concat
	}
	var parts [][]byte
	var cur []byte
	for i := 0; i < len(units); {
		w := 1
		if utf16.IsSurrogate(rune(units[i])) {
			w = 2
		}
		if l.add(w) && i > 0 {
			parts = append(parts, cur)
			cur = nil
		}
		for _, u := range units[i : i+w] {
			cur = append(cur, byte(u>>8), byte(u))
		}
		i += w
	}
	return append(parts, cur)
}

// SplitBinary cuts 8-bit data into parts of MaxOctets, or MaxOctetsConcat
// with a concatenation header.
func SplitBinary(data []byte, ref uint8) ([]Segment, error) {
	var units [][]byte
	if len(data) <= MaxOctets {
		units = [][]byte{data}
	} else {
		for len(data) > 0 {
			n := min(len(data), MaxOctetsConcat)
			units = append(units, data[:n])
			data = data[n:]
		}
	}
	if len(units) > MaxParts {
		return nil, fmt.Errorf("split binary into %d parts: %w", len(units), ErrTooLong)
	}
	return segments(units, Binary, ref), nil
}

func segments(units [][]byte, e Encoding, ref uint8) []Segment {
	out := make([]Segment, len(units))
	for i, u := range units {
		out[i] = Segment{Index: i + 1, Count: len(units), Encoding: e, UserData: u}
		if len(units) > 1 {
			out[i].UDH = []byte{concatHeaderLen - 1, concatIEI8, concatIELen8, ref, byte(len(units)), byte(i + 1)}
		}
	}
	return out
}

// Concat is the concatenation information element of a received part.
type Concat struct {
	Ref          uint16 // 8- or 16-bit reference
	Total, Index int    // Index is 1-based
}

// ParseConcat finds the concatenation IE (8-bit IEI 00 or 16-bit IEI 08) in
// a UDH, length octet included, as received in an MO or a delivery. It
// reports false when the UDH is malformed or holds no valid concatenation IE
// (total 0, or index outside 1..total).
func ParseConcat(udh []byte) (Concat, bool) {
	if len(udh) == 0 || int(udh[0]) != len(udh)-1 {
		return Concat{}, false
	}
	ies := udh[1:]
	for len(ies) >= 2 {
		iei, l := ies[0], int(ies[1])
		if len(ies) < 2+l {
			return Concat{}, false
		}
		v := ies[2 : 2+l]
		var c Concat
		switch {
		case iei == concatIEI8 && l == concatIELen8:
			c = Concat{Ref: uint16(v[0]), Total: int(v[1]), Index: int(v[2])}
		case iei == concatIEI16 && l == concatIELen16:
			c = Concat{Ref: uint16(v[0])<<8 | uint16(v[1]), Total: int(v[2]), Index: int(v[3])}
		default:
			ies = ies[2+l:]
			continue
		}
		if c.Total == 0 || c.Index == 0 || c.Index > c.Total {
			return Concat{}, false
		}
		return c, true
	}
	return Concat{}, false
}
