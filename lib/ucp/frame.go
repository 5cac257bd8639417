package ucp

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"strings"
)

// Framing bytes.
const (
	STX = 0x02
	ETX = 0x03
)

// headerLen is "TT/LLLLL/O/OT/"; a frame body is headerLen + data + 2 checksum chars.
const headerLen = 14

// maxFields bounds the number of data fields we split, so that hostile input
// cannot make us allocate per slash. The largest layout (5x) has 33.
const maxFields = 64

// maxLEN is the largest value the 5-digit LEN field can hold.
const maxLEN = 99999

// Kind tells an operation (request) from a result (response).
type Kind byte

const (
	KindOperation Kind = 'O'
	KindResult    Kind = 'R'
)

// OT is a UCP operation type.
type OT uint8

const (
	OTCall              OT = 1
	OTMultiCall         OT = 2
	OTCallSupplementary OT = 3
	OTTransfer          OT = 30
	OTAlert             OT = 31
	OTSubmit            OT = 51
	OTDeliver           OT = 52
	OTNotification      OT = 53
	OTModify            OT = 54
	OTInquiry           OT = 55
	OTDelete            OT = 56
	OTResponseInquiry   OT = 57
	OTResponseDelete    OT = 58
	OTSession           OT = 60
	OTProvisioning      OT = 61
)

func (o OT) String() string { return string(twoDigits(int(o))) }

// resultHasMVP reports whether the positive result of this OT carries the
// MVP field (A/MVP/SM) rather than A/SM (ucp.md §1.4).
func (o OT) resultHasMVP() bool { return o == OTTransfer || (o >= 50 && o <= 59) }

// Header is the parsed frame header.
type Header struct {
	TRN  uint8 // 0–99
	Len  int   // LEN field as received
	Kind Kind
	OT   OT
}

// Message is anything that can be the data part of a frame: one of the
// operation types (*Submit, *Deliver, *Notification, *Login, *Alert, *Call,
// *Op5x, *RawOp) or a *Result.
type Message interface {
	Kind() Kind
	OpType() OT
	appendData(dst []byte) ([]byte, error)
}

// Frame is a decoded frame.
type Frame struct {
	TRN uint8
	Msg Message
}

// Kind returns the kind of the frame's message.
func (f Frame) Kind() Kind { return f.Msg.Kind() }

// OT returns the frame's operation type.
func (f Frame) OT() OT { return f.Msg.OpType() }

// AppendFrame appends the complete frame (STX … ETX) for m with the given
// TRN to dst. It does not allocate when dst has enough capacity.
func AppendFrame(dst []byte, trn uint8, m Message) ([]byte, error) {
	if trn > 99 {
		return dst, fmt.Errorf("encode TRN %d: %w", trn, ErrField)
	}
	k := m.Kind()
	if k != KindOperation && k != KindResult {
		return dst, fmt.Errorf("encode kind %q: %w", byte(k), ErrField)
	}
	ot := m.OpType()
	if ot > 99 {
		return dst, fmt.Errorf("encode OT %d: %w", ot, ErrField)
	}
	orig := len(dst)
	dst = append(dst, STX)
	start := len(dst)
	dst = appendTwoDigits(dst, int(trn))
	dst = append(dst, "/00000/"...)
	dst = append(dst, byte(k), '/')
	dst = appendTwoDigits(dst, int(ot))
	dst = append(dst, '/')
	dst, err := m.appendData(dst)
	if err != nil {
		return dst[:orig], fmt.Errorf("encode OT %s: %w", ot, err)
	}
	n := len(dst) - start + 2
	if n > maxLEN {
		return dst[:orig], fmt.Errorf("encode OT %s: LEN %d: %w", ot, n, ErrField)
	}
	for i, p := 4, n; i >= 0; i-- {
		dst[start+3+i] = byte('0' + p%10)
		p /= 10
	}
	sum := checksum(dst[start:])
	dst = append(dst, hexUpper[sum>>4], hexUpper[sum&0x0f], ETX)
	return dst, nil
}

