// Package smsclink is the platform's UCP (EMI) client to the operator's
// SMSC. It keeps -smsc-sessions sessions per short-code account (in TLS
// with -smsc-tls), submits every SegmentSubmit as an OT 51 on the least
// busy one and reports what the SMSC said as SegmentReports; it matches
// the delivery reports (OT 53) that come back on the sessions, or on the
// connections the SMSC opens to -listen-addr, to their segments through
// the SMSC_SUBMITTED bucket, and publishes the subscribers' messages
// (OT 52) as MobileOriginated, concatenated parts reassembled first.
// docs/smsc-link.md is the reference.
//
// Policies (docs/messages.md for the states):
//
//   - AdC is the recipient in international form without '+' (33612345678)
//     by default, -smsc-adc-format otherwise (ucp.md §3.9: the operator's
//     expectation is to be confirmed). DRs are matched on the E.164 form of
//     their OAdC, whatever form the SMSC writes it in.
//   - A segment is never submitted twice by its consumer. A 51 whose
//     result does not come (ACK timeout), or whose session ends after it
//     was written, is reported UNKNOWN (not final) and acked: the SMSC may
//     have taken it. A per-segment attempt record in the bucket makes this
//     hold across redeliveries and crashes too: a redelivered segment whose
//     earlier attempt left no outcome is reported UNKNOWN, not sent. The
//     one exception is the UNKNOWN policy (resend.go): a
//     CUSTOMER_RELATIONSHIP segment is sent again, on a session opened
//     after the timeout, after -smsc-unknown-resend-after (at most 3 times,
//     until the SMSC answers).
//   - Temporary NACKs (ucp.Temporary: 01, 04, 37, 50, 55, 9x) and a link
//     that is down before the 51 is written give the segment back to the
//     bus, redelivered with backoff; nothing is reported.
//   - No 1-s window at the SMSC holds more 51s of a short code than its
//     rate (lib/rate): a guard per short code grants each 51 right before
//     it is written, whatever queued here, and counts it until one second
//     after its result, so that no delay between us and the SMSC's clock
//     can put R+1 in its second. The link state (up, slowdown after NACK
//     04s and timeouts, achieved rate, grant-to-ACK time) goes to
//     LINK_STATE for the throttle (linkstate.go).
//   - Correlation keys stay in the bucket until its TTL (7 days): a DR the
//     SMSC resends, or a BUFFERED then a final one, finds its segment, and
//     the duplicate report is stored once (same Nats-Msg-Id) or ignored by
//     ingest (states only move forward).
package smsclink

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	_ "time/tzdata" // -smsc-timezone works on images without a zoneinfo database

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/rate"
	"pushsms.io/lib/service"
	"pushsms.io/lib/ucp"
)

// Name is the service's name: its client name on the bus, its durable
// consumer and its telemetry service name.
const Name = "smsc-link"

// AdC formats (-smsc-adc-format).
const (
	AdCInternational = "international" // 33612345678
	AdCPrefix00      = "00"            // 0033612345678
	AdCNational      = "national"      // 0612345678 for +33, else as "00"
)

// Floors that no configuration goes below.
const (
	// minAuthBackoff: a refused login (NACK 07) is retried no sooner; some
	// SMSCs lock an account that fails in a loop (ucp.md §1.5, C5).
	minAuthBackoff = 30 * time.Second
	// maxReconnect caps the backoff between reconnections after link loss.
	maxReconnect = 30 * time.Second
	// stableSession is how long a session must have lived for the next
	// loss to reconnect at once rather than after a growing backoff.
	stableSession = 30 * time.Second
)

