package ucp_test

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"pushsms.io/lib/ucp"
)

// Conformance cases of ucp.md §6. C16 (segmentation) belongs to package gsm;
// here only the XSer UDH transport of a segment is checked. C22–C24 need a
// session and live in client_test.go.

func wire(body string) []byte { return []byte("\x02" + body + "\x03") }

func encode(t *testing.T, trn uint8, m ucp.Message) string {
	t.Helper()
	b, err := ucp.AppendFrame(nil, trn, m)
	if err != nil {
		t.Fatalf("AppendFrame(%T): %v", m, err)
	}
	if b[0] != ucp.STX || b[len(b)-1] != ucp.ETX {
		t.Fatalf("AppendFrame(%T) = %q, want STX … ETX", m, b)
	}
	return string(b[1 : len(b)-1])
}

func decode(t *testing.T, body string) ucp.Frame {
	t.Helper()
	f, err := ucp.Decode(wire(body))
	if err != nil {
		t.Fatalf("Decode(%q): %v", body, err)
	}
	return f
}

const (
	c2Frame   = "00/00234/O/53/1299998/3155555/////////////090196161057/1/108/090196161105/3//4D65737361676520666F7220333135353535352C2077697468206964656E74696669636174696F6E2039363031303931363130353720686173206265656E206275666665726564/////////////1F"
	c8Frame   = "18/00113/O/51/012345/09876//1/1920870340125000/4/0539//////3012961212//////3//4D657373616765203531/////////////CD"
	c9Frame   = "39/00099/O/51/0657467/078769//1//7//1/0545765/0122/1/0808971800///////4/32/F5AA34DE////1/////////65"
	c10Frame  = "01/00154/O/51/00393201001/10412614190438AB4D/////////////////3//53686F7274204D65737361676520666F72204E454D5558206279204E65743A3A554350////1////5039/////C7"
	c11Frame  = "02/00103/O/51/31612345678/0BD4F29C5E9603//1//7/////////////3//48656C6C6F20776F726C64////////5039/////87"
	c12Frame  = "01/00126/O/51/09495696599/0ED6773E7C2ECB1B//1//1/////////////3/88/48656C6C6F20776F726C64////1////5039//020100060101070101///47"
	c19Frame  = "00/00120/O/52/076523578/07686745/////////////120396111055////3//43616C6C20796F75206261636B206C617465722E///0//////////A3"
	c4Frame   = "00/00052/O/60/user1/6/5/1/736563726574//0100//////C6"
	c3Frame   = "02/00059/O/60/07656765/2/1/1/50617373776F7264//0100//////61"
	c6Frame   = "02/00035/O/31/0234765439845/0139/A0"
	kannelAck = "00/00020/R/52/A///95"
)

func TestC1ChecksumAndLEN(t *testing.T) {
	body := "01/00045/O/30/66677789///1//////68656C6C6F/"
	f := decode(t, body+"CE")
	raw, ok := f.Msg.(*ucp.RawOp)
	if !ok || f.OT() != ucp.OTTransfer || f.TRN != 1 {
		t.Fatalf("got %T OT %v TRN %d, want *RawOp OT 30 TRN 1", f.Msg, f.OT(), f.TRN)
	}
	if got, want := len(raw.Fields), 10; got != want {
		t.Errorf("got %d fields, want %d", got, want)
	}
	if got := encode(t, 1, raw); got != body+"CE" {
		t.Errorf("re-encode: got %q, want %q", got, body+"CE")
	}
	if got, want := len(body)+2, 45; got != want {
		t.Errorf("LEN: got %d, want %d", got, want)
	}
}

func TestC2ChecksumWraps(t *testing.T) {
	f := decode(t, c2Frame)
	if got := encode(t, f.TRN, f.Msg); got != c2Frame {
		t.Errorf("got %q, want %q", got, c2Frame)
	}
}

