package ucp_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"pushsms.io/lib/ucp"
)

// fakeSMSC is a scripted peer on real TCP: the test decides what to answer
// and when. Logins are ACKed automatically unless loginCode is set.
type fakeSMSC struct {
	t         *testing.T
	ln        net.Listener
	frames    chan ucp.Frame
	loginCode ucp.ErrorCode
	accepted  chan struct{}

	mu   sync.Mutex
	conn net.Conn
}

func newFake(t *testing.T) *fakeSMSC {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSMSC{t: t, ln: ln, frames: make(chan ucp.Frame, 1000), accepted: make(chan struct{})}
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		if f.conn != nil {
			f.conn.Close()
		}
		f.mu.Unlock()
	})
	go f.serve()
	return f
}

func (f *fakeSMSC) serve() {
	conn, err := f.ln.Accept()
	if err != nil {
		return
	}
	f.mu.Lock()
	f.conn = conn
	f.mu.Unlock()
	close(f.accepted)
	rd := ucp.NewReader(conn, 0)
	for {
		raw, err := rd.ReadFrame()
		if err != nil {
			return
		}
		fr, err := ucp.Decode(raw)
		if err != nil {
			f.t.Errorf("client sent an invalid frame %q: %v", raw, err)
			continue
		}
		if fr.Kind() == ucp.KindOperation && fr.OT() == ucp.OTSession {
			r := &ucp.Result{OT: ucp.OTSession, Ack: f.loginCode == 0, Code: f.loginCode}
			f.send(fr.TRN, r)
			continue
		}
		f.frames <- fr
	}
}

func (f *fakeSMSC) send(trn uint8, m ucp.Message) {
	b, err := ucp.AppendFrame(nil, trn, m)
	if err != nil {
		f.t.Errorf("fake encode: %v", err)
		return
	}
	f.sendRaw(b)
}

