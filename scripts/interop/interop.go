// Command interop drives the Kannel interop check of run.sh: it counts the
// DLR callbacks of smsbox (sink), sends messages through smsbox's sendsms
// (send) and waits for the simulator and the sink to agree (wait).
//
// It uses only the standard library so run.sh can `go run` it outside the
// workspace modules (GOWORK=off).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: interop sink|send|wait [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "sink":
		err = sink(os.Args[2:])
	case "send":
		err = send(os.Args[2:])
	case "wait":
		err = wait(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		os.Exit(1)
	}
}

// dlrCounts are the DLR callbacks received, by Kannel DLR type, and how
// many distinct messages got a final one (1 delivered, 2 failed).
type dlrCounts struct {
	ByType       map[string]int64 `json:"by_type"`
	Final        int64            `json:"final"`       // distinct ids with a final DLR
	FinalDupes   int64            `json:"final_dupes"` // final DLRs beyond the first per id
	Callbacks    int64            `json:"callbacks"`
	Intermediate int64            `json:"intermediate"` // buffered (4)
}

func sink(args []string) error {
	fs := flag.NewFlagSet("sink", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	fs.Parse(args)
	var mu sync.Mutex
	c := dlrCounts{ByType: map[string]int64{}}
	final := map[string]bool{}
	mux := http.NewServeMux()
	mux.HandleFunc("/dlr", func(w http.ResponseWriter, r *http.Request) {
		typ, id := r.FormValue("type"), r.FormValue("id")
		mu.Lock()
		c.Callbacks++
		c.ByType[typ]++
		switch typ {
		case "1", "2":
			if final[id] {
				c.FinalDupes++
			} else {
				final[id] = true
				c.Final++
			}
		case "4":
			c.Intermediate++
		}
		mu.Unlock()
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		json.NewEncoder(w).Encode(c)
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	return http.Serve(ln, mux)
}

func send(args []string) error {
	fs := flag.NewFlagSet("send", flag.ExitOnError)
	base := fs.String("url", "http://127.0.0.1:13013/cgi-bin/sendsms", "smsbox sendsms URL")
	user := fs.String("user", "tester", "sendsms-user")
	pass := fs.String("pass", "foobar", "its password")
	from := fs.String("from", "36000", "sender")
	n := fs.Int("n", 1000, "messages")
	par := fs.Int("parallel", 16, "requests in flight at most")
	dlr := fs.String("dlr-url", "http://127.0.0.1:0/dlr", "DLR sink URL")
	mask := fs.String("dlr-mask", "31", "Kannel dlr-mask")
	fs.Parse(args)

	var failed atomic.Int64
	var firstErr atomic.Value
	sem := make(chan struct{}, *par)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for i := range *n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			q := url.Values{
				"username": {*user}, "password": {*pass}, "from": {*from},
				// Distinct recipients spread the (AdC, SCTS) DR keys.
				"to":       {fmt.Sprintf("336%08d", 10000000+i)},
				"text":     {"interop " + strconv.Itoa(i)},
				"dlr-mask": {*mask},
				"dlr-url":  {*dlr + "?id=" + strconv.Itoa(i) + "&type=%d"},
			}
			resp, err := client.Get(*base + "?" + q.Encode())
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("sendsms %d: %s", resp.StatusCode, b)
				}
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%d of %d sendsms requests failed, first: %v", f, *n, firstErr.Load())
	}
	return nil
}

type simStats struct {
	Accounts map[string]struct {
		Sessions    int   `json:"sessions"`
		Logins      int64 `json:"logins"`
		Submits     int64 `json:"submits"`
		Accepted    int64 `json:"accepted"`
		Violations  int64 `json:"violations"`
		WindowDrops int64 `json:"window_drops"`
		DRs         int64 `json:"drs"`
		DRsAcked    int64 `json:"drs_acked"`
		DRsNacked   int64 `json:"drs_nacked"`
		DRResends   int64 `json:"dr_resends"`
		KeepAlives  int64 `json:"keep_alives"`
		MaxInFlight int   `json:"max_in_flight"`
	} `json:"accounts"`
}

func getJSON(u string, v any) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func wait(args []string) error {
	fs := flag.NewFlagSet("wait", flag.ExitOnError)
	stats := fs.String("stats", "http://127.0.0.1:7778/stats", "simulator /stats")
	count := fs.String("count", "http://127.0.0.1:0/count", "DLR sink /count")
	account := fs.String("account", "36000", "simulator account")
	n := fs.Int64("n", 1000, "messages expected")
	timeout := fs.Duration("timeout", 120*time.Second, "give up after")
	start := fs.Int64("start", time.Now().Unix(), "Unix time the run started, for elapsed")
	fs.Parse(args)

	deadline := time.Now().Add(*timeout)
	var st simStats
	var dc dlrCounts
	for {
		errS := getJSON(*stats, &st)
		errC := getJSON(*count, &dc)
		a := st.Accounts[*account]
		if errS == nil && errC == nil && a.Accepted >= *n && dc.Final >= *n {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	a := st.Accounts[*account]
	elapsed := time.Since(time.Unix(*start, 0)).Round(time.Second)
	fmt.Printf(`
== Kannel interop summary ==========================================
 messages sent via sendsms          %d
 OT 51 received by the simulator    %d
 OT 51 ACKed (accepted)             %d
 rate violations (NACK 04)          %d
 window drops                       %d
 max 51s in flight on a session     %d
 OT 53 generated / ACKed by Kannel  %d / %d (NACKed %d, resent %d)
 DLR callbacks to dlr-url           %d (by type %v)
 messages with a final DLR          %d (duplicates %d, buffered %d)
 logins (OT 60) / keep-alives (31)  %d / %d
 elapsed                            %s
====================================================================
`, *n, a.Submits, a.Accepted, a.Violations, a.WindowDrops, a.MaxInFlight,
		a.DRs, a.DRsAcked, a.DRsNacked, a.DRResends,
		dc.Callbacks, dc.ByType, dc.Final, dc.FinalDupes, dc.Intermediate,
		a.Logins, a.KeepAlives, elapsed)
	var errs []error
	if a.Accepted != *n {
		errs = append(errs, fmt.Errorf("accepted %d, want %d", a.Accepted, *n))
	}
	if dc.Final != *n {
		errs = append(errs, fmt.Errorf("final DLRs %d, want %d", dc.Final, *n))
	}
	if a.Violations != 0 || a.WindowDrops != 0 {
		errs = append(errs, fmt.Errorf("violations %d, window drops %d, want 0", a.Violations, a.WindowDrops))
	}
	if a.Logins == 0 {
		errs = append(errs, errors.New("no OT 60 login"))
	}
	if len(errs) > 0 {
		fmt.Println("RESULT: FAIL")
		return errors.Join(errs...)
	}
	fmt.Println("RESULT: PASS")
	return nil
}
