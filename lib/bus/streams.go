package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	// BucketFrequency counts the marketing messages cleared per recipient,
	// brand and French calendar day (key: recipient hash, brand hash,
	// yyyymmdd; value: the message ids), updated by compare-and-set so
	// that compliance replicas never let two through.
	BucketFrequency = "FREQUENCY"
	// BucketPolicy holds the compliance rule set (lib/policy) under key
	// PolicyKey, watched by every compliance and throttle replica so that
	// a new version applies without a restart. History keeps the versions
	// before it.
	BucketPolicy = "POLICY"
	// BucketOptOuts holds the opt-outs (subscribers' STOPs and partners'
	// suppression lists) with their proof, keyed by recipient hash first
	// (lib/optout), watched by every compliance replica.
	BucketOptOuts = "OPTOUTS"
	// BucketLastIssuer remembers which brand last sent to a recipient from
	// a short code (key: short code, recipient hash): a STOP to that short
	// code opts out of that brand.
	BucketLastIssuer = "LAST_ISSUER"
	// BucketMOSessions remembers a subscriber's last MO to a short code
	// (key: short code, recipient hash): 34ABC replies need a session.
	BucketMOSessions = "MO_SESSIONS"
)

// Throughput control buckets (issue 5).
const (
	// BucketShortCodes is each short code's control data: key
	// "<sc>.rate" (the contracted SMS-MT per second, decimal), "<sc>.control"
	// (JSON {"state": "running"|"paused", "cancelled_before": RFC 3339}),
	// "<sc>.weights" (JSON {"<tenant>": weight}). Watched by throttle
	// (and smsc-link's guard for the rate): changes apply without restart.
	BucketShortCodes = "SHORT_CODES"
	// BucketThrottleLeases holds one lease per short code (key: short
	// code, value: JSON {"owner": replica id, "until": end of the lease})
	// and each live replica's heartbeat (key replica.<id>), so that one
	// throttle replica at a time releases a short code's messages.
	BucketThrottleLeases = "THROTTLE_LEASES"
	// BucketLinkState is smsc-link's view of each short code's link (key:
	// short code, JSON {"up", "slowdown", "reason", "at"}), written on
	// change; throttle slows the short code down while the link struggles.
	BucketLinkState = "LINK_STATE"
)

// PolicyKey is the key of the current policy in BucketPolicy.
const PolicyKey = "current"

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
		scheduled(mk(StreamAccepted, SubjectAccepted, "messages accepted by ingest, to check", 7*24*time.Hour), SubjectRelease),
		scheduled(mk(StreamCleared, SubjectCleared, "messages passed by compliance, to pace", 7*24*time.Hour), SubjectHold),
		mk(StreamSubmit, SubjectSubmit, "segments released by throttle, to submit", 7*24*time.Hour),
		mk(StreamReports, SubjectReport, "segment and message state changes", 30*24*time.Hour),
		mk(StreamMO, SubjectMO, "subscriber messages to our short codes", 30*24*time.Hour),
	}
}

// scheduled adds to a stream the subject of its message schedules, which
// no consumer reads: the server publishes each on the stream's subject it
// targets when it is due. SMS_CLEARED holds the messages throttle keeps
// until a time (SubjectHold), so that a message scheduled days ahead is
// not an event held (delivered, not acked) by a consumer all that time;
// SMS_ACCEPTED the campaign batches ingest releases at their short code's
// pace (SubjectRelease). Message schedules need nats-server 2.12 or later.
func scheduled(cfg jetstream.StreamConfig, schedules string) jetstream.StreamConfig {
	cfg.Subjects = append(cfg.Subjects, schedules)
	cfg.AllowMsgSchedules = true
	return cfg
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
	}, {
		Bucket:      BucketFrequency,
		Description: "marketing frequency cap: recipient hash + brand hash + day -> message ids",
		// A day's key is written when a message is checked, and a message
		// may be scheduled or deferred up to its validity (at most 72 h)
		// ahead: the key must outlive the end of that day, not 48 h.
		// A weekly cap's key lives a week plus that validity.
		TTL:      11 * 24 * time.Hour,
		Storage:  jetstream.FileStorage,
		Replicas: replicas,
	}, {
		Bucket:      BucketPolicy,
		Description: "compliance rule set (lib/policy JSON), key current",
		History:     64,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}, {
		Bucket:      BucketOptOuts,
		Description: "opt-outs with proof: recipient hash + scope -> entry",
		History:     8,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}, {
		Bucket:      BucketLastIssuer,
		Description: "brand that last sent to a recipient from a short code",
		// A STOP answers a recent message; a year covers any campaign
		// rhythm without keeping every recipient forever.
		TTL:      365 * 24 * time.Hour,
		Storage:  jetstream.FileStorage,
		Replicas: replicas,
	}, {
		Bucket:      BucketMOSessions,
		Description: "subscriber's last MO to a short code (34ABC sessions)",
		// The policy's mo_session is at most this long.
		TTL:      30 * 24 * time.Hour,
		Storage:  jetstream.FileStorage,
		Replicas: replicas,
	}, {
		Bucket:      BucketShortCodes,
		Description: "short code control: rate, state (running/paused, cancelled_before), tenant weights",
		History:     8,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}, {
		Bucket:      BucketThrottleLeases,
		Description: "throttle ownership of each short code (lease renewed by the owner)",
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}, {
		Bucket:      BucketLinkState,
		Description: "smsc-link's link state per short code, for throttle's back-pressure",
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}}
}

// Ensure creates or updates every stream and bucket. Every service runs it
// at start, so the order services start in does not matter. A stream or
// bucket already as configured is left alone: an update is not free (and,
// in nats-server 2.15, races with consumers being created at that moment).
func Ensure(ctx context.Context, js jetstream.JetStream, replicas int) error {
	for _, cfg := range Streams(replicas) {
		st, err := js.Stream(ctx, cfg.Name)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			_, err = js.CreateStream(ctx, cfg)
		case err == nil && !sameStream(st.CachedInfo().Config, cfg):
			_, err = js.UpdateStream(ctx, cfg)
		}
		if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
		}
	}
	for _, cfg := range Buckets(replicas) {
		kv, err := js.KeyValue(ctx, cfg.Bucket)
		switch {
		case errors.Is(err, jetstream.ErrBucketNotFound):
			_, err = js.CreateKeyValue(ctx, cfg)
		case err == nil:
			var st jetstream.KeyValueStatus
			if st, err = kv.Status(ctx); err == nil && st.TTL() != cfg.TTL {
				_, err = js.UpdateKeyValue(ctx, cfg)
			}
		}
		if err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
			return fmt.Errorf("ensure bucket %s: %w", cfg.Bucket, err)
		}
	}
	return nil
}

// sameStream compares the settings Streams sets.
func sameStream(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.Description == want.Description &&
		have.Retention == want.Retention && have.Storage == want.Storage && have.Replicas == want.Replicas &&
		have.MaxAge == want.MaxAge && have.Duplicates == want.Duplicates && have.Discard == want.Discard &&
		have.AllowMsgSchedules == want.AllowMsgSchedules
}
