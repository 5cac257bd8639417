package fault

import (
	"errors"
	"fmt"
	"testing"
)

func TestKinds(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		name      string
		err       error
		permanent bool
		notFound  bool
	}{
		{name: "plain", err: base},
		{name: "permanent", err: Permanent(base), permanent: true},
		{name: "wrapped_permanent", err: fmt.Errorf("decode: %w", Permanent(base)), permanent: true},
		{name: "invalid_is_permanent", err: Invalid("recipient", base), permanent: true},
		{name: "not_found", err: fmt.Errorf("message x: %w", ErrNotFound), notFound: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsPermanent(tt.err); got != tt.permanent {
				t.Errorf("IsPermanent = %v, want %v", got, tt.permanent)
			}
			if got := errors.Is(tt.err, ErrNotFound); got != tt.notFound {
				t.Errorf("Is(ErrNotFound) = %v, want %v", got, tt.notFound)
			}
		})
	}
	if !errors.Is(Permanent(base), base) {
		t.Error("Permanent hides its cause")
	}
}

func TestJoin(t *testing.T) {
	err := Join(nil, Invalidf("a", "empty"), nil, Invalid("b", errors.New("too long")))
	var ie *InvalidError
	if !errors.As(err, &ie) || len(ie.Violations) != 2 {
		t.Fatalf("got %v, want two violations", err)
	}
	if got, want := err.Error(), "invalid argument: a: empty; b: too long"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if Join(nil, nil) != nil {
		t.Error("Join of nils is not nil")
	}
}
