package ucp

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MsgType is the MT field: how Msg is encoded.
type MsgType uint8

const (
	MTNumeric      MsgType = 2 // NMsg: digits as they are
	MTAlphanumeric MsgType = 3 // AMsg: IRA hex of unpacked GSM 03.38 septets
	MTTransparent  MsgType = 4 // TMsg: hex octets, NB = number of bits
)

// NotifyType is the NT bitmask of a 5x submit. Zero means the SMSC default.
type NotifyType uint8

const (
	NotifyDelivered    NotifyType = 1 // DN
	NotifyNotDelivered NotifyType = 2 // ND
	NotifyBuffered     NotifyType = 4 // BN
	NotifyAll          NotifyType = 7
)

// DeliveryStatus is the DSt field of a 53 notification.
type DeliveryStatus uint8

const (
	StatusDelivered    DeliveryStatus = 0
	StatusBuffered     DeliveryStatus = 1 // intermediate, see Rsn
	StatusNotDelivered DeliveryStatus = 2 // see Rsn
)

// Final reports whether no further notification will follow for the message.
func (s DeliveryStatus) Final() bool { return s != StatusBuffered }

func (s DeliveryStatus) String() string {
	switch s {
	case StatusDelivered:
		return "delivered"
	case StatusBuffered:
		return "buffered"
	case StatusNotDelivered:
		return "not delivered"
	}
	return "DSt " + strconv.Itoa(int(s))
}

// Submit is OT 51, submit short message (SMT → SMSC).
type Submit struct {
	AdC  string // recipient
	OAdC string // originator; the clear-text sender when OTOA is "5039"
	OTOA string // "" numeric, "1139" international, "5039" alphanumeric
	AC   string

	NRq  bool // notification (DR) requested
	NAdC string
	NT   NotifyType
	NPID string
	LRq  bool
	LRAd string
	LPID string
	DD   bool
	DDT  string // DDMMYYhhmm, see FormatVP
	VP   string // DDMMYYhhmm, absolute, see FormatVP
	RPID string

	MT  MsgType
	NB  int    // bits in TMsg (MT 4); 0 means 8 × len(Msg)
	Msg []byte // MT 3: unpacked septets; MT 4: octets; MT 2: digits

	MMS  bool
	PR   bool
	DCs  string // deprecated; use XSer.DCS
	MCLs string // message class 0–3
	RPI  string
	XSer XSer
}

// Deliver is OT 52, deliver short message: an MO from the SMSC.
type Deliver struct {
	AdC   string // our short number / large account
	OAdC  string // mobile originator; clear text when OTOA is "5039"
	OTOA  string
	SCTS  string // DDMMYYhhmmss
	RPID  string
	MT    MsgType
	NB    int
	Msg   []byte
	MMS   bool
	DCs   string
	MCLs  string
	RPI   string
	HPLMN string
	XSer  XSer
}

// Notification is OT 53, a delivery notification (DR) from the SMSC.
//
// It refers to the submitted message by (OAdC, SCTS): OAdC is the original
// recipient and SCTS the timestamp of the original message, as returned in
// the 51 ACK (see SubmitResult.Key and Notification.Key).
type Notification struct {
	AdC   string // who gets the notification: our original originator
	OAdC  string // the original recipient
	OTOA  string
	SCTS  string // SCTS of the original message
	DSt   DeliveryStatus
	Rsn   int    // reason code 000–255 (ucp.md §2.7)
	DSCTS string // time of (non-)delivery
	MT    MsgType
	Msg   []byte // human-readable text, usually MT 3
	MMS   bool
	HPLMN string
}

// Key returns the DR correlation key of the notification.
func (n *Notification) Key() Key { return Key{AdC: n.OAdC, SCTS: n.SCTS} }

// Key identifies a submitted message for DR correlation: the recipient and
// the SMSC timestamp from the 51 ACK, which come back as OAdC and SCTS in
// the 53. Kannel matches on exactly this pair.
type Key struct {
	AdC  string
	SCTS string
}

// Login is OT 60, session management.
type Login struct {
	OAdC string // account: short number or login
	OTON string // "1" international, "2" national, "6" abbreviated
	ONPI string // "1" E.164, "3" X.121, "5" private
	STYP string // "1" open session, "3" change password, …
	PWD  string // clear text; IRA hex on the wire
	NPWD string // clear text; IRA hex on the wire
	VERS string // "0100"
	OPID string
}

