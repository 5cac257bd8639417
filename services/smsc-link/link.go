package smsclink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"

	"pushsms.io/lib/rate"
	"pushsms.io/lib/ucp"
)

// errLinkDown means the account has no session now; the segment goes back
// to the bus and is redelivered with backoff.
var errLinkDown = errors.New("smsc-link: no SMSC session for the short code")

// link keeps one account's UCP sessions up (-smsc-sessions of them):
// login, reconnection with jittered exponential backoff after a loss, a
// long pause after a refused login.
type link struct {
	s   *Service
	acc Account

	mu      sync.Mutex
	clients []*ucp.Client // by slot; nil while that session is down
	seqs    []uint64      // by slot: the session's number (Service.sessSeq)
	live    int
	up      chan struct{} // closed while some client is set
	next    int           // rotates the tie-break between equally loaded sessions
	used    []int64       // submits handed to each slot, for Stats

	// guard is the short code's hard rate limit, shared by its sessions:
	// no 1-s window at the SMSC holds more than its rate of 51s, whatever
	// the throttle released (docs/smsc-link.md, "Rate guard").
	guard *rate.Guard
	// notBefore is the first grant's earliest time, one guard window after
	// the link was created: the guard knows nothing of what a previous
	// process (killed, restarted) wrote in the SMSC's last second, so a new
	// one counts its start as a full window, as a throttle lane does.
	notBefore time.Time
	// slots bounds the 51s between their guard grant and their result to
	// the sum of the sessions' windows, so that a granted 51 never queues
	// for window room (it would leave late, in a burst with the others).
	slots chan struct{}
	// state is the back-pressure the throttle reads (linkstate.go).
	state *linkState
}

func newLink(s *Service, a Account, sessions int, rates func(string) int) *link {
	guard := rate.NewGuard(func() int { return rates(a.ShortCode) }, s.cfg.RateSlack)
	return &link{
		s: s, acc: a, up: make(chan struct{}), notBefore: s.now().Add(guard.Window()),
		clients: make([]*ucp.Client, sessions), seqs: make([]uint64, sessions), used: make([]int64, sessions),
		guard: guard,
		slots: make(chan struct{}, s.cfg.Window*sessions),
		state: newLinkState(),
	}
}

// acquire takes the right to write one 51 of the short code now: a slot
// of the account's windows, a live session (waiting up to wait for one),
// then the guard's grant; it returns the session to write on (picked after
// the grant, the least busy then) and its number, and done, to call with
// the time the 51's result arrived (zero: now) and the result (nil:
// accepted; its error otherwise) as soon as it is known: the guard counts
// the 51 until one second after that
// (lib/rate.Guard), and the time from grant to result is the round trip
// the link state reports, and what the submits metric counts (first
// submits and resends alike). An error means nothing was written.
func (l *link) acquire(ctx context.Context, after uint64, wait time.Duration, urgent bool) (c *ucp.Client, seq uint64, done func(at time.Time, err error), err error) {
	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, 0, nil, ctx.Err()
	case <-l.s.Stopping().Done():
		return nil, 0, nil, fmt.Errorf("short code %s: closing: %w", l.acc.ShortCode, errLinkDown)
	}
	release := func() { <-l.slots }
	// Wait for the link before the guard: a grant taken while the link is
	// down would be spent on reconnection, all at once.
	if err := l.waitUp(ctx, wait); err != nil {
		release()
		return nil, 0, nil, err
	}
	if d := l.notBefore.Sub(l.s.now()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			release()
			return nil, 0, nil, ctx.Err()
		}
	}
	grant := l.guard.Wait
	if urgent {
		grant = l.guard.WaitUrgent
	}
	gr, err := grant(ctx)
	if err != nil {
		release()
		return nil, 0, nil, err
	}
	if c, seq = l.sessionAfter(after); c == nil {
		// Lost while waiting: the grant is wasted, which only errs on
		// the safe side.
		gr.Done()
		release()
		return nil, 0, nil, fmt.Errorf("short code %s: %w", l.acc.ShortCode, errLinkDown)
	}
	return c, seq, func(at time.Time, err error) {
		counted := gr.DoneAt(at)
		release()
		l.state.result(l.s.now(), gr.Late+counted.Sub(gr.At), err)
		l.s.metrics.submitResult(l.acc.ShortCode, err)
	}, nil
}

