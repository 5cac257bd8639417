package ucp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// MaxWindow is the most operations that can be outstanding: the TRN space.
const MaxWindow = 100

// Handler receives the operations the SMSC sends on the session: *Deliver
// (52, MO), *Notification (53, DR), *Call (01, legacy MO/DR), and *Op5x for
// 57 and 58. Returning nil answers with an ACK; the ACK is written only
// after Handler returns, so persist first. An error answers with a NACK:
// the code of a returned *NackError, else 04. Handler may be called
// concurrently (up to MaxWindow at once) and may see the same message twice
// when the SMSC redelivers; it must not call Client.Close itself.
type Handler func(ctx context.Context, op Message) error

// Options configures a Client. The zero value is usable for a connection
// that needs no login (IP-authenticated, or one the SMSC opened to us).
type Options struct {
	// Login is the OAdC of the OT 60 login; empty skips the login.
	Login    string
	Password string
	// OTON and ONPI of the login; default "6" and "5", the large-account
	// short-number convention Kannel hard-codes.
	OTON, ONPI string

	// Window is the number of operations that may wait for their result,
	// 1–100; default 1 (stop-and-wait). Exceeding the window the operator
	// provisioned makes the SMSC drop operations silently.
	Window int
	// AckTimeout bounds the wait for a result; default 30 s. On expiry the
	// operation fails with ErrTimeout and is never resent; its TRN stays
	// reserved until a late result arrives or the session ends.
	AckTimeout time.Duration
	// KeepAlive is the idle time after which an OT 31 is sent; default
	// 30 s, negative disables. A keep-alive without result ends the session.
	KeepAlive time.Duration
	// KeepAliveAdC is the AdC of the 31; default Login.
	KeepAliveAdC string
	// WriteTimeout bounds one write to the connection; default 10 s.
	WriteTimeout time.Duration
	// MaxFrame bounds incoming frames; default DefaultMaxFrame.
	MaxFrame int

	Handler Handler
	// OnLateResult, when set, is told of a result that arrives after its
	// operation timed out (the caller already got ErrTimeout): e.g. the
	// SCTS of a 51 reported UNKNOWN, so that its DRs can still be matched.
	// It runs on its own goroutine.
	OnLateResult func(op Message, r Result)
	Logger       *slog.Logger
}