// Config is the service's configuration.
type Config struct {
	service.Config
	// SMSCAddr is the SMSC's UCP host:port.
	SMSCAddr string
	// Accounts are the short codes' large accounts, one session each.
	Accounts AccountList
	// Window is the operations in flight per session, as provisioned by the
	// operator (exceeding it makes the SMSC drop them silently).
	Window int
	// AckTimeout bounds the wait for a result; KeepAlive is the idle time
	// before an OT 31.
	AckTimeout time.Duration
	KeepAlive  time.Duration
	// AdCFormat is how the recipient is written in AdC: AdCInternational,
	// AdCPrefix00 or AdCNational.
	AdCFormat string
	// Timezone is the SMSC's local time (IANA name), in which SCTS, DSCTS
	// and VP are written (ucp.md §3.10).
	Timezone string
	// ExpiredRsn are the reason codes of a not-delivered DR (DSt 2) that
	// mean the validity ran out. The CMG spec has none (ucp.md §2.7), so
	// the default is empty; a DSt 2 DR dated at or after the segment's
	// validity end is EXPIRED whatever its code.
	ExpiredRsn []int
	// DRWait is how long a DR waits for its correlation key (the 51 ACK
	// may still be being stored) before it is NACKed for the SMSC to resend.
	DRWait time.Duration
	// AuthBackoff is the pause after a refused login, at least 30 s, with
	// up to 50 % jitter added.
	AuthBackoff time.Duration
	// Workers is how many segments a replica handles at once; 0 means
	// Window × sessions × accounts, enough to keep every window full.
	Workers int
	// Sessions is the number of sessions per account; a segment goes to
	// the live one with the fewest operations outstanding.
	Sessions int
	// TLS wraps the sessions in TLS; TLSCA (a PEM file) replaces the
	// system roots, TLSServerName the name checked in the certificate.
	// TLSInsecureSkipVerify checks nothing: for tests only.
	TLS                   bool
	TLSCA                 string
	TLSServerName         string
	TLSInsecureSkipVerify bool
	// ListenAddr, when set, accepts the connections the SMSC opens to
	// deliver MOs and DRs; ListenAccounts, when set, are the logins (OT 60)
	// it must open them with.
	ListenAddr     string
	ListenAccounts AccountList
	// UnknownResendAfter is how long a CUSTOMER_RELATIONSHIP segment left
	// UNKNOWN by an ACK timeout waits before it is sent again, on a
	// session opened after the timeout (at most 3 times, until the SMSC
	// answers); 0 never resends (resend.go).
	UnknownResendAfter time.Duration
	// DefaultRate and Rates are the contracted SMS-MT per second of the
	// short codes (-default-rate, -rates), under the rates of the bucket
	// SHORT_CODES (lib/rate): the guard's limit. RateSlack widens the
	// guard's 1-s window, for an SMSC that counts with a margin of its
	// own; the guard is exact without it.
	DefaultRate int
	Rates       rate.Overrides
	RateSlack   time.Duration
	// RefCache is how many correlation refs this process keeps after
	// storing (or reading) them, so that a DR reaching the replica that
	// submitted its segment skips the bucket read; 0 turns it off. The
	// bucket stays the truth for the other replicas and after a restart.
	RefCache int
	// RefCacheFor is how long a ref stays cached at most: a DR later than
	// that reads the bucket.
	RefCacheFor time.Duration
}

// DefaultConfig listens on :9093 with a window of 10, a 10 s ACK timeout
// and a 60 s keep-alive; SMSCAddr and Accounts must be set.
func DefaultConfig() Config {
	return Config{
		Config:      service.DefaultConfig(":9093"),
		Window:      10,
		AckTimeout:  10 * time.Second,
		KeepAlive:   60 * time.Second,
		AdCFormat:   AdCInternational,
		Timezone:    "Europe/Paris",
		DRWait:      time.Second,
		AuthBackoff: minAuthBackoff,
		Sessions:    1,

		UnknownResendAfter: 2 * time.Minute,
		DefaultRate:        rate.DefaultRate,
		RateSlack:          0,
		RefCache:           DefaultRefCache,
		RefCacheFor:        DefaultRefCacheFor,
	}
}

