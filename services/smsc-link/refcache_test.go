package smsclink_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/numplan"
	"pushsms.io/lib/smscsim"
	smsclink "pushsms.io/services/smsc-link"
)

// TestRefCacheMatchesWithoutBucket: the DRs of a segment this process
// submitted are matched from its cache of correlation refs, with no read
// of the bucket. Deleting the key from the bucket before the DRs come
// shows it: with the cache they are matched all the same (the BUFFERED one
// and the final one), without it they are NACKed.
func TestRefCacheMatchesWithoutBucket(t *testing.T) {
	tests := []struct {
		name          string
		cache         int
		buffered      float64
		wantStates    []string
		wantHits      int64
		wantUnmatched int64
	}{
		{name: "cache", cache: smsclink.DefaultRefCache, buffered: 1, wantStates: []string{"buffered", "delivered"}, wantHits: 2},
		{name: "no cache", cache: 0, wantUnmatched: 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, smscsim.Config{
				DR:         smscsim.DRConfig{Delay: time.Second, Buffered: tt.buffered},
				RetryDelay: time.Hour,
			}, func(c *smsclink.Config) {
				c.RefCache = tt.cache
				c.DRWait = 50 * time.Millisecond
			})
			ev := submitEvent(fmt.Sprintf("0190a8e2-0000-7000-8000-0000000001%02d", i), segments(t, "cached")[0])
			e.publish(ev)
			e.waitReports(ev.GetMessageId(), "submitted")
			subs := e.submissions()
			if len(subs) != 1 {
				t.Fatalf("the SMSC got %d submits, want 1", len(subs))
			}
			n, err := numplan.Parse(recipient)
			if err != nil {
				t.Fatal(err)
			}
			kv, err := e.pub.JS.KeyValue(context.Background(), bus.BucketSubmitted)
			if err != nil {
				t.Fatal(err)
			}
			if err := kv.Purge(context.Background(), n.Hash()+"."+subs[0].SCTS); err != nil {
				t.Fatal(err)
			}
			if st := e.sim.Stats().Accounts[shortCode]; st.DRsAcked+st.DRsNacked != 0 {
				t.Fatalf("a DR was answered before the key was deleted: the test deleted it too late")
			}
			if len(tt.wantStates) > 0 {
				e.waitReports(ev.GetMessageId(), tt.wantStates...)
			} else {
				bustest.Eventually(t, wait, func() error {
					if n := e.sim.Stats().Accounts[shortCode].DRsNacked; n == 0 {
						return fmt.Errorf("no DR NACKed yet")
					}
					return nil
				})
			}
			st := e.svc.Stats()
			if st.RefCacheHits != tt.wantHits || st.DRsUnmatched != tt.wantUnmatched {
				t.Errorf("cache hits %d, unmatched DRs %d; want %d, %d", st.RefCacheHits, st.DRsUnmatched, tt.wantHits, tt.wantUnmatched)
			}
		})
	}
}
