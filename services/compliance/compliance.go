// Package compliance checks every accepted message before it may be sent:
// the recipient must be a French metropolitan mobile number (normalised to
// E.164), sent from a short code whose range may carry its category, still
// valid, on the operator's network, and the later rules of rule.go satisfied.
// A message that passes is split into segments and published as
// MessageCleared; one that does not is published as MessageRejected with
// the first failing rule's reason. A marketing message outside the sending
// window is not rejected but cleared with a not_before at the next opening.
package compliance

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
	// The window is French time wherever the binary runs, also in an
	// image without /usr/share/zoneinfo.
	_ "time/tzdata"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/calendar"
	"pushsms.io/lib/numplan"
	"pushsms.io/lib/service"
)

// Zone is where the sending window is evaluated: the offer's "French
// time", metropolitan recipients only.
const Zone = "Europe/Paris"

// Name is the service's name: its client name on the bus, its durable
// consumer and its telemetry service name.
const Name = "compliance"

// Config is the service's configuration.
type Config struct {
	service.Config
	// Workers is how many accepted messages a replica checks at once.
	Workers int
	// WindowOpen and WindowClose bound the daily sending window of
	// marketing messages, as French wall-clock times since midnight (offer:
	// 08:00–22:00; the af2m 2026 charter says 21:30).
	WindowOpen, WindowClose time.Duration
	// WindowAlsaceMoselle also closes the window on Good Friday and
	// 26 December, for every recipient: a number does not tell the
	// department.
	WindowAlsaceMoselle bool
	// ShortCodeRanges says which categories each short-code range may
	// carry (offer "short-code ranges by use").
	ShortCodeRanges ShortCodeRanges
	// NetworkCheck refuses recipients off the operator's network; off only
	// for tests or a devstack sending to arbitrary numbers.
	NetworkCheck bool
	// NetworkOperator is the ARCEP code that counts as on-network.
	NetworkOperator string
	// NetworkLookup, when set, is asked before the ARCEP block holder: a
	// ported-numbers table or a real-time lookup. Not a flag: the binary
	// that has one sets it.
	NetworkLookup NetworkLookup
	// FrequencyCap is how many marketing messages a recipient may get per
	// brand and French calendar day (offer: one); 0 turns the cap off.
	FrequencyCap int
	// FrequencyPeriod is the period the cap counts over; only "day".
	FrequencyPeriod string
}

// DefaultConfig listens on :9091 with 8 workers, window 08:00–22:00, the
// offer's short-code ranges, the network check on for Orange, and one
// marketing message per recipient, brand and day.
func DefaultConfig() Config {
	ranges, err := ParseShortCodeRanges(DefaultShortCodeRanges)
	if err != nil {
		panic(err) // a constant: TestDefaultShortCodeRanges catches it
	}
	return Config{
		Config:          service.DefaultConfig(":9091"),
		Workers:         8,
		WindowOpen:      8 * time.Hour,
		WindowClose:     22 * time.Hour,
		ShortCodeRanges: ranges,
		NetworkCheck:    true,
		NetworkOperator: numplan.Orange,
		FrequencyCap:    1,
		FrequencyPeriod: "day",
	}
}

// RegisterFlags adds the flags of the bus, telemetry, -grpc-addr, -workers
// and the sending window.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	fs.IntVar(&c.Workers, "workers", c.Workers, "accepted messages checked at once by this replica")
	fs.Var((*wallClock)(&c.WindowOpen), "window-open", "opening of the marketing sending window, HH:MM French time")
	fs.Var((*wallClock)(&c.WindowClose), "window-close", "closing of the marketing sending window, HH:MM French time (24:00 for midnight)")
	fs.BoolVar(&c.WindowAlsaceMoselle, "window-alsace-moselle", c.WindowAlsaceMoselle, "also close the marketing window on Good Friday and 26 December")
	fs.Var(&c.ShortCodeRanges, "shortcode-ranges", "categories each short-code range may carry, e.g. "+DefaultShortCodeRanges)
	fs.BoolVar(&c.NetworkCheck, "network-check", c.NetworkCheck, "refuse recipients not on the operator's network")
	fs.StringVar(&c.NetworkOperator, "network-operator", c.NetworkOperator, "ARCEP operator code (identifiant CE) that counts as on-network")
	fs.IntVar(&c.FrequencyCap, "frequency-cap", c.FrequencyCap, "marketing messages a recipient may get per brand and period (0: no cap)")
	fs.StringVar(&c.FrequencyPeriod, "frequency-period", c.FrequencyPeriod, "period of the frequency cap: day (a calendar day, French time)")
}