func TestC3C4Login(t *testing.T) {
	tests := []struct {
		name  string
		trn   uint8
		login ucp.Login
		want  string
	}{
		{"C3 spec", 2, ucp.Login{OAdC: "07656765", OTON: "2", ONPI: "1", STYP: "1", PWD: "Password", VERS: "0100"}, c3Frame},
		{"C4 kannel", 0, ucp.Login{OAdC: "user1", OTON: "6", ONPI: "5", STYP: "1", PWD: "secret", VERS: "0100"}, c4Frame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := encode(t, tt.trn, &tt.login); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			f := decode(t, tt.want)
			if got, ok := f.Msg.(*ucp.Login); !ok || *got != tt.login {
				t.Errorf("decode: got %#v, want %#v", f.Msg, tt.login)
			}
		})
	}
}

func TestC5LoginResults(t *testing.T) {
	tests := []struct {
		body string
		ack  bool
		code ucp.ErrorCode
	}{
		{"00/00019/R/60/A//6D", true, 0},
		{"00/00022/R/60/N/01//04", false, ucp.ECChecksum},
		{"00/00022/R/60/N/07//0A", false, ucp.ECAuthFailure},
	}
	for _, tt := range tests {
		f := decode(t, tt.body)
		r, ok := f.Msg.(*ucp.Result)
		if !ok || r.OT != ucp.OTSession || r.Ack != tt.ack || r.Code != tt.code {
			t.Errorf("%s: got %#v, want ack=%v code=%v", tt.body, f.Msg, tt.ack, tt.code)
			continue
		}
		if got := encode(t, f.TRN, r); got != tt.body {
			t.Errorf("re-encode: got %q, want %q", got, tt.body)
		}
		var ne *ucp.NackError
		if err := r.Err(); !tt.ack && (!errors.As(err, &ne) || ne.Code != tt.code) {
			t.Errorf("%s: Err() = %v, want NackError %v", tt.body, err, tt.code)
		}
	}
}

func TestC6KeepAlive(t *testing.T) {
	if got := encode(t, 2, &ucp.Alert{AdC: "0234765439845", PID: "0139"}); got != c6Frame {
		t.Errorf("got %q, want %q", got, c6Frame)
	}
	f := decode(t, c6Frame)
	if got, want := f.Msg, (&ucp.Alert{AdC: "0234765439845", PID: "0139"}); !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
}

