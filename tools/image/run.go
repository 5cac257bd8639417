package image

import (
	"archive/tar"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Config is what Run builds.
type Config struct {
	// Names are the images to build, each from the binary
	// <BinDir>/<os>_<arch>/<name> of every platform.
	Names  []string
	BinDir string
	// Out receives, per name, <name>.tar (the first platform's image, for
	// docker load, kind load image-archive, crane push) and <name>.oci/ (an
	// OCI image layout with every platform: an image index when there are
	// several).
	Out string
	// Repo and Meta.Version make the reference <Repo>/<name>:<Version>, the
	// names deploy/k8s uses (pushsms/ingest:dev).
	Repo      string
	Platforms []Platform
	// CACerts is the PEM bundle copied into every image.
	CACerts string
	Meta    Meta
	// Verify reads every image back from what was written and checks it
	// (Verify), running each binary of this machine's platform in its image.
	Verify bool
	Log    *slog.Logger
	// Sizes receives the table of the images' sizes.
	Sizes io.Writer
}

// DefaultConfig builds linux/amd64 images pushsms/<name>:dev with this
// machine's Debian CA bundle.
func DefaultConfig() Config {
	return Config{
		BinDir:    "bin/image-build",
		Out:       "bin/images",
		Repo:      "pushsms",
		Platforms: []Platform{{OS: "linux", Arch: "amd64"}},
		CACerts:   "/etc/ssl/certs/ca-certificates.crt",
		Meta:      Meta{Version: "dev"},
		Verify:    true,
		Log:       slog.Default(),
		Sizes:     os.Stdout,
	}
}

// RegisterFlags binds the flags of mkimage to c.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.BinDir, "bin", c.BinDir, "directory of the binaries: <bin>/<os>_<arch>/<name>")
	fs.StringVar(&c.Out, "out", c.Out, "output directory: <name>.tar (docker load) and <name>.oci/ (OCI layout)")
	fs.StringVar(&c.Repo, "repo", c.Repo, "repository prefix of the references: <repo>/<name>:<version>")
	fs.Func("platforms", "comma-separated os/arch list; the first one goes into <name>.tar (default linux/amd64)", func(s string) error {
		c.Platforms = nil
		for _, f := range strings.Split(s, ",") {
			p, err := ParsePlatform(strings.TrimSpace(f))
			if err != nil {
				return err
			}
			c.Platforms = append(c.Platforms, p)
		}
		return nil
	})
	fs.StringVar(&c.CACerts, "ca-certs", c.CACerts, "PEM CA bundle copied to /"+CACertsPath)
	fs.StringVar(&c.Meta.Version, "version", c.Meta.Version, "image tag and "+LabelVersion)
	fs.StringVar(&c.Meta.Revision, "revision", c.Meta.Revision, LabelRevision+" (the commit)")
	fs.StringVar(&c.Meta.Source, "source", c.Meta.Source, LabelSource+" (the repository's URL)")
	fs.Func("created", "every timestamp of the images, Unix seconds (the commit's time; default 0)", func(s string) error {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("created: %w", err)
		}
		c.Meta.Created = time.Unix(sec, 0).UTC()
		return nil
	})
	fs.BoolVar(&c.Verify, "verify", c.Verify, "read each image back and run its binary in it (-h, as 65532)")
}

