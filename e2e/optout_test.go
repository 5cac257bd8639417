package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/smscsim"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// sendAs sends one message of brand from the platform's first short code.
func (p *platform) sendAs(t *testing.T, brand string, category partnerv1.TrafficCategory, to, text string) string {
	t.Helper()
	resp, err := p.client.SendMessage(as(p.APIKey()), &partnerv1.SendMessageRequest{
		ShortCode:         p.cfg.ShortCodes[0],
		Brand:             brand,
		Category:          category,
		Recipient:         to,
		Text:              text,
		AppendStopMention: category == partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING,
	})
	if err != nil {
		t.Fatalf("SendMessage (%s): %v", brand, err)
	}
	return resp.GetMessage().GetMessageId()
}

// decided waits until compliance decided the message: any state but
// ACCEPTED.
func (p *platform) decided(t *testing.T, id string, within time.Duration) *partnerv1.Message {
	t.Helper()
	var m *partnerv1.Message
	bustest.Eventually(t, within, func() error {
		resp, err := p.client.GetMessage(as(p.APIKey()), &partnerv1.GetMessageRequest{MessageId: id})
		if err != nil {
			return err
		}
		m = resp.GetMessage()
		if s := m.GetState(); s == partnerv1.MessageState_MESSAGE_STATE_ACCEPTED || s == partnerv1.MessageState_MESSAGE_STATE_UNSPECIFIED {
			return fmt.Errorf("message %s not decided yet", id)
		}
		return nil
	})
	return m
}

// The must-show: the subscriber answers a message of brand Acme
// with "Stop"; within a second a new marketing message of Acme to that
// number is refused with REASON_OPTED_OUT, while brand Zeta's goes.
func TestStopOptsOutOfTheBrandWithinASecond(t *testing.T) {
	p := start(t, config(t, dataDir(t)))
	const to = "06 07 12 34 99"
	const originator = "33607123499" // the same number, as the SMSC writes it
	marketing := partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING

	// Acme writes to the subscriber from the short code (any category makes
	// Acme the short code's last issuer for that number).
	first := p.sendAs(t, "Acme", partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP, to, "Acme : votre commande 1234 est prête.")
	if m := p.decided(t, first, 10*time.Second); m.GetState() == partnerv1.MessageState_MESSAGE_STATE_REJECTED {
		t.Fatalf("Acme's first message rejected: %v %s", m.GetReason(), m.GetDecision().GetDetail())
	}

	injected := time.Now()
	if err := p.Sim().InjectMO(context.Background(), smscsim.MO{ShortCode: p.cfg.ShortCodes[0], Originator: originator, Text: "Stop"}); err != nil {
		t.Fatalf("inject MO: %v", err)
	}

	// Acme tries again until refused; the first refused message must have
	// been sent within a second of the STOP.
	var (
		refused *partnerv1.Message
		sentAt  time.Time
	)
	for attempt := 0; refused == nil; attempt++ {
		if time.Since(injected) > 3*time.Second {
			t.Fatalf("no Acme message refused 3 s after the STOP (%d tried)", attempt)
		}
		sentAt = time.Now()
		id := p.sendAs(t, "Acme", marketing, to, fmt.Sprintf("Acme : -20%% sur tout le magasin, offre %d.", attempt))
		m := p.decided(t, id, 10*time.Second)
		switch {
		case m.GetState() != partnerv1.MessageState_MESSAGE_STATE_REJECTED:
			// Checked before the STOP was recorded: try again.
		case m.GetReason() == partnerv1.Reason_REASON_OPTED_OUT:
			refused = m
		case m.GetReason() != partnerv1.Reason_REASON_FREQUENCY_CAP:
			// The cap may refuse a try after one that went before the
			// STOP was recorded; anything else is a failure.
			t.Fatalf("Acme refused with %v (%s), want REASON_OPTED_OUT", m.GetReason(), m.GetDecision().GetDetail())
		}
	}
	if d := sentAt.Sub(injected); d > time.Second {
		t.Errorf("the first Acme message refused was sent %v after the STOP, want within 1 s", d.Round(time.Millisecond))
	}
	t.Logf("Acme refused for a message sent %v after the STOP", sentAt.Sub(injected).Round(time.Millisecond))
	if d := refused.GetDecision(); d.GetRule() != "optout" || d.GetSource() == "" {
		t.Errorf("decision %v, want rule optout with its source", d)
	}

	zeta := p.decided(t, p.sendAs(t, "Zeta", marketing, to, "Zeta : nouvelle collection en magasin."), 10*time.Second)
	if zeta.GetState() == partnerv1.MessageState_MESSAGE_STATE_REJECTED {
		t.Errorf("Zeta's message rejected: %v (%s), want accepted", zeta.GetReason(), zeta.GetDecision().GetDetail())
	}
}