// String redacts the passwords.
func (l Login) String() string {
	return fmt.Sprintf("Login{OAdC:%s OTON:%s ONPI:%s STYP:%s VERS:%s}", l.OAdC, l.OTON, l.ONPI, l.STYP, l.VERS)
}

// GoString redacts the passwords for %#v too.
func (l Login) GoString() string { return l.String() }

// Login field values.
const (
	STYPOpenSession    = "1"
	STYPChangePassword = "3"
	Version0100        = "0100"
	PIDPCOverTCP       = "0539"
)

// Alert is OT 31, SMT alert, used as keep-alive.
type Alert struct {
	AdC string
	PID string // "0539" PC via TCP/IP
}

// Call is OT 01, call input. Some SMSCs deliver MO and DR with it.
type Call struct {
	AdC  string
	OAdC string
	AC   string
	MT   MsgType // 2 or 3
	Msg  []byte  // MT 2: digits; MT 3: unpacked septets
}

// RawOp is any operation without a typed decoder (02, 03, 30, 54–58, 61, …)
// with its fields as on the wire; a 5x operation has 33.
type RawOp struct {
	OT     OT
	Fields []string
}

// Result is a positive (ACK) or negative (NACK) result.
type Result struct {
	OT   OT
	Ack  bool
	MVP  string    // ACK of 30 and 5x only
	Code ErrorCode // NACK only
	SM   string
}

// Err returns nil for an ACK and a *NackError for a NACK.
func (r *Result) Err() error {
	if r.Ack {
		return nil
	}
	return &NackError{OT: r.OT, Code: r.Code, Text: r.SM}
}

// Key splits the SM of a 51 (or 01, 30) ACK, "AdC:SCTS". A bare 12-digit
// SCTS is accepted too, with an empty AdC.
func (r *Result) Key() (Key, bool) {
	sm := r.SM
	adc := ""
	if i := strings.LastIndexByte(sm, ':'); i >= 0 {
		adc, sm = sm[:i], sm[i+1:]
	}
	if len(sm) != 12 || !isDigits(sm) {
		return Key{}, false
	}
	return Key{AdC: adc, SCTS: sm}, true
}

// Waiting returns the number of messages waiting at the SMSC from the SM of
// a 31 ACK.
func (r *Result) Waiting() (int, bool) { return parseDigits(r.SM) }

func (*Submit) Kind() Kind       { return KindOperation }
func (*Deliver) Kind() Kind      { return KindOperation }
func (*Notification) Kind() Kind { return KindOperation }
func (*Login) Kind() Kind        { return KindOperation }
func (*Alert) Kind() Kind        { return KindOperation }
func (*Call) Kind() Kind         { return KindOperation }
func (*RawOp) Kind() Kind        { return KindOperation }
func (*Result) Kind() Kind       { return KindResult }

func (*Submit) OpType() OT       { return OTSubmit }
func (*Deliver) OpType() OT      { return OTDeliver }
func (*Notification) OpType() OT { return OTNotification }
func (*Login) OpType() OT        { return OTSession }
func (*Alert) OpType() OT        { return OTAlert }
func (*Call) OpType() OT         { return OTCall }
func (r *RawOp) OpType() OT      { return r.OT }
func (r *Result) OpType() OT     { return r.OT }

// SetText sets MT, NB, Msg and XSer DCS for text: GSM 03.38 (MT 3) when every
// character is in the default alphabet, UCS-2 (MT 4, XSer DCS 08) otherwise.
// It does not split: callers send one segment per Submit.
func (s *Submit) SetText(text string) {
	if s.XSer.HasDCS && dcsAlphabet(s.XSer.DCS) != alphaGSM {
		s.XSer.HasDCS = false
	}
	s.MT, s.NB, s.Msg = textPayload(text, &s.XSer)
}

// Text decodes Msg as text (see Deliver.Text).
func (s *Submit) Text() (string, error) { return messageText(s.MT, s.Msg, s.XSer) }

// SetText sets MT, NB, Msg and XSer DCS for text, as Submit.SetText does.
func (d *Deliver) SetText(text string) {
	if d.XSer.HasDCS && dcsAlphabet(d.XSer.DCS) != alphaGSM {
		d.XSer.HasDCS = false
	}
	d.MT, d.NB, d.Msg = textPayload(text, &d.XSer)
}

