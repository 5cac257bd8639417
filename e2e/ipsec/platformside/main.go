// Command platformside is the platform half of `make test-ipsec`
// (scripts/test-ipsec.sh): run inside the platform's network namespace, it
// starts an embedded NATS JetStream, runs the real smsc-link binary against
// the SMSC's inner address (on the far side of the IPsec tunnel), waits for
// its UCP login, publishes one SegmentSubmit as throttle would, and waits
// for the segment's "submitted" (OT 51 ACKed) and "delivered" (OT 53)
// reports. It prints one JSON line of timings on stdout per message and
// exits non-zero when a step does not happen within -timeout. With -more it
// sends one more message per line read on stdin, on the same UCP session
// (the script rotates the tunnel's certificates in between).
//
// A program of its own rather than the one-machine stack (cmd/stack): the
// stack always runs its own simulator on loopback, and this test needs
// smsc-link, and only smsc-link, to reach an SMSC through the tunnel.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/embeddednats"
	"pushsms.io/lib/gsm"
	"pushsms.io/lib/telemetry"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

type config struct {
	smscLink  string
	smscAddr  string
	shortCode string
	password  string
	dir       string
	grpcAddr  string
	timeout   time.Duration
	// more: after the first message, send one more per line read on
	// stdin, until EOF (the script rotates the certificates in between).
	more bool
}

// result is one message's line of output, for the script's summary.
type result struct {
	MessageID   string  `json:"message_id"`
	LoginMS     float64 `json:"login_ms"`     // smsc-link start → health SERVING (OT 60 ACKed)
	SubmittedMS float64 `json:"submitted_ms"` // publish → "submitted" report (OT 51 ACKed)
	DeliveredMS float64 `json:"delivered_ms"` // publish → "delivered" report (OT 53)
}

func main() {
	var c config
	fs := flag.NewFlagSet("platformside", flag.ExitOnError)
	fs.StringVar(&c.smscLink, "smsc-link", "", "path of the smsc-link binary")
	fs.StringVar(&c.smscAddr, "smsc-addr", "198.19.2.1:5000", "the SMSC's UCP address (its inner tunnel address)")
	fs.StringVar(&c.shortCode, "short-code", "36000", "the large account's short code")
	fs.StringVar(&c.password, "password", "", "the large account's password (also read from UCP_PASSWORD)")
	fs.StringVar(&c.dir, "dir", "", "working directory (NATS files, smsc-link's log)")
	fs.StringVar(&c.grpcAddr, "grpc-addr", "127.0.0.1:9093", "smsc-link's gRPC (health) address")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "limit of the whole run")
	fs.BoolVar(&c.more, "more", false, "after the first message, send one more per line read on stdin, until EOF")
	_ = fs.Parse(os.Args[1:])
	if c.password == "" {
		c.password = os.Getenv("UCP_PASSWORD")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := run(ctx, c, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "platformside:", err)
		os.Exit(1)
	}
}

