package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// ExtractRootFS writes the flattened file system of img into dir, an empty
// directory, with the layers' modes, and their owners when running as root.
// Only directories and regular files are expected (the images hold nothing
// else); any other entry is an error.
func ExtractRootFS(img v1.Image, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("image: extract: %w", err)
	}
	defer root.Close()
	// The root directory of the image must be searchable by 65532.
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("image: extract: %w", err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("image: extract: %w", err)
		}
		name := path.Clean(h.Name)
		if name == "." || name == "/" {
			continue
		}
		mode := h.FileInfo().Mode()
		switch h.Typeflag {
		case tar.TypeDir:
			err = root.MkdirAll(name, 0o755)
		case tar.TypeReg:
			err = writeFile(root, name, tr)
		default:
			err = fmt.Errorf("unexpected entry type %q", h.Typeflag)
		}
		if err == nil && os.Geteuid() == 0 {
			err = root.Lchown(name, h.Uid, h.Gid)
		}
		if err == nil {
			// After the chown, which may clear mode bits, and not through
			// the umask.
			err = root.Chmod(name, mode&(os.ModePerm|os.ModeSticky|os.ModeSetuid|os.ModeSetgid))
		}
		if err != nil {
			return fmt.Errorf("image: extract %s: %w", name, err)
		}
	}
}

func writeFile(root *os.Root, name string, r io.Reader) error {
	if d := path.Dir(name); d != "." {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	f, err := root.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Verify checks img the way deploy/k8s runs it: config (platform, user
// 65532:65532, entrypoint /<name>), the users and the CA bundle, a
// statically linked /<name>; then, when p is this machine's platform, it
// runs `/<name> -h` inside the image's file system (RunInRoot) and wants the
// usage of <name>. dir is an empty directory the file system is extracted
// into. ran reports whether the binary was run.
func Verify(ctx context.Context, img v1.Image, name string, p Platform, dir string) (ran bool, err error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return false, fmt.Errorf("verify %s: config: %w", name, err)
	}
	var problems []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			problems = append(problems, fmt.Errorf(format, args...))
		}
	}
	check(cfg.OS == p.OS && cfg.Architecture == p.Arch, "platform %s/%s, want %s", cfg.OS, cfg.Architecture, p)
	check(cfg.Config.User == User, "user %q, want %q", cfg.Config.User, User)
	check(slices.Equal(cfg.Config.Entrypoint, []string{"/" + name}), "entrypoint %q, want [/%s]", cfg.Config.Entrypoint, name)
	if len(problems) > 0 {
		return false, fmt.Errorf("verify %s (%s): %w", name, p, errors.Join(problems...))
	}

	if err := ExtractRootFS(img, dir); err != nil {
		return false, fmt.Errorf("verify %s: %w", name, err)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		check(err == nil, "%v", err)
		return b
	}
	check(bytes.Contains(read("etc/passwd"), fmt.Appendf(nil, "\nnonroot:x:%d:%d:", UID, GID)), "/etc/passwd has no nonroot %d:%d", UID, GID)
	check(bytes.Contains(read("etc/group"), fmt.Appendf(nil, "\nnonroot:x:%d:", GID)), "/etc/group has no nonroot %d", GID)
	check(bytes.Contains(read(CACertsPath), []byte("-----BEGIN CERTIFICATE-----")), "/%s holds no certificate", CACertsPath)
	if fi, err := os.Stat(filepath.Join(dir, "tmp")); err != nil || fi.Mode()&(os.ModePerm|os.ModeSticky) != 0o777|os.ModeSticky {
		check(false, "/tmp is not a 1777 directory (%v)", err)
	}
	bin := read(name)
	if fi, err := os.Stat(filepath.Join(dir, name)); err == nil {
		check(fi.Mode().Perm() == 0o755, "/%s mode %v, want -rwxr-xr-x", name, fi.Mode())
	}
	if bin != nil {
		if err := CheckStatic(bin, p); err != nil {
			problems = append(problems, err)
		}
	}
	if len(problems) > 0 {
		return false, fmt.Errorf("verify %s (%s): %w", name, p, errors.Join(problems...))
	}

	if p.OS != runtime.GOOS || p.Arch != runtime.GOARCH {
		return false, nil
	}
	out, err := RunInRoot(ctx, dir, "/"+name, "-h")
	if err != nil {
		return false, fmt.Errorf("verify %s: /%s -h in the image: %w\n%s", name, name, err, out)
	}
	if want := "Usage of " + name + ":"; !bytes.Contains(out, []byte(want)) {
		return true, fmt.Errorf("verify %s: /%s -h in the image printed no %q:\n%s", name, name, want, out)
	}
	return true, nil
}

// RunInRoot runs args inside the file system at root as the image's user
// 65532:65532, with an empty environment and fresh mount, PID, network, IPC
// and UTS namespaces (no network, nothing of the host's but the kernel), and
// returns its combined output. As root it chroots and drops to the real UID
// 65532; otherwise it maps 65532 to the caller's UID in a new user namespace
// (unprivileged user namespaces must be allowed).
func RunInRoot(ctx context.Context, root string, args ...string) ([]byte, error) {
	if len(args) == 0 || !path.IsAbs(args[0]) {
		return nil, errors.New("image: RunInRoot: want an absolute path in the image")
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = []string{}
	cmd.Dir = "/"
	attr := &syscall.SysProcAttr{
		Chroot:     root,
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS,
		Pdeathsig:  syscall.SIGKILL,
	}
	if os.Geteuid() == 0 {
		attr.Credential = &syscall.Credential{Uid: UID, Gid: GID, Groups: []uint32{}}
	} else {
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: UID, HostID: os.Geteuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: GID, HostID: os.Getegid(), Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	}
	cmd.SysProcAttr = attr
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.Bytes(), err
}
