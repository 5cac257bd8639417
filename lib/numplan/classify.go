package numplan

import (
	"fmt"
	"strings"
)

// The E.164 length limits (compliance.md §1.1): 15 digits at most; 7 is
// the shortest number any country plan assigns to a subscriber in practice.
const (
	maxE164Digits = 15
	minE164Digits = 7
)

// overseasPrefix returns the country code digits start with when it is one
// of the overseas departments and collectivities that share the French
// national plan, or "".
func overseasPrefix(digits string) string {
	for _, cc := range [...]string{"262", "508", "590", "594", "596"} {
		if strings.HasPrefix(digits, cc) {
			return cc
		}
	}
	return ""
}

// international handles the digits after "+" or "00".
func international(d string) (Number, error) {
	switch {
	case d == "" || d[0] == '0':
		return Number{}, fmt.Errorf("parse: country code starts with 0: %w", ErrInvalid)
	case strings.HasPrefix(d, "33"):
		return french33(d[2:])
	}
	if cc := overseasPrefix(d); cc != "" {
		return overseas(cc, d[len(cc):])
	}
	if len(d) < minE164Digits || len(d) > maxE164Digits {
		return Number{}, fmt.Errorf("parse: %d digits in an international number: %w", len(d), ErrInvalid)
	}
	return Number{nsn: d, class: Foreign}, nil
}

// national handles a number written with the trunk prefix 0.
func national(s string) (Number, error) {
	switch len(s) {
	case 10, 13, 14: // ordinary, overseas M2M, metropolitan M2M
		return fromNSN(s[1:])
	}
	return Number{}, fmt.Errorf("parse: %d digits in a national number: %w", len(s), ErrInvalid)
}

// french33 handles what follows country code 33, dropping a trunk 0 written
// by mistake (+33 0612345678, +33 (0) without the parentheses).
func french33(nsn string) (Number, error) {
	if strings.HasPrefix(nsn, "0") {
		nsn = nsn[1:]
	}
	return fromNSN(nsn)
}

// fromNSN classifies a national significant number of the French national
// plan, moving overseas numbers to their own country code.
func fromNSN(nsn string) (Number, error) {
	if nsn == "" || nsn[0] == '0' {
		return Number{}, fmt.Errorf("parse: national number starts with 00: %w", ErrInvalid)
	}
	switch len(nsn) {
	case 9:
	case 13:
		// Metropolitan M2M: national 0700 0… on 14 digits (§1.4).
		if strings.HasPrefix(nsn, "7000") {
			return Number{cc: "33", nsn: nsn, class: M2M}, nil
		}
		return Number{}, fmt.Errorf("parse: 13-digit NSN outside 7000: %w", ErrInvalid)
	case 12:
		// Overseas M2M: national 0700 5…–0700 9… on 13 digits (§1.4).
		if cc := overseasM2M(nsn); cc != "" {
			return Number{cc: cc, nsn: nsn, class: Overseas}, nil
		}
		return Number{}, fmt.Errorf("parse: 12-digit NSN outside 700[5-9]: %w", ErrInvalid)
	default:
		return Number{}, fmt.Errorf("parse: %d-digit NSN after 33: %w", len(nsn), ErrInvalid)
	}

	// Routing prefixes first: 070846–070849 would otherwise look like SPM.
	if routingPrefix(nsn) {
		return Number{cc: "33", nsn: nsn, class: RoutingPrefix}, nil
	}
	switch cc := overseasNSN(nsn); {
	case cc == "508" && strings.HasPrefix(nsn, "508"):
		// 0508 + 6 digits: the older SPM numbers have a 6-digit NSN.
		if nsn[3] == '0' {
			return Number{}, fmt.Errorf("parse: SPM number starts with 0: %w", ErrInvalid)
		}
		return Number{cc: cc, nsn: nsn[3:], class: Overseas}, nil
	case cc != "":
		return Number{cc: cc, nsn: nsn, class: Overseas}, nil
	case strings.HasPrefix(nsn, "709"):
		// Overseas mobile space not yet given to a territory: no country
		// code to move it to, but still not metropolitan.
		return Number{cc: "33", nsn: nsn, class: Overseas}, nil
	case metroMobile(nsn):
		return Number{cc: "33", nsn: nsn, class: Mobile}, nil
	case nsn[0] == '6' || nsn[0] == '7':
		// 0700 on 10 digits, 0701–0707, 071, 072: not open.
		return Number{}, fmt.Errorf("parse: unallocated mobile range: %w", ErrInvalid)
	}
	return Number{cc: "33", nsn: nsn, class: NonMobile}, nil
}

