package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/policy"
	"pushsms.io/lib/telemetry"
)

// The policy commands talk to NATS, not to the partner API: the rule set
// is the aggregator's, kept in the POLICY bucket that every compliance and
// throttle replica watches.

// natsFlags are the flags of the commands that use the bus.
type natsFlags struct {
	url     string
	timeout time.Duration
}

func (c *cli) natsFlags(fs *flag.FlagSet) *natsFlags {
	f := &natsFlags{}
	url := c.getenv("NATS_URL")
	if url == "" {
		url = bus.DefaultConfig().URL
	}
	fs.StringVar(&f.url, "nats-url", url, "NATS server URL(s), comma-separated (env NATS_URL)")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "give up after this long (NATS unreachable)")
	return f
}

// connect connects to the bus, logging only errors: the command's output is
// its result.
func (f *natsFlags) connect(ctx context.Context) (*bus.Bus, error) {
	tel, err := telemetry.Setup(ctx, "pushsms", telemetry.Config{LogLevel: "error", LogFormat: "text"})
	if err != nil {
		return nil, err
	}
	b, err := bus.Connect(ctx, bus.Config{URL: f.url, Replicas: 1}, "pushsms", tel)
	if err != nil {
		return nil, fmt.Errorf("nats %s: %w", f.url, err)
	}
	return b, nil
}

const policyPushUsage = `Usage: pushsms policy push [-check] [-nats-url URL] FILE.json

Validates the policy document FILE (the rule set of docs/rules.md: sending
window, short-code ranges and options, network check, frequency cap,
sender, content and opt-out rules) and makes it the policy of every
compliance and throttle replica, which apply it within a second, without a
restart; every decision records its version. Start from
"pushsms policy show -default". The bucket keeps the previous versions
("pushsms policy show -history"): to roll back, push the previous file.

Flags:
`

// runPolicyPush validates a policy file and stores it in the POLICY bucket.
func (c *cli) runPolicyPush(ctx context.Context, args []string) error {
	fs := c.flags("policy push", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(c.err, policyPushUsage); fs.PrintDefaults() }
	nf := c.natsFlags(fs)
	check := fs.Bool("check", false, "only validate the file, push nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("policy push: want one FILE")
	}
	p, err := policy.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	if *check {
		fmt.Fprintf(c.out, "policy %s: valid\n", p.Version)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, nf.timeout)
	defer cancel()
	b, err := nf.connect(ctx)
	if err != nil {
		return err
	}
	defer b.Close()
	if cur, ok, err := policy.Get(ctx, b); err == nil && ok && cur.Version == p.Version {
		// Two documents under one version would make the decisions'
		// policy_version ambiguous.
		fmt.Fprintf(c.err, "warning: the bucket's policy already has version %s; give the new document its own version\n", p.Version)
	}
	if err := policy.Put(ctx, b, p); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "policy %s pushed: every replica applies it within a second\n", p.Version)
	return nil
}

const policyShowUsage = `Usage: pushsms policy show [-default | -history] [-nats-url URL]

Prints the policy in force (the document in the POLICY bucket) as JSON.
When the bucket holds none, replicas use their -policy file or the
embedded default, and this says so. -default prints the embedded default
(the starting point of a custom policy); -history lists the versions the
bucket keeps, oldest first.

Flags:
`

// runPolicyShow prints the policy in the POLICY bucket.
func (c *cli) runPolicyShow(ctx context.Context, args []string) error {
	fs := c.flags("policy show", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(c.err, policyShowUsage); fs.PrintDefaults() }
	nf := c.natsFlags(fs)
	def := fs.Bool("default", false, "print the embedded default policy (no NATS needed)")
	history := fs.Bool("history", false, "list the versions kept in the bucket")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errors.New("policy show: no argument expected")
	}
	if *def {
		_, err := c.out.Write(policy.DefaultJSON())
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, nf.timeout)
	defer cancel()
	b, err := nf.connect(ctx)
	if err != nil {
		return err
	}
	defer b.Close()
	kv, err := b.JS.KeyValue(ctx, bus.BucketPolicy)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", bus.BucketPolicy, err)
	}
	if *history {
		entries, err := kv.History(ctx, bus.PolicyKey)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			fmt.Fprintln(c.out, "no policy was ever pushed")
			return nil
		}
		if err != nil {
			return fmt.Errorf("policy history: %w", err)
		}
		for _, e := range entries {
			version := "(deleted)"
			if e.Operation() == jetstream.KeyValuePut {
				if p, err := policy.Parse(e.Value()); err == nil {
					version = p.Version
				} else {
					version = "(invalid, ignored by the replicas)"
				}
			}
			fmt.Fprintf(c.out, "%d\t%s\t%s\n", e.Revision(), e.Created().UTC().Format(time.RFC3339), version)
		}
		return nil
	}
	e, err := kv.Get(ctx, bus.PolicyKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		fmt.Fprintln(c.err, "no policy in the bucket: each replica uses its -policy file, else the embedded default (pushsms policy show -default)")
		return nil
	}
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	if _, err := policy.Parse(e.Value()); err != nil {
		fmt.Fprintf(c.err, "warning: revision %d is invalid and ignored by the replicas, which keep the policy before it: %v\n", e.Revision(), err)
	}
	if _, err := c.out.Write(e.Value()); err != nil {
		return err
	}
	fmt.Fprintln(c.out)
	return nil
}