// ParseHeader checks the framing and header syntax of frame (STX … ETX
// included) and returns the header. It does not verify LEN or the checksum,
// so that a receiver can still answer an operation with a corrupted body
// (NACK 01, conformance case C21). Decode does the full validation.
func ParseHeader(frame []byte) (Header, error) {
	var h Header
	if len(frame) < 2 || frame[0] != STX || frame[len(frame)-1] != ETX {
		return h, ErrFraming
	}
	body := frame[1 : len(frame)-1]
	if len(body) < headerLen+2 {
		return h, fmt.Errorf("header: short frame: %w", ErrSyntax)
	}
	if body[2] != '/' || body[8] != '/' || body[10] != '/' || body[13] != '/' {
		return h, fmt.Errorf("header: separators: %w", ErrSyntax)
	}
	trn, ok := parseDigits(body[0:2])
	if !ok {
		return h, fmt.Errorf("header: TRN: %w", ErrSyntax)
	}
	n, ok := parseDigits(body[3:8])
	if !ok {
		return h, fmt.Errorf("header: LEN: %w", ErrSyntax)
	}
	k := Kind(body[9])
	if k != KindOperation && k != KindResult {
		return h, fmt.Errorf("header: O/R: %w", ErrSyntax)
	}
	ot, ok := parseDigits(body[11:13])
	if !ok {
		return h, fmt.Errorf("header: OT: %w", ErrSyntax)
	}
	h = Header{TRN: uint8(trn), Len: n, Kind: k, OT: OT(ot)}
	return h, nil
}

// checkFrame validates the whole frame and returns the header and the data
// part: the fields with their trailing slashes, without the checksum.
func checkFrame(frame []byte) (Header, []byte, error) {
	h, err := ParseHeader(frame)
	if err != nil {
		return h, nil, err
	}
	body := frame[1 : len(frame)-1]
	if h.Len != len(body) {
		return h, nil, fmt.Errorf("header: LEN %d for %d characters: %w", h.Len, len(body), ErrLength)
	}
	if body[len(body)-3] != '/' {
		return h, nil, fmt.Errorf("checksum separator: %w", ErrSyntax)
	}
	hi, ok1 := unhex(body[len(body)-2])
	lo, ok2 := unhex(body[len(body)-1])
	if !ok1 || !ok2 {
		return h, nil, fmt.Errorf("checksum digits: %w", ErrChecksum)
	}
	if checksum(body[:len(body)-2]) != hi<<4|lo {
		return h, nil, ErrChecksum
	}
	return h, body[headerLen : len(body)-2], nil
}

// dataString returns data as a string, the one allocation that every field
// of the frame shares. For a 5x operation with an alphanumeric OAdC, the
// decoded sender goes into the same allocation when it is plain ASCII.
func dataString(h Header, data []byte, ends []int32) (string, alphaOAdC) {
	if h.Kind != KindOperation || h.OT < 50 || h.OT > 59 || len(ends) != fields5x {
		return string(data), alphaOAdC{}
	}
	if string(data[ends[27]+1:ends[28]]) != OTOAAlphanumeric {
		return string(data), alphaOAdC{}
	}
	var buf [maxAlphaDecoded]byte
	text, ok, err := appendAlphanumericASCII(buf[:0], data[ends[0]+1:ends[1]])
	if err != nil {
		return string(data), alphaOAdC{err: err, set: true}
	}
	if !ok {
		return string(data), alphaOAdC{}
	}
	var sb strings.Builder
	sb.Grow(len(data) + len(text))
	sb.Write(data)
	sb.Write(text)
	str := sb.String()
	return str[:len(data)], alphaOAdC{text: str[len(data):], set: true}
}

// alphaOAdC is an alphanumeric OAdC decoded by dataString; when set is
// false the field decoder decodes it itself.
type alphaOAdC struct {
	text string
	err  error
	set  bool
}

