package stack

import (
	"flag"
	"strings"

	"pushsms.io/services/throttle"
)

// RegisterFlags adds the one-machine mode's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Dir, "dir", c.Dir, "data directory (NATS, PostgreSQL, simulator state, local API key)")
	fs.StringVar(&c.Host, "host", c.Host, "address every component listens on")
	fs.IntVar(&c.APIPort, "api-port", c.APIPort, "partner gRPC API port")
	fs.IntVar(&c.CompliancePort, "compliance-port", c.CompliancePort, "compliance's internal gRPC port (pushsms ported; no API key)")
	fs.IntVar(&c.BillingPort, "billing-port", c.BillingPort, "billing's internal gRPC port (pushsms invoice, statement, credit…; no API key)")
	fs.IntVar(&c.NATSPort, "nats-port", c.NATSPort, "embedded NATS port")
	fs.IntVar(&c.NATSMonitor, "nats-monitor-port", c.NATSMonitor, "embedded NATS monitoring port (0: off)")
	fs.IntVar(&c.PGPort, "pg-port", c.PGPort, "private PostgreSQL port")
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "use this PostgreSQL instead of a private cluster")
	fs.IntVar(&c.SMSCPort, "smsc-port", c.SMSCPort, "SMSC simulator UCP port")
	fs.IntVar(&c.SimHTTPPort, "smsc-http-port", c.SimHTTPPort, "SMSC simulator statistics and MO injection (HTTP) port")
	fs.IntVar(&c.Rate, "rate", c.Rate, "throughput of every short code, SMS/s")
	if c.Rates == nil {
		c.Rates = throttle.RateTable{}
	}
	fs.Var(&c.Rates, "rates", `per short code rates overriding -rate, e.g. "36000=20,38000=150"`)
	fs.IntVar(&c.ThrottleReplicas, "throttle-replicas", c.ThrottleReplicas, "throttle replicas sharing the short codes")
	fs.DurationVar(&c.DRDelay, "dr-delay", c.DRDelay, "simulator delay before a delivery report")
	fs.Func("short-codes", "short codes of the local partner, comma-separated (default "+strings.Join(c.ShortCodes, ",")+")", func(v string) error {
		c.ShortCodes = strings.Split(v, ",")
		return nil
	})
	fs.StringVar(&c.OTLPEndpoint, "otel-exporter-otlp-endpoint", c.OTLPEndpoint, "export traces over OTLP/gRPC to this endpoint (e.g. Jaeger's http://localhost:4317)")
}
