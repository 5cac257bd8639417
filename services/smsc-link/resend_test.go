package smsclink_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/smscsim"
	"pushsms.io/lib/ucp"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
	smsclink "pushsms.io/services/smsc-link"
)

// leftInDoubt starts smsc-link with a 300 ms ACK timeout and resendAfter,
// and publishes a segment of category that the SMSC never answers: it is
// reported UNKNOWN, and the SMSC has its one submit.
func leftInDoubt(t *testing.T, id string, category partnerv1.TrafficCategory, resendAfter time.Duration) (*env, *eventsv1.SegmentSubmit) {
	t.Helper()
	e := start(t, smscsim.Config{}, func(c *smsclink.Config) {
		c.AckTimeout = 300 * time.Millisecond
		c.UnknownResendAfter = resendAfter
	})
	e.sim.SetFaults(smscsim.Faults{DropSubmits: true})
	ev := submitEvent(id, segments(t, "your code is 123456")[0])
	ev.Category = category
	e.publish(ev)
	e.waitReports(ev.GetMessageId(), "unknown")
	e.idle(1)
	return e, ev
}

// TestUnknownResendPolicy: after an ACK timeout, a CUSTOMER_RELATIONSHIP
// segment is sent once more on a session opened after the reconnection,
// never on the session of the timeout; any other category never is.
func TestUnknownResendPolicy(t *testing.T) {
	tests := []struct {
		name     string
		category partnerv1.TrafficCategory
		resent   bool
	}{
		{"customer relationship resent once", partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP, true},
		{"marketing never resent", partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ev := leftInDoubt(t, fmt.Sprintf("0190a8e2-0000-7000-8000-5000000000%02d", i), tt.category, 200*time.Millisecond)

			// Due, but the session of the timeout is still the only one:
			// nothing is sent on it (a bounded window, as in
			// TestBadPasswordBacksOff).
			stayed := func(want int, d time.Duration) {
				t.Helper()
				deadline := time.Now().Add(d)
				for time.Now().Before(deadline) {
					if n := len(e.submissions()); n != want {
						t.Fatalf("the SMSC got %d submits, want %d", n, want)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			stayed(1, time.Second)

			e.sim.SetFaults(smscsim.Faults{})
			e.sim.DropSessions()
			bustest.Eventually(t, wait, func() error {
				if n := e.sim.Stats().Accounts[shortCode].Logins; n < 2 {
					return fmt.Errorf("%d logins, want a reconnection", n)
				}
				return nil
			})
			if !tt.resent {
				stayed(1, time.Second)
				if n := e.svc.Stats().PossibleDuplicates; n != 0 {
					t.Errorf("%d possible duplicates, want 0", n)
				}
				return
			}
			got := e.waitReports(ev.GetMessageId(), "unknown", "submitted", "delivered")
			checkReport(t, got["delivered"][0], partnerv1.SegmentState_SEGMENT_STATE_DELIVERED, true, "")
			if n := e.svc.Stats().PossibleDuplicates; n != 1 {
				t.Errorf("%d possible duplicates, want 1", n)
			}
			// Once only: another reconnection sends nothing more.
			e.sim.DropSessions()
			bustest.Eventually(t, wait, func() error {
				if n := e.sim.Stats().Accounts[shortCode].Logins; n < 3 {
					return fmt.Errorf("%d logins, want 3", n)
				}
				return nil
			})
			stayed(2, time.Second)
		})
	}
}

// TestResendDueAgain: a resend that gets no result either (a link cut that
// caught it) or that the SMSC refuses for now (NACK 04) does not leave the
// segment UNKNOWN for good: it is sent again, and delivered once the SMSC
// takes it. One that never gets a result is sent at most maxResends (3)
// times more.
func TestResendDueAgain(t *testing.T) {
	reconnect := func(t *testing.T, e *env, logins int64) {
		t.Helper()
		e.sim.DropSessions()
		bustest.Eventually(t, wait, func() error {
			if n := e.sim.Stats().Accounts[shortCode].Logins; n < logins {
				return fmt.Errorf("%d logins, want %d", n, logins)
			}
			return nil
		})
	}
	sent := func(t *testing.T, e *env, want int) {
		t.Helper()
		bustest.Eventually(t, wait, func() error {
			if n := len(e.submissions()); n < want {
				return fmt.Errorf("the SMSC got %d submits, want %d", n, want)
			}
			return nil
		})
	}
	tests := []struct {
		name  string
		fault smscsim.Faults // what meets the first resend
		// cleared: the fault goes after the first resend, and a later
		// resend is delivered; otherwise it stays, and the resends stop
		// at the bound.
		cleared bool
		// resendAfter: a refused resend may go again on the same session,
		// so that case leaves the test time to clear the fault first.
		resendAfter time.Duration
	}{
		{"no result again, then delivered", smscsim.Faults{DropSubmits: true}, true, 200 * time.Millisecond},
		{"refused for now (04), then delivered", smscsim.Faults{NackSubmits: ucp.ECNotAllowed}, true, 2 * time.Second},
		{"never a result: three resends, no more", smscsim.Faults{DropSubmits: true}, false, 200 * time.Millisecond},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ev := leftInDoubt(t, fmt.Sprintf("0190a8e2-0000-7000-8000-7000000000%02d", i), partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP, tt.resendAfter)

			// The first resend, on the next session, meets the fault.
			e.sim.SetFaults(tt.fault)
			reconnect(t, e, 2)
			sent(t, e, 2)
			if !tt.cleared {
				for k := 3; k <= 1+3; k++ {
					reconnect(t, e, int64(k))
					sent(t, e, k)
				}
				// The bound: further sessions send nothing more.
				reconnect(t, e, 5)
				time.Sleep(time.Second)
				if n := len(e.submissions()); n != 1+3 {
					t.Errorf("the SMSC got %d submits, want 4 (the first and 3 resends)", n)
				}
				if n := e.svc.Stats().PossibleDuplicates; n != 3 {
					t.Errorf("%d possible duplicates, want 3", n)
				}
				return
			}
			e.sim.SetFaults(smscsim.Faults{})
			if tt.fault.DropSubmits {
				// In doubt: only a session opened after the resend's.
				reconnect(t, e, 3)
			}
			got := e.waitReports(ev.GetMessageId(), "unknown", "submitted", "delivered")
			checkReport(t, got["delivered"][0], partnerv1.SegmentState_SEGMENT_STATE_DELIVERED, true, "")
			if n := len(e.submissions()); n != 3 {
				t.Errorf("the SMSC got %d submits, want 3 (the first, the resend met by the fault, the one delivered)", n)
			}
		})
	}
}

