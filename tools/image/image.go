// Package image builds the services' container images without a Docker
// daemon and without pulling a base image: no registry but the Go module
// proxy is reachable from the machines that build them.
//
// An image is two layers on nothing ("FROM scratch"):
//
//  1. the base, the same for every image: /etc/passwd and /etc/group with the
//     user nonroot (65532, the UID deploy/k8s runs every container as),
//     /etc/nsswitch.conf, the CA bundle at /etc/ssl/certs/ca-certificates.crt
//     (TLS to an OTLP collector or an SMSC), /tmp (1777) and /home/nonroot;
//  2. the service's statically linked binary at /<name>.
//
// That is the layout of distroless static:nonroot, which the Dockerfile of
// deploy/images uses, so the manifests of deploy/k8s (command ["/<name>"],
// runAsUser 65532, read-only root file system) run either image. There is no
// zoneinfo database: the services that need a time zone embed one
// (time/tzdata).
//
// Builds are reproducible: every timestamp (the layers' files, the config's
// created, the history) is Meta.Created, the tar headers carry no user or
// group names, and gzip writes no modification time, so the same binaries,
// CA bundle and Meta give the same digests.
package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The user every container runs as: deploy/k8s's runAsUser and runAsGroup,
// distroless's nonroot.
const (
	UID  = 65532
	GID  = 65532
	User = "65532:65532"
)

// CACertsPath is where the base layer puts the CA bundle: the first file Go's
// crypto/x509 reads on Linux, and where Debian (and distroless) keep theirs.
const CACertsPath = "etc/ssl/certs/ca-certificates.crt"

// Labels (OCI image annotations, as image config labels).
const (
	LabelTitle    = "org.opencontainers.image.title"
	LabelVersion  = "org.opencontainers.image.version"
	LabelRevision = "org.opencontainers.image.revision"
	LabelSource   = "org.opencontainers.image.source"
)

var (
	// ErrNotStatic is returned for a binary that needs a dynamic loader: it
	// would not start in an image that has no libc.
	ErrNotStatic = errors.New("image: binary is dynamically linked")
	// ErrPlatform is returned for a binary built for another platform than
	// the image's.
	ErrPlatform = errors.New("image: binary does not match the platform")
)

// Platform is an image's operating system and architecture, in Go's
// (and OCI's) names: linux/amd64, linux/arm64.
type Platform struct {
	OS, Arch string
}

// ParsePlatform parses "os/arch".
func ParsePlatform(s string) (Platform, error) {
	goos, arch, ok := strings.Cut(s, "/")
	if !ok || goos == "" || arch == "" || strings.Contains(arch, "/") {
		return Platform{}, fmt.Errorf("image: platform %q: want os/arch (linux/amd64)", s)
	}
	return Platform{OS: goos, Arch: arch}, nil
}

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// Meta is what an image says about its origin.
type Meta struct {
	// Version is the release (the image's tag), Revision the commit it was
	// built from, Source the repository's URL; empty ones are left out.
	Version, Revision, Source string
	// Created is every timestamp of the image. The commit's time keeps a
	// build reproducible; the zero value means the Unix epoch.
	Created time.Time
}

func (m Meta) created() time.Time {
	if m.Created.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	return m.Created.UTC().Truncate(time.Second)
}

// file is one entry of a layer.
type file struct {
	name     string // relative to /, no leading slash
	dir      bool
	mode     int64
	uid, gid int
	data     []byte
}

// BaseLayer returns the layer every image starts with: the users, the CA
// bundle caCerts (PEM), /tmp and nonroot's home.
func BaseLayer(caCerts []byte, m Meta) (v1.Layer, error) {
	if !bytes.Contains(caCerts, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, errors.New("image: the CA bundle holds no PEM certificate")
	}
	// The same three users as distroless; "nobody" is what a pod without
	// runAsUser would map to on some runtimes.
	passwd := "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		fmt.Sprintf("nonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", UID, GID)
	group := "root:x:0:\nnobody:x:65534:\n" + fmt.Sprintf("nonroot:x:%d:\n", GID)
	return layer([]file{
		{name: "etc", dir: true, mode: 0o755},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		// Go's resolver reads it for the order of /etc/hosts and DNS.
		{name: "etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/ssl", dir: true, mode: 0o755},
		{name: "etc/ssl/certs", dir: true, mode: 0o755},
		{name: CACertsPath, mode: 0o644, data: caCerts},
		{name: "home", dir: true, mode: 0o755},
		{name: "home/nonroot", dir: true, mode: 0o700, uid: UID, gid: GID},
		{name: "tmp", dir: true, mode: 0o1777},
	}, m.created())
}

