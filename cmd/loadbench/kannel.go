package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// kannel is Kannel 1.4.5 (bearerbox + smsbox) as a UCP client of the
// run's simulator, one smsc group (one EMI session) per short code, fed
// through smsbox's sendsms HTTP interface.
type kannel struct {
	p          *platform
	dir        string
	adminPort  int
	boxPort    int
	sendPort   int
	bearerbox  *proc
	smsbox     *proc
	sink       *dlrSink
	sinkServer *http.Server
	sinkURL    string
}

// dlrSink records the final delivery reports smsbox hands to the dlr-url,
// by message index, with the time each arrived.
type dlrSink struct {
	mu     sync.Mutex
	finals map[int][]time.Time
	count  int
}

func (s *dlrSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.FormValue("id"))
	typ := r.FormValue("type")
	if err == nil && (typ == "1" || typ == "2") { // delivered, failed: final
		now := time.Now()
		s.mu.Lock()
		s.finals[id] = append(s.finals[id], now)
		s.count++
		s.mu.Unlock()
	}
	io.WriteString(w, "ok")
}

func (s *dlrSink) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// kannelConfig is bearerbox's and smsbox's configuration. No store-file:
// Kannel keeps queued messages in memory only, its default, and what the
// side-by-side compares (docs/loadbench.md).
func kannelConfig(dir string, adminPort, boxPort, sendPort int, simUCP string, codes []string, rate, window int) (string, error) {
	host, port, err := net.SplitHostPort(simUCP)
	if err != nil {
		return "", fmt.Errorf("simulator address: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `group = core
admin-port = %d
admin-password = loadbench
admin-interface = 127.0.0.1
smsbox-port = %d
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
wdp-interface-name = 127.0.0.1
log-file = "%s"
log-level = 2
dlr-storage = internal
`, adminPort, boxPort, filepath.Join(dir, "bearerbox-core.log"))
	for _, c := range codes {
		// smsc-username + smsc-password make Kannel log in with OT 60.
		fmt.Fprintf(&b, `
group = smsc
smsc = emi
smsc-id = sc%s
allowed-smsc-id = sc%s
host = %s
port = %s
smsc-username = %s
smsc-password = %s
my-number = %s
keepalive = 30
flow-control = 0
window = %d
wait-ack = 60
wait-ack-expire = 0
idle-timeout = 0
`, c, c, host, port, c, simPassword, c, window)
		if rate > 0 {
			// Kannel's own pacing: at most rate submits a second.
			fmt.Fprintf(&b, "throughput = %d\n", rate)
		}
	}
	fmt.Fprintf(&b, `
group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = %d
sendsms-port = %d
sendsms-interface = 127.0.0.1
log-file = "%s"
log-level = 2

group = sendsms-user
username = loadbench
password = loadbench
max-messages = 10
concatenation = true

group = sms-service
keyword = default
text = "ok"
max-messages = 0
catch-all = true
`, boxPort, sendPort, filepath.Join(dir, "smsbox-core.log"))
	return b.String(), nil
}

// startKannel starts the DLR sink, bearerbox and smsbox, and waits until
// every smsc group is logged in to the simulator.
func (p *platform) startKannel(ctx context.Context) (*kannel, error) {
	for _, bin := range []string{"bearerbox", "smsbox"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("kannel: %s not found (apt-get install kannel): %w", bin, err)
		}
	}
	k := &kannel{p: p, dir: filepath.Join(p.dir, "kannel"), sink: &dlrSink{finals: map[int][]time.Time{}}}
	if err := os.MkdirAll(k.dir, 0o755); err != nil {
		return nil, fmt.Errorf("kannel dir: %w", err)
	}
	var err error
	for _, port := range []*int{&k.adminPort, &k.boxPort, &k.sendPort} {
		if *port, err = freePort(); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("dlr sink: %w", err)
	}
	k.sinkServer = &http.Server{Handler: k.sink, ReadHeaderTimeout: 5 * time.Second}
	go k.sinkServer.Serve(ln)

	conf, err := kannelConfig(k.dir, k.adminPort, k.boxPort, k.sendPort, p.simUCP, kannelCodes(p.cfg.ShortCodes), p.cfg.simRate(), p.cfg.Window)
	if err != nil {
		return k, err
	}
	confFile := filepath.Join(k.dir, "kannel.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		return k, fmt.Errorf("kannel.conf: %w", err)
	}
	if k.bearerbox, err = p.procs.start("bearerbox", "bearerbox", []string{confFile}, nil); err != nil {
		return k, err
	}
	if err := waitListening(ctx, k.bearerbox, hostPort(k.boxPort), 30*time.Second); err != nil {
		return k, err
	}
	if k.smsbox, err = p.procs.start("smsbox", "smsbox", []string{confFile}, nil); err != nil {
		return k, err
	}
	if err := waitListening(ctx, k.smsbox, hostPort(k.sendPort), 30*time.Second); err != nil {
		return k, err
	}
	k.sinkURL = "http://" + ln.Addr().String() + "/dlr"
	return k, p.waitSessions(ctx, kannelCodes(p.cfg.ShortCodes), 30*time.Second)
}

func (k *kannel) close() {
	if k.sinkServer != nil {
		_ = k.sinkServer.Close()
	}
}

// kannelRecipient is recipient i of Kannel's share, in the international
// form Kannel passes to the SMSC unchanged.
func kannelRecipient(m message) string { return "33" + strings.TrimPrefix(m.to, "0") }

// send hands every message to sendsms (drive: perSecond, parallel), and
// returns the time each request went out and the time sendsms answered
// 202. Kannel's answer may come after the 51 reached the SMSC: smsbox
// answers once bearerbox has queued the message, and with many requests in
// flight the answer waits its turn; the request's start is the earliest
// the message can count as accepted.
func (k *kannel) send(ctx context.Context, msgs []message, perSecond float64, parallel int) (sent, accepted []time.Time, err error) {
	codes := kannelCodes(k.p.cfg.ShortCodes)
	sent = make([]time.Time, len(msgs))
	accepted = make([]time.Time, len(msgs))
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: parallel}}
	base := fmt.Sprintf("http://%s/cgi-bin/sendsms", hostPort(k.sendPort))
	err = drive(ctx, len(msgs), perSecond, parallel, func(ctx context.Context, i int) error {
		m, code := msgs[i], codes[i%len(codes)]
		q := url.Values{
			"username": {"loadbench"}, "password": {"loadbench"}, "from": {code}, "smsc": {"sc" + code},
			"to": {kannelRecipient(m)}, "text": {m.text}, "coding": {"0"},
			// 3 = delivered + failed: final reports only.
			"dlr-mask": {"3"}, "dlr-url": {k.sinkURL + "?id=" + strconv.Itoa(i) + "&type=%d"},
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"?"+q.Encode(), nil)
		if err != nil {
			return err
		}
		sent[i] = time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
			return fmt.Errorf("sendsms %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
		accepted[i] = time.Now()
		return nil
	})
	if err != nil {
		return sent, accepted, fmt.Errorf("kannel sendsms: %w", err)
	}
	return sent, accepted, nil
}

// wait waits until the simulator accepted every segment and sent a DR for
// every message (Kannel asks for one per message: NRq on one part), and
// smsbox handed every DR to the sink; or until nothing moved for
// stall (Kannel gives up on a submit the SMSC NACKs: it never comes back);
// or until timeout. It reports whether every segment made it, and the
// simulator's submits, accepted submits and DRs and the sink's DLRs.
func (k *kannel) wait(ctx context.Context, segments, messages int64, stall, timeout time.Duration) (bool, [4]int64, error) {
	deadline := time.Now().Add(timeout)
	var last [4]int64
	moved := time.Now()
	for {
		st, err := k.p.stats(ctx)
		var now [4]int64
		for _, c := range kannelCodes(k.p.cfg.ShortCodes) {
			a := st.Accounts[c]
			now[0] += a.Submits
			now[1] += a.Accepted
			now[2] += a.DRs
		}
		now[3] = int64(k.sink.total())
		if err == nil && now[1] >= segments && now[2] >= messages && now[3] >= now[2] {
			return true, now, nil
		}
		if now != last {
			last, moved = now, time.Now()
		}
		if time.Now().After(deadline) || (err == nil && time.Since(moved) > stall && now[3] >= now[2]) {
			return false, now, err
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return false, now, err
		}
	}
}

// collect fills sys with Kannel's figures: the acceptance rate from
// sendsms's answers, latencies from the requests' start, submits from the
// simulator, a message's DR when smsbox called the sink.
func (k *kannel) collect(ctx context.Context, sys *System, start time.Time, msgs []message, sentAt, acceptedAt []time.Time) error {
	byHash := map[string]time.Time{}
	var accTS []time.Time
	for i, m := range msgs {
		if acceptedAt[i].IsZero() {
			continue
		}
		h, err := e164Hash("+" + kannelRecipient(m))
		if err != nil {
			return err
		}
		if k.p.cfg.warm(start, sentAt[i]) {
			byHash[h] = sentAt[i]
		}
		for range m.segments {
			accTS = append(accTS, acceptedAt[i])
		}
	}
	sys.Accepted = acceptance(start, accTS)
	subTS, toSubmit, err := k.p.submitTimes(ctx, kannelCodes(k.p.cfg.ShortCodes), byHash)
	if err != nil {
		return err
	}
	sys.Submitted, sys.AcceptToSubmit = throughput(subTS), percentiles(toSubmit)

	k.sink.mu.Lock()
	defer k.sink.mu.Unlock()
	var drTS []time.Time
	var toDR []time.Duration
	for i, ts := range k.sink.finals {
		for _, t := range ts {
			drTS = append(drTS, t)
			if i >= 0 && i < len(sentAt) && !sentAt[i].IsZero() && k.p.cfg.warm(start, sentAt[i]) {
				toDR = append(toDR, t.Sub(sentAt[i]))
			}
		}
	}
	sys.DRs, sys.AcceptToDR = throughput(drTS), percentiles(toDR)
	return nil
}
