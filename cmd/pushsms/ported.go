package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"time"

	adminv1 "pushsms.io/proto/gen/pushsms/admin/v1"
	"pushsms.io/services/compliance/ported"
)

// portedBatch is how many entries go in one message: small enough for a
// smooth progress bar, large enough that a million lines is 200 messages.
const portedBatch = 5000

// adminFlags are the flags of the aggregator's commands on compliance's
// internal gRPC port.
func (c *cli) adminFlags(fs *flag.FlagSet) *internalFlags {
	return c.internalFlags(fs, "compliance", "PUSHSMS_COMPLIANCE_ADDR", "localhost:9091")
}

const portedImportUsage = `Usage: pushsms ported import [-incremental] [-addr host:port] FILE.csv

Imports a portability file into the ported-numbers table of compliance,
which overrides the ARCEP block holder in the network check. One entry a
line:

    msisdn,operator

msisdn in any French format (06 12 34 56 78, +33612345678, 33612345678);
operator the ARCEP code (identifiant CE) of the operator now serving the
number: FRTE (Orange), SFR0, BOUY, FRMO (Free Mobile)… ';' works as the
separator too; fields may be quoted; a first line without digits (a header)
and lines starting with '#' are skipped.

A full import (the default) replaces the whole table when the file has
been read to its end; an incremental one (-incremental) adds or changes
the listed numbers and deletes those with an empty operator ("0612345678,").
Either way nothing changes if the upload fails. Every compliance replica
serves the new table within 2 seconds.

Flags:
`

// runPortedImport uploads a portability file and prints the outcome.
func (c *cli) runPortedImport(ctx context.Context, args []string) error {
	fs := c.flags("ported import", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(c.err, portedImportUsage)
		fs.PrintDefaults()
	}
	admin := c.adminFlags(fs)
	incremental := fs.Bool("incremental", false, "apply the file as changes instead of replacing the table")
	source := fs.String("source", "", "where the file comes from, kept with the version (default: the file name)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	file, err := oneArg(fs, args, "FILE.csv")
	if err != nil {
		return err
	}
	if *source == "" {
		*source = filepath.Base(file)
	}
	mode := adminv1.ImportMode_IMPORT_MODE_FULL
	if *incremental {
		mode = adminv1.ImportMode_IMPORT_MODE_INCREMENTAL
	}
	in, err := c.openUpload(file, "importing", *quiet)
	if err != nil {
		return err
	}
	defer in.Close()
	client, done, err := dialInternal(admin, adminv1.NewPortedNumbersServiceClient)
	if err != nil {
		return err
	}
	defer done()
	res, err := ported.Upload(ctx, client, in, mode, *source, portedBatch)
	if err != nil {
		return fmt.Errorf("%s: nothing imported: %w", file, apiError(err))
	}
	fmt.Fprintf(c.out, "version %d: %d lines, %d upserted, %d deleted, %d refused; %d ported numbers in the table\n",
		res.GetVersion(), res.Lines, res.GetUpserted(), res.GetDeleted(), res.Malformed+res.GetRefused(), res.GetSize())
	for _, e := range res.Errors {
		fmt.Fprintf(c.err, "%s:%d: %s\n", file, e.Line, e.Detail)
	}
	if refused := res.Malformed + res.GetRefused(); refused > int64(len(res.Errors)) {
		fmt.Fprintf(c.err, "… and %d more refused lines\n", refused-int64(len(res.Errors)))
	}
	return nil
}

// runPortedStatus prints the ported-numbers table's version and size.
func (c *cli) runPortedStatus(ctx context.Context, args []string) error {
	fs := c.flags("ported status", flag.ContinueOnError)
	admin := c.adminFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("ported status: no argument expected")
	}
	client, done, err := dialInternal(admin, adminv1.NewPortedNumbersServiceClient)
	if err != nil {
		return err
	}
	defer done()
	st, err := client.GetPortedNumbers(ctx, &adminv1.GetPortedNumbersRequest{})
	if err != nil {
		return apiError(err)
	}
	if st.GetVersion() == 0 {
		fmt.Fprintln(c.out, "no ported numbers imported yet: the ARCEP block holder decides for every number")
		return nil
	}
	fmt.Fprintf(c.out, "version %d: %d ported numbers, imported %s from %s\n",
		st.GetVersion(), st.GetSize(), st.GetImportedAt().AsTime().Local().Format(time.RFC3339), st.GetSource())
	return nil
}
