package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// apiFlags are the flags of every command that calls the API.
type apiFlags struct {
	addr   string
	key    string
	tls    bool
	getenv func(string) string
}

func (c *cli) apiFlags(fs *flag.FlagSet) *apiFlags {
	f := &apiFlags{getenv: c.getenv}
	addr := c.getenv("PUSHSMS_ADDR")
	if addr == "" {
		addr = "localhost:9090"
	}
	fs.StringVar(&f.addr, "addr", addr, "partner API address (env PUSHSMS_ADDR)")
	// The key from the environment is read at dial time, so that -h does
	// not print it as the default.
	fs.StringVar(&f.key, "key", "", "API key (default: env PUSHSMS_API_KEY)")
	fs.BoolVar(&f.tls, "tls", false, "connect with TLS (system roots)")
	return f
}

// dial returns a client and a context carrying the API key.
func (f *apiFlags) dial(ctx context.Context) (partnerv1.MessagingServiceClient, context.Context, func(), error) {
	conn, ctx, err := f.connect(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	return partnerv1.NewMessagingServiceClient(conn), ctx, func() { conn.Close() }, nil
}

// dialSuppressions is dial for the SuppressionService.
func (f *apiFlags) dialSuppressions(ctx context.Context) (partnerv1.SuppressionServiceClient, context.Context, func(), error) {
	conn, ctx, err := f.connect(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	return partnerv1.NewSuppressionServiceClient(conn), ctx, func() { conn.Close() }, nil
}

// connect returns a connection to the API and a context carrying the key.
func (f *apiFlags) connect(ctx context.Context) (*grpc.ClientConn, context.Context, error) {
	if f.key == "" {
		f.key = f.getenv("PUSHSMS_API_KEY")
	}
	if f.key == "" {
		return nil, nil, errors.New("no API key: use -key or set PUSHSMS_API_KEY")
	}
	creds := insecure.NewCredentials()
	if f.tls {
		creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", f.addr, err)
	}
	return conn, metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+f.key), nil
}

// apiError makes a status readable: its code, message and bad fields.
func apiError(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", st.Code(), st.Message())
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fmt.Fprintf(&b, "\n  %s: %s", v.GetField(), v.GetDescription())
			}
		}
	}
	return errors.New(b.String())
}

// parseCategory reads a traffic category: "marketing",
// "customer-relationship", "mo-session-reply", "interpersonal", "m2m".
func parseCategory(s string) (partnerv1.TrafficCategory, error) {
	name := "TRAFFIC_CATEGORY_" + strings.ToUpper(strings.NewReplacer("-", "_", " ", "_").Replace(s))
	v, ok := partnerv1.TrafficCategory_value[name]
	if !ok || v == 0 {
		return 0, fmt.Errorf("unknown category %q: want marketing, customer-relationship, mo-session-reply, interpersonal or m2m", s)
	}
	return partnerv1.TrafficCategory(v), nil
}

// enumName prints an enum value as the API names it, without its prefix
// (DELIVERED, NOT_MOBILE).
func enumName(s fmt.Stringer, prefix string) string {
	return strings.TrimPrefix(s.String(), prefix)
}

// oneArg parses fs and returns its single positional argument.
func oneArg(fs *flag.FlagSet, args []string, what string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() != 1 {
		return "", fmt.Errorf("%s: want exactly one %s", fs.Name(), what)
	}
	return fs.Arg(0), nil
}

// withID runs a command that takes one id: it parses the flags, dials the
// API and hands call the client and the id.
func (c *cli) withID(ctx context.Context, name, what string, args []string, call func(context.Context, partnerv1.MessagingServiceClient, string) error) error {
	fs := c.flags(name, flag.ContinueOnError)
	api := c.apiFlags(fs)
	id, err := oneArg(fs, args, what)
	if err != nil {
		return err
	}
	client, ctx, done, err := api.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	return call(ctx, client, id)
}