func (o *Options) setDefaults() error {
	if o.Window == 0 {
		o.Window = 1
	}
	if o.Window < 0 || o.Window > MaxWindow {
		return fmt.Errorf("ucp: window %d outside 1–%d", o.Window, MaxWindow)
	}
	if o.OTON == "" {
		o.OTON = "6"
	}
	if o.ONPI == "" {
		o.ONPI = "5"
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = 30 * time.Second
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = 30 * time.Second
	}
	if o.KeepAliveAdC == "" {
		o.KeepAliveAdC = o.Login
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Client is a UCP session on one connection. It is safe for concurrent use;
// at most Window operations are on the wire at once, the others wait.
type Client struct {
	conn net.Conn
	opts Options
	log  *slog.Logger

	window chan struct{} // one token per operation awaiting its result

	mu       sync.Mutex
	slots    [MaxWindow]*pending // by TRN: outstanding, or reserved after a timeout
	nextTRN  int
	changed  chan struct{} // closed and replaced when a slot frees or an op ends
	draining bool
	closed   bool
	err      error

	wmu      sync.Mutex
	wbuf     []byte
	lastSend atomic.Int64 // unix nanoseconds of the last operation written

	done     chan struct{}
	hctx     context.Context // handlers' context, cancelled by Close
	hcancel  context.CancelFunc
	handlers chan struct{} // bounds concurrent Handler calls
	wg       sync.WaitGroup
}

type pending struct {
	ot       OT
	msg      Message
	done     chan struct{}
	res      Result
	at       time.Time // when res had arrived
	err      error
	timer    *time.Timer
	holdsWin bool
	finished bool
}

// SubmitResult is the outcome of an accepted submit.
type SubmitResult struct {
	// Key correlates the DRs of this message: the recipient and SCTS from
	// the ACK's "AdC:SCTS" (AdC falls back to the submitted one). SCTS is
	// empty if the SMSC sent no timestamp, and then no DR can be matched.
	Key Key
	MVP string // modified validity period, usually empty
	SM  string // the ACK's SM as received
	// At is when the ACK arrived (the kernel's receive stamp on Linux,
	// else when it was read from the connection): the SMSC had received
	// the submit by then. A rate guard counts from it rather than from
	// when the caller got round to the result, which on a busy machine is
	// later (lib/rate.Grant.DoneAt).
	At time.Time
}

// Dial connects to addr and logs in (see NewClient).
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ucp: dial: %w", err)
	}
	c, err := NewClient(ctx, conn, opts)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// NewClient starts a session on conn and, when opts.Login is set, logs in
// with OT 60 within ctx and AckTimeout. A NACK 07 gives an error matching
// ErrAuth (and *NackError): back off before trying again. On error conn is
// closed.
func NewClient(ctx context.Context, conn net.Conn, opts Options) (*Client, error) {
	if err := opts.setDefaults(); err != nil {
		conn.Close()
		return nil, err
	}
	hctx, hcancel := context.WithCancel(context.Background())
	c := &Client{
		conn:     conn,
		opts:     opts,
		log:      opts.Logger.With("peer", conn.RemoteAddr().String()),
		window:   make(chan struct{}, opts.Window),
		changed:  make(chan struct{}),
		done:     make(chan struct{}),
		hctx:     hctx,
		hcancel:  hcancel,
		handlers: make(chan struct{}, MaxWindow),
		wbuf:     make([]byte, 0, 512),
	}
	c.lastSend.Store(time.Now().UnixNano())
	c.wg.Add(1)
	go c.readLoop()
	if opts.Login != "" {
		if err := c.login(ctx); err != nil {
			c.Close()
			return nil, err
		}
	}
	if opts.KeepAlive > 0 {
		c.wg.Add(1)
		go c.keepAlive()
	}
	return c, nil
}

func (c *Client) login(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.AckTimeout)
	defer cancel()
	r, err := c.Send(ctx, &Login{
		OAdC: c.opts.Login, OTON: c.opts.OTON, ONPI: c.opts.ONPI,
		STYP: STYPOpenSession, PWD: c.opts.Password, VERS: Version0100,
	})
	if err != nil {
		return fmt.Errorf("ucp: login: %w", err)
	}
	if err := r.Err(); err != nil {
		var ne *NackError
		if errors.As(err, &ne) && ne.Code == ECAuthFailure {
			return fmt.Errorf("ucp: login: %w: %w", ErrAuth, err)
		}
		return fmt.Errorf("ucp: login: %w", err)
	}
	c.log.Info("ucp login accepted")
	return nil
}

// Submit sends an OT 51 and waits for its result. A NACK is returned as a
// *NackError; see Temporary for which ones to requeue.
func (c *Client) Submit(ctx context.Context, s *Submit) (SubmitResult, error) {
	r, at, err := c.send(ctx, s)
	if err != nil {
		return SubmitResult{}, err
	}
	if err := r.Err(); err != nil {
		return SubmitResult{}, err
	}
	res := SubmitResult{MVP: r.MVP, SM: r.SM, At: at}
	if k, ok := r.Key(); ok {
		res.Key = k
	}
	if res.Key.AdC == "" {
		res.Key.AdC = s.AdC
	}
	return res, nil
}

// Send writes an operation and waits for its result, matched by (TRN, OT).
// It waits for room in the window first. ErrTimeout means no result came
// within AckTimeout; a cancelled ctx returns early but the operation keeps
// its window slot until its result or timeout, so the window stays exact.
// Once the operation is written, an ended session or a cancelled ctx gives
// an error matching ErrInDoubt; before that, ErrClosed or ctx's error alone.
func (c *Client) Send(ctx context.Context, m Message) (Result, error) {
	r, _, err := c.send(ctx, m)
	return r, err
}

