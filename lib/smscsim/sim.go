// Package smscsim provides a UCP/EMI SMSC simulator on real TCP, for tests
// and the one-machine mode.
//
// It accepts OT 60 logins against configured accounts, answers OT 51 with
// "AdC:SCTS" (SCTS unique per recipient), enforces each account's rate
// (NACK, default 04) and window (silent drop, as a real SMSC does), sends
// OT 53 delivery notifications on the submitting session when NRq=1,
// injects MOs as OT 52, resends 52/53 until the client ACKs them, and
// records every submit so tests can assert what was or was not sent.
//
// DR correlation follows the spec (ucp.md §2.7) and Kannel: the 53 carries
// OAdC = the original recipient and SCTS = the SCTS of the 51 ACK; its AdC
// is the original originator when numeric, else the account's short code.
//
// With Config.StateFile the 52/53 not yet ACKed by a client and the last
// SCTS of each recent recipient survive a restart, as at a real SMSC: a DR
// scheduled before a stop is delivered when its account logs in again, and
// no (recipient, SCTS) DR key is handed out twice.
//
// DR delays follow DRConfig.DelayDist (fixed, uniform or exponential), and
// DRConfig.Buffered of the messages whose NT asks for buffered reports
// (NT & 4, as Kannel's dlr-mask 4 sets) get a DSt 1 report first, then the
// final one.
//
// # Fault injection
//
// Faults (SetFaults, or PUT /faults) delay, drop or NACK results to 51s,
// NACK a fraction of submits with a given code (a NACK storm), lose a
// fraction of ACKs after accepting the message, send garbage before a
// fraction of frames, and ignore the client's ACKs to 52/53; DropSessions
// (POST /drop) closes every connection now.
//
// # HTTP API
//
// Handler serves, for the smsc-sim command and tests:
//
//	GET  /stats    Stats as JSON: per account counters and per-second history
//	GET  /submits  every recorded submit as JSON
//	GET  /metrics  Prometheus text format 0.0.4: smscsim_*_total counters and
//	               the smscsim_sessions gauge, label account = short code
//	GET  /faults   the current Faults as JSON
//	PUT  /faults   replace the Faults (absent fields: no fault); answers the
//	               new Faults. Durations as "250ms", codes as "04" or 4:
//	               {"ack_delay":"0s","ack_jitter":"0s","drop_submits":false,
//	                "nack_submits":"00","drop_mo_acks":false,"nack_rate":0.3,
//	                "nack_code":"04","drop_ack_rate":0,"garbage_rate":0}
//	               PUT {} clears every fault.
//	POST /drop     close every client connection now: {"dropped": n}
//	POST /mo       inject an MO: JSON {"short_code","originator","text"}
//	               or form fields of the same names; 202 when queued,
//	               404 unknown short code, 409 no session logged in
package smscsim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"pushsms.io/lib/ucp"
)

// Errors of the Go API.
var (
	ErrUnknownAccount = errors.New("smscsim: unknown account")
	ErrNoSession      = errors.New("smscsim: no logged-in session for the account")
	ErrClosed         = errors.New("smscsim: closed")
)

// Account is a large account at the SMSC.
type Account struct {
	ShortCode string // MO AdC; also the login unless Login is set
	Login     string // OAdC expected in the OT 60; default ShortCode
	Password  string
	// Window is the number of operations the SMSC accepts in flight per
	// session (and sends to the client); default 100. Operations beyond it
	// are dropped silently, like a real SMSC.
	Window int
	// Rate is the contracted submits per second (sliding one-second window);
	// 0 means unlimited.
	Rate int
}

