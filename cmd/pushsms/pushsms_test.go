package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/pgdb"
	"pushsms.io/lib/pgtest"
	"pushsms.io/lib/telemetry"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
	"pushsms.io/services/ingest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// cliEnv is a real ingest service (with its bus and database) and a way
// to run commands against it.
type cliEnv struct {
	ctx  context.Context
	nats *bustest.Server
	env  map[string]string
	key  string
}

// cmd runs the command line args and returns what it printed on stdout.
func (e *cliEnv) cmd(args ...string) (string, error) {
	var out, errOut bytes.Buffer
	c := &cli{out: &out, err: &errOut, getenv: func(k string) string { return e.env[k] }}
	err := c.run(e.ctx, args)
	return out.String(), err
}

// startCLI creates partner acme (short codes 36123, 36124) with the
// command line, on a database the service never migrated, then starts the
// service. PUSHSMS_ADDR is set, PUSHSMS_API_KEY is not.
func startCLI(t *testing.T) *cliEnv {
	t.Helper()
	ns := bustest.Start(t)
	db := pgtest.New(t)
	cfg := ingest.DefaultConfig()
	cfg.Bus = bus.Config{URL: ns.URL(), Replicas: 1}
	cfg.DB = pgdb.Config{URL: db.URL, MaxConns: 4}
	cfg.GRPCAddr, cfg.Telemetry.MetricsAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Telemetry = telemetry.Config{LogLevel: "error", LogFormat: "text"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	e := &cliEnv{ctx: ctx, nats: ns, env: map[string]string{}}

	// Before the service ever ran: partner create migrates.
	out, err := e.cmd("partner", "create", "-database-url", db.URL, "-id", "acme", "-name", "Acme", "-short-codes", "36123, 36124")
	if err != nil {
		t.Fatal(err)
	}
	e.key = strings.TrimSpace(out)
	if !strings.HasPrefix(e.key, ingest.APIKeyPrefix) {
		t.Fatalf("partner create printed %q, want a key", out)
	}

	svc, err := ingest.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	serveCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- svc.Serve(serveCtx) }()
	t.Cleanup(func() { stop(); <-served; svc.Close() })
	e.env["PUSHSMS_ADDR"] = svc.Addr()
	return e
}

// TestCLI runs the commands against a real ingest service.
func TestCLI(t *testing.T) {
	e := startCLI(t)
	cmd, env, key := e.cmd, e.env, e.key
	var out string
	var err error

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
	out, err = cmd("campaign", "pause", campaignID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "PAUSED\n") {
		t.Errorf("campaign pause printed:\n%s", out)
	}
	if out, err = cmd("campaign", "resume", campaignID); err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(out, "PAUSED\n") || strings.HasPrefix(out, "CANCELLED\n") {
		t.Errorf("campaign resume printed:\n%s", out)
	}
	if _, err := cmd("campaign", "submit", "-quiet", "-csv", csvFile, "-short-code", "36124", "-brand", "Acme",
		"-text", "Bonjour", "-weight", "101"); err == nil || !strings.Contains(err.Error(), "weight") {
		t.Errorf("campaign submit -weight 101: %v, want the field violation", err)
	}

	out, err = cmd("shortcode", "pause", "36124")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "PAUSED\n") || !strings.Contains(out, "contracted: 10 SMS/s") {
		t.Errorf("shortcode pause printed:\n%s", out)
	}
	if out, err = cmd("shortcode", "cancel", "36124"); err != nil || !strings.Contains(out, "cancelled:  messages accepted before") {
		t.Errorf("shortcode cancel: %v, printed:\n%s", err, out)
	}
	if out, err = cmd("shortcode", "resume", "36124"); err != nil || !strings.HasPrefix(out, "RUNNING\n") {
		t.Errorf("shortcode resume: %v, printed:\n%s", err, out)
	}
	if out, err = cmd("shortcode", "get", "36124"); err != nil || !strings.HasPrefix(out, "RUNNING\n") || !strings.Contains(out, "achieved:   0.0 SMS/s") {
		t.Errorf("shortcode get: %v, printed:\n%s", err, out)
	}
	if _, err := cmd("shortcode", "pause", "99999"); err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
		t.Errorf("shortcode pause of another's short code: %v, want PermissionDenied", err)
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

