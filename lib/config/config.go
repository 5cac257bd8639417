// Package config fills a flag set from the command line, then from the
// environment for every flag the command line left unset.
//
// A flag named "nats-url" of a service whose prefix is "INGEST" is read from
// INGEST_NATS_URL, then from NATS_URL. The unprefixed name lets a Kubernetes
// ConfigMap set one value for all services; the prefixed one lets a single
// machine run several services with different values. Only main and this
// package read the environment.
package config

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// Parse parses args into fs, then sets each flag not given on the command
// line from the environment.
func Parse(fs *flag.FlagSet, prefix string, args []string) error {
	return ParseEnv(fs, prefix, args, os.LookupEnv)
}

// ParseEnv is Parse with the environment given as a lookup function.
func ParseEnv(fs *flag.FlagSet, prefix string, args []string, lookup func(string) (string, bool)) error {
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage of %s:\n", fs.Name())
		fs.PrintDefaults()
		fmt.Fprintf(out, "\nEvery flag can also be set from the environment: -nats-url from %s_NATS_URL, then NATS_URL.\n", prefix)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		for _, name := range EnvNames(prefix, f.Name) {
			v, ok := lookup(name)
			if !ok {
				continue
			}
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("config: %s=%q: %w", name, v, e)
			}
			return
		}
	})
	return err
}

// EnvNames returns the environment variables read for a flag, in order.
func EnvNames(prefix, flagName string) []string {
	base := strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(flagName))
	if prefix == "" {
		return []string{base}
	}
	return []string{strings.ToUpper(prefix) + "_" + base, base}
}
