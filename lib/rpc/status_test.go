package rpc

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"

	"pushsms.io/lib/fault"
)

func TestStatus(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		code     codes.Code
		wantText string
	}{
		{name: "not_found", err: fmt.Errorf("message m1: %w", fault.ErrNotFound), code: codes.NotFound, wantText: "message m1: not found"},
		{name: "denied", err: fault.ErrDenied, code: codes.PermissionDenied},
		{name: "unauthenticated", err: fault.ErrUnauthenticated, code: codes.Unauthenticated},
		{name: "unavailable", err: fmt.Errorf("publish: %w", fault.ErrUnavailable), code: codes.Unavailable},
		{name: "deadline", err: fmt.Errorf("x: %w", context.DeadlineExceeded), code: codes.DeadlineExceeded},
		{name: "unknown_hides_text", err: errors.New("pq: secret detail"), code: codes.Internal, wantText: "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := Status(tt.err)
			if st.Code() != tt.code {
				t.Errorf("code = %v, want %v", st.Code(), tt.code)
			}
			if tt.wantText != "" && st.Message() != tt.wantText {
				t.Errorf("message = %q, want %q", st.Message(), tt.wantText)
			}
		})
	}
}

func TestStatusInvalidHasFieldViolations(t *testing.T) {
	st := Status(fault.Join(fault.Invalidf("recipient", "not a French mobile number"), fault.Invalidf("text", "empty")))
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("code = %v, want InvalidArgument", st.Code())
	}
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	if fmt.Sprint(fields) != "[recipient text]" {
		t.Errorf("field violations %v, want [recipient text]", fields)
	}
}
