package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"pushsms.io/cmd/stack"
	"pushsms.io/lib/bus"
	"pushsms.io/lib/pgcluster"
	"pushsms.io/lib/rate"
	"pushsms.io/lib/telemetry"
	"pushsms.io/services/ingest"
)

// partnerID is the tenant the bench creates and drives.
const partnerID = "loadbench"

// simPassword protects nothing: every account is local to the run.
const simPassword = "loadbench"

// platform is the running system: each piece a process of its own, as in
// production, so that every figure (CPU, RSS) is one process's.
type platform struct {
	cfg   Config
	log   *slog.Logger
	dir   string
	bin   string
	procs *procs

	natsURL string
	natsDir string
	pgDir   string
	dbURL   string
	simHTTP string
	simUCP  string
	apiAddr string
	apiKey  string

	sim      *proc
	simArgs  []string
	nats     *proc
	natsArgs []string
	natsAddr string
	// natsProfile is nats-server's profiling address (its -profile port)
	// when cfg.Profile asks for profiles: the server is profiled with the
	// services.
	natsProfile string
	pgPort      int
	services    []*proc
	// specs are how each of services was started, index for index: a
	// chaos restart starts the same process again, same port and flags.
	specs []svcSpec
	bus   *bus.Bus
	pool  *pgxpool.Pool
}

// ourCodes are the platform's short codes; Kannel's are kannelCodes, other
// accounts of the same simulator, so that each system's figures are its own.
func ourCodes(n int) []string    { return codes(36000, n) }
func kannelCodes(n int) []string { return codes(38000, n) }

func codes(base, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.Itoa(base + i)
	}
	return out
}

// simRate is the simulator's account rate: the contracted one, or none.
func (c Config) simRate() int {
	if c.Unthrottled {
		return 0
	}
	return c.Rate
}

// pipelineRate is the short codes' rate at the throttle and the link: in
// unthrottled mode the highest a short code may have, so that the
// platform's own capacity is what is measured, not a contract.
func (c Config) pipelineRate() int {
	if c.Unthrottled {
		return rate.MaxRate
	}
	return c.Rate
}

// startSim starts the simulator with both systems' accounts.
func (p *platform) startSim(ctx context.Context) error {
	ucpPort, err := freePort()
	if err != nil {
		return err
	}
	httpPort, err := freePort()
	if err != nil {
		return err
	}
	var accounts []string
	for _, c := range append(ourCodes(p.cfg.ShortCodes), kannelCodes(p.cfg.ShortCodes)...) {
		accounts = append(accounts, fmt.Sprintf("%s:%s:%d:%d", c, simPassword, p.cfg.simRate(), p.cfg.Window))
	}
	p.simUCP, p.simHTTP = hostPort(ucpPort), hostPort(httpPort)
	p.simArgs = []string{
		"-addr", p.simUCP, "-http-addr", p.simHTTP, "-accounts", strings.Join(accounts, ","),
		"-timezone", "Europe/Paris", "-dr-delay", p.cfg.DRDelay.String(), "-log-format", "text", "-log-level", "warn",
		// The DRs still owed when the simulator stops survive its restart,
		// as an SMSC's do: a cut link must not lose a report.
		"-state-file", filepath.Join(p.dir, "smsc-sim.state"),
	}
	return p.runSim(ctx)
}

func (p *platform) runSim(ctx context.Context) (err error) {
	if p.sim, err = p.procs.start("smsc-sim", filepath.Join(p.bin, "smsc-sim"), p.simArgs, nil); err != nil {
		return err
	}
	return waitListening(ctx, p.sim, p.simHTTP, 30*time.Second)
}

// startNATS starts a JetStream server with file storage in dir/nats.
func (p *platform) startNATS(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	p.natsDir = filepath.Join(p.dir, "nats")
	p.natsAddr = hostPort(port)
	p.natsURL = "nats://" + p.natsAddr
	p.natsArgs = []string{"-js", "-sd", p.natsDir, "-a", "127.0.0.1", "-p", strconv.Itoa(port)}
	if p.cfg.Profile > 0 {
		prof, err := freePort()
		if err != nil {
			return err
		}
		p.natsProfile = hostPort(prof)
		p.natsArgs = append(p.natsArgs, "-profile", strconv.Itoa(prof))
	}
	return p.runNATS(ctx)
}

