package billing_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/telemetry"
	"pushsms.io/services/billing"
)

// crashChildEnv carries "<nats url> <database url>" to TestCrashChild.
const crashChildEnv = "BILLING_CRASH_CHILD"

// TestCrashChild is the billing process of TestKill9DuringIngestion: the
// test binary run again, so that a SIGKILL kills billing alone.
func TestCrashChild(t *testing.T) {
	spec := os.Getenv(crashChildEnv)
	if spec == "" {
		t.Skip("the billing process of TestKill9DuringIngestion, run by it")
	}
	natsURL, dbURL, _ := strings.Cut(spec, " ")
	cfg := billing.DefaultConfig()
	cfg.Bus.URL, cfg.DB.URL = natsURL, dbURL
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.Telemetry = telemetry.Config{LogLevel: "warn", LogFormat: "text"}
	// Small batches: many transactions, so the kill lands in one; events
	// held by the dead process come back within AckWait.
	cfg.Batch, cfg.Workers, cfg.AckWait = 200, 2, 2*time.Second
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := billing.Run(ctx, cfg); err != nil {
		t.Fatal(err)
	}
}

// lockedBuffer collects a child's output while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// billingProcess runs TestCrashChild on e's bus and database.
func billingProcess(t *testing.T, e *env, name string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+e.srv.URL()+" "+e.db.URL)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, out.String())
		}
	})
	return cmd
}

// kill9 kills cmd with SIGKILL and waits for it.
func kill9(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("billing ended with %v before it was killed", err)
	}
}

func ledgerCount(ctx context.Context, e *env) (int, error) {
	var n int
	err := e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM billing.ledger`).Scan(&n)
	return n, err
}

// waitLedger waits until the ledger holds at least n rows.
func waitLedger(t *testing.T, e *env, n int) {
	t.Helper()
	bustest.Eventually(t, time.Minute, func() error {
		got, err := ledgerCount(context.Background(), e)
		if err != nil {
			return err
		}
		if got < n {
			return fmt.Errorf("ledger holds %d rows, waiting for %d", got, n)
		}
		return nil
	})
}

// Billing is killed with SIGKILL twice while it records the final reports
// (once while more are published), and restarted: the ledger ends equal to
// the segments reported, key by key, each once, and the aggregate to the
// ledger. Reports are published several times, under one Nats-Msg-Id and
// under others, as a restarting smsc-link does.
func TestKill9DuringIngestion(t *testing.T) {
	if testing.Short() {
		t.Skip("runs billing as a separate process: not in -short")
	}
	e := newEnv(t)
	ctx := context.Background()
	day := time.Date(2026, 11, 20, 6, 0, 0, 0, time.UTC)

	const messages = 3000 // 6000 segments
	want := map[string]billing.State{}
	var events []bus.Event
	for i := range messages {
		segs := i%3 + 1
		for seg := 1; seg <= segs; seg++ {
			st := billing.Delivered
			switch {
			case i%9 == 0:
				st = billing.Failed
			case i%13 == 0 && seg == segs:
				st = billing.Expired
			}
			want[fmt.Sprintf("m-%d/%d", i, seg)] = st
			r := finalReport(i, seg, st, day.Add(time.Duration(i)*time.Minute))
			subject := bus.ReportSubject(stateToken(r.GetState()), r.GetTenantId(), r.GetShortCode())
			id := fmt.Sprintf("%s/%d/%s", r.GetMessageId(), seg, st)
			events = append(events, bus.Event{Subject: subject, Msg: r, MsgID: id})
			if (i+seg)%5 == 0 {
				events = append(events, bus.Event{Subject: subject, Msg: r, MsgID: id})
			}
			if (i+seg)%7 == 0 {
				events = append(events, bus.Event{Subject: subject, Msg: r, MsgID: id + "/again"})
			}
		}
	}
	third := len(events) / 3
	if err := e.pub.PublishAll(ctx, events[:third]); err != nil {
		t.Fatal(err)
	}

	// First kill: in the middle of what was published.
	first := billingProcess(t, e, "billing 1")
	waitLedger(t, e, len(want)/8)
	kill9(t, first)
	inHand := ackPending(t, e)

	// Second kill: while reports keep coming.
	if err := e.pub.PublishAll(ctx, events[third:2*third]); err != nil {
		t.Fatal(err)
	}
	second := billingProcess(t, e, "billing 2")
	published := make(chan error, 1)
	go func() { published <- e.pub.PublishAll(ctx, events[2*third:]) }()
	waitLedger(t, e, len(want)/2)
	kill9(t, second)
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	got, err := ledgerCount(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if got >= len(want) {
		t.Fatalf("the ledger was complete (%d rows) at the second kill: not during ingestion", got)
	}
	if inHand == 0 {
		t.Fatal("no event was in hand at the first kill: not during ingestion")
	}
	t.Logf("%d events in hand at the first kill; %d of %d rows at the second", inHand, got, len(want))

	// The last one finishes and stops cleanly.
	last := billingProcess(t, e, "billing 3")
	stored := storedEvents(t, e.pub)
	e.idle(t, stored)
	if err := last.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := last.Wait(); err != nil {
		t.Fatalf("billing 3 after SIGTERM: %v", err)
	}

	rows, err := ledgerRows(ctx, e.db)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameStates(rows, want); err != nil {
		t.Error(err)
	}
	if err := aggregateMatchesLedger(ctx, e.db); err != nil {
		t.Error(err)
	}
	var wantDelivered, gotDelivered int64
	for _, st := range want {
		if st == billing.Delivered {
			wantDelivered++
		}
	}
	for _, c := range dailyCounts(t, e.db.Pool, day.AddDate(0, 0, -1), day.AddDate(0, 0, 5)) {
		if c.State == billing.Delivered {
			gotDelivered += c.Segments
		}
	}
	if gotDelivered != wantDelivered {
		t.Errorf("delivered segments in the daily counts: got %d, want %d", gotDelivered, wantDelivered)
	}
	// The kills left events unacknowledged: they were handed over again.
	if d := delivered(t, e); d <= stored {
		t.Errorf("the consumer was handed %d events for %d stored: no redelivery after the kills", d, stored)
	} else {
		t.Logf("%d events stored for %d segments, %d handed to billing", stored, len(want), d)
	}
}

func consumerInfo(t *testing.T, e *env) (ackPending int, delivered uint64) {
	t.Helper()
	c, err := e.pub.JS.Consumer(context.Background(), bus.StreamReports, billing.Name)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ci.NumAckPending, ci.Delivered.Consumer
}

func ackPending(t *testing.T, e *env) int {
	t.Helper()
	n, _ := consumerInfo(t, e)
	return n
}

func delivered(t *testing.T, e *env) uint64 {
	t.Helper()
	_, d := consumerInfo(t, e)
	return d
}