func TestC7AlertAckForms(t *testing.T) {
	for _, body := range []string{"04/00023/R/31/A/0003/2D", "04/00024/R/31/A//0003/5D"} {
		r, ok := decode(t, body).Msg.(*ucp.Result)
		if !ok || !r.Ack || r.OT != ucp.OTAlert {
			t.Fatalf("%s: got %#v, want ACK 31", body, r)
		}
		if n, ok := r.Waiting(); !ok || n != 3 {
			t.Errorf("%s: Waiting() = %d, %v, want 3", body, n, ok)
		}
	}
	// We emit the 2-field form, as Kannel does.
	if got, want := encode(t, 4, &ucp.Result{OT: ucp.OTAlert, Ack: true, SM: "0003"}), "04/00023/R/31/A/0003/2D"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestC8SubmitNotificationAndVP(t *testing.T) {
	s := &ucp.Submit{AdC: "012345", OAdC: "09876", NRq: true, NAdC: "1920870340125000", NT: ucp.NotifyBuffered,
		NPID: "0539", VP: "3012961212", MT: ucp.MTAlphanumeric}
	s.SetText("Message 51")
	got := encode(t, 18, s)
	if got != c8Frame {
		t.Errorf("got  %q\nwant %q", got, c8Frame)
	}
	if n := strings.Count(got, "/"); n != 37 {
		t.Errorf("got %d slashes, want 37", n)
	}
	d := decode(t, c8Frame).Msg.(*ucp.Submit)
	if !reflect.DeepEqual(d, s) {
		t.Errorf("decode: got %#v, want %#v", d, s)
	}
	vp, err := ucp.ParseVP(d.VP, time.UTC)
	if want := time.Date(1996, 12, 30, 12, 12, 0, 0, time.UTC); err != nil || !vp.Equal(want) {
		t.Errorf("ParseVP(%q) = %v, %v, want %v", d.VP, vp, err, want)
	}
}

func TestC9TransparentData(t *testing.T) {
	want := &ucp.Submit{AdC: "0657467", OAdC: "078769", NRq: true, NT: ucp.NotifyAll, LRq: true, LRAd: "0545765",
		LPID: "0122", DD: true, DDT: "0808971800", MT: ucp.MTTransparent, NB: 32,
		Msg: []byte{0xF5, 0xAA, 0x34, 0xDE}, MCLs: "1"}
	if got := encode(t, 39, want); got != c9Frame {
		t.Errorf("got  %q\nwant %q", got, c9Frame)
	}
	got := decode(t, c9Frame).Msg.(*ucp.Submit)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
	// NB zero-padded the Kannel way parses the same (C26).
	padded := strings.Replace(c9Frame, "/4/32/", "/4/0032/", 1)
	padded = padded[:3] + "00101" + padded[8:len(padded)-2]
	got2 := decode(t, padded+checksum(padded)).Msg.(*ucp.Submit)
	if !reflect.DeepEqual(got2, want) {
		t.Errorf("NB 0032: got %#v, want %#v", got2, want)
	}
}

func TestC10C11AlphanumericOAdC(t *testing.T) {
	tests := []struct {
		name, frame, sender, wantHex, text string
		trn                                uint8
		nrq                                bool
		nt                                 ucp.NotifyType
		mcls                               string
	}{
		{"C10 ALPHA@NUM", c10Frame, "ALPHA@NUM", "10412614190438AB4D", "Short Message for NEMUX by Net::UCP", 1, false, 0, "1"},
		{"C11 Tester (kannel)", c11Frame, "Tester", "0BD4F29C5E9603", "Hello world", 2, true, 7, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &ucp.Submit{AdC: strings.Split(tt.frame, "/")[4], OAdC: tt.sender, OTOA: ucp.OTOAAlphanumeric,
				NRq: tt.nrq, NT: tt.nt, MCLs: tt.mcls}
			s.SetText(tt.text)
			got := encode(t, tt.trn, s)
			if got != tt.frame {
				t.Errorf("got  %q\nwant %q", got, tt.frame)
			}
			if !strings.Contains(got, "/"+tt.wantHex+"/") {
				t.Errorf("OAdC: %q does not contain %s", got, tt.wantHex)
			}
			d := decode(t, tt.frame).Msg.(*ucp.Submit)
			if d.OAdC != tt.sender {
				t.Errorf("decoded OAdC = %q, want %q", d.OAdC, tt.sender)
			}
		})
	}
	more := map[string]string{"A": "0241", "ABC": "0641E110", "Kannel": "0BCBB0DB5D6603"}
	for sender, want := range more {
		got := encode(t, 0, &ucp.Submit{AdC: "1", OAdC: sender, OTOA: ucp.OTOAAlphanumeric})
		if f := strings.Split(got, "/"); f[5] != want {
			t.Errorf("OAdC(%q) = %s, want %s", sender, f[5], want)
		}
	}
	if _, err := ucp.AppendFrame(nil, 0, &ucp.Submit{AdC: "1", OAdC: "TwelveChars!", OTOA: ucp.OTOAAlphanumeric}); !errors.Is(err, ucp.ErrField) {
		t.Errorf("12-character sender: got %v, want ErrField", err)
	}
}

func TestC12NonConformingAlphanumeric(t *testing.T) {
	s := decode(t, c12Frame).Msg.(*ucp.Submit)
	if s.OAdC != "Voyager" {
		t.Errorf("OAdC = %q, want %q", s.OAdC, "Voyager")
	}
	if text, err := s.Text(); err != nil || text != "Hello world" {
		t.Errorf("Text() = %q, %v, want Hello world", text, err)
	}
	if !s.XSer.HasDCS || s.XSer.DCS != 0 || len(s.XSer.Other) != 2 {
		t.Errorf("XSer = %#v, want DCS 00 and two TDMA services", s.XSer)
	}
}