func (p *platform) runNATS(ctx context.Context) (err error) {
	if p.nats, err = p.procs.start("nats-server", filepath.Join(p.bin, "nats-server"), p.natsArgs, nil); err != nil {
		return err
	}
	return waitListening(ctx, p.nats, p.natsAddr, 30*time.Second)
}

// startPostgres starts a private cluster. pg_ctl daemonises the server, so
// it is not one of procs: stopPostgres stops it, and postmaster.pid names
// it for the figures.
func (p *platform) startPostgres(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	p.pgDir, p.pgPort = filepath.Join(p.dir, "pg"), port
	url, err := (&pgcluster.Cluster{DataDir: p.pgDir, Port: port}).Start(ctx)
	if err != nil {
		return fmt.Errorf("postgresql: %w", err)
	}
	p.dbURL = url
	return nil
}

func (p *platform) stopPostgres() error {
	if p.pgDir == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := pgcluster.Stop(ctx, p.pgDir)
	p.pgDir = ""
	if err != nil {
		return fmt.Errorf("stop postgresql: %w", err)
	}
	return nil
}

// postmasterPID reads the server's pid from its data directory.
func postmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("postmaster.pid: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0, fmt.Errorf("postmaster.pid: %w", err)
	}
	return pid, nil
}

// svcSpec is one service process as started: its name (with a replica
// number when there are several), binary, flags, environment and gRPC port.
type svcSpec struct {
	name string
	bin  string
	args []string
	env  []string
	port int
	// metrics is the address of its metrics and profiles (-profile: with
	// -pprof), or "".
	metrics string
}

// replicas of a service in this run: several where the service shares its
// work between replicas (docs/throttle.md "High availability", billing's
// and compliance's durable consumers), under chaos only, so that a kill -9
// leaves another replica working. smsc-link stays one process: its rate
// guard is per process (docs/smsc-link.md), two would each allow R; ingest
// stays one: the driver talks to one API address.
func (c Config) replicas(service string) int {
	if !c.Chaos {
		return 1
	}
	switch service {
	case "throttle", "compliance", "billing":
		return 2
	}
	return 1
}

// startServices starts the five services, consumers first (billing,
// smsc-link, throttle, compliance), ingest last, as the one-machine stack
// does: everything that listens is up before anything is accepted.
func (p *platform) startServices(ctx context.Context) error {
	codes := ourCodes(p.cfg.ShortCodes)
	var accounts, rates []string
	for _, c := range codes {
		accounts = append(accounts, c+":"+simPassword)
		rates = append(rates, fmt.Sprintf("%s=%d", c, p.cfg.pipelineRate()))
	}
	// No Prometheus endpoint: its default port would collide between the
	// five services, and the bench reads its figures elsewhere.
	common := []string{"-nats-url", p.natsURL, "-log-level", "warn", "-log-format", "text", "-metrics-addr", ""}
	billingPort, err := freePort()
	if err != nil {
		return err
	}
	apiPort, err := freePort()
	if err != nil {
		return err
	}
	linkArgs := []string{"-smsc-addr", p.simUCP, "-smsc-window", strconv.Itoa(p.cfg.Window),
		"-default-rate", strconv.Itoa(p.cfg.pipelineRate()), "-rates", strings.Join(rates, ",")}
	if p.cfg.Chaos {
		// A segment left in doubt by a crash is sent once more after this
		// (customer relationship, docs/smsc-link.md): 2 min by default,
		// shortened so that a chaos run settles within minutes.
		linkArgs = append(linkArgs, "-smsc-unknown-resend-after", p.cfg.ResendAfter.String())
	}
	list := []svcSpec{
		{name: "billing", port: billingPort, args: []string{"-database-url", p.dbURL}},
		// The accounts are a secret in production: from the environment.
		{name: "smsc-link", args: linkArgs, env: []string{"SMSC_LINK_SMSC_ACCOUNTS=" + strings.Join(accounts, ",")}},
		{name: "throttle", args: []string{"-default-rate", strconv.Itoa(p.cfg.pipelineRate()), "-rates", strings.Join(rates, ",")}},
		{name: "compliance", args: []string{"-database-url", p.dbURL}},
		{name: "ingest", port: apiPort, args: []string{"-database-url", p.dbURL, "-credit-addr", hostPort(billingPort)}},
	}
	for _, s := range list {
		n := p.cfg.replicas(s.name)
		for r := 1; r <= n; r++ {
			spec := s
			spec.bin = filepath.Join(p.bin, s.name)
			if n > 1 {
				spec.name = fmt.Sprintf("%s-%d", s.name, r)
				if r > 1 {
					spec.port = 0 // the first replica has the port others dial
				}
				if s.name == "throttle" {
					// The same id after a restart: the replica finds its
					// own leases in the bucket.
					spec.args = append(slices.Clone(s.args), "-replica-id", spec.name)
				}
			}
			if spec.port == 0 {
				if spec.port, err = freePort(); err != nil {
					return err
				}
			}
			spec.args = append(append([]string{"-grpc-addr", hostPort(spec.port)}, common...), spec.args...)
			if p.cfg.Profile > 0 {
				port, err := freePort()
				if err != nil {
					return err
				}
				spec.metrics = hostPort(port)
				spec.args = append(spec.args, "-metrics-addr", spec.metrics, "-pprof")
			}
			// The collector's target of deploy/k8s (the pacing services'),
			// unless the bench's own environment says otherwise.
			if os.Getenv("GOGC") == "" && slices.Contains(stack.PacingServices, s.name) {
				spec.env = append(slices.Clone(spec.env), "GOGC="+strconv.Itoa(stack.DeploymentGOGC))
			}
			pr, err := p.startService(ctx, spec)
			if err != nil {
				return err
			}
			p.services = append(p.services, pr)
			p.specs = append(p.specs, spec)
		}
	}
	p.apiAddr = hostPort(apiPort)
	return nil
}