// send is Send that also returns when the result arrived.
func (c *Client) send(ctx context.Context, m Message) (Result, time.Time, error) {
	if m.Kind() != KindOperation {
		return Result{}, time.Time{}, fmt.Errorf("ucp: send: %T is not an operation", m)
	}
	c.mu.Lock()
	stopped := c.closed || c.draining
	c.mu.Unlock()
	if stopped {
		return Result{}, time.Time{}, c.closedErr()
	}
	select {
	case c.window <- struct{}{}:
	case <-ctx.Done():
		return Result{}, time.Time{}, ctx.Err()
	case <-c.done:
		return Result{}, time.Time{}, c.closedErr()
	}
	p := &pending{ot: m.OpType(), msg: m, done: make(chan struct{}), holdsWin: true}
	trn, err := c.reserveAndWrite(ctx, p, m)
	if err != nil {
		return Result{}, time.Time{}, err
	}
	c.lastSend.Store(time.Now().UnixNano())
	c.mu.Lock()
	if !p.finished {
		p.timer = time.AfterFunc(c.opts.AckTimeout, func() { c.expire(trn, p) })
	}
	c.mu.Unlock()
	select {
	case <-p.done:
		return p.res, p.at, p.err
	case <-ctx.Done():
		return Result{}, time.Time{}, fmt.Errorf("%w: %w", ErrInDoubt, ctx.Err())
	}
}

// reserveAndWrite picks the next free TRN after the last one used, skipping
// those outstanding or reserved after a timeout, and writes the frame. Both
// happen under the write lock so that TRNs go on the wire in order.
func (c *Client) reserveAndWrite(ctx context.Context, p *pending, m Message) (uint8, error) {
	for {
		c.wmu.Lock()
		c.mu.Lock()
		if c.closed || c.draining {
			c.mu.Unlock()
			c.wmu.Unlock()
			<-c.window
			return 0, c.closedErr()
		}
		trn := -1
		for i := range MaxWindow {
			t := (c.nextTRN + i) % MaxWindow
			if c.slots[t] == nil {
				trn = t
				break
			}
		}
		if trn >= 0 {
			c.slots[trn] = p
			c.nextTRN = (trn + 1) % MaxWindow
			c.mu.Unlock()
			err := c.writeLocked(uint8(trn), m)
			c.wmu.Unlock()
			if err != nil {
				c.mu.Lock()
				if c.slots[trn] == p {
					c.slots[trn] = nil
					c.releaseLocked(p)
				}
				c.mu.Unlock()
				return 0, err
			}
			return uint8(trn), nil
		}
		ch := c.changed
		c.mu.Unlock()
		c.wmu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			<-c.window
			return 0, ctx.Err()
		case <-c.done:
			<-c.window
			return 0, c.closedErr()
		}
	}
}

// releaseLocked gives back p's window token and wakes waiters.
func (c *Client) releaseLocked(p *pending) {
	if p.holdsWin {
		p.holdsWin = false
		<-c.window
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *Client) finishLocked(p *pending, res Result, err error) {
	if p.timer != nil {
		p.timer.Stop()
	}
	if !p.finished {
		p.finished = true
		p.res, p.err = res, err
		close(p.done)
	}
	c.releaseLocked(p)
}

// resolve matches a result, read at at, to our outstanding operation by
// (TRN, OT).
func (c *Client) resolve(trn uint8, r Result, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.slots[trn]
	if p == nil || p.ot != r.OT {
		c.log.Warn("ucp result matches no outstanding operation", "trn", trn, "ot", r.OT.String())
		return
	}
	c.slots[trn] = nil
	if p.finished {
		c.log.Info("ucp late result after timeout; TRN freed", "trn", trn, "ot", r.OT.String(), "ack", r.Ack)
		if late := c.opts.OnLateResult; late != nil {
			go late(p.msg, r)
		}
	}
	if !p.finished {
		p.at = at
	}
	c.finishLocked(p, r, nil)
}

// expire fails an operation whose result did not come in time. Its window
// token is returned (the SMSC most likely dropped it), but the TRN stays
// reserved so a late result cannot be taken for another operation's.
func (c *Client) expire(trn uint8, p *pending) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.slots[trn] != p || p.finished {
		return
	}
	c.log.Warn("ucp result timeout", "trn", trn, "ot", p.ot.String())
	c.finishLocked(p, Result{}, ErrTimeout)
}