// RegisterFlags adds the flags of the bus, telemetry, -grpc-addr and the
// -smsc-* flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	fs.StringVar(&c.SMSCAddr, "smsc-addr", c.SMSCAddr, "SMSC UCP address, host:port")
	fs.Var(&c.Accounts, "smsc-accounts", "large accounts, <short code>[/<login>]:<password> comma-separated (a secret: set it from the environment)")
	fs.IntVar(&c.Window, "smsc-window", c.Window, "UCP operations in flight per session, as provisioned by the operator (1 to 100)")
	fs.DurationVar(&c.AckTimeout, "smsc-ack-timeout", c.AckTimeout, "wait for a UCP result; a submit without one is reported UNKNOWN, never resent")
	fs.DurationVar(&c.KeepAlive, "smsc-keepalive", c.KeepAlive, "idle time before a UCP keep-alive (OT 31)")
	fs.StringVar(&c.AdCFormat, "smsc-adc-format", c.AdCFormat, "recipient address form: international (33612345678), 00 (0033612345678) or national (0612345678)")
	fs.StringVar(&c.Timezone, "smsc-timezone", c.Timezone, "the SMSC's time zone for SCTS, DSCTS and VP (IANA name)")
	fs.Func("smsc-expired-rsn", "reason codes of a not-delivered DR that mean the validity expired, comma-separated (operator-specific)", func(v string) error {
		codes, err := parseCodes(v)
		if err != nil {
			return err
		}
		c.ExpiredRsn = codes
		return nil
	})
	fs.DurationVar(&c.DRWait, "smsc-dr-wait", c.DRWait, "how long a DR waits for its submit's record before it is NACKed")
	fs.DurationVar(&c.AuthBackoff, "smsc-auth-backoff", c.AuthBackoff, "pause after a refused login (at least 30s, plus jitter)")
	fs.IntVar(&c.Workers, "workers", c.Workers, "segments handled at once by this replica (0: window × sessions × accounts)")
	fs.IntVar(&c.Sessions, "smsc-sessions", c.Sessions, "UCP sessions per account (as many as the operator allows)")
	fs.BoolVar(&c.TLS, "smsc-tls", c.TLS, "use TLS to the SMSC")
	fs.StringVar(&c.TLSCA, "smsc-tls-ca", c.TLSCA, "PEM file of the CAs that sign the SMSC's certificate (default: the system roots)")
	fs.StringVar(&c.TLSServerName, "smsc-tls-server-name", c.TLSServerName, "name to check in the SMSC's certificate (default: the host of -smsc-addr)")
	fs.BoolVar(&c.TLSInsecureSkipVerify, "smsc-tls-insecure-skip-verify", c.TLSInsecureSkipVerify, "do not check the SMSC's certificate: tests only")
	fs.DurationVar(&c.UnknownResendAfter, "smsc-unknown-resend-after", c.UnknownResendAfter, "a CUSTOMER_RELATIONSHIP segment UNKNOWN after an ACK timeout is sent again after this, on a new session, at most 3 times until the SMSC answers (0: never; other categories: never)")
	fs.StringVar(&c.ListenAddr, "listen-addr", c.ListenAddr, "accept UCP connections from the SMSC for MOs and DRs on this address (empty: off)")
	fs.IntVar(&c.DefaultRate, "default-rate", c.DefaultRate, "SMS-MT per second of a short code without a rate in the SHORT_CODES bucket or -rates (the guard's limit)")
	fs.Var(&c.Rates, "rates", `per short code rates under the bucket's, e.g. "36000=20,36001=50"`)
	fs.DurationVar(&c.RateSlack, "rate-slack", c.RateSlack, "the rate guard counts its limit over 1s plus this (0 is exact: a 51 counts until 1s after its ACK), for an SMSC that counts with a margin of its own")
	fs.IntVar(&c.RefCache, "smsc-ref-cache", c.RefCache, "correlation keys kept in memory after their submit, so that its DRs skip the bucket read (0: off; the bucket stays the truth)")
	fs.DurationVar(&c.RefCacheFor, "smsc-ref-cache-for", c.RefCacheFor, "how long a correlation key stays in memory at most after its submit (most DRs come within seconds; a later one reads the bucket)")
	fs.Var(&c.ListenAccounts, "listen-accounts", "logins the SMSC must use (OT 60) on -listen-addr, <login>:<password> comma-separated (empty: no login; a secret)")
}

