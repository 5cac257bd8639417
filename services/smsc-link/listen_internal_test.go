package smsclink

import (
	"bytes"
	"testing"

	"pushsms.io/lib/ucp"
)

func TestReadFrame(t *testing.T) {
	login := "\x0200/00052/O/60/user1/6/5/1/736563726574//0100//////C6\x03"
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{"login", login, login, false},
		{"junk before STX", "xx\x03" + login, login, false},
		{"restart on a second STX", "\x0201/00" + login, login, false},
		{"only the first frame", login + "\x02next\x03", login, false},
		{"truncated", login[:20], "", true},
		{"too long", "\x02" + string(bytes.Repeat([]byte{'1'}, maxLoginFrame+1)) + "\x03", "", true},
	}
	for _, tt := range tests {
		r := bytes.NewReader([]byte(tt.in))
		got, err := readFrame(r)
		if string(got) != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("%s: got %q, %v; want %q, error %v", tt.name, got, err, tt.want, tt.wantErr)
		}
		if tt.name == "only the first frame" && r.Len() != len("\x02next\x03") {
			t.Errorf("%s: %d bytes consumed after the frame", tt.name, len("\x02next\x03")-r.Len())
		}
	}
}

// FuzzReadFrame: the first frame of a listener connection comes from
// outside; whatever it is, readFrame returns one STX … ETX frame within the
// bound, or an error.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte("\x0200/00052/O/60/user1/6/5/1/736563726574//0100//////C6\x03"))
	f.Add([]byte("junk\x02\x02\x03"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := readFrame(bytes.NewReader(in))
		if err != nil {
			return
		}
		if len(got) < 2 || got[0] != ucp.STX || got[len(got)-1] != ucp.ETX || len(got) > maxLoginFrame+1 ||
			bytes.IndexByte(got[1:], ucp.STX) >= 0 || bytes.IndexByte(got[:len(got)-1], ucp.ETX) >= 0 {
			t.Fatalf("readFrame(%q) = %q", in, got)
		}
		// The listener decodes what it read; that must not panic either.
		_, _ = ucp.ParseHeader(got)
	})
}