// DRConfig shapes the delivery notifications. Ratios are relative weights;
// all zero means every message is delivered.
type DRConfig struct {
	// Delay is the time from the 51 ACK to the DR: fixed by default;
	// the minimum with DelayDist "uniform", the mean with "exp". Default
	// 50 ms.
	Delay time.Duration
	// DelayDist is the distribution of DR delays: "fixed" (default),
	// "uniform" (between Delay and DelayMax) or "exp" (exponential with
	// mean Delay, capped at DelayMax when set). With an intermediate
	// buffered DR, the buffered one and the final one each draw a delay,
	// one after the other.
	DelayDist string
	DelayMax  time.Duration
	Delivered float64
	Failed    float64
	// Expired DRs are DSt 2 with ExpiredRsn, like a failure: the spec has
	// no reason code for an expired validity. Their DSCTS is the submit's
	// VP when it had one (the time the SMSC gave up), not the time sent.
	Expired float64
	// Buffered is the fraction of messages that get an intermediate DSt 1
	// notification before the final one, when NT asks for BN (NT & 4).
	Buffered   float64
	FailedRsn  int // Rsn of a failed DR; default 0 (unknown subscriber)
	ExpiredRsn int // Rsn of an expired DR; default 108 (delivery fail)
}

// Config configures a Sim.
type Config struct {
	Addr     string // listen address; default "127.0.0.1:0"
	Accounts []Account
	DR       DRConfig
	// ThrottleCode is the NACK code for submits above the account's rate;
	// default 04.
	ThrottleCode ucp.ErrorCode
	// Location of SCTS and DSCTS; default UTC.
	Location *time.Location
	// AckTimeout is how long the SMSC waits for the result of its own 52/53
	// before resending it; default 10 s.
	AckTimeout time.Duration
	// RetryDelay is the pause before resending a 52/53 the client NACKed;
	// default 1 s.
	RetryDelay time.Duration
	// HistorySeconds is how many seconds of per-second statistics are kept;
	// default 3600.
	HistorySeconds int
	// NoRecords keeps no record of each submit (Submissions returns none),
	// only the statistics: a load test that reads only those does not
	// hold hundreds of bytes a segment in memory, which in a benchmark
	// that runs the simulator in the platform's process the platform's
	// collector would mark.
	NoRecords bool
	// Seed makes DR outcomes reproducible.
	Seed uint64
	// StateFile, when set, keeps the 52/53 not yet ACKed by a client
	// (scheduled, queued or in flight) and the recent SCTS per recipient:
	// written shortly after each change and at Close, read by Start and
	// Serve. Pending DRs and MOs then survive a restart and go to the
	// account's next session.
	StateFile string
	Logger    *slog.Logger
}

// MO is a mobile-originated message to inject.
type MO struct {
	ShortCode  string `json:"short_code"`
	Originator string `json:"originator"` // MSISDN, or an alphanumeric sender
	Text       string `json:"text"`
}

// Submission is one received OT 51 and what the simulator did with it.
type Submission struct {
	Time    time.Time     `json:"time"`
	Account string        `json:"account"`
	AdC     string        `json:"adc"`
	OAdC    string        `json:"oadc"`
	OTOA    string        `json:"otoa,omitempty"`
	MT      ucp.MsgType   `json:"mt"`
	Msg     []byte        `json:"msg"`
	Text    string        `json:"text,omitempty"` // when the payload is text
	UDH     []byte        `json:"udh,omitempty"`
	DCS     int           `json:"dcs"` // XSer DCS, -1 when absent
	NRq     bool          `json:"nrq"`
	NT      int           `json:"nt"`
	VP      string        `json:"vp,omitempty"`   // DDMMYYhhmm as received
	SCTS    string        `json:"scts,omitempty"` // when accepted
	Outcome string        `json:"outcome"`        // accepted, throttled, rejected, dropped, window
	Nack    ucp.ErrorCode `json:"nack,omitempty"`
	// AckLost: accepted (and its DRs sent) but the ACK never went out
	// (Faults.DropAckRate).
	AckLost bool `json:"ack_lost,omitempty"`
}

// Sim is the SMSC simulator.
type Sim struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	ln       net.Listener
	accounts map[string]*account // by login
	byCode   map[string]*account // by short code
	sessions map[*session]struct{}
	records  []Submission
	lastSCTS map[string]time.Time // per recipient, for unique SCTS
	// sctsOrder lists the SCTS in the order handed out, so that the
	// entries of lastSCTS that can no longer collide leave it as they age:
	// the map (and the state file's list, written every saveDelay under
	// the lock every submit takes) stays a few seconds of recipients,
	// where pruning only at 100 000 entries had it scan that many.
	sctsOrder []recipientSCTS
	sctsHead  int
	faults    Faults
	rng       *rand.Rand
	unknown   int64 // logins to unknown accounts
	closed    bool
	// pending holds every 52/53 not yet ACKed by a client, for StateFile.
	pending   map[*outOp]struct{}
	saveTimer *time.Timer // debounced write of StateFile
	loaded    bool
	fileMu    sync.Mutex // serialises writes of StateFile

	done chan struct{}
	wg   sync.WaitGroup
}