func TestC13AMsgMapping(t *testing.T) {
	tests := map[string]string{"@£$": "000102", "€": "1B65", "Hello world": "48656C6C6F20776F726C64",
		"_¤{}[]~\\^|": "11241B281B291B3C1B3E1B3D1B2F1B141B40"}
	for text, want := range tests {
		s := &ucp.Submit{AdC: "1", OAdC: "2"}
		s.SetText(text)
		got := strings.Split(encode(t, 0, s), "/")[24]
		if got != want || s.MT != ucp.MTAlphanumeric {
			t.Errorf("AMsg(%q) = %s (MT %d), want %s (MT 3)", text, got, s.MT, want)
		}
		if back, err := s.Text(); err != nil || back != text {
			t.Errorf("Text() = %q, %v, want %q", back, err, text)
		}
	}
}

func TestC14UCS2Submit(t *testing.T) {
	// Kannel's address policy: "+" becomes "00" in AdC; an international
	// sender loses its "+" and gets OTOA 1139.
	s := &ucp.Submit{AdC: "0033612345678", OAdC: "33698765432", OTOA: ucp.OTOAInternational, MCLs: "1"}
	s.SetText("Привет 😃")
	got := encode(t, 0, s)
	f := strings.Split(got, "/")
	if f[22] != "4" || f[23] != "144" || f[24] != "041F044004380432043504420020D83DDE03" || f[32] != "1139" || f[34] != "020108" {
		t.Errorf("got MT %s NB %s TMsg %s OTOA %s XSer %s", f[22], f[23], f[24], f[32], f[34])
	}
	d := decode(t, got).Msg.(*ucp.Submit)
	if text, err := d.Text(); err != nil || text != "Привет 😃" {
		t.Errorf("Text() = %q, %v", text, err)
	}
}

func TestC15XSer(t *testing.T) {
	x, err := ucp.ParseXSer("010A0900034004020402F0FA")
	if err != nil || !bytes.Equal(x.UDH, []byte{0x09, 0x00, 0x03, 0x40, 0x04, 0x02, 0x04, 0x02, 0xF0, 0xFA}) || x.HasDCS || len(x.Other) != 0 {
		t.Errorf("got %#v, %v", x, err)
	}
	x, err = ucp.ParseXSer("020100060101070101")
	want := ucp.XSer{DCS: 0, HasDCS: true, Other: []ucp.TLV{{Type: 6, Data: []byte{1}}, {Type: 7, Data: []byte{1}}}}
	if err != nil || !reflect.DeepEqual(x, want) {
		t.Errorf("got %#v, %v, want %#v", x, err, want)
	}
	for _, bad := range []string{"0102AA", "01", "0", "ZZ00"} {
		if _, err := ucp.ParseXSer(bad); !errors.Is(err, ucp.ErrSyntax) {
			t.Errorf("ParseXSer(%q) error = %v, want ErrSyntax", bad, err)
		}
	}
}

func TestC16SegmentUDHInXSer(t *testing.T) {
	s := &ucp.Submit{AdC: "1", OAdC: "2", XSer: ucp.XSer{UDH: []byte{0x05, 0x00, 0x03, 0x2A, 0x02, 0x01}}}
	s.SetText(strings.Repeat("a", 153))
	got := encode(t, 0, s)
	if f := strings.Split(got, "/"); f[34] != "01060500032A0201" || len(f[24]) != 306 {
		t.Errorf("XSer %s, AMsg of %d hex characters", f[34], len(f[24]))
	}
}

func TestC17SubmitAckKey(t *testing.T) {
	r := decode(t, "00/00039/R/51/A//012234:090996101010/68").Msg.(*ucp.Result)
	k, ok := r.Key()
	if !r.Ack || r.MVP != "" || !ok || k != (ucp.Key{AdC: "012234", SCTS: "090996101010"}) {
		t.Fatalf("got %#v key %v %v", r, k, ok)
	}
	ts, err := ucp.ParseSCTS(k.SCTS, time.UTC)
	if want := time.Date(1996, 9, 9, 10, 10, 10, 0, time.UTC); err != nil || !ts.Equal(want) {
		t.Errorf("ParseSCTS = %v, %v, want %v", ts, err, want)
	}
	if got := ucp.FormatSCTS(ts, time.UTC); got != k.SCTS {
		t.Errorf("FormatSCTS = %s, want %s", got, k.SCTS)
	}
}

