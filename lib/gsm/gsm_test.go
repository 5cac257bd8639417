package gsm_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"

	"pushsms.io/lib/gsm"
)

const (
	nbsp  = "\u00a0"
	nnbsp = "\u202f"
	emoji = "😀" // U+1F600, a surrogate pair in UTF-16
)

func TestAnalyze(t *testing.T) {
	french := gsm.French()
	translit := gsm.Policy{Typography: true, Transliterate: true}
	cedilla := gsm.Policy{CedillaAsCapital: true}
	a := strings.Repeat

	tests := []struct {
		name      string
		in        string
		p         gsm.Policy
		enc       gsm.Encoding
		text      string // "" means same as in
		length    int
		segments  int
		remaining int
		ucs2      []rune
	}{
		{name: "empty", in: "", enc: gsm.GSM7, length: 0, segments: 1, remaining: 160},
		{name: "160 septets", in: a("a", 160), enc: gsm.GSM7, length: 160, segments: 1, remaining: 0},
		{name: "161 septets", in: a("a", 161), enc: gsm.GSM7, length: 161, segments: 2, remaining: 145},
		{name: "306 septets", in: a("a", 306), enc: gsm.GSM7, length: 306, segments: 2, remaining: 0},
		{name: "307 septets", in: a("a", 307), enc: gsm.GSM7, length: 307, segments: 3, remaining: 152},
		{name: "euro makes 160", in: a("a", 158) + "€", enc: gsm.GSM7, length: 160, segments: 1, remaining: 0},
		{name: "euro makes 161", in: a("a", 159) + "€", enc: gsm.GSM7, length: 161, segments: 2, remaining: 145},
		// 152 septets then an escape pair: the pair moves whole to part 2.
		{name: "escape at 153 boundary", in: a("a", 152) + "€" + a("b", 10), enc: gsm.GSM7, length: 164, segments: 2, remaining: 153 - 12},
		{name: "escape ends part exactly", in: a("a", 151) + "€" + a("b", 10), enc: gsm.GSM7, length: 163, segments: 2, remaining: 143},
		{name: "escape forces third part", in: a("a", 305) + "€", enc: gsm.GSM7, length: 307, segments: 3, remaining: 151},
		{name: "extension table", in: `[]{}\^~|€`, enc: gsm.GSM7, length: 18, segments: 1, remaining: 142},
		{name: "ascii oddities", in: "$@_", enc: gsm.GSM7, length: 3, segments: 1, remaining: 157},
		{name: "french accents in GSM", in: "éèàùìòÇÉ", enc: gsm.GSM7, length: 8, segments: 1, remaining: 152},
		{name: "other GSM letters", in: "ÄÖÜäöüñÑÅåØøÆæß¤§¿¡£¥", enc: gsm.GSM7, length: 21, segments: 1, remaining: 139},
		{name: "lower-case cedilla", in: "ça", enc: gsm.UCS2, length: 2, segments: 1, remaining: 68, ucs2: []rune{'ç'}},
		{name: "cedilla transliterated", in: "ça", p: translit, enc: gsm.GSM7, text: "ca", length: 2, segments: 1, remaining: 158},
		{name: "cedilla as capital", in: "français", p: cedilla, enc: gsm.GSM7, text: "franÇais", length: 8, segments: 1, remaining: 152},
		{name: "circumflex", in: "fête", enc: gsm.UCS2, length: 4, segments: 1, remaining: 66, ucs2: []rune{'ê'}},
		{name: "circumflex kept under French", in: "fête", p: french, enc: gsm.UCS2, length: 4, segments: 1, remaining: 66, ucs2: []rune{'ê'}},
		{name: "accents not in GSM", in: "âêîôûïëÿ", enc: gsm.UCS2, length: 8, segments: 1, remaining: 62, ucs2: []rune("âêîôûïëÿ")},
		{name: "accents transliterated", in: "âêîôûïëÿ ÀÂÈÊËÎÏÔÙÛŸ", p: translit, enc: gsm.GSM7, text: "aeiouiey AAEEEIIOUUY", length: 20, segments: 1, remaining: 140},
		{name: "ucs2 chars once each", in: "êêâê", enc: gsm.UCS2, length: 4, segments: 1, remaining: 66, ucs2: []rune{'ê', 'â'}},
		{name: "70 units", in: a("ê", 70), enc: gsm.UCS2, length: 70, segments: 1, remaining: 0, ucs2: []rune{'ê'}},
		{name: "71 units", in: a("ê", 71), enc: gsm.UCS2, length: 71, segments: 2, remaining: 63, ucs2: []rune{'ê'}},
		// 66 units then a surrogate pair: the pair moves whole to part 2.
		{name: "emoji at 67 boundary", in: a("ê", 66) + emoji + a("x", 5), enc: gsm.UCS2, length: 73, segments: 2, remaining: 60, ucs2: []rune{'ê', '😀'}},
		{name: "emoji ends part exactly", in: a("ê", 65) + emoji + a("x", 5), enc: gsm.UCS2, length: 72, segments: 2, remaining: 62, ucs2: []rune{'ê', '😀'}},
		{name: "emoji", in: "Merci " + emoji, enc: gsm.UCS2, length: 8, segments: 1, remaining: 62, ucs2: []rune{'😀'}},
		{name: "nbsp strict", in: "Prix" + nbsp + ": 10" + nbsp + "€", enc: gsm.UCS2, length: 11, segments: 1, remaining: 59, ucs2: []rune{'\u00a0'}},
		{name: "nbsp french", in: "Prix" + nbsp + ": 10" + nbsp + "€", p: french, enc: gsm.GSM7, text: "Prix : 10 €", length: 12, segments: 1, remaining: 148},
		{name: "apostrophes and ellipsis", in: "C’est l‘été…", p: french, enc: gsm.GSM7, text: "C'est l'été...", length: 14, segments: 1, remaining: 146},
		{name: "curly double quotes", in: "“oui” „ja“", p: french, enc: gsm.GSM7, text: `"oui" "ja"`, length: 10, segments: 1, remaining: 150},
		{name: "guillemets with nbsp", in: "«" + nbsp + "Soldes" + nnbsp + "»", p: french, enc: gsm.GSM7, text: `"Soldes"`, length: 8, segments: 1, remaining: 152},
		{name: "guillemets without space", in: "«Soldes»", p: french, enc: gsm.GSM7, text: `"Soldes"`, length: 8, segments: 1, remaining: 152},
		{name: "guillemets strict", in: "«Soldes»", enc: gsm.UCS2, length: 8, segments: 1, remaining: 62, ucs2: []rune{'«', '»'}},
		{name: "oe ligature", in: "Œuvre cœur", p: french, enc: gsm.GSM7, text: "OEuvre coeur", length: 12, segments: 1, remaining: 148},
		{name: "dashes", in: "a – b — c ‑ d − e", p: french, enc: gsm.GSM7, text: "a - b - c - d - e", length: 17, segments: 1, remaining: 143},
		{name: "invisible removed", in: "a\u00adb\u200bc\ufeff", p: french, enc: gsm.GSM7, text: "abc", length: 3, segments: 1, remaining: 157},
		{name: "tab", in: "a\tb", p: french, enc: gsm.GSM7, text: "a b", length: 3, segments: 1, remaining: 157},
		{name: "backtick", in: "`", p: french, enc: gsm.GSM7, text: "'", length: 1, segments: 1, remaining: 159},
		// Normalisation is dropped when the text needs UCS-2 anyway.
		{name: "typography kept in ucs2", in: "C’est " + emoji + "…", p: french, enc: gsm.UCS2, length: 9, segments: 1, remaining: 61, ucs2: []rune{'😀'}},
		{name: "dash kept, accent blocks", in: "fête – 20 %", p: french, enc: gsm.UCS2, length: 11, segments: 1, remaining: 59, ucs2: []rune{'ê'}},
		{name: "dash and accent", in: "fête – 20 %", p: translit, enc: gsm.GSM7, text: "fete - 20 %", length: 11, segments: 1, remaining: 149},
		{name: "degree not mapped", in: "n° 12", p: translit, enc: gsm.UCS2, length: 5, segments: 1, remaining: 65, ucs2: []rune{'°'}},
		{name: "invalid utf-8", in: "a\xffb", enc: gsm.UCS2, text: "a\ufffdb", length: 3, segments: 1, remaining: 67, ucs2: []rune{'\ufffd'}},
		{name: "stop mention", in: "STOP au 36123", enc: gsm.GSM7, length: 13, segments: 1, remaining: 147},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := gsm.Analyze(tt.in, tt.p)
			want := tt.text
			if want == "" {
				want = tt.in
			}
			if got.Encoding != tt.enc {
				t.Errorf("Encoding: got %v, want %v", got.Encoding, tt.enc)
			}
			if got.Text != want {
				t.Errorf("Text: got %q, want %q", got.Text, want)
			}
			if got.Normalised != (want != tt.in) {
				t.Errorf("Normalised: got %v, want %v", got.Normalised, want != tt.in)
			}
			if got.Length != tt.length || got.Segments != tt.segments || got.Remaining != tt.remaining {
				t.Errorf("Length/Segments/Remaining: got %d/%d/%d, want %d/%d/%d",
					got.Length, got.Segments, got.Remaining, tt.length, tt.segments, tt.remaining)
			}
			if !slices.Equal(got.UCS2Chars, tt.ucs2) {
				t.Errorf("UCS2Chars: got %q, want %q", got.UCS2Chars, tt.ucs2)
			}
			checkSplit(t, tt.in, tt.p, got)
		})
	}
}