type account struct {
	Account
	sessions map[*session]struct{}
	queue    []*outOp // 52/53 waiting for a session
	accepted []int64  // unix nanos of recent accepted submits, for the rate
	stats    AccountStats
	perSec   map[int64]*SecondStats
}

// New returns a simulator; Start or Serve runs it.
func New(cfg Config) *Sim {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.DR.Delay == 0 {
		cfg.DR.Delay = 50 * time.Millisecond
	}
	if cfg.DR.DelayDist == "" {
		cfg.DR.DelayDist = DelayFixed
	}
	if cfg.DR.Delivered+cfg.DR.Failed+cfg.DR.Expired <= 0 {
		cfg.DR.Delivered = 1
	}
	if cfg.DR.ExpiredRsn == 0 {
		cfg.DR.ExpiredRsn = 108
	}
	if cfg.ThrottleCode == 0 {
		cfg.ThrottleCode = ucp.ECNotAllowed
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 10 * time.Second
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = time.Second
	}
	if cfg.HistorySeconds <= 0 {
		cfg.HistorySeconds = 3600
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Sim{
		cfg:      cfg,
		log:      cfg.Logger,
		accounts: make(map[string]*account),
		byCode:   make(map[string]*account),
		sessions: make(map[*session]struct{}),
		lastSCTS: make(map[string]time.Time),
		pending:  make(map[*outOp]struct{}),
		rng:      rand.New(rand.NewPCG(cfg.Seed, 0x5eed)),
		done:     make(chan struct{}),
	}
	for _, a := range cfg.Accounts {
		s.AddAccount(a)
	}
	return s
}

// AddAccount adds an account, or changes one in place: its sessions, its
// rate window and its statistics go on, under the new terms (a contract's
// rate raised while the short code sends, say).
func (s *Sim) AddAccount(a Account) {
	if a.Login == "" {
		a.Login = a.ShortCode
	}
	if a.Window <= 0 || a.Window > ucp.MaxWindow {
		a.Window = ucp.MaxWindow
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.accounts[a.Login]; ok {
		if s.byCode[old.ShortCode] == old {
			delete(s.byCode, old.ShortCode)
		}
		// Sessions read the window under their own lock.
		for ss := range old.sessions {
			ss.mu.Lock()
			defer ss.mu.Unlock()
		}
		old.Account = a
		s.byCode[a.ShortCode] = old
		return
	}
	acc := &account{Account: a, sessions: make(map[*session]struct{}), perSec: make(map[int64]*SecondStats)}
	s.accounts[a.Login] = acc
	s.byCode[a.ShortCode] = acc
}

// SetFaults replaces the fault knobs.
func (s *Sim) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Start reads Config.StateFile, listens on Config.Addr and serves in the
// background until ctx is done or Close is called.
func (s *Sim) Start(ctx context.Context) error {
	if err := s.load(); err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("smscsim: listen: %w", err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.serve(ln); err != nil {
			s.log.Error("smscsim serve", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		select {
		case <-ctx.Done():
			s.shutdown()
		case <-s.done:
		}
	}()
	return nil
}

// Serve reads Config.StateFile and accepts connections on ln until Close;
// it returns nil after Close.
func (s *Sim) Serve(ln net.Listener) error {
	if err := s.load(); err != nil {
		return err
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	return s.serve(ln)
}

func (s *Sim) serve(ln net.Listener) error {
	for {
		conn, err := ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("smscsim: accept: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			conn.Close()
			return nil
		}
		sess := newSession(s, conn)
		s.sessions[sess] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			sess.run()
		}()
	}
}

// Addr returns the listening address, "" before Start.
func (s *Sim) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close stops the simulator, waits for its sessions to end and writes
// Config.StateFile.
func (s *Sim) Close() error {
	s.shutdown()
	s.wg.Wait()
	s.mu.Lock()
	if s.saveTimer != nil {
		s.saveTimer.Stop()
		s.saveTimer = nil
	}
	s.mu.Unlock()
	return s.save()
}

func (s *Sim) shutdown() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.done)
	ln := s.ln
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for _, sess := range sessions {
		sess.conn.Close()
	}
}

// DropSessions closes every client connection now (fault injection) and
// returns how many were closed. Pending DRs are kept for the next login.
func (s *Sim) DropSessions() int {
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.conn.Close()
	}
	return len(sessions)
}

// InjectMO sends an MO as OT 52 on a logged-in session of the short code.
// It returns once the 52 is queued; it is resent until the client ACKs it.
func (s *Sim) InjectMO(ctx context.Context, mo MO) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d := &ucp.Deliver{AdC: mo.ShortCode, OAdC: mo.Originator, SCTS: ucp.FormatSCTS(time.Now(), s.cfg.Location)}
	if !isDigits(mo.Originator) {
		d.OTOA = ucp.OTOAAlphanumeric
	}
	d.SetText(mo.Text)
	if _, err := ucp.AppendFrame(nil, 0, d); err != nil {
		return fmt.Errorf("smscsim: MO: %w", err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	acc, ok := s.byCode[mo.ShortCode]
	if !ok {
		s.mu.Unlock()
		return ErrUnknownAccount
	}
	if len(acc.sessions) == 0 {
		s.mu.Unlock()
		return ErrNoSession
	}
	acc.stats.MOs++
	op := &outOp{acc: acc, msg: d}
	s.pending[op] = struct{}{}
	s.changedLocked()
	s.mu.Unlock()
	s.deliver(op)
	return nil
}

// record keeps rec for Submissions, unless the configuration says not to.
// s.mu is held.
func (s *Sim) record(rec Submission) {
	if !s.cfg.NoRecords {
		s.records = append(s.records, rec)
	}
}

// Submissions returns a copy of every submit received so far (none with
// Config.NoRecords).
func (s *Sim) Submissions() []Submission {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Submission{}, s.records...)
}

// ResetRecords forgets the recorded submissions and the statistics.
func (s *Sim) ResetRecords() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = nil
	s.unknown = 0
	for _, a := range s.accounts {
		a.stats = AccountStats{}
		a.perSec = make(map[int64]*SecondStats)
	}
}

