package jaeger

import (
	"strings"
	"testing"
)

// The trace checker of TestCampaignMessageTraceInJaeger rejects the traces
// an engineer could not follow; it runs without Jaeger.
func TestChain(t *testing.T) {
	// sp is a span of service (process id = service name) with parent
	// (empty: a root) and a link, as Jaeger's JSON has them.
	sp := func(id, service, op, parent, link string) span {
		s := span{TraceID: "t1", SpanID: id, OperationName: op, ProcessID: service}
		if parent != "" {
			s.References = append(s.References, reference{RefType: "CHILD_OF", TraceID: "t1", SpanID: parent})
		}
		if link != "" {
			s.References = append(s.References, reference{RefType: "FOLLOWS_FROM", TraceID: "t0", SpanID: link})
		}
		return s
	}
	mk := func(spans ...span) trace {
		tr := trace{TraceID: "t1", Spans: spans, Processes: map[string]process{}}
		for _, s := range spans {
			tr.Processes[s.ProcessID] = process{ServiceName: s.ProcessID}
		}
		return tr
	}
	// What the platform produces (names from a run against Jaeger).
	good := []span{
		sp("a", "ingest", "accept campaign message", "", "campaign-call"),
		sp("b", "compliance", "clear campaign message", "a", "batch"),
		sp("c", "compliance", "send sms.cleared", "b", ""),
		sp("d", "throttle", "process sms.cleared", "c", ""),
		sp("e", "throttle", "send sms.submit", "d", ""),
		sp("f", "smsc-link", "process sms.submit", "e", ""),
		sp("g", "smsc-link", "smsc submit", "f", ""),
		sp("h", "smsc-link", "smsc delivery report", "g", ""),
		sp("i", "smsc-link", "send sms.report.delivered", "h", ""),
		sp("j", "billing", "process sms.report.delivered", "i", "batch"),
	}
	with := func(i int, s span) []span {
		out := append([]span(nil), good...)
		out[i] = s
		return out
	}
	for _, tc := range []struct {
		name  string
		spans []span
		want  string // in the error; "" for none
	}{
		{"one SMS, five services in order", good, ""},
		{"billing's span in the batch's trace only: a second root",
			with(9, sp("j", "billing", "process sms.report.delivered", "", "batch")), "roots"},
		{"a parent that never reached Jaeger",
			with(5, sp("f", "smsc-link", "process sms.submit", "lost", "")), "not in trace"},
		{"rooted at compliance",
			with(0, sp("a", "compliance", "clear campaign message", "", "batch")), "want one span of ingest"},
		{"the DR's report not under the submit: billing hangs off throttle",
			with(9, sp("j", "billing", "process sms.report.delivered", "e", "")), "no span of billing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := mk(tc.spans...).chain(services)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error about %q", err, tc.want)
			}
		})
	}
}

// The number check finds a recipient in any of its written forms, and
// not in its masked form.
func TestInClear(t *testing.T) {
	numbers := []string{"06 07 48 15 92"}
	for _, tc := range []struct {
		doc  string
		leak bool
	}{
		{`{"key":"pushsms.recipient","value":"+33607481592"}`, true},
		{`{"key":"ucp.adc","value":"0033607481592"}`, true},
		{`{"key":"msisdn","value":"0607481592"}`, true},
		{`{"key":"pushsms.recipient_masked","value":"+33 6 07 ** ** 92"}`, false},
		{`{"key":"pushsms.message_id","value":"01a21f95-ddf1-76c9-87f4-a5d7bd980ed3"}`, false},
	} {
		if got := inClear([]byte(tc.doc), numbers); (len(got) > 0) != tc.leak {
			t.Errorf("inClear(%s) = %q, want a leak: %v", tc.doc, got, tc.leak)
		}
	}
}
