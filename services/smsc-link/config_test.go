package smsclink

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/config"
	"pushsms.io/lib/telemetry"
	"pushsms.io/lib/ucp"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

func TestAccountListSet(t *testing.T) {
	tests := []struct {
		in      string
		want    AccountList
		wantErr bool
	}{
		{"36000:password,36001:password", AccountList{{ShortCode: "36000", Password: "password"}, {ShortCode: "36001", Password: "password"}}, false},
		{" 36000/user1:p:w= ", AccountList{{ShortCode: "36000", Login: "user1", Password: "p:w="}}, false},
		{"", nil, false},
		{"36000", nil, true},
		{"36000:", nil, true},
		{"PUSH:secret", nil, true},
		{"36000:" + strings.Repeat("x", 17), nil, true},
	}
	for _, tt := range tests {
		var got AccountList
		err := got.Set(tt.in)
		if (err != nil) != tt.wantErr || fmt.Sprint([]Account(got)) != fmt.Sprint([]Account(tt.want)) {
			t.Errorf("Set(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && (strings.Contains(err.Error(), "xxx") || strings.Contains(err.Error(), "PUSH")) {
			t.Errorf("Set(%q): error %q shows the input", tt.in, err)
		}
		for i, a := range got {
			if a.Password != tt.want[i].Password || a.Login != tt.want[i].Login {
				t.Errorf("Set(%q): account %d is %+v", tt.in, i, []string{a.ShortCode, a.Login, a.Password})
			}
		}
	}
}

// TestAccountsNeverPrintPasswords covers every way a configuration ends up
// in a log: fmt verbs, slog, flag defaults.
func TestAccountsNeverPrintPasswords(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Accounts.Set("36000:hunter2,36001/login:hunter3"); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "accounts", cfg.Accounts, "account", cfg.Accounts[0])
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var usage bytes.Buffer
	fs.SetOutput(&usage)
	cfg.RegisterFlags(fs)
	fs.PrintDefaults()
	for _, out := range []string{
		fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprint(cfg.Accounts[1]),
		logs.String(), usage.String(), cfg.Accounts.String(),
	} {
		if strings.Contains(out, "hunter") {
			t.Errorf("a password shows in %q", out)
		}
	}
	if got := cfg.Accounts.String(); got != "36000:*****,36001/login:*****" {
		t.Errorf("String() = %q", got)
	}
}

func TestAccountsFromEnvironment(t *testing.T) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet(Name, flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	env := map[string]string{
		"SMSC_LINK_SMSC_ACCOUNTS": "36000:s3cret",
		"SMSC_LINK_SMSC_ADDR":     "10.0.0.1:5000",
		"SMSC_EXPIRED_RSN":        "200, 250",
	}
	err := config.ParseEnv(fs, "SMSC_LINK", []string{"-smsc-window", "20"}, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Accounts) != 1 || cfg.Accounts[0].Password != "s3cret" || cfg.SMSCAddr != "10.0.0.1:5000" || cfg.Window != 20 ||
		fmt.Sprint(cfg.ExpiredRsn) != "[200 250]" {
		t.Errorf("got %v, window %d, expired rsn %v", cfg.Accounts, cfg.Window, cfg.ExpiredRsn)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.SMSCAddr = "127.0.0.1:7777"
	ok.Accounts = AccountList{{ShortCode: "36000", Password: "p"}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"no SMSC address", func(c *Config) { c.SMSCAddr = "" }},
		{"no account", func(c *Config) { c.Accounts = nil }},
		{"two accounts for a code", func(c *Config) { c.Accounts = append(c.Accounts, c.Accounts[0]) }},
		{"window 0", func(c *Config) { c.Window = 0 }},
		{"window 101", func(c *Config) { c.Window = 101 }},
		{"no ACK timeout", func(c *Config) { c.AckTimeout = 0 }},
		{"AdC format", func(c *Config) { c.AdCFormat = "e164" }},
		{"time zone", func(c *Config) { c.Timezone = "Mars/Olympus" }},
		{"auth backoff below 30 s", func(c *Config) { c.AuthBackoff = time.Second }},
		{"no session", func(c *Config) { c.Sessions = 0 }},
		{"33 sessions", func(c *Config) { c.Sessions = 33 }},
		{"TLS options without TLS", func(c *Config) { c.TLSInsecureSkipVerify = true }},
		{"listen accounts without listen addr", func(c *Config) { c.ListenAccounts = AccountList{{ShortCode: "36000", Password: "p"}} }},
		{"negative resend delay", func(c *Config) { c.UnknownResendAfter = -time.Second }},
		{"default rate 0", func(c *Config) { c.DefaultRate = 0 }},
		{"default rate above MaxRate", func(c *Config) { c.DefaultRate = 1001 }},
		{"rate 0 in -rates", func(c *Config) { c.Rates = map[string]int{"36000": 0} }},
		{"negative rate slack", func(c *Config) { c.RateSlack = -time.Millisecond }},
		{"negative ref cache", func(c *Config) { c.RefCache = -1 }},
	}
	for _, tt := range tests {
		c := ok
		c.Accounts = append(AccountList(nil), ok.Accounts...)
		tt.mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate succeeded", tt.name)
		}
	}
	if w := ok.workers(); w != 10 {
		t.Errorf("workers = %d, want window × accounts = 10", w)
	}
	two := ok
	two.Sessions = 2
	if w := two.workers(); w != 20 {
		t.Errorf("workers = %d, want window × sessions × accounts = 20", w)
	}
	if ok.ackWait() <= ok.AckTimeout {
		t.Errorf("ack wait %v not above the ACK timeout %v", ok.ackWait(), ok.AckTimeout)
	}
}