// TestCLICompliance: the declarations of send and campaign submit, the
// decision in status, the campaign's refusals by reason, and suppression
// lists.
func TestCLICompliance(t *testing.T) {
	e := startCLI(t)
	e.env["PUSHSMS_API_KEY"] = e.key
	b := bustest.Connect(t, e.nats)
	text150 := strings.Repeat("a", 150)

	out, err := e.cmd("preview", "-short-code", "36123", "-append-stop", "-text", text150)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "segments:   2\n") || !strings.Contains(out, "sent as:    "+text150+" STOP au 36123") {
		t.Errorf("preview -append-stop printed:\n%s", out)
	}
	if _, err := e.cmd("send", "-short-code", "36123", "-category", "marketing", "-brand", "Acme", "-sector", "Retail",
		"-to", "0612345678", "-text", "Soldes"); err == nil || !strings.Contains(err.Error(), "sector: must be a sector key") {
		t.Errorf("send -sector Retail: %v, want the field violation", err)
	}
	out, err = e.cmd("send", "-short-code", "36123", "-category", "marketing", "-brand", "Acme", "-sector", "retail",
		"-append-stop", "-informed-at-collection", "-free-claim-attested", "-to", "0612345678", "-text", text150)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(out)
	// The mention is counted: two segments.
	if out, err := e.cmd("status", id); err != nil || !strings.Contains(out, "GSM7, 2 segment(s)") {
		t.Errorf("status: %v\n%s", err, out)
	}
	acc := acceptedEvent(t, b, id)
	if !acc.GetAttestations().GetStopInformedAtCollection() || !acc.GetAttestations().GetFreeClaimSubstantiated() || acc.GetSector() != "retail" {
		t.Errorf("accepted event: sector %q attestations %v", acc.GetSector(), acc.GetAttestations())
	}

	decided := time.Now()
	reject(t, b, acc, &partnerv1.Decision{Outcome: partnerv1.DecisionOutcome_DECISION_OUTCOME_REFUSED, Reason: partnerv1.Reason_REASON_OPTED_OUT,
		Rule: "optout", Source: "CPCE art. L34-5", Detail: "STOP to 36123", PolicyVersion: "2026.11.1", DecidedAt: timestamppb.New(decided)})
	out = waitOutput(t, func() (string, error) { return e.cmd("status", id) }, "REJECTED\n")
	for _, want := range []string{"decision:   REFUSED OPTED_OUT\n", "rule:       optout (source: CPCE art. L34-5)\n",
		"detail:     STOP to 36123\n", "policy:     2026.11.1, decided " + stamp(decided) + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("status of a refused message lacks %q:\n%s", want, out)
		}
	}

	csvFile := filepath.Join(t.TempDir(), "recipients.csv")
	if err := os.WriteFile(csvFile, []byte("msisdn\n0611111111\n0622222222\n0633333333\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = e.cmd("campaign", "submit", "-quiet", "-csv", csvFile, "-short-code", "36123", "-brand", "Acme",
		"-text", "Soldes d'hiver", "-append-stop", "-sector", "retail", "-ref", "winter")
	if err != nil {
		t.Fatal(err)
	}
	campaignID := field(out, "campaign:   ")
	evs := campaignEvents(t, b, campaignID)
	if len(evs) != 3 || !strings.HasSuffix(evs[0].GetText(), " STOP au 36123") || evs[0].GetSector() != "retail" {
		t.Fatalf("campaign events %v", evs)
	}
	reject(t, b, evs[0], &partnerv1.Decision{Outcome: partnerv1.DecisionOutcome_DECISION_OUTCOME_REFUSED, Reason: partnerv1.Reason_REASON_FREQUENCY_CAP, Rule: "frequency"})
	reject(t, b, evs[1], &partnerv1.Decision{Outcome: partnerv1.DecisionOutcome_DECISION_OUTCOME_REFUSED, Reason: partnerv1.Reason_REASON_OPTED_OUT, Rule: "optout"})
	reject(t, b, evs[2], &partnerv1.Decision{Outcome: partnerv1.DecisionOutcome_DECISION_OUTCOME_REFUSED, Reason: partnerv1.Reason_REASON_OPTED_OUT, Rule: "optout"})
	out = waitOutput(t, func() (string, error) { return e.cmd("campaign", "get", campaignID) }, "REJECTED:   3")
	if want := "refused by compliance:\n  OPTED_OUT:               2\n  FREQUENCY_CAP:           1\n"; !strings.Contains(out, want) {
		t.Errorf("campaign get printed:\n%s\nwant %q", out, want)
	}

	list := filepath.Join(t.TempDir(), "stops.txt")
	if err := os.WriteFile(list, []byte("# web form\n06 12 34 56 78\n\n12\r\n+33 7 98 76 54 32\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = e.cmd("suppress", "import", "-quiet", "-brand", "Acme", "-note", "web form 2026-11", "-batch", "1", list)
	if err != nil {
		t.Fatal(err)
	}
	if want := "imported:   2\nrefused:    1\nline 4 refused: INVALID_NUMBER (not a phone number)\n"; out != want {
		t.Errorf("suppress import printed:\n%s\nwant:\n%s", out, want)
	}
	out, err = e.cmd("suppress", "status", "-brand", "Acme", "+33612345678")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "BLOCKED\nrecipient:  +33 6 12 •• •• 78\nsuppressed: BRAND Acme, PARTNER_IMPORT ") || !strings.HasSuffix(out, ", note: web form 2026-11\n") {
		t.Errorf("suppress status printed:\n%s", out)
	}
	out, err = e.cmd("suppress", "status", "-brand", "Zeta", "0612345678")
	if err != nil || !strings.HasPrefix(out, "NOT BLOCKED\n") {
		t.Errorf("suppress status for another brand: %v\n%s", err, out)
	}
	if _, err := e.cmd("suppress", "status", "-short-code", "361", "0612345678"); err == nil || !strings.Contains(err.Error(), "short_code: must be 5 digits") {
		t.Errorf("suppress status -short-code 361: %v, want the field violation", err)
	}
}

// field returns the value of the line starting with prefix.
func field(out, prefix string) string {
	for line := range strings.SplitSeq(out, "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			return v
		}
	}
	return ""
}

