package compliance

import (
	"context"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"pushsms.io/lib/policy"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// Sources of the content rules, as recorded in every decision they take.
const (
	sourceSector = `loi n° 2025-594 du 30 juin 2025 "contre toutes les fraudes aux aides publiques", art. 13 ` +
		`(code de la consommation L.223-8): no commercial prospection, SMS included, for energy renovation ` +
		`or home adaptation to ageing or disability; compliance §5.4, §5.5`
	sourceAdult       = `offer "Obligations of the aggregator": no adult content`
	sourceStopMention = `offer "Obligations of the aggregator": marketing MTs state how to object with STOP to the short code, ` +
		`unless the user was told at collection; CPCE L.34-5 (a free way to object in every message, compliance §5.1); ` +
		`CNIL SMS prospection guidance (§5.3); af2m charter STOP wording (§2.3)`
	sourceFreeClaim = `offer "Obligations of the aggregator": "free service" only if everything promoted is free; ` +
		`code de la consommation L.121-2 (misleading commercial practice)`
	sourceBrand = `offer "Obligations of the aggregator": the issuer must be identifiable from the message itself; ` +
		`LCEN art. 20 (compliance §5.2); CPCE L.34-5 (§5.1); CNIL (§5.3); compliance §5.5`
)

// contentRules are the content checks of p, each its own rule so that a
// decision names the one that refused. The term lists are folded once
// here; a message's text is folded (textOf) and its words looked up in
// maps, with no regexp.
//
// The sector ban and adult content apply to every category: a functional
// message is no excuse for either. The STOP mention, free claims and the
// brand are rules of prospection: they apply to marketing, and to a
// message that did not say what it is (marketingLike).
func contentRules(p *policy.Policy) []Rule {
	c := p.Content
	banned := make(map[string]bool, len(c.BannedSectors))
	for _, s := range c.BannedSectors {
		banned[sectorKey(s)] = true
	}
	adult := compileTerms(c.AdultTerms)
	free := compileTerms(c.FreeTerms)
	rules := []Rule{
		{Name: "content_sector", Source: sourceSector, Check: checkSector(banned)},
		{Name: "content_adult", Source: sourceAdult, Check: checkAdult(adult)},
	}
	if c.StopMention {
		rules = append(rules, Rule{Name: "content_stop_mention", Source: sourceStopMention, Check: checkStopMention})
	}
	rules = append(rules, Rule{Name: "content_free_claim", Source: sourceFreeClaim, Check: checkFreeClaim(free)})
	if c.BrandInText {
		rules = append(rules, Rule{Name: "content_brand", Source: sourceBrand, Check: checkBrand})
	}
	return rules
}

// marketingLike reports whether the content rules of prospection apply:
// marketing, and traffic that did not declare a functional category (it
// is treated as what it may be).
func marketingLike(c partnerv1.TrafficCategory) bool {
	switch c {
	case partnerv1.TrafficCategory_TRAFFIC_CATEGORY_MO_SESSION_REPLY,
		partnerv1.TrafficCategory_TRAFFIC_CATEGORY_M2M,
		partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP,
		partnerv1.TrafficCategory_TRAFFIC_CATEGORY_INTERPERSONAL:
		return false
	}
	return true
}

// sectorKey compares sector names the way a partner may write them:
// "Energy renovation", "energy-renovation" and "energy_renovation" are one.
func sectorKey(s string) string {
	return strings.Join(strings.Fields(foldText(s).s), "_")
}

// checkSector refuses a message whose declared sector may not be
// canvassed by SMS at all, whatever its category: the 2025 law bans the
// prospection, not a wording.
func checkSector(banned map[string]bool) func(context.Context, *Candidate) (Verdict, error) {
	return func(_ context.Context, c *Candidate) (Verdict, error) {
		sector := c.Accepted.GetSector()
		if sector == "" || !banned[sectorKey(sector)] {
			return Verdict{}, nil
		}
		return refuse(partnerv1.Reason_REASON_SECTOR_BANNED, fmt.Sprintf(
			"sector %q may not be canvassed by SMS (French law of 30 June 2025 against fraud on public aid)", sector)), nil
	}
}

// checkAdult refuses a text holding a term of the adult-content list as a
// whole word or phrase, case, accents and separators ignored
// ("Rencontre-Adulte"), also spelled out letter by letter ("s.e.x.e"). A
// term inside a longer word does not count ("Essex").
func checkAdult(adult termSet) func(context.Context, *Candidate) (Verdict, error) {
	return func(_ context.Context, c *Candidate) (Verdict, error) {
		ft := textOf(c)
		term, ok := adult.find(ft)
		if !ok {
			// Letters spaced out to dodge a filter ("s e x e", "x.x.x").
			if j, joined := ft.joinSpelled(); joined {
				term, ok = adult.find(j)
			}
		}
		if !ok {
			return Verdict{}, nil
		}
		return refuse(partnerv1.Reason_REASON_ADULT_CONTENT, fmt.Sprintf("the text holds %q, a term of the adult-content list", term)), nil
	}
}

// checkFreeClaim refuses a marketing text that says something is free
// (a term of the list, whole word, case and accents ignored) unless the
// campaign attests that everything promoted is free. The opt-out's own
// "gratuit" ("STOP au 36123 (gratuit)", "désinscription gratuite") is not
// a claim: the law wants the opt-out free, and saying so promotes nothing.
func checkFreeClaim(free termSet) func(context.Context, *Candidate) (Verdict, error) {
	return func(_ context.Context, c *Candidate) (Verdict, error) {
		acc := c.Accepted
		if !marketingLike(acc.GetCategory()) || acc.GetAttestations().GetFreeClaimSubstantiated() {
			return Verdict{}, nil
		}
		ft := textOf(c)
		term, ok := free.find(ft)
		if ok {
			// "STOP au 36123 (gratuit)" says the opt-out is free, as the
			// law wants it; it promotes nothing.
			term, ok = free.find(ft.withoutOptOut())
		}
		if !ok {
			return Verdict{}, nil
		}
		return refuse(partnerv1.Reason_REASON_FREE_CLAIM_UNATTESTED, fmt.Sprintf(
			"the text claims %q: a free offer needs the campaign's attestation that everything promoted is free (attestations.free_claim_substantiated)", term)), nil
	}
}

// checkStopMention wants the STOP mention of the message's own short code
// in a marketing text (policy.StopMention: "STOP au 36123"), written any
// usual way: "STOP 36123", "Stop SMS au 36123", "STOP : 36 123". A
// mention of another short code does not count: the subscriber would
// write to a number that does not know them.
func checkStopMention(_ context.Context, c *Candidate) (Verdict, error) {
	acc := c.Accepted
	if !marketingLike(acc.GetCategory()) || acc.GetAttestations().GetStopInformedAtCollection() {
		return Verdict{}, nil
	}
	sc := acc.GetShortCode()
	found, other := textOf(c).stopMention(sc)
	if found {
		return Verdict{}, nil
	}
	want := policy.StopMention(sc)
	if other != "" {
		return refuse(partnerv1.Reason_REASON_STOP_MENTION_MISSING, fmt.Sprintf(
			"the STOP mention names short code %s, not the message's short code: write %q (or ask ingest to append it), or attest that recipients were told at collection", other, want)), nil
	}
	return refuse(partnerv1.Reason_REASON_STOP_MENTION_MISSING, fmt.Sprintf(
		"a marketing text must say how to opt out: %q is missing (ask ingest to append it, or attest that recipients were told at collection)", want)), nil
}

// checkBrand wants the brand named in a marketing text. The brand is
// identified when, case, accents, spaces and punctuation ignored, it
// equals a run of whole words of the text, a leading article ("le", "la",
// "les", "l'", "the") being optional: brand "Les Galeries Lafayette"
// matches "GALERIES LAFAYETTE" and "Galeries-Lafayette", brand
// "Leroy Merlin" matches "LeroyMerlin", brand "Acme" matches "Acme's" but
// not "Acmeshop". A brand folding to nothing cannot be found.
func checkBrand(_ context.Context, c *Candidate) (Verdict, error) {
	acc := c.Accepted
	if !marketingLike(acc.GetCategory()) {
		return Verdict{}, nil
	}
	brand := acc.GetBrand()
	if strings.TrimSpace(brand) == "" {
		return refuse(partnerv1.Reason_REASON_BRAND_NOT_IDENTIFIED, "a marketing message must name its brand, and the text must show it"), nil
	}
	if textOf(c).hasBrand(brand) {
		return Verdict{}, nil
	}
	return refuse(partnerv1.Reason_REASON_BRAND_NOT_IDENTIFIED, fmt.Sprintf(
		"the text does not name the brand %q: the issuer must be identifiable from the message itself", brand)), nil
}

// textOf is the folded text of c, for the content rules.
func textOf(c *Candidate) folded { return foldText(c.Accepted.GetText()) }

// folded is a text reduced to its words: lower case, accents and
// ligatures removed ("Œuvre" → "oeuvre"), invisible format characters
// dropped, every run of other characters (spaces, punctuation, symbols,
// emoji) one space, with a space at both ends. " word " is then found as
// a whole word, " two words " as a phrase, whatever the separators.
type folded struct {
	s string
}

// latinFold gives the base letter of U+00C0–U+017F ('.' where foldRune
// decides: ligatures, × and ÷).
const latinFold = "aaaaaa.ceeeeiiiidnooooo.ouuuuy..aaaaaa.ceeeeiiiidnooooo.ouuuuy.y" +
	"aaaaaaccccccccddddeeeeeeeeeegggggggghhhhiiiiiiiiii..jjkkklllllll" +
	"lllnnnnnnnnnoooooo..rrrrrrssssssssttttttuuuuuuuuuuuuwwyyyzzzzzzs"

// foldRune appends r's folded form to b and reports whether r is part of
// a word; skip is true for characters that are dropped without breaking
// the word (combining accents, soft hyphen, zero-width characters).
func foldRune(b []byte, r rune) (out []byte, word, skip bool) {
	switch {
	case r < utf8.RuneSelf:
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9':
			return append(b, byte(r)), true, false
		case 'A' <= r && r <= 'Z':
			return append(b, byte(r)+'a'-'A'), true, false
		}
		return b, false, false
	case r >= 0xC0 && r < 0x180:
		if f := latinFold[r-0xC0]; f != '.' {
			return append(b, f), true, false
		}
		switch r {
		case 'Æ', 'æ':
			return append(b, "ae"...), true, false
		case 'Œ', 'œ':
			return append(b, "oe"...), true, false
		case 'ß':
			return append(b, "ss"...), true, false
		case 'Þ', 'þ':
			return append(b, "th"...), true, false
		case 'Ĳ', 'ĳ':
			return append(b, "ij"...), true, false
		}
		return b, false, false // × ÷
	case unicode.Is(unicode.Mn, r), unicode.Is(unicode.Cf, r):
		return b, false, true
	case unicode.IsLetter(r) || unicode.IsDigit(r):
		if l := unicode.ToLower(r); l != r {
			// Å (U+212B ANGSTROM SIGN) lowers to å, which folds further.
			return foldRune(b, l)
		}
		return utf8.AppendRune(b, r), true, false
	}
	return b, false, false
}

