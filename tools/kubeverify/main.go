// Command kubeverify server-side dry-runs rendered Kubernetes manifests
// against a real, throwaway kube-apiserver + etcd (make k8s-verify): it
// catches what schema validation cannot, such as a Deployment whose selector
// does not match its pod labels, an invalid quantity or a port out of range.
//
//	kubeverify -bin DIR [-crds a.yaml,b.yaml] [-refused x.yaml,...] overlay.yaml...
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	cfg := Config{Out: os.Stdout}
	var crds, refused string
	flag.StringVar(&cfg.BinDir, "bin", "", "directory holding the etcd and kube-apiserver binaries")
	flag.StringVar(&crds, "crds", "", "comma-separated CustomResourceDefinition files to install first")
	flag.StringVar(&refused, "refused", "", "comma-separated files the API server must refuse (each with a '# want:' line)")
	flag.DurationVar(&cfg.Timeout, "timeout", 3*time.Minute, "how long to wait for the API server to be ready")
	flag.Parse()
	cfg.CRDs = splitList(crds)
	cfg.Refused = splitList(refused)
	cfg.Manifests = flag.Args()
	if cfg.BinDir == "" || len(cfg.Manifests) == 0 {
		fmt.Fprintln(os.Stderr, "usage: kubeverify -bin DIR [-crds files] [-refused files] overlay.yaml...")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubeverify: %v\n", err)
		os.Exit(1)
	}
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