// waitOutput runs cmd until its output contains want.
func waitOutput(t *testing.T, cmd func() (string, error), want string) string {
	t.Helper()
	var out string
	bustest.Eventually(t, 10*time.Second, func() error {
		var err error
		if out, err = cmd(); err != nil {
			return err
		}
		if !strings.Contains(out, want) {
			return fmt.Errorf("output lacks %q:\n%s", want, out)
		}
		return nil
	})
	return out
}

// acceptedEvents returns every message of SMS_ACCEPTED, the messages of
// campaign batches included.
func acceptedEvents(t *testing.T, b *bus.Bus) []*eventsv1.MessageAccepted {
	t.Helper()
	ctx := context.Background()
	st, err := b.JS.Stream(ctx, bus.StreamAccepted)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*eventsv1.MessageAccepted
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.Get(bus.HeaderType) == "pushsms.events.v1.CampaignBatch" {
			var b eventsv1.CampaignBatch
			if err := proto.Unmarshal(m.Data, &b); err != nil {
				t.Fatal(err)
			}
			out = append(out, b.GetMessages()...)
			continue
		}
		var acc eventsv1.MessageAccepted
		if err := proto.Unmarshal(m.Data, &acc); err != nil {
			t.Fatal(err)
		}
		out = append(out, &acc)
	}
	return out
}

func acceptedEvent(t *testing.T, b *bus.Bus, id string) *eventsv1.MessageAccepted {
	t.Helper()
	for _, acc := range acceptedEvents(t, b) {
		if acc.GetMessageId() == id {
			return acc
		}
	}
	t.Fatalf("no MessageAccepted for %s", id)
	return nil
}

func campaignEvents(t *testing.T, b *bus.Bus, id string) []*eventsv1.MessageAccepted {
	t.Helper()
	var out []*eventsv1.MessageAccepted
	for _, acc := range acceptedEvents(t, b) {
		if acc.GetCampaignId() == id {
			out = append(out, acc)
		}
	}
	return out
}

// reject publishes compliance's refusal of acc's message.
func reject(t *testing.T, b *bus.Bus, acc *eventsv1.MessageAccepted, d *partnerv1.Decision) {
	t.Helper()
	ev := &eventsv1.MessageRejected{MessageId: acc.GetMessageId(), TenantId: acc.GetTenantId(), CampaignId: acc.GetCampaignId(),
		ShortCode: acc.GetShortCode(), Reason: d.GetReason(), Detail: d.GetDetail(), At: timestamppb.Now(), Decision: d}
	if err := b.Publish(context.Background(), bus.ReportSubject("rejected", acc.GetTenantId(), acc.GetShortCode()), ev, acc.GetMessageId()+"/rejected"); err != nil {
		t.Fatal(err)
	}
}
