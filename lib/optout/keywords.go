package optout

import (
	"strings"
	"unicode"

	"pushsms.io/lib/policy"
)

// Action is what an MO asks for.
type Action int

const (
	// None: an ordinary MO (a question, an answer to a game), not a keyword.
	None Action = iota
	// Stop: the subscriber opts out.
	Stop
	// Resubscribe: the subscriber lifts the opt-outs they sent to the short
	// code.
	Resubscribe
)

func (a Action) String() string {
	switch a {
	case Stop:
		return "stop"
	case Resubscribe:
		return "resubscribe"
	}
	return "none"
}

// Keywords are the MO keywords of the policy (policy.OptOut), as written
// there; ParseMO folds them as it folds the MO.
type Keywords struct {
	Stop        []string
	Resubscribe []string
}

// KeywordsOf returns the keywords of o.
func KeywordsOf(o policy.OptOut) Keywords {
	return Keywords{Stop: o.StopKeywords, Resubscribe: o.ResubscribeKeywords}
}

// maxMO bounds the text ParseMO reads: a keyword with its short code and
// some punctuation is a few dozen bytes; a longer MO is a sentence.
const maxMO = 160

// ParseMO tells whether an MO sent to shortCode is a stop or a re-subscribe
// keyword. The MO must be the keyword alone, optionally followed by a short
// code ("STOP 36123", "STOP au 36123", the form of the mention in our
// messages):
//
//   - any case, accents folded ("arrêt" is ARRET), œ/æ/ß spelled out;
//   - anything that is not a letter or a digit separates words and is
//     otherwise ignored: " Stop. ", "STOP!!", "stop-pub", "«STOP»";
//   - the trailing short code may be any five-digit number, not only the
//     short code written to: a subscriber who copies "STOP au 36xxx" from
//     another message still plainly asks to stop, and ignoring an opt-out
//     is the costly mistake (CPCE L.34-5). The opt-out applies to the short
//     code the MO was sent to, the only one whose sender is known;
//   - a sentence that merely contains a keyword is not one ("je ne veux
//     pas stop", "stop ou encore ?", "Non merci"): an answer to a game or a
//     survey must not opt the subscriber out behind their back. Such MOs
//     reach the partner (StreamEvents), who handles them.
//
// A text that is both (a misconfigured policy) is a Stop. shortCode is not
// needed to decide today; it is taken so that a stricter rule (the trailing
// number must be shortCode) is a change inside this function.
func ParseMO(text, shortCode string, kw Keywords) Action {
	_ = shortCode
	if len(text) > maxMO {
		return None
	}
	words := fold(text, nil)
	if n := len(words); n >= 2 && isShortCode(words[n-1]) {
		words = words[:n-1]
		if n := len(words); n >= 2 && (words[n-1] == "AU" || words[n-1] == "A") {
			words = words[:n-1]
		}
	}
	if len(words) == 0 {
		return None
	}
	if matchAny(words, kw.Stop) {
		return Stop
	}
	if matchAny(words, kw.Resubscribe) {
		return Resubscribe
	}
	return None
}

func isShortCode(w string) bool {
	if len(w) != 5 {
		return false
	}
	for i := range len(w) {
		if w[i] < '0' || w[i] > '9' {
			return false
		}
	}
	return true
}

// matchAny tells whether words, folded, are exactly one of keywords, folded.
func matchAny(words, keywords []string) bool {
	var buf []string
	for _, k := range keywords {
		buf = fold(k, buf[:0])
		if len(buf) == len(words) && equal(buf, words) {
			return true
		}
	}
	return false
}

func equal(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// fold appends the words of s to dst: runs of letters and digits, upper
// case, accents removed.
func fold(s string, dst []string) []string {
	var w strings.Builder
	flush := func() {
		if w.Len() > 0 {
			dst = append(dst, w.String())
			w.Reset()
		}
	}
	for _, r := range s {
		switch {
		case unicode.Is(unicode.Mn, r):
			// A combining accent of a decomposed letter (E + U+0301):
			// part of the letter before it, which is kept bare.
		case r >= 0xC0 && r <= 0xFF || r == 'Œ' || r == 'œ':
			if base := latin1Base(r); base != "" {
				w.WriteString(base)
			} else {
				flush() // × and ÷
			}
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			w.WriteRune(unicode.ToUpper(r))
		default:
			flush()
		}
	}
	flush()
	return dst
}

// latin1Base is the base letter(s) of an accented Latin-1 letter, upper
// case: the letters French subscribers type.
func latin1Base(r rune) string {
	switch r {
	case 'Œ', 'œ':
		return "OE"
	case 'Æ', 'æ':
		return "AE"
	case 'ß':
		return "SS"
	case 'Þ', 'þ':
		return "TH"
	case '×', '÷':
		return ""
	}
	const bases = "AAAAAA_CEEEEIIIIDNOOOOO_OUUUUY__AAAAAA_CEEEEIIIIDNOOOOO_OUUUUY_Y"
	return bases[r-0xC0 : r-0xC0+1]
}
