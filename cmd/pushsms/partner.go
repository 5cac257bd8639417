package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"pushsms.io/lib/pgdb"
	"pushsms.io/services/ingest"
)

// runPartnerCreate records a partner in ingest's database and prints its
// API key, which is shown only this once.
func (c *cli) runPartnerCreate(ctx context.Context, args []string) error {
	fs := c.flags("partner create", flag.ContinueOnError)
	dbURL := c.getenv("PUSHSMS_DATABASE_URL")
	if dbURL == "" {
		dbURL = c.getenv("DATABASE_URL")
	}
	fs.StringVar(&dbURL, "database-url", dbURL, "ingest's PostgreSQL URL (env PUSHSMS_DATABASE_URL, DATABASE_URL)")
	id := fs.String("id", "", "partner id: lower-case letters, digits, '-', '_'")
	name := fs.String("name", "", "partner name")
	codes := fs.String("short-codes", "", "short codes the partner sends from, comma-separated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if dbURL == "" {
		return errors.New("partner create: -database-url is required")
	}
	var shortCodes []string
	for sc := range strings.SplitSeq(*codes, ",") {
		if sc = strings.TrimSpace(sc); sc != "" {
			shortCodes = append(shortCodes, sc)
		}
	}
	pool, err := pgdb.Open(ctx, pgdb.Config{URL: dbURL, MaxConns: 2}, nil)
	if err != nil {
		return err
	}
	defer pool.Close()
	// The tables may not be there yet if ingest never ran on this database.
	if err := pgdb.Migrate(ctx, pool, ingest.Schema, ingest.Migrations()); err != nil {
		return err
	}
	key, err := ingest.CreatePartner(ctx, pool, *id, *name, shortCodes)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.err, "partner %s created; its API key (shown once, keep it safe):\n", *id)
	fmt.Fprintln(c.out, key)
	return nil
}
