package rpc

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"pushsms.io/lib/fault"
)

// Domain names the platform in ErrorInfo details.
const Domain = "pushsms.io"

// Status is the only mapping from an error to a gRPC status. Bad input
// carries a BadRequest with a violation per field; an error of no known
// kind becomes Internal with no detail, since its text may hold anything.
func Status(err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	if s, ok := status.FromError(err); ok {
		return s
	}
	var ie *fault.InvalidError
	if errors.As(err, &ie) {
		st := status.New(codes.InvalidArgument, ie.Error())
		br := &errdetails.BadRequest{}
		for _, v := range ie.Violations {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description})
		}
		if d, derr := st.WithDetails(br); derr == nil {
			return d
		}
		return st
	}
	var pe *fault.PreconditionError
	if errors.As(err, &pe) {
		st := status.New(codes.FailedPrecondition, pe.Error())
		d, derr := st.WithDetails(
			&errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{
				Type: pe.Type, Subject: pe.Subject, Description: pe.Description,
			}}},
			&errdetails.ErrorInfo{Reason: pe.Reason, Domain: Domain, Metadata: pe.Metadata},
		)
		if derr == nil {
			return d
		}
		return st
	}
	kinds := []struct {
		err  error
		code codes.Code
	}{
		{fault.ErrNotFound, codes.NotFound},
		{fault.ErrExists, codes.AlreadyExists},
		{fault.ErrDenied, codes.PermissionDenied},
		{fault.ErrUnauthenticated, codes.Unauthenticated},
		{fault.ErrExhausted, codes.ResourceExhausted},
		{fault.ErrUnavailable, codes.Unavailable},
		{context.Canceled, codes.Canceled},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{fault.ErrPermanent, codes.FailedPrecondition},
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return status.New(k.code, err.Error())
		}
	}
	return status.New(codes.Internal, "internal error")
}