// foldText folds s (see folded). ASCII, most of a French text, takes a
// path of its own that decodes no rune.
func foldText(s string) folded {
	b := make([]byte, 1, len(s)+2)
	b[0] = ' '
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			i++
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
				b = append(b, c)
			case 'A' <= c && c <= 'Z':
				b = append(b, c+'a'-'A')
			case b[len(b)-1] != ' ':
				b = append(b, ' ')
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		var word, skip bool
		n := len(b)
		b, word, skip = foldRune(b, r)
		if !word && !skip && b[n-1] != ' ' {
			b = append(b, ' ')
		}
	}
	if b[len(b)-1] != ' ' {
		b = append(b, ' ')
	}
	return folded{s: string(b)}
}

// words calls yield with each word in order until it returns false.
func (f folded) words(yield func(w string) bool) {
	s := f.s
	for len(s) > 1 {
		s = s[1:] // the space before the word
		i := strings.IndexByte(s, ' ')
		if !yield(s[:i]) {
			return
		}
		s = s[i:]
	}
}

// joinSpelled joins runs of three or more one-character words ("s e x e"
// → "sexe"); it reports false when there is none, which is the usual case.
func (f folded) joinSpelled() (folded, bool) {
	if !f.hasSpelledRun() {
		return folded{}, false
	}
	var (
		b      strings.Builder
		run    []string
		joined bool
	)
	b.WriteByte(' ')
	flush := func() {
		if len(run) >= 3 {
			joined = true
			b.WriteString(strings.Join(run, ""))
			b.WriteByte(' ')
		} else {
			for _, w := range run {
				b.WriteString(w)
				b.WriteByte(' ')
			}
		}
		run = run[:0]
	}
	f.words(func(w string) bool {
		if utf8.RuneCountInString(w) == 1 {
			run = append(run, w)
			return true
		}
		flush()
		b.WriteString(w)
		b.WriteByte(' ')
		return true
	})
	flush()
	if !joined {
		return folded{}, false
	}
	return folded{s: b.String()}, true
}

