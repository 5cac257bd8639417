package smsclink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/smscsim"
	"pushsms.io/lib/telemetry/telemetrytest"
	"pushsms.io/lib/ucp"
	smsclink "pushsms.io/services/smsc-link"
)

// The operator's view of a short code on /metrics, from real submits and
// DRs through the simulator: submits by the SMSC's answer, NACKs by code,
// timeouts, delivery reports by state (the delivery ratio), the DR
// latency; the service's consumer and gRPC series; and the dashboard and
// alert rules of deploy/observability naming only what is exported.
func TestMetricsCountSubmitsNacksAndReports(t *testing.T) {
	e := start(t, smscsim.Config{Seed: 7, DR: smscsim.DRConfig{Delivered: 0.5, Failed: 0.25, Expired: 0.25, Buffered: 0.5}}, nil)
	url := "http://" + e.svc.MetricsAddr() + "/metrics"
	value := func(s *telemetrytest.Scrape, name string, match ...string) float64 {
		v, _ := s.Value(name, append([]string{"short_code", shortCode}, match...)...)
		return v
	}
	bustest.Eventually(t, wait, func() error {
		if v := value(telemetrytest.ScrapeURL(t, url), "pushsms_short_code_link_up"); v != 1 {
			return fmt.Errorf("link up = %v", v)
		}
		return nil
	})

	// 8 accepted, with DRs of every kind.
	ids := publishN(t, e, "0007", 8)
	for _, id := range ids {
		e.waitReports(id, "submitted")
	}
	// A permanent NACK (06: AdC invalid): FAILED.
	e.sim.SetFaults(smscsim.Faults{NackSubmits: ucp.ECAdCInvalid})
	nacked := publishN(t, e, "0008", 1)[0]
	e.waitReports(nacked, "nacked")
	// A temporary NACK (04): redelivered until the SMSC takes it.
	e.sim.SetFaults(smscsim.Faults{NackSubmits: ucp.ECNotAllowed})
	retried := publishN(t, e, "0009", 1)[0]
	bustest.Eventually(t, wait, func() error {
		if v := value(telemetrytest.ScrapeURL(t, url), "pushsms_short_code_submits_total", "outcome", "nack_temporary", "code", "04"); v < 1 {
			return fmt.Errorf("NACK 04 count %v", v)
		}
		return nil
	})
	e.sim.SetFaults(smscsim.Faults{})
	e.waitReports(retried, "submitted")
	// No answer: UNKNOWN after the ACK timeout.
	e.sim.SetFaults(smscsim.Faults{DropSubmits: true})
	lost := publishN(t, e, "0010", 1)[0]
	e.waitReports(lost, "unknown")
	e.sim.SetFaults(smscsim.Faults{})

	// A gRPC call, as Kubernetes' probe makes.
	conn, err := grpc.NewClient(e.svc.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}

	// The counts agree with the reports stored, once the DRs are in.
	var s *telemetrytest.Scrape
	bustest.Eventually(t, wait, func() error {
		byState := map[string]float64{}
		for _, r := range e.reports() {
			byState[strings.Split(r.subject, ".")[2]]++
		}
		if final := byState["delivered"] + byState["failed"] + byState["expired"]; final != 9 {
			return fmt.Errorf("%v final DRs of 9 accepted", final)
		}
		s = telemetrytest.ScrapeURL(t, url)
		for _, st := range []string{"delivered", "buffered", "failed", "expired"} {
			if got := value(s, "pushsms_short_code_delivery_reports_total", "state", st); got != byState[st] {
				return fmt.Errorf("delivery reports %s: metric %v, stored %v", st, got, byState[st])
			}
		}
		if got := value(s, "pushsms_short_code_dr_latency_seconds_count"); got != byState["delivered"] {
			return fmt.Errorf("DR latency count %v, want the %v DELIVERED", got, byState["delivered"])
		}
		return nil
	})
	tests := []struct {
		name  string
		match []string
		want  float64
	}{
		{"pushsms_short_code_submits_total", []string{"outcome", "accepted"}, 9},
		{"pushsms_short_code_submits_total", []string{"outcome", "nack_permanent", "code", "06"}, 1},
		{"pushsms_short_code_submits_total", []string{"outcome", "timeout"}, 1},
		{"pushsms_short_code_submits_total", []string{"outcome", "not_sent"}, 0},
		{"pushsms_short_code_rate_contracted", nil, float64(e.cfg.DefaultRate)},
		{"pushsms_smsc_link_dr_unmatched_total", nil, 0},
	}
	for _, tt := range tests {
		match := tt.match
		if !strings.HasPrefix(tt.name, "pushsms_smsc_link_") {
			match = append([]string{"short_code", shortCode}, match...)
		}
		if got, ok := s.Value(tt.name, match...); !ok || got != tt.want {
			t.Errorf("%s%v = %v (present %v), want %v", tt.name, tt.match, got, ok, tt.want)
		}
	}
	if got := value(s, "pushsms_short_code_dr_latency_seconds_bucket", "le", "+Inf"); got != value(s, "pushsms_short_code_dr_latency_seconds_count") {
		t.Errorf("DR latency +Inf bucket %v, count %v", got, value(s, "pushsms_short_code_dr_latency_seconds_count"))
	}
	// The same SCTS-to-DR time on a loaded machine: well under a minute.
	if got := value(s, "pushsms_short_code_dr_latency_seconds_bucket", "le", "60"); got != value(s, "pushsms_short_code_dr_latency_seconds_count") {
		t.Errorf("DR latency: %v of %v within 60 s", got, value(s, "pushsms_short_code_dr_latency_seconds_count"))
	}

	// The service's consumer and gRPC API (lib/bus, lib/rpc).
	consumer := []string{"stream", bus.StreamSubmit, "consumer", smsclink.Name}
	if got, _ := s.Value("pushsms_consumer_events_total", append(consumer, "outcome", "ack")...); got != 11 {
		t.Errorf("consumer acks %v, want 11 (every segment, the NACKed and UNKNOWN ones included)", got)
	}
	if got, _ := s.Value("pushsms_consumer_events_total", append(consumer, "outcome", "nak")...); got < 1 {
		t.Errorf("consumer naks %v, want at least the NACK 04", got)
	}
	if _, ok := s.Value("pushsms_consumer_pending", consumer...); !ok {
		t.Errorf("no lag of the smsc-link durable")
	}
	if got, _ := s.Value("rpc_server_call_duration_seconds_count", "rpc_method", "grpc.health.v1.Health/Check", "rpc_response_status_code", "OK"); got < 1 {
		t.Errorf("health checks counted: %v", got)
	}
	if strings.Contains(s.Text, "612345678") {
		t.Errorf("/metrics holds the MSISDN:\n%s", s.Text)
	}

	checkReferencedNames(t, s, "../../deploy/observability/grafana/pushsms.json", "../../deploy/observability/prometheus/alerts.yaml")
}