func parseCodes(v string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 || n > 999 {
			return nil, fmt.Errorf("reason code %q: want 0 to 999", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("smsc-link: "+format, args...)) }
	if err := c.Config.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("smsc-link: %w", err))
	}
	if c.SMSCAddr == "" {
		add("smsc-addr is empty")
	}
	if len(c.Accounts) == 0 {
		add("smsc-accounts is empty")
	}
	seen := make(map[string]bool)
	for i, a := range c.Accounts {
		if err := a.validate(); err != nil {
			add("smsc account %d: %v", i+1, err)
		}
		if seen[a.ShortCode] {
			add("short code %s has two accounts", a.ShortCode)
		}
		seen[a.ShortCode] = true
	}
	if c.Window < 1 || c.Window > ucp.MaxWindow {
		add("smsc-window %d: want 1 to %d", c.Window, ucp.MaxWindow)
	}
	if c.AckTimeout <= 0 {
		add("smsc-ack-timeout %v: want > 0", c.AckTimeout)
	}
	switch c.AdCFormat {
	case AdCInternational, AdCPrefix00, AdCNational:
	default:
		add("smsc-adc-format %q: want international, 00 or national", c.AdCFormat)
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil || c.Timezone == "" {
		add("smsc-timezone %q: not a time zone", c.Timezone)
	}
	if c.DRWait < 0 {
		add("smsc-dr-wait %v: want ≥ 0", c.DRWait)
	}
	if c.AuthBackoff < minAuthBackoff {
		add("smsc-auth-backoff %v: want at least %v", c.AuthBackoff, minAuthBackoff)
	}
	if c.UnknownResendAfter < 0 {
		add("smsc-unknown-resend-after %v: want ≥ 0", c.UnknownResendAfter)
	}
	if c.Sessions < 1 || c.Sessions > 32 {
		add("smsc-sessions %d: want 1 to 32", c.Sessions)
	}
	if !c.TLS && (c.TLSCA != "" || c.TLSServerName != "" || c.TLSInsecureSkipVerify) {
		add("smsc-tls-* set without smsc-tls")
	}
	if len(c.ListenAccounts) > 0 && c.ListenAddr == "" {
		add("listen-accounts set without listen-addr")
	}
	if c.DefaultRate < 1 || c.DefaultRate > rate.MaxRate {
		add("default-rate %d: want 1 to %d", c.DefaultRate, rate.MaxRate)
	}
	for code, r := range c.Rates {
		if !rate.ValidShortCode(code) || r < 1 || r > rate.MaxRate {
			add("rates: %s=%d: want digits=1 to %d", code, r, rate.MaxRate)
		}
	}
	if c.RateSlack < 0 || c.RateSlack > 100*time.Millisecond {
		add("rate-slack %v: want 0 to 100ms", c.RateSlack)
	}
	if c.RefCacheFor <= 0 {
		add("smsc-ref-cache-for %v: want more than 0", c.RefCacheFor)
	}
	if c.RefCache < 0 || c.RefCache > 10_000_000 {
		add("smsc-ref-cache %d: want 0 to 10000000", c.RefCache)
	}
	if c.Workers < 0 || c.Workers > 10_000 {
		add("workers %d: want 0 to 10000", c.Workers)
	}
	return errors.Join(errs...)
}

// workers is the consumer's concurrency: enough to fill every window.
func (c Config) workers() int {
	if c.Workers > 0 {
		return c.Workers
	}
	return c.Window * max(c.Sessions, 1) * len(c.Accounts)
}

// ackWait is how long JetStream waits for a segment's ack. A handler waits
// for window room, then up to AckTimeout for the result; events fetched
// ahead wait for a worker too. Handlers also report progress while they
// wait, so this only bounds a crashed replica's hold.
func (c Config) ackWait() time.Duration { return 3*c.AckTimeout + 30*time.Second }

// Run runs the service until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	s, err := New(ctx, cfg)
	return service.Run(ctx, s, err)
}

// Stats are the service's counters since New.
type Stats struct {
	// SCTSCollisions counts ACKs whose (recipient, SCTS) key already
	// belonged to another segment: that segment's DRs cannot be told apart
	// and the later one is not matched.
	SCTSCollisions int64
	// DRsUnmatched counts DRs NACKed because no submit record was found.
	DRsUnmatched int64
	// DRsStale counts DRs ACKed unmatched: older than the bucket keeps keys.
	DRsStale int64
	// AuthFailures counts logins the SMSC refused (NACK 07).
	AuthFailures int64
	// LateAcks counts 51 ACKs that came after their timeout: the segment,
	// reported UNKNOWN, gets its DR key after all.
	LateAcks int64
	// LiveSessions is, by short code, the sessions logged in now.
	LiveSessions map[string]int
	// SessionSubmits is, by short code, the submits handed to each of its
	// session slots (slot i is the i-th of -smsc-sessions, whatever
	// reconnections it went through).
	SessionSubmits map[string][]int64
	// MOParts counts parts of concatenated MOs stored; MOsReassembled the
	// whole MOs published from them.
	MOParts, MOsReassembled int64
	// ListenerLogins counts SMSC connections accepted on -listen-addr;
	// ListenerRefused those closed for a missing or wrong login.
	ListenerLogins, ListenerRefused int64
	// PossibleDuplicates counts the resends of UNKNOWN segments (resend.go):
	// the SMSC may have taken an earlier 51 too.
	PossibleDuplicates int64
	// RefCacheHits counts DRs matched from the in-process cache of
	// correlation refs; RefCacheMisses those that read the bucket.
	RefCacheHits, RefCacheMisses int64
}

