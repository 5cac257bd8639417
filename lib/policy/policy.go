// Package policy is the compliance rule set as data: the sending window,
// the short-code ranges and options, the network check, the frequency cap,
// the content rules and the opt-out keywords, each with its source. A
// Policy is a versioned JSON document; the platform ships Default, the
// aggregator replaces it at run time (every replica watches the POLICY
// bucket) without a restart.
package policy

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

//go:embed default.json
var defaultJSON []byte

// Default returns the platform's own policy: the operator's offer and French
// law as of its version.
func Default() Policy {
	p, err := Parse(defaultJSON)
	if err != nil {
		panic(fmt.Sprintf("policy: embedded default.json: %v", err)) // TestDefault catches it
	}
	return p
}

// DefaultJSON returns the embedded default document, to start a custom one from.
func DefaultJSON() []byte { return bytes.Clone(defaultJSON) }

// Policy is the whole rule set. Field names are the JSON document's.
type Policy struct {
	// Version names this rule set; every decision records it.
	Version string `json:"version"`
	Window  Window `json:"window"`
	// ShortCodeRanges maps a range (a short code's first two digits) to the
	// categories it may carry ("marketing", "customer_relationship",
	// "mo_session_reply", "interpersonal", "m2m").
	ShortCodeRanges map[string][]string `json:"short_code_ranges"`
	// ShortCodes are the options the aggregator subscribed per short code.
	// A short code not listed has none.
	ShortCodes map[string]ShortCode `json:"short_codes,omitempty"`
	// MOSession is how long a session the subscriber opened with an MO
	// lasts: 34ABC replies are allowed within it.
	MOSession Duration  `json:"mo_session"`
	Network   Network   `json:"network"`
	Frequency Frequency `json:"frequency"`
	Sender    Sender    `json:"sender"`
	Content   Content   `json:"content"`
	OptOut    OptOut    `json:"opt_out"`
}

// Window is the marketing sending window, French wall-clock time.
type Window struct {
	Open  Clock `json:"open"`
	Close Clock `json:"close"`
	// AlsaceMoselle also closes it on Good Friday and 26 December.
	AlsaceMoselle bool `json:"alsace_moselle,omitempty"`
}

// ShortCode are one short code's subscribed options.
type ShortCode struct {
	// OAdCModification lets messages from this short code show a brand
	// name as sender.
	OAdCModification bool `json:"oadc_modification,omitempty"`
	// GeoPresence is the option a 35ABC short code needs for direct
	// marketing.
	GeoPresence bool `json:"geo_presence,omitempty"`
	// Window, when set, replaces the default window for this short code's
	// contract (e.g. the af2m charter's 21:30).
	Window *Window `json:"window,omitempty"`
}

// Network is the destination-network check.
type Network struct {
	Check bool `json:"check"`
	// Operator is the ARCEP code (identifiant CE) that counts as on-network.
	Operator string `json:"operator"`
}

// Frequency is the marketing frequency cap.
type Frequency struct {
	// Cap is how many marketing messages a recipient may get per brand and
	// period; 0 turns the cap off.
	Cap int `json:"cap"`
	// Period is "day" (French calendar day) or "week" (Monday to Sunday,
	// French time).
	Period string `json:"period"`
}

// Sender is the OAdC rule.
type Sender struct {
	// MaxLength is the longest alphanumeric sender, in GSM-7 characters.
	MaxLength int `json:"max_length"`
}

// Content are the content rules of marketing texts.
type Content struct {
	// StopMention requires the short code's STOP mention in marketing
	// texts unless the recipients were told at collection.
	StopMention bool `json:"stop_mention"`
	// AdultTerms refuse any text holding one of them (whole words, any
	// case, accents ignored).
	AdultTerms []string `json:"adult_terms"`
	// FreeTerms need the free-claim attestation in marketing texts.
	FreeTerms []string `json:"free_terms"`
	// BannedSectors may not be canvassed by SMS at all.
	BannedSectors []string `json:"banned_sectors"`
	// BrandInText requires the brand's name in marketing texts.
	BrandInText bool `json:"brand_in_text"`
}

// OptOut are the MO keywords and the confirmation.
type OptOut struct {
	// StopKeywords opt the subscriber out (any case, accents and
	// surrounding punctuation ignored; "STOP 36123" too).
	StopKeywords []string `json:"stop_keywords"`
	// ResubscribeKeywords undo the subscriber's own STOPs to that short code.
	ResubscribeKeywords []string `json:"resubscribe_keywords"`
	// Confirmation, when not empty, is sent back to the subscriber after a
	// STOP; {brand} is replaced by the brand, or the short code. No
	// promotion may be in it.
	Confirmation string `json:"confirmation,omitempty"`
}

