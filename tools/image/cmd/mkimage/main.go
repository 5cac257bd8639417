// Command mkimage builds the services' OCI images from their static
// binaries, without a Docker daemon or a base image (package image):
//
//	mkimage -bin bin/image-build -out bin/images -version dev ingest compliance ...
//
// writes bin/images/<name>.tar (docker load) and bin/images/<name>.oci/ (OCI
// layout), checks each one read back (running its binary in it as 65532)
// and prints their sizes. scripts/images.sh builds the binaries and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"pushsms.io/tools/image"
)

func main() {
	cfg := image.DefaultConfig()
	fs := flag.NewFlagSet("mkimage", flag.ExitOnError)
	cfg.RegisterFlags(fs)
	fs.Parse(os.Args[1:])
	cfg.Names = fs.Args()
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := image.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}