// write encodes and writes one frame under the write lock.
func (c *Client) write(trn uint8, m Message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(trn, m)
}

func (c *Client) writeLocked(trn uint8, m Message) error {
	b, err := AppendFrame(c.wbuf[:0], trn, m)
	if err != nil {
		return err
	}
	if cap(b) <= 64<<10 {
		c.wbuf = b[:0]
	}
	if err := c.conn.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout)); err != nil {
		c.fail(fmt.Errorf("ucp: write: %w", err))
		return c.closedErr()
	}
	if _, err := c.conn.Write(b); err != nil {
		c.fail(fmt.Errorf("ucp: write: %w", err))
		return c.closedErr()
	}
	return nil
}

func (c *Client) readLoop() {
	defer c.wg.Done()
	tr := newTimedReader(c.conn)
	rd := NewReader(tr, c.opts.MaxFrame)
	for {
		raw, err := rd.ReadFrame()
		if errors.Is(err, ErrFrameTooLong) {
			c.log.Warn("ucp frame too long, skipped")
			continue
		}
		if err != nil {
			c.fail(fmt.Errorf("ucp: read: %w", err))
			return
		}
		c.handleFrame(raw, tr.arrived())
	}
}

// handleFrame handles a frame that had arrived by at.
func (c *Client) handleFrame(raw []byte, at time.Time) {
	h, err := ParseHeader(raw)
	if err != nil {
		c.log.Warn("ucp unparseable frame dropped", "err", err, "len", len(raw))
		return
	}
	if h.Kind == KindResult {
		var r Result
		if _, err := DecodeInto(raw, &r); err != nil {
			// Untrustworthy: let the operation time out rather than guess.
			c.log.Warn("ucp bad result dropped", "trn", h.TRN, "ot", h.OT.String(), "err", err)
			return
		}
		c.resolve(h.TRN, r, at)
		return
	}
	f, err := Decode(raw)
	if err != nil {
		code := ECSyntax
		if errors.Is(err, ErrChecksum) || errors.Is(err, ErrLength) {
			code = ECChecksum
		}
		c.log.Warn("ucp bad operation NACKed", "trn", h.TRN, "ot", h.OT.String(), "code", uint8(code), "err", err)
		c.reply(h.TRN, &Result{OT: h.OT, Code: code})
		return
	}
	switch op := f.Msg.(type) {
	case *Alert:
		c.reply(h.TRN, &Result{OT: OTAlert, Ack: true, SM: "0000"})
	case *Deliver, *Notification, *Call:
		c.dispatch(h.TRN, op)
	case *Op5x:
		if op.OT == OTResponseInquiry || op.OT == OTResponseDelete {
			c.dispatch(h.TRN, op)
			return
		}
		c.reply(h.TRN, &Result{OT: op.OT, Code: ECNotSupported})
	default:
		c.reply(h.TRN, &Result{OT: h.OT, Code: ECNotSupported})
	}
}

// dispatch runs the Handler in its own goroutine so that a slow handler does
// not hold up results; the reader blocks only when MaxWindow handlers run.
func (c *Client) dispatch(trn uint8, op Message) {
	if c.opts.Handler == nil {
		c.log.Warn("ucp operation NACKed: no handler", "trn", trn, "ot", op.OpType().String())
		c.reply(trn, &Result{OT: op.OpType(), Code: ECNotAllowed})
		return
	}
	select {
	case c.handlers <- struct{}{}:
	case <-c.done:
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() { <-c.handlers }()
		err := c.opts.Handler(c.hctx, op)
		if err == nil {
			c.reply(trn, &Result{OT: op.OpType(), Ack: true})
			return
		}
		code := ECNotAllowed
		var ne *NackError
		if errors.As(err, &ne) {
			code = ne.Code
		}
		c.log.Warn("ucp operation NACKed by handler", "trn", trn, "ot", op.OpType().String(), "code", uint8(code), "err", err)
		c.reply(trn, &Result{OT: op.OpType(), Code: code})
	}()
}

func (c *Client) reply(trn uint8, r *Result) {
	if err := c.write(trn, r); err != nil && !errors.Is(err, ErrClosed) {
		c.log.Warn("ucp result not sent", "trn", trn, "ot", r.OT.String(), "err", err)
	}
}