// outOp is an operation the SMSC sends (52 or 53) until the client ACKs it.
type outOp struct {
	acc    *account
	prefer *session // the session the submit came on, for DRs
	msg    ucp.Message
	// frame is msg as the state file keeps it, encoded at the first save
	// rather than at every one (each 200 ms under load, for every pending
	// DR); emptied when msg changes. Guarded by Sim.mu.
	frame string
	sends int
	due   time.Time // a scheduled DR not yet released; zero once released
	// then is the final DR that follows this buffered one: it is scheduled
	// only once the client ACKed this one, so that the client always sees
	// DSt 1 before the final status (two timers, or two writes racing
	// on a window, would not guarantee the order). After a restart from
	// StateFile both are scheduled on their own.
	then *outOp
}

// deliver routes op to the preferred session if it is still logged in,
// else to any session of the account, else queues it for the next login.
func (s *Sim) deliver(op *outOp) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		var target *session
		if _, ok := op.acc.sessions[op.prefer]; ok && op.prefer != nil {
			target = op.prefer
		} else {
			for sess := range op.acc.sessions {
				target = sess
				break
			}
		}
		if target == nil {
			op.acc.queue = append(op.acc.queue, op)
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		if target.enqueue(op) {
			return
		}
		// The session is closing and has left the account's set: pick again.
	}
}

// scts returns a timestamp for a message to adc, unique per recipient: when
// the current second is taken, the next free second is used. Real SMSCs have
// one-second resolution too; bumping keeps (AdC, SCTS) a unique DR key.
// Called with s.mu held.
func (s *Sim) sctsLocked(adc string, now time.Time) string {
	t := now.Truncate(time.Second)
	if last, ok := s.lastSCTS[adc]; ok && !t.After(last) {
		t = last.Add(time.Second)
	}
	s.rememberSCTSLocked(adc, t)
	s.forgetSCTSLocked(now)
	return ucp.FormatSCTS(t, s.cfg.Location)
}

