// Package jaeger checks, against a real Jaeger, what an engineer reading
// traces sees: the one-machine platform exports over OTLP to a Jaeger
// all-in-one (in-memory storage), a campaign is sent through the partner
// API, and the trace of one of its messages is found through Jaeger's query
// API with spans from the five services, rooted at ingest, and no phone
// number in clear.
//
// Jaeger is built from its Go module (tools/jaeger) by scripts/e2e-jaeger.sh
// (`make e2e-jaeger`), which passes its path in JAEGER_BIN; without it the
// test skips, so that `make test` needs no Jaeger.
package jaeger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"pushsms.io/cmd/stack"
	"pushsms.io/lib/pgtest"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// services are the five services, in the order a message goes through
// them: each one's spans descend from the one before's.
var services = []string{"ingest", "compliance", "throttle", "smsc-link", "billing"}

// campaign's recipients: national numbers of Orange mobiles, distinct
// enough that their digits cannot occur by chance in ids or timestamps.
var campaign = []string{"06 07 48 15 92", "06 08 62 37 41", "07 70 93 58 26"}

func TestCampaignMessageTraceInJaeger(t *testing.T) {
	bin := os.Getenv("JAEGER_BIN")
	if bin == "" {
		t.Skip("JAEGER_BIN is not set: `make e2e-jaeger` builds Jaeger from its Go module (tools/jaeger) and runs this test with it")
	}
	pgtest.NeedServer(t)

	j := startJaeger(t, bin)

	cfg := stack.DefaultConfig()
	cfg.Dir = dataDir(t)
	cfg.APIPort, cfg.NATSPort, cfg.PGPort, cfg.SMSCPort, cfg.SimHTTPPort, cfg.NATSMonitor, cfg.CompliancePort, cfg.BillingPort = 0, 0, 0, 0, 0, 0, 0, 0
	cfg.Rate = 50
	cfg.DRDelay = 50 * time.Millisecond
	// The stack samples every trace (trace ratio 1) once an exporter is set.
	cfg.OTLPEndpoint = "http://" + j.otlpAddr
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s, err := stack.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start platform: %v", err)
	}
	conn, err := grpc.NewClient(s.APIAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		s.Stop()
		t.Fatal(err)
	}
	// Stopping the stack flushes every service's span exporter.
	t.Cleanup(func() { conn.Close(); s.Stop() })
	client := partnerv1.NewMessagingServiceClient(conn)
	auth := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+s.APIKey())

	// A small campaign through the partner API.
	stream, err := client.SubmitCampaign(auth)
	if err != nil {
		t.Fatal(err)
	}
	spec := &partnerv1.CampaignSpec{ShortCode: cfg.ShortCodes[0], Brand: "Acme", TextTemplate: "Bonjour {{name}}, votre colis arrive demain.",
		Category: partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP, ClientReference: "jaeger-e2e"}
	if err := stream.Send(&partnerv1.SubmitCampaignRequest{Item: &partnerv1.SubmitCampaignRequest_Spec{Spec: spec}}); err != nil {
		t.Fatal(err)
	}
	var batch []*partnerv1.Recipient
	for i, r := range campaign {
		batch = append(batch, &partnerv1.Recipient{Msisdn: r, Variables: map[string]string{"name": "client " + strconv.Itoa(i)}})
	}
	if err := stream.Send(&partnerv1.SubmitCampaignRequest{Item: &partnerv1.SubmitCampaignRequest_Recipients{Recipients: &partnerv1.RecipientBatch{Recipients: batch}}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatalf("SubmitCampaign: %v", err)
	}
	camp := resp.GetCampaign()
	if int(camp.GetAccepted()) != len(campaign) {
		t.Fatalf("campaign accepted %d of %d recipients: %v", camp.GetAccepted(), len(campaign), resp.GetErrors())
	}
	begin := time.Now()

	// One of its messages, delivered.
	msgID := firstMessage(t, s.DatabaseURL(), camp.GetCampaignId())
	poll(t, 30*time.Second, func() error {
		r, err := client.GetMessage(auth, &partnerv1.GetMessageRequest{MessageId: msgID})
		if err != nil {
			return err
		}
		if st := r.GetMessage().GetState(); st != partnerv1.MessageState_MESSAGE_STATE_DELIVERED {
			return fmt.Errorf("message %s is %v, want DELIVERED", msgID, st)
		}
		return nil
	})
	delivered := time.Now()
	t.Logf("campaign message %s DELIVERED %v after submission", msgID, delivered.Sub(begin).Round(time.Millisecond))

	// Its trace, found through Jaeger's query API by the message id that
	// smsc-link's spans carry, holding spans from the five services in a
	// parent chain rooted at ingest. Each service exports on its own
	// schedule: until the last has, a span may miss its parent.
	var tr trace
	poll(t, 60*time.Second, func() error {
		var err error
		if tr, err = j.traceOf(msgID); err != nil {
			return err
		}
		if missing := tr.missing(services); len(missing) > 0 {
			return fmt.Errorf("trace %s of message %s has no span from %v (has %v)", tr.TraceID, msgID, missing, tr.spanNames())
		}
		return tr.chain(services)
	})
	t.Logf("trace %s of message %s complete in Jaeger %v after DELIVERED", tr.TraceID, msgID, time.Since(delivered).Round(time.Millisecond))
	for _, svc := range services {
		t.Logf("  %-10s %s", svc, strings.Join(tr.spanNames()[svc], ", "))
	}

	// The Jaeger UI lists the five services.
	var list struct{ Data []string }
	j.get(t, "/api/services", nil, &list)
	for _, svc := range services {
		if !slices.Contains(list.Data, svc) {
			t.Errorf("Jaeger's services %v lack %s", list.Data, svc)
		}
	}

	for _, s := range tr.Spans {
		if tr.service(s) == services[len(services)-1] {
			t.Logf("path of %s's span: %s", tr.service(s), strings.Join(tr.path(s), " → "))
		}
	}

	// No span attribute, event or process tag carries a recipient's number,
	// in E.164 or national form: the digits after the leading 0 are in both.
	// The whole trace as Jaeger serves it is searched, not what we decode.
	raw, err := j.raw("/api/traces/"+tr.TraceID, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range inClear(raw, campaign) {
		t.Errorf("trace %s carries a recipient's number in clear: %s", tr.TraceID, leak)
	}
	if len(raw) < 1000 || !bytes.Contains(raw, []byte(msgID)) {
		t.Errorf("the trace searched for numbers is not the message's: %.200s", raw)
	}
}

// inClear returns an excerpt of doc around each national number of
// numbers (spaces allowed) found in it, in E.164 (+33…, 33…) or national
// (0…) form: the digits after the leading 0 are in each.
func inClear(doc []byte, numbers []string) []string {
	var found []string
	for _, n := range numbers {
		digits := strings.ReplaceAll(n, " ", "")[1:]
		if i := bytes.Index(doc, []byte(digits)); i >= 0 {
			found = append(found, fmt.Sprintf("%s at …%s…", digits, doc[max(0, i-120):min(len(doc), i+40)]))
		}
	}
	return found
}

// firstMessage returns the id of the campaign's first message, from
// ingest's store: the partner API tells a campaign's messages only through
// their delivery reports.
func firstMessage(t *testing.T, dbURL, campaignID string) string {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var id string
	err = pool.QueryRow(context.Background(),
		`SELECT id::text FROM ingest.messages WHERE campaign_id = $1 ORDER BY accepted_at, id LIMIT 1`, campaignID).Scan(&id)
	if err != nil {
		t.Fatalf("campaign %s's first message: %v", campaignID, err)
	}
	return id
}

// jaegerProc is a running Jaeger all-in-one.
type jaegerProc struct {
	otlpAddr  string // OTLP/gRPC receiver
	queryAddr string // query HTTP API (and UI)
	http      *http.Client
}

// startJaeger starts bin on free loopback ports with in-memory storage and
// waits until its admin endpoint reports it ready.
func startJaeger(t *testing.T, bin string) *jaegerProc {
	t.Helper()
	ports := freePorts(t, 7)
	addr := func(i int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i])) }
	j := &jaegerProc{otlpAddr: addr(0), queryAddr: addr(2), http: &http.Client{Timeout: 5 * time.Second}}
	admin := addr(6)

	logPath := filepath.Join(t.TempDir(), "jaeger.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin,
		"--collector.otlp.enabled=true",
		"--collector.otlp.grpc.host-port="+addr(0),
		"--collector.otlp.http.host-port="+addr(1),
		"--query.http-server.host-port="+addr(2),
		"--query.grpc-server.host-port="+addr(3),
		"--collector.grpc-server.host-port="+addr(4),
		"--collector.http-server.host-port="+addr(5),
		"--admin.http.host-port="+admin,
		"--memory.max-traces=10000",
	)
	cmd.Env = append(os.Environ(),
		"SPAN_STORAGE_TYPE=memory",
		// Jaeger traces itself to OTEL_EXPORTER_OTLP_ENDPOINT (default
		// localhost:4317, maybe someone else's collector): not here.
		"OTEL_TRACES_SAMPLER=always_off",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://"+addr(0),
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
		if t.Failed() {
			logTail(t, logPath)
		}
	})

	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		// The admin endpoint answers 200 once every component is up.
		r, err := j.http.Get("http://" + admin + "/")
		if err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				t.Logf("jaeger ready: OTLP/gRPC %s, query %s", j.otlpAddr, j.queryAddr)
				return j
			}
		}
		select {
		case err := <-exited:
			exited <- err
			logTail(t, logPath)
			t.Fatalf("jaeger exited before it was ready: %v", err)
		case <-deadline:
			logTail(t, logPath)
			t.Fatalf("jaeger not ready within 60s: %v", err)
		case <-tick.C:
		}
	}
}

