package ported_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/numplan"
	"pushsms.io/lib/policy"
	"pushsms.io/lib/telemetry"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
	"pushsms.io/services/compliance"
)

// TestPortedNumberAcceptedAfterImport is the issue's "a ported number
// accepted after import": compliance runs with the table as its network
// lookup, watching the database, and decides before and after an import.
func TestPortedNumberAcceptedAfterImport(t *testing.T) {
	e := start(t)
	tab := e.loaded(t)
	watchCtx, stopWatch := context.WithCancel(context.Background())
	watched := make(chan error, 1)
	go func() { watched <- tab.Watch(watchCtx, e.db.Pool) }()
	t.Cleanup(func() {
		stopWatch()
		if err := <-watched; err != nil {
			t.Errorf("watch: %v", err)
		}
	})

	srv := bustest.Start(t)
	cfg := compliance.DefaultConfig()
	cfg.Bus.URL = srv.URL()
	cfg.GRPCAddr, cfg.Telemetry.MetricsAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Telemetry = telemetry.Config{Logger: discard()}
	cfg.Policy.Frequency.Cap = 0
	cfg.Policy.Network = policy.Network{Check: true, Operator: numplan.Orange}
	cfg.NetworkLookup = tab
	ctx, cancel := context.WithCancel(context.Background())
	s, err := compliance.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	b := bustest.Connect(t, srv)

	const (
		sfrBlock    = "06 12 34 56 78" // block 0612, SFR0
		orangeBlock = "06 07 12 34 56" // block 0607, FRTE
	)
	const ok, off = partnerv1.Reason_REASON_UNSPECIFIED, partnerv1.Reason_REASON_NOT_ON_NETWORK
	if got := decide(t, b, "before-sfr", sfrBlock); got != off {
		t.Errorf("SFR block before import: got %s, want %s", got, off)
	}
	if got := decide(t, b, "before-orange", orangeBlock); got != ok {
		t.Errorf("Orange block before import: got %s, want accepted", got)
	}

	resp := e.mustImport(t, full, []entry{{sfrBlock, "FRTE"}, {orangeBlock, "SFR0"}})
	deadline := time.Now().Add(2 * time.Second)
	for tab.Version() != resp.GetVersion() {
		if time.Now().After(deadline) {
			t.Fatalf("table at version %d 2s after import %d", tab.Version(), resp.GetVersion())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := decide(t, b, "after-sfr", sfrBlock); got != ok {
		t.Errorf("SFR-block number ported to Orange: got %s, want accepted", got)
	}
	if got := decide(t, b, "after-orange", orangeBlock); got != off {
		t.Errorf("Orange-block number ported to SFR: got %s, want %s", got, off)
	}

	// Back to its block holder: an incremental deletion.
	resp = e.mustImport(t, incremental, []entry{{sfrBlock, ""}})
	deadline = time.Now().Add(2 * time.Second)
	for tab.Version() != resp.GetVersion() {
		if time.Now().After(deadline) {
			t.Fatalf("table at version %d 2s after import %d", tab.Version(), resp.GetVersion())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := decide(t, b, "deleted-sfr", sfrBlock); got != off {
		t.Errorf("SFR-block number back to SFR: got %s, want %s", got, off)
	}
}

// decide publishes a customer-relationship message (no sending window, no
// STOP mention) to recipient and returns compliance's reason:
// REASON_UNSPECIFIED when it cleared the message.
func decide(t *testing.T, b *bus.Bus, id, recipient string) partnerv1.Reason {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	m := &eventsv1.MessageAccepted{
		MessageId:    id,
		TenantId:     "acme",
		CampaignId:   "camp-1",
		ShortCode:    "36123",
		Brand:        "Acme",
		Category:     partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP,
		Recipient:    recipient,
		Text:         "Acme: votre colis arrive demain.",
		AcceptedAt:   timestamppb.New(now),
		ExpiresAt:    timestamppb.New(now.Add(48 * time.Hour)),
		Encoding:     partnerv1.Encoding_ENCODING_GSM7,
		SegmentCount: 1,
	}
	if err := b.Publish(ctx, bus.AcceptedSubject(m.GetTenantId(), m.GetShortCode()), m, id); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		for _, name := range []string{bus.StreamCleared, bus.StreamReports} {
			if r, found := find(t, b, name, id); found {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no decision within 15s", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// find looks for the decision on message id in a stream.
func find(t *testing.T, b *bus.Bus, stream, id string) (partnerv1.Reason, bool) {
	t.Helper()
	ctx := context.Background()
	st, err := b.JS.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		switch raw.Header.Get(bus.HeaderType) {
		case "pushsms.events.v1.MessageCleared":
			var c eventsv1.MessageCleared
			if err := proto.Unmarshal(raw.Data, &c); err != nil {
				t.Fatal(err)
			}
			if c.GetMessage().GetMessageId() == id {
				return partnerv1.Reason_REASON_UNSPECIFIED, true
			}
		case "pushsms.events.v1.MessageRejected":
			var r eventsv1.MessageRejected
			if err := proto.Unmarshal(raw.Data, &r); err != nil {
				t.Fatal(err)
			}
			if r.GetMessageId() == id {
				return r.GetReason(), true
			}
		}
	}
	return 0, false
}
