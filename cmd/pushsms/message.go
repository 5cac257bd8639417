package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

func (c *cli) runSend(ctx context.Context, args []string) error {
	fs := c.flags("send", flag.ContinueOnError)
	api := c.apiFlags(fs)
	shortCode := fs.String("short-code", "", "5-digit short code to send from")
	to := fs.String("to", "", "recipient (06…, +33 6…)")
	text := fs.String("text", "", "message text")
	category := fs.String("category", "customer-relationship", "traffic category: marketing, customer-relationship, mo-session-reply, interpersonal, m2m")
	brand := fs.String("brand", "", "issuer of the message (required for marketing)")
	sender := fs.String("sender", "", "sender shown on the handset (default: the short code)")
	ref := fs.String("ref", "", "your reference: sending again with it returns the first message")
	validity := fs.Duration("validity", 0, "how long the network may try (default 48h)")
	decl := declarationFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cat, err := parseCategory(*category)
	if err != nil {
		return err
	}
	client, ctx, done, err := api.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	req := &partnerv1.SendMessageRequest{
		ShortCode: *shortCode, Brand: *brand, Category: cat, Sender: *sender,
		Recipient: *to, Text: *text, ClientReference: *ref,
		Sector: decl.sector, Attestations: decl.attestations(), AppendStopMention: decl.appendStop,
	}
	if *validity != 0 {
		req.Validity = durationpb.New(*validity)
	}
	resp, err := client.SendMessage(ctx, req)
	if err != nil {
		return apiError(err)
	}
	fmt.Fprintln(c.out, resp.GetMessage().GetMessageId())
	return nil
}

func (c *cli) runStatus(ctx context.Context, args []string) error {
	return c.withID(ctx, "status", "message id", args, func(ctx context.Context, client partnerv1.MessagingServiceClient, id string) error {
		resp, err := client.GetMessage(ctx, &partnerv1.GetMessageRequest{MessageId: id})
		if err != nil {
			return apiError(err)
		}
		c.printMessage(resp.GetMessage())
		return nil
	})
}

func (c *cli) printMessage(m *partnerv1.Message) {
	w := c.out
	fmt.Fprintln(w, enumName(m.GetState(), "MESSAGE_STATE_"))
	if m.GetReason() != partnerv1.Reason_REASON_UNSPECIFIED {
		fmt.Fprintf(w, "reason:     %s", enumName(m.GetReason(), "REASON_"))
		if m.GetReasonDetail() != "" {
			fmt.Fprintf(w, " (%s)", m.GetReasonDetail())
		}
		fmt.Fprintln(w)
	}
	c.printDecision(m.GetDecision())
	fmt.Fprintf(w, "message:    %s\n", m.GetMessageId())
	if m.GetCampaignId() != "" {
		fmt.Fprintf(w, "campaign:   %s\n", m.GetCampaignId())
	}
	if m.GetClientReference() != "" {
		fmt.Fprintf(w, "reference:  %s\n", m.GetClientReference())
	}
	fmt.Fprintf(w, "recipient:  %s\nfrom:       %s\n", m.GetRecipientMasked(), m.GetShortCode())
	fmt.Fprintf(w, "encoding:   %s, %d segment(s)\n", enumName(m.GetEncoding(), "ENCODING_"), m.GetSegmentCount())
	fmt.Fprintf(w, "accepted:   %s\nupdated:    %s\n", stamp(m.GetAcceptedAt().AsTime()), stamp(m.GetUpdatedAt().AsTime()))
	for _, s := range m.GetSegments() {
		var extra []string
		if s.GetUcpErrorCode() != "" {
			extra = append(extra, "UCP error "+s.GetUcpErrorCode())
		}
		if s.GetSubmittedAt() != nil {
			extra = append(extra, "submitted "+stamp(s.GetSubmittedAt().AsTime()))
		}
		if s.GetDoneAt() != nil {
			extra = append(extra, "done "+stamp(s.GetDoneAt().AsTime()))
		}
		fmt.Fprintf(w, "segment %d:  %s", s.GetIndex(), enumName(s.GetState(), "SEGMENT_STATE_"))
		if len(extra) > 0 {
			fmt.Fprintf(w, " (%s)", strings.Join(extra, ", "))
		}
		fmt.Fprintln(w)
	}
}