// get decodes the JSON answer of Jaeger's query API at path.
func (j *jaegerProc) get(t *testing.T, path string, q url.Values, v any) {
	t.Helper()
	if err := j.getErr(path, q, v); err != nil {
		t.Fatal(err)
	}
}

func (j *jaegerProc) getErr(path string, q url.Values, v any) error {
	body, err := j.raw(path, q)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// raw returns the body of Jaeger's answer at path.
func (j *jaegerProc) raw(path string, q url.Values) ([]byte, error) {
	u := "http://" + j.queryAddr + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	r, err := j.http.Get(u)
	if err != nil {
		return nil, err
	}
	defer r.Body.Close()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if r.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", u, r.Status, body)
	}
	return body, nil
}

// traceOf finds the one trace whose smsc-link spans carry messageID.
func (j *jaegerProc) traceOf(messageID string) (trace, error) {
	tags, _ := json.Marshal(map[string]string{"pushsms.message_id": messageID})
	var found struct{ Data []trace }
	err := j.getErr("/api/traces", url.Values{
		"service":  {"smsc-link"},
		"tags":     {string(tags)},
		"lookback": {"1h"},
		"limit":    {"20"},
	}, &found)
	if err != nil {
		return trace{}, err
	}
	switch len(found.Data) {
	case 0:
		return trace{}, fmt.Errorf("no trace in Jaeger has a smsc-link span with pushsms.message_id=%s yet", messageID)
	case 1:
		return found.Data[0], nil
	}
	ids := make([]string, len(found.Data))
	for i, tr := range found.Data {
		ids[i] = tr.TraceID
	}
	return trace{}, fmt.Errorf("message %s is in %d traces %v, want one", messageID, len(ids), ids)
}

