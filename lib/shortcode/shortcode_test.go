package shortcode

import (
	"testing"
	"time"
)

func TestParseControl(t *testing.T) {
	cb := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    Control
		wantErr bool
	}{
		{in: `{"state":"running"}`, want: Control{State: Running}},
		{in: `{"state":"paused"}`, want: Control{State: Paused}},
		{in: `{}`, want: Control{State: Running}},
		{in: `{"state":"running","cancelled_before":"2026-03-02T10:00:00Z"}`, want: Control{State: Running, CancelledBefore: cb}},
		{in: `{"state":" PAUSED "}`, want: Control{State: Paused}},
		{in: `{"state":"stopped"}`, want: Control{State: Paused}, wantErr: true},
		{in: `paused`, want: Control{State: Paused}, wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseControl([]byte(tt.in))
		if (err != nil) != tt.wantErr || !got.CancelledBefore.Equal(tt.want.CancelledBefore) || got.State != tt.want.State {
			t.Errorf("%s: got %+v, %v; want %+v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseLinkState(t *testing.T) {
	if s, err := ParseLinkState([]byte(`{"up":true,"slowdown":0.5,"reason":"nack 04","achieved":12.5,"ack_ms":1.5}`)); err != nil || !s.Up || s.Slowdown != 0.5 || s.Achieved != 12.5 || s.AckMillis != 1.5 {
		t.Errorf("got %+v, %v", s, err)
	}
	if s, err := ParseLinkState([]byte(`{"up":true}`)); err != nil || s.Slowdown != 1 {
		t.Errorf("no slowdown: got %+v, %v; want slowdown 1", s, err)
	}
	for _, bad := range []string{`{"up":true,"slowdown":-1}`, `{"ack_ms":-2}`, `up`} {
		if _, err := ParseLinkState([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// FuzzParseControl: the SHORT_CODES values are written by other services
// and by operators by hand. Whatever is read is running or paused; what
// cannot be read holds the short code.
func FuzzParseControl(f *testing.F) {
	for _, s := range []string{`{"state":"running"}`, `{"state":"paused"}`, `{"state":"running","cancelled_before":"2026-03-02T10:00:00Z"}`, `{}`, `x`, `{"state":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		c, err := ParseControl(v)
		if c.State != Running && c.State != Paused {
			t.Fatalf("%q: state %q", v, c.State)
		}
		if err != nil && c.State != Paused {
			t.Fatalf("%q: unreadable (%v) but not held", v, err)
		}
	})
}
