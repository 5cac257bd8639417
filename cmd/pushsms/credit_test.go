package main

import (
	"context"
	"strings"
	"testing"
)

func topUpCmd(c *cli) func(context.Context, []string) error { return c.runCreditTopUp }
func showCmd(c *cli) func(context.Context, []string) error  { return c.runCreditShow }

// The aggregator opens a partner's prepaid account, tops it up twice with
// the same reference (counted once) and reads the balance.
func TestCreditCommands(t *testing.T) {
	e := startBilling(t)
	if _, err := e.run(t, showCmd, "-tenant", "acme"); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Fatalf("credit show of a postpaid partner: got %v, want NotFound", err)
	}
	for range 2 {
		out, err := e.run(t, topUpCmd, "-tenant", "acme", "-segments", "100", "-reference", "order-1")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "acme") {
			t.Fatalf("credit topup printed %q", out)
		}
	}
	out, err := e.run(t, showCmd, "-tenant", "acme")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("credit show printed %q, want a header and one line", out)
	}
	if got, want := strings.Fields(lines[1]), []string{"acme", "100", "0", "0", "100"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("credit show: got %v, want %v", got, want)
	}
	if _, err := e.run(t, topUpCmd, "-tenant", "acme", "-segments", "-5", "-reference", "order-2"); err == nil || !strings.Contains(err.Error(), "InvalidArgument") {
		t.Errorf("credit topup of -5 segments: got %v, want InvalidArgument", err)
	}
}
