package ucp

import "fmt"

// XSer service types (ucp.md §3.7).
const (
	XSerUDH           = 0x01
	XSerDCS           = 0x02
	XSerBillingID     = 0x0c
	XSerSingleShot    = 0x0d
	xserMaxDataOctets = 0xff
)

// TLV is one extra service of the XSer field.
type TLV struct {
	Type byte
	Data []byte
}

// XSer is the decoded extra-services field. The two services that matter on
// GSM have their own fields; the rest are kept in arrival order so that they
// can be forwarded or inspected.
type XSer struct {
	UDH    []byte // type 01: the complete user data header, UDHL included
	DCS    byte   // type 02: GSM data coding scheme, valid when HasDCS
	HasDCS bool
	Other  []TLV
}

// IsZero reports whether no service is set.
func (x XSer) IsZero() bool { return x.UDH == nil && !x.HasDCS && len(x.Other) == 0 }

// appendXSer appends the hex form: UDH first, then DCS, then the others.
func appendXSer(dst []byte, x XSer) ([]byte, error) {
	if x.UDH != nil {
		if len(x.UDH) > xserMaxDataOctets {
			return dst, fmt.Errorf("XSer UDH of %d octets: %w", len(x.UDH), ErrField)
		}
		dst = appendHex(dst, []byte{XSerUDH, byte(len(x.UDH))})
		dst = appendHex(dst, x.UDH)
	}
	if x.HasDCS {
		dst = append(dst, "0201"...)
		dst = appendHex(dst, []byte{x.DCS})
	}
	for _, t := range x.Other {
		if len(t.Data) > xserMaxDataOctets {
			return dst, fmt.Errorf("XSer type %02X of %d octets: %w", t.Type, len(t.Data), ErrField)
		}
		if (t.Type == XSerUDH && x.UDH != nil) || (t.Type == XSerDCS && x.HasDCS) {
			return dst, fmt.Errorf("XSer type %02X twice: %w", t.Type, ErrField)
		}
		dst = appendHex(dst, []byte{t.Type, byte(len(t.Data))})
		dst = appendHex(dst, t.Data)
	}
	return dst, nil
}

// ParseXSer decodes an XSer field (hex TLVs). Unknown types are kept in
// Other; a repeated type overwrites the earlier one, as the spec says.
func ParseXSer(s string) (XSer, error) {
	if len(s)%2 != 0 {
		return XSer{}, fmt.Errorf("XSer: odd length: %w", ErrSyntax)
	}
	b := make([]byte, len(s)/2)
	if !decodeHexInto(b, s) {
		return XSer{}, fmt.Errorf("XSer: hex: %w", ErrSyntax)
	}
	return parseXSerBytes(b)
}

// parseXSerBytes walks TLVs over b; the returned data slices alias b.
func parseXSerBytes(b []byte) (XSer, error) {
	var x XSer
	for len(b) > 0 {
		if len(b) < 2 {
			return XSer{}, fmt.Errorf("XSer: truncated TLV header: %w", ErrSyntax)
		}
		t, l := b[0], int(b[1])
		if len(b) < 2+l {
			return XSer{}, fmt.Errorf("XSer: type %02X: %d octets announced, %d present: %w", t, l, len(b)-2, ErrSyntax)
		}
		d := b[2 : 2+l : 2+l]
		b = b[2+l:]
		switch {
		case t == XSerUDH:
			x.UDH = d
		case t == XSerDCS && l == 1:
			x.DCS, x.HasDCS = d[0], true
		default:
			replaced := false
			for i := range x.Other {
				if x.Other[i].Type == t {
					x.Other[i].Data, replaced = d, true
				}
			}
			if !replaced {
				x.Other = append(x.Other, TLV{Type: t, Data: d})
			}
		}
	}
	return x, nil
}
