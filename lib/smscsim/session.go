package smscsim

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"pushsms.io/lib/ucp"
)

// session is one client connection, the SMSC side of it.
type session struct {
	sim  *Sim
	conn net.Conn
	log  *slog.Logger

	wmu  sync.Mutex
	wbuf []byte

	mu       sync.Mutex
	acc      *account
	inflight int // client operations received and not yet answered
	out      [ucp.MaxWindow]*outOp
	timers   [ucp.MaxWindow]*time.Timer
	nout     int
	nextTRN  int
	queue    []*outOp
	closed   bool
}

func newSession(s *Sim, conn net.Conn) *session {
	return &session{sim: s, conn: conn, log: s.log.With("peer", conn.RemoteAddr().String())}
}

func (ss *session) run() {
	defer ss.close()
	rd := ucp.NewReader(ss.conn, 0)
	for {
		raw, err := rd.ReadFrame()
		if errors.Is(err, ucp.ErrFrameTooLong) {
			continue
		}
		if err != nil {
			return
		}
		ss.handle(raw)
	}
}

// close detaches the session and hands its undelivered 52/53 to the others.
func (ss *session) close() {
	ss.conn.Close()
	s := ss.sim
	s.mu.Lock()
	delete(s.sessions, ss)
	if ss.acc != nil {
		delete(ss.acc.sessions, ss)
	}
	s.mu.Unlock()

	ss.mu.Lock()
	ss.closed = true
	var orphans []*outOp
	for i, op := range ss.out {
		if op != nil {
			orphans = append(orphans, op)
			ss.out[i] = nil
			ss.timers[i].Stop()
		}
	}
	orphans = append(orphans, ss.queue...)
	ss.queue = nil
	ss.mu.Unlock()
	for _, op := range orphans {
		s.deliver(op)
	}
}

func (ss *session) write(trn uint8, m ucp.Message) {
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	b, err := ucp.AppendFrame(ss.wbuf[:0], trn, m)
	if err != nil {
		ss.log.Error("smscsim encode", "ot", m.OpType().String(), "err", err)
		return
	}
	ss.wbuf = b[:0]
	ss.mu.Lock()
	acc := ss.acc
	ss.mu.Unlock()
	if junk := ss.sim.garbage(acc, b); junk != nil {
		// Separate writes so the junk may arrive in its own segment.
		ss.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := ss.conn.Write(junk); err != nil {
			ss.conn.Close()
			return
		}
	}
	ss.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := ss.conn.Write(b); err != nil {
		ss.conn.Close()
	}
}

func (ss *session) nack(trn uint8, ot ucp.OT, code ucp.ErrorCode) {
	ss.write(trn, &ucp.Result{OT: ot, Code: code, SM: code.String()})
}

func (ss *session) handle(raw []byte) {
	h, err := ucp.ParseHeader(raw)
	if err != nil {
		return // no TRN to answer: the client will time out, as with a real SMSC
	}
	if h.Kind == ucp.KindResult {
		var r ucp.Result
		if _, err := ucp.DecodeInto(raw, &r); err != nil {
			return
		}
		ss.result(h.TRN, r)
		return
	}
	f, err := ucp.Decode(raw)
	if err != nil {
		code := ucp.ECSyntax
		if errors.Is(err, ucp.ErrChecksum) || errors.Is(err, ucp.ErrLength) {
			code = ucp.ECChecksum
		}
		ss.nack(h.TRN, h.OT, code)
		return
	}
	switch op := f.Msg.(type) {
	case *ucp.Login:
		ss.login(h.TRN, op)
	case *ucp.Alert:
		ss.mu.Lock()
		acc := ss.acc
		ss.mu.Unlock()
		if acc != nil {
			ss.sim.mu.Lock()
			acc.stats.KeepAlives++
			ss.sim.mu.Unlock()
		}
		ss.write(h.TRN, &ucp.Result{OT: ucp.OTAlert, Ack: true, SM: "0000"})
	case *ucp.Submit:
		ss.submit(h.TRN, op)
	default:
		ss.nack(h.TRN, h.OT, ucp.ECNotSupported)
	}
}

func (ss *session) login(trn uint8, l *ucp.Login) {
	s := ss.sim
	if l.STYP != ucp.STYPOpenSession {
		ss.nack(trn, ucp.OTSession, ucp.ECNotSupported)
		return
	}
	s.mu.Lock()
	acc, ok := s.accounts[l.OAdC]
	if !ok || acc.Password != l.PWD {
		if ok {
			acc.stats.LoginFailures++
		} else {
			s.unknown++
		}
		s.mu.Unlock()
		ss.log.Info("smscsim login refused", "account", l.OAdC)
		ss.nack(trn, ucp.OTSession, ucp.ECAuthFailure)
		return
	}
	acc.stats.Logins++
	ss.mu.Lock()
	if ss.acc != nil && ss.acc != acc {
		delete(ss.acc.sessions, ss)
	}
	ss.acc = acc
	ss.mu.Unlock()
	acc.sessions[ss] = struct{}{}
	queued := acc.queue
	acc.queue = nil
	s.mu.Unlock()
	ss.write(trn, &ucp.Result{OT: ucp.OTSession, Ack: true})
	ss.log.Info("smscsim login", "account", l.OAdC)
	for _, op := range queued {
		s.deliver(op)
	}
}

