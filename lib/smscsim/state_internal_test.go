package smscsim

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"pushsms.io/lib/ucp"
)

// BenchmarkSave writes the state file with 5 000 DRs pending (a second of
// traffic at 5 000 SMS/s with DRs a second behind), as the 200-ms debounce
// does under load.
func BenchmarkSave(b *testing.B) {
	s := New(Config{
		StateFile: filepath.Join(b.TempDir(), "smsc-sim.json"),
		Accounts:  []Account{{ShortCode: "36000", Password: "secret"}},
	})
	acc := s.byCode["36000"]
	due := time.Now().Add(time.Hour)
	for i := range 5000 {
		scts := ucp.FormatSCTS(time.Now(), time.UTC)
		n := &ucp.Notification{AdC: "36000", OAdC: fmt.Sprintf("3361%07d", i), SCTS: scts, DSt: ucp.StatusDelivered}
		n.SetText("Message " + scts + " has been delivered")
		s.pending[&outOp{acc: acc, msg: n, due: due}] = struct{}{}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.save(); err != nil {
			b.Fatal(err)
		}
	}
}