// TestResendLateAck: a resend whose ACK comes after the timeout is matched
// as a first 51's is: the segment is delivered, and not sent again.
func TestResendLateAck(t *testing.T) {
	e, ev := leftInDoubt(t, "0190a8e2-0000-7000-8000-800000000001", partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP, 200*time.Millisecond)

	// The resend, on the next session, is ACKed 700 ms after it was sent:
	// 400 ms after its timeout.
	e.sim.SetFaults(smscsim.Faults{AckDelay: 700 * time.Millisecond})
	e.sim.DropSessions()
	// A late ACK reports nothing itself; its DR resolves the segment.
	got := e.waitReports(ev.GetMessageId(), "unknown", "delivered")
	checkReport(t, got["delivered"][0], partnerv1.SegmentState_SEGMENT_STATE_DELIVERED, true, "")
	if n := e.svc.Stats().LateAcks; n != 1 {
		t.Errorf("%d late ACKs, want 1", n)
	}
	// Taken late is taken: further sessions send nothing more.
	e.sim.SetFaults(smscsim.Faults{})
	logins := e.sim.Stats().Accounts[shortCode].Logins
	e.sim.DropSessions()
	bustest.Eventually(t, wait, func() error {
		if n := e.sim.Stats().Accounts[shortCode].Logins; n <= logins {
			return fmt.Errorf("%d logins, want a reconnection", n)
		}
		return nil
	})
	time.Sleep(time.Second)
	if n := len(e.submissions()); n != 2 {
		t.Errorf("the SMSC got %d submits, want 2 (the first, the resend ACKed late)", n)
	}
}

// A segment left in doubt by a process that stopped (killed, restarted) is
// resent on the next process's first session: session numbers grow
// across processes, not from 0 in each.
func TestUnknownResentAfterRestart(t *testing.T) {
	e, ev := leftInDoubt(t, "0190a8e2-0000-7000-8000-600000000001", partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP, 200*time.Millisecond)
	e.stop()

	e.sim.SetFaults(smscsim.Faults{})
	e.startService()
	got := e.waitReports(ev.GetMessageId(), "unknown", "submitted", "delivered")
	checkReport(t, got["delivered"][0], partnerv1.SegmentState_SEGMENT_STATE_DELIVERED, true, "")
	if n := len(e.submissions()); n != 2 {
		t.Errorf("the SMSC got %d submits, want 2 (the one in doubt, resent once)", n)
	}
}

// A segment whose attempt an earlier process began and never finished
// (killed while its 51 may have been on the wire) is reported UNKNOWN and,
// customer relationship, resent once on a session of this process: all of
// them are newer than the dead process's.
func TestInterruptedAttemptResentByNextProcess(t *testing.T) {
	e := start(t, smscsim.Config{}, func(c *smsclink.Config) {
		c.UnknownResendAfter = 200 * time.Millisecond
	})
	bustest.Eventually(t, wait, func() error {
		if e.svc.Stats().LiveSessions[shortCode] == 0 {
			return fmt.Errorf("no session")
		}
		return nil
	})
	e.stop()
	ev := submitEvent("0190a8e2-0000-7000-8000-600000000002", segments(t, "your code is 654321")[0])
	ev.Category = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP
	kv, err := e.pub.JS.KeyValue(context.Background(), bus.BucketSubmitted)
	if err != nil {
		t.Fatal(err)
	}
	began := fmt.Sprintf(`{"state":"sending","at":%q}`, time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano))
	if _, err := kv.Create(context.Background(), smsclink.AttemptKeyForTest(ev.GetMessageId(), 1), []byte(began)); err != nil {
		t.Fatal(err)
	}
	e.startService()
	e.publish(ev)
	got := e.waitReports(ev.GetMessageId(), "unknown", "submitted", "delivered")
	checkReport(t, got["delivered"][0], partnerv1.SegmentState_SEGMENT_STATE_DELIVERED, true, "")
	if n := len(e.submissions()); n != 1 {
		t.Errorf("the SMSC got %d submits, want 1 (the resend)", n)
	}
}
