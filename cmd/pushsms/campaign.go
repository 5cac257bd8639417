package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// Names a CSV column holding the recipient may have; the other columns are
// the template's variables.
var recipientColumns = []string{"msisdn", "recipient", "phone", "number", "to", "mobile"}

// runCampaignSubmit streams a CSV file (header line, then one recipient a
// line) to SubmitCampaign in batches, reading it as it goes so that a file
// of any size takes little memory.
func (c *cli) runCampaignSubmit(ctx context.Context, args []string) error {
	fs := c.flags("campaign submit", flag.ContinueOnError)
	api := c.apiFlags(fs)
	file := fs.String("csv", "", "CSV file: a header line naming the columns, one recipient a line; the msisdn (or recipient, phone, to) column is the number, the others fill {{column}} in the text")
	shortCode := fs.String("short-code", "", "5-digit short code to send from")
	brand := fs.String("brand", "", "issuer of the campaign (required for marketing)")
	category := fs.String("category", "marketing", "traffic category")
	sender := fs.String("sender", "", "sender shown on the handset (default: the short code)")
	text := fs.String("text", "", "text template, with {{column}} variables")
	startAt := fs.String("start-at", "", "start time, RFC 3339 (default: now)")
	validity := fs.Duration("validity", 0, "how long each message may be tried after the start (default 48h)")
	ref := fs.String("ref", "", "your reference for the campaign, unique")
	name := fs.String("name", "", "campaign name")
	batch := fs.Int("batch", 1000, "recipients per message of the stream")
	weight := fs.Uint("weight", 0, "share of the short code against your other campaigns running on it: 3 and 1 get 75 % and 25 % (0 to 100; 0 means 1)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	decl := declarationFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" {
		return errors.New("campaign submit: -csv is required")
	}
	if *batch < 1 {
		return errors.New("campaign submit: -batch must be at least 1")
	}
	cat, err := parseCategory(*category)
	if err != nil {
		return err
	}
	spec := &partnerv1.CampaignSpec{
		ShortCode: *shortCode, Brand: *brand, Category: cat, Sender: *sender,
		TextTemplate: *text, ClientReference: *ref, Name: *name,
		Sector: decl.sector, Attestations: decl.attestations(), AppendStopMention: decl.appendStop,
		Weight: uint32(min(*weight, 1<<31)),
	}
	if *startAt != "" {
		t, err := time.Parse(time.RFC3339, *startAt)
		if err != nil {
			return fmt.Errorf("-start-at: %w", err)
		}
		spec.StartAt = timestamppb.New(t)
	}
	if *validity != 0 {
		spec.Validity = durationpb.New(*validity)
	}

	in, err := c.openUpload(*file, "uploading", *quiet)
	if err != nil {
		return err
	}
	defer in.Close()
	rows := csv.NewReader(in)
	rows.FieldsPerRecord = -1
	rows.ReuseRecord = true
	header, err := rows.Read()
	if err != nil {
		return fmt.Errorf("%s: header: %w", *file, err)
	}
	header = append([]string(nil), header...)
	col := recipientColumn(header)

	client, ctx, done, err := api.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	st, err := client.SubmitCampaign(ctx)
	if err != nil {
		return apiError(err)
	}
	if err := st.Send(&partnerv1.SubmitCampaignRequest{Item: &partnerv1.SubmitCampaignRequest_Spec{Spec: spec}}); err != nil {
		return closeErr(st, err)
	}
	b := &partnerv1.RecipientBatch{}
	flush := func() error {
		if len(b.Recipients) == 0 {
			return nil
		}
		err := st.Send(&partnerv1.SubmitCampaignRequest{Item: &partnerv1.SubmitCampaignRequest_Recipients{Recipients: b}})
		b = &partnerv1.RecipientBatch{}
		return err
	}
	for {
		rec, err := rows.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", *file, err)
		}
		r := &partnerv1.Recipient{Variables: make(map[string]string, len(header))}
		for i, v := range rec {
			switch {
			case i == col:
				r.Msisdn = v
			case i < len(header):
				r.Variables[header[i]] = v
			}
		}
		b.Recipients = append(b.Recipients, r)
		if len(b.Recipients) >= *batch {
			if err := flush(); err != nil {
				return closeErr(st, err)
			}
		}
	}
	if err := flush(); err != nil {
		return closeErr(st, err)
	}
	resp, err := st.CloseAndRecv()
	if err != nil {
		return apiError(err)
	}
	in.finish()
	c.printCampaign(resp.GetCampaign())
	for _, e := range resp.GetErrors() {
		// Position 0 is the line after the header.
		fmt.Fprintf(c.out, "line %d refused: %s (%s)\n", e.GetPosition()+2, enumName(e.GetReason(), "REASON_"), e.GetDetail())
	}
	if n := resp.GetCampaign().GetRefused(); n > int64(len(resp.GetErrors())) {
		fmt.Fprintf(c.out, "… and %d more refused\n", n-int64(len(resp.GetErrors())))
	}
	return nil
}

