// Command probe is the test binary of package image: run inside an image
// (RunInRoot), it checks what the services rely on there and prints one line
// the test compares, or the first thing that is wrong.
package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
)

func main() {
	report, err := probe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
	if len(os.Args) > 1 && os.Args[1] == "-h" {
		// What a service's -h prints first (lib/config), which Verify wants.
		fmt.Fprintln(os.Stderr, "Usage of probe:")
		return
	}
	fmt.Println(report)
}

func probe() (string, error) {
	uid, gid := os.Getuid(), os.Getgid()
	// os/user without cgo reads /etc/passwd: the image's.
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return "", fmt.Errorf("user %d: %w", uid, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		return "", fmt.Errorf("system roots: %w", err)
	}
	// On Linux the pool is read from the CA bundle, so the deprecated
	// Subjects does count it.
	roots := len(pool.Subjects())
	if err := os.WriteFile("/tmp/probe", []byte("x"), 0o600); err != nil {
		return "", fmt.Errorf("/tmp: %w", err)
	}
	rootfs := "writable"
	if err := os.WriteFile("/probe-was-here", nil, 0o600); errors.Is(err, fs.ErrPermission) {
		rootfs = "not writable"
	}
	return fmt.Sprintf("uid=%d gid=%d user=%s home=%s roots>0=%t tmp=writable /=%s env=%d",
		uid, gid, u.Username, u.HomeDir, roots > 0, rootfs, len(os.Environ())), nil
}
