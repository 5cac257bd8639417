package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/pgdb"
	"pushsms.io/lib/pgtest"
	"pushsms.io/lib/telemetry"
	"pushsms.io/services/ingest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestCLI runs the commands against a real ingest service.
func TestCLI(t *testing.T) {
	ns := bustest.Start(t)
	db := pgtest.New(t)
	cfg := ingest.DefaultConfig()
	cfg.Bus = bus.Config{URL: ns.URL(), Replicas: 1}
	cfg.DB = pgdb.Config{URL: db.URL, MaxConns: 4}
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.Telemetry = telemetry.Config{LogLevel: "error", LogFormat: "text"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	env := map[string]string{}
	cmd := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		c := &cli{out: &out, err: &errOut, getenv: func(k string) string { return env[k] }}
		err := c.run(ctx, args)
		return out.String(), err
	}

	// Before the service ever ran: partner create migrates.
	out, err := cmd("partner", "create", "-database-url", db.URL, "-id", "acme", "-name", "Acme", "-short-codes", "36123, 36124")
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(out)
	if !strings.HasPrefix(key, ingest.APIKeyPrefix) {
		t.Fatalf("partner create printed %q, want a key", out)
	}

	svc, err := ingest.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	serveCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- svc.Serve(serveCtx) }()
	defer func() { stop(); <-served; svc.Close() }()
	env["PUSHSMS_ADDR"] = svc.Addr()

	if _, err := cmd("send", "-short-code", "36123", "-to", "0612345678", "-text", "Bonjour"); err == nil || !strings.Contains(err.Error(), "API key") {
		t.Errorf("send without key: %v, want an error about the key", err)
	}
	if _, err := cmd("send", "-key", "psk_bad", "-short-code", "36123", "-to", "0612345678", "-text", "Bonjour"); err == nil || !strings.Contains(err.Error(), "Unauthenticated") {
		t.Errorf("send with a bad key: %v, want Unauthenticated", err)
	}
	env["PUSHSMS_API_KEY"] = key
	if _, err := cmd("send", "-short-code", "3612", "-to", "0612345678", "-text", "Bonjour"); err == nil || !strings.Contains(err.Error(), "short_code: must be 5 digits") {
		t.Errorf("send from a bad short code: %v, want the field violation", err)
	}

	out, err = cmd("send", "-short-code", "36123", "-to", "06 12 34 56 78", "-text", "Bonjour, votre colis arrive demain.")
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(out)
	out, err = cmd("status", id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "ACCEPTED\n") || !strings.Contains(out, "+33 6 12 •• •• 78") || !strings.Contains(out, "GSM7, 1 segment(s)") {
		t.Errorf("status printed:\n%s", out)
	}

	out, err = cmd("preview", "-text", "L’été…")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "encoding:   GSM7") || !strings.Contains(out, "sent as:    L'été...") {
		t.Errorf("preview printed:\n%s", out)
	}

	csvFile := filepath.Join(t.TempDir(), "recipients.csv")
	csv := "prenom,msisdn,code\nZoé,0612345678,A1\nLéo,0687654321,B2\n,0600000000,C3\nMax,0611111111\n"
	if err := os.WriteFile(csvFile, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = cmd("campaign", "submit", "-quiet", "-csv", csvFile, "-short-code", "36124", "-brand", "Acme",
		"-text", "Bonjour {{prenom}}, code {{code}}. STOP 36124", "-batch", "2", "-ref", "c1")
	if err != nil {
		t.Fatal(err)
	}
	// Max's line has no code column: refused, line 5.
	if !strings.Contains(out, "accepted:   3\nrefused:    1\n") || !strings.Contains(out, "line 5 refused: CONTENT") {
		t.Errorf("campaign submit printed:\n%s", out)
	}
	campaignID := ""
	for line := range strings.SplitSeq(out, "\n") {
		if v, ok := strings.CutPrefix(line, "campaign:   "); ok {
			campaignID = v
		}
	}
	out, err = cmd("campaign", "cancel", campaignID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "CANCELLED\n") {
		t.Errorf("campaign cancel printed:\n%s", out)
	}
	if _, err := cmd("frobnicate"); err == nil {
		t.Error("unknown command: no error")
	}
}