// rememberSCTSLocked records t as adc's last SCTS. Called with s.mu held.
func (s *Sim) rememberSCTSLocked(adc string, t time.Time) {
	s.lastSCTS[adc] = t
	s.sctsOrder = append(s.sctsOrder, recipientSCTS{AdC: adc, SCTS: t})
}

// forgetSCTSLocked drops the SCTS older than the second before now: the
// next one of their recipients is now's second or later, so they cannot
// collide. Bumped SCTS lie ahead and leave once passed. Called with s.mu
// held.
func (s *Sim) forgetSCTSLocked(now time.Time) {
	cut := now.Add(-time.Second)
	for s.sctsHead < len(s.sctsOrder) {
		e := s.sctsOrder[s.sctsHead]
		if !e.SCTS.Before(cut) {
			break
		}
		if last, ok := s.lastSCTS[e.AdC]; ok && last.Equal(e.SCTS) {
			delete(s.lastSCTS, e.AdC)
		}
		s.sctsOrder[s.sctsHead] = recipientSCTS{}
		s.sctsHead++
	}
	// Reuse the slice's space once most of it is behind the head.
	if s.sctsHead > 1024 && s.sctsHead*2 > len(s.sctsOrder) {
		n := copy(s.sctsOrder, s.sctsOrder[s.sctsHead:])
		clear(s.sctsOrder[n:])
		s.sctsOrder, s.sctsHead = s.sctsOrder[:n], 0
	}
}

// submitOutcome decides what happens to a 51 and records it.
// lostAck means the submit is accepted but its ACK is not sent.
func (s *Sim) submitOutcome(acc *account, sub *ucp.Submit, now time.Time, windowFull bool) (res ucp.Result, drop, lostAck bool, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := Submission{
		Time: now, Account: acc.ShortCode, AdC: sub.AdC, OAdC: sub.OAdC, OTOA: sub.OTOA, MT: sub.MT,
		Msg: sub.Msg, UDH: sub.XSer.UDH, DCS: -1, NRq: sub.NRq, NT: int(sub.NT), VP: sub.VP,
	}
	if sub.XSer.HasDCS {
		rec.DCS = int(sub.XSer.DCS)
	}
	if !s.cfg.NoRecords {
		if text, err := sub.Text(); err == nil {
			rec.Text = text
		}
	}
	if windowFull {
		acc.stats.WindowDrops++
		rec.Outcome = "window"
		s.record(rec)
		return res, true, false, 0
	}
	acc.stats.Submits++
	sec := acc.second(now, s.cfg.HistorySeconds)
	sec.Submits++
	res = ucp.Result{OT: ucp.OTSubmit}
	f := s.faults
	switch {
	case f.DropSubmits:
		rec.Outcome, drop = "dropped", true
	case f.NackSubmits != 0:
		rec.Outcome, rec.Nack = "rejected", f.NackSubmits
		acc.stats.FaultNacks++
	case f.NackRate > 0 && s.rng.Float64() < f.NackRate:
		rec.Outcome, rec.Nack = "rejected", cmp.Or(f.NackCode, ucp.ECNotAllowed)
		acc.stats.FaultNacks++
	case sub.AdC == "" || !isDigits(sub.AdC) || len(sub.AdC) > 16:
		rec.Outcome, rec.Nack = "rejected", ucp.ECAdCInvalid
	case sub.MT == 0:
		rec.Outcome, rec.Nack = "rejected", ucp.ECSyntax
	case !acc.allow(now):
		rec.Outcome, rec.Nack = "throttled", s.cfg.ThrottleCode
		acc.stats.Violations++
		sec.Violations++
	default:
		rec.Outcome = "accepted"
		rec.SCTS = s.sctsLocked(sub.AdC, now)
		acc.stats.Accepted++
		sec.Accepted++
		res.Ack, res.SM = true, sub.AdC+":"+rec.SCTS
		if f.DropAckRate > 0 && s.rng.Float64() < f.DropAckRate {
			rec.AckLost, lostAck = true, true
			acc.stats.AcksDropped++
		}
	}
	if rec.Nack != 0 {
		res.Code = rec.Nack
		res.SM = rec.Nack.String()
		if rec.Outcome == "throttled" {
			res.SM = "throughput exceeded"
		}
	}
	s.record(rec)
	delay = f.AckDelay
	if f.AckJitter > 0 {
		delay += time.Duration(s.rng.Int64N(int64(f.AckJitter)))
	}
	return res, drop, lostAck, delay
}