// profile takes a CPU profile of every service over the next
// cfg.Profile, each into <work dir>/<service>.cpu.pprof, and returns a
// function that waits for them and tells where they are (nothing without
// -profile).
func (p *platform) profile(ctx context.Context) func() string {
	if p.cfg.Profile <= 0 {
		return func() string { return "" }
	}
	var wg sync.WaitGroup
	errs := make([]error, len(p.specs)+1)
	for i, s := range p.specs {
		wg.Go(func() {
			errs[i] = fetchProfile(ctx, s.metrics, p.cfg.Profile, filepath.Join(p.dir, s.name+".cpu.pprof"))
		})
	}
	if p.natsProfile != "" {
		wg.Go(func() {
			errs[len(p.specs)] = fetchProfile(ctx, p.natsProfile, p.cfg.Profile, filepath.Join(p.dir, "nats-server.cpu.pprof"))
		})
	}
	return func() string {
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return fmt.Sprintf("CPU profiles: %v", err)
		}
		return fmt.Sprintf("CPU profiles of the services and nats-server over %v of the run: %s/<process>.cpu.pprof", p.cfg.Profile, p.dir)
	}
}

// fetchProfile writes the CPU profile of the next d of the process serving
// addr's /debug/pprof (lib/service.HandleProfiles) to file.
func fetchProfile(ctx context.Context, addr string, d time.Duration, file string) error {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds()))
	return request(ctx, http.MethodGet, url, "", func(r io.Reader) error {
		f, err := os.Create(file)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}

// startService starts one service process and waits for its gRPC port:
// migrations run before it opens, so listening means ready.
func (p *platform) startService(ctx context.Context, s svcSpec) (*proc, error) {
	pr, err := p.procs.start(s.name, s.bin, s.args, s.env)
	if err != nil {
		return nil, err
	}
	if err := waitListening(ctx, pr, hostPort(s.port), 60*time.Second); err != nil {
		return nil, err
	}
	return pr, nil
}

// configure creates the partner with its short codes and writes their
// rates where the platform reads rates as data (bucket SHORT_CODES), the
// same figures as the services' -rates.
func (p *platform) configure(ctx context.Context) error {
	pool, err := pgxpool.New(ctx, p.dbURL)
	if err != nil {
		return fmt.Errorf("connect database: %w", err)
	}
	p.pool = pool
	codes := ourCodes(p.cfg.ShortCodes)
	if p.apiKey, err = ingest.CreatePartner(ctx, pool, partnerID, "Load bench", codes); err != nil {
		return fmt.Errorf("create partner: %w", err)
	}
	tel, err := telemetry.Setup(ctx, "loadbench", telemetry.Config{LogLevel: "error", LogFormat: "text", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	if p.bus, err = bus.Connect(ctx, bus.Config{URL: p.natsURL, Replicas: 1}, "loadbench", tel); err != nil {
		return fmt.Errorf("connect bus: %w", err)
	}
	for _, c := range codes {
		if err := rate.PutRate(ctx, p.bus, c, p.cfg.pipelineRate()); err != nil {
			return err
		}
	}
	// Every replica reads the bucket within a second.
	return sleep(ctx, 1500*time.Millisecond)
}

// simStats is the part of the simulator's GET /stats the bench reads.
type simStats struct {
	Accounts map[string]simAccount `json:"accounts"`
}

type simAccount struct {
	Sessions   int   `json:"sessions"`
	Submits    int64 `json:"submits"`
	Accepted   int64 `json:"accepted"`
	Violations int64 `json:"violations"`
	DRs        int64 `json:"drs"`
	PerSecond  []struct {
		Second     int64 `json:"second"`
		Submits    int64 `json:"submits"`
		Accepted   int64 `json:"accepted"`
		Violations int64 `json:"violations"`
	} `json:"per_second"`
}

// simSubmit is the part of GET /submits the bench reads: when each 51
// reached the simulator, for whom, and what became of it.
type simSubmit struct {
	Time    time.Time `json:"time"`
	Account string    `json:"account"`
	AdC     string    `json:"adc"`
	Outcome string    `json:"outcome"`
	// The part as sent (base64 in the JSON, compared, never decoded nor
	// printed): with the recipient it names the segment, for the chaos
	// run's duplicate count.
	UDH string `json:"udh,omitempty"`
	Msg string `json:"msg"`
}

// request sends an HTTP request (a JSON body, if any) and hands the body
// of a 200 answer to read (nil: the body is not wanted).
func request(ctx context.Context, method, url, body string, read func(io.Reader) error) error {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	if read == nil {
		return nil
	}
	if err := read(resp.Body); err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	return nil
}

func getJSON(ctx context.Context, url string, v any) error {
	return request(ctx, http.MethodGet, url, "", func(r io.Reader) error { return json.NewDecoder(r).Decode(v) })
}

func (p *platform) stats(ctx context.Context) (simStats, error) {
	var st simStats
	err := getJSON(ctx, "http://"+p.simHTTP+"/stats", &st)
	return st, err
}

// waitSessions waits until every account in codes has a session logged in.
func (p *platform) waitSessions(ctx context.Context, codes []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, err := p.stats(ctx)
		missing := 0
		for _, c := range codes {
			if st.Accounts[c].Sessions == 0 {
				missing++
			}
		}
		if err == nil && missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d accounts not logged in to the simulator after %v (last error: %v)", missing, len(codes), timeout, err)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// shortCodeFigures computes each account's figures from the simulator's
// per-second history: achieved is the mean accepted per steady second,
// the first and last seconds with traffic excluded (partial seconds), a
// second without traffic in between counting as 0.
func shortCodeFigures(st simStats, codes []string, ratePerCode int) []ShortCode {
	var out []ShortCode
	for _, c := range codes {
		a := st.Accounts[c]
		sc := ShortCode{Code: c, Rate: ratePerCode, Submits: a.Submits, Accepted: a.Accepted, Violations: a.Violations}
		byS := map[int64]int64{}
		first, last := int64(-1), int64(-1)
		for _, s := range a.PerSecond {
			sc.MaxSecond = max(sc.MaxSecond, s.Submits)
			byS[s.Second] = s.Accepted
			if first < 0 || s.Second < first {
				first = s.Second
			}
			last = max(last, s.Second)
		}
		if last-first >= 2 {
			var sum int64
			for t := first + 1; t < last; t++ {
				sum += byS[t]
			}
			sc.Achieved = float64(sum) / float64(last-first-1)
		}
		if ratePerCode > 0 {
			sc.Utilisation = sc.Achieved / float64(ratePerCode)
		}
		out = append(out, sc)
	}
	return out
}