// metricRef is a metric name in an expression, with the label matchers
// that follow it.
var metricRef = regexp.MustCompile(`\b((?:pushsms|rpc_server)_[a-z0-9_]+)\b(\{[^}]*\})?`)

var labelMatcher = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)

// checkReferencedNames fails t if a dashboard or rule file names a metric
// the scrape does not have, or filters one on a label it never carries: a
// panel that shows nothing, an alert that never fires.
func checkReferencedNames(t *testing.T, s *telemetrytest.Scrape, files ...string) {
	t.Helper()
	labels := map[string]map[string]bool{}
	for _, smp := range s.Samples {
		if labels[smp.Name] == nil {
			labels[smp.Name] = map[string]bool{}
		}
		for l := range smp.Labels {
			labels[smp.Name][l] = true
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".json") {
			var v map[string]any
			if err := json.Unmarshal(data, &v); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
		}
		refs := metricRef.FindAllStringSubmatch(string(data), -1)
		if len(refs) == 0 {
			t.Errorf("%s names no metric", f)
		}
		for _, ref := range refs {
			name, matchers := ref[1], ref[2]
			have, ok := labels[name]
			if !ok {
				t.Errorf("%s: %s is not exported; exported: %v", f, name, slices.Sorted(maps.Keys(labels)))
				continue
			}
			for _, m := range labelMatcher.FindAllStringSubmatch(matchers, -1) {
				if !have[m[1]] {
					t.Errorf("%s: %s has no label %s (has %v)", f, name, m[1], slices.Sorted(maps.Keys(have)))
				}
			}
		}
	}
}