// BinaryLayer returns the layer holding the binary bin at /<name>.
func BinaryLayer(name string, bin []byte, m Meta) (v1.Layer, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") {
		return nil, fmt.Errorf("image: binary name %q", name)
	}
	return layer([]file{{name: name, mode: 0o755, data: bin}}, m.created())
}

func layer(files []file, mtime time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{
			Name:    f.name,
			Mode:    f.mode,
			Uid:     f.uid,
			Gid:     f.gid,
			ModTime: mtime,
			Format:  tar.FormatUSTAR,
		}
		if f.dir {
			h.Typeflag = tar.TypeDir
			h.Name += "/"
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("image: layer entry %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("image: layer entry %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(
		func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer),
		// The binaries dominate the size and are compressed once per build.
		tarball.WithCompressionLevel(gzip.BestCompression),
		tarball.WithCompressedCaching,
	)
	if err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}
	return l, nil
}

// CheckStatic returns an error unless bin is an ELF executable for p that
// needs no dynamic loader (no PT_INTERP program header, no needed library):
// the images have no libc, and a cgo binary fails there with a bare
// "no such file or directory" at exec.
func CheckStatic(bin []byte, p Platform) error {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return fmt.Errorf("image: not an ELF executable: %w", err)
	}
	defer f.Close()
	if p.OS != "linux" {
		return fmt.Errorf("%w: %s: only linux images are built", ErrPlatform, p)
	}
	want, ok := map[string]elf.Machine{
		"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "386": elf.EM_386,
		"arm": elf.EM_ARM, "ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390, "riscv64": elf.EM_RISCV,
	}[p.Arch]
	if !ok {
		return fmt.Errorf("%w: unknown architecture %s", ErrPlatform, p.Arch)
	}
	if f.Machine != want {
		return fmt.Errorf("%w: %s binary, want %s (%s)", ErrPlatform, f.Machine, want, p)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("image: ELF type %s is not an executable", f.Type)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			interp, _ := io.ReadAll(prog.Open())
			return fmt.Errorf("%w: interpreter %s (build with CGO_ENABLED=0)", ErrNotStatic, strings.TrimRight(string(interp), "\x00"))
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("image: reading the ELF dynamic section: %w", err)
	}
	if len(libs) > 0 {
		return fmt.Errorf("%w: needs %s", ErrNotStatic, strings.Join(libs, ", "))
	}
	return nil
}

// Build returns the image of the service name for p: base, then the binary
// bin at /<name>, run as 65532:65532 with /<name> as the entrypoint. bin must
// pass CheckStatic.
func Build(name string, p Platform, base v1.Layer, bin []byte, m Meta) (v1.Image, error) {
	if err := CheckStatic(bin, p); err != nil {
		return nil, fmt.Errorf("image %s (%s): %w", name, p, err)
	}
	binLayer, err := BinaryLayer(name, bin, m)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{LabelTitle: name}
	for k, v := range map[string]string{LabelVersion: m.Version, LabelRevision: m.Revision, LabelSource: m.Source} {
		if v != "" {
			labels[k] = v
		}
	}
	created := v1.Time{Time: m.created()}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: p.Arch,
		OS:           p.OS,
		Created:      created,
		Config: v1.Config{
			User:       User,
			Entrypoint: []string{"/" + name},
			WorkingDir: "/",
			Labels:     labels,
		},
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", name, err)
	}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{
			Created:   created,
			CreatedBy: "pushsms.io/tools/image: /etc/passwd, /etc/group, /etc/nsswitch.conf, /" + CACertsPath + ", /tmp, /home/nonroot",
		}},
		mutate.Addendum{Layer: binLayer, History: v1.History{
			Created:   created,
			CreatedBy: "pushsms.io/tools/image: /" + name + " (CGO_ENABLED=0 go build -trimpath -ldflags='-s -w')",
		}},
	)
	if err != nil {
		return nil, fmt.Errorf("image %s: layers: %w", name, err)
	}
	return img, nil
}
