package compliance

import (
	"context"
	"strings"
	"testing"
	"time"

	"pushsms.io/lib/policy"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

const (
	catMarketing = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MARKETING
	catCRM       = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP
	catMO        = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MO_SESSION_REPLY
	catIP        = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_INTERPERSONAL
	catM2M       = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_M2M
	catNone      = partnerv1.TrafficCategory_TRAFFIC_CATEGORY_UNSPECIFIED
	pass         = partnerv1.Reason_REASON_UNSPECIFIED
)

// contentMsg is a message of brand Acme on short code 36123.
type contentMsg struct {
	category     partnerv1.TrafficCategory
	brand        string
	text         string
	sector       string
	stopInformed bool
	freeAttested bool
	shortCode    string
}

func (m contentMsg) candidate() *Candidate {
	sc := m.shortCode
	if sc == "" {
		sc = "36123"
	}
	brand := m.brand
	if brand == "" {
		brand = "Acme"
	}
	return &Candidate{
		Accepted: &eventsv1.MessageAccepted{
			MessageId: "m1",
			ShortCode: sc,
			Brand:     brand,
			Category:  m.category,
			Text:      m.text,
			Sector:    m.sector,
			Attestations: &partnerv1.ContentAttestations{
				StopInformedAtCollection: m.stopInformed,
				FreeClaimSubstantiated:   m.freeAttested,
			},
		},
		Now: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC),
	}
}

// decide runs the content rules in order, as the service does: the first
// refusal decides. It returns the reason, the rule and the detail.
func decide(t *testing.T, rules []Rule, c *Candidate) (partnerv1.Reason, string, string) {
	t.Helper()
	for _, r := range rules {
		v, err := r.Check(context.Background(), c)
		if err != nil {
			t.Fatalf("rule %s: %v", r.Name, err)
		}
		if v.Reason != pass {
			return v.Reason, r.Name, v.Detail
		}
	}
	return pass, "", ""
}