// Validate reports a configuration Run cannot use.
func (c Config) Validate() error {
	var errs []error
	if len(c.Names) == 0 {
		errs = append(errs, errors.New("no image named"))
	}
	if len(c.Platforms) == 0 {
		errs = append(errs, errors.New("no platform"))
	}
	if c.Meta.Version == "" {
		errs = append(errs, errors.New("no version (the tag)"))
	}
	for _, n := range c.Names {
		if _, err := name.NewTag(c.ref(n)); err != nil {
			errs = append(errs, fmt.Errorf("reference of %s: %w", n, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("image: config: %w", err)
	}
	return nil
}

func (c Config) ref(n string) string {
	r := n + ":" + c.Meta.Version
	if c.Repo != "" {
		r = c.Repo + "/" + r
	}
	return r
}

// Run builds, writes and (with Verify) checks the images of c.Names, then
// writes their sizes to c.Sizes.
func Run(ctx context.Context, c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	ca, err := os.ReadFile(c.CACerts)
	if err != nil {
		return fmt.Errorf("image: CA bundle: %w", err)
	}
	base, err := BaseLayer(ca, c.Meta)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	var sizes []size
	for _, n := range c.Names {
		s, err := c.one(ctx, n, base)
		if err != nil {
			return err
		}
		sizes = append(sizes, s...)
	}
	if c.Sizes != nil {
		return writeSizes(c.Sizes, sizes)
	}
	return nil
}

func (c Config) one(ctx context.Context, n string, base v1.Layer) ([]size, error) {
	ref := c.ref(n)
	tag, err := name.NewTag(ref)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", n, err)
	}
	imgs := make([]v1.Image, len(c.Platforms))
	for i, p := range c.Platforms {
		bin, err := os.ReadFile(filepath.Join(c.BinDir, p.OS+"_"+p.Arch, n))
		if err != nil {
			return nil, fmt.Errorf("image %s (%s): %w", n, p, err)
		}
		if imgs[i], err = Build(n, p, base, bin, c.Meta); err != nil {
			return nil, err
		}
	}

	tarPath := filepath.Join(c.Out, n+".tar")
	if err := tarball.WriteToFile(tarPath, tag, imgs[0]); err != nil {
		return nil, fmt.Errorf("image %s: %s: %w", n, tarPath, err)
	}
	ociPath := filepath.Join(c.Out, n+".oci")
	if err := writeLayout(ociPath, ref, c.Meta.Version, c.Platforms, imgs); err != nil {
		return nil, fmt.Errorf("image %s: %s: %w", n, ociPath, err)
	}

	var sizes []size
	for i, p := range c.Platforms {
		s, err := sizeOf(ref, p, imgs[i])
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", n, err)
		}
		sizes = append(sizes, s)
		c.Log.InfoContext(ctx, "image built", "ref", ref, "platform", p.String(), "digest", s.digest, "compressed", s.total())
	}
	if !c.Verify {
		return sizes, nil
	}
	return sizes, c.verify(ctx, n, tarPath, tag, ociPath, imgs)
}

// verify checks the files written, not the images in memory: the tarball's
// image (first platform) and every platform's image of the layout.
func (c Config) verify(ctx context.Context, n, tarPath string, tag name.Tag, ociPath string, imgs []v1.Image) error {
	fromTar, err := tarball.ImageFromPath(tarPath, &tag)
	if err != nil {
		return fmt.Errorf("verify %s: %w", tarPath, err)
	}
	read := []v1.Image{fromTar}
	l, err := layout.FromPath(ociPath)
	if err != nil {
		return fmt.Errorf("verify %s: %w", ociPath, err)
	}
	for i := range imgs {
		want, err := imgs[i].Digest()
		if err != nil {
			return err
		}
		img, err := imageIn(l, want)
		if err != nil {
			return fmt.Errorf("verify %s: %w", ociPath, err)
		}
		read = append(read, img)
	}
	platforms := append([]Platform{c.Platforms[0]}, c.Platforms...)
	for i, img := range read {
		// Not the manifest's digest: docker load's format has no manifest,
		// tarball makes one up with Docker's media types.
		got, err := contentOf(img)
		if err != nil {
			return fmt.Errorf("verify %s: %w", n, err)
		}
		if want, err := contentOf(imgs[max(i-1, 0)]); err != nil || !slices.Equal(got, want) {
			return fmt.Errorf("verify %s: config and layers %s read back, %s built (%v)", n, got, want, err)
		}
		dir, err := os.MkdirTemp("", "image-verify-"+n+"-")
		if err != nil {
			return err
		}
		ran, err := Verify(ctx, img, n, platforms[i], dir)
		os.RemoveAll(dir)
		if err != nil {
			return err
		}
		from := ociPath
		if i == 0 {
			from = tarPath
		}
		c.Log.InfoContext(ctx, "image verified", "file", from, "platform", platforms[i].String(), "ran", ran)
	}
	return nil
}

// contentOf returns the digests of img's config and layers.
func contentOf(img v1.Image) ([]v1.Hash, error) {
	c, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	hs := []v1.Hash{c}
	ls, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for _, l := range ls {
		h, err := l.Digest()
		if err != nil {
			return nil, err
		}
		hs = append(hs, h)
	}
	return hs, nil
}

// imageIn finds the image of digest h in the layout l, at its top level or
// in its image index.
func imageIn(l layout.Path, h v1.Hash) (v1.Image, error) {
	ii, err := l.ImageIndex()
	if err != nil {
		return nil, err
	}
	if img, err := ii.Image(h); err == nil {
		return img, nil
	}
	m, err := ii.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range m.Manifests {
		if !d.MediaType.IsIndex() {
			continue
		}
		child, err := ii.ImageIndex(d.Digest)
		if err != nil {
			return nil, err
		}
		if img, err := child.Image(h); err == nil {
			return img, nil
		}
	}
	return nil, fmt.Errorf("no image %s", h)
}

// writeLayout replaces the layout at dir with the images: one image, or an
// image index of the platforms. The entry is named both ways tools look for
// it: the tag (org.opencontainers.image.ref.name: skopeo oci:dir:tag) and
// the full name (containerd, docker load of an OCI archive).
func writeLayout(dir, ref, tag string, ps []Platform, imgs []v1.Image) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	l, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	t, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	// As containerd (and so the kubelet) normalises "pushsms/ingest:dev":
	// docker.io, not go-containerregistry's index.docker.io.
	registry := t.RegistryStr()
	if registry == name.DefaultRegistry {
		registry = "docker.io"
	}
	ann := layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag,
		"io.containerd.image.name":          registry + "/" + t.RepositoryStr() + ":" + t.TagStr(),
	})
	if len(imgs) == 1 {
		return l.AppendImage(imgs[0], ann, layout.WithPlatform(v1.Platform{OS: ps[0].OS, Architecture: ps[0].Arch}))
	}
	var idx v1.ImageIndex = mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for i, img := range imgs {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: ps[i].OS, Architecture: ps[i].Arch}},
		})
	}
	return l.ReplaceIndex(idx, match.Annotation("org.opencontainers.image.ref.name", tag), ann)
}

