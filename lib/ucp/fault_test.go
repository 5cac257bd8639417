package ucp_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"pushsms.io/lib/smscsim"
	"pushsms.io/lib/ucp"
)

// Fault tests: the client against the simulator's fault knobs, real TCP.

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func submissionsTo(sim *smscsim.Sim, adc string) int {
	n := 0
	for _, s := range sim.Submissions() {
		if s.AdC == adc {
			n++
		}
	}
	return n
}

// TestLinkDroppedMidWindow: with some submits answered, some written and
// unanswered, and some waiting for the window, the SMSC drops the link.
// Only the written ones may have reached the SMSC and only they say so
// (ErrInDoubt); nothing is resent.
func TestLinkDroppedMidWindow(t *testing.T) {
	sim := startSim(t)
	const window, answered, unanswered, waiting = 20, 10, 20, 30
	c := dialSim(t, sim, ucp.Options{Window: window, AckTimeout: time.Minute})

	for i := range answered {
		if _, err := c.Submit(t.Context(), simSubmit(i)); err != nil {
			t.Fatalf("submit %d before the fault: %v", i, err)
		}
	}
	sim.SetFaults(smscsim.Faults{DropSubmits: true})
	errs := make(chan error, unanswered+waiting)
	for i := range unanswered + waiting {
		go func() {
			_, err := c.Submit(context.Background(), simSubmit(answered+i))
			errs <- err
		}()
	}
	eventually(t, "a full window at the SMSC", func() bool {
		return len(sim.Submissions()) == answered+window && c.Outstanding() == window
	})
	if n := sim.DropSessions(); n != 1 {
		t.Fatalf("dropped %d sessions, want 1", n)
	}
	var inDoubt, notSent int
	for range unanswered + waiting {
		err := <-errs
		switch {
		case err == nil:
			t.Errorf("a submit succeeded after the link dropped")
		case errors.Is(err, ucp.ErrInDoubt):
			inDoubt++
		case errors.Is(err, ucp.ErrClosed):
			notSent++
		default:
			t.Errorf("got %v, want ErrInDoubt or ErrClosed", err)
		}
		if err != nil && !errors.Is(err, ucp.ErrClosed) {
			t.Errorf("got %v, want it to match ErrClosed too", err)
		}
	}
	<-c.Done()
	subs := sim.Submissions()
	written := len(subs) - answered
	if inDoubt != written || written != unanswered {
		t.Errorf("got %d in doubt, %d received by the SMSC, want %d of each", inDoubt, written, unanswered)
	}
	if notSent != waiting {
		t.Errorf("got %d never-sent errors, want %d", notSent, waiting)
	}
	seen := make(map[string]int)
	for _, s := range subs {
		seen[s.AdC]++
		if seen[s.AdC] > 1 {
			t.Errorf("submit to %s resent", s.AdC)
		}
	}
}

// TestLateAckAfterTimeout: the ACK of a 51 comes after AckTimeout. The
// submit fails with ErrTimeout, is not resent on the live session, and its
// TRN is not used again before the late result has arrived. A proxy between
// the client and the simulator records the frames in causal order.
func TestLateAckAfterTimeout(t *testing.T) {
	sim := startSim(t)
	p := startProxy(t, sim.Addr())
	type lateResult struct {
		op ucp.Message
		r  ucp.Result
	}
	lates := make(chan lateResult, 4)
	c := dialAddr(t, p.addr(), ucp.Options{Window: 1, AckTimeout: 100 * time.Millisecond,
		OnLateResult: func(op ucp.Message, r ucp.Result) { lates <- lateResult{op, r} }})

	sim.SetFaults(smscsim.Faults{AckDelay: time.Second})
	late := simSubmit(0)
	_, err := c.Submit(t.Context(), late)
	if !errors.Is(err, ucp.ErrTimeout) || !ucp.Temporary(err) {
		t.Fatalf("got %v, want a temporary ErrTimeout", err)
	}
	reserved := p.lastOpTRN()

	// More than a full turn of the TRN space while the late ACK is due,
	// then more than a full turn after it arrived.
	sim.SetFaults(smscsim.Faults{})
	for i := range 3 * ucp.MaxWindow {
		if i == 3*ucp.MaxWindow/2 {
			eventually(t, "the late result", func() bool { return p.resultSeen(reserved) })
		}
		s := simSubmit(1 + i)
		res, err := c.Submit(t.Context(), s)
		if err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
		if res.Key.AdC != s.AdC {
			t.Fatalf("submit %d to %s got the result for %s", i, s.AdC, res.Key.AdC)
		}
	}
	if c.Err() != nil {
		t.Fatalf("session ended: %v", c.Err())
	}
	if n := submissionsTo(sim, late.AdC); n != 1 {
		t.Errorf("timed-out submit received %d times, want 1", n)
	}
	reused, after := p.reuse(reserved)
	if reused && !after {
		t.Errorf("TRN %02d reused before its late result arrived", reserved)
	}
	if !reused {
		t.Errorf("TRN %02d never used again after its late result", reserved)
	}
	// The caller learns the late ACK, with the key its DRs will carry.
	select {
	case lr := <-lates:
		k, ok := lr.r.Key()
		if lr.op != ucp.Message(late) || !lr.r.Ack || !ok || k.AdC != late.AdC || k.SCTS == "" {
			t.Errorf("late result %+v for %T, want the ACK of the timed-out submit with its key", lr.r, lr.op)
		}
	case <-time.After(5 * time.Second):
		t.Error("OnLateResult not called for the late ACK")
	}
	if len(lates) != 0 {
		t.Errorf("%d more late results, want none", len(lates))
	}
}

