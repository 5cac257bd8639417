package policy

import (
	"fmt"
	"time"
	// The window is French time wherever the binary runs, also in an
	// image without /usr/share/zoneinfo.
	_ "time/tzdata"

	"pushsms.io/lib/calendar"
)

// Zone is where the sending window and the frequency cap's days are
// taken: the offer's "French time", metropolitan recipients only.
const Zone = "Europe/Paris"

// MaxMOSession bounds mo_session: the MO_SESSIONS bucket keeps an MO that long.
const MaxMOSession = 30 * 24 * time.Hour

// StopMention is the opt-out mention of a short code, as ingest appends it
// to a marketing text and as the content rule expects it (offer
// "Obligations": the free STOP mechanism, with the short code to write to).
func StopMention(shortCode string) string { return "STOP au " + shortCode }

// Calendar returns the window as a calendar.Window in Zone.
func (w Window) Calendar() (calendar.Window, error) {
	loc, err := time.LoadLocation(Zone)
	if err != nil {
		return calendar.Window{}, fmt.Errorf("policy: window: %w", err)
	}
	cw, err := calendar.NewWindow(loc, time.Duration(w.Open), time.Duration(w.Close), calendar.WithAlsaceMoselle(w.AlsaceMoselle))
	if err != nil {
		return calendar.Window{}, fmt.Errorf("policy: window: %w", err)
	}
	return cw, nil
}
