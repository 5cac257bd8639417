package ingest_test

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// TestSendMessageDeclarations: the sector, the attestations and the STOP
// mention ingest appends travel in MessageAccepted, and the appended
// mention is counted in the segments the partner is told (and billed).
func TestSendMessageDeclarations(t *testing.T) {
	e := start(t)
	// 150 septets: one segment alone, two with " STOP au 36123" (14 more).
	text150 := strings.Repeat("a", 150)
	tests := []struct {
		name         string
		text         string
		sector       string
		attest       *partnerv1.ContentAttestations
		appendStop   bool
		wantText     string
		wantSegments int32
	}{
		{"plain", "Soldes -20%", "retail", nil, false, "Soldes -20%", 1},
		{"mention appended", "Soldes -20%", "", nil, true, "Soldes -20% STOP au 36123", 1},
		{"mention makes two segments", text150, "", nil, true, text150 + " STOP au 36123", 2},
		{"attested", "Livraison gratuite", "retail_2",
			&partnerv1.ContentAttestations{StopInformedAtCollection: true, FreeClaimSubstantiated: true}, false, "Livraison gratuite", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := sendReq("06 12 34 56 78", tt.text)
			req.Sector, req.Attestations, req.AppendStopMention = tt.sector, tt.attest, tt.appendStop
			msg := e.send(t, req)
			if msg.GetSegmentCount() != tt.wantSegments {
				t.Errorf("segment_count %d, want %d", msg.GetSegmentCount(), tt.wantSegments)
			}
			acc := e.accepted(t, msg)
			if acc.GetText() != tt.wantText || acc.GetSegmentCount() != tt.wantSegments {
				t.Errorf("event text %q (%d segments), want %q (%d)", acc.GetText(), acc.GetSegmentCount(), tt.wantText, tt.wantSegments)
			}
			if acc.GetSector() != tt.sector || acc.GetStopMentionAppended() != tt.appendStop ||
				acc.GetAttestations().GetStopInformedAtCollection() != tt.attest.GetStopInformedAtCollection() ||
				acc.GetAttestations().GetFreeClaimSubstantiated() != tt.attest.GetFreeClaimSubstantiated() {
				t.Errorf("event sector %q attestations %v appended %v, want %q %v %v",
					acc.GetSector(), acc.GetAttestations(), acc.GetStopMentionAppended(), tt.sector, tt.attest, tt.appendStop)
			}
		})
	}
}

func TestSendMessageBadSector(t *testing.T) {
	e := start(t)
	for _, sector := range []string{"Retail", "energy-renovation", "rénovation", " retail", strings.Repeat("a", 41)} {
		t.Run(sector, func(t *testing.T) {
			req := sendReq("06 12 34 56 78", "Bonjour")
			req.Sector = sector
			_, err := e.client.SendMessage(as(e.keyA), req)
			st := wantCode(t, err, codes.InvalidArgument)
			if got := fieldViolations(st); !slices.Equal(got, []string{"sector"}) {
				t.Errorf("field violations %v, want [sector]", got)
			}
		})
	}
	t.Run("forty characters", func(t *testing.T) {
		req := sendReq("06 12 34 56 78", "Bonjour")
		req.Sector = strings.Repeat("a", 40)
		e.send(t, req)
	})
	t.Run("mention over the limit", func(t *testing.T) {
		// Ten full segments are allowed; the mention makes an eleventh.
		req := sendReq("06 12 34 56 78", strings.Repeat("a", 153*10))
		req.AppendStopMention = true
		_, err := e.client.SendMessage(as(e.keyA), req)
		st := wantCode(t, err, codes.InvalidArgument)
		if got := fieldViolations(st); !slices.Equal(got, []string{"text"}) {
			t.Errorf("field violations %v, want [text]", got)
		}
	})
}

// campaignAccepted returns the MessageAccepted events of campaign id.
func (e *env) campaignAccepted(t *testing.T, id string) []*eventsv1.MessageAccepted {
	t.Helper()
	var out []*eventsv1.MessageAccepted
	for _, acc := range e.acceptedMessages(t) {
		if acc.GetCampaignId() == id {
			out = append(out, acc)
		}
	}
	return out
}

func TestCampaignDeclarations(t *testing.T) {
	e := start(t)
	spec := campaignSpec("declared")
	spec.TextTemplate = "Bonjour {{prenom}}, -20% avec le code {{code}}."
	spec.Sector = "retail"
	spec.Attestations = &partnerv1.ContentAttestations{FreeClaimSubstantiated: true}
	spec.AppendStopMention = true
	resp, err := e.submit(t, spec, 3, 2, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	evs := e.campaignAccepted(t, resp.GetCampaign().GetCampaignId())
	if len(evs) != 3 {
		t.Fatalf("%d MessageAccepted, want 3", len(evs))
	}
	for _, acc := range evs {
		if !strings.HasSuffix(acc.GetText(), ". STOP au 36123") || !acc.GetStopMentionAppended() ||
			acc.GetSector() != "retail" || !acc.GetAttestations().GetFreeClaimSubstantiated() || acc.GetAttestations().GetStopInformedAtCollection() {
			t.Errorf("campaign message: text %q appended %v sector %q attestations %v", acc.GetText(), acc.GetStopMentionAppended(), acc.GetSector(), acc.GetAttestations())
		}
	}

	t.Run("bad sector", func(t *testing.T) {
		spec := campaignSpec("")
		spec.Sector = "Énergie"
		_, err := e.submit(t, spec, 1, 1, nil, nil)
		st := wantCode(t, err, codes.InvalidArgument)
		if got := fieldViolations(st); !slices.Equal(got, []string{"spec.sector"}) {
			t.Errorf("field violations %v, want [spec.sector]", got)
		}
	})
}

func TestPreviewTextStopMention(t *testing.T) {
	e := start(t)
	text150 := strings.Repeat("a", 150)
	tests := []struct {
		name      string
		text, sc  string
		stop      bool
		segments  int32
		sent      string
		badFields []string
	}{
		{"without", text150, scA, false, 1, text150, nil},
		{"with", text150, scA, true, 2, text150 + " STOP au 36123", nil},
		{"short code unused without the mention", "Bonjour", "", false, 1, "Bonjour", nil},
		{"no short code", "Bonjour", "", true, 0, "", []string{"short_code"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := e.client.PreviewText(as(e.keyA), &partnerv1.PreviewTextRequest{
				Text: tt.text, NormalizeTypography: true, ShortCode: tt.sc, AppendStopMention: tt.stop,
			})
			if tt.badFields != nil {
				st := wantCode(t, err, codes.InvalidArgument)
				if got := fieldViolations(st); !slices.Equal(got, tt.badFields) {
					t.Errorf("field violations %v, want %v", got, tt.badFields)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetSegmentCount() != tt.segments || resp.GetText() != tt.sent {
				t.Errorf("got %d segments %q, want %d %q", resp.GetSegmentCount(), resp.GetText(), tt.segments, tt.sent)
			}
		})
	}
}