// Service is a running smsc-link.
type Service struct {
	*service.Core
	cfg      Config
	tracer   trace.Tracer
	kv       jetstream.KeyValue
	linkKV   jetstream.KeyValue // bus.BucketLinkState
	rates    *rate.Table
	loc      *time.Location
	now      func() time.Time
	links    map[string]*link // by short code
	tlsConf  *tls.Config      // nil: plain TCP
	listener net.Listener     // -listen-addr; nil when off
	expRsn   map[int]bool
	metrics  *linkMetrics // metrics.go

	healthMu sync.Mutex // orders the status updates of concurrent links

	waitMu  sync.Mutex
	waiters map[string][]chan struct{} // DRs waiting for a correlation key
	storing map[string]int             // correlation keys being written here
	refs    *refCache                  // correlation refs stored or read here
	doubts  inDoubt                    // 51s waiting for a late result

	stats struct {
		collisions, unmatched, stale, authFailures, lateAcks atomic.Int64
		moParts, moReassembled                               atomic.Int64
		listenLogins, listenRefused                          atomic.Int64
		resends                                              atomic.Int64
		refHits, refMisses                                   atomic.Int64
	}

	sessSeq atomic.Uint64 // numbers the sessions as they come up
	// started is when this process began: an attempt begun before it was
	// another process's, on sessions all older than this one's.
	started  time.Time
	resolveC chan struct{} // wakes the UNKNOWN resolver

	linkCtx    context.Context // the sessions' lifetime: until Close
	linkCancel context.CancelFunc
	linkWG     sync.WaitGroup
}

// New connects to the bus, opens the correlation bucket and binds the gRPC
// address; no session is opened and nothing is consumed before Serve.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	loc, err := time.LoadLocation(cfg.Timezone)
	if err != nil {
		return nil, fmt.Errorf("smsc-link: timezone: %w", err)
	}
	tlsConf, err := cfg.tlsConfig()
	if err != nil {
		return nil, fmt.Errorf("smsc-link: %w", err)
	}
	// Not serving until every account has its session (linkChanged).
	core, err := service.Open(ctx, service.Options{Name: Name, Config: cfg.Config, ManagedHealth: true})
	if err != nil {
		return nil, err
	}
	s := &Service{
		Core:    core,
		cfg:     cfg,
		tracer:  core.Tel.Tracer("pushsms.io/services/smsc-link"),
		loc:     loc,
		now:     time.Now,
		tlsConf: tlsConf,
		links:   make(map[string]*link, len(cfg.Accounts)),
		expRsn:  make(map[int]bool, len(cfg.ExpiredRsn)),
		waiters: make(map[string][]chan struct{}),
		storing: make(map[string]int),
		refs:    newRefCache(cfg.RefCache, cfg.RefCacheFor, keyTTL()),

		resolveC: make(chan struct{}, 1),
	}
	s.started = time.Now()
	// This process's sessions are numbered above its start (nextSession),
	// so above every session of a process before it.
	s.sessSeq.Store(uint64(s.started.UnixNano()))
	for _, r := range cfg.ExpiredRsn {
		s.expRsn[r] = true
	}
	s.linkCtx, s.linkCancel = context.WithCancel(context.WithoutCancel(ctx))
	// The guards read the rates live: a change applies to the next 51.
	if s.rates, err = rate.WatchTable(ctx, core.Bus, cfg.DefaultRate, cfg.Rates, core.Log); err != nil {
		core.Close()
		return nil, fmt.Errorf("smsc-link: %w", err)
	}
	for _, a := range cfg.Accounts {
		s.links[a.ShortCode] = newLink(s, a, cfg.Sessions, s.rates.Rate)
	}
	if s.metrics, err = s.newMetrics(); err != nil {
		s.rates.Stop()
		core.Close()
		return nil, fmt.Errorf("smsc-link: %w", err)
	}

	// At Close, once the consumer stopped (segments in hand finished on
	// their sessions): the sessions, waiting for outstanding results (UCP
	// has no logout).
	core.OnClose(func() {
		s.linkCancel()
		s.linkWG.Wait()
		s.rates.Stop()
		if s.listener != nil {
			s.listener.Close() // when Serve never ran
		}
	})
	s.kv, err = core.Bus.JS.KeyValue(ctx, bus.BucketSubmitted)
	if err != nil {
		core.Close()
		return nil, fmt.Errorf("smsc-link: bucket %s: %w", bus.BucketSubmitted, err)
	}
	s.linkKV, err = core.Bus.JS.KeyValue(ctx, bus.BucketLinkState)
	if err != nil {
		core.Close()
		return nil, fmt.Errorf("smsc-link: bucket %s: %w", bus.BucketLinkState, err)
	}
	if cfg.ListenAddr != "" {
		var lc net.ListenConfig
		if s.listener, err = lc.Listen(ctx, "tcp", cfg.ListenAddr); err != nil {
			core.Close()
			return nil, fmt.Errorf("smsc-link: listen-addr: %w", err)
		}
	}
	return s, nil
}

