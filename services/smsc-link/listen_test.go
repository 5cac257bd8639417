package smsclink_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/numplan"
	"pushsms.io/lib/smscsim"
	"pushsms.io/lib/ucp"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
	smsclink "pushsms.io/services/smsc-link"
)

const (
	smscLogin    = "smsc1"
	smscPassword = "fromsmsc"
)

// startListening runs the service with -listen-addr and a login the SMSC
// must use on it; the simulator sends no DR of its own during the test.
func startListening(t *testing.T) *env {
	t.Helper()
	e := start(t, smscsim.Config{DR: smscsim.DRConfig{Delay: time.Hour}}, func(c *smsclink.Config) {
		c.ListenAddr = "127.0.0.1:0"
		c.ListenAccounts = smsclink.AccountList{{ShortCode: shortCode, Login: smscLogin, Password: smscPassword}}
	})
	bustest.Eventually(t, wait, func() error {
		if st := health(t, e.svc.Addr()); st != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("health %v", st)
		}
		return nil
	})
	return e
}

// dialAsSMSC opens a connection to the listener as the SMSC does.
func (e *env) dialAsSMSC(password string) (*ucp.Client, error) {
	return ucp.Dial(e.t.Context(), e.svc.ListenAddr(), ucp.Options{Login: smscLogin, Password: password, KeepAlive: -1, Window: 10, AckTimeout: 5 * time.Second})
}

func send(t *testing.T, c *ucp.Client, op ucp.Message) {
	t.Helper()
	r, err := c.Send(t.Context(), op)
	if err != nil {
		t.Fatalf("send OT %s: %v", op.OpType(), err)
	}
	if !r.Ack {
		t.Fatalf("OT %s NACKed with %v", op.OpType(), r.Code)
	}
}

// mos returns the MOs on the stream with their Nats-Msg-Ids.
func (e *env) mos() ([]*eventsv1.MobileOriginated, []string) {
	e.t.Helper()
	var got []*eventsv1.MobileOriginated
	var ids []string
	for _, m := range e.streamMsgs(bus.StreamMO) {
		var mo eventsv1.MobileOriginated
		if err := proto.Unmarshal(m.Data, &mo); err != nil {
			e.t.Fatal(err)
		}
		got = append(got, &mo)
		ids = append(ids, m.Header.Get(bus.HeaderMsgID))
	}
	return got, ids
}

func (e *env) waitMOs(n int) ([]*eventsv1.MobileOriginated, []string) {
	e.t.Helper()
	var got []*eventsv1.MobileOriginated
	var ids []string
	bustest.Eventually(e.t, wait, func() error {
		got, ids = e.mos()
		if len(got) < n {
			return fmt.Errorf("%d MOs, want %d", len(got), n)
		}
		return nil
	})
	return got, ids
}

