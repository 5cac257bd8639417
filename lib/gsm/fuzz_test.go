package gsm_test

import (
	"bytes"
	"testing"

	"pushsms.io/lib/gsm"
)

// FuzzSplit checks, for any text and policy, that Split agrees with Analyze
// and that its parts decode back to Analysis.Text within the limits.
func FuzzSplit(f *testing.F) {
	f.Add("Votre code est 482913", false, false, false)
	f.Add("C’est l’été… «\u00a0Soldes\u00a0» –50\u00a0% ça", true, false, false)
	f.Add("français fête Œuvre", true, true, true)
	f.Add("a\xffb😀", false, false, false)
	f.Fuzz(func(t *testing.T, text string, typo, translit, cedilla bool) {
		p := gsm.Policy{Typography: typo, Transliterate: translit, CedillaAsCapital: cedilla}
		a := gsm.Analyze(text, p)
		if a.Encoding == gsm.GSM7 && a.UCS2Chars != nil {
			t.Errorf("GSM7 with UCS2Chars %q", a.UCS2Chars)
		}
		if a.Encoding == gsm.UCS2 && len(a.UCS2Chars) == 0 {
			t.Errorf("UCS2 without a blocking character for %q", text)
		}
		checkSplit(t, text, p, a)
	})
}

// FuzzDecodeGSM7 feeds arbitrary septets (an MO from the SMSC) to the
// decoder: it must not panic, and whatever it yields must encode and decode
// back to itself when it is representable.
func FuzzDecodeGSM7(f *testing.F) {
	f.Add([]byte("Hello"))
	f.Add([]byte{0x1B, 0x65, 0x1B, 0x1B, 0x1B})
	f.Add([]byte{0x00, 0x09, 0x7F, 0x80, 0xFF})
	f.Fuzz(func(t *testing.T, septets []byte) {
		s := gsm.DecodeGSM7(septets)
		enc, err := gsm.EncodeGSM7(s)
		if err != nil {
			return
		}
		if got := gsm.DecodeGSM7(enc); got != s {
			t.Errorf("decode(encode(%q)) = %q", s, got)
		}
		packed := gsm.PackSeptets(enc, 1)
		if got := gsm.UnpackSeptets(packed, len(enc), 1); !bytes.Equal(got, enc) {
			t.Errorf("unpack(pack(% x)) = % x", enc, got)
		}
	})
}

// FuzzEncodeGSM7 checks decode(encode(x)) == x for every representable x.
func FuzzEncodeGSM7(f *testing.F) {
	f.Add("Rendez-vous à 10h, 5€ {promo} [x] ~ | \\ ^")
	f.Add("ça")
	f.Fuzz(func(t *testing.T, s string) {
		enc, err := gsm.EncodeGSM7(s)
		if err != nil {
			return
		}
		if got := gsm.DecodeGSM7(enc); got != s {
			t.Errorf("decode(encode(%q)) = %q", s, got)
		}
	})
}

// FuzzUnpackSeptets feeds arbitrary packed user data, as an MO would bring.
func FuzzUnpackSeptets(f *testing.F) {
	f.Add([]byte{0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37}, 10, 0)
	f.Add([]byte{0x01}, 300, 9)
	f.Fuzz(func(t *testing.T, packed []byte, n, fill int) {
		got := gsm.UnpackSeptets(packed, n, fill)
		if len(got) > max(n, 0) {
			t.Errorf("got %d septets, asked %d", len(got), n)
		}
		for _, c := range got {
			if c > 0x7F {
				t.Fatalf("septet %#x above 0x7F", c)
			}
		}
	})
}

// FuzzParseConcat feeds arbitrary UDHs.
func FuzzParseConcat(f *testing.F) {
	f.Add([]byte{0x05, 0x00, 0x03, 0x42, 0x03, 0x02})
	f.Add([]byte{0x06, 0x08, 0x04, 0x12, 0x34, 0x02, 0x01})
	f.Fuzz(func(t *testing.T, udh []byte) {
		c, ok := gsm.ParseConcat(udh)
		if ok && (c.Index < 1 || c.Index > c.Total) {
			t.Errorf("accepted %+v", c)
		}
	})
}