// hasSpelledRun reports whether f holds three one-character words in a
// row, without building anything.
func (f folded) hasSpelledRun() bool {
	run := 0
	f.words(func(w string) bool {
		if utf8.RuneCountInString(w) == 1 {
			run++
		} else {
			run = 0
		}
		return run < 3
	})
	return run >= 3
}

// termSet is a term list folded once: one-word terms in a map, phrases as
// " two words " to look for in a folded text. The values are the terms as
// configured, for the decision's detail.
type termSet struct {
	words   map[string]string
	phrases []struct{ folded, term string }
}

func compileTerms(terms []string) termSet {
	ts := termSet{words: make(map[string]string, len(terms))}
	for _, t := range terms {
		f := foldText(t)
		switch n := strings.Count(f.s, " ") - 1; {
		case n == 1:
			ts.words[strings.TrimSpace(f.s)] = t
		case n > 1:
			ts.phrases = append(ts.phrases, struct{ folded, term string }{f.s, t})
		}
		// n == 0: a term with no letter or digit matches nothing.
	}
	return ts
}

// find returns the first term of the set that f holds as a whole word or
// phrase.
func (ts termSet) find(f folded) (string, bool) {
	var term string
	if len(ts.words) > 0 {
		f.words(func(w string) bool {
			t, ok := ts.words[w]
			if ok {
				term = t
			}
			return !ok
		})
		if term != "" {
			return term, true
		}
	}
	for _, p := range ts.phrases {
		if strings.Contains(f.s, p.folded) {
			return p.term, true
		}
	}
	return "", false
}