// trace is a trace as Jaeger's query API returns it.
type trace struct {
	TraceID   string             `json:"traceID"`
	Spans     []span             `json:"spans"`
	Processes map[string]process `json:"processes"`
	Warnings  []string           `json:"warnings"`
}

type span struct {
	TraceID       string      `json:"traceID"`
	SpanID        string      `json:"spanID"`
	OperationName string      `json:"operationName"`
	References    []reference `json:"references"`
	StartTime     int64       `json:"startTime"`
	Duration      int64       `json:"duration"`
	Tags          []kv        `json:"tags"`
	Logs          []struct {
		Timestamp int64 `json:"timestamp"`
		Fields    []kv  `json:"fields"`
	} `json:"logs"`
	ProcessID string   `json:"processID"`
	Warnings  []string `json:"warnings"`
}

type reference struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

type process struct {
	ServiceName string `json:"serviceName"`
	Tags        []kv   `json:"tags"`
}

type kv struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

func (tr trace) service(s span) string { return tr.Processes[s.ProcessID].ServiceName }

// parent is the span's parent in the same trace, "" for a root. Links (to
// a campaign's request, to billing's batch) are FOLLOWS_FROM references,
// not parents.
func (s span) parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" && r.TraceID == s.TraceID {
			return r.SpanID
		}
	}
	return ""
}