// Text decodes the MO payload. XSer DCS decides the alphabet when present
// (it wins over DCs); otherwise MT 3 is GSM text and MT 4 is binary, for
// which ErrNotText is returned. A UDH travels in XSer, never in Msg.
func (d *Deliver) Text() (string, error) { return messageText(d.MT, d.Msg, d.XSer) }

// Text decodes the notification's human-readable text.
func (n *Notification) Text() (string, error) { return messageText(n.MT, n.Msg, XSer{}) }

// SetText sets the notification's text (GSM, MT 3). Characters outside the
// default alphabet are replaced by '?'.
func (n *Notification) SetText(text string) {
	n.MT, n.Msg = MTAlphanumeric, gsmText(text)
}

// Op5x is the 33-field layout shared by 51–58 (ucp.md §2.4), field by field,
// with Msg and XSer decoded. Decode returns it for 54–58 (modify, inquiry,
// delete, and the SMSC's 57 and 58); flags and codes stay as on the wire.
type Op5x struct {
	OT                                                                     OT
	AdC, OAdC, AC, NRq, NAdC, NT, NPID, LRq, LRAd, LPID, DD, DDT, VP, RPID string
	SCTS, DSt, Rsn, DSCTS                                                  string
	MT                                                                     MsgType
	NB                                                                     int
	Msg                                                                    []byte
	MMS, PR, DCs, MCLs, RPI, CPg, RPLy, OTOA, HPLMN                        string
	XSer                                                                   XSer
	RES4, RES5                                                             string
}

func (*Op5x) Kind() Kind                              { return KindOperation }
func (o *Op5x) OpType() OT                            { return o.OT }
func (o *Op5x) appendData(dst []byte) ([]byte, error) { return o.append(dst) }

// Text decodes Msg (see Deliver.Text).
func (o *Op5x) Text() (string, error) { return messageText(o.MT, o.Msg, o.XSer) }

// fieldWriter appends fields and keeps the first error.
type fieldWriter struct {
	b   []byte
	err error
}

func (w *fieldWriter) str(name, v string) {
	if w.err == nil {
		w.b, w.err = appendField(w.b, name, v)
	}
}

func (w *fieldWriter) hex(v []byte) {
	if w.err == nil {
		w.b = appendHex(w.b, v)
		w.b = append(w.b, '/')
	}
}

func (w *fieldWriter) hexString(v string) {
	if w.err == nil {
		for i := 0; i < len(v); i++ {
			w.b = append(w.b, hexUpper[v[i]>>4], hexUpper[v[i]&0x0f])
		}
		w.b = append(w.b, '/')
	}
}

func (w *fieldWriter) num(v int) {
	if w.err == nil {
		w.b = strconv.AppendInt(w.b, int64(v), 10)
		w.b = append(w.b, '/')
	}
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return ""
}

func digit(v uint8) string {
	if v == 0 {
		return ""
	}
	if v > 9 {
		return "?" // rejected by the caller's validation
	}
	return "0123456789"[v : v+1]
}

