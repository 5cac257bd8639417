package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var host = Platform{OS: "linux", Arch: runtime.GOARCH}

// other is an architecture the test binary can be cross-compiled to that is
// not this machine's.
func other() Platform {
	if runtime.GOARCH == "arm64" {
		return Platform{OS: "linux", Arch: "amd64"}
	}
	return Platform{OS: "linux", Arch: "arm64"}
}

// buildProbe compiles testdata/probe for p, statically as the services are
// unless cgo, and returns the binary.
func buildProbe(t *testing.T, p Platform, cgo bool) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "probe")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./testdata/probe")
	cgoEnv := "CGO_ENABLED=0"
	if cgo {
		cgoEnv = "CGO_ENABLED=1"
	}
	cmd.Env = append(os.Environ(), "GOWORK=off", cgoEnv, "GOOS="+p.OS, "GOARCH="+p.Arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build probe (%s, %s): %v\n%s", p, cgoEnv, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func caBundle(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Skipf("no CA bundle on this machine (apt-get install ca-certificates): %v", err)
	}
	return b
}

var meta = Meta{
	Version:  "1.2.3",
	Revision: "0123456789abcdef",
	Source:   "https://example.org/pushsms",
	Created:  time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC),
}

func TestCheckStatic(t *testing.T) {
	static := buildProbe(t, host, false)
	tests := []struct {
		name    string
		bin     func(t *testing.T) []byte
		p       Platform
		wantErr error
		wantMsg string
	}{
		{name: "CGO_ENABLED=0", bin: func(*testing.T) []byte { return static }, p: host},
		{name: "cgo, linked to libc", bin: func(t *testing.T) []byte {
			if _, err := exec.LookPath("gcc"); err != nil {
				t.Skip("no C compiler to build a cgo binary")
			}
			return buildProbe(t, host, true)
		}, p: host, wantErr: ErrNotStatic, wantMsg: "interpreter /lib"},
		{name: "another architecture", bin: func(t *testing.T) []byte { return buildProbe(t, other(), false) }, p: host, wantErr: ErrPlatform},
		{name: "right binary, wrong image platform", bin: func(*testing.T) []byte { return static }, p: other(), wantErr: ErrPlatform},
		{name: "not ELF", bin: func(*testing.T) []byte { return []byte("#!/bin/sh\necho hi\n") }, p: host, wantMsg: "not an ELF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckStatic(tt.bin(t), tt.p)
			if tt.wantErr == nil && tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got nil, want an error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("got %q, want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

// TestBuild writes an image as docker load takes it and reads it back: the
// config deploy/k8s relies on, and the files of both layers.
func TestBuild(t *testing.T) {
	bin := buildProbe(t, host, false)
	ca := caBundle(t)
	base, err := BaseLayer(ca, meta)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Build("probe", host, base, bin, meta)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag("pushsms/probe:1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "probe.tar")
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatal(err)
	}

	got, err := tarball.ImageFromPath(path, &tag)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := got.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65532:65532" {
		t.Errorf("user: got %q, want 65532:65532", cfg.Config.User)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{"/probe"}) || cfg.Config.Cmd != nil {
		t.Errorf("entrypoint, cmd: got %q %q, want [/probe] []", cfg.Config.Entrypoint, cfg.Config.Cmd)
	}
	if cfg.Config.WorkingDir != "/" {
		t.Errorf("working dir: got %q, want /", cfg.Config.WorkingDir)
	}
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
		t.Errorf("platform: got %s/%s, want %s", cfg.OS, cfg.Architecture, host)
	}
	if !cfg.Created.Equal(meta.Created) {
		t.Errorf("created: got %v, want %v", cfg.Created, meta.Created)
	}
	for k, want := range map[string]string{
		LabelTitle: "probe", LabelVersion: "1.2.3", LabelRevision: "0123456789abcdef", LabelSource: "https://example.org/pushsms",
	} {
		if got := cfg.Config.Labels[k]; got != want {
			t.Errorf("label %s: got %q, want %q", k, got, want)
		}
	}
	if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type: got %s, want %s", mt, types.OCIManifestSchema1)
	}

	layers, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 2 {
		t.Fatalf("got %d layers, want 2 (base, binary)", len(layers))
	}
	baseFiles := files(t, layers[0])
	wantBase := map[string]string{
		"etc/passwd":                        "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin",
		"etc/group":                         "nonroot:x:65532:",
		"etc/ssl/certs/ca-certificates.crt": string(ca),
		"tmp/":                              "",
		"home/nonroot/":                     "",
	}
	for f, want := range wantBase {
		h, ok := baseFiles[f]
		if !ok {
			t.Errorf("base layer: no %s", f)
			continue
		}
		if !strings.Contains(h.content, want) {
			t.Errorf("base layer %s: got %q, want it to contain %q", f, h.content, want)
		}
	}
	if h := baseFiles["tmp/"]; h.mode != 0o1777 {
		t.Errorf("/tmp: got mode %o, want 1777", h.mode)
	}
	if h := baseFiles["home/nonroot/"]; h.uid != 65532 || h.gid != 65532 {
		t.Errorf("/home/nonroot: got owner %d:%d, want 65532:65532", h.uid, h.gid)
	}
	binFiles := files(t, layers[1])
	if len(binFiles) != 1 {
		t.Errorf("binary layer: got %d entries, want 1", len(binFiles))
	}
	probe, ok := binFiles["probe"]
	if !ok {
		t.Fatalf("binary layer: no /probe in %v", binFiles)
	}
	if probe.mode != 0o755 || probe.uid != 0 {
		t.Errorf("/probe: got mode %o uid %d, want 755 uid 0", probe.mode, probe.uid)
	}
	if probe.content != string(bin) {
		t.Errorf("/probe: got %d bytes, not the binary built (%d bytes)", len(probe.content), len(bin))
	}
	if err := CheckStatic([]byte(probe.content), host); err != nil {
		t.Errorf("/probe read back: %v", err)
	}
	for f, h := range mergeFiles(baseFiles, binFiles) {
		if !h.mtime.Equal(meta.Created) {
			t.Errorf("%s: got mtime %v, want %v (reproducible)", f, h.mtime, meta.Created)
		}
	}
}

type entry struct {
	mode     int64
	uid, gid int
	mtime    time.Time
	content  string
}

func files(t *testing.T, l v1.Layer) map[string]entry {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	m := make(map[string]entry)
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return m
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		m[h.Name] = entry{mode: h.Mode, uid: h.Uid, gid: h.Gid, mtime: h.ModTime, content: string(b)}
	}
}