func TestContentRules(t *testing.T) {
	p := policy.Default()
	rules := contentRules(&p)
	const stop = " STOP au 36123"
	tests := []struct {
		name string
		msg  contentMsg
		want partnerv1.Reason
		// rule and words expected in the detail, when refused.
		rule, detail string
	}{
		{name: "soldes with brand and STOP", msg: contentMsg{category: catMarketing, text: "Soldes -50% chez Acme ce week-end ! STOP au 36123"}, want: pass},
		{name: "STOP 36123", msg: contentMsg{category: catMarketing, text: "Acme : nouvelle collection. STOP 36123"}, want: pass},
		{name: "Stop SMS 36123", msg: contentMsg{category: catMarketing, text: "Acme : -20% sur tout. Stop SMS 36123"}, want: pass},
		{name: "STOP: 36123", msg: contentMsg{category: catMarketing, text: "Acme: -20%. STOP: 36123"}, want: pass},
		{name: "STOP au 36 123", msg: contentMsg{category: catMarketing, text: "Acme -20%. STOP au 36 123"}, want: pass},
		{name: "stop à 36123 lower case", msg: contentMsg{category: catMarketing, text: "acme -20%, stop à 36123."}, want: pass},
		{name: "STOP36123 glued", msg: contentMsg{category: catMarketing, text: "Acme -20% STOP36123"}, want: pass},
		{name: "STOP mention missing", msg: contentMsg{category: catMarketing, text: "Soldes -50% chez Acme ce week-end !"},
			want: partnerv1.Reason_REASON_STOP_MENTION_MISSING, rule: "content_stop_mention", detail: `"STOP au 36123" is missing`},
		{name: "STOP without a number", msg: contentMsg{category: catMarketing, text: "Soldes chez Acme ! Répondez STOP pour ne plus recevoir"},
			want: partnerv1.Reason_REASON_STOP_MENTION_MISSING, rule: "content_stop_mention", detail: "is missing"},
		{name: "STOP of another short code", msg: contentMsg{category: catMarketing, text: "Soldes chez Acme ! STOP au 36999"},
			want: partnerv1.Reason_REASON_STOP_MENTION_MISSING, rule: "content_stop_mention", detail: "names short code 36999"},
		{name: "STOP of a longer number", msg: contentMsg{category: catMarketing, text: "Soldes chez Acme ! STOP au 361234"},
			want: partnerv1.Reason_REASON_STOP_MENTION_MISSING, rule: "content_stop_mention", detail: "361234"},
		{name: "recipients told at collection", msg: contentMsg{category: catMarketing, text: "Soldes -50% chez Acme ce week-end !", stopInformed: true}, want: pass},
		{name: "colis, customer relationship", msg: contentMsg{category: catCRM, text: "Votre colis n° 4521 sera livré demain entre 8h et 12h."}, want: pass},
		{name: "unspecified category is marketing", msg: contentMsg{category: catNone, text: "Votre colis arrive demain"},
			want: partnerv1.Reason_REASON_STOP_MENTION_MISSING, rule: "content_stop_mention"},

		{name: "GRATUIT unattested", msg: contentMsg{category: catMarketing, text: "Acme : livraison GRATUITE ce week-end !" + stop},
			want: partnerv1.Reason_REASON_FREE_CLAIM_UNATTESTED, rule: "content_free_claim", detail: `"gratuite"`},
		{name: "offert unattested", msg: contentMsg{category: catMarketing, text: "Acme : un cadeau offert dès 30 € d'achat." + stop},
			want: partnerv1.Reason_REASON_FREE_CLAIM_UNATTESTED, rule: "content_free_claim", detail: `"offert"`},
		{name: "free, English", msg: contentMsg{category: catMarketing, text: "Acme: FREE shipping!" + stop},
			want: partnerv1.Reason_REASON_FREE_CLAIM_UNATTESTED, rule: "content_free_claim"},
		{name: "GRATUIT attested", msg: contentMsg{category: catMarketing, text: "Acme : livraison GRATUITE ce week-end !" + stop, freeAttested: true}, want: pass},
		{name: "offres is not offert", msg: contentMsg{category: catMarketing, text: "Acme : nos offres de Noël sont là." + stop}, want: pass},
		{name: "Freebox is not free", msg: contentMsg{category: catMarketing, text: "Acme : compatible Freebox et Livebox." + stop}, want: pass},
		{name: "free opt-out in the STOP mention", msg: contentMsg{category: catMarketing, text: "Acme : -20% ce week-end. STOP au 36123 (gratuit)"}, want: pass},
		{name: "STOP SMS gratuit au", msg: contentMsg{category: catMarketing, text: "Acme : -20% ce week-end. STOP SMS gratuit au 36123"}, want: pass},
		{name: "c'est gratuit after the mention", msg: contentMsg{category: catMarketing, text: "Acme : -20%. Envoyez STOP au 36123, c'est gratuit"}, want: pass},
		{name: "désinscription gratuite", msg: contentMsg{category: catMarketing, text: "Acme : -20%. Désinscription gratuite : STOP au 36123"}, want: pass},
		{name: "free offer next to the mention", msg: contentMsg{category: catMarketing, text: "Acme : soirée gratuite ! STOP au 36123"},
			want: partnerv1.Reason_REASON_FREE_CLAIM_UNATTESTED, rule: "content_free_claim", detail: `"gratuite"`},
		{name: "free offer after the mention", msg: contentMsg{category: catMarketing, text: "Acme. STOP au 36123. Livraison gratuite ce soir"},
			want: partnerv1.Reason_REASON_FREE_CLAIM_UNATTESTED, rule: "content_free_claim", detail: `"gratuite"`},
		{name: "free offer and a free opt-out", msg: contentMsg{category: catMarketing, text: "Acme : un cadeau offert ! STOP au 36123 (gratuit)"},
			want: partnerv1.Reason_REASON_FREE_CLAIM_UNATTESTED, rule: "content_free_claim", detail: `"offert"`},
		{name: "free claim in a customer message", msg: contentMsg{category: catCRM, text: "Votre retour est gratuit : déposez le colis en point relais."}, want: pass},

		{name: "adult term", msg: contentMsg{category: catMarketing, text: "Acme : soirée sexy ce samedi !" + stop},
			want: partnerv1.Reason_REASON_ADULT_CONTENT, rule: "content_adult", detail: `"sexy"`},
		{name: "adult term with accents and capitals", msg: contentMsg{category: catMarketing, text: "Acme : lingerie ÉROTIQUE -30%" + stop},
			want: partnerv1.Reason_REASON_ADULT_CONTENT, rule: "content_adult", detail: `"erotique"`},
		{name: "adult phrase across punctuation", msg: contentMsg{category: catMarketing, text: "Acme: Rencontre-Adulte près de chez vous" + stop},
			want: partnerv1.Reason_REASON_ADULT_CONTENT, rule: "content_adult", detail: `"rencontre adulte"`},
		{name: "adult term spelled out", msg: contentMsg{category: catMarketing, text: "Acme : vidéos s.e.x.e gratuites" + stop},
			want: partnerv1.Reason_REASON_ADULT_CONTENT, rule: "content_adult", detail: `"sexe"`},
		{name: "adult term with soft hyphen", msg: contentMsg{category: catMarketing, text: "Acme : por\u00adno" + stop},
			want: partnerv1.Reason_REASON_ADULT_CONTENT, rule: "content_adult"},
		{name: "adult in a customer message too", msg: contentMsg{category: catCRM, text: "Votre abonnement XXX est renouvelé"},
			want: partnerv1.Reason_REASON_ADULT_CONTENT, rule: "content_adult"},
		{name: "Essex is not sexe", msg: contentMsg{category: catMarketing, text: "Acme : voyage en Essex, hôtel de charmes" + stop}, want: pass},
		{name: "two short words are not spelling", msg: contentMsg{category: catMarketing, text: "Acme : il y a des promos à l'heure du déjeuner" + stop}, want: pass},

		{name: "energy renovation sector", msg: contentMsg{category: catMarketing, text: "Acme : isolation à 1 €" + stop, sector: "energy_renovation"},
			want: partnerv1.Reason_REASON_SECTOR_BANNED, rule: "content_sector", detail: "energy_renovation"},
		{name: "home adaptation, written otherwise", msg: contentMsg{category: catCRM, text: "Votre devis monte-escalier", sector: "Home adaptation"},
			want: partnerv1.Reason_REASON_SECTOR_BANNED, rule: "content_sector"},
		{name: "retail sector", msg: contentMsg{category: catMarketing, text: "Acme -20%" + stop, sector: "retail"}, want: pass},

		{name: "brand missing", msg: contentMsg{category: catMarketing, text: "Soldes -50% ce week-end !" + stop},
			want: partnerv1.Reason_REASON_BRAND_NOT_IDENTIFIED, rule: "content_brand", detail: `"Acme"`},
		{name: "brand inside a word", msg: contentMsg{category: catMarketing, text: "Soldes sur Acmeshop.fr" + stop},
			want: partnerv1.Reason_REASON_BRAND_NOT_IDENTIFIED, rule: "content_brand"},
		{name: "brand with accents, text in capitals", msg: contentMsg{category: catMarketing, brand: "Pâtisserie Hélène", text: "PATISSERIE HELENE : galettes -10%" + stop}, want: pass},
		{name: "brand without its article", msg: contentMsg{category: catMarketing, brand: "Les Galeries Lafayette", text: "GALERIES LAFAYETTE : 3 jours fous" + stop}, want: pass},
		{name: "brand written as one word", msg: contentMsg{category: catMarketing, brand: "Leroy Merlin", text: "Promos LeroyMerlin.fr" + stop}, want: pass},
		{name: "brand with apostrophe", msg: contentMsg{category: catMarketing, brand: "L'Occitane", text: "L’OCCITANE : coffrets de Noël" + stop}, want: pass},
		{name: "brand possessive", msg: contentMsg{category: catMarketing, text: "Acme's Black Friday" + stop}, want: pass},
		{name: "brand half there", msg: contentMsg{category: catMarketing, brand: "Galeries Lafayette", text: "Les Galeries vous attendent" + stop},
			want: partnerv1.Reason_REASON_BRAND_NOT_IDENTIFIED, rule: "content_brand"},
		{name: "brand in a reply need not appear", msg: contentMsg{category: catMO, shortCode: "34123", text: "Votre code : 1234"}, want: pass},
		{name: "M2M", msg: contentMsg{category: catM2M, shortCode: "38123", text: "CFG 12 ON"}, want: pass},
		{name: "interpersonal", msg: contentMsg{category: catIP, shortCode: "37123", text: "Coucou, c'est Marie, rappelle-moi"}, want: pass},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rule, detail := decide(t, rules, tt.msg.candidate())
			if got != tt.want {
				t.Fatalf("got %s (%s: %s), want %s", got, rule, detail, tt.want)
			}
			if tt.rule != "" && rule != tt.rule {
				t.Errorf("refused by %s, want %s", rule, tt.rule)
			}
			if !strings.Contains(detail, tt.detail) {
				t.Errorf("detail %q, want it to hold %q", detail, tt.detail)
			}
		})
	}
}