func (l *Op5x) append(dst []byte) ([]byte, error) {
	w := fieldWriter{b: dst}
	w.str("AdC", l.AdC)
	if l.OTOA == OTOAAlphanumeric {
		if w.err == nil {
			w.b, w.err = appendAlphanumeric(w.b, l.OAdC)
			w.b = append(w.b, '/')
		}
	} else {
		w.str("OAdC", l.OAdC)
	}
	w.str("AC", l.AC)
	w.str("NRq", l.NRq)
	w.str("NAdC", l.NAdC)
	w.str("NT", l.NT)
	w.str("NPID", l.NPID)
	w.str("LRq", l.LRq)
	w.str("LRAd", l.LRAd)
	w.str("LPID", l.LPID)
	w.str("DD", l.DD)
	w.str("DDT", l.DDT)
	w.str("VP", l.VP)
	w.str("RPID", l.RPID)
	w.str("SCTS", l.SCTS)
	w.str("DSt", l.DSt)
	w.str("Rsn", l.Rsn)
	w.str("DSCTS", l.DSCTS)
	switch l.MT {
	case 0:
		if len(l.Msg) > 0 {
			return dst, fmt.Errorf("field Msg without MT: %w", ErrField)
		}
		w.str("MT", "")
		w.str("NB", "")
		w.str("Msg", "")
	case MTNumeric:
		w.str("MT", "2")
		w.str("NB", "")
		w.str("Msg", string(l.Msg)) // does not allocate: only read
	case MTAlphanumeric:
		w.str("MT", "3")
		w.str("NB", "")
		w.hex(l.Msg)
	case MTTransparent:
		w.str("MT", "4")
		switch {
		case l.NB > 0:
			w.num(l.NB)
		case len(l.Msg) > 0:
			w.num(8 * len(l.Msg))
		default:
			w.str("NB", "")
		}
		w.hex(l.Msg)
	default:
		return dst, fmt.Errorf("field MT %d: %w", l.MT, ErrField)
	}
	w.str("MMS", l.MMS)
	w.str("PR", l.PR)
	w.str("DCs", l.DCs)
	w.str("MCLs", l.MCLs)
	w.str("RPI", l.RPI)
	w.str("CPg", l.CPg)
	w.str("RPLy", l.RPLy)
	w.str("OTOA", l.OTOA)
	w.str("HPLMN", l.HPLMN)
	if w.err == nil {
		w.b, w.err = appendXSer(w.b, l.XSer)
		w.b = append(w.b, '/')
	}
	w.str("RES4", l.RES4)
	w.str("RES5", l.RES5)
	if w.err != nil {
		return dst, w.err
	}
	return w.b, nil
}

const fields5x = 33

// decode fills l from the 33 fields. Msg and XSer share one allocation.
func (l *Op5x) decode(f []string, alpha alphaOAdC) error {
	var p payload5x
	if err := p.decode(f, alpha); err != nil {
		return err
	}
	*l = Op5x{
		OT:  l.OT,
		AdC: f[0], OAdC: p.OAdC, AC: f[2], NRq: f[3], NAdC: f[4], NT: f[5], NPID: f[6],
		LRq: f[7], LRAd: f[8], LPID: f[9], DD: f[10], DDT: f[11], VP: f[12], RPID: f[13],
		SCTS: f[14], DSt: f[15], Rsn: f[16], DSCTS: f[17], MT: p.MT, NB: p.NB, Msg: p.Msg,
		MMS: f[21], PR: f[22], DCs: f[23], MCLs: f[24], RPI: f[25], CPg: f[26], RPLy: f[27],
		OTOA: f[28], HPLMN: f[29], XSer: p.XSer, RES4: f[31], RES5: f[32],
	}
	return nil
}

// payload5x holds the 5x fields that need decoding rather than copying:
// MT, NB, Msg, XSer and an alphanumeric OAdC.
type payload5x struct {
	OAdC string
	MT   MsgType
	NB   int
	Msg  []byte
	XSer XSer
}

// decode checks the field count and decodes the payload. Msg and XSer share
// one allocation. alpha is the OAdC when dataString already decoded it.
func (l *payload5x) decode(f []string, alpha alphaOAdC) error {
	if len(f) != fields5x {
		return fmt.Errorf("%d fields, want %d: %w", len(f), fields5x, ErrSyntax)
	}
	l.OAdC = f[1]
	mt, nb, msg, xser := f[18], f[19], f[20], f[30]
	switch mt {
	case "":
	case "2", "3", "4":
		l.MT = MsgType(mt[0] - '0')
	default:
		return fmt.Errorf("field MT: %w", ErrSyntax)
	}
	// NB only means something for MT 4 (go-gsm fills it for MT 3 too).
	if nb != "" && l.MT == MTTransparent {
		n, ok := parseDigits(nb)
		if !ok || len(nb) > 5 {
			return fmt.Errorf("field NB: %w", ErrSyntax)
		}
		l.NB = n
	}
	if len(msg)%2 != 0 && l.MT != MTNumeric {
		return fmt.Errorf("field Msg: odd hex length: %w", ErrSyntax)
	}
	if len(xser)%2 != 0 {
		return fmt.Errorf("field XSer: odd hex length: %w", ErrSyntax)
	}
	msgLen := len(msg) / 2
	if l.MT == MTNumeric {
		msgLen = len(msg)
	}
	if n := msgLen + len(xser)/2; n > 0 {
		buf := make([]byte, n)
		if msg != "" {
			switch l.MT {
			case 0:
				return fmt.Errorf("field Msg without MT: %w", ErrSyntax)
			case MTNumeric:
				copy(buf, msg)
			default:
				if !decodeHexInto(buf[:msgLen], msg) {
					return fmt.Errorf("field Msg: hex: %w", ErrSyntax)
				}
			}
			l.Msg = buf[:msgLen:msgLen]
		}
		if xser != "" {
			x := buf[msgLen:]
			if !decodeHexInto(x, xser) {
				return fmt.Errorf("field XSer: hex: %w", ErrSyntax)
			}
			var err error
			if l.XSer, err = parseXSerBytes(x); err != nil {
				return fmt.Errorf("field XSer: %w", err)
			}
		}
	}
	if l.MT == MTTransparent && l.NB == 0 {
		l.NB = 8 * len(l.Msg) // NB is mandatory with TMsg; be lenient, as encode is
	}
	if f[28] == OTOAAlphanumeric {
		s, err := alpha.text, alpha.err
		if !alpha.set {
			s, err = decodeAlphanumeric(l.OAdC)
		}
		if err != nil {
			return fmt.Errorf("field OAdC: %w", err)
		}
		l.OAdC = s
	}
	return nil
}