func TestFormatAdC(t *testing.T) {
	tests := []struct {
		in, format, want string
		wantErr          bool
	}{
		{"+33612345678", AdCInternational, "33612345678", false},
		{"+33612345678", AdCPrefix00, "0033612345678", false},
		{"+33612345678", AdCNational, "0612345678", false},
		{"+590690123456", AdCNational, "00590690123456", false},
		{"+337000123456789", AdCInternational, "337000123456789", false},
		{"+337000123456789", AdCNational, "07000123456789", false},
		{"+4915123456789", AdCInternational, "4915123456789", false},
		{"+4915123456789", AdCPrefix00, "004915123456789", false},
		{"", AdCInternational, "", true},
		{"not a number", AdCInternational, "", true},
	}
	for _, tt := range tests {
		got, err := formatAdC(tt.in, tt.format)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("formatAdC(%q, %s) = %q, %v; want %q, error %v", tt.in, tt.format, got, err, tt.want, tt.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "number") && strings.Contains(err.Error(), tt.in) && tt.in != "" {
			t.Errorf("error %q shows the input", err)
		}
	}
}

// TestCorrKeyForms: whatever form the SMSC writes the DR's OAdC in, the key
// is the one stored on the ACK.
func TestCorrKeyForms(t *testing.T) {
	want := corrKey("+33612345678", "271126120000")
	for _, form := range []string{"33612345678", "0033612345678", "0612345678"} {
		if got := corrKey(form, "271126120000"); got != want {
			t.Errorf("corrKey(%s) = %s, want %s", form, got, want)
		}
	}
	if strings.Contains(want, "612345678") || len(want) != 32+1+12 {
		t.Errorf("key %s", want)
	}
	if corrKey("PUSHSMS", "271126120000") == corrKey("PUSHSMT", "271126120000") {
		t.Error("unparseable addresses share a key")
	}
	for _, id := range []string{"0190a8e2-0000-7000-8000-000000000001", "a.b*c", strings.Repeat("x", 200)} {
		k := attemptKey(id, 3)
		if !strings.HasPrefix(k, "seg.") || !strings.HasSuffix(k, ".3") || strings.Count(k, ".") != 2 || len(k) > 160 {
			t.Errorf("attemptKey(%q) = %q", id, k)
		}
	}
}