// Every rule says where it comes from, and the options switch rules off.
func TestContentRulesConfiguration(t *testing.T) {
	p := policy.Default()
	for _, r := range contentRules(&p) {
		if r.Source == "" {
			t.Errorf("rule %s has no source", r.Name)
		}
	}
	p.Content.StopMention = false
	p.Content.BrandInText = false
	p.Content.AdultTerms = []string{"casino"}
	p.Content.FreeTerms = nil
	p.Content.BannedSectors = nil
	rules := contentRules(&p)
	tests := []struct {
		text   string
		sector string
		want   partnerv1.Reason
	}{
		{"Soldes gratuits, sexy et sans STOP", "energy_renovation", pass},
		{"Votre CASINO en ligne", "", partnerv1.Reason_REASON_ADULT_CONTENT},
	}
	for _, tt := range tests {
		got, rule, detail := decide(t, rules, contentMsg{category: catMarketing, text: tt.text, sector: tt.sector}.candidate())
		if got != tt.want {
			t.Errorf("%q: got %s (%s: %s), want %s", tt.text, got, rule, detail, tt.want)
		}
	}
}

func TestFoldText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", " "},
		{"Soldes -50% chez Acme ce week-end ! STOP au 36123", " soldes 50 chez acme ce week end stop au 36123 "},
		{"Œuvre d’ÉTÉ à Noël, ÇA «\u00a0marche\u00a0»", " oeuvre d ete a noel ca marche "},
		{"Straße ÆØÅ łódź", " strasse aeoa lodz "},
		{"e\u0301te\u0301 por\u00adno zero\u200bwidth", " ete porno zerowidth "},
		{"🎁🎁 Cadeau!!", " cadeau "},
		// Accents are removed from Latin letters only.
		{"Ελλάδα", " ελλάδα "},
	}
	for _, tt := range tests {
		if got := foldText(tt.in).s; got != tt.want {
			t.Errorf("foldText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// BenchmarkContentRules runs every content rule over realistic texts, as
// one decision does.
func BenchmarkContentRules(b *testing.B) {
	p := policy.Default()
	rules := contentRules(&p)
	msgs := []contentMsg{
		{category: catMarketing, text: "Soldes -50% chez Acme ce week-end ! Profitez-en vite en magasin et sur acme.fr. STOP au 36123"},
		{category: catMarketing, brand: "Pâtisserie Hélène", text: "PÂTISSERIE HÉLÈNE : pour l'Épiphanie, la galette des rois à 12,90 € au lieu de 15 €, jusqu'à dimanche seulement ! Commandez en boutique. STOP 36123"},
		{category: catCRM, text: "Votre colis n° 4521-XZ sera livré demain entre 8h et 12h. Suivi : acme.fr/suivi"},
		{category: catMarketing, text: strings.Repeat("Acme : nouvelle collection automne-hiver, jusqu'à -40% sur les manteaux. ", 4) + "STOP au 36123"},
	}
	cands := make([]*Candidate, len(msgs))
	for i, m := range msgs {
		cands[i] = m.candidate()
	}
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c := cands[i%len(cands)]
		for _, r := range rules {
			if v, _ := r.Check(ctx, c); v.Reason != pass {
				b.Fatalf("%s refused %q: %s", r.Name, c.Accepted.GetText(), v.Detail)
			}
		}
	}
}

// FuzzFoldText checks the properties the content rules rely on: the
// folded text is words of lower-case letters and digits between single
// spaces, folding is idempotent, and a term is found in any text that
// holds it between separators.
func FuzzFoldText(f *testing.F) {
	f.Add("Soldes -50% chez Acme ce week-end ! STOP au 36123", "sexy")
	f.Add("Œuvre d’ÉTÉ «\u00a0GRATUIT\u00a0»", "gratuit")
	f.Add("s.e.x.e", "sexe")
	f.Add("\xff\xfe", "a b")
	f.Fuzz(func(t *testing.T, text, term string) {
		ft := foldText(text)
		s := ft.s
		if !strings.HasPrefix(s, " ") || !strings.HasSuffix(s, " ") || strings.Contains(s, "  ") {
			t.Fatalf("foldText(%q) = %q: want words between single spaces", text, s)
		}
		if s != strings.ToLower(s) {
			t.Fatalf("foldText(%q) = %q: not lower case", text, s)
		}
		if again := foldText(s).s; again != s {
			t.Fatalf("folding %q again gave %q", s, again)
		}
		ts := compileTerms([]string{term})
		if len(ts.words) == 0 && len(ts.phrases) == 0 {
			return
		}
		if _, ok := ts.find(foldText(text + " " + term + ".")); !ok {
			t.Fatalf("term %q not found after %q", term, text)
		}
		ft.stopMention("36123")
		ft.withoutOptOut()
		ft.hasBrand(term)
		ft.joinSpelled()
	})
}
