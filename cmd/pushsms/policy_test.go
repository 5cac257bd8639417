package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/policy"
)

// The aggregator pushes a policy file; a replica watching the bucket sees
// it; show prints it back, and the history keeps both versions.
func TestPolicyPushShow(t *testing.T) {
	ns := bustest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := func(f func(*cli) func(context.Context, []string) error, args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		c := &cli{out: &out, err: &errOut, getenv: func(k string) string {
			if k == "NATS_URL" {
				return ns.URL()
			}
			return ""
		}}
		err := f(c)(ctx, args)
		return out.String(), errOut.String(), err
	}
	push := func(c *cli) func(context.Context, []string) error { return c.runPolicyPush }
	show := func(c *cli) func(context.Context, []string) error { return c.runPolicyShow }

	w, err := policy.Watch(ctx, bustest.Connect(t, ns), policy.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	if _, errOut, err := run(show); err != nil || !strings.Contains(errOut, "no policy in the bucket") {
		t.Errorf("show on an empty bucket: %v, %q", err, errOut)
	}
	def, _, err := run(show, "-default")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(def), &doc); err != nil {
		t.Fatalf("show -default: %v", err)
	}
	doc["version"] = "acme-2026-12"
	doc["window"] = map[string]any{"open": "08:00", "close": "21:30"}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _, err := run(push, "-check", file); err != nil || !strings.Contains(out, "valid") {
		t.Errorf("push -check: %v, %q", err, out)
	}
	if w.Current().Version != policy.Default().Version {
		t.Error("push -check pushed the policy")
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(strings.Replace(string(b), `"21:30"`, `"07:00"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(push, bad); err == nil || !strings.Contains(err.Error(), "window") {
		t.Errorf("push of a window closing before it opens: %v, want a window error", err)
	}
	if out, _, err := run(push, file); err != nil || !strings.Contains(out, "acme-2026-12 pushed") {
		t.Fatalf("push: %v, %q", err, out)
	}
	bustest.Eventually(t, time.Second, func() error {
		if v := w.Current().Version; v != "acme-2026-12" {
			return fmt.Errorf("version %q, want acme-2026-12", v)
		}
		return nil
	})
	if c := w.Current().Window.Close; c != policy.Clock(21*time.Hour+30*time.Minute) {
		t.Errorf("window closes at %s, want 21:30", c)
	}
	out, _, err := run(show)
	if err != nil {
		t.Fatal(err)
	}
	got, err := policy.Parse([]byte(out))
	if err != nil || got.Version != "acme-2026-12" {
		t.Errorf("show: %v, version %q", err, got.Version)
	}
	doc["version"] = "acme-2026-12.2"
	b, _ = json.Marshal(doc)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(push, file); err != nil {
		t.Fatal(err)
	}
	hist, _, err := run(show, "-history")
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(hist), "\n"); len(lines) != 2 ||
		!strings.HasSuffix(lines[0], "\tacme-2026-12") || !strings.HasSuffix(lines[1], "\tacme-2026-12.2") {
		t.Errorf("history:\n%s\nwant both versions, oldest first", hist)
	}
}