// Parse reads a policy document: unknown fields are errors, and the result
// is validated.
func Parse(data []byte) (Policy, error) {
	var p Policy
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Policy{}, fmt.Errorf("policy: %w", err)
	}
	if dec.More() {
		return Policy{}, errors.New("policy: trailing data after the document")
	}
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// Categories are the traffic category names a range may list.
var Categories = []string{"marketing", "customer_relationship", "mo_session_reply", "interpersonal", "m2m"}

// Validate checks the document.
func (p Policy) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("policy: "+format, a...)) }
	if strings.TrimSpace(p.Version) == "" {
		bad("version is empty")
	}
	if err := p.Window.validate(); err != nil {
		bad("window: %v", err)
	}
	if len(p.ShortCodeRanges) == 0 {
		bad("no short-code range")
	}
	for r, cats := range p.ShortCodeRanges {
		if len(r) != 2 || strings.Trim(r, "0123456789") != "" {
			bad("short-code range %q: want two digits", r)
		}
		for _, c := range cats {
			if !contains(Categories, c) {
				bad("short-code range %s: unknown category %q (want one of %s)", r, c, strings.Join(Categories, ", "))
			}
		}
	}
	for code, sc := range p.ShortCodes {
		if len(code) != 5 || strings.Trim(code, "0123456789") != "" {
			bad("short code %q: want five digits", code)
		}
		if sc.Window != nil {
			if err := sc.Window.validate(); err != nil {
				bad("short code %s: window: %v", code, err)
			}
		}
	}
	if p.MOSession <= 0 || time.Duration(p.MOSession) > MaxMOSession {
		bad("mo_session %v: want more than 0 and at most %v", time.Duration(p.MOSession), MaxMOSession)
	}
	if p.Network.Check && p.Network.Operator == "" {
		bad("network check without an operator")
	}
	if p.Frequency.Cap < 0 {
		bad("frequency cap %d: want 0 (off) or more", p.Frequency.Cap)
	}
	if p.Frequency.Cap > 0 && p.Frequency.Period != "day" && p.Frequency.Period != "week" {
		bad("frequency period %q: want day or week", p.Frequency.Period)
	}
	if p.Sender.MaxLength < 1 || p.Sender.MaxLength > 11 {
		bad("sender max_length %d: want 1 to 11 (UCP OAdC)", p.Sender.MaxLength)
	}
	if len(p.OptOut.StopKeywords) == 0 {
		bad("no stop keyword")
	}
	return errors.Join(errs...)
}

func (w Window) validate() error {
	_, err := w.Calendar()
	return err
}

// WindowFor returns the window of a short code's contract: its own, else
// the default.
func (p Policy) WindowFor(shortCode string) Window {
	if sc, ok := p.ShortCodes[shortCode]; ok && sc.Window != nil {
		return *sc.Window
	}
	return p.Window
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Clock is a French wall-clock time of day, written "HH:MM" ("24:00" is
// midnight at the end of the day).
type Clock time.Duration

func (c Clock) String() string {
	d := time.Duration(c)
	return fmt.Sprintf("%02d:%02d", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

// ParseClock reads "HH:MM", 00:00 to 24:00.
func ParseClock(s string) (Clock, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(m) != 2 || hh < 0 || mm < 0 || mm > 59 || hh*60+mm > 24*60 {
		return 0, fmt.Errorf("time of day %q: want HH:MM from 00:00 to 24:00", s)
	}
	return Clock(time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute), nil
}

func (c Clock) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

func (c *Clock) UnmarshalText(b []byte) error {
	v, err := ParseClock(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// Duration is a time.Duration written as Go does ("24h", "90m").
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}

// ReadFile reads and validates a policy document from a file.
func ReadFile(path string) (Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Policy{}, fmt.Errorf("policy: %w", err)
	}
	p, err := Parse(data)
	if err != nil {
		return Policy{}, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// FileFlag is a flag.Value that loads a policy document into P when set:
// -policy FILE. It prints the file it was set from.
type FileFlag struct {
	P    *Policy
	path string
}

func (f *FileFlag) String() string {
	if f == nil {
		return ""
	}
	return f.path
}

func (f *FileFlag) Set(path string) error {
	p, err := ReadFile(path)
	if err != nil {
		return err
	}
	*f.P = p
	f.path = path
	return nil
}