func (f *fakeSMSC) sendRaw(b []byte) {
	select {
	case <-f.accepted:
	case <-time.After(5 * time.Second):
		f.t.Error("fake: no connection")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.conn.Write(b); err != nil {
		f.t.Errorf("fake write: %v", err)
	}
}

// next returns the next frame the client sent.
func (f *fakeSMSC) next() ucp.Frame {
	f.t.Helper()
	select {
	case fr := <-f.frames:
		return fr
	case <-time.After(5 * time.Second):
		f.t.Fatal("no frame from the client")
		return ucp.Frame{}
	}
}

// ack answers a submit the way an SMSC does, with SM = AdC:SCTS.
func (f *fakeSMSC) ack(fr ucp.Frame, scts string) {
	f.send(fr.TRN, &ucp.Result{OT: ucp.OTSubmit, Ack: true, SM: fr.Msg.(*ucp.Submit).AdC + ":" + scts})
}

func dialFake(t *testing.T, f *fakeSMSC, opts ucp.Options) *ucp.Client {
	t.Helper()
	if opts.KeepAlive == 0 {
		opts.KeepAlive = -1
	}
	c, err := ucp.Dial(t.Context(), f.ln.Addr().String(), opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func submitTo(adc string) *ucp.Submit {
	s := &ucp.Submit{AdC: adc, OAdC: "36000"}
	s.SetText("test")
	return s
}

type outcome struct {
	i   int
	res ucp.SubmitResult
	err error
}

func submitMany(t *testing.T, c *ucp.Client, n int) chan outcome {
	out := make(chan outcome, n)
	for i := range n {
		go func() {
			res, err := c.Submit(t.Context(), submitTo(fmt.Sprintf("3360%07d", i)))
			out <- outcome{i, res, err}
		}()
	}
	return out
}

// TestC22Window: with window 3 and 5 queued submits, exactly 3 are in
// flight; the 4th goes out only after a result.
func TestC22Window(t *testing.T) {
	f := newFake(t)
	c := dialFake(t, f, ucp.Options{Window: 3})
	out := submitMany(t, c, 5)
	var open []ucp.Frame
	for range 3 {
		open = append(open, f.next())
	}
	// Asserting an absence needs a bounded wait: a 4th operation now would
	// be one the SMSC silently drops.
	select {
	case fr := <-f.frames:
		t.Fatalf("4th operation (TRN %02d) sent with 3 outstanding and window 3", fr.TRN)
	case <-time.After(50 * time.Millisecond):
	}
	if got := c.Outstanding(); got != 3 {
		t.Errorf("Outstanding() = %d, want 3", got)
	}
	for sent := 3; len(open) > 0; {
		f.ack(open[0], "271126120000")
		open = open[1:]
		if sent < 5 {
			open = append(open, f.next())
			sent++
		}
		if len(open) > 3 {
			t.Fatalf("%d operations in flight", len(open))
		}
	}
	for range 5 {
		if o := <-out; o.err != nil {
			t.Errorf("submit %d: %v", o.i, o.err)
		}
	}
}

// TestC23TRNWraparound: 150 submits with delayed, shuffled results; TRNs run
// 00…99 then wrap, and a TRN is never reused while outstanding.
func TestC23TRNWraparound(t *testing.T) {
	f := newFake(t)
	c := dialFake(t, f, ucp.Options{Window: 100})
	const n = 150
	out := submitMany(t, c, n)
	outstanding := map[uint8]ucp.Frame{}
	var trns []uint8
	rng := rand.New(rand.NewPCG(1, 2))
	for received, answered := 0, 0; answered < n; {
		if received < n && len(outstanding) < 100 {
			fr := f.next()
			received++
			if _, dup := outstanding[fr.TRN]; dup {
				t.Fatalf("TRN %02d reused while outstanding", fr.TRN)
			}
			outstanding[fr.TRN] = fr
			trns = append(trns, fr.TRN)
			continue
		}
		// Answer a random third of what is open, in random order.
		keys := make([]uint8, 0, len(outstanding))
		for k := range outstanding {
			keys = append(keys, k)
		}
		rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		for _, k := range keys[:max(1, len(keys)/3)] {
			f.ack(outstanding[k], "271126120000")
			delete(outstanding, k)
			answered++
		}
	}
	for i := range 100 {
		if trns[i] != uint8(i) {
			t.Fatalf("TRN #%d = %02d, want %02d", i, trns[i], i)
		}
	}
	for range n {
		o := <-out
		if o.err != nil || o.res.Key.AdC != fmt.Sprintf("3360%07d", o.i) {
			t.Errorf("submit %d: %+v %v", o.i, o.res, o.err)
		}
	}
}

// TestC24OutOfOrderAndOppositeTRNs: our 51s hold TRN 01–03; the SMSC sends
// O/52 TRN 01, then R/51 for 03, 01, 02.
func TestC24OutOfOrderAndOppositeTRNs(t *testing.T) {
	f := newFake(t)
	mo := make(chan *ucp.Deliver, 1)
	c := dialFake(t, f, ucp.Options{Login: "36000", Password: "pw", Window: 3,
		Handler: func(_ context.Context, op ucp.Message) error { mo <- op.(*ucp.Deliver); return nil }})
	out := submitMany(t, c, 3)
	byTRN := map[uint8]ucp.Frame{}
	for range 3 {
		fr := f.next()
		byTRN[fr.TRN] = fr
	}
	for _, trn := range []uint8{1, 2, 3} {
		if _, ok := byTRN[trn]; !ok {
			t.Fatalf("got TRNs %v, want 01 02 03 (00 was the login)", byTRN)
		}
	}
	d := &ucp.Deliver{AdC: "36000", OAdC: "33612345678", SCTS: "271126120000"}
	d.SetText("hello")
	f.send(1, d)
	f.ack(byTRN[3], "271126120003")
	f.ack(byTRN[1], "271126120001")
	f.ack(byTRN[2], "271126120002")
	for range 3 {
		o := <-out
		if o.err != nil || o.res.Key.AdC != fmt.Sprintf("3360%07d", o.i) {
			t.Errorf("submit %d: %+v %v", o.i, o.res, o.err)
		}
	}
	if got := <-mo; got.SCTS != d.SCTS {
		t.Errorf("MO SCTS %s", got.SCTS)
	}
	fr := f.next()
	r, ok := fr.Msg.(*ucp.Result)
	if !ok || fr.TRN != 1 || r.OT != ucp.OTDeliver || !r.Ack {
		t.Errorf("answer to O/52: TRN %02d %#v, want R/52 A TRN 01", fr.TRN, fr.Msg)
	}
}

// TestC21ClientNacksCorruptOperation: an operation with a bad checksum gets
// N/01, one with a bad layout N/02, both with the same TRN and OT.
func TestC21ClientNacksCorruptOperation(t *testing.T) {
	f := newFake(t)
	dialFake(t, f, ucp.Options{Handler: func(context.Context, ucp.Message) error { return nil }})
	f.sendRaw(wire("07/00022/O/52/N/31//00"))
	body := "08/00022/O/52/X/31//"
	f.sendRaw(wire(body + checksum(body)))
	want := map[uint8]ucp.ErrorCode{7: ucp.ECChecksum, 8: ucp.ECSyntax}
	for range 2 {
		fr := f.next()
		r, ok := fr.Msg.(*ucp.Result)
		if !ok || r.Ack || r.OT != ucp.OTDeliver || r.Code != want[fr.TRN] {
			t.Errorf("TRN %02d: got %#v, want NACK %v", fr.TRN, fr.Msg, want[fr.TRN])
		}
	}
}

func TestIncomingOperationAnswers(t *testing.T) {
	tests := []struct {
		name    string
		handler ucp.Handler
		op      ucp.Message
		ack     bool
		code    ucp.ErrorCode
	}{
		{"handler ok", func(context.Context, ucp.Message) error { return nil }, notification(), true, 0},
		{"handler error", func(context.Context, ucp.Message) error { return errors.New("db down") }, notification(), false, ucp.ECNotAllowed},
		{"handler NACK code", func(context.Context, ucp.Message) error { return &ucp.NackError{Code: ucp.ECSyntax} }, notification(), false, ucp.ECSyntax},
		{"no handler", nil, notification(), false, ucp.ECNotAllowed},
		{"alert from SMSC", nil, &ucp.Alert{AdC: "36000", PID: "0539"}, true, 0},
		{"unsupported", nil, &ucp.Op5x{OT: ucp.OTModify, AdC: "1"}, false, ucp.ECNotSupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			dialFake(t, f, ucp.Options{Handler: tt.handler})
			f.send(42, tt.op)
			fr := f.next()
			r, ok := fr.Msg.(*ucp.Result)
			if !ok || fr.TRN != 42 || r.OT != tt.op.OpType() || r.Ack != tt.ack || r.Code != tt.code {
				t.Errorf("got TRN %02d %#v, want ack %v code %v", fr.TRN, fr.Msg, tt.ack, tt.code)
			}
		})
	}
}

func notification() *ucp.Notification {
	n := &ucp.Notification{AdC: "36000", OAdC: "33612345678", SCTS: "271126120000", DSt: ucp.StatusDelivered, DSCTS: "271126120001"}
	n.SetText("delivered")
	return n
}

// TestTimeoutKeepsTRNReserved: a timed-out TRN is not reused, so its late
// result cannot be mistaken for another submit's.
func TestTimeoutKeepsTRNReserved(t *testing.T) {
	f := newFake(t)
	c := dialFake(t, f, ucp.Options{Window: 1, AckTimeout: 50 * time.Millisecond})
	_, err := c.Submit(t.Context(), submitTo("33611111111"))
	if !errors.Is(err, ucp.ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
	first := f.next()
	out := make(chan outcome, 1)
	go func() {
		res, err := c.Submit(t.Context(), submitTo("33622222222"))
		out <- outcome{0, res, err}
	}()
	second := f.next()
	if second.TRN == first.TRN {
		t.Fatalf("TRN %02d reused after timeout", first.TRN)
	}
	f.ack(first, "271126120000") // late: must not answer the second submit
	f.ack(second, "271126120001")
	o := <-out
	if o.err != nil || o.res.Key != (ucp.Key{AdC: "33622222222", SCTS: "271126120001"}) {
		t.Errorf("second submit: %+v %v", o.res, o.err)
	}
}

func TestLoginNack(t *testing.T) {
	tests := []struct {
		code     ucp.ErrorCode
		wantAuth bool
	}{{ucp.ECAuthFailure, true}, {ucp.ECNotSupported, false}}
	for _, tt := range tests {
		f := newFake(t)
		f.loginCode = tt.code
		_, err := ucp.Dial(t.Context(), f.ln.Addr().String(), ucp.Options{Login: "36000", Password: "x"})
		var ne *ucp.NackError
		if err == nil || errors.Is(err, ucp.ErrAuth) != tt.wantAuth || !errors.As(err, &ne) || ne.Code != tt.code {
			t.Errorf("NACK %v: got %v, want ErrAuth %v", tt.code, err, tt.wantAuth)
		}
	}
}

func TestKeepAliveTimeoutEndsSession(t *testing.T) {
	f := newFake(t)
	c := dialFake(t, f, ucp.Options{Login: "36000", KeepAlive: 10 * time.Millisecond, AckTimeout: 30 * time.Millisecond})
	fr := f.next()
	if a, ok := fr.Msg.(*ucp.Alert); !ok || a.AdC != "36000" || a.PID != "0539" {
		t.Fatalf("got %#v, want a 31 keep-alive", fr.Msg)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session still up after an unanswered keep-alive")
	}
	if err := c.Err(); !errors.Is(err, ucp.ErrTimeout) {
		t.Errorf("Err() = %v, want ErrTimeout", err)
	}
	if _, err := c.Submit(t.Context(), submitTo("33611111111")); !errors.Is(err, ucp.ErrClosed) {
		t.Errorf("Submit after end: %v, want ErrClosed", err)
	}
}

func TestCloseFailsPending(t *testing.T) {
	f := newFake(t)
	c := dialFake(t, f, ucp.Options{})
	out := submitMany(t, c, 1)
	f.next()
	c.Close()
	if o := <-out; !errors.Is(o.err, ucp.ErrClosed) || !errors.Is(o.err, ucp.ErrInDoubt) {
		t.Errorf("got %v, want ErrClosed and ErrInDoubt (it was written)", o.err)
	}
	if _, err := c.Submit(t.Context(), submitTo("33611111111")); !errors.Is(err, ucp.ErrClosed) || errors.Is(err, ucp.ErrInDoubt) {
		t.Errorf("Submit after Close: %v, want ErrClosed without ErrInDoubt (never written)", err)
	}
}

func TestCancelAfterWriteIsInDoubt(t *testing.T) {
	f := newFake(t)
	c := dialFake(t, f, ucp.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Submit(ctx, submitTo("33611111111"))
		errc <- err
	}()
	f.next()
	cancel()
	if err := <-errc; !errors.Is(err, ucp.ErrInDoubt) || !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want ErrInDoubt and context.Canceled", err)
	}
}

func TestShutdownWaitsForResults(t *testing.T) {
	f := newFake(t)
	c := dialFake(t, f, ucp.Options{Window: 2})
	out := submitMany(t, c, 2)
	a, b := f.next(), f.next()
	done := make(chan error, 1)
	go func() { done <- c.Shutdown(t.Context()) }()
	// Poll until Shutdown has started draining: a new Send is refused.
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		_, err := c.Send(ctx, &ucp.Alert{AdC: "1", PID: "0539"})
		cancel()
		if errors.Is(err, ucp.ErrClosed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Send during Shutdown: %v", err)
		}
	}
	f.ack(a, "271126120000")
	f.ack(b, "271126120001")
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	for range 2 {
		if o := <-out; o.err != nil {
			t.Errorf("submit %d: %v", o.i, o.err)
		}
	}
}

func TestWindowBounds(t *testing.T) {
	f := newFake(t)
	if _, err := ucp.Dial(t.Context(), f.ln.Addr().String(), ucp.Options{Window: 101}); err == nil {
		t.Error("window 101 accepted")
	}
}

// TestServe: an SMSC connects to us and delivers a DR; we answer R/53 A.
func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan ucp.Key, 1)
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() {
		served <- ucp.Serve(ctx, ln, ucp.Options{Handler: func(_ context.Context, op ucp.Message) error {
			got <- op.(*ucp.Notification).Key()
			return nil
		}})
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b, _ := ucp.AppendFrame(nil, 5, notification())
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	raw, err := ucp.NewReader(conn, 0).ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	fr, err := ucp.Decode(raw)
	if r, ok := fr.Msg.(*ucp.Result); err != nil || !ok || !r.Ack || fr.TRN != 5 || r.OT != ucp.OTNotification {
		t.Errorf("got %#v, %v, want R/53 A TRN 05", fr.Msg, err)
	}
	if k := <-got; k != (ucp.Key{AdC: "33612345678", SCTS: "271126120000"}) {
		t.Errorf("handler got key %v", k)
	}
	cancel()
	if err := <-served; !errors.Is(err, context.Canceled) {
		t.Errorf("Serve returned %v, want context.Canceled", err)
	}
}

// TestSubmitResultReadTime: an accepted submit says when its ACK was read,
// which is after the SMSC sent it and no later than Submit returns: the
// rate guard counts the submit from then.
func TestSubmitResultReadTime(t *testing.T) {
	f := newFake(t)
	c := dialFake(t, f, ucp.Options{Window: 1})
	type out struct {
		res ucp.SubmitResult
		err error
		at  time.Time
	}
	done := make(chan out, 1)
	go func() {
		res, err := c.Submit(t.Context(), submitTo("0607080910"))
		done <- out{res, err, time.Now()}
	}()
	fr := f.next()
	sent := time.Now()
	f.ack(fr, "271126120000")
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	if o.res.At.Before(sent) || o.res.At.After(o.at) {
		t.Errorf("ACK read at %v: want between its sending %v and Submit's return %v", o.res.At, sent, o.at)
	}
}