// printDecision prints compliance's decision: outcome (and reason or
// date), then the rule with its source, the detail and the rule set's
// version.
func (c *cli) printDecision(d *partnerv1.Decision) {
	if d == nil {
		return
	}
	w := c.out
	fmt.Fprintf(w, "decision:   %s", enumName(d.GetOutcome(), "DECISION_OUTCOME_"))
	if d.GetReason() != partnerv1.Reason_REASON_UNSPECIFIED {
		fmt.Fprintf(w, " %s", enumName(d.GetReason(), "REASON_"))
	}
	if d.GetNotBefore() != nil {
		fmt.Fprintf(w, " until %s", stamp(d.GetNotBefore().AsTime()))
	}
	fmt.Fprintln(w)
	if d.GetRule() != "" {
		fmt.Fprintf(w, "rule:       %s", d.GetRule())
		if d.GetSource() != "" {
			fmt.Fprintf(w, " (source: %s)", d.GetSource())
		}
		fmt.Fprintln(w)
	}
	if d.GetDetail() != "" {
		fmt.Fprintf(w, "detail:     %s\n", d.GetDetail())
	}
	if d.GetPolicyVersion() != "" || d.GetDecidedAt() != nil {
		fmt.Fprintf(w, "policy:     %s", cmp.Or(d.GetPolicyVersion(), "?"))
		if d.GetDecidedAt() != nil {
			fmt.Fprintf(w, ", decided %s", stamp(d.GetDecidedAt().AsTime()))
		}
		fmt.Fprintln(w)
	}
}

// declarations are the flags of what a message or campaign declares about
// its text, for the content rules.
type declarations struct {
	sector                          string
	appendStop, informed, freeClaim bool
}

func declarationFlags(fs *flag.FlagSet) *declarations {
	d := &declarations{}
	fs.StringVar(&d.sector, "sector", "", "what the text advertises, as a sector key (e.g. retail, energy_renovation)")
	fs.BoolVar(&d.appendStop, "append-stop", false, "append the short code's STOP mention (\"STOP au 36123\") to the text, counted in the segments")
	fs.BoolVar(&d.informed, "informed-at-collection", false, "attest that the recipients were told how to opt out when their number was collected (no STOP mention needed)")
	fs.BoolVar(&d.freeClaim, "free-claim-attested", false, "attest that a \"gratuit\"/\"free\" claim of the text is substantiated")
	return d
}

func (d *declarations) attestations() *partnerv1.ContentAttestations {
	if !d.informed && !d.freeClaim {
		return nil
	}
	return &partnerv1.ContentAttestations{StopInformedAtCollection: d.informed, FreeClaimSubstantiated: d.freeClaim}
}

func stamp(t time.Time) string { return t.Local().Format(time.DateTime) }

func (c *cli) runPreview(ctx context.Context, args []string) error {
	fs := c.flags("preview", flag.ContinueOnError)
	api := c.apiFlags(fs)
	text := fs.String("text", "", "text to preview")
	normalize := fs.Bool("normalize", true, "replace French typography that forces UCS-2 (’ … « » œ NBSP), as SendMessage does")
	shortCode := fs.String("short-code", "", "short code whose STOP mention -append-stop appends")
	appendStop := fs.Bool("append-stop", false, "count the text with the short code's STOP mention appended, as send -append-stop sends it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *text == "" {
		return errors.New("preview: -text is required")
	}
	client, ctx, done, err := api.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.PreviewText(ctx, &partnerv1.PreviewTextRequest{
		Text: *text, NormalizeTypography: *normalize, ShortCode: *shortCode, AppendStopMention: *appendStop,
	})
	if err != nil {
		return apiError(err)
	}
	unit := "characters"
	if resp.GetEncoding() == partnerv1.Encoding_ENCODING_GSM7 {
		unit = "septets"
	}
	fmt.Fprintf(c.out, "encoding:   %s\nsegments:   %d\nlength:     %d %s\n", enumName(resp.GetEncoding(), "ENCODING_"), resp.GetSegmentCount(), resp.GetLength(), unit)
	if len(resp.GetUcs2Characters()) > 0 {
		fmt.Fprintf(c.out, "UCS-2 due to: %s\n", strings.Join(resp.GetUcs2Characters(), " "))
	}
	if resp.GetText() != *text {
		fmt.Fprintf(c.out, "sent as:    %s\n", resp.GetText())
	}
	return nil
}
