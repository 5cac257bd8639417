package telemetrytest

import (
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Sample is one line of a Prometheus text exposition.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Scrape is what a GET of /metrics returned.
type Scrape struct {
	Samples []Sample
	Text    string
}

// ScrapeURL GETs url (a service's /metrics, as Prometheus would) and
// parses the text format.
func ScrapeURL(t testing.TB, url string) *Scrape {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s\n%s", url, resp.Status, body)
	}
	s, err := Parse(string(body))
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	return s
}

// Parse reads the Prometheus text format with Prometheus' own parser, and
// flattens it into samples as the text shows them: a histogram's series as
// <name>_bucket (label le), <name>_sum and <name>_count.
func Parse(text string) (*Scrape, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	s := &Scrape{Text: text}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			add := func(suffix string, v float64, extra ...string) {
				ls := maps.Clone(labels)
				for i := 0; i+1 < len(extra); i += 2 {
					ls[extra[i]] = extra[i+1]
				}
				s.Samples = append(s.Samples, Sample{Name: name + suffix, Labels: ls, Value: v})
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				add("", m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				add("", m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				add("", m.GetUntyped().GetValue())
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				inf := false
				for _, b := range h.GetBucket() {
					inf = inf || math.IsInf(b.GetUpperBound(), 1)
					add("_bucket", float64(b.GetCumulativeCount()), "le", strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64))
				}
				if !inf {
					add("_bucket", float64(h.GetSampleCount()), "le", "+Inf")
				}
				add("_sum", h.GetSampleSum())
				add("_count", float64(h.GetSampleCount()))
			case dto.MetricType_SUMMARY:
				add("_sum", m.GetSummary().GetSampleSum())
				add("_count", float64(m.GetSummary().GetSampleCount()))
			}
		}
	}
	return s, nil
}

// Find returns the samples named name whose labels include every
// "key", "value" pair of match.
func (s *Scrape) Find(name string, match ...string) []Sample {
	var out []Sample
next:
	for _, smp := range s.Samples {
		if smp.Name != name {
			continue
		}
		for i := 0; i+1 < len(match); i += 2 {
			if smp.Labels[match[i]] != match[i+1] {
				continue next
			}
		}
		out = append(out, smp)
	}
	return out
}

// Value is the value of the one sample named name matching match, and
// whether there is exactly one.
func (s *Scrape) Value(name string, match ...string) (float64, bool) {
	f := s.Find(name, match...)
	if len(f) != 1 {
		return 0, false
	}
	return f[0].Value, true
}

// Names lists the metric names exposed (histogram series as _bucket,
// _sum, _count), sorted.
func (s *Scrape) Names() []string {
	seen := map[string]bool{}
	for _, smp := range s.Samples {
		seen[smp.Name] = true
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
