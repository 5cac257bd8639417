package smscsim

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"pushsms.io/lib/telemetry"
)

// Command is the configuration of the smsc-sim command: the simulator on
// Addr and its HTTP API (Handler) on HTTPAddr.
type Command struct {
	Addr     string
	HTTPAddr string
	// Accounts as "code:password:rate[:window],…" (ParseAccounts).
	Accounts  string
	StateFile string
	// Timezone of SCTS, DSCTS and VP (an IANA name); the SMSC's local time.
	Timezone string
	DR       DRConfig
	// Faults as the JSON of PUT /faults, applied at start.
	Faults    string
	LogLevel  string
	LogFormat string
}

// DefaultCommand is the command's defaults: UCP on 127.0.0.1:7777, HTTP on
// 127.0.0.1:7778, account 36000 at 10 SMS/s, every message delivered.
func DefaultCommand() Command {
	return Command{
		Addr:      "127.0.0.1:7777",
		HTTPAddr:  "127.0.0.1:7778",
		Accounts:  "36000:secret:10",
		Timezone:  "UTC",
		DR:        DRConfig{Delay: 50 * time.Millisecond, DelayDist: DelayFixed, Delivered: 1, ExpiredRsn: 108},
		LogLevel:  "info",
		LogFormat: "json",
	}
}

// RegisterFlags adds the command's flags.
func (c *Command) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", c.Addr, "UCP listen address")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "HTTP listen address of the API:\n"+httpUsage)
	fs.StringVar(&c.Accounts, "accounts", c.Accounts, "accounts as code:password:rate[:window], comma-separated")
	fs.StringVar(&c.StateFile, "state-file", c.StateFile, "keep undelivered DRs and MOs here across restarts (empty: in memory only)")
	fs.StringVar(&c.Timezone, "timezone", c.Timezone, "time zone of SCTS, DSCTS and VP (IANA name, e.g. Europe/Paris)")
	fs.DurationVar(&c.DR.Delay, "dr-delay", c.DR.Delay, "delay between a submit's ACK and its DR (fixed; uniform: the minimum; exp: the mean)")
	fs.StringVar(&c.DR.DelayDist, "dr-delay-dist", c.DR.DelayDist, "DR delay distribution: fixed, uniform (dr-delay..dr-delay-max) or exp (mean dr-delay, capped at dr-delay-max if set)")
	fs.DurationVar(&c.DR.DelayMax, "dr-delay-max", c.DR.DelayMax, "maximum DR delay for uniform and exp")
	fs.Float64Var(&c.DR.Delivered, "dr-delivered", c.DR.Delivered, "relative weight of delivered DRs")
	fs.Float64Var(&c.DR.Failed, "dr-failed", c.DR.Failed, "relative weight of failed DRs")
	fs.Float64Var(&c.DR.Expired, "dr-expired", c.DR.Expired, "relative weight of expired DRs")
	fs.Float64Var(&c.DR.Buffered, "dr-buffered", c.DR.Buffered, "fraction of messages with a buffered DR first (when NT asks for it)")
	fs.IntVar(&c.DR.FailedRsn, "dr-failed-rsn", c.DR.FailedRsn, "reason code (Rsn) of failed DRs")
	fs.IntVar(&c.DR.ExpiredRsn, "dr-expired-rsn", c.DR.ExpiredRsn, "reason code (Rsn) of expired DRs")
	fs.StringVar(&c.Faults, "faults", c.Faults, `fault knobs at start, as the JSON of PUT /faults, e.g. {"nack_rate":0.3,"nack_code":"04"}`)
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: json or text")
}

// Run runs the simulator and its HTTP API until ctx is done, then writes
// the state file.
func (c Command) Run(ctx context.Context) error {
	log, err := telemetry.NewLogger(os.Stderr, c.LogLevel, c.LogFormat)
	if err != nil {
		return err
	}
	accounts, err := ParseAccounts(c.Accounts)
	if err != nil {
		return err
	}
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return fmt.Errorf("smscsim: timezone: %w", err)
	}
	if err := c.DR.Validate(); err != nil {
		return err
	}
	var faults Faults
	if c.Faults != "" {
		if err := json.Unmarshal([]byte(c.Faults), &faults); err != nil {
			return fmt.Errorf("smscsim: -faults: %w", err)
		}
	}
	sim := New(Config{Addr: c.Addr, Accounts: accounts, DR: c.DR, Location: loc, StateFile: c.StateFile, Logger: log})
	sim.SetFaults(faults)
	if err := sim.Start(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		sim.Close()
		return fmt.Errorf("smscsim: http: %w", err)
	}
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("smsc-sim ready", "ucp", sim.Addr(), "http", ln.Addr().String())
	select {
	case <-ctx.Done():
		err = nil
	case err = <-served:
		err = fmt.Errorf("smscsim: http: %w", err)
	}
	srv.Close()
	return errors.Join(err, sim.Close())
}

// httpUsage documents the API in -h, under -http-addr: config.Parse
// owns the FlagSet's Usage.
const httpUsage = `  GET  /stats    per-account counters and per-second history (JSON)
  GET  /submits  every recorded submit (JSON)
  GET  /metrics  Prometheus text format: smscsim_*_total{account=...}, smscsim_sessions
  GET  /faults   current fault knobs (JSON)
  PUT  /faults   replace them; absent fields mean no fault, {} clears all:
                 {"ack_delay":"250ms","ack_jitter":"50ms","drop_submits":false,
                  "nack_submits":"00","drop_mo_acks":false,
                  "nack_rate":0.3,"nack_code":"04",   NACK 30 % of submits with 04
                  "drop_ack_rate":0.01,               accept, but lose the ACK
                  "garbage_rate":0.05}                junk before 5 % of our frames
  POST /drop     close every client connection now
  POST /mo       inject an MO: JSON {"short_code","originator","text"} or form fields
`