// overseas handles what follows an overseas country code.
func overseas(cc, nsn string) (Number, error) {
	if strings.HasPrefix(nsn, "0") {
		nsn = nsn[1:]
	}
	switch {
	case nsn == "" || nsn[0] == '0':
		return Number{}, fmt.Errorf("parse: +%s then 00: %w", cc, ErrInvalid)
	case cc == "508" && len(nsn) == 9 && routingPrefix(nsn):
		return Number{cc: cc, nsn: nsn, class: RoutingPrefix}, nil
	case len(nsn) == 9,
		len(nsn) == 12 && overseasM2M(nsn) == cc,
		cc == "508" && len(nsn) == 6:
		return Number{cc: cc, nsn: nsn, class: Overseas}, nil
	}
	return Number{}, fmt.Errorf("parse: %d-digit NSN after +%s: %w", len(nsn), cc, ErrInvalid)
}

// routingPrefix reports the mobile-portability routing prefixes of ARCEP
// plan §2.5.6 (compliance.md §1.5), 9-digit NSN form.
func routingPrefix(nsn string) bool {
	p3 := nsn[:3]
	switch {
	case p3 == "600": // 06000–06009, 06004/06005 being reserve
		return true
	case p3 >= "509" && p3 <= "515", p3 >= "526" && p3 <= "530":
		return true
	case p3 == "523" && nsn[3] >= '0' && nsn[3] <= '4':
		return true // 05230–05234
	case nsn[:4] == "7084" && nsn[4] >= '6' && nsn[4] <= '9':
		return true // 070846–070849
	}
	return false
}

// overseasNSN returns the country code of a 9-digit NSN that the national
// plan gives to an overseas territory (compliance.md §1.6 step 5), or "".
func overseasNSN(nsn string) string {
	switch nsn[:3] {
	case "590", "690", "691":
		return "590"
	case "594", "694":
		return "594"
	case "596", "696", "697":
		return "596"
	case "262", "263", "692", "693", // La Réunion
		"269", "639": // Mayotte
		return "262"
	case "508", "708":
		return "508"
	case "709":
		switch {
		case nsn[3] == '0':
			return "590"
		case nsn[3] == '1':
			return "596"
		case nsn[3] == '2':
			return "262"
		case nsn[3] == '3' && nsn[4] >= '0' && nsn[4] <= '3':
			return "594"
		case nsn[3] == '3' && nsn[4] >= '5' && nsn[4] <= '7':
			return "262" // Mayotte
		}
	}
	return ""
}

// overseasM2M returns the country code of a 12-digit overseas M2M NSN
// (700 5…–700 9…), or "".
func overseasM2M(nsn string) string {
	if len(nsn) != 12 || !strings.HasPrefix(nsn, "700") {
		return ""
	}
	switch nsn[3] {
	case '5':
		return "590" // Guadeloupe, St-Martin, St-Barthélemy
	case '6':
		return "594" // Guyane
	case '7':
		return "596" // Martinique
	case '8', '9':
		return "262" // Mayotte, La Réunion
	}
	return ""
}

// metroMobile implements the metropolitan mobile NSN pattern of
// compliance.md §1.2:
// ^(?:6(?:0[1-9]|[1-24-8]\d|3[0-8]|9[589])|7[3-9]\d)\d{6}$.
func metroMobile(nsn string) bool {
	if len(nsn) != 9 {
		return false
	}
	a, b := nsn[1], nsn[2]
	switch nsn[0] {
	case '6':
		switch a {
		case '0':
			return b != '0'
		case '1', '2', '4', '5', '6', '7', '8':
			return true
		case '3':
			return b != '9'
		case '9':
			return b == '5' || b == '8' || b == '9'
		}
	case '7':
		return a >= '3' && a <= '9'
	}
	return false
}