func parseFlag(name, v string) (bool, error) {
	switch v {
	case "", "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, fmt.Errorf("field %s: %w", name, ErrSyntax)
}

func parseDigit(name, v string, max uint8) (uint8, error) {
	if v == "" {
		return 0, nil
	}
	if len(v) != 1 || v[0] < '0' || v[0]-'0' > max {
		return 0, fmt.Errorf("field %s: %w", name, ErrSyntax)
	}
	return v[0] - '0', nil
}

func (s *Submit) layout() Op5x {
	return Op5x{
		AdC: s.AdC, OAdC: s.OAdC, AC: s.AC, NRq: flag(s.NRq), NAdC: s.NAdC, NT: digit(uint8(s.NT)),
		NPID: s.NPID, LRq: flag(s.LRq), LRAd: s.LRAd, LPID: s.LPID, DD: flag(s.DD), DDT: s.DDT,
		VP: s.VP, RPID: s.RPID, MT: s.MT, NB: s.NB, Msg: s.Msg, MMS: flag(s.MMS), PR: flag(s.PR),
		DCs: s.DCs, MCLs: s.MCLs, RPI: s.RPI, OTOA: s.OTOA, XSer: s.XSer,
	}
}

func (s *Submit) appendData(dst []byte) ([]byte, error) {
	if s.NT > NotifyAll {
		return dst, fmt.Errorf("field NT %d: %w", s.NT, ErrField)
	}
	l := s.layout()
	return l.append(dst)
}

func (s *Submit) decode(f []string, alpha alphaOAdC) error {
	var p payload5x
	if err := p.decode(f, alpha); err != nil {
		return err
	}
	nt, err := parseDigit("NT", f[5], 7)
	if err != nil {
		return err
	}
	nrq, err1 := parseFlag("NRq", f[3])
	lrq, err2 := parseFlag("LRq", f[7])
	dd, err3 := parseFlag("DD", f[10])
	mms, err4 := parseFlag("MMS", f[21])
	pr, err5 := parseFlag("PR", f[22])
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return err
	}
	*s = Submit{
		AdC: f[0], OAdC: p.OAdC, OTOA: f[28], AC: f[2],
		NRq: nrq, NAdC: f[4], NT: NotifyType(nt), NPID: f[6],
		LRq: lrq, LRAd: f[8], LPID: f[9], DD: dd, DDT: f[11], VP: f[12], RPID: f[13],
		MT: p.MT, NB: p.NB, Msg: p.Msg, MMS: mms, PR: pr,
		DCs: f[23], MCLs: f[24], RPI: f[25], XSer: p.XSer,
	}
	return nil
}

func (d *Deliver) appendData(dst []byte) ([]byte, error) {
	l := Op5x{
		AdC: d.AdC, OAdC: d.OAdC, RPID: d.RPID, SCTS: d.SCTS, MT: d.MT, NB: d.NB, Msg: d.Msg,
		MMS: flag(d.MMS), DCs: d.DCs, MCLs: d.MCLs, RPI: d.RPI, OTOA: d.OTOA, HPLMN: d.HPLMN, XSer: d.XSer,
	}
	return l.append(dst)
}

