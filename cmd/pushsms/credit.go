package main

import (
	"context"
	"flag"
	"fmt"

	adminv1 "pushsms.io/proto/gen/pushsms/admin/v1"
)

const creditTopUpUsage = `Usage: pushsms credit topup -tenant ID -segments N -reference REF [-note TEXT] [-addr host:port]

Adds N segments to a partner's prepaid credit, opening its account: from
then on each of its messages is accepted only while the credit covers its
segments (reserved at acceptance, captured when delivered, given back when
it fails or expires). The reference (the payment's or order's) makes the
top-up idempotent: the same reference twice adds once. -segments 0 opens
the account without credit.

Flags:
`

// runCreditTopUp adds credit to a partner's account and prints its balance.
func (c *cli) runCreditTopUp(ctx context.Context, args []string) error {
	fs := c.flags("credit topup", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(c.err, creditTopUpUsage); fs.PrintDefaults() }
	bf := c.billingFlags(fs)
	tenant := fs.String("tenant", "", "the partner (required)")
	segments := fs.Int64("segments", -1, "segments added (required)")
	ref := fs.String("reference", "", "the payment's or order's reference (required)")
	note := fs.String("note", "", "free text kept with the top-up")
	client, done, err := parsedClient(fs, args, bf, adminv1.NewCreditServiceClient)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.TopUp(ctx, &adminv1.TopUpRequest{TenantId: *tenant, Segments: *segments, Reference: *ref, Note: *note})
	if err != nil {
		return apiError(err)
	}
	if resp.GetDuplicate() {
		fmt.Fprintf(c.err, "reference %s was already recorded: nothing added\n", *ref)
	}
	c.printCreditAccount(resp.GetAccount())
	return nil
}

const creditShowUsage = `Usage: pushsms credit show -tenant ID [-addr host:port]

Prints a prepaid partner's credit, in segments: topped up, captured
(delivered), reserved (in flight) and available.

Flags:
`

// runCreditShow prints a partner's credit.
func (c *cli) runCreditShow(ctx context.Context, args []string) error {
	fs := c.flags("credit show", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(c.err, creditShowUsage); fs.PrintDefaults() }
	bf := c.billingFlags(fs)
	tenant := fs.String("tenant", "", "the partner (required)")
	client, done, err := parsedClient(fs, args, bf, adminv1.NewCreditServiceClient)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.GetCreditAccount(ctx, &adminv1.GetCreditAccountRequest{TenantId: *tenant})
	if err != nil {
		return apiError(err)
	}
	c.printCreditAccount(resp.GetAccount())
	return nil
}

func (c *cli) printCreditAccount(a *adminv1.CreditAccount) {
	t := &textTable{
		head:  []string{"TENANT", "TOPPED UP", "CAPTURED", "RESERVED", "AVAILABLE"},
		right: []bool{false, true, true, true, true},
	}
	t.add(a.GetTenantId(), fmt.Sprint(a.GetToppedUp()), fmt.Sprint(a.GetCaptured()), fmt.Sprint(a.GetReserved()), fmt.Sprint(a.GetAvailable()))
	t.print(c.out)
}
