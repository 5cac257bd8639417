package main

import (
	"crypto/tls"
	"flag"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// internalFlags are the flags of the aggregator's commands on a service's
// internal gRPC port (compliance, billing), which has no API key: it must
// not be reachable from outside the cluster.
type internalFlags struct {
	addr string
	tls  bool
}

// internalFlags adds -addr (default from env, else def) and -tls.
func (c *cli) internalFlags(fs *flag.FlagSet, service, env, def string) *internalFlags {
	f := &internalFlags{addr: c.getenv(env)}
	if f.addr == "" {
		f.addr = def
	}
	fs.StringVar(&f.addr, "addr", f.addr, fmt.Sprintf("%s's internal gRPC address (env %s)", service, env))
	fs.BoolVar(&f.tls, "tls", false, "connect with TLS (system roots)")
	return f
}

// dialInternal connects to the address of f and returns the client built
// by newClient, with what closes it.
func dialInternal[T any](f *internalFlags, newClient func(grpc.ClientConnInterface) T) (T, func(), error) {
	creds := insecure.NewCredentials()
	if f.tls {
		creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		var zero T
		return zero, nil, fmt.Errorf("connect to %s: %w", f.addr, err)
	}
	return newClient(conn), func() { conn.Close() }, nil
}

// parsedClient parses a command's flags, which take no argument, and
// connects as dialInternal does.
func parsedClient[T any](fs *flag.FlagSet, args []string, f *internalFlags, newClient func(grpc.ClientConnInterface) T) (T, func(), error) {
	if err := noArgs(fs, args); err != nil {
		var zero T
		return zero, nil, err
	}
	return dialInternal(f, newClient)
}