func TestC18NackClassification(t *testing.T) {
	tests := []struct {
		body      string
		code      ucp.ErrorCode
		text      string
		temporary bool
	}{
		{"00/00022/R/51/N/31//07", ucp.ECFaxGroupNotSupported, "", false},
		{"02/00036/R/51/N/04/throttled test/C8", ucp.ECNotAllowed, "throttled test", true},
	}
	for _, tt := range tests {
		r := decode(t, tt.body).Msg.(*ucp.Result)
		err := r.Err()
		var ne *ucp.NackError
		if !errors.As(err, &ne) || ne.Code != tt.code || ne.Text != tt.text {
			t.Fatalf("%s: got %v", tt.body, err)
		}
		if got := ucp.Temporary(err); got != tt.temporary {
			t.Errorf("%s: Temporary = %v, want %v", tt.body, got, tt.temporary)
		}
	}
	temporary := map[ucp.ErrorCode]bool{1: true, 4: true, 37: true, 50: true, 55: true}
	for c := 0; c < 100; c++ {
		want := temporary[ucp.ErrorCode(c)] || c >= 90
		if got := ucp.ErrorCode(c).Temporary(); got != want {
			t.Errorf("ErrorCode(%02d).Temporary() = %v, want %v", c, got, want)
		}
	}
	if !ucp.Temporary(ucp.ErrTimeout) {
		t.Errorf("Temporary(ErrTimeout) = false, want true")
	}
}

func TestC19MO(t *testing.T) {
	f := decode(t, c19Frame)
	d, ok := f.Msg.(*ucp.Deliver)
	if !ok {
		t.Fatalf("got %T, want *Deliver", f.Msg)
	}
	if text, err := d.Text(); err != nil || text != "Call you back later." || d.SCTS != "120396111055" || d.DCs != "0" {
		t.Errorf("got text %q (%v), SCTS %s, DCs %q", text, err, d.SCTS, d.DCs)
	}
	if got := encode(t, f.TRN, d); got != c19Frame {
		t.Errorf("re-encode: got %q, want %q", got, c19Frame)
	}
	ack := encode(t, f.TRN, &ucp.Result{OT: ucp.OTDeliver, Ack: true})
	if ack != kannelAck {
		t.Errorf("ACK: got %q, want %q", ack, kannelAck)
	}
}

func TestC20Notification(t *testing.T) {
	n := decode(t, c2Frame).Msg.(*ucp.Notification)
	if n.DSt != ucp.StatusBuffered || n.DSt.Final() || n.Rsn != 108 || n.DSCTS != "090196161105" {
		t.Errorf("got DSt %v Rsn %d DSCTS %s", n.DSt, n.Rsn, n.DSCTS)
	}
	if k := n.Key(); k != (ucp.Key{AdC: "3155555", SCTS: "090196161057"}) {
		t.Errorf("Key() = %v", k)
	}
	text, err := n.Text()
	if want := "Message for 3155555, with identification 960109161057 has been buffered"; err != nil || text != want {
		t.Errorf("Text() = %q, %v, want %q", text, err, want)
	}
	if got, want := encode(t, 0, &ucp.Result{OT: ucp.OTNotification, Ack: true, SM: "020296020202"}), "00/00032/R/53/A//020296020202/F2"; got != want {
		t.Errorf("ACK: got %q, want %q", got, want)
	}
}

func TestC21RejectBadChecksumOrLEN(t *testing.T) {
	tests := []struct {
		body string
		want error
	}{
		{"00/00022/R/51/N/31//08", ucp.ErrChecksum},
		{"00/00023/R/51/N/31//07", ucp.ErrLength},
		{"00/00022/R/51/N/31//0G", ucp.ErrChecksum},
		{"00/0002x/R/51/N/31//07", ucp.ErrSyntax},
		{"00/00022/X/51/N/31//07", ucp.ErrSyntax},
	}
	for _, tt := range tests {
		if _, err := ucp.Decode(wire(tt.body)); !errors.Is(err, tt.want) {
			t.Errorf("Decode(%q) error = %v, want %v", tt.body, err, tt.want)
		}
	}
	// The header of an operation with a bad checksum still parses, so the
	// receiver can answer N/01 with the same TRN and OT.
	h, err := ucp.ParseHeader(wire("07/00022/O/52/N/31//00"))
	if err != nil || h.TRN != 7 || h.OT != ucp.OTDeliver || h.Kind != ucp.KindOperation {
		t.Errorf("ParseHeader = %+v, %v", h, err)
	}
}

