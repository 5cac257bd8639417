package ucp

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/ (spec and Kannel frames).
// Every target checks that parsing never panics and that whatever decodes
// re-encodes to something that decodes to the same value.

// FuzzReader feeds arbitrary bytes in chunks of varying size.
func FuzzReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, chunk int) {
		const max = 64
		r := NewReader(&fuzzChunks{data: data, size: chunk}, max)
		var total int
		for range len(data) + 2 {
			fr, err := r.ReadFrame()
			if errors.Is(err, ErrFrameTooLong) {
				continue
			}
			if err != nil {
				if err != io.EOF && err != io.ErrUnexpectedEOF {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(fr) < 2 || len(fr) > max || fr[0] != STX || fr[len(fr)-1] != ETX {
				t.Fatalf("bad frame %q", fr)
			}
			if bytes.IndexByte(fr[1:], STX) >= 0 || bytes.IndexByte(fr[:len(fr)-1], ETX) >= 0 {
				t.Fatalf("frame %q holds a second STX or ETX", fr)
			}
			total += len(fr)
			if total > len(data) {
				t.Fatalf("returned %d bytes of frames from %d bytes of input", total, len(data))
			}
			Decode(fr)
		}
		t.Fatalf("reader did not reach EOF")
	})
}

type fuzzChunks struct {
	data []byte
	size int
}

func (c *fuzzChunks) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := c.size % 17
	if n < 0 {
		n = -n
	}
	n++
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// FuzzDecode takes whole frames: framing, LEN, checksum and every decoder.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, frame []byte) {
		checkRoundTrip(t, frame)
	})
}

// The typed fuzzers below wrap the input in a valid header, LEN and
// checksum, so that the fuzzer spends its time in the field decoders.

func FuzzSubmit(f *testing.F)       { fuzzBody(f, KindOperation, OTSubmit) }
func FuzzDeliver(f *testing.F)      { fuzzBody(f, KindOperation, OTDeliver) }
func FuzzNotification(f *testing.F) { fuzzBody(f, KindOperation, OTNotification) }
func FuzzLogin(f *testing.F)        { fuzzBody(f, KindOperation, OTSession) }
func FuzzAlert(f *testing.F)        { fuzzBody(f, KindOperation, OTAlert) }
func FuzzCall(f *testing.F)         { fuzzBody(f, KindOperation, OTCall) }
func FuzzOp5x(f *testing.F) {
	f.Fuzz(func(t *testing.T, ot uint8, data string) {
		checkRoundTrip(t, buildFrame(KindOperation, OT(50+ot%10), data))
	})
}

func FuzzResult(f *testing.F) {
	f.Fuzz(func(t *testing.T, ot uint8, data string) {
		checkRoundTrip(t, buildFrame(KindResult, OT(ot%100), data))
	})
}

func fuzzBody(f *testing.F, k Kind, ot OT) {
	f.Fuzz(func(t *testing.T, data string) {
		checkRoundTrip(t, buildFrame(k, ot, data))
	})
}

func buildFrame(k Kind, ot OT, data string) []byte {
	n := headerLen + len(data) + 2
	body := []byte(strconv.Itoa(100000 + n)[1:])
	body = append([]byte("00/"), body...)
	body = append(body, '/', byte(k), '/')
	body = appendTwoDigits(body, int(ot))
	body = append(body, '/')
	body = append(body, data...)
	var sum byte
	for _, b := range body {
		sum += b
	}
	body = append(body, hexUpper[sum>>4], hexUpper[sum&0xf])
	return append(append([]byte{STX}, body...), ETX)
}

func checkRoundTrip(t *testing.T, frame []byte) {
	fr, err := Decode(frame)
	if err != nil {
		return
	}
	var into Message
	switch fr.Msg.(type) {
	case *Result:
		into = &Result{}
	case *RawOp:
		into = &RawOp{}
	case *Op5x:
		into = &Op5x{}
	default:
		into = reflect.New(reflect.TypeOf(fr.Msg).Elem()).Interface().(Message)
	}
	if _, err := DecodeInto(frame, into); err != nil || !reflect.DeepEqual(into, fr.Msg) {
		t.Fatalf("DecodeInto = %#v, %v; Decode = %#v", into, err, fr.Msg)
	}
	enc, err := AppendFrame(nil, fr.TRN, fr.Msg)
	if err != nil {
		if !errors.Is(err, ErrField) {
			t.Fatalf("re-encode %#v: %v", fr.Msg, err)
		}
		return // decodable but not encodable, e.g. a 12-character sender
	}
	again, err := Decode(enc)
	if err != nil {
		t.Fatalf("decode of re-encoded %q: %v", enc, err)
	}
	if again.TRN != fr.TRN || !reflect.DeepEqual(again.Msg, fr.Msg) {
		t.Fatalf("round trip changed the message:\n%#v\n%#v\nframe %q", fr.Msg, again.Msg, enc)
	}
}