// Stats returns the service's counters.
func (s *Service) Stats() Stats {
	st := Stats{
		SCTSCollisions:  s.stats.collisions.Load(),
		DRsUnmatched:    s.stats.unmatched.Load(),
		DRsStale:        s.stats.stale.Load(),
		AuthFailures:    s.stats.authFailures.Load(),
		LateAcks:        s.stats.lateAcks.Load(),
		LiveSessions:    make(map[string]int, len(s.links)),
		SessionSubmits:  make(map[string][]int64, len(s.links)),
		MOParts:         s.stats.moParts.Load(),
		MOsReassembled:  s.stats.moReassembled.Load(),
		ListenerLogins:  s.stats.listenLogins.Load(),
		ListenerRefused: s.stats.listenRefused.Load(),

		PossibleDuplicates: s.stats.resends.Load(),
		RefCacheHits:       s.stats.refHits.Load(),
		RefCacheMisses:     s.stats.refMisses.Load(),
	}
	for code, l := range s.links {
		st.LiveSessions[code], st.SessionSubmits[code] = l.counts()
	}
	return st
}

// Serve opens the sessions, consumes segments to submit and serves gRPC
// until ctx is done.
func (s *Service) Serve(ctx context.Context) error {
	for _, l := range s.links {
		for slot := range l.clients {
			s.linkWG.Add(1)
			go func() {
				defer s.linkWG.Done()
				l.run(s.linkCtx, slot)
			}()
		}
	}
	for _, l := range s.links {
		s.linkWG.Add(1)
		go func() {
			defer s.linkWG.Done()
			s.runLinkState(s.linkCtx, l)
		}()
	}
	if s.cfg.UnknownResendAfter > 0 {
		s.linkWG.Add(1)
		go func() {
			defer s.linkWG.Done()
			s.runResolver(s.linkCtx)
		}()
	}
	if s.listener != nil {
		s.linkWG.Add(1)
		go func() {
			defer s.linkWG.Done()
			s.serveListener(s.linkCtx)
		}()
	}
	workers := s.cfg.workers()
	_, err := s.Consume(ctx, bus.ConsumerSpec{
		Stream:         bus.StreamSubmit,
		Durable:        Name,
		FilterSubjects: []string{bus.SubjectSubmit},
		Workers:        workers,
		AckWait:        s.cfg.ackWait(),
		MaxAckPending:  max(2*workers, 1000),
	}, s.handleSubmit)
	if err != nil {
		return service.Starting(ctx, err)
	}
	s.Log.InfoContext(ctx, "smsc-link serving", "smsc_addr", s.cfg.SMSCAddr,
		"accounts", s.cfg.Accounts, "sessions", s.cfg.Sessions, "window", s.cfg.Window, "workers", workers,
		"tls", s.cfg.TLS, "listen_addr", s.ListenAddr(), "default_rate", s.cfg.DefaultRate, "rates", s.cfg.Rates.String())
	return s.Core.Serve(ctx)
}

// linkChanged sets the health status: SERVING only while every account
// has at least one logged-in session.
func (s *Service) linkChanged() {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	up := true
	for _, l := range s.links {
		up = up && l.isUp()
	}
	s.SetServing(up)
}