func TestDRState(t *testing.T) {
	loc := time.UTC
	s := &Service{loc: loc, expRsn: map[int]bool{250: true}}
	vp := time.Date(2026, 11, 27, 12, 0, 0, 0, loc)
	withVP := segmentRef{ValidUntil: vp}
	at := func(t time.Time) string { return ucp.FormatSCTS(t, loc) }
	tests := []struct {
		name    string
		n       ucp.Notification
		ref     segmentRef
		want    partnerv1.SegmentState
		subject string
		final   bool
	}{
		{"delivered", ucp.Notification{DSt: 0}, withVP, partnerv1.SegmentState_SEGMENT_STATE_DELIVERED, "delivered", true},
		{"buffered", ucp.Notification{DSt: 1, Rsn: 107}, withVP, partnerv1.SegmentState_SEGMENT_STATE_BUFFERED, "buffered", false},
		{"failed before VP", ucp.Notification{DSt: 2, Rsn: 108, DSCTS: at(vp.Add(-time.Minute))}, withVP, partnerv1.SegmentState_SEGMENT_STATE_FAILED, "failed", true},
		{"failed at VP is expired", ucp.Notification{DSt: 2, Rsn: 108, DSCTS: at(vp)}, withVP, partnerv1.SegmentState_SEGMENT_STATE_EXPIRED, "expired", true},
		{"failed, no VP", ucp.Notification{DSt: 2, Rsn: 108, DSCTS: at(vp)}, segmentRef{}, partnerv1.SegmentState_SEGMENT_STATE_FAILED, "failed", true},
		{"failed, bad DSCTS", ucp.Notification{DSt: 2, Rsn: 108, DSCTS: "x"}, withVP, partnerv1.SegmentState_SEGMENT_STATE_FAILED, "failed", true},
		{"expired by Rsn", ucp.Notification{DSt: 2, Rsn: 250}, segmentRef{}, partnerv1.SegmentState_SEGMENT_STATE_EXPIRED, "expired", true},
		{"invalid VP is a failure", ucp.Notification{DSt: 2, Rsn: 201}, segmentRef{}, partnerv1.SegmentState_SEGMENT_STATE_FAILED, "failed", true},
	}
	for _, tt := range tests {
		st, subject, final, ok := s.drState(&tt.n, tt.ref)
		if !ok || st != tt.want || subject != tt.subject || final != tt.final {
			t.Errorf("%s: got %v %s final %v ok %v", tt.name, st, subject, final, ok)
		}
	}
	if _, _, _, ok := s.drState(&ucp.Notification{DSt: 5}, segmentRef{}); ok {
		t.Error("DSt 5 mapped")
	}
}

// TestSCTSCollision: a second segment with the same (recipient, SCTS) does
// not take the key over; the collision is counted.
func TestSCTSCollision(t *testing.T) {
	srv := bustest.Start(t)
	var logs bytes.Buffer
	logger, err := telemetry.NewLogger(&syncWriter{w: &logs}, "debug", "json")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Bus.URL = srv.URL()
	cfg.GRPCAddr, cfg.Telemetry.MetricsAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.SMSCAddr = "127.0.0.1:1"
	cfg.Accounts = AccountList{{ShortCode: "36000", Password: "p"}}
	cfg.Telemetry = telemetry.Config{Logger: logger}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	key := corrKey("+33612345678", "271126120000")
	first := segmentRef{MessageID: "m1", TenantID: "acme", ShortCode: "36000", Index: 1, Count: 1}
	second := segmentRef{MessageID: "m2", TenantID: "acme", ShortCode: "36000", Index: 1, Count: 1}
	for _, ref := range []segmentRef{first, first, second} {
		if _, err := s.storeRef(ctx, key, ref); err != nil {
			t.Fatal(err)
		}
	}
	got, found, err := s.getRef(ctx, key)
	if err != nil || !found || got.MessageID != "m1" {
		t.Errorf("key holds %+v, %v, %v; want m1", got, found, err)
	}
	if n := s.Stats().SCTSCollisions; n != 1 {
		t.Errorf("%d collisions counted, want 1", n)
	}
	if !strings.Contains(logs.String(), "SCTS collision") || strings.Contains(logs.String(), "612345678") {
		t.Errorf("log: %s", logs.String())
	}
}

type syncWriter struct{ w *bytes.Buffer }

func (s *syncWriter) Write(p []byte) (int, error) { return s.w.Write(p) }

func TestTLSConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SMSCAddr = "smsc.example:5000"
	if c, err := cfg.tlsConfig(); c != nil || err != nil {
		t.Errorf("without -smsc-tls: %v, %v", c, err)
	}
	cfg.TLS = true
	c, err := cfg.tlsConfig()
	if err != nil || c.ServerName != "smsc.example" || c.InsecureSkipVerify || c.RootCAs != nil {
		t.Errorf("default: %+v, %v; want server name smsc.example, verified with the system roots", c, err)
	}
	cfg.TLSServerName = "other"
	if c, _ := cfg.tlsConfig(); c.ServerName != "other" {
		t.Errorf("server name %q, want other", c.ServerName)
	}
	cfg.TLSCA = "/nonexistent/ca.pem"
	if _, err := cfg.tlsConfig(); err == nil {
		t.Error("missing CA file: no error")
	}
}