// TestListenerDRAndMO: the SMSC connects to the listener, logs in, and
// delivers a DR for a segment submitted earlier on the client session and
// an MO; both reach the bus, each ACKed.
func TestListenerDRAndMO(t *testing.T) {
	e := startListening(t)
	ev := submitEvent("0190a8e2-0000-7000-8000-400000000001", segments(t, "DR comes back elsewhere")[0])
	e.publish(ev)
	e.waitReports(ev.GetMessageId(), "submitted")
	subs := e.submissions()
	if len(subs) != 1 || subs[0].SCTS == "" {
		t.Fatalf("submits %+v", subs)
	}

	c, err := e.dialAsSMSC(smscPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	now := ucp.FormatSCTS(time.Now(), time.UTC)
	send(t, c, &ucp.Notification{AdC: shortCode, OAdC: "33612345678", SCTS: subs[0].SCTS, DSt: ucp.StatusDelivered, DSCTS: now})
	got := e.waitReports(ev.GetMessageId(), "delivered")
	checkReport(t, got["delivered"][0], partnerv1.SegmentState_SEGMENT_STATE_DELIVERED, true, "")

	mo := &ucp.Deliver{AdC: shortCode, OAdC: "33698765432", SCTS: now}
	mo.SetText("STOP")
	send(t, c, mo)
	mos, ids := e.waitMOs(1)
	n, _ := numplan.Parse("+33698765432")
	if want := "mo/" + shortCode + "/" + n.Hash() + "/" + now; len(mos) != 1 || mos[0].GetText() != "STOP" ||
		mos[0].GetOriginator() != "+33698765432" || mos[0].GetShortCode() != shortCode || ids[0] != want || mos[0].GetMoId() != want {
		t.Errorf("MOs %v (ids %v), want STOP from +33698765432 with id %s", mos, ids, want)
	}

	// An MO for a short code this service does not serve is NACKed.
	other := &ucp.Deliver{AdC: "39999", OAdC: "33698765432", SCTS: now}
	other.SetText("who")
	if r, err := c.Send(t.Context(), other); err != nil || r.Ack || r.Code != ucp.ECAdCInvalid {
		t.Errorf("MO to 39999: got %+v, %v; want NACK 06", r, err)
	}
	if st := e.svc.Stats(); st.ListenerLogins != 1 {
		t.Errorf("%d listener logins, want 1", st.ListenerLogins)
	}
}

// TestListenerRequiresLogin: with -listen-accounts a wrong password is
// refused with NACK 07, and a connection that does not log in first gets
// nothing through.
func TestListenerRequiresLogin(t *testing.T) {
	e := startListening(t)
	if _, err := e.dialAsSMSC("hunter2x"); !errors.Is(err, ucp.ErrAuth) {
		t.Errorf("wrong password: got %v, want ErrAuth", err)
	}
	c, err := ucp.Dial(t.Context(), e.svc.ListenAddr(), ucp.Options{KeepAlive: -1, AckTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mo := &ucp.Deliver{AdC: shortCode, OAdC: "33698765432", SCTS: ucp.FormatSCTS(time.Now(), time.UTC)}
	mo.SetText("no login")
	if r, err := c.Send(t.Context(), mo); err == nil && r.Ack {
		t.Error("an MO without login was ACKed")
	}
	bustest.Eventually(t, wait, func() error {
		if n := e.svc.Stats().ListenerRefused; n != 2 {
			return fmt.Errorf("%d connections refused, want 2", n)
		}
		return nil
	})
	if mos, _ := e.mos(); len(mos) != 0 {
		t.Errorf("MOs stored without login: %v", mos)
	}
	if strings.Contains(e.log.String(), "hunter2x") || strings.Contains(e.log.String(), smscPassword) {
		t.Errorf("the log holds a password:\n%s", e.log.String())
	}
}

// part is one part of a concatenated MO, 8-bit reference.
func part(originator string, ref, total, index int, text string, scts time.Time) *ucp.Deliver {
	d := &ucp.Deliver{AdC: shortCode, OAdC: originator, SCTS: ucp.FormatSCTS(scts, time.UTC)}
	d.XSer.UDH = []byte{5, 0, 3, byte(ref), byte(total), byte(index)}
	d.SetText(text)
	return d
}

// TestMOReassembly: parts delivered out of order, and two multi-part MOs
// interleaved (same reference, different originators; same originator,
// different references), each give one MobileOriginated with the whole
// text, once, even when the last part is delivered again.
func TestMOReassembly(t *testing.T) {
	e := startListening(t)
	c, err := e.dialAsSMSC(smscPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	base := time.Now().Truncate(time.Second).Add(-time.Minute)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	const a, b = "33698765432", "33698765433"

	// 3 parts, out of order: 3, 1, 2.
	for _, p := range []*ucp.Deliver{
		part(a, 7, 3, 3, "three.", at(2)),
		part(a, 7, 3, 1, "one, ", at(0)),
	} {
		send(t, c, p)
	}
	if mos, _ := e.mos(); len(mos) != 0 {
		t.Fatalf("MO published before its last part: %v", mos)
	}
	last := part(a, 7, 3, 2, "two, ", at(1))
	send(t, c, last)
	mos, ids := e.waitMOs(1)
	hashA, _ := numplan.Parse("+" + a)
	wantID := "mo/" + shortCode + "/" + hashA.Hash() + "/" + ucp.FormatSCTS(at(0), time.UTC) + "-7"
	if len(mos) != 1 || mos[0].GetText() != "one, two, three." || ids[0] != wantID || mos[0].GetOriginator() != "+"+a ||
		!mos[0].GetSmscTimestamp().AsTime().Equal(at(0)) {
		t.Fatalf("MOs %v (ids %v), want one \"one, two, three.\" with id %s", mos, ids, wantID)
	}
	// The last part again (our ACK lost): not published twice.
	send(t, c, last)

	// Interleaved: a/ref 9 and b/ref 9 and a/ref 10.
	for _, p := range []*ucp.Deliver{
		part(a, 9, 2, 1, "A9-1 ", at(10)),
		part(b, 9, 2, 2, "B9-2", at(12)),
		part(a, 10, 2, 2, "A10-2", at(14)),
		part(b, 9, 2, 1, "B9-1 ", at(11)),
		part(a, 9, 2, 2, "A9-2", at(13)),
		part(a, 10, 2, 1, "A10-1 ", at(13)),
	} {
		send(t, c, p)
	}
	mos, _ = e.waitMOs(4)
	want := map[string]bool{"one, two, three.": true, "A9-1 A9-2": true, "B9-1 B9-2": true, "A10-1 A10-2": true}
	if len(mos) != 4 {
		t.Errorf("%d MOs, want 4", len(mos))
	}
	for _, mo := range mos {
		if !want[mo.GetText()] {
			t.Errorf("unexpected or duplicate MO %q", mo.GetText())
		}
		delete(want, mo.GetText())
	}
	if st := e.svc.Stats(); st.MOsReassembled < 4 || st.MOParts != 10 {
		t.Errorf("stats: %d parts stored, %d reassembled; want 10 and 4 (5 with the repeated part)", st.MOParts, st.MOsReassembled)
	}
	// The parts of published MOs are gone from the bucket.
	kv, err := e.pub.JS.KeyValue(context.Background(), bus.BucketSubmitted)
	if err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, wait, func() error {
		keys, err := kv.ListKeysFiltered(context.Background(), "mo.>")
		if err != nil {
			return err
		}
		var left []string
		for k := range keys.Keys() {
			left = append(left, k)
		}
		// The repeated last part waits alone until it ages out.
		if len(left) != 1 {
			return fmt.Errorf("MO parts left: %v, want only the repeated one", left)
		}
		return nil
	})
}