// hasSessionAfter reports whether a session opened after session number
// seq is live.
func (l *link) hasSessionAfter(seq uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for slot, c := range l.clients {
		if c != nil && l.seqs[slot] > seq {
			return true
		}
	}
	return false
}

// waitUp waits up to d for a live session.
func (l *link) waitUp(ctx context.Context, d time.Duration) error {
	l.mu.Lock()
	up, live := l.up, l.live
	l.mu.Unlock()
	if live > 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-up:
		return nil
	case <-t.C:
	case <-l.s.Stopping().Done():
	case <-ctx.Done():
		return ctx.Err()
	}
	return fmt.Errorf("short code %s: %w", l.acc.ShortCode, errLinkDown)
}

func (l *link) isUp() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.live > 0
}

// pickLocked returns the live session with the fewest operations
// outstanding, rotating among equals so that every session is used, and
// its number; only sessions numbered above after are taken.
func (l *link) pickLocked(after uint64) (*ucp.Client, uint64) {
	var best *ucp.Client
	bestSlot, bestOut := -1, 0
	n := len(l.clients)
	for i := range n {
		slot := (l.next + i) % n
		c := l.clients[slot]
		if c == nil || l.seqs[slot] <= after {
			continue
		}
		if out := c.Outstanding(); best == nil || out < bestOut {
			best, bestSlot, bestOut = c, slot, out
		}
	}
	if best == nil {
		return nil, 0
	}
	l.next = (bestSlot + 1) % n
	l.used[bestSlot]++
	return best, l.seqs[bestSlot]
}

// sessionAfter returns a live session opened after session number seq,
// without waiting.
func (l *link) sessionAfter(seq uint64) (*ucp.Client, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pickLocked(seq)
}

func (l *link) set(slot int, c *ucp.Client) {
	l.mu.Lock()
	old := l.clients[slot]
	l.clients[slot] = c
	if c != nil {
		l.seqs[slot] = l.s.nextSession()
	}
	switch {
	case c != nil && old == nil:
		l.live++
		if l.live == 1 {
			close(l.up)
		}
	case c == nil && old != nil:
		l.live--
		if l.live == 0 {
			l.up = make(chan struct{})
		}
	}
	live := l.live
	l.mu.Unlock()
	l.state.setUp(live > 0)
	l.s.linkChanged()
	if c != nil {
		l.s.kickResolver()
	}
}

// counts returns the live sessions and the submits handed to each slot.
func (l *link) counts() (int, []int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.live, append([]int64(nil), l.used...)
}