// checkSplit verifies the invariants Split must keep for any input.
func checkSplit(t *testing.T, text string, p gsm.Policy, a gsm.Analysis) {
	t.Helper()
	segs, sa, err := gsm.Split(text, p, 0x42)
	if a.Segments > gsm.MaxParts {
		if !errors.Is(err, gsm.ErrTooLong) {
			t.Fatalf("Split of %d parts: got err %v, want ErrTooLong", a.Segments, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("Split: %v", err)
	}
	if sa.Text != a.Text || sa.Segments != a.Segments || sa.Length != a.Length || sa.Encoding != a.Encoding {
		t.Fatalf("Split analysis differs from Analyze: got %+v, want %+v", sa, a)
	}
	if len(segs) != a.Segments {
		t.Fatalf("Split: got %d parts, Analyze counted %d", len(segs), a.Segments)
	}
	single, concat := gsm.MaxSeptets, gsm.MaxSeptetsConcat
	if a.Encoding == gsm.UCS2 {
		single, concat = gsm.MaxUCS2Units, gsm.MaxUCS2UnitsConcat
	}
	var joined []byte
	length := 0
	for i, s := range segs {
		if s.Index != i+1 || s.Count != len(segs) || s.Encoding != a.Encoding {
			t.Errorf("part %d: got Index %d Count %d Encoding %v", i+1, s.Index, s.Count, s.Encoding)
		}
		limit := single
		if len(segs) > 1 {
			limit = concat
			want := []byte{0x05, 0x00, 0x03, 0x42, byte(len(segs)), byte(i + 1)}
			if !bytes.Equal(s.UDH, want) {
				t.Errorf("part %d UDH: got % x, want % x", i+1, s.UDH, want)
			}
		} else if len(s.UDH) != 0 {
			t.Errorf("single part UDH: got % x, want none", s.UDH)
		}
		n := len(s.UserData)
		if a.Encoding == gsm.UCS2 {
			if n%2 != 0 {
				t.Fatalf("part %d: odd UCS-2 length %d", i+1, n)
			}
			n /= 2
			if n > 0 {
				last := rune(s.UserData[2*n-2])<<8 | rune(s.UserData[2*n-1])
				if last >= 0xD800 && last < 0xDC00 {
					t.Errorf("part %d ends with a high surrogate", i+1)
				}
			}
		} else if trailingEscape(s.UserData) {
			t.Errorf("part %d ends with a lone escape", i+1)
		}
		if n > limit {
			t.Errorf("part %d: %d units, limit %d", i+1, n, limit)
		}
		if i < len(segs)-1 && n < limit-1 {
			t.Errorf("part %d: %d units, greedy packing should reach %d", i+1, n, limit-1)
		}
		length += n
		joined = append(joined, s.UserData...)
	}
	if length != a.Length {
		t.Errorf("sum of parts: got %d units, want %d", length, a.Length)
	}
	if got := decode(a.Encoding, joined); got != a.Text {
		t.Errorf("joined parts decode to %q, want %q", got, a.Text)
	}
}

// trailingEscape reports whether septets end inside an escape pair.
func trailingEscape(septets []byte) bool {
	for i := 0; i < len(septets); i++ {
		if septets[i] == 0x1B {
			if i+1 == len(septets) {
				return true
			}
			i++
		}
	}
	return false
}

func decode(e gsm.Encoding, b []byte) string {
	if e == gsm.GSM7 {
		return gsm.DecodeGSM7(b)
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	return string(utf16.Decode(u))
}

func TestSplitParts(t *testing.T) {
	a := strings.Repeat
	tests := []struct {
		name  string
		in    string
		p     gsm.Policy
		parts []int // units per part
	}{
		{name: "single", in: "hello", parts: []int{5}},
		{name: "161", in: a("a", 161), parts: []int{153, 8}},
		{name: "escape not split", in: a("a", 152) + "€" + a("b", 10), parts: []int{152, 12}},
		{name: "escape fits", in: a("a", 151) + "€" + a("b", 10), parts: []int{153, 10}},
		{name: "surrogate not split", in: a("ê", 66) + emoji + a("x", 5), parts: []int{66, 7}},
		{name: "surrogate fits", in: a("ê", 65) + emoji + a("x", 5), parts: []int{67, 5}},
		{name: "ucs2 three parts", in: a("ê", 67*2+1), parts: []int{67, 67, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			segs, an, err := gsm.Split(tt.in, tt.p, 7)
			if err != nil {
				t.Fatalf("Split: %v", err)
			}
			var got []int
			for _, s := range segs {
				n := len(s.UserData)
				if an.Encoding == gsm.UCS2 {
					n /= 2
				}
				got = append(got, n)
			}
			if !slices.Equal(got, tt.parts) {
				t.Errorf("part sizes: got %v, want %v", got, tt.parts)
			}
		})
	}
}

func TestSplitUserData(t *testing.T) {
	segs, _, err := gsm.Split("a€", gsm.Policy{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x61, 0x1B, 0x65}; !bytes.Equal(segs[0].UserData, want) {
		t.Errorf("GSM7 user data: got % x, want % x", segs[0].UserData, want)
	}
	segs, _, err = gsm.Split("ê"+emoji, gsm.Policy{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x00, 0xEA, 0xD8, 0x3D, 0xDE, 0x00}; !bytes.Equal(segs[0].UserData, want) {
		t.Errorf("UCS2 user data: got % x, want % x", segs[0].UserData, want)
	}
	if segs[0].Encoding.DCS() != 0x08 {
		t.Errorf("UCS2 DCS: got %#x, want 0x08", segs[0].Encoding.DCS())
	}
}

func TestSplitTooLong(t *testing.T) {
	_, a, err := gsm.Split(strings.Repeat("a", 153*255+1), gsm.Policy{}, 0)
	if !errors.Is(err, gsm.ErrTooLong) {
		t.Errorf("got err %v, want ErrTooLong", err)
	}
	if a.Segments != 256 {
		t.Errorf("Segments: got %d, want 256", a.Segments)
	}
	segs, _, err := gsm.Split(strings.Repeat("a", 153*255), gsm.Policy{}, 0)
	if err != nil || len(segs) != 255 {
		t.Errorf("255 parts: got %d parts, err %v", len(segs), err)
	}
}

func TestSplitBinary(t *testing.T) {
	tests := []struct {
		n     int
		parts []int
	}{
		{0, []int{0}}, {140, []int{140}}, {141, []int{134, 7}}, {268, []int{134, 134}},
	}
	for _, tt := range tests {
		segs, err := gsm.SplitBinary(make([]byte, tt.n), 9)
		if err != nil {
			t.Fatalf("SplitBinary(%d): %v", tt.n, err)
		}
		var got []int
		for _, s := range segs {
			got = append(got, len(s.UserData))
			if s.Encoding != gsm.Binary {
				t.Errorf("Encoding: got %v, want Binary", s.Encoding)
			}
		}
		if !slices.Equal(got, tt.parts) {
			t.Errorf("SplitBinary(%d): got parts %v, want %v", tt.n, got, tt.parts)
		}
	}
}

func TestAlphabetRoundTrip(t *testing.T) {
	for c := range byte(0x80) {
		if c == 0x1B {
			continue
		}
		s := gsm.DecodeGSM7([]byte{c})
		got, err := gsm.EncodeGSM7(s)
		if err != nil || !bytes.Equal(got, []byte{c}) {
			t.Errorf("septet %#02x decodes to %q which encodes to % x (err %v)", c, s, got, err)
		}
	}
	ext := map[byte]rune{0x0A: '\f', 0x14: '^', 0x28: '{', 0x29: '}', 0x2F: '\\', 0x3C: '[', 0x3D: '~', 0x3E: ']', 0x40: '|', 0x65: '€'}
	for c, r := range ext {
		if got := gsm.DecodeGSM7([]byte{0x1B, c}); got != string(r) {
			t.Errorf("escape %#02x: got %q, want %q", c, got, r)
		}
		got, err := gsm.EncodeGSM7(string(r))
		if err != nil || !bytes.Equal(got, []byte{0x1B, c}) {
			t.Errorf("encode %q: got % x (err %v), want 1b %02x", r, got, err, c)
		}
	}
}

func TestDecodeGSM7(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"basic", []byte{0x00, 0x01, 0x02, 0x04, 0x05, 0x09, 0x1F, 0x24, 0x40, 0x7F}, "@£$èéÇ\u00c9¤¡à"},
		{"escape unknown code", []byte{0x1B, 0x41}, "A"},
		{"escape escape", []byte{0x1B, 0x1B, 0x41}, " A"},
		{"trailing escape", []byte{0x41, 0x1B}, "A"},
		{"high byte", []byte{0x80, 0x41}, "\ufffdA"},
		{"escape high byte", []byte{0x1B, 0xFF}, "\ufffd"},
		{"empty", nil, ""},
	}
	for _, tt := range tests {
		if got := gsm.DecodeGSM7(tt.in); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestEncodeGSM7(t *testing.T) {
	tests := []struct {
		in      string
		want    []byte
		wantErr bool
	}{
		{"Hello @ $5", []byte{0x48, 0x65, 0x6C, 0x6C, 0x6F, 0x20, 0x00, 0x20, 0x02, 0x35}, false},
		{"10€", []byte{0x31, 0x30, 0x1B, 0x65}, false},
		{"ç", nil, true},
		{"ê", nil, true},
		{"`", nil, true},
		{"\t", nil, true},
		{"\xff", nil, true},
	}
	for _, tt := range tests {
		got, err := gsm.EncodeGSM7(tt.in)
		if (err != nil) != tt.wantErr || !bytes.Equal(got, tt.want) {
			t.Errorf("EncodeGSM7(%q): got % x, %v; want % x, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !errors.Is(err, gsm.ErrUnencodable) {
			t.Errorf("EncodeGSM7(%q): got err %v, want ErrUnencodable", tt.in, err)
		}
	}
}

func TestAppendGSM7(t *testing.T) {
	tests := []struct {
		dst     []byte
		in      string
		want    []byte
		wantErr bool
	}{
		{nil, "", nil, false},
		{[]byte{0x41}, "€", []byte{0x41, 0x1B, 0x65}, false},
		{[]byte{0x41}, "B`C", []byte{0x41, 0x42}, true},
	}
	for _, tt := range tests {
		got, err := gsm.AppendGSM7(tt.dst, tt.in)
		if (err != nil) != tt.wantErr || !bytes.Equal(got, tt.want) {
			t.Errorf("AppendGSM7(% x, %q): got % x, %v; want % x, err %v", tt.dst, tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestPackSeptets(t *testing.T) {
	// The TS 23.040 textbook example: "hellohello" packs to 9 octets.
	septets, err := gsm.EncodeGSM7("hellohello")
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37}
	if got := gsm.PackSeptets(septets, 0); !bytes.Equal(got, want) {
		t.Errorf("pack: got % x, want % x", got, want)
	}
	if got := gsm.UnpackSeptets(want, 10, 0); !bytes.Equal(got, septets) {
		t.Errorf("unpack: got % x, want % x", got, septets)
	}
	if got := gsm.FillBits(6); got != 1 {
		t.Errorf("FillBits(6): got %d, want 1", got)
	}
	for fill := range 7 {
		packed := gsm.PackSeptets(septets, fill)
		if got := gsm.UnpackSeptets(packed, len(septets), fill); !bytes.Equal(got, septets) {
			t.Errorf("fill %d: round trip got % x, want % x", fill, got, septets)
		}
	}
	if got := gsm.UnpackSeptets([]byte{0xE8}, 10, 0); len(got) != 1 {
		t.Errorf("short input: got %d septets, want 1", len(got))
	}
}

func TestParseConcat(t *testing.T) {
	tests := []struct {
		name string
		udh  []byte
		want gsm.Concat
		ok   bool
	}{
		{"8-bit", []byte{0x05, 0x00, 0x03, 0x42, 0x03, 0x02}, gsm.Concat{Ref: 0x42, Total: 3, Index: 2}, true},
		{"16-bit", []byte{0x06, 0x08, 0x04, 0x12, 0x34, 0x02, 0x01}, gsm.Concat{Ref: 0x1234, Total: 2, Index: 1}, true},
		{"after port IE", []byte{0x0B, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, 0x00, 0x03, 0x01, 0x02, 0x02}, gsm.Concat{Ref: 1, Total: 2, Index: 2}, true},
		{"index beyond total", []byte{0x05, 0x00, 0x03, 0x42, 0x02, 0x03}, gsm.Concat{}, false},
		{"index zero", []byte{0x05, 0x00, 0x03, 0x42, 0x02, 0x00}, gsm.Concat{}, false},
		{"bad length", []byte{0x06, 0x00, 0x03, 0x42, 0x02, 0x01}, gsm.Concat{}, false},
		{"truncated IE", []byte{0x03, 0x00, 0x03, 0x42}, gsm.Concat{}, false},
		{"no concat IE", []byte{0x03, 0x24, 0x01, 0x01}, gsm.Concat{}, false},
		{"empty", nil, gsm.Concat{}, false},
	}
	for _, tt := range tests {
		got, ok := gsm.ParseConcat(tt.udh)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: got %+v %v, want %+v %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestSplitUDHRoundTrip(t *testing.T) {
	segs, _, err := gsm.Split(strings.Repeat("x", 400), gsm.Policy{}, 200)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		c, ok := gsm.ParseConcat(s.UDH)
		if !ok || c != (gsm.Concat{Ref: 200, Total: s.Count, Index: s.Index}) {
			t.Errorf("part %d: ParseConcat got %+v %v", s.Index, c, ok)
		}
	}
}

var sink gsm.Analysis

func BenchmarkAnalyze(b *testing.B) {
	cases := []struct {
		name string
		text string
		p    gsm.Policy
	}{
		{"gsm7-short", "Votre code de connexion est 482913. STOP au 36123", gsm.Policy{}},
		{"gsm7-3parts", strings.Repeat("Soldes d'été à -50% sur tout le magasin ! ", 10), gsm.Policy{}},
		{"french-normalised", strings.Repeat("C’est l’été… «\u00a0Soldes\u00a0» jusqu’à –50\u00a0% ! ", 6), gsm.French()},
		{"ucs2-emoji", strings.Repeat("Fête des mères 🌷 : -20 % sur les bouquets ", 6), gsm.French()},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.text)))
			for b.Loop() {
				sink = gsm.Analyze(c.text, c.p)
			}
		})
	}
}

func BenchmarkSplit(b *testing.B) {
	cases := []struct {
		name string
		text string
		p    gsm.Policy
	}{
		{"gsm7-short", "Votre code de connexion est 482913. STOP au 36123", gsm.Policy{}},
		{"gsm7-3parts", strings.Repeat("Soldes d'été à -50% sur tout le magasin ! ", 10), gsm.Policy{}},
		{"ucs2-emoji", strings.Repeat("Fête des mères 🌷 : -20 % sur les bouquets ", 6), gsm.French()},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.text)))
			for b.Loop() {
				if _, _, err := gsm.Split(c.text, c.p, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
