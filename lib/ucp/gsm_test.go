package ucp

import "testing"

// The alphabet is package gsm's; these cases pin what the codec adds on
// top of it.
func TestGSMDecode(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"default alphabet", []byte{0x00, 0x01, 0x02, 0x48, 0x69}, "@£$Hi"},
		{"extension", []byte{0x1b, 0x65, 0x1b, 0x28}, "€{"},
		{"unknown extension reads as basic", []byte{0x1b, 0x41}, "A"},
		{"lone trailing ESC dropped", []byte{0x41, 0x1b}, "A"},
		{"Latin-1 byte", []byte{0x43, 0x61, 0x66, 0xe9}, "Café"},
		{"Latin-1 between septets", []byte{0xe0, 0x00, 0xff}, "à@ÿ"},
		{"ESC before a Latin-1 byte", []byte{0x1b, 0xe9, 0x41}, "éA"},
	}
	for _, tt := range tests {
		if got := gsmDecode(tt.in); got != tt.want {
			t.Errorf("%s: gsmDecode(% x) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestNotificationSetText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"delivered €", "delivered €"},
		{"çà ✓", "?à ?"},
		{"bad \xff utf-8", "bad ? utf-8"},
	}
	for _, tt := range tests {
		var n Notification
		n.SetText(tt.in)
		got, err := n.Text()
		if err != nil || got != tt.want || n.MT != MTAlphanumeric {
			t.Errorf("SetText(%q) then Text() = %q, %v (MT %d), want %q", tt.in, got, err, n.MT, tt.want)
		}
	}
}