// fieldEnds finds the separators of "f1/f2/…/fn/": ends[i] is the offset of
// the slash after field i. Every field is followed by exactly one slash, so
// empty data means no fields. It looks at eight bytes at a time, since most
// 5x fields are empty or short.
func fieldEnds(data []byte, ends *[maxFields]int32) (int, error) {
	const (
		ones  = 0x0101010101010101
		low7  = 0x7f7f7f7f7f7f7f7f
		highs = 0x8080808080808080
	)
	n, i := 0, 0
	for ; i+8 <= len(data); i += 8 {
		w := binary.LittleEndian.Uint64(data[i:]) ^ (ones * '/')
		// High bit set exactly in the bytes of w that are zero (the slashes).
		m := ^((w&low7 + low7) | w) & highs
		for m != 0 {
			if n == maxFields {
				return n, fmt.Errorf("more than %d fields: %w", maxFields, ErrSyntax)
			}
			ends[n] = int32(i + bits.TrailingZeros64(m)/8)
			n++
			m &= m - 1
		}
	}
	for ; i < len(data); i++ {
		if data[i] != '/' {
			continue
		}
		if n == maxFields {
			return n, fmt.Errorf("more than %d fields: %w", maxFields, ErrSyntax)
		}
		ends[n] = int32(i)
		n++
	}
	if len(data) > 0 && (n == 0 || int(ends[n-1]) != len(data)-1) {
		return n, fmt.Errorf("last field without separator: %w", ErrSyntax)
	}
	return n, nil
}

// Decode validates a frame (STX … ETX included) and decodes it. Operations
// without a typed decoder (02, 03, 30, 54–58, 61, and unknown ones) come
// back as *RawOp with their fields; 54–58 come back as *Op5x.
func Decode(frame []byte) (Frame, error) {
	h, data, err := checkFrame(frame)
	if err != nil {
		return Frame{}, err
	}
	var m Message
	if h.Kind == KindResult {
		m = &Result{}
	} else {
		switch h.OT {
		case OTCall:
			m = &Call{}
		case OTAlert:
			m = &Alert{}
		case OTSubmit:
			m = &Submit{}
		case OTDeliver:
			m = &Deliver{}
		case OTNotification:
			m = &Notification{}
		case OTSession:
			m = &Login{}
		case OTModify, OTInquiry, OTDelete, OTResponseInquiry, OTResponseDelete, 50, 59:
			m = &Op5x{OT: h.OT}
		default:
			m = &RawOp{}
		}
	}
	if err := decodeData(h, data, m); err != nil {
		return Frame{}, err
	}
	return Frame{TRN: h.TRN, Msg: m}, nil
}

// DecodeInto decodes frame into m, which must be a pointer to the type that
// matches the frame (a *Result for any result, *Submit for an O/51, …, or a
// *RawOp for any operation). It returns the frame's TRN. Reusing m avoids
// the allocation Decode makes for the message value.
func DecodeInto(frame []byte, m Message) (uint8, error) {
	h, data, err := checkFrame(frame)
	if err != nil {
		return 0, err
	}
	if err := decodeData(h, data, m); err != nil {
		return 0, err
	}
	return h.TRN, nil
}