// allow applies the sliding one-second rate window to an accepted submit.
func (a *account) allow(now time.Time) bool {
	if a.Rate <= 0 {
		return true
	}
	cut := now.Add(-time.Second).UnixNano()
	i := 0
	for i < len(a.accepted) && a.accepted[i] <= cut {
		i++
	}
	a.accepted = a.accepted[i:]
	if len(a.accepted) >= a.Rate {
		return false
	}
	a.accepted = append(a.accepted, now.UnixNano())
	return true
}

// second returns the per-second counters of now, pruning old seconds.
func (a *account) second(now time.Time, keep int) *SecondStats {
	k := now.Unix()
	st, ok := a.perSec[k]
	if !ok {
		st = &SecondStats{Second: k}
		a.perSec[k] = st
		if len(a.perSec) > keep+60 {
			for old := range a.perSec {
				if old <= k-int64(keep) {
					delete(a.perSec, old)
				}
			}
		}
	}
	return st
}

// scheduleDRs plans the notifications for an accepted submit with NRq.
func (s *Sim) scheduleDRs(sess *session, acc *account, sub *ucp.Submit, scts string) {
	now := time.Now()
	s.mu.Lock()
	dr := s.cfg.DR
	total := dr.Delivered + dr.Failed + dr.Expired
	x := s.rng.Float64() * total
	buffered := sub.NT&ucp.NotifyBuffered != 0 && s.rng.Float64() < dr.Buffered
	d1, d2 := s.drDelayLocked(), s.drDelayLocked()
	s.mu.Unlock()

	n := ucp.Notification{AdC: sub.OAdC, OAdC: sub.AdC, SCTS: scts}
	if sub.OTOA == ucp.OTOAAlphanumeric || !isDigits(sub.OAdC) {
		n.AdC = acc.ShortCode
	}
	var want ucp.NotifyType
	switch {
	case x < dr.Delivered:
		n.DSt, n.Rsn, want = ucp.StatusDelivered, 0, ucp.NotifyDelivered
		n.SetText("Message " + scts + " has been delivered")
	case x < dr.Delivered+dr.Failed:
		n.DSt, n.Rsn, want = ucp.StatusNotDelivered, dr.FailedRsn, ucp.NotifyNotDelivered
		n.SetText("Message " + scts + " could not be delivered")
	default:
		n.DSt, n.Rsn, want = ucp.StatusNotDelivered, dr.ExpiredRsn, ucp.NotifyNotDelivered
		n.SetText("Message " + scts + " has expired")
		// The SMSC gives up when the validity runs out; time is compressed
		// to Delay here, but the report says when it happened.
		if vp, err := ucp.ParseVP(sub.VP, s.cfg.Location); err == nil && vp.After(now) {
			n.DSCTS = ucp.FormatSCTS(vp, s.cfg.Location)
		}
	}
	var ops []*outOp
	if buffered {
		b := ucp.Notification{AdC: n.AdC, OAdC: n.OAdC, SCTS: scts, DSt: ucp.StatusBuffered, Rsn: 107}
		b.SetText("Message " + scts + " has been buffered")
		final := &outOp{acc: acc, prefer: sess, msg: &n, due: now.Add(d1 + d2)}
		ops = append(ops, &outOp{acc: acc, prefer: sess, msg: &b, due: now.Add(d1), then: final}, final)
	} else if sub.NT == 0 || sub.NT&want != 0 {
		ops = append(ops, &outOp{acc: acc, prefer: sess, msg: &n, due: now.Add(d1)})
	}
	if len(ops) == 0 {
		return
	}
	s.mu.Lock()
	for _, op := range ops {
		s.pending[op] = struct{}{}
	}
	s.changedLocked()
	s.mu.Unlock()
	s.schedule(ops[0])
}

