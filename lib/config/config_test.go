package config

import (
	"flag"
	"io"
	"testing"
	"time"
)

func TestParseEnv(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantURL  string
		wantWait time.Duration
	}{
		{name: "defaults", wantURL: "nats://default", wantWait: time.Second},
		{name: "flag_wins_over_env", args: []string{"-nats-url", "nats://flag"}, env: map[string]string{"INGEST_NATS_URL": "nats://env"}, wantURL: "nats://flag", wantWait: time.Second},
		{name: "prefixed_env", env: map[string]string{"INGEST_NATS_URL": "nats://prefixed", "NATS_URL": "nats://plain"}, wantURL: "nats://prefixed", wantWait: time.Second},
		{name: "plain_env", env: map[string]string{"NATS_URL": "nats://plain", "ACK_WAIT": "5s"}, wantURL: "nats://plain", wantWait: 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
			url := fs.String("nats-url", "nats://default", "")
			wait := fs.Duration("ack-wait", time.Second, "")
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			if err := ParseEnv(fs, "ingest", tt.args, lookup); err != nil {
				t.Fatal(err)
			}
			if *url != tt.wantURL || *wait != tt.wantWait {
				t.Errorf("got %q %v, want %q %v", *url, *wait, tt.wantURL, tt.wantWait)
			}
		})
	}
}

func TestParseEnvBadValue(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Duration("ack-wait", time.Second, "")
	err := ParseEnv(fs, "x", nil, func(k string) (string, bool) { return "soon", k == "X_ACK_WAIT" })
	if err == nil {
		t.Fatal("got nil error for ACK_WAIT=soon, want one naming the variable")
	}
}
