package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"

	"pushsms.io/lib/fault"
	"pushsms.io/lib/rpc"
)

// A message beyond the credit is refused with FAILED_PRECONDITION, the
// segments needed and the credit left, through the one status mapping.
func TestCreditErrorStatus(t *testing.T) {
	tests := []struct {
		err        error
		wantMsg    string
		wantNeeded string
		wantLeft   string
	}{
		{creditError(1, 0), "prepaid credit exhausted: the message needs 1 segments, 0 left", "1", "0"},
		{creditError(3, 2), "prepaid credit exhausted: the message needs 3 segments, 2 left", "3", "2"},
		// Below zero after late captures: the partner is told none is left.
		{creditError(2, -4), "prepaid credit exhausted: the message needs 2 segments, 0 left", "2", "0"},
	}
	for _, tt := range tests {
		st := rpc.Status(tt.err)
		if st.Code() != codes.FailedPrecondition || st.Message() != tt.wantMsg {
			t.Errorf("got %v %q, want FailedPrecondition %q", st.Code(), st.Message(), tt.wantMsg)
		}
		var pf *errdetails.PreconditionFailure
		var info *errdetails.ErrorInfo
		for _, d := range st.Details() {
			switch d := d.(type) {
			case *errdetails.PreconditionFailure:
				pf = d
			case *errdetails.ErrorInfo:
				info = d
			}
		}
		if pf == nil || len(pf.GetViolations()) != 1 || pf.GetViolations()[0].GetType() != "PREPAID_CREDIT" {
			t.Errorf("%s: got precondition failure %v, want one PREPAID_CREDIT violation", tt.wantMsg, pf)
		}
		if info.GetReason() != "CREDIT_EXHAUSTED" || info.GetMetadata()["segments_needed"] != tt.wantNeeded || info.GetMetadata()["credit_left"] != tt.wantLeft {
			t.Errorf("%s: got error info %v, want CREDIT_EXHAUSTED needed %s left %s", tt.wantMsg, info, tt.wantNeeded, tt.wantLeft)
		}
		if !fault.IsPermanent(tt.err) {
			t.Errorf("%s: not permanent", tt.wantMsg)
		}
	}
}

// The list of prepaid tenants is trusted for its TTL, then asked again.
func TestCreditCacheFreshness(t *testing.T) {
	now := time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC)
	c := &creditCheck{ttl: 5 * time.Second, now: func() time.Time { return now }, log: slog.New(slog.DiscardHandler)}
	if _, fresh := c.cached("acme"); fresh {
		t.Error("nothing loaded: got fresh")
	}
	c.prepaid, c.loaded, c.until = map[string]bool{"acme": true}, true, now.Add(c.ttl)
	for _, tt := range []struct {
		at                 time.Duration
		tenant             string
		prepaid, wantFresh bool
	}{
		{0, "acme", true, true},
		{4 * time.Second, "globex", false, true},
		{5 * time.Second, "acme", false, false},
	} {
		now = c.until.Add(tt.at - c.ttl)
		p, fresh := c.cached(tt.tenant)
		if p != tt.prepaid || fresh != tt.wantFresh {
			t.Errorf("%s after %v: got prepaid %v fresh %v, want %v %v", tt.tenant, tt.at, p, fresh, tt.prepaid, tt.wantFresh)
		}
	}
}

// BenchmarkCreditPostpaidCheck is what the prepaid check costs a postpaid
// tenant's message: a lookup in the cached list, no call to billing.
func BenchmarkCreditPostpaidCheck(b *testing.B) {
	c := &creditCheck{ttl: time.Hour, now: time.Now, log: slog.New(slog.DiscardHandler)}
	c.prepaid = map[string]bool{}
	for i := range 1000 {
		c.prepaid[fmt.Sprintf("tenant-%d", i)] = true
	}
	c.loaded, c.until = true, time.Now().Add(time.Hour)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ds, h, err := c.reserve(ctx, "postpaid", []creditMessage{{"m", 1}}, time.Time{})
			if err != nil || ds != nil || h != nil {
				b.Fatalf("got %v %v %v, want nothing for a postpaid tenant", ds, h, err)
			}
		}
	})
}
