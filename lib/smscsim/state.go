package smscsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"pushsms.io/lib/ucp"
)

// saveDelay debounces writes of the state file: a burst of submits and
// ACKs costs one write.
const saveDelay = 200 * time.Millisecond

// sctsKeep is how far back the last SCTS of a recipient is kept in the
// state file. A restarted simulator hands out the current second at the
// earliest, so only recipients whose last SCTS is that recent (or bumped
// into the future by a burst) could collide.
const sctsKeep = 2 * time.Second

// state is the content of Config.StateFile. It holds recipients' numbers
// in clear: it is a simulator's file, with test and development data only.
type state struct {
	Version int             `json:"version"`
	SavedAt time.Time       `json:"saved_at"`
	Pending []pendingOp     `json:"pending"`
	SCTS    []recipientSCTS `json:"last_scts"`
}

// pendingOp is one 52 or 53 not yet ACKed by a client.
type pendingOp struct {
	Account string `json:"account"` // short code
	// Frame is the operation as on the wire, without STX and ETX.
	Frame string `json:"frame"`
	// Due is when a scheduled DR is to be sent; zero once it was.
	Due time.Time `json:"due,omitzero"`
}

type recipientSCTS struct {
	AdC  string    `json:"adc"`
	SCTS time.Time `json:"scts"`
}

const stateVersion = 1

// changedLocked schedules a write of the state file. Called with s.mu held.
func (s *Sim) changedLocked() {
	if s.cfg.StateFile == "" || s.saveTimer != nil || s.closed {
		return
	}
	s.saveTimer = time.AfterFunc(saveDelay, func() {
		s.mu.Lock()
		s.saveTimer = nil
		s.mu.Unlock()
		if err := s.save(); err != nil {
			s.log.Warn("smscsim state not saved", "err", err)
		}
	})
}

// save writes the state file atomically (temporary file, then rename).
func (s *Sim) save() error {
	if s.cfg.StateFile == "" {
		return nil
	}
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	st, err := s.snapshot()
	if err != nil {
		return err
	}
	// Compact: the file is rewritten every saveDelay under load, on the
	// same cores as what the simulator serves; indenting it cost more than
	// the rest of the save. load reads either form.
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("smscsim: state: %w", err)
	}
	dir := filepath.Dir(s.cfg.StateFile)
	tmp, err := os.CreateTemp(dir, filepath.Base(s.cfg.StateFile)+".*.tmp")
	if err != nil {
		return fmt.Errorf("smscsim: state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("smscsim: state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("smscsim: state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("smscsim: state: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.cfg.StateFile); err != nil {
		return fmt.Errorf("smscsim: state: %w", err)
	}
	return nil
}

func (s *Sim) snapshot() (state, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	st := state{Version: stateVersion, SavedAt: now, Pending: make([]pendingOp, 0, len(s.pending))}
	var buf []byte
	for op := range s.pending {
		if op.frame == "" {
			var err error
			buf, err = ucp.AppendFrame(buf[:0], 0, op.msg)
			if err != nil {
				return state{}, fmt.Errorf("smscsim: state: encode OT %s: %w", op.msg.OpType(), err)
			}
			op.frame = string(buf[1 : len(buf)-1])
		}
		st.Pending = append(st.Pending, pendingOp{Account: op.acc.ShortCode, Frame: op.frame, Due: op.due})
	}
	for adc, t := range s.lastSCTS {
		if !t.Before(now.Add(-sctsKeep)) {
			st.SCTS = append(st.SCTS, recipientSCTS{AdC: adc, SCTS: t})
		}
	}
	return st, nil
}

// load reads the state file once: pending operations go back to their
// account's queue (or are scheduled again), and the last SCTS of recent
// recipients is restored. A missing file is an empty state.
func (s *Sim) load() error {
	s.mu.Lock()
	if s.loaded || s.cfg.StateFile == "" {
		s.loaded = true
		s.mu.Unlock()
		return nil
	}
	s.loaded = true
	s.mu.Unlock()
	b, err := os.ReadFile(s.cfg.StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("smscsim: state: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("smscsim: state file %s: %w", s.cfg.StateFile, err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("smscsim: state file %s: version %d, want %d", s.cfg.StateFile, st.Version, stateVersion)
	}
	var scheduled []*outOp
	s.mu.Lock()
	defer func() {
		s.mu.Unlock()
		for _, op := range scheduled {
			s.schedule(op)
		}
	}()
	dropped := 0
	for _, p := range st.Pending {
		fr, err := ucp.Decode(append(append([]byte{ucp.STX}, p.Frame...), ucp.ETX))
		if err != nil {
			return fmt.Errorf("smscsim: state file %s: %w", s.cfg.StateFile, err)
		}
		switch fr.Msg.(type) {
		case *ucp.Notification, *ucp.Deliver:
		default:
			return fmt.Errorf("smscsim: state file %s: OT %s is not a 52 or 53", s.cfg.StateFile, fr.OT())
		}
		acc, ok := s.byCode[p.Account]
		if !ok {
			dropped++
			continue
		}
		op := &outOp{acc: acc, msg: fr.Msg, due: p.Due}
		s.pending[op] = struct{}{}
		if op.due.IsZero() {
			acc.queue = append(acc.queue, op)
		} else {
			scheduled = append(scheduled, op)
		}
	}
	for _, r := range st.SCTS {
		if last, ok := s.lastSCTS[r.AdC]; !ok || r.SCTS.After(last) {
			s.rememberSCTSLocked(r.AdC, r.SCTS)
		}
	}
	if dropped > 0 {
		s.log.Warn("smscsim state: operations of unknown accounts dropped", "count", dropped)
	}
	s.log.Info("smscsim state loaded", "pending", len(st.Pending)-dropped)
	return nil
}
