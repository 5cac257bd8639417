package throttle

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"pushsms.io/lib/bus"
)

// migrateLegacy retires the single consumer of the versions before
// per-short-code ownership, so that an upgrade in place neither releases
// again what that consumer released nor skips what it left.
//
// The per-short-code consumers would start at the stream's first event:
// everything the legacy consumer released in the stream's 7 days would go
// again. So, when the legacy consumer has nothing in hand (no event
// delivered and not acked), the sequence after its last delivered event is
// recorded (migrationKey, created once: every replica then agrees) and the
// consumer deleted; every per-short-code consumer created since starts
// there. When it still holds events (a previous version running, or
// stopped with messages parked), nothing is changed and the replica
// refuses to start, saying what to do: its held events would otherwise be
// lost, or released twice.
func (s *Service) migrateLegacy(ctx context.Context) error {
	cons, err := s.Bus.JS.Consumer(ctx, bus.StreamCleared, LegacyDurable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("throttle: look for the legacy consumer: %w", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("throttle: legacy consumer: %w", err)
	}
	if info.NumAckPending > 0 || info.NumWaiting > 0 {
		return fmt.Errorf("throttle: the consumer %q of SMS_CLEARED of a previous version holds %d events not released (%d fetches waiting): "+
			"stop new traffic (pause the short codes), let the previous version release them and stop it, then start this one (docs/throttle.md, \"Upgrading\")",
			LegacyDurable, info.NumAckPending, info.NumWaiting)
	}
	start := info.Delivered.Stream + 1
	kv, err := s.Bus.JS.KeyValue(ctx, bus.BucketThrottleLeases)
	if err != nil {
		return fmt.Errorf("throttle: leases bucket: %w", err)
	}
	if _, err := kv.Create(ctx, migrationKey, []byte(strconv.FormatUint(start, 10))); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("throttle: record the migration: %w", err)
	}
	if err := s.Bus.JS.DeleteConsumer(ctx, bus.StreamCleared, LegacyDurable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("throttle: retire the legacy consumer: %w", err)
	}
	s.Log.InfoContext(ctx, "legacy consumer retired: per-short-code consumers start after its last event",
		"consumer", LegacyDurable, "start_sequence", start)
	return nil
}