func (ss *session) submit(trn uint8, sub *ucp.Submit) {
	ss.mu.Lock()
	acc := ss.acc
	full := acc != nil && ss.inflight >= acc.Window
	if acc != nil && !full {
		ss.inflight++
	}
	inflight := ss.inflight
	ss.mu.Unlock()
	if acc != nil && !full {
		ss.sim.mu.Lock()
		acc.stats.MaxInFlight = max(acc.stats.MaxInFlight, inflight)
		ss.sim.mu.Unlock()
	}
	if acc == nil {
		ss.nack(trn, ucp.OTSubmit, ucp.ECAuthFailure)
		return
	}
	res, drop, lostAck, delay := ss.sim.submitOutcome(acc, sub, time.Now(), full)
	if drop {
		// Outside the window a real SMSC discards silently; a dropped
		// submit (fault) keeps its window slot, as at a stuck SMSC.
		return
	}
	answer := func() {
		ss.mu.Lock()
		ss.inflight--
		ss.mu.Unlock()
		if !lostAck {
			ss.write(trn, &res)
		}
		if res.Ack && sub.NRq {
			k, _ := res.Key()
			ss.sim.scheduleDRs(ss, acc, sub, k.SCTS)
		}
	}
	if delay > 0 {
		time.AfterFunc(delay, answer)
		return
	}
	answer()
}

// enqueue queues a 52/53 for sending; false when the session is closing.
func (ss *session) enqueue(op *outOp) bool {
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		return false
	}
	ss.queue = append(ss.queue, op)
	sends := ss.pumpLocked()
	ss.mu.Unlock()
	ss.sendAll(sends)
	return true
}

type outSend struct {
	trn uint8
	op  *outOp
}

// pumpLocked moves queued operations onto free TRNs within the window.
func (ss *session) pumpLocked() []outSend {
	var sends []outSend
	for len(ss.queue) > 0 && ss.acc != nil && ss.nout < ss.acc.Window {
		trn := -1
		for i := range ucp.MaxWindow {
			t := (ss.nextTRN + i) % ucp.MaxWindow
			if ss.out[t] == nil {
				trn = t
				break
			}
		}
		if trn < 0 {
			break
		}
		op := ss.queue[0]
		ss.queue = ss.queue[1:]
		ss.out[trn] = op
		ss.nout++
		ss.nextTRN = (trn + 1) % ucp.MaxWindow
		ss.timers[trn] = time.AfterFunc(ss.sim.cfg.AckTimeout, func() { ss.expire(uint8(trn), op) })
		sends = append(sends, outSend{uint8(trn), op})
	}
	return sends
}

func (ss *session) sendAll(sends []outSend) {
	for _, snd := range sends {
		s := ss.sim
		s.mu.Lock()
		snd.op.sends++
		if snd.op.sends > 1 {
			if snd.op.msg.OpType() == ucp.OTNotification {
				snd.op.acc.stats.DRResends++
			} else {
				snd.op.acc.stats.MOResends++
			}
		}
		s.mu.Unlock()
		ss.write(snd.trn, snd.op.msg)
	}
}

// result handles the client's answer to one of our 52/53.
func (ss *session) result(trn uint8, r ucp.Result) {
	s := ss.sim
	s.mu.Lock()
	ignore := s.faults.DropMOACKs
	s.mu.Unlock()
	if ignore || int(trn) >= ucp.MaxWindow {
		return
	}
	ss.mu.Lock()
	op := ss.out[trn]
	if op == nil || op.msg.OpType() != r.OT {
		ss.mu.Unlock()
		return
	}
	ss.out[trn] = nil
	ss.nout--
	ss.timers[trn].Stop()
	sends := ss.pumpLocked()
	ss.mu.Unlock()
	ss.sendAll(sends)

	if r.Ack {
		s.acked(op)
	}
	s.mu.Lock()
	dr := r.OT == ucp.OTNotification
	switch {
	case r.Ack && dr:
		op.acc.stats.DRsAcked++
	case r.Ack:
		op.acc.stats.MOsAcked++
	case dr:
		op.acc.stats.DRsNacked++
	default:
		op.acc.stats.MOsNacked++
	}
	s.mu.Unlock()
	if !r.Ack {
		time.AfterFunc(s.cfg.RetryDelay, func() { s.deliver(op) })
	}
}

// expire resends a 52/53 the client did not answer in time.
func (ss *session) expire(trn uint8, op *outOp) {
	ss.mu.Lock()
	if ss.out[trn] != op {
		ss.mu.Unlock()
		return
	}
	ss.out[trn] = nil
	ss.nout--
	sends := ss.pumpLocked()
	ss.mu.Unlock()
	ss.sendAll(sends)
	ss.sim.deliver(op)
}
