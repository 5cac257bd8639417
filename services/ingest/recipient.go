package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode/utf8"

	"pushsms.io/lib/numplan"
)

// maxRecipientLen bounds what a partner may send as a recipient; a phone
// number however formatted is far shorter.
const maxRecipientLen = 64

// recipient is how ingest keeps a recipient: masked for the partner's eyes
// and hashed for correlation, never in clear. Whether the number may
// receive SMS is compliance's decision, not ours.
type recipient struct {
	masked string
	hash   string
}

func newRecipient(raw string) recipient {
	if n, err := numplan.Parse(raw); err == nil {
		return recipient{masked: n.Masked(), hash: n.Hash()}
	}
	// Not a number (compliance will reject it), but it may still be a
	// phone number written oddly: it gets the same treatment.
	clean := strings.TrimSpace(raw)
	sum := sha256.Sum256([]byte(clean))
	return recipient{masked: maskText(clean), hash: hex.EncodeToString(sum[:16])}
}

// maskText keeps the first two and last two characters of s when s is
// long enough that the rest stays hidden, and masks everything else.
func maskText(s string) string {
	n := utf8.RuneCountInString(s)
	if n <= 6 {
		return strings.Repeat("•", n)
	}
	r := []rune(s)
	return string(r[:2]) + strings.Repeat("•", n-4) + string(r[n-2:])
}