// run keeps the session up until ctx is done, then shuts it down: no new
// submit, outstanding results awaited (up to the ACK timeout).
func (l *link) run(ctx context.Context, slot int) {
	log := l.s.Log.With("short_code", l.acc.ShortCode, "session", slot)
	opts := ucp.Options{
		Login:      l.acc.login(),
		Password:   l.acc.Password,
		Window:     l.s.cfg.Window,
		AckTimeout: l.s.cfg.AckTimeout,
		KeepAlive:  l.s.cfg.KeepAlive,
		Handler:    l.s.incoming(l.acc),
		// A late ACK of a 51 reported UNKNOWN gives it its DR key.
		OnLateResult: l.s.lateResult,
		Logger:       log,
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = -1
	}
	failures := 0
	for ctx.Err() == nil {
		dialCtx, cancel := context.WithTimeout(ctx, l.s.cfg.AckTimeout+5*time.Second)
		c, err := l.s.dial(dialCtx, opts)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var delay time.Duration
			if errors.Is(err, ucp.ErrAuth) {
				// A refused login is not fixed by trying again soon, and an
				// SMSC may lock an account that keeps failing.
				l.s.stats.authFailures.Add(1)
				delay = jitter(l.s.cfg.AuthBackoff)
				log.ErrorContext(ctx, "smsc login refused; backing off", "account", l.acc, "retry_in", delay.Round(time.Second))
			} else {
				delay = reconnectDelay(failures)
				log.WarnContext(ctx, "smsc connection failed", "err", err, "retry_in", delay.Round(time.Millisecond))
			}
			failures++
			if !sleep(ctx, delay) {
				return
			}
			continue
		}
		log.InfoContext(ctx, "smsc session up", "account", l.acc)
		started := time.Now()
		l.set(slot, c)
		select {
		case <-c.Done():
		case <-ctx.Done():
		}
		l.set(slot, nil)
		if ctx.Err() != nil {
			sctx, cancel := context.WithTimeout(context.Background(), l.s.cfg.AckTimeout+time.Second)
			c.Shutdown(sctx)
			cancel()
			log.InfoContext(ctx, "smsc session closed")
			return
		}
		c.Close()
		if time.Since(started) >= stableSession {
			failures = 0
		}
		delay := reconnectDelay(failures)
		failures++
		log.WarnContext(ctx, "smsc session lost", "err", c.Err(), "retry_in", delay.Round(time.Millisecond))
		if !sleep(ctx, delay) {
			return
		}
	}
}

// reconnectDelay grows from about 250 ms to 30 s, jittered so that the
// sessions of several accounts and replicas do not come back in step.
func reconnectDelay(failures int) time.Duration {
	d := 250 * time.Millisecond << min(failures, 7)
	return jitter(min(d, maxReconnect) / 2)
}

// jitter returns d plus up to d/2, random.
func jitter(d time.Duration) time.Duration {
	return d + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// dial opens a session to the SMSC, in TLS when configured.
func (s *Service) dial(ctx context.Context, opts ucp.Options) (*ucp.Client, error) {
	if s.tlsConf == nil {
		return ucp.Dial(ctx, s.cfg.SMSCAddr, opts)
	}
	d := tls.Dialer{Config: s.tlsConf}
	conn, err := d.DialContext(ctx, "tcp", s.cfg.SMSCAddr)
	if err != nil {
		return nil, fmt.Errorf("smsc-link: tls dial: %w", err)
	}
	return ucp.NewClient(ctx, conn, opts)
}

// tlsConfig builds the client TLS configuration of the flags.
func (c Config) tlsConfig() (*tls.Config, error) {
	if !c.TLS {
		return nil, nil
	}
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.TLSServerName,
		InsecureSkipVerify: c.TLSInsecureSkipVerify, //nolint:gosec // -smsc-tls-insecure-skip-verify, tests only
	}
	if conf.ServerName == "" {
		host, _, err := net.SplitHostPort(c.SMSCAddr)
		if err != nil {
			return nil, fmt.Errorf("smsc-addr: %w", err)
		}
		conf.ServerName = host
	}
	if c.TLSCA != "" {
		pem, err := os.ReadFile(c.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("smsc-tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("smsc-tls-ca %s: no PEM certificate", c.TLSCA)
		}
		conf.RootCAs = pool
	}
	return conf, nil
}

// nextSession numbers a session that came up: above every number this or
// an earlier process gave (the wall clock's nanoseconds, at least one more
// than the last), so that an attempt record written by a killed process is
// resent on the first session of the next one.
func (s *Service) nextSession() uint64 {
	for {
		last := s.sessSeq.Load()
		n := max(last+1, uint64(s.now().UnixNano()))
		if s.sessSeq.CompareAndSwap(last, n) {
			return n
		}
	}
}
