package ingest

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"pushsms.io/lib/fault"
	"pushsms.io/lib/pgtest"
)

// A key's grant is kept grantTTL: what it gives works within it, what is
// taken back stops working once it is over, and what is given works at
// once.
func TestGrantCache(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t, pgtest.Migrated(Schema, Migrations()))
	key, err := CreatePartner(ctx, db.Pool, "acme", "Acme", []string{"36000"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	a := &authenticator{pool: db.Pool, now: func() time.Time { return now }}
	call := func() (context.Context, error) {
		return a.authenticate(metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+key)))
	}
	exec := func(sql string) {
		t.Helper()
		if _, err := db.Pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	check := func(sc string, want error) {
		t.Helper()
		cctx, err := call()
		if err != nil {
			t.Fatalf("authenticate: %v", err)
		}
		err = checkShortCode(cctx, db.Pool, "acme", sc)
		if (want == nil) != (err == nil) || (want != nil && !errors.Is(err, want)) {
			t.Errorf("short code %s at %v: got %v, want %v", sc, now.Format(time.TimeOnly), err, want)
		}
	}

	check("36000", nil)
	exec(`DELETE FROM ingest.partner_short_codes WHERE partner_id = 'acme' AND short_code = '36000'`)
	check("36000", nil) // the grant still says so
	exec(`INSERT INTO ingest.partner_short_codes (partner_id, short_code) VALUES ('acme', '36001')`)
	check("36001", nil) // given: at once
	check("36002", fault.ErrDenied)

	now = now.Add(grantTTL)
	check("36000", fault.ErrDenied) // taken back, once the grant is old
	check("36001", nil)

	// A key replaced stops working within grantTTL.
	exec(`UPDATE ingest.partners SET api_key_sha256 = sha256('another key') WHERE id = 'acme'`)
	if _, err := call(); err != nil {
		t.Errorf("within the grant: %v", err)
	}
	now = now.Add(grantTTL)
	if _, err := call(); !errors.Is(err, fault.ErrUnauthenticated) {
		t.Errorf("after the grant: got %v, want unauthenticated", err)
	}
}