func mergeFiles(ms ...map[string]entry) map[string]entry {
	all := make(map[string]entry)
	for _, m := range ms {
		for k, v := range m {
			all[k] = v
		}
	}
	return all
}

// TestReproducible builds the same image twice from scratch: same digest;
// and a different input gives another digest.
func TestReproducible(t *testing.T) {
	bin := buildProbe(t, host, false)
	ca := caBundle(t)
	digest := func(ca []byte, m Meta) v1.Hash {
		t.Helper()
		base, err := BaseLayer(ca, m)
		if err != nil {
			t.Fatal(err)
		}
		img, err := Build("probe", host, base, bin, m)
		if err != nil {
			t.Fatal(err)
		}
		h, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	first := digest(ca, meta)
	if again := digest(ca, meta); again != first {
		t.Errorf("same inputs: got %s then %s, want the same digest", first, again)
	}
	later := meta
	later.Created = meta.Created.Add(time.Second)
	if d := digest(ca, later); d == first {
		t.Errorf("another created time: got the same digest %s", d)
	}
	if d := digest(append(slices.Clone(ca), '\n'), meta); d == first {
		t.Errorf("another CA bundle: got the same digest %s", d)
	}
}

// canRun skips the test when RunInRoot cannot create its namespaces here
// (neither root nor unprivileged user namespaces).
func canRun(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) && os.Geteuid() != 0 {
		t.Skipf("cannot run a binary inside an image here (needs root or unprivileged user namespaces): %v", err)
	}
}