// spanNames lists each service's span names in start order.
func (tr trace) spanNames() map[string][]string {
	spans := slices.Clone(tr.Spans)
	slices.SortFunc(spans, func(a, b span) int { return int(a.StartTime - b.StartTime) })
	names := map[string][]string{}
	for _, s := range spans {
		names[tr.service(s)] = append(names[tr.service(s)], s.OperationName)
	}
	return names
}

func (tr trace) missing(want []string) []string {
	names := tr.spanNames()
	var missing []string
	for _, w := range want {
		if len(names[w]) == 0 {
			missing = append(missing, w)
		}
	}
	return missing
}

// chain checks that the trace has one root, a span of order[0], that every
// other span's parent is in the trace, and that each service of order has a
// span descending from a span of the service before it.
func (tr trace) chain(order []string) error {
	byID := map[string]span{}
	for _, s := range tr.Spans {
		byID[s.SpanID] = s
	}
	var errs []error
	var roots []string
	for _, s := range tr.Spans {
		p := s.parent()
		if p == "" {
			roots = append(roots, tr.service(s)+" "+s.OperationName)
			continue
		}
		if _, ok := byID[p]; !ok {
			errs = append(errs, fmt.Errorf("span %q of %s has parent %s, not in trace %s", s.OperationName, tr.service(s), p, tr.TraceID))
		}
	}
	if len(roots) != 1 || !strings.HasPrefix(roots[0], order[0]+" ") {
		errs = append(errs, fmt.Errorf("trace %s has roots %q, want one span of %s", tr.TraceID, roots, order[0]))
	}
	for i := 1; i < len(order); i++ {
		ok := false
		for _, s := range tr.Spans {
			if tr.service(s) == order[i] && slices.Contains(tr.ancestors(s), order[i-1]) {
				ok = true
				break
			}
		}
		if !ok {
			errs = append(errs, fmt.Errorf("no span of %s in trace %s descends from a span of %s", order[i], tr.TraceID, order[i-1]))
		}
	}
	return errors.Join(errs...)
}

// ancestors returns the services of the spans above s, nearest first.
func (tr trace) ancestors(s span) []string {
	byID := map[string]span{}
	for _, s := range tr.Spans {
		byID[s.SpanID] = s
	}
	var up []string
	// Bounded by the trace's size: a reference cycle cannot loop.
	for p, n := s.parent(), 0; p != "" && n < len(tr.Spans); n++ {
		ps, ok := byID[p]
		if !ok {
			break
		}
		up = append(up, tr.service(ps))
		p = ps.parent()
	}
	return up
}

// path is "service: operation" of s's ancestors from the root, then of s.
func (tr trace) path(s span) []string {
	byID := map[string]span{}
	for _, s := range tr.Spans {
		byID[s.SpanID] = s
	}
	steps := []string{tr.service(s) + ": " + s.OperationName}
	for p, n := s.parent(), 0; p != "" && n < len(tr.Spans); n++ {
		ps, ok := byID[p]
		if !ok {
			steps = append(steps, "(missing "+p+")")
			break
		}
		steps = append(steps, tr.service(ps)+": "+ps.OperationName)
		p = ps.parent()
	}
	slices.Reverse(steps)
	return steps
}

// poll calls f every 200ms until it returns nil, failing the test with its
// last error after d.
func poll(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.After(d)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-deadline:
			t.Fatalf("after %v: %v", d, err)
		case <-tick.C:
		}
	}
}

// freePorts returns n distinct free loopback ports, held until all are
// found so that none is handed out twice.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// dataDir is a temp dir the postgres user can enter: as root, the private
// PostgreSQL runs as postgres, and t.TempDir's directories are 0700.
func dataDir(t *testing.T) string {
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func logTail(t *testing.T, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	t.Logf("jaeger log (last lines):\n%s", strings.Join(lines[max(0, len(lines)-30):], "\n"))
}
