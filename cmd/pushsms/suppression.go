package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// runSuppressImport streams a file of numbers, one a line, to
// ImportSuppressions in batches, reading it as it goes. Blank lines and
// lines starting with '#' are skipped.
func (c *cli) runSuppressImport(ctx context.Context, args []string) error {
	fs := c.flags("suppress import", flag.ContinueOnError)
	api := c.apiFlags(fs)
	brand := fs.String("brand", "", "the brand the numbers opted out of (default: every message of yours)")
	note := fs.String("note", "", "where the opt-outs come from, kept as proof (e.g. \"web form 2026-11\")")
	batch := fs.Int("batch", 1000, "numbers per message of the stream")
	quiet := fs.Bool("quiet", false, "no progress bar")
	file, err := oneArg(fs, args, "file of numbers")
	if err != nil {
		return err
	}
	if *batch < 1 {
		return errors.New("suppress import: -batch must be at least 1")
	}
	in, err := c.openUpload(file, "importing", *quiet)
	if err != nil {
		return err
	}
	defer in.Close()

	client, ctx, done, err := api.dialSuppressions(ctx)
	if err != nil {
		return err
	}
	defer done()
	st, err := client.ImportSuppressions(ctx)
	if err != nil {
		return apiError(err)
	}
	closeErr := func(sendErr error) error {
		if _, err := st.CloseAndRecv(); err != nil {
			return apiError(err)
		}
		return sendErr
	}
	spec := &partnerv1.ImportSuppressionsSpec{Brand: *brand, Note: *note}
	if err := st.Send(&partnerv1.ImportSuppressionsRequest{Item: &partnerv1.ImportSuppressionsRequest_Spec{Spec: spec}}); err != nil {
		return closeErr(err)
	}
	// lines maps a number's position in the stream to its line, for the
	// refusals the server reports by position.
	var lines []int32
	b := &partnerv1.SuppressionBatch{}
	flush := func() error {
		if len(b.Msisdns) == 0 {
			return nil
		}
		err := st.Send(&partnerv1.ImportSuppressionsRequest{Item: &partnerv1.ImportSuppressionsRequest_Batch{Batch: b}})
		b = &partnerv1.SuppressionBatch{}
		return err
	}
	sc := bufio.NewScanner(in)
	line := int32(0)
	for sc.Scan() {
		line++
		v := strings.TrimSpace(sc.Text())
		if v == "" || strings.HasPrefix(v, "#") {
			continue
		}
		lines = append(lines, line)
		b.Msisdns = append(b.Msisdns, v)
		if len(b.Msisdns) >= *batch {
			if err := flush(); err != nil {
				return closeErr(err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if err := flush(); err != nil {
		return closeErr(err)
	}
	resp, err := st.CloseAndRecv()
	if err != nil {
		return apiError(err)
	}
	in.finish()
	fmt.Fprintf(c.out, "imported:   %d\nrefused:    %d\n", resp.GetImported(), resp.GetRefused())
	for _, e := range resp.GetErrors() {
		at := "position " + fmt.Sprint(e.GetPosition())
		if p := e.GetPosition(); p >= 0 && p < int64(len(lines)) {
			at = "line " + fmt.Sprint(lines[p])
		}
		fmt.Fprintf(c.out, "%s refused: %s (%s)\n", at, enumName(e.GetReason(), "REASON_"), e.GetDetail())
	}
	if n := resp.GetRefused(); n > int64(len(resp.GetErrors())) {
		fmt.Fprintf(c.out, "… and %d more refused\n", n-int64(len(resp.GetErrors())))
	}
	return nil
}

// runSuppressStatus prints whether a number may receive the brand's
// messages, and every suppression of it the partner may see.
func (c *cli) runSuppressStatus(ctx context.Context, args []string) error {
	fs := c.flags("suppress status", flag.ContinueOnError)
	api := c.apiFlags(fs)
	brand := fs.String("brand", "", "the brand that would send")
	shortCode := fs.String("short-code", "", "the short code it would send from")
	msisdn, err := oneArg(fs, args, "number")
	if err != nil {
		return err
	}
	client, ctx, done, err := api.dialSuppressions(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.GetRecipientStatus(ctx, &partnerv1.GetRecipientStatusRequest{Msisdn: msisdn, Brand: *brand, ShortCode: *shortCode})
	if err != nil {
		return apiError(err)
	}
	if resp.GetBlocked() {
		fmt.Fprintln(c.out, "BLOCKED")
	} else {
		fmt.Fprintln(c.out, "NOT BLOCKED")
	}
	fmt.Fprintf(c.out, "recipient:  %s\n", resp.GetRecipientMasked())
	for _, s := range resp.GetSuppressions() {
		fmt.Fprintf(c.out, "suppressed: %s", enumName(s.GetScope(), "SUPPRESSION_SCOPE_"))
		switch s.GetScope() {
		case partnerv1.SuppressionScope_SUPPRESSION_SCOPE_BRAND:
			fmt.Fprintf(c.out, " %s", s.GetBrand())
		case partnerv1.SuppressionScope_SUPPRESSION_SCOPE_SHORT_CODE:
			fmt.Fprintf(c.out, " %s", s.GetShortCode())
		}
		fmt.Fprintf(c.out, ", %s %s", enumName(s.GetSource(), "SUPPRESSION_SOURCE_"), stamp(s.GetAt().AsTime()))
		if s.GetSource() == partnerv1.SuppressionSource_SUPPRESSION_SOURCE_MO_STOP {
			fmt.Fprintf(c.out, ", %q to %s (MO %s)", s.GetText(), s.GetShortCode(), s.GetMoId())
		}
		if s.GetNote() != "" {
			fmt.Fprintf(c.out, ", note: %s", s.GetNote())
		}
		fmt.Fprintln(c.out)
	}
	return nil
}
