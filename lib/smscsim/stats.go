package smscsim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
)

// Stats is a snapshot of the simulator's counters.
type Stats struct {
	Accounts      map[string]AccountStats `json:"accounts"` // by short code
	UnknownLogins int64                   `json:"unknown_logins"`
}

// AccountStats are one account's counters since start (or ResetRecords).
type AccountStats struct {
	Sessions      int   `json:"sessions"` // logged in now
	Logins        int64 `json:"logins"`
	LoginFailures int64 `json:"login_failures"`
	Submits       int64 `json:"submits"`      // every 51 inside the window
	Accepted      int64 `json:"accepted"`     // ACKed
	Violations    int64 `json:"violations"`   // NACKed for exceeding the rate
	WindowDrops   int64 `json:"window_drops"` // dropped silently: window exceeded
	DRs           int64 `json:"drs"`          // notifications generated
	DRsAcked      int64 `json:"drs_acked"`
	DRsNacked     int64 `json:"drs_nacked"`
	DRResends     int64 `json:"dr_resends"`
	MOs           int64 `json:"mos"`
	MOsAcked      int64 `json:"mos_acked"`
	MOsNacked     int64 `json:"mos_nacked"`
	MOResends     int64 `json:"mo_resends"`
	KeepAlives    int64 `json:"keep_alives"` // OT 31 received
	// MaxInFlight is the most 51s a session of the account had received
	// and not yet answered at once: how much of the window a client uses.
	MaxInFlight int `json:"max_in_flight"`
	// Fault injection (Faults): submits NACKed by NackSubmits or NackRate,
	// ACKs not sent (DropAckRate), garbage chunks sent (GarbageRate).
	FaultNacks  int64 `json:"fault_nacks"`
	AcksDropped int64 `json:"acks_dropped"`
	Garbage     int64 `json:"garbage"`
	// PerSecond holds the recent seconds that saw traffic, oldest first.
	PerSecond []SecondStats `json:"per_second"`
}

// SecondStats are the counters of one second (Unix time).
type SecondStats struct {
	Second     int64 `json:"second"`
	Submits    int64 `json:"submits"`
	Accepted   int64 `json:"accepted"`
	Violations int64 `json:"violations"`
	DRs        int64 `json:"drs"`
}

// Stats returns a snapshot of the counters.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Stats{Accounts: make(map[string]AccountStats, len(s.accounts)), UnknownLogins: s.unknown}
	for _, a := range s.accounts {
		st := a.stats
		st.Sessions = len(a.sessions)
		st.PerSecond = make([]SecondStats, 0, len(a.perSec))
		for _, sec := range a.perSec {
			st.PerSecond = append(st.PerSecond, *sec)
		}
		slices.SortFunc(st.PerSecond, func(x, y SecondStats) int { return int(x.Second - y.Second) })
		out.Accounts[a.ShortCode] = st
	}
	return out
}

// Handler serves the simulator's HTTP API (see the package documentation).
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
	mux.HandleFunc("GET /submits", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Submissions())
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = s.WriteMetrics(w)
	})
	mux.HandleFunc("GET /faults", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Faults())
	})
	mux.HandleFunc("PUT /faults", func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&f); err != nil {
			http.Error(w, "bad faults: "+err.Error(), http.StatusBadRequest)
			return
		}
		s.SetFaults(f)
		writeJSON(w, http.StatusOK, s.Faults())
	})
	mux.HandleFunc("POST /drop", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]int{"dropped": s.DropSessions()})
	})
	mux.HandleFunc("POST /mo", func(w http.ResponseWriter, r *http.Request) {
		var mo MO
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&mo); err != nil {
				http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
				return
			}
		} else {
			mo = MO{ShortCode: r.FormValue("short_code"), Originator: r.FormValue("originator"), Text: r.FormValue("text")}
		}
		if mo.ShortCode == "" || mo.Originator == "" {
			http.Error(w, "short_code and originator are required", http.StatusBadRequest)
			return
		}
		err := s.InjectMO(context.WithoutCancel(r.Context()), mo)
		switch {
		case errors.Is(err, ErrUnknownAccount):
			http.Error(w, err.Error(), http.StatusNotFound)
		case errors.Is(err, ErrNoSession):
			http.Error(w, err.Error(), http.StatusConflict)
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadRequest)
		default:
			writeJSON(w, http.StatusAccepted, map[string]string{"status": "queued"})
		}
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
