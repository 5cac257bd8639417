package smsclink

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"pushsms.io/lib/ucp"
)

// errLinkDown means the account has no session now; the segment goes back
// to the bus and is redelivered with backoff.
var errLinkDown = errors.New("smsc-link: no SMSC session for the short code")

// link keeps one account's UCP session up: login, reconnection with
// jittered exponential backoff after a loss, a long pause after a refused
// login.
type link struct {
	s   *Service
	acc Account

	mu     sync.Mutex
	client *ucp.Client
	up     chan struct{} // closed while client is set
}

func newLink(s *Service, a Account) *link {
	return &link{s: s, acc: a, up: make(chan struct{})}
}

func (l *link) isUp() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.client != nil
}

// session returns the logged-in session, waiting up to d for one.
func (l *link) session(ctx context.Context, d time.Duration) (*ucp.Client, error) {
	l.mu.Lock()
	c, up := l.client, l.up
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-up:
		l.mu.Lock()
		c = l.client
		l.mu.Unlock()
		if c != nil {
			return c, nil
		}
	case <-t.C:
	case <-l.s.Stopping().Done():
		// Closing: give the event back now rather than hold the shutdown.
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("short code %s: %w", l.acc.ShortCode, errLinkDown)
}

func (l *link) set(c *ucp.Client) {
	l.mu.Lock()
	if c != nil {
		l.client = c
		close(l.up)
	} else if l.client != nil {
		l.client = nil
		l.up = make(chan struct{})
	}
	l.mu.Unlock()
	l.s.linkChanged()
}

// run keeps the session up until ctx is done, then shuts it down: no new
// submit, outstanding results awaited (up to the ACK timeout).
func (l *link) run(ctx context.Context) {
	log := l.s.Log.With("short_code", l.acc.ShortCode)
	opts := ucp.Options{
		Login:      l.acc.login(),
		Password:   l.acc.Password,
		Window:     l.s.cfg.Window,
		AckTimeout: l.s.cfg.AckTimeout,
		KeepAlive:  l.s.cfg.KeepAlive,
		Handler:    l.s.incoming(l.acc),
		Logger:     log,
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = -1
	}
	failures := 0
	for ctx.Err() == nil {
		dialCtx, cancel := context.WithTimeout(ctx, l.s.cfg.AckTimeout+5*time.Second)
		c, err := ucp.Dial(dialCtx, l.s.cfg.SMSCAddr, opts)
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
		l.set(c)
		select {
		case <-c.Done():
		case <-ctx.Done():
		}
		l.set(nil)
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