// keepAlive sends an OT 31 once nothing has been written for KeepAlive and
// nothing is waiting for a result (31 is not a windowed operation).
func (c *Client) keepAlive() {
	defer c.wg.Done()
	t := time.NewTimer(c.opts.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		idle := time.Since(time.Unix(0, c.lastSend.Load()))
		if idle < c.opts.KeepAlive {
			t.Reset(c.opts.KeepAlive - idle)
			continue
		}
		if c.Outstanding() > 0 {
			t.Reset(c.opts.KeepAlive / 4)
			continue
		}
		ctx, cancel := context.WithTimeout(c.hctx, c.opts.AckTimeout+time.Second)
		r, err := c.Send(ctx, &Alert{AdC: c.opts.KeepAliveAdC, PID: PIDPCOverTCP})
		cancel()
		switch {
		case errors.Is(err, ErrTimeout):
			c.fail(fmt.Errorf("ucp: keep-alive: %w", ErrTimeout))
			return
		case err != nil:
			return // closed
		case !r.Ack:
			c.log.Info("ucp keep-alive NACKed", "code", uint8(r.Code))
		}
		t.Reset(c.opts.KeepAlive)
	}
}

// Outstanding returns the number of operations waiting for their result.
func (c *Client) Outstanding() int { return len(c.window) }

// Done is closed when the session ends, by Close or by a failure.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the session ended, or nil while it runs.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *Client) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil || errors.Is(c.err, ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("%w: %w", ErrClosed, c.err)
}

// fail ends the session: every operation still waiting fails with ErrClosed.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.err = err
	for i, p := range c.slots {
		if p != nil {
			c.slots[i] = nil
			// Written (a write still under way fails on the closed
			// connection, and its Send returns that error instead).
			c.finishLocked(p, Result{}, fmt.Errorf("%w: %w: %w", ErrClosed, ErrInDoubt, err))
		}
	}
	close(c.done)
	c.mu.Unlock()
	c.hcancel()
	c.conn.Close()
	if !errors.Is(err, ErrClosed) {
		c.log.Warn("ucp session ended", "err", err)
	}
}

// Shutdown stops new operations, waits until every outstanding one has its
// result (or timed out), then closes. UCP has no logout operation.
func (c *Client) Shutdown(ctx context.Context) error {
	for {
		c.mu.Lock()
		c.draining = true
		ch := c.changed
		c.mu.Unlock()
		if c.Outstanding() == 0 {
			break
		}
		select {
		case <-ch:
		case <-c.done:
			return c.Close()
		case <-ctx.Done():
			c.Close()
			return ctx.Err()
		}
	}
	return c.Close()
}

// Close ends the session at once and waits for its goroutines, handlers
// included (their context is cancelled).
func (c *Client) Close() error {
	c.fail(ErrClosed)
	c.wg.Wait()
	return nil
}

// Serve accepts the connections an SMSC opens to us to deliver MO and DR
// (NAdC/NPID or an operator-provisioned receive port, ucp.md §4) and runs a
// session on each, answering its operations through opts.Handler. Login is
// not sent and keep-alive is off unless opts.KeepAlive is positive. Serve
// closes ln and every session when ctx is done, and returns ctx's error or
// the first Accept error.
func Serve(ctx context.Context, ln net.Listener, opts Options) error {
	opts.Login = ""
	if opts.KeepAlive == 0 {
		opts.KeepAlive = -1
	}
	if err := opts.setDefaults(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var (
		mu       sync.Mutex
		sessions = make(map[*Client]struct{})
		wg       sync.WaitGroup
	)
	defer func() {
		mu.Lock()
		for c := range sessions {
			go c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("ucp: accept: %w", err)
		}
		c, err := NewClient(ctx, conn, opts)
		if err != nil {
			opts.Logger.Warn("ucp incoming connection refused", "err", err)
			continue
		}
		mu.Lock()
		sessions[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-c.Done()
			c.Close()
			mu.Lock()
			delete(sessions, c)
			mu.Unlock()
		}()
	}
}
