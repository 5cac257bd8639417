package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream names.
const (
	StreamAccepted = "SMS_ACCEPTED"
	StreamCleared  = "SMS_CLEARED"
	StreamSubmit   = "SMS_SUBMIT"
	StreamReports  = "SMS_REPORTS"
	StreamMO       = "SMS_MO"
)

// Key-value buckets.
const (
	// BucketSubmitted maps (recipient hash, SCTS) to the segment a delivery
	// report belongs to. Reports arrive hours later and after restarts, so
	// this is on disk, kept as long as a message's validity.
	BucketSubmitted = "SMSC_SUBMITTED"
	// BucketCampaigns holds each campaign's control state (key: campaign id,
	// value: "running", "paused", "cancelled"), watched by throttle so that a
	// pause or cancel takes effect within a second on every replica.
	BucketCampaigns = "CAMPAIGNS"
)

// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id. A publish
// retried within it is stored once.
const DuplicateWindow = 10 * time.Minute

// Streams returns every stream of the platform. They are file-backed:
// nothing accepted is lost when the server restarts.
func Streams(replicas int) []jetstream.StreamConfig {
	mk := func(name, subject, desc string, maxAge time.Duration) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    []string{subject},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
			MaxAge:      maxAge,
			Duplicates:  DuplicateWindow,
			Discard:     jetstream.DiscardOld,
		}
	}
	return []jetstream.StreamConfig{
		mk(StreamAccepted, SubjectAccepted, "messages accepted by ingest, to check", 7*24*time.Hour),
		mk(StreamCleared, SubjectCleared, "messages passed by compliance, to pace", 7*24*time.Hour),
		mk(StreamSubmit, SubjectSubmit, "segments released by throttle, to submit", 7*24*time.Hour),
		mk(StreamReports, SubjectReport, "segment and message state changes", 30*24*time.Hour),
		mk(StreamMO, SubjectMO, "subscriber messages to our short codes", 30*24*time.Hour),
	}
}

// Buckets returns every key-value bucket of the platform.
func Buckets(replicas int) []jetstream.KeyValueConfig {
	return []jetstream.KeyValueConfig{{
		Bucket:      BucketSubmitted,
		Description: "DR correlation: recipient hash + SCTS -> segment",
		TTL:         7 * 24 * time.Hour,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}, {
		Bucket:      BucketCampaigns,
		Description: "campaign control state: running, paused, cancelled",
		TTL:         30 * 24 * time.Hour,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}}
}

// Ensure creates or updates every stream and bucket. Every service runs it
// at start, so the order services start in does not matter.
func Ensure(ctx context.Context, js jetstream.JetStream, replicas int) error {
	for _, cfg := range Streams(replicas) {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
		}
	}
	for _, cfg := range Buckets(replicas) {
		if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return fmt.Errorf("ensure bucket %s: %w", cfg.Bucket, err)
		}
	}
	return nil
}
