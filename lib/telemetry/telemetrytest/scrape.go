package telemetrytest

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
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

// Parse reads the Prometheus text format (the subset the OpenTelemetry
// exporter writes: no timestamps needed).
func Parse(text string) (*Scrape, error) {
	s := &Scrape{Text: text}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		smp, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %q: %w", line, err)
		}
		s.Samples = append(s.Samples, smp)
	}
	return s, sc.Err()
}

func parseLine(line string) (Sample, error) {
	smp := Sample{Labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return smp, fmt.Errorf("no value")
	}
	smp.Name = line[:i]
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, ", ")
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, `="`)
			if eq < 0 {
				return smp, fmt.Errorf("bad labels")
			}
			name := rest[:eq]
			rest = rest[eq+2:]
			var val strings.Builder
			j := 0
			for ; j < len(rest) && rest[j] != '"'; j++ {
				if rest[j] == '\\' && j+1 < len(rest) {
					j++
					switch rest[j] {
					case 'n':
						val.WriteByte('\n')
					default:
						val.WriteByte(rest[j])
					}
					continue
				}
				val.WriteByte(rest[j])
			}
			if j >= len(rest) {
				return smp, fmt.Errorf("unterminated label value")
			}
			smp.Labels[name] = val.String()
			rest = rest[j+1:]
		}
	}
	fields := strings.Fields(rest)
	if len(fields) < 1 {
		return smp, fmt.Errorf("no value")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return smp, err
	}
	smp.Value = v
	return smp, nil
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