// TestRunInImage runs the probe inside its image's file system as Verify
// does: as 65532 with the image's /etc/passwd and CA bundle, a writable
// /tmp, a root it cannot write to, and nothing of the host's environment.
func TestRunInImage(t *testing.T) {
	bin := buildProbe(t, host, false)
	base, err := BaseLayer(caBundle(t), meta)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Build("probe", host, base, bin, meta)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ExtractRootFS(img, dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := RunInRoot(ctx, dir, "/probe")
	canRun(t, err)
	if err != nil {
		t.Fatalf("/probe in the image: %v\n%s", err, out)
	}
	want := "uid=65532 gid=65532 user=nonroot home=/home/nonroot roots>0=true tmp=writable /=not writable env=0\n"
	if string(out) != want {
		t.Errorf("/probe in the image:\ngot  %q\nwant %q", out, want)
	}
}

// TestVerify checks that Verify passes a good image, running its binary,
// and rejects images deploy/k8s could not run.
func TestVerify(t *testing.T) {
	bin := buildProbe(t, host, false)
	base, err := BaseLayer(caBundle(t), meta)
	if err != nil {
		t.Fatal(err)
	}
	good, err := Build("probe", host, base, bin, meta)
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := Build("ingest", host, base, bin, meta)
	if err != nil {
		t.Fatal(err)
	}
	withConfig := func(f func(*v1.Config)) v1.Image {
		cf, err := good.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cf.Config.DeepCopy()
		f(c)
		img, err := mutate.Config(good, *c)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	tests := []struct {
		name    string
		img     v1.Image
		as      string // the image's name
		p       Platform
		wantRan bool
		wantErr string
	}{
		{name: "good", img: good, as: "probe", p: host, wantRan: true},
		{name: "runs as root", img: withConfig(func(c *v1.Config) { c.User = "0:0" }), as: "probe", p: host, wantErr: `user "0:0"`},
		{name: "entrypoint elsewhere", img: withConfig(func(c *v1.Config) { c.Entrypoint = []string{"/bin/probe"} }), as: "probe", p: host, wantErr: "entrypoint"},
		{name: "no binary /ingest", img: good, as: "ingest", p: host, wantErr: "entrypoint"},
		{name: "binary missing", img: withConfig(func(c *v1.Config) { c.Entrypoint = []string{"/ingest"} }), as: "ingest", p: host, wantErr: "no such file"},
		// Ran, and -h printed the usage of another command.
		{name: "binary is not the service", img: impostor, as: "ingest", p: host, wantErr: `printed no "Usage of ingest:"`},
		{name: "declared for another platform", img: good, as: "probe", p: other(), wantErr: "platform"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			ran, err := Verify(ctx, tt.img, tt.as, tt.p, t.TempDir())
			canRun(t, err)
			if tt.wantErr == "" {
				if err != nil || ran != tt.wantRan {
					t.Fatalf("got ran=%t, %v; want ran=%t, nil", ran, err, tt.wantRan)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestRun builds with mkimage's Run for two platforms and checks the files a
// user loads: <name>.tar's manifest.json tags the image as deploy/k8s names
// it, <name>.oci is an OCI layout whose index has both platforms.
func TestRun(t *testing.T) {
	bins := t.TempDir()
	for _, p := range []Platform{host, other()} {
		dir := filepath.Join(bins, p.OS+"_"+p.Arch)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "probe"), buildProbe(t, p, false), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	caBundle(t)
	cfg := DefaultConfig()
	cfg.Names = []string{"probe"}
	cfg.BinDir = bins
	cfg.Out = t.TempDir()
	cfg.Platforms = []Platform{host, other()}
	cfg.Meta = meta
	cfg.Log = slog.New(slog.NewTextHandler(t.Output(), nil))
	var sizes bytes.Buffer
	cfg.Sizes = &sizes
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := Run(ctx, cfg)
	canRun(t, err)
	if err != nil {
		t.Fatal(err)
	}

	// docker load reads manifest.json.
	var manifest []struct{ RepoTags, Layers []string }
	tr := tar.NewReader(open(t, filepath.Join(cfg.Out, "probe.tar")))
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("probe.tar: no manifest.json: %v", err)
		}
		if h.Name == "manifest.json" {
			if err := json.NewDecoder(tr).Decode(&manifest); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if len(manifest) != 1 || !slices.Equal(manifest[0].RepoTags, []string{"pushsms/probe:1.2.3"}) || len(manifest[0].Layers) != 2 {
		t.Errorf("probe.tar manifest.json: got %+v, want one image tagged pushsms/probe:1.2.3 with 2 layers", manifest)
	}

	ii, err := layout.ImageIndexFromPath(filepath.Join(cfg.Out, "probe.oci"))
	if err != nil {
		t.Fatal(err)
	}
	top, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(top.Manifests) != 1 || top.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "1.2.3" ||
		top.Manifests[0].Annotations["io.containerd.image.name"] != "docker.io/pushsms/probe:1.2.3" {
		t.Fatalf("probe.oci index.json: got %+v, want one entry named 1.2.3 and docker.io/pushsms/probe:1.2.3", top.Manifests)
	}
	child, err := ii.ImageIndex(top.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	m, err := child.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range m.Manifests {
		got = append(got, d.Platform.OS+"/"+d.Platform.Architecture)
	}
	if want := []string{host.String(), other().String()}; !slices.Equal(got, want) {
		t.Errorf("probe.oci platforms: got %v, want %v", got, want)
	}
	for _, want := range []string{"pushsms/probe:1.2.3", host.String(), other().String()} {
		if !strings.Contains(sizes.String(), want) {
			t.Errorf("sizes: got\n%s\nwant a row with %s", sizes.String(), want)
		}
	}
}

func open(t *testing.T, path string) io.Reader {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
