package main

import (
	"context"
	"fmt"

	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

func (c *cli) runShortCodeGet(ctx context.Context, args []string) error {
	return c.withID(ctx, "shortcode get", "short code", args, func(ctx context.Context, client partnerv1.MessagingServiceClient, sc string) error {
		resp, err := client.GetShortCode(ctx, &partnerv1.GetShortCodeRequest{ShortCode: sc})
		if err != nil {
			return apiError(err)
		}
		c.printShortCode(resp.GetShortCode())
		return nil
	})
}

func (c *cli) runShortCodePause(ctx context.Context, args []string) error {
	return c.withID(ctx, "shortcode pause", "short code", args, func(ctx context.Context, client partnerv1.MessagingServiceClient, sc string) error {
		resp, err := client.PauseShortCode(ctx, &partnerv1.PauseShortCodeRequest{ShortCode: sc})
		if err != nil {
			return apiError(err)
		}
		c.printShortCode(resp.GetShortCode())
		return nil
	})
}

func (c *cli) runShortCodeResume(ctx context.Context, args []string) error {
	return c.withID(ctx, "shortcode resume", "short code", args, func(ctx context.Context, client partnerv1.MessagingServiceClient, sc string) error {
		resp, err := client.ResumeShortCode(ctx, &partnerv1.ResumeShortCodeRequest{ShortCode: sc})
		if err != nil {
			return apiError(err)
		}
		c.printShortCode(resp.GetShortCode())
		return nil
	})
}

func (c *cli) runShortCodeCancel(ctx context.Context, args []string) error {
	return c.withID(ctx, "shortcode cancel", "short code", args, func(ctx context.Context, client partnerv1.MessagingServiceClient, sc string) error {
		resp, err := client.CancelShortCode(ctx, &partnerv1.CancelShortCodeRequest{ShortCode: sc})
		if err != nil {
			return apiError(err)
		}
		c.printShortCode(resp.GetShortCode())
		return nil
	})
}

func (c *cli) printShortCode(sc *partnerv1.ShortCode) {
	fmt.Fprintln(c.out, enumName(sc.GetState(), "SHORT_CODE_STATE_"))
	fmt.Fprintf(c.out, "short code: %s\n", sc.GetShortCode())
	fmt.Fprintf(c.out, "contracted: %d SMS/s\n", sc.GetContractedRate())
	fmt.Fprintf(c.out, "achieved:   %.1f SMS/s\n", sc.GetAchievedRate())
	if cb := sc.GetCancelledBefore(); cb != nil {
		fmt.Fprintf(c.out, "cancelled:  messages accepted before %s\n", stamp(cb.AsTime()))
	}
}
