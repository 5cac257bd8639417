package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// runEvents prints delivery reports and inbound messages as they come,
// each with the cursor to resume after it (-after).
func (c *cli) runEvents(ctx context.Context, args []string) error {
	fs := c.flags("events", flag.ContinueOnError)
	api := c.apiFlags(fs)
	reports := fs.Bool("reports", false, "delivery reports only")
	inbound := fs.Bool("inbound", false, "inbound messages only")
	after := fs.String("after", "", "resume after this cursor")
	if err := fs.Parse(args); err != nil {
		return err
	}
	client, ctx, done, err := api.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	st, err := client.StreamEvents(ctx, &partnerv1.StreamEventsRequest{DeliveryReports: *reports, InboundMessages: *inbound, AfterCursor: *after})
	if err != nil {
		return apiError(err)
	}
	for {
		ev, err := st.Recv()
		if status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled) {
			return nil
		}
		if err != nil {
			return apiError(err)
		}
		switch {
		case ev.GetDeliveryReport() != nil:
			dr := ev.GetDeliveryReport()
			seg := ""
			if dr.GetSegmentIndex() > 0 {
				seg = fmt.Sprintf(" segment %d/%d %s", dr.GetSegmentIndex(), dr.GetSegmentCount(), enumName(dr.GetSegmentState(), "SEGMENT_STATE_"))
			}
			fmt.Fprintf(c.out, "%s report %s%s -> %s", stamp(dr.GetAt().AsTime()), dr.GetMessageId(), seg, enumName(dr.GetMessageState(), "MESSAGE_STATE_"))
			if dr.GetUcpErrorCode() != "" {
				fmt.Fprintf(c.out, " (UCP error %s)", dr.GetUcpErrorCode())
			}
		case ev.GetInboundMessage() != nil:
			in := ev.GetInboundMessage()
			fmt.Fprintf(c.out, "%s inbound to %s from %s: %q", stamp(in.GetReceivedAt().AsTime()), in.GetShortCode(), in.GetOriginator(), in.GetText())
		}
		fmt.Fprintf(c.out, "  cursor=%s\n", ev.GetCursor())
	}
}
