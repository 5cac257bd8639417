package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"pushsms.io/lib/rate"
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

const shortCodeRateUsage = `Usage: pushsms shortcode rate [-nats-url URL] SHORT_CODE SMS_PER_SECOND

Sets a short code's contracted throughput (SMS-MT per second, every segment
counting: 10 by default, 20, 50, 100 or 150 as bought, or a quoted custom
rate) in the SHORT_CODES bucket, which every throttle and smsc-link replica
follows within a second, without a restart. Give the contracted figure
exactly: above it the operator's SMSC refuses submits (NACK 04) and the
contract is broken; below it paid throughput is lost. 0 holds the short
code. The aggregator's command: it talks to NATS, not to the partner API.

Flags:
`

// runShortCodeRate sets a short code's contracted rate.
func (c *cli) runShortCodeRate(ctx context.Context, args []string) error {
	fs := c.flags("shortcode rate", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(c.err, shortCodeRateUsage); fs.PrintDefaults() }
	nf := c.natsFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return errors.New("shortcode rate: want SHORT_CODE SMS_PER_SECOND")
	}
	sc := fs.Arg(0)
	r, err := rate.ParseRate([]byte(fs.Arg(1)))
	if err != nil {
		return fmt.Errorf("shortcode rate: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, nf.timeout)
	defer cancel()
	b, err := nf.connect(ctx)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := rate.PutRate(ctx, b, sc, r); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "short code %s: %d SMS/s, applied by every throttle and smsc-link replica within a second\n", sc, r)
	return nil
}
