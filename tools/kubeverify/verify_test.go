package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReadObjects checks the decoding the verifier relies on: every object of
// a multi-document file, empty documents skipped.
func TestReadObjects(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // describe() of each object
	}{
		{"one", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n", []string{"v1 Namespace a"}},
		{"empty documents", "---\n# only a comment\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  namespace: ns\n---\n", []string{"v1 Service ns/s"}},
		{"two", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n  namespace: a\n", []string{"v1 Namespace a", "apps/v1 Deployment a/d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "m.yaml")
			if err := os.WriteFile(f, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			objs, err := readObjects(f)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range objs {
				got = append(got, describe(o))
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRefusedHaveWant: a refused manifest without a "# want:" line would make
// the run fail; catch it without an API server.
func TestRefusedHaveWant(t *testing.T) {
	files, _ := filepath.Glob("testdata/refused/*.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata/refused/*.yaml")
	}
	for _, f := range files {
		if _, err := wantLine(f); err != nil {
			t.Error(err)
		}
		if _, err := readObjects(f); err != nil {
			t.Error(err)
		}
	}
}

// TestDryRun runs a real etcd + kube-apiserver: the corrected manifests are
// accepted, each refused one is refused for its reason, and a verifier that
// accepted a refused file or refused a good one would fail the run.
// It needs the binaries scripts/k8s-verify.sh builds (minutes the first
// time), so it runs only when KUBEVERIFY_BIN names their directory.
func TestDryRun(t *testing.T) {
	bin := os.Getenv("KUBEVERIFY_BIN")
	if bin == "" {
		t.Skip("KUBEVERIFY_BIN not set: run scripts/k8s-verify.sh once (it builds etcd and kube-apiserver into ~/.cache/pushsms/k8s-verify/<versions>) and set KUBEVERIFY_BIN to that directory")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cp, err := startControlPlane(ctx, bin, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.stop()
	var out bytes.Buffer
	v, err := newVerifier(cp.config, &out)
	if err != nil {
		t.Fatal(err)
	}
	// Some refused manifests are custom resources refused by their CRD's
	// CEL rules.
	if err := v.installCRDs(ctx, crdFiles(t)); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}

	if err := v.verifyOverlay(ctx, "testdata/accepted.yaml"); err != nil {
		t.Errorf("accepted.yaml: %v\n%s", err, out.String())
	}

	refused, _ := filepath.Glob("testdata/refused/*.yaml")
	for _, f := range refused {
		t.Run(filepath.Base(f), func(t *testing.T) {
			msg, err := v.verifyRefused(ctx, f)
			if err != nil {
				t.Fatalf("got %v, want refused", err)
			}
			t.Logf("refused: %s", msg)
			// As an overlay, the same file must fail the run.
			if err := v.verifyOverlay(ctx, f); err == nil {
				t.Errorf("verifyOverlay(%s) = nil, want an error", f)
			}
		})
	}

	// A file that should be refused but is not fails the run.
	good, err := os.ReadFile("testdata/accepted.yaml")
	if err != nil {
		t.Fatal(err)
	}
	notRefused := filepath.Join(t.TempDir(), "not-refused.yaml")
	if err := os.WriteFile(notRefused, append([]byte("# want: must be between 1 and 65535\n"), good...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := v.verifyRefused(ctx, notRefused); err == nil || !strings.Contains(err.Error(), "accepted by the API server") {
		t.Errorf("verifyRefused(accepted manifests) = %v, want 'accepted by the API server'", err)
	}
}

// crdFiles returns the KEDA and CloudNativePG CRDs at the versions
// deploy/k8s/schemas.sh names, from the module cache (downloaded if missing).
func crdFiles(t *testing.T) []string {
	t.Helper()
	script, err := os.ReadFile("../../deploy/k8s/schemas.sh")
	if err != nil {
		t.Fatal(err)
	}
	crds := []struct{ variable, file string }{
		{"KEDA", "config/crd/bases/keda.sh_scaledobjects.yaml"},
		{"CNPG", "config/crd/bases/postgresql.cnpg.io_clusters.yaml"},
	}
	var files []string
	for _, c := range crds {
		var mod string
		for line := range strings.SplitSeq(string(script), "\n") {
			if v, ok := strings.CutPrefix(line, c.variable+"="); ok {
				mod = v
			}
		}
		if mod == "" {
			t.Fatalf("deploy/k8s/schemas.sh sets no %s=", c.variable)
		}
		// Outside any module, so that no go.mod is touched.
		cmd := exec.Command("go", "mod", "download", "-json", mod)
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		js, err := cmd.Output()
		if err != nil {
			t.Fatalf("go mod download %s: %v", mod, err)
		}
		var m struct{ Dir string }
		if err := json.Unmarshal(js, &m); err != nil || m.Dir == "" {
			t.Fatalf("go mod download %s: no Dir in %s (%v)", mod, js, err)
		}
		files = append(files, filepath.Join(m.Dir, c.file))
	}
	return files
}