// closeErr reports why the server ended the stream when a Send fails.
func closeErr(st partnerv1.MessagingService_SubmitCampaignClient, sendErr error) error {
	if _, err := st.CloseAndRecv(); err != nil {
		return apiError(err)
	}
	return sendErr
}

func recipientColumn(header []string) int {
	for _, name := range recipientColumns {
		for i, h := range header {
			if strings.EqualFold(strings.TrimSpace(h), name) {
				return i
			}
		}
	}
	return 0
}

func (c *cli) runCampaignGet(ctx context.Context, args []string) error {
	return c.withID(ctx, "campaign get", "campaign id", args, func(ctx context.Context, client partnerv1.MessagingServiceClient, id string) error {
		resp, err := client.GetCampaign(ctx, &partnerv1.GetCampaignRequest{CampaignId: id})
		if err != nil {
			return apiError(err)
		}
		c.printCampaign(resp.GetCampaign())
		return nil
	})
}

func (c *cli) runCampaignCancel(ctx context.Context, args []string) error {
	return c.withID(ctx, "campaign cancel", "campaign id", args, func(ctx context.Context, client partnerv1.MessagingServiceClient, id string) error {
		resp, err := client.CancelCampaign(ctx, &partnerv1.CancelCampaignRequest{CampaignId: id})
		if err != nil {
			return apiError(err)
		}
		c.printCampaign(resp.GetCampaign())
		return nil
	})
}

func (c *cli) runCampaignPause(ctx context.Context, args []string) error {
	return c.withID(ctx, "campaign pause", "campaign id", args, func(ctx context.Context, client partnerv1.MessagingServiceClient, id string) error {
		resp, err := client.PauseCampaign(ctx, &partnerv1.PauseCampaignRequest{CampaignId: id})
		if err != nil {
			return apiError(err)
		}
		c.printCampaign(resp.GetCampaign())
		return nil
	})
}

func (c *cli) runCampaignResume(ctx context.Context, args []string) error {
	return c.withID(ctx, "campaign resume", "campaign id", args, func(ctx context.Context, client partnerv1.MessagingServiceClient, id string) error {
		resp, err := client.ResumeCampaign(ctx, &partnerv1.ResumeCampaignRequest{CampaignId: id})
		if err != nil {
			return apiError(err)
		}
		c.printCampaign(resp.GetCampaign())
		return nil
	})
}

func (c *cli) printCampaign(cp *partnerv1.Campaign) {
	fmt.Fprintln(c.out, enumName(cp.GetState(), "CAMPAIGN_STATE_"))
	fmt.Fprintf(c.out, "campaign:   %s\n", cp.GetCampaignId())
	if cp.GetName() != "" {
		fmt.Fprintf(c.out, "name:       %s\n", cp.GetName())
	}
	if cp.GetClientReference() != "" {
		fmt.Fprintf(c.out, "reference:  %s\n", cp.GetClientReference())
	}
	fmt.Fprintf(c.out, "from:       %s\nstart:      %s\n", cp.GetShortCode(), stamp(cp.GetStartAt().AsTime()))
	fmt.Fprintf(c.out, "accepted:   %d\nrefused:    %d\n", cp.GetAccepted(), cp.GetRefused())
	for _, sc := range cp.GetCounts() {
		fmt.Fprintf(c.out, "  %-11s %d\n", enumName(sc.GetState(), "MESSAGE_STATE_")+":", sc.GetCount())
	}
	// The compliance report: why messages were refused, most frequent first.
	if len(cp.GetReasons()) > 0 {
		fmt.Fprintln(c.out, "refused by compliance:")
		for _, rc := range cp.GetReasons() {
			fmt.Fprintf(c.out, "  %-24s %d\n", enumName(rc.GetReason(), "REASON_")+":", rc.GetCount())
		}
	}
	if cp.GetDeferred() > 0 {
		fmt.Fprintf(c.out, "deferred:   %d (held until the sending window opens)\n", cp.GetDeferred())
	}
}
