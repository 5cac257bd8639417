package optout_test

import (
	"strings"
	"testing"

	"pushsms.io/lib/optout"
	"pushsms.io/lib/policy"
)

func TestParseMO(t *testing.T) {
	kw := optout.KeywordsOf(policy.Default().OptOut)
	for _, tc := range []struct {
		text string
		want optout.Action
	}{
		{"STOP", optout.Stop},
		{"stop", optout.Stop},
		{"Stop.", optout.Stop},
		{" stop! ", optout.Stop},
		{"\u00a0STOP\u00a0!!!\n", optout.Stop},
		{"«\u202fStop\u202f»", optout.Stop},
		{"STOP 36123", optout.Stop},
		{"Stop au 36123", optout.Stop},
		{"STOP à 36123", optout.Stop},
		{"stop36123", optout.None},  // one word: not the keyword
		{"STOP 36999", optout.Stop}, // another short code's mention: still a stop
		{"STOP 3612", optout.None},  // not a short code
		{"Stopp", optout.Stop},
		{"STOP SMS", optout.Stop},
		{"stop-pub", optout.Stop},
		{"Arrêt", optout.Stop},
		{"ARRÊTER", optout.Stop},
		{"arre\u0302t", optout.Stop}, // decomposed ê
		{"Désabonner", optout.Stop},
		{"désinscription.", optout.Stop},
		{"Fin", optout.Stop},
		{"non", optout.None}, // a 34ABC answer ("Répondez OUI ou NON"), not an opt-out
		{"unsubscribe", optout.Stop},
		{"START", optout.Resubscribe},
		{"start 36123", optout.Resubscribe},
		{"Start !", optout.Resubscribe},
		// Negatives: a sentence that contains a keyword is not one.
		{"je veux pas stop", optout.None},
		{"Stop ou encore ?", optout.None},
		{"non merci", optout.None},
		{"STOP STOP", optout.None},
		{"stopper", optout.None},
		{"au 36123", optout.None},
		{"36123", optout.None},
		{"", optout.None},
		{"   ...", optout.None},
		{"OUI", optout.None},
		{"Bonjour, à quelle heure ouvrez-vous ?", optout.None},
		{"STOP" + strings.Repeat(" ", 200), optout.None}, // longer than an MO keyword
	} {
		if got := optout.ParseMO(tc.text, "36123", kw); got != tc.want {
			t.Errorf("ParseMO(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
}

// The keywords are the policy's: a custom re-subscribe keyword works, a
// removed stop keyword no longer does.
func TestParseMOCustomKeywords(t *testing.T) {
	kw := optout.Keywords{Stop: []string{"Arrêt SMS"}, Resubscribe: []string{"REPRISE", "Réabonner"}}
	for _, tc := range []struct {
		text string
		want optout.Action
	}{
		{"arret sms", optout.Stop},
		{"ARRÊT-SMS 36123", optout.Stop},
		{"STOP", optout.None},
		{"reprise", optout.Resubscribe},
		{"REABONNER", optout.Resubscribe},
		{"START", optout.None},
	} {
		if got := optout.ParseMO(tc.text, "36123", kw); got != tc.want {
			t.Errorf("ParseMO(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
}

// FuzzParseMO: any text (MOs are subscriber input) gives an answer without
// panicking, and surrounding spaces and punctuation never change it.
func FuzzParseMO(f *testing.F) {
	for _, s := range []string{"STOP", " stop! ", "Arrêt", "STOP au 36123", "je veux pas stop", "START", "Ça marche €", "\xff\xfeSTOP", "ARRE\u0301T"} {
		f.Add(s)
	}
	kw := optout.KeywordsOf(policy.Default().OptOut)
	f.Fuzz(func(t *testing.T, text string) {
		got := optout.ParseMO(text, "36123", kw)
		if got != optout.None && got != optout.Stop && got != optout.Resubscribe {
			t.Fatalf("ParseMO(%q) = %d", text, got)
		}
		if len(text) <= 150 {
			if wrapped := optout.ParseMO(" ¡"+text+" !.", "36123", kw); wrapped != got {
				t.Fatalf("ParseMO(%q) = %v but %v with punctuation around", text, got, wrapped)
			}
		}
		if got == optout.Stop && len(text) > 160 {
			t.Fatalf("ParseMO of %d bytes is a stop", len(text))
		}
	})
}
