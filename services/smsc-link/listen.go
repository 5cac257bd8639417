package smsclink

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"pushsms.io/lib/ucp"
)

// Listener mode (-listen-addr): the SMSC opens its own connections to us
// to deliver MOs (52) and DRs (53), as some operators do instead of (or as
// well as) sending them on the submit sessions (ucp.md §7). They go to the
// same handlers as on the sessions: a DR is matched through the bucket, an
// MO is published (or stored as a part), and the operation is ACKed only
// after that.
//
// ucp.Serve answers every operation itself and NACKs an OT 60 with 03, so
// it cannot check a login. When -listen-accounts is set, loginListener
// does: it hands ucp.Serve only the connections whose first frame was an
// accepted OT 60, answered here.

// maxLoginFrame bounds the first frame of an incoming connection: an OT 60
// is about 100 bytes.
const maxLoginFrame = 1024

// serveListener runs the listener until ctx is done.
func (s *Service) serveListener(ctx context.Context) {
	var ln net.Listener = s.listener
	if len(s.cfg.ListenAccounts) > 0 {
		ln = newLoginListener(s, s.listener)
	}
	opts := ucp.Options{
		Window:     s.cfg.Window,
		AckTimeout: s.cfg.AckTimeout,
		Handler:    s.incomingListener(),
		Logger:     s.Log.With("session", "listener"),
	}
	err := ucp.Serve(ctx, ln, opts)
	if err != nil && ctx.Err() == nil {
		s.Log.ErrorContext(ctx, "smsc listener stopped", "err", err)
	}
}

// ListenAddr returns the bound address of -listen-addr, "" when off.
func (s *Service) ListenAddr() string {
	if s.listener == nil {
		return ""
	}
	return s.listener.Addr().String()
}

// incomingListener routes the operations of the SMSC's own connections.
// They belong to no account: an MO goes to the short code it is addressed
// to (AdC), which must be one of ours.
func (s *Service) incomingListener() ucp.Handler {
	return func(ctx context.Context, op ucp.Message) error {
		switch op := op.(type) {
		case *ucp.Notification:
			return s.handleDR(ctx, Account{}, op)
		case *ucp.Deliver:
			l, ok := s.links[op.AdC]
			if !ok {
				s.Log.WarnContext(ctx, "smsc MO on the listener for a short code not served here; NACKed", "short_code", op.AdC)
				return &ucp.NackError{OT: op.OpType(), Code: ucp.ECAdCInvalid}
			}
			return s.handleMO(ctx, l.acc, op)
		case *ucp.Op5x:
			return nil
		}
		s.Log.WarnContext(ctx, "smsc operation not supported on the listener; NACKed", "ot", op.OpType().String())
		return &ucp.NackError{OT: op.OpType(), Code: ucp.ECNotSupported}
	}
}

// loginListener accepts connections, and hands out only those that logged
// in first with one of -listen-accounts. Logins run concurrently, so that a
// silent peer does not hold up the others.
type loginListener struct {
	net.Listener
	s        *Service
	accounts map[string]string // login → password

	ready  chan net.Conn
	errc   chan error
	closed chan struct{}
	once   sync.Once
}

func newLoginListener(s *Service, ln net.Listener) *loginListener {
	l := &loginListener{
		Listener: ln,
		s:        s,
		accounts: make(map[string]string, len(s.cfg.ListenAccounts)),
		ready:    make(chan net.Conn),
		errc:     make(chan error, 1),
		closed:   make(chan struct{}),
	}
	for _, a := range s.cfg.ListenAccounts {
		l.accounts[a.login()] = a.Password
	}
	go l.acceptLoop()
	return l
}

func (l *loginListener) acceptLoop() {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			l.errc <- err
			return
		}
		go l.handshake(conn)
	}
}

func (l *loginListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case err := <-l.errc:
		return nil, err
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *loginListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// handshake reads the first frame, which must be an OT 60 opening a
// session with a known login and its password, and answers it.
func (l *loginListener) handshake(conn net.Conn) {
	log := l.s.Log.With("session", "listener", "peer", conn.RemoteAddr().String())
	err := l.login(conn)
	if err != nil {
		l.s.stats.listenRefused.Add(1)
		log.Warn("smsc listener connection refused", "err", err)
		conn.Close()
		return
	}
	l.s.stats.listenLogins.Add(1)
	log.Info("smsc listener login accepted")
	select {
	case l.ready <- conn:
	case <-l.closed:
		conn.Close()
	}
}

var errListenLogin = errors.New("smsc-link: listener login refused")

func (l *loginListener) login(conn net.Conn) error {
	if err := conn.SetDeadline(time.Now().Add(l.s.cfg.AckTimeout)); err != nil {
		return err
	}
	frame, err := readFrame(conn)
	if err != nil {
		return fmt.Errorf("first frame: %w", err)
	}
	h, err := ucp.ParseHeader(frame)
	if err != nil {
		return fmt.Errorf("first frame: %w", err)
	}
	var login ucp.Login
	code := ucp.ErrorCode(0)
	switch {
	case h.Kind != ucp.KindOperation || h.OT != ucp.OTSession:
		code = ucp.ECNotAllowed
		err = fmt.Errorf("%w: first operation is OT %s, not 60", errListenLogin, h.OT)
	default:
		if _, derr := ucp.DecodeInto(frame, &login); derr != nil {
			code, err = ucp.ECSyntax, fmt.Errorf("%w: %w", errListenLogin, derr)
		} else if pwd, ok := l.accounts[login.OAdC]; !ok || login.STYP != ucp.STYPOpenSession ||
			subtle.ConstantTimeCompare([]byte(pwd), []byte(login.PWD)) != 1 {
			// Neither the login nor the password goes in the error.
			code, err = ucp.ECAuthFailure, fmt.Errorf("%w: unknown login or wrong password", errListenLogin)
		}
	}
	res := &ucp.Result{OT: h.OT, Ack: code == 0, Code: code}
	b, ferr := ucp.AppendFrame(nil, h.TRN, res)
	if ferr != nil {
		return ferr
	}
	if _, werr := conn.Write(b); werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		return err
	}
	return conn.SetDeadline(time.Time{})
}

// readFrame reads one frame (STX … ETX) byte by byte, so that nothing
// after it is consumed before ucp.Serve reads the connection.
func readFrame(r io.Reader) ([]byte, error) {
	var b [1]byte
	frame := make([]byte, 0, 128)
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, err
		}
		switch {
		case b[0] == ucp.STX:
			frame = append(frame[:0], b[0])
		case len(frame) == 0:
			// Junk before STX.
		default:
			frame = append(frame, b[0])
			if b[0] == ucp.ETX {
				return frame, nil
			}
			if len(frame) > maxLoginFrame {
				return nil, ucp.ErrFrameTooLong
			}
		}
	}
}