func decodeData(h Header, data []byte, m Message) error {
	var ends [maxFields]int32
	n, err := fieldEnds(data, &ends)
	if err != nil {
		return fmt.Errorf("decode OT %s: %w", h.OT, err)
	}
	str, alpha := dataString(h, data, ends[:n])
	var arr [36]string
	fields := arr[:0]
	from := int32(0)
	for _, e := range ends[:n] {
		fields = append(fields, str[from:e])
		from = e + 1
	}
	want := func(k Kind, ot OT) error {
		if h.Kind != k || h.OT != ot {
			return fmt.Errorf("decode %c/%s into %c/%s: %w", byte(h.Kind), h.OT, byte(k), ot, ErrSyntax)
		}
		return nil
	}
	switch m := m.(type) {
	case *Result:
		if h.Kind != KindResult {
			return fmt.Errorf("decode %c/%s as result: %w", byte(h.Kind), h.OT, ErrSyntax)
		}
		err = m.decode(h.OT, fields)
	case *RawOp:
		if h.Kind != KindOperation {
			return fmt.Errorf("decode %c/%s as operation: %w", byte(h.Kind), h.OT, ErrSyntax)
		}
		m.OT = h.OT
		m.Fields = append(m.Fields[:0], fields...)
	case *Op5x:
		if h.Kind != KindOperation || h.OT < 50 || h.OT > 59 {
			return fmt.Errorf("decode %c/%s as 5x operation: %w", byte(h.Kind), h.OT, ErrSyntax)
		}
		m.OT = h.OT
		err = m.decode(fields, alpha)
	case *Submit:
		if err = want(KindOperation, OTSubmit); err == nil {
			err = m.decode(fields, alpha)
		}
	case *Deliver:
		if err = want(KindOperation, OTDeliver); err == nil {
			err = m.decode(fields, alpha)
		}
	case *Notification:
		if err = want(KindOperation, OTNotification); err == nil {
			err = m.decode(fields, alpha)
		}
	case *Login:
		if err = want(KindOperation, OTSession); err == nil {
			err = m.decode(fields)
		}
	case *Alert:
		if err = want(KindOperation, OTAlert); err == nil {
			err = m.decode(fields)
		}
	case *Call:
		if err = want(KindOperation, OTCall); err == nil {
			err = m.decode(fields)
		}
	default:
		return fmt.Errorf("decode OT %s into %T: %w", h.OT, m, ErrSyntax)
	}
	if err != nil {
		return fmt.Errorf("decode %c/%s: %w", byte(h.Kind), h.OT, err)
	}
	return nil
}

const hexUpper = "0123456789ABCDEF"

// hexValue maps a byte to its hex digit value, 0xff for a non-digit.
const hexValue = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\xff\xff\xff\xff\xff\xff\xff\x0a\x0b\x0c\x0d\x0e\x0f\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x0a\x0b\x0c\x0d\x0e\x0f\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"

func unhex(c byte) (byte, bool) {
	v := hexValue[c]
	return v, v != 0xff
}

// checksum returns the low 8 bits of the byte sum of b, eight bytes at a
// time: each 64-bit word is split into four 16-bit lanes that cannot
// overflow for 128 words, then folded.
func checksum(b []byte) byte {
	var sum byte
	for len(b) >= 8 {
		n := min(len(b)/8, 128)
		var acc uint64
		for i := range n {
			w := binary.LittleEndian.Uint64(b[8*i:])
			acc += w&0x00ff00ff00ff00ff + (w>>8)&0x00ff00ff00ff00ff
		}
		acc = acc&0xffff + (acc>>16)&0xffff + (acc>>32)&0xffff + acc>>48
		sum += byte(acc)
		b = b[8*n:]
	}
	for _, c := range b {
		sum += c
	}
	return sum
}

func parseDigits[T string | []byte](s T) (int, bool) {
	if len(s) == 0 || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return len(s) > 0
}

func twoDigits(n int) []byte { return []byte{byte('0' + n/10%10), byte('0' + n%10)} }

func appendTwoDigits(dst []byte, n int) []byte {
	return append(dst, byte('0'+n/10%10), byte('0'+n%10))
}

// appendHex appends b as upper-case hex.
func appendHex(dst []byte, b []byte) []byte {
	n := len(dst)
	dst = slices.Grow(dst, 2*len(b))[:n+2*len(b)]
	out := dst[n:]
	for i, c := range b {
		out[2*i], out[2*i+1] = hexUpper[c>>4], hexUpper[c&0x0f]
	}
	return dst
}

// decodeHexInto decodes hex s into dst (which must be len(s)/2 long).
func decodeHexInto[T string | []byte](dst []byte, s T) bool {
	if len(s)%2 != 0 || len(dst) != len(s)/2 {
		return false
	}
	for i := range dst {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

// appendField appends a clear-text field and its separator. Only printable
// IRA characters other than '/' can travel in a field.
func appendField(dst []byte, name, v string) ([]byte, error) {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e || c == '/' {
			return dst, fmt.Errorf("field %s: byte 0x%02x: %w", name, c, ErrField)
		}
	}
	dst = append(dst, v...)
	return append(dst, '/'), nil
}