type size struct {
	ref      string
	platform Platform
	digest   v1.Hash
	layers   []int64 // compressed, base first
	binary   int64   // uncompressed
}

func (s size) total() int64 {
	var t int64
	for _, l := range s.layers {
		t += l
	}
	return t
}

func sizeOf(ref string, p Platform, img v1.Image) (size, error) {
	s := size{ref: ref, platform: p}
	var err error
	if s.digest, err = img.Digest(); err != nil {
		return s, err
	}
	m, err := img.Manifest()
	if err != nil {
		return s, err
	}
	for _, l := range m.Layers {
		s.layers = append(s.layers, l.Size)
	}
	ls, err := img.Layers()
	if err != nil {
		return s, err
	}
	rc, err := ls[len(ls)-1].Uncompressed()
	if err != nil {
		return s, err
	}
	defer rc.Close()
	h, err := tar.NewReader(rc).Next()
	if err != nil {
		return s, fmt.Errorf("binary layer: %w", err)
	}
	s.binary = h.Size
	return s, nil
}

func writeSizes(w io.Writer, sizes []size) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "image\tplatform\tbase layer\tbinary layer\timage, compressed\tbinary\tdigest")
	var sum int64
	for _, s := range sizes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s (%d B)\t%s\t%s\n", s.ref, s.platform, kib(s.layers[0]), kib(s.layers[1]),
			kib(s.total()), s.total(), kib(s.binary), s.digest)
	}
	for _, s := range sizes {
		sum += s.total()
	}
	if len(sizes) > 1 {
		// The base layer is the same blob in every image: a registry, or a
		// node, stores it once.
		once := sum - int64(len(sizes)-1)*sizes[0].layers[0]
		fmt.Fprintf(tw, "all %d\t\t\t\t%s (%d B)\t\tbase layer once: %s\n", len(sizes), kib(sum), sum, kib(once))
	}
	return tw.Flush()
}

func kib(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
}
