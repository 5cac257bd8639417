package gsm

import (
	"strings"
	"unicode/utf8"
)

// Policy says what Analyze may change to fit a message into GSM-7. The zero
// Policy changes nothing: GSM-7 when the text is representable as is,
// UCS-2 otherwise.
//
// Normalisation is all or nothing: it is kept only when the whole
// normalised text fits GSM-7. A message that needs UCS-2 anyway (an emoji, a
// "ê" without Transliterate) is sent exactly as written, since rewriting
// "…" as "..." would then cost more UCS-2 units for nothing.
type Policy struct {
	// Typography rewrites French typographic characters to their GSM-7
	// equivalents (the table is in typography below):
	//
	//	’ ‘ ‚ ‛ ′ ´ ʼ `        → '   (apostrophes, single quotes, prime, backtick)
	//	“ ” „ ‟ ″              → "   (double quotes)
	//	« »                    → "   and the space or (narrow) NBSP just inside
	//	                             them is dropped: «\u00a0Soldes\u00a0» → "Soldes"
	//	‹ ›                    → '
	//	…                      → ...
	//	‐ ‑ ‒ – — ― −          → -   (hyphens, en/em dash, minus sign)
	//	NBSP U+00A0, NNBSP U+202F, U+2000–U+200A spaces, TAB → space
	//	œ Œ                    → oe OE
	//	soft hyphen U+00AD, ZWSP U+200B, WJ U+2060, BOM U+FEFF → removed
	//
	// Not mapped on purpose: ° (no neutral rewrite for both "n°" and "25°C"),
	// emoji, ZWJ/ZWNJ.
	Typography bool

	// Transliterate replaces letters the GSM-7 alphabet lacks by their base
	// letter: â ê î ô û ë ï ÿ ç → a e i o u e i y c, capitals À Â È Ê Ë Î Ï
	// Ô Ù Û Ÿ → A A E E E I I O U U Y, and the other accented letters of
	// Latin-1 and Latin Extended-A that appear in names (á í ó ú ã õ ý ð,
	// ą ć č ď ę ě ğ ı ł ľ ń ň ő ř ś š ş ţ ť ů ű ź ż ž and their capitals).
	// The table is in transliterate below. Letters GSM-7 has (é è à ù ì ò É
	// Ç Ä Ö Ü ä ö ü ñ Ñ Å å Ø ø Æ æ ß) are never touched.
	Transliterate bool

	// CedillaAsCapital sends ç as septet 0x09, which 3GPP handsets show as
	// Ç ("franÇais"); Analysis.Text then holds Ç. When false, ç becomes c
	// under Transliterate or forces UCS-2.
	CedillaAsCapital bool
}

// French is the policy suited to French marketing text: typography
// normalised, accents kept (UCS-2 when one is missing from GSM-7), so the
// text the subscriber reads is never degraded without the sender opting in
// with Transliterate.
func French() Policy {
	return Policy{Typography: true}
}

func (p Policy) rewrites() bool {
	return p.Typography || p.Transliterate || p.CedillaAsCapital
}

// isSpaceLike reports the spaces French typography puts inside guillemets.
func isSpaceLike(r rune) bool {
	return r == ' ' || r == '\u00a0' || r == '\u202f' || (r >= '\u2000' && r <= '\u200a')
}

// typography returns the replacement for r under Policy.Typography.
func typography(r rune) (string, bool) {
	switch r {
	case '’', '‘', '‚', '‛', '′', '´', 'ʼ', '`', '‹', '›':
		return "'", true
	case '“', '”', '„', '‟', '″', '«', '»':
		return `"`, true
	case '…':
		return "...", true
	case '‐', '‑', '‒', '–', '—', '―', '−':
		return "-", true
	case '\u00a0', '\u202f', '\t':
		return " ", true
	case 'œ':
		return "oe", true
	case 'Œ':
		return "OE", true
	case '\u00ad', '\u200b', '\u2060', '\ufeff':
		return "", true
	}
	if r >= '\u2000' && r <= '\u200a' {
		return " ", true
	}
	return "", false
}

// transliterate returns the base letter for a letter GSM-7 lacks.
func transliterate(r rune) (string, bool) {
	switch r {
	case 'á', 'â', 'ã', 'ā', 'ă', 'ą':
		return "a", true
	case 'À', 'Á', 'Â', 'Ã', 'Ā', 'Ă', 'Ą':
		return "A", true
	case 'ç', 'ć', 'č':
		return "c", true
	case 'Ć', 'Č':
		return "C", true
	case 'ď', 'đ', 'ð':
		return "d", true
	case 'Ď', 'Đ', 'Ð':
		return "D", true
	case 'ê', 'ë', 'ē', 'ę', 'ě':
		return "e", true
	case 'È', 'Ê', 'Ë', 'Ē', 'Ę', 'Ě':
		return "E", true
	case 'ğ':
		return "g", true
	case 'Ğ':
		return "G", true
	case 'í', 'î', 'ï', 'ī', 'ı':
		return "i", true
	case 'Ì', 'Í', 'Î', 'Ï', 'Ī', 'İ':
		return "I", true
	case 'ł', 'ľ':
		return "l", true
	case 'Ł', 'Ľ':
		return "L", true
	case 'ń', 'ň':
		return "n", true
	case 'Ń', 'Ň':
		return "N", true
	case 'ó', 'ô', 'õ', 'ō', 'ő':
		return "o", true
	case 'Ò', 'Ó', 'Ô', 'Õ', 'Ō', 'Ő':
		return "O", true
	case 'ř':
		return "r", true
	case 'Ř':
		return "R", true
	case 'ś', 'š', 'ş':
		return "s", true
	case 'Ś', 'Š', 'Ş':
		return "S", true
	case 'ţ', 'ť':
		return "t", true
	case 'Ţ', 'Ť':
		return "T", true
	case 'ú', 'û', 'ū', 'ů', 'ű':
		return "u", true
	case 'Ù', 'Ú', 'Û', 'Ū', 'Ů', 'Ű':
		return "U", true
	case 'ý', 'ÿ':
		return "y", true
	case 'Ý', 'Ÿ':
		return "Y", true
	case 'ź', 'ż', 'ž':
		return "z", true
	case 'Ź', 'Ż', 'Ž':
		return "Z", true
	}
	return "", false
}

// normalise applies p to s. It is only called when s is not GSM-7 as is.
func normalise(s string, p Policy) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		if p.CedillaAsCapital && r == 'ç' {
			b.WriteRune('Ç')
			continue
		}
		if p.Typography {
			switch {
			case r == '«':
				// Drop the (narrow) no-break space French puts inside.
				if next, m := utf8.DecodeRuneInString(s[i:]); m > 0 && isSpaceLike(next) {
					i += m
				}
			case isSpaceLike(r):
				if next, _ := utf8.DecodeRuneInString(s[i:]); next == '»' {
					continue
				}
			}
			if rep, ok := typography(r); ok {
				b.WriteString(rep)
				continue
			}
		}
		if p.Transliterate {
			if rep, ok := transliterate(r); ok {
				b.WriteString(rep)
				continue
			}
		}
		b.WriteRune(r)
	}
	return b.String()
}