// TestNack04IsTemporary: the SMSC refuses with 04 (the usual throttling
// code): a temporary *NackError, the session stays up, nothing resent.
func TestNack04IsTemporary(t *testing.T) {
	sim := startSim(t)
	c := dialSim(t, sim, ucp.Options{Window: 10})
	sim.SetFaults(smscsim.Faults{NackSubmits: ucp.ECNotAllowed})
	s := simSubmit(0)
	_, err := c.Submit(t.Context(), s)
	var ne *ucp.NackError
	if !errors.As(err, &ne) {
		t.Fatalf("got %v, want a *NackError", err)
	}
	if ne.Code != ucp.ECNotAllowed || ne.OT != ucp.OTSubmit || !ne.Temporary() || !ucp.Temporary(err) {
		t.Errorf("got %+v (temporary %v), want a temporary NACK 04 to OT 51", ne, ne.Temporary())
	}
	if errors.Is(err, ucp.ErrInDoubt) {
		t.Errorf("a NACK is a definite answer, got %v", err)
	}
	sim.SetFaults(smscsim.Faults{})
	if _, err := c.Submit(t.Context(), simSubmit(1)); err != nil {
		t.Fatalf("session unusable after the NACK: %v", err)
	}
	if n := submissionsTo(sim, s.AdC); n != 1 {
		t.Errorf("NACKed submit received %d times, want 1", n)
	}
}

func dialAddr(t *testing.T, addr string, opts ucp.Options) *ucp.Client {
	t.Helper()
	opts.Login, opts.Password, opts.KeepAlive = simCode, simPassword, -1
	c, err := ucp.Dial(t.Context(), addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// frameProxy forwards one client connection to the SMSC and logs the
// header of every frame before forwarding it, so the log is in causal
// order across both directions.
type frameProxy struct {
	ln net.Listener

	mu  sync.Mutex
	log []proxyEvent
}

type proxyEvent struct {
	toSMSC bool
	h      ucp.Header
}

func startProxy(t *testing.T, target string) *frameProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &frameProxy{ln: ln}
	var wg sync.WaitGroup
	var conns []net.Conn
	var cmu sync.Mutex
	t.Cleanup(func() {
		ln.Close()
		cmu.Lock()
		for _, c := range conns {
			c.Close()
		}
		cmu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		client, err := ln.Accept()
		if err != nil {
			return
		}
		smsc, err := net.Dial("tcp", target)
		if err != nil {
			client.Close()
			return
		}
		cmu.Lock()
		conns = append(conns, client, smsc)
		cmu.Unlock()
		wg.Add(2)
		go func() { defer wg.Done(); p.pipe(client, smsc, true) }()
		go func() { defer wg.Done(); p.pipe(smsc, client, false) }()
	}()
	return p
}

func (p *frameProxy) addr() string { return p.ln.Addr().String() }

func (p *frameProxy) pipe(from, to net.Conn, toSMSC bool) {
	defer from.Close()
	defer to.Close()
	rd := ucp.NewReader(from, 0)
	for {
		fr, err := rd.ReadFrame()
		if err != nil {
			return
		}
		if h, err := ucp.ParseHeader(fr); err == nil {
			p.mu.Lock()
			p.log = append(p.log, proxyEvent{toSMSC: toSMSC, h: h})
			p.mu.Unlock()
		}
		if _, err := to.Write(fr); err != nil {
			return
		}
	}
}

func (p *frameProxy) events() []proxyEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.log)
}

// lastOpTRN is the TRN of the last 51 the client sent.
func (p *frameProxy) lastOpTRN() uint8 {
	ev := p.events()
	for i := len(ev) - 1; i >= 0; i-- {
		if e := ev[i]; e.toSMSC && e.h.Kind == ucp.KindOperation && e.h.OT == ucp.OTSubmit {
			return e.h.TRN
		}
	}
	return 0xff
}

func (p *frameProxy) resultSeen(trn uint8) bool {
	for _, e := range p.events() {
		if !e.toSMSC && e.h.Kind == ucp.KindResult && e.h.OT == ucp.OTSubmit && e.h.TRN == trn {
			return true
		}
	}
	return false
}

// reuse reports whether the client sent a second 51 with trn, and whether
// the first such reuse came after the result of the first use.
func (p *frameProxy) reuse(trn uint8) (reused, afterResult bool) {
	uses, results := 0, 0
	for _, e := range p.events() {
		if e.h.OT != ucp.OTSubmit || e.h.TRN != trn {
			continue
		}
		if !e.toSMSC && e.h.Kind == ucp.KindResult {
			results++
			continue
		}
		if e.toSMSC && e.h.Kind == ucp.KindOperation {
			uses++
			if uses == 2 {
				return true, results >= 1
			}
		}
	}
	return false, false
}