func (d *Deliver) decode(f []string, alpha alphaOAdC) error {
	var p payload5x
	if err := p.decode(f, alpha); err != nil {
		return err
	}
	mms, err := parseFlag("MMS", f[21])
	if err != nil {
		return err
	}
	*d = Deliver{
		AdC: f[0], OAdC: p.OAdC, OTOA: f[28], SCTS: f[14], RPID: f[13], MT: p.MT, NB: p.NB, Msg: p.Msg,
		MMS: mms, DCs: f[23], MCLs: f[24], RPI: f[25], HPLMN: f[29], XSer: p.XSer,
	}
	return nil
}

func (n *Notification) appendData(dst []byte) ([]byte, error) {
	if n.DSt > 9 {
		return dst, fmt.Errorf("field DSt %d: %w", n.DSt, ErrField)
	}
	if n.Rsn < 0 || n.Rsn > 999 {
		return dst, fmt.Errorf("field Rsn %d: %w", n.Rsn, ErrField)
	}
	var rsn [3]byte
	rsn[0], rsn[1], rsn[2] = byte('0'+n.Rsn/100), byte('0'+n.Rsn/10%10), byte('0'+n.Rsn%10)
	l := Op5x{
		AdC: n.AdC, OAdC: n.OAdC, OTOA: n.OTOA, SCTS: n.SCTS, DSt: "0123456789"[n.DSt : n.DSt+1],
		Rsn: string(rsn[:]), DSCTS: n.DSCTS, MT: n.MT, Msg: n.Msg, MMS: flag(n.MMS), HPLMN: n.HPLMN,
	}
	return l.append(dst)
}

func (n *Notification) decode(f []string, alpha alphaOAdC) error {
	var p payload5x
	if err := p.decode(f, alpha); err != nil {
		return err
	}
	dst := f[15]
	if len(dst) != 1 || dst[0] < '0' || dst[0] > '9' {
		return fmt.Errorf("field DSt: %w", ErrSyntax)
	}
	rsn := 0
	if f[16] != "" {
		v, ok := parseDigits(f[16])
		if !ok || len(f[16]) > 3 {
			return fmt.Errorf("field Rsn: %w", ErrSyntax)
		}
		rsn = v
	}
	mms, err := parseFlag("MMS", f[21])
	if err != nil {
		return err
	}
	*n = Notification{
		AdC: f[0], OAdC: p.OAdC, OTOA: f[28], SCTS: f[14], DSt: DeliveryStatus(dst[0] - '0'),
		Rsn: rsn, DSCTS: f[17], MT: p.MT, Msg: p.Msg, MMS: mms, HPLMN: f[29],
	}
	return nil
}

const fields60 = 12

func (l *Login) appendData(dst []byte) ([]byte, error) {
	w := fieldWriter{b: dst}
	w.str("OAdC", l.OAdC)
	w.str("OTON", l.OTON)
	w.str("ONPI", l.ONPI)
	w.str("STYP", l.STYP)
	w.hexString(l.PWD)
	w.hexString(l.NPWD)
	w.str("VERS", l.VERS)
	w.str("LAdC", "")
	w.str("LTON", "")
	w.str("LNPI", "")
	w.str("OPID", l.OPID)
	w.str("RES1", "")
	return w.b, w.err
}

func (l *Login) decode(f []string) error {
	if len(f) != fields60 {
		return fmt.Errorf("%d fields, want %d: %w", len(f), fields60, ErrSyntax)
	}
	pwd, err := hexText("PWD", f[4])
	if err != nil {
		return err
	}
	npwd, err := hexText("NPWD", f[5])
	if err != nil {
		return err
	}
	*l = Login{OAdC: f[0], OTON: f[1], ONPI: f[2], STYP: f[3], PWD: pwd, NPWD: npwd, VERS: f[6], OPID: f[10]}
	return nil
}

func hexText(name, s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if len(s)%2 != 0 {
		return "", fmt.Errorf("field %s: odd hex length: %w", name, ErrSyntax)
	}
	b := make([]byte, len(s)/2)
	if !decodeHexInto(b, s) {
		return "", fmt.Errorf("field %s: hex: %w", name, ErrSyntax)
	}
	return string(b), nil
}

