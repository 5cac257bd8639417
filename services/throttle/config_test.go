package throttle

import (
	"flag"
	"maps"
	"strings"
	"testing"
	"time"

	"pushsms.io/lib/config"
)

func TestFlags(t *testing.T) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("throttle", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	env := map[string]string{"THROTTLE_RATES": "36000=20,36001=50", "LOOKAHEAD": "2s"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := config.ParseEnv(fs, "THROTTLE", []string{"-default-rate", "20"}, lookup); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if want := (RateTable{"36000": 20, "36001": 50}); !maps.Equal(cfg.Rates, want) {
		t.Errorf("rates: got %v, want %v", cfg.Rates, want)
	}
	if cfg.DefaultRate != 20 || cfg.Lookahead != 2*time.Second || cfg.GRPCAddr != ":9092" {
		t.Errorf("got default-rate %d lookahead %v grpc-addr %q, want 20 2s :9092", cfg.DefaultRate, cfg.Lookahead, cfg.GRPCAddr)
	}
	if got := cfg.rates().Rate("36001"); got != 50 {
		t.Errorf("rate of 36001: got %d, want 50", got)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string // "" for valid
	}{
		{name: "default", mod: func(*Config) {}},
		{name: "zero_rate", mod: func(c *Config) { c.DefaultRate = 0 }, want: "default-rate"},
		{name: "rate_source_replaces_default", mod: func(c *Config) { c.DefaultRate = 0; c.RateSource = StaticRates{Default: 5} }},
		{name: "bad_override", mod: func(c *Config) { c.Rates = RateTable{"36000": 0} }, want: "rates"},
		{name: "negative_guard", mod: func(c *Config) { c.RateGuard = -time.Millisecond }, want: "rate-guard"},
		{name: "lookahead_beyond_ack_wait", mod: func(c *Config) { c.Lookahead = 20 * time.Second }, want: "lookahead"},
		{name: "no_workers", mod: func(c *Config) { c.Workers = 0 }, want: "workers"},
		{name: "ack_pending_below_workers", mod: func(c *Config) { c.MaxAckPending = 10 }, want: "max-ack-pending"},
		{name: "unlimited_ack_pending", mod: func(c *Config) { c.MaxAckPending = -1 }},
		{name: "no_grpc_addr", mod: func(c *Config) { c.GRPCAddr = "" }, want: "grpc-addr"},
		{name: "window_recheck_too_short", mod: func(c *Config) { c.WindowRecheck = time.Millisecond }, want: "window-recheck"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mod(&cfg)
			err := cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got %v, want valid", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want an error about %s", err, tt.want)
			}
		})
	}
}