func FuzzXSer(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		x, err := ParseXSer(s)
		if err != nil {
			return
		}
		enc, err := appendXSer(nil, x)
		if err != nil {
			return
		}
		y, err := ParseXSer(string(enc))
		if err != nil || !reflect.DeepEqual(normXSer(x), normXSer(y)) {
			t.Fatalf("ParseXSer(%q) = %#v; re-encoded %q = %#v, %v", s, x, enc, y, err)
		}
	})
}

// normXSer drops the distinction between nil and empty Other.
func normXSer(x XSer) XSer {
	if len(x.Other) == 0 {
		x.Other = nil
	}
	return x
}

func FuzzAlphanumeric(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		text, err := decodeAlphanumeric(s)
		fast, ok, ferr := appendAlphanumericASCII(nil, s)
		if (err == nil) != (ferr == nil) || ok && string(fast) != text {
			t.Fatalf("%q: decoder gives %q, %v; ASCII fast path gives %q, %v, %v", s, text, err, fast, ok, ferr)
		}
		if err != nil {
			return
		}
		enc, err := appendAlphanumeric(nil, text)
		if err != nil {
			return
		}
		back, err := decodeAlphanumeric(string(enc))
		if err != nil || back != text {
			t.Fatalf("%q decodes to %q, re-encoded %q decodes to %q, %v", s, text, enc, back, err)
		}
	})
}

func FuzzTimestamp(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		if ts, err := ParseSCTS(s, time.UTC); err == nil {
			if got := FormatSCTS(ts, time.UTC); got != s {
				t.Fatalf("ParseSCTS(%q) formats back as %q", s, got)
			}
		}
		if ts, err := ParseVP(s, time.UTC); err == nil {
			if got := FormatVP(ts, time.UTC); got != s {
				t.Fatalf("ParseVP(%q) formats back as %q", s, got)
			}
		}
	})
}

// FuzzText checks SetText/Text on arbitrary text, GSM or UCS-2.
func FuzzText(f *testing.F) {
	f.Fuzz(func(t *testing.T, text string) {
		if !utf8.ValidString(text) {
			return
		}
		var s Submit
		s.SetText(text)
		got, err := s.Text()
		if err != nil || got != text {
			t.Fatalf("SetText(%q) then Text() = %q, %v (MT %d)", text, got, err, s.MT)
		}
	})
}

func FuzzChecksum(f *testing.F) {
	f.Add(bytes.Repeat([]byte{0xff}, 2000))
	f.Fuzz(func(t *testing.T, b []byte) {
		var want byte
		for _, c := range b {
			want += c
		}
		if got := checksum(b); got != want {
			t.Fatalf("checksum of %d bytes = %02X, want %02X", len(b), got, want)
		}
	})
}

// FuzzFields checks the word-at-a-time field split against a plain one.
// Seeds: testdata/fuzz/FuzzFields.
func FuzzFields(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var ends [maxFields]int32
		n, err := fieldEnds(data, &ends)
		var want []int32
		for i, c := range data {
			if c == '/' {
				want = append(want, int32(i))
			}
		}
		switch {
		case len(want) > maxFields:
			if err == nil {
				t.Fatalf("%q: %d fields accepted", data, len(want))
			}
			return
		case len(data) > 0 && data[len(data)-1] != '/':
			if err == nil {
				t.Fatalf("%q: last field without separator accepted", data)
			}
			return
		case err != nil:
			t.Fatalf("%q: %v", data, err)
		}
		if !reflect.DeepEqual(append([]int32{}, ends[:n]...), append([]int32{}, want...)) {
			t.Fatalf("%q: got ends %v, want %v", data, ends[:n], want)
		}
	})
}