// wallClock is a time of day since midnight, written HH:MM.
type wallClock time.Duration

func (w *wallClock) String() string {
	if w == nil {
		return ""
	}
	return clock(time.Duration(*w))
}

func (w *wallClock) Set(s string) error {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(m) != 2 || hh < 0 || mm < 0 || mm > 59 || hh*60+mm > 24*60 {
		return fmt.Errorf("time of day %q: want HH:MM from 00:00 to 24:00", s)
	}
	*w = wallClock(time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute)
	return nil
}

// window builds the sending window of the configuration.
func (c Config) window() (calendar.Window, error) {
	loc, err := time.LoadLocation(Zone)
	if err != nil {
		return calendar.Window{}, fmt.Errorf("compliance: sending window: %w", err)
	}
	w, err := calendar.NewWindow(loc, c.WindowOpen, c.WindowClose, calendar.WithAlsaceMoselle(c.WindowAlsaceMoselle))
	if err != nil {
		return calendar.Window{}, fmt.Errorf("compliance: sending window: %w", err)
	}
	return w, nil
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if err := c.Config.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("compliance: %w", err))
	}
	if err := service.ValidateWorkers(c.Workers, 1024); err != nil {
		errs = append(errs, fmt.Errorf("compliance: %w", err))
	}
	if _, err := c.window(); err != nil {
		errs = append(errs, err)
	}
	if len(c.ShortCodeRanges) == 0 {
		errs = append(errs, errors.New("compliance: no short-code range"))
	}
	if c.NetworkCheck && c.NetworkOperator == "" {
		errs = append(errs, errors.New("compliance: network check without a network operator"))
	}
	if c.FrequencyCap < 0 {
		errs = append(errs, fmt.Errorf("compliance: frequency cap %d: want 0 (off) or more", c.FrequencyCap))
	}
	if c.FrequencyCap > 0 && c.FrequencyPeriod != "day" {
		errs = append(errs, fmt.Errorf("compliance: frequency period %q: want day", c.FrequencyPeriod))
	}
	return errors.Join(errs...)
}

// Run runs the service until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	s, err := New(ctx, cfg)
	return service.Run(ctx, s, err)
}

// Service is a running compliance service.
type Service struct {
	*service.Core
	cfg   Config
	rules []Rule
	now   func() time.Time
}

// New connects to the bus and binds the gRPC address; nothing is consumed
// before Serve.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w, err := cfg.window()
	if err != nil {
		return nil, err
	}
	var nw *Network
	if cfg.NetworkCheck {
		plan, err := numplan.Load()
		if err != nil {
			return nil, fmt.Errorf("compliance: numbering plan: %w", err)
		}
		nw = &Network{Plan: plan, Operator: cfg.NetworkOperator, Lookup: cfg.NetworkLookup}
	}
	core, err := service.Open(ctx, service.Options{Name: Name, Config: cfg.Config})
	if err != nil {
		return nil, err
	}
	var freq *Frequency
	if cfg.FrequencyCap > 0 {
		kv, err := core.Bus.JS.KeyValue(ctx, bus.BucketFrequency)
		if err != nil {
			core.Close()
			return nil, fmt.Errorf("compliance: frequency bucket: %w", err)
		}
		freq = &Frequency{KV: kv, Cap: cfg.FrequencyCap, Loc: w.Location()}
	}
	return &Service{Core: core, cfg: cfg, rules: DefaultRules(w, cfg.ShortCodeRanges, nw, freq), now: time.Now}, nil
}

// Serve consumes accepted messages and serves gRPC until ctx is done.
func (s *Service) Serve(ctx context.Context) error {
	_, err := s.Consume(ctx, bus.ConsumerSpec{
		Stream:         bus.StreamAccepted,
		Durable:        Name,
		FilterSubjects: []string{bus.SubjectAccepted},
		Workers:        s.cfg.Workers,
	}, s.handle)
	if err != nil {
		return err
	}
	return s.Core.Serve(ctx)
}