// DR delay distributions (DRConfig.DelayDist).
const (
	DelayFixed   = "fixed"
	DelayUniform = "uniform"
	DelayExp     = "exp"
)

// Validate reports a DRConfig that New would silently misread.
func (c DRConfig) Validate() error {
	switch {
	case c.Delay < 0 || c.DelayMax < 0:
		return fmt.Errorf("smscsim: DR delay %v, max %v: negative", c.Delay, c.DelayMax)
	case c.Delivered < 0 || c.Failed < 0 || c.Expired < 0:
		return errors.New("smscsim: DR weights must not be negative")
	case c.Buffered < 0 || c.Buffered > 1:
		return fmt.Errorf("smscsim: DR buffered fraction %v: want [0, 1]", c.Buffered)
	}
	switch c.DelayDist {
	case "", DelayFixed, DelayExp:
	case DelayUniform:
		if c.DelayMax < c.Delay {
			return fmt.Errorf("smscsim: uniform DR delay: max %v below min %v", c.DelayMax, c.Delay)
		}
	default:
		return fmt.Errorf("smscsim: DR delay distribution %q: want fixed, uniform or exp", c.DelayDist)
	}
	return nil
}

// drDelayLocked draws one DR delay. Called with s.mu held (s.rng).
func (s *Sim) drDelayLocked() time.Duration {
	dr := s.cfg.DR
	switch dr.DelayDist {
	case DelayUniform:
		if dr.DelayMax > dr.Delay {
			return dr.Delay + time.Duration(s.rng.Int64N(int64(dr.DelayMax-dr.Delay)+1))
		}
	case DelayExp:
		d := time.Duration(s.rng.ExpFloat64() * float64(dr.Delay))
		if dr.DelayMax > 0 {
			d = min(d, dr.DelayMax)
		}
		return d
	}
	return dr.Delay
}

// schedule releases op at its due time.
func (s *Sim) schedule(op *outOp) {
	time.AfterFunc(time.Until(op.due), func() { s.release(op) })
}

// release sends a scheduled notification; its DSCTS, unless already set, is
// the time it goes out. After Close it stays pending, for the state file.
func (s *Sim) release(op *outOp) {
	now := time.Now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	op.due = time.Time{}
	if n, ok := op.msg.(*ucp.Notification); ok && n.DSCTS == "" {
		n.DSCTS = ucp.FormatSCTS(now, s.cfg.Location)
		op.frame = ""
	}
	op.acc.stats.DRs++
	op.acc.second(now, s.cfg.HistorySeconds).DRs++
	s.changedLocked()
	s.mu.Unlock()
	s.deliver(op)
}

// acked forgets an operation the client ACKed.
func (s *Sim) acked(op *outOp) {
	s.mu.Lock()
	delete(s.pending, op)
	s.changedLocked()
	next := op.then
	op.then = nil
	s.mu.Unlock()
	if next != nil {
		s.schedule(next)
	}
}

// ParseAccounts parses "code:password:rate[:window],…" as used by the
// smsc-sim command, e.g. "36000:secret:10".
func ParseAccounts(spec string) ([]Account, error) {
	var out []Account
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		p := strings.Split(item, ":")
		if len(p) < 2 || len(p) > 4 || p[0] == "" {
			return nil, fmt.Errorf("smscsim: account %q: want code:password[:rate[:window]]", p[0])
		}
		a := Account{ShortCode: p[0], Password: p[1]}
		var err error
		if len(p) > 2 && p[2] != "" {
			if a.Rate, err = strconv.Atoi(p[2]); err != nil || a.Rate < 0 {
				return nil, fmt.Errorf("smscsim: account %s: rate %q", p[0], p[2])
			}
		}
		if len(p) > 3 && p[3] != "" {
			if a.Window, err = strconv.Atoi(p[3]); err != nil || a.Window < 1 || a.Window > ucp.MaxWindow {
				return nil, fmt.Errorf("smscsim: account %s: window %q", p[0], p[3])
			}
		}
		out = append(out, a)
	}
	return out, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
