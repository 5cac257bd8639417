// Package calendar provides the French public-holiday calendar and sending
// windows over it: the days and hours in which a message may go out,
// evaluated in one location (Europe/Paris for the platform).
package calendar

import (
	"errors"
	"fmt"
	"time"
)

// ErrWindow reports a window that cannot be built.
var ErrWindow = errors.New("calendar: bad window")

// Holiday is a public holiday: a civil date (Year, Month, Day) and its name.
type Holiday struct {
	Year  int
	Month time.Month
	Day   int
	Name  string
}

// Easter returns the month and day of Gregorian Easter Sunday in year, by
// the anonymous Meeus/Jones/Butcher algorithm (valid from 1583).
func Easter(year int) (time.Month, int) {
	a := year % 19
	b := year / 100
	c := year % 100
	d := b / 4
	e := b % 4
	f := (b + 8) / 25
	g := (b - f + 1) / 3
	h := (19*a + b - d - g + 15) % 30
	i := c / 4
	k := c % 4
	l := (32 + 2*e + 2*i - h - k) % 7
	m := (a + 11*h + 22*l) / 451
	n := h + l - 7*m + 114
	return time.Month(n / 31), n%31 + 1
}

// Holidays returns the French national public holidays of year (Code du
// travail L.3133-1), in date order; with alsaceMoselle, also Good Friday
// and 26 December (L.3134-13). A mobile number does not tell the
// department, so a sender that honours the local days honours them for
// everyone.
func Holidays(year int, alsaceMoselle bool) []Holiday {
	em, ed := Easter(year)
	// Dates are computed in UTC: only the civil date matters here.
	easter := time.Date(year, em, ed, 0, 0, 0, 0, time.UTC)
	fixed := func(m time.Month, d int, name string) Holiday { return Holiday{year, m, d, name} }
	fromEaster := func(days int, name string) Holiday {
		t := easter.AddDate(0, 0, days)
		return Holiday{t.Year(), t.Month(), t.Day(), name}
	}
	hs := []Holiday{fixed(time.January, 1, "Jour de l'an")}
	if alsaceMoselle {
		hs = append(hs, fromEaster(-2, "Vendredi saint"))
	}
	hs = append(hs,
		fromEaster(1, "Lundi de Pâques"),
		fixed(time.May, 1, "Fête du Travail"),
		fixed(time.May, 8, "Victoire 1945"),
		fromEaster(39, "Ascension"),
		fromEaster(50, "Lundi de Pentecôte"),
		fixed(time.July, 14, "Fête nationale"),
		fixed(time.August, 15, "Assomption"),
		fixed(time.November, 1, "Toussaint"),
		fixed(time.November, 11, "Armistice 1918"),
		fixed(time.December, 25, "Noël"),
	)
	if alsaceMoselle {
		hs = append(hs, fixed(time.December, 26, "Saint-Étienne"))
	}
	// Ascension (E+39) can fall on 1 or 8 May, Whit Monday after them:
	// keep the list in date order.
	sortHolidays(hs)
	return hs
}

func sortHolidays(hs []Holiday) {
	for i := 1; i < len(hs); i++ {
		for j := i; j > 0 && before(hs[j], hs[j-1]); j-- {
			hs[j], hs[j-1] = hs[j-1], hs[j]
		}
	}
}

func before(a, b Holiday) bool {
	if a.Month != b.Month {
		return a.Month < b.Month
	}
	return a.Day < b.Day
}

// IsHoliday reports whether the civil date is a public holiday.
func IsHoliday(year int, month time.Month, day int, alsaceMoselle bool) bool {
	for _, h := range Holidays(year, alsaceMoselle) {
		if h.Month == month && h.Day == day {
			return true
		}
	}
	return false
}

// Option changes a Window built by NewWindow.
type Option func(*Window)

// WithAlsaceMoselle also closes the window on Good Friday and 26 December.
func WithAlsaceMoselle(on bool) Option { return func(w *Window) { w.alsaceMoselle = on } }

// Window is when a message may be sent: on "jours ouvrables" (Monday to
// Saturday, public holidays excluded), from the opening to the closing time
// of the day, both local wall-clock times in the window's location.
type Window struct {
	loc           *time.Location
	open, close   time.Duration
	alsaceMoselle bool
}

// NewWindow returns the window open from open to close (durations since
// local midnight, wall clock) on working days in loc. The times are wall
// clock, not elapsed time, so 08:00 stays 08:00 on DST change days.
func NewWindow(loc *time.Location, open, close time.Duration, opts ...Option) (Window, error) {
	if loc == nil {
		return Window{}, fmt.Errorf("%w: no location", ErrWindow)
	}
	if open < 0 || close > 24*time.Hour || open >= close {
		return Window{}, fmt.Errorf("%w: open %v, close %v: want 0 ≤ open < close ≤ 24h", ErrWindow, open, close)
	}
	w := Window{loc: loc, open: open, close: close}
	for _, o := range opts {
		o(&w)
	}
	return w, nil
}

// OpenAt is the daily opening, as a wall-clock time since midnight.
func (w Window) OpenAt() time.Duration { return w.open }

// CloseAt is the daily closing, as a wall-clock time since midnight.
func (w Window) CloseAt() time.Duration { return w.close }

// Location is the window's location.
func (w Window) Location() *time.Location { return w.loc }

// WorkingDay reports whether the civil date is a jour ouvrable: Monday to
// Saturday and not a public holiday.
func (w Window) WorkingDay(year int, month time.Month, day int) bool {
	if time.Date(year, month, day, 12, 0, 0, 0, time.UTC).Weekday() == time.Sunday {
		return false
	}
	return !IsHoliday(year, month, day, w.alsaceMoselle)
}

// at is the instant of the wall-clock time d after midnight on the civil
// date. time.Date moves a time in a DST gap forward, which is what a
// sender wants: the first instant the clock shows at least that time.
func (w Window) at(year int, month time.Month, day int, d time.Duration) time.Time {
	return time.Date(year, month, day, 0, 0, 0, int(d), w.loc)
}

// Open reports whether a message may be sent at t.
func (w Window) Open(t time.Time) bool {
	y, m, d := t.In(w.loc).Date()
	if !w.WorkingDay(y, m, d) {
		return false
	}
	return !t.Before(w.at(y, m, d, w.open)) && t.Before(w.at(y, m, d, w.close))
}

// NextOpen returns the first instant at or after t at which the window is
// open: t itself when it is open.
func (w Window) NextOpen(t time.Time) time.Time {
	if w.Open(t) {
		return t
	}
	y, m, d := t.In(w.loc).Date()
	// Never more than a few closed days in a row (Sunday next to one or two
	// holidays); the bound only guards against a broken calendar.
	for i := 0; i < 366; i++ {
		day := time.Date(y, m, d+i, 12, 0, 0, 0, time.UTC)
		dy, dm, dd := day.Date()
		if !w.WorkingDay(dy, dm, dd) {
			continue
		}
		if o := w.at(dy, dm, dd, w.open); !o.Before(t) {
			return o
		}
	}
	panic(fmt.Sprintf("calendar: no working day in the year after %v", t))
}