func (a *Alert) appendData(dst []byte) ([]byte, error) {
	w := fieldWriter{b: dst}
	w.str("AdC", a.AdC)
	w.str("PID", a.PID)
	return w.b, w.err
}

func (a *Alert) decode(f []string) error {
	if len(f) != 2 {
		return fmt.Errorf("%d fields, want 2: %w", len(f), ErrSyntax)
	}
	*a = Alert{AdC: f[0], PID: f[1]}
	return nil
}

func (c *Call) appendData(dst []byte) ([]byte, error) {
	w := fieldWriter{b: dst}
	w.str("AdC", c.AdC)
	w.str("OAdC", c.OAdC)
	w.str("AC", c.AC)
	switch c.MT {
	case MTNumeric:
		w.str("MT", "2")
		w.str("NMsg", string(c.Msg))
	case MTAlphanumeric:
		w.str("MT", "3")
		w.hex(c.Msg)
	default:
		return dst, fmt.Errorf("field MT %d: %w", c.MT, ErrField)
	}
	return w.b, w.err
}

func (c *Call) decode(f []string) error {
	if len(f) != 5 {
		return fmt.Errorf("%d fields, want 5: %w", len(f), ErrSyntax)
	}
	*c = Call{AdC: f[0], OAdC: f[1], AC: f[2]}
	switch f[3] {
	case "2":
		c.MT = MTNumeric
		if f[4] != "" {
			c.Msg = []byte(f[4])
		}
	case "3":
		c.MT = MTAlphanumeric
		if f[4] != "" {
			if len(f[4])%2 != 0 {
				return fmt.Errorf("field AMsg: odd hex length: %w", ErrSyntax)
			}
			c.Msg = make([]byte, len(f[4])/2)
			if !decodeHexInto(c.Msg, f[4]) {
				return fmt.Errorf("field AMsg: hex: %w", ErrSyntax)
			}
		}
	default:
		return fmt.Errorf("field MT: %w", ErrSyntax)
	}
	return nil
}

// Text decodes the call's message (digits or GSM text).
func (c *Call) Text() (string, error) { return messageText(c.MT, c.Msg, XSer{}) }

func (r *RawOp) appendData(dst []byte) ([]byte, error) {
	w := fieldWriter{b: dst}
	for _, f := range r.Fields {
		w.str("raw", f)
	}
	return w.b, w.err
}

func (r *Result) appendData(dst []byte) ([]byte, error) {
	w := fieldWriter{b: dst}
	if r.Ack {
		w.str("ACK", "A")
		if r.OT.resultHasMVP() || r.MVP != "" {
			w.str("MVP", r.MVP)
		}
		w.str("SM", r.SM)
		return w.b, w.err
	}
	if r.Code > 99 {
		return dst, fmt.Errorf("field EC %d: %w", r.Code, ErrField)
	}
	w.str("NACK", "N")
	if w.err == nil {
		w.b = appendTwoDigits(w.b, int(r.Code))
		w.b = append(w.b, '/')
	}
	w.str("SM", r.SM)
	return w.b, w.err
}

// decode accepts A/SM, A/MVP/SM (both 31 ACK forms, C7), N/EC and N/EC/SM.
func (r *Result) decode(ot OT, f []string) error {
	*r = Result{OT: ot}
	if len(f) == 0 || len(f) > 3 {
		return fmt.Errorf("result with %d fields: %w", len(f), ErrSyntax)
	}
	switch f[0] {
	case "A":
		r.Ack = true
		switch len(f) {
		case 2:
			r.SM = f[1]
		case 3:
			r.MVP, r.SM = f[1], f[2]
		}
	case "N":
		if len(f) < 2 {
			return fmt.Errorf("NACK without EC: %w", ErrSyntax)
		}
		ec, ok := parseDigits(f[1])
		if !ok || len(f[1]) > 2 {
			return fmt.Errorf("field EC: %w", ErrSyntax)
		}
		r.Code = ErrorCode(ec)
		if len(f) == 3 {
			r.SM = f[2]
		}
	default:
		return fmt.Errorf("result neither A nor N: %w", ErrSyntax)
	}
	return nil
}