func TestC25StreamReassembly(t *testing.T) {
	a, b := wire(kannelAck), wire(c19Frame)
	tests := []struct {
		name  string
		reads [][]byte
	}{
		{"two frames in one read", [][]byte{append(append([]byte{}, a...), b...)}},
		{"split over three reads", [][]byte{b[:5], b[5:60], append(b[60:], a...)}},
		{"junk before STX", [][]byte{[]byte("junk\x03\r\n"), a, []byte("xx"), b}},
		{"byte by byte", splitEvery(append(append([]byte("\x03junk"), a...), b...), 1)},
		{"truncated frame then a full one", [][]byte{b[:40], a, b}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ucp.NewReader(&chunkReader{chunks: tt.reads}, 0)
			var got []string
			for {
				f, err := r.ReadFrame()
				if err != nil {
					break
				}
				if _, err := ucp.Decode(f); err != nil {
					t.Errorf("Decode(%q): %v", f, err)
				}
				got = append(got, string(f))
			}
			want := []string{string(a), string(b)}
			if tt.name == "split over three reads" {
				want = []string{string(b), string(a)}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func TestC26TolerantParsing(t *testing.T) {
	lower := "02/00059/O/60/07656765/2/1/1/50617373776f7264//0100//////81"
	f := decode(t, lower) // lower-case hex in PWD and a lower-case checksum
	if l := f.Msg.(*ucp.Login); l.PWD != "Password" {
		t.Errorf("PWD = %q", l.PWD)
	}
	decode(t, c6Frame[:len(c6Frame)-2]+"a0")

	mo := &ucp.Deliver{AdC: "36000", OAdC: "33612345678", SCTS: "271126120000", DCs: "0",
		XSer: ucp.XSer{DCS: 0x08, HasDCS: true}, MT: ucp.MTTransparent, Msg: []byte{0x04, 0x1F, 0x00, 0x21}}
	d := decode(t, encode(t, 0, mo)).Msg.(*ucp.Deliver)
	if text, err := d.Text(); err != nil || text != "П!" {
		t.Errorf("XSer DCS should win over DCs: Text() = %q, %v", text, err)
	}
}

func checksum(bodyWithoutCK string) string {
	var sum byte
	for i := 0; i < len(bodyWithoutCK); i++ {
		sum += bodyWithoutCK[i]
	}
	const hex = "0123456789ABCDEF"
	return string([]byte{hex[sum>>4], hex[sum&0xf]})
}

type chunkReader struct{ chunks [][]byte }

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.chunks) > 0 && len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	return n, nil
}

func splitEvery(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, b[:n])
		b = b[n:]
	}
	return append(out, b)
}

// TestOp5xExamples: 54–58 decode as generic 5x operations (spec §5.6–5.10).
func TestOp5xExamples(t *testing.T) {
	for _, body := range []string{
		"00/00087/O/54/012345/0111111//////1/0654321/0100/////010197120501////3///////////////4C",
		"65/00066/O/55/0786483/0786875676////////////////////////////////7B",
	} {
		f := decode(t, body)
		op, ok := f.Msg.(*ucp.Op5x)
		if !ok || op.OT != f.OT() || op.AdC == "" {
			t.Errorf("%s: got %#v", body, f.Msg)
			continue
		}
		if got := encode(t, f.TRN, op); got != body {
			t.Errorf("re-encode: got %q, want %q", got, body)
		}
	}
	for _, body := range []string{"00/00020/R/57/A///9A", "00/00027/R/58/N/02/07567/1A"} {
		f := decode(t, body)
		if got := encode(t, f.TRN, f.Msg); got != body {
			t.Errorf("re-encode: got %q, want %q", got, body)
		}
	}
}