// stopFiller reports whether w may stand between STOP and the short code:
// "STOP au 36123", "Stop SMS au 36123", "STOP pub 36123", "STOP à 36123",
// "STOP gratuit au 36123".
func stopFiller(w string) bool {
	switch w {
	case "au", "a", "sms", "pub", "par", "vers", "le", "to", "gratuit", "gratuitement", "free":
		return true
	}
	return false
}

// optOutTrailer reports whether w may follow the short code in a STOP
// mention: "STOP au 36123 (gratuit)", "STOP 36123, c'est gratuit",
// "STOP au 36123 (SMS non surtaxé)".
func optOutTrailer(w string) bool {
	switch w {
	case "gratuit", "gratuite", "gratuitement", "free", "c", "est", "envoi", "sms", "non", "surtaxe", "sans", "frais":
		return true
	}
	return false
}

// maxOptOutTrailer bounds the trailer words after the short code.
const maxOptOutTrailer = 3

// optOutNoun reports whether w names the opt-out: "désinscription
// gratuite" is about the opt-out, not a promotion.
func optOutNoun(w string) bool {
	switch w {
	case "desinscription", "desabonnement", "desinscrire", "desabonner", "retrait", "opposition", "resiliation":
		return true
	}
	return false
}

// withoutOptOut returns f without its STOP mentions (STOP, fillers, the
// short code's digits, a short trailer) and without the word that follows
// an opt-out noun: what is left is what the text promotes.
func (f folded) withoutOptOut() folded {
	var ws []string
	f.words(func(w string) bool { ws = append(ws, w); return true })
	drop := make([]bool, len(ws))
	for i := 0; i < len(ws); i++ {
		w := ws[i]
		if optOutNoun(w) && i+1 < len(ws) {
			drop[i+1] = true
			continue
		}
		if w != "stop" && !(strings.HasPrefix(w, "stop") && isDigits(w[len("stop"):])) {
			continue
		}
		j := i + 1
		for fillers := 0; j < len(ws) && fillers < maxStopFillers && stopFiller(ws[j]); fillers++ {
			j++
		}
		digits := w != "stop"
		for ; j < len(ws) && isDigits(ws[j]); j++ {
			digits = true
		}
		if !digits {
			continue // "STOP" alone: not a mention, nothing to drop
		}
		for n := 0; j < len(ws) && n < maxOptOutTrailer && optOutTrailer(ws[j]); n++ {
			j++
		}
		for k := i; k < j; k++ {
			drop[k] = true
		}
		i = j - 1
	}
	var b strings.Builder
	b.WriteByte(' ')
	for i, w := range ws {
		if !drop[i] {
			b.WriteString(w)
			b.WriteByte(' ')
		}
	}
	return folded{s: b.String()}
}