// run prints one JSON result line per message.
func run(ctx context.Context, c config, in io.Reader, out io.Writer) error {
	if c.smscLink == "" || c.dir == "" || c.password == "" {
		return errors.New("-smsc-link, -dir and -password (or UCP_PASSWORD) are required")
	}
	srv, err := embeddednats.Start(embeddednats.Config{Dir: filepath.Join(c.dir, "nats"), Host: "127.0.0.1", Port: -1})
	if err != nil {
		return err
	}
	defer srv.Stop()

	tel, err := telemetry.Setup(ctx, "test-ipsec", telemetry.Config{LogLevel: "error", LogFormat: "text"})
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	b, err := bus.Connect(ctx, bus.Config{URL: srv.URL(), Replicas: 1}, "test-ipsec", tel)
	if err != nil {
		return err
	}
	defer b.Close()

	// The reports are read from the start of the stream: nothing is
	// published before the submit, so every report seen is this run's.
	reports, err := b.JS.OrderedConsumer(ctx, "SMS_REPORTS", jetstream.OrderedConsumerConfig{})
	if err != nil {
		return fmt.Errorf("reports consumer: %w", err)
	}

	logFile, err := os.Create(filepath.Join(c.dir, "smsc-link.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(c.smscLink,
		"-nats-url", srv.URL(),
		"-smsc-addr", c.smscAddr,
		"-smsc-timezone", "UTC", // the simulator's
		"-grpc-addr", c.grpcAddr,
		"-metrics-addr", "",
		"-log-format", "json", "-log-level", "debug",
	)
	// The account is a secret: from the environment, never argv (ps shows it).
	cmd.Env = append(os.Environ(), "SMSC_ACCOUNTS="+c.shortCode+":"+c.password)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Killed with us: the script's cleanup must not leave an smsc-link
	// behind if it has to kill this process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start smsc-link: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	// SERVING means every account has a logged-in session: the OT 60 went
	// through the tunnel and was ACKed.
	if err := waitServing(ctx, c.grpcAddr, exited); err != nil {
		return fmt.Errorf("smsc-link login: %w (log: %s)", err, logFile.Name())
	}
	login := ms(time.Since(started))

	enc := json.NewEncoder(out)
	lines := bufio.NewScanner(in)
	for n := 1; ; n++ {
		res, err := send(ctx, b, reports, c.shortCode, n)
		if err != nil {
			return fmt.Errorf("message %d: %w (log: %s)", n, err, logFile.Name())
		}
		res.LoginMS = login
		if err := enc.Encode(res); err != nil {
			return err
		}
		if !c.more || !lines.Scan() {
			return nil
		}
	}
}

// send publishes one SegmentSubmit as throttle would and waits for its
// "submitted" (OT 51 ACKed) and "delivered" (OT 53) reports.
func send(ctx context.Context, b *bus.Bus, reports jetstream.Consumer, shortCode string, n int) (result, error) {
	res := result{MessageID: fmt.Sprintf("ipsec-%d-%d", time.Now().UnixNano(), n)}
	seg, err := segment("Hello through the IPsec tunnel")
	if err != nil {
		return res, err
	}
	now := time.Now()
	ev := &eventsv1.SegmentSubmit{
		MessageId:     res.MessageID,
		TenantId:      "ipsec-test",
		CampaignId:    "ipsec-test",
		ShortCode:     shortCode,
		Category:      partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING,
		RecipientE164: "+33612345678",
		Segment:       seg,
		ExpiresAt:     timestamppb.New(now.Add(time.Hour)),
		ReleasedAt:    timestamppb.New(now),
	}
	published := time.Now()
	if err := b.Publish(ctx, bus.SubmitSubject(shortCode), ev, res.MessageID+"/1"); err != nil {
		return res, err
	}
	for res.SubmittedMS == 0 || res.DeliveredMS == 0 {
		m, err := nextMsg(ctx, reports)
		if err != nil {
			return res, fmt.Errorf("waiting for reports (submitted %v, delivered %v): %w",
				res.SubmittedMS > 0, res.DeliveredMS > 0, err)
		}
		// sms.report.<state>.<tenant>.<short code>
		parts := strings.Split(m.Subject(), ".")
		if len(parts) < 3 {
			continue
		}
		var rep eventsv1.SegmentReport
		if err := proto.Unmarshal(m.Data(), &rep); err != nil {
			continue // a MessageRejected: not ours
		}
		if rep.GetMessageId() != res.MessageID {
			continue
		}
		switch parts[2] {
		case "submitted":
			res.SubmittedMS = ms(time.Since(published))
		case "delivered":
			res.DeliveredMS = ms(time.Since(published))
		case "nacked", "unknown", "failed", "expired":
			return res, fmt.Errorf("segment reported %s, want submitted then delivered", parts[2])
		}
	}
	return res, nil
}

func nextMsg(ctx context.Context, c jetstream.Consumer) (jetstream.Msg, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		batch, err := c.Fetch(1, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return nil, err
		}
		for m := range batch.Messages() {
			return m, nil
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
	}
}

// waitServing polls smsc-link's gRPC health until SERVING.
func waitServing(ctx context.Context, addr string, exited <-chan error) error {
	// smsc-link's port opens after its login: the default reconnect
	// backoff (1 s) would add up to a second to the measured login time.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.5, MaxDelay: 200 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		r, err := client.Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("smsc-link exited: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("not SERVING: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// segment encodes text as compliance would (one GSM 7-bit segment).
func segment(text string) (*eventsv1.Segment, error) {
	parts, _, err := gsm.Split(text, gsm.Policy{}, 0x42)
	if err != nil {
		return nil, fmt.Errorf("encode text: %w", err)
	}
	if len(parts) != 1 {
		return nil, fmt.Errorf("text is %d segments, want 1", len(parts))
	}
	p := parts[0]
	return &eventsv1.Segment{Index: int32(p.Index), Count: int32(p.Count), Encoding: partnerv1.Encoding_ENCODING_GSM7, UserData: p.UserData, Udh: p.UDH}, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