// maxStopFillers bounds the filler words after STOP.
const maxStopFillers = 3

// stopMention looks for STOP followed by the short code sc (its digits
// possibly grouped, "36 123"), fillers in between. It reports whether it
// found sc, else the short code another mention names ("" if none).
func (f folded) stopMention(sc string) (found bool, other string) {
	s := f.s
	for {
		i := strings.Index(s, " stop")
		if i < 0 {
			return false, other
		}
		w, rest := firstWord(s[i:])
		s = rest
		var digits string
		switch {
		case w == "stop":
		case isDigits(w[len("stop"):]):
			digits = w[len("stop"):] // "STOP36123"
		default:
			continue // "stopper", "stops"
		}
		if digits == "" {
			for fillers := 0; fillers < maxStopFillers; fillers++ {
				w, next := firstWord(rest)
				if !stopFiller(w) {
					break
				}
				rest = next
			}
		}
		// Gather digit groups while they can still spell the short code.
		for len(digits) < len(sc) {
			w, next := firstWord(rest)
			if !isDigits(w) {
				break
			}
			digits += w
			rest = next
		}
		if digits == sc {
			return true, ""
		}
		if digits != "" && other == "" {
			other = digits
		}
	}
}

// firstWord splits s, a folded text or a tail of one (" word rest… "),
// into its first word and the rest (" rest… "); the word is "" at the end.
func firstWord(s string) (word, rest string) {
	if len(s) < 2 {
		return "", s
	}
	i := strings.IndexByte(s[1:], ' ')
	if i < 0 {
		return "", s
	}
	return s[1 : 1+i], s[1+i:]
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// brandArticle reports whether w, starting a brand, may be left out of
// the text.
func brandArticle(w string) bool {
	switch w {
	case "le", "la", "les", "l", "the":
		return true
	}
	return false
}

// hasBrand reports whether brand, squeezed (folded, no spaces), equals
// the concatenation of a run of consecutive whole words of f; a leading
// article of the brand may be missing.
func (f folded) hasBrand(brand string) bool {
	fb := foldText(brand)
	var bw []string
	fb.words(func(w string) bool { bw = append(bw, w); return true })
	if len(bw) == 0 {
		return false
	}
	if f.hasRun(strings.Join(bw, "")) {
		return true
	}
	return len(bw) > 1 && brandArticle(bw[0]) && f.hasRun(strings.Join(bw[1:], ""))
}

// hasRun reports whether squeezed is the concatenation of a run of
// consecutive words of f.
func (f folded) hasRun(squeezed string) bool {
	s := f.s
	for i := 0; i < len(s)-1; i++ {
		if s[i] != ' ' {
			continue
		}
		// A run starting at word i+1: walk squeezed against the text,
		// spaces in the text being word boundaries.
		j, k := i+1, 0
		for k < len(squeezed) && j < len(s) {
			if s[j] == ' ' {
				j++
				continue
			}
			if s[j] != squeezed[k] {
				break
			}
			j++
			k++
		}
		if k == len(squeezed) && j < len(s) && s[j] == ' ' {
			return true
		}
	}
	return false
}
