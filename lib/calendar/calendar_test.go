package calendar

import (
	"testing"
	"time"
	_ "time/tzdata" // the tests must not depend on the host's zoneinfo
)

func paris(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func window(t testing.TB, opts ...Option) Window {
	t.Helper()
	w, err := NewWindow(paris(t), 8*time.Hour, 22*time.Hour, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// Golden vectors of compliance §4.2.
func TestEaster(t *testing.T) {
	tests := []struct {
		year  int
		month time.Month
		day   int
	}{
		{2024, time.March, 31}, {2025, time.April, 20}, {2026, time.April, 5}, {2027, time.March, 28},
		{2028, time.April, 16}, {2029, time.April, 1}, {2030, time.April, 21}, {2031, time.April, 13},
		{1583, time.April, 10}, {2285, time.March, 22}, {2038, time.April, 25},
	}
	for _, tt := range tests {
		m, d := Easter(tt.year)
		if m != tt.month || d != tt.day {
			t.Errorf("Easter(%d) = %v %d, want %v %d", tt.year, m, d, tt.month, tt.day)
		}
		if wd := time.Date(tt.year, m, d, 12, 0, 0, 0, time.UTC).Weekday(); wd != time.Sunday {
			t.Errorf("Easter(%d) is a %v", tt.year, wd)
		}
	}
}

func TestHolidays(t *testing.T) {
	date := func(y int, m time.Month, d int) string {
		return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Format("2006-01-02")
	}
	tests := []struct {
		year   int
		alsace bool
		want   []string
	}{
		{2026, false, []string{"2026-01-01", "2026-04-06", "2026-05-01", "2026-05-08", "2026-05-14", "2026-05-25",
			"2026-07-14", "2026-08-15", "2026-11-01", "2026-11-11", "2026-12-25"}},
		{2027, false, []string{"2027-01-01", "2027-03-29", "2027-05-01", "2027-05-06", "2027-05-08", "2027-05-17",
			"2027-07-14", "2027-08-15", "2027-11-01", "2027-11-11", "2027-12-25"}},
		{2026, true, []string{"2026-01-01", "2026-04-03", "2026-04-06", "2026-05-01", "2026-05-08", "2026-05-14", "2026-05-25",
			"2026-07-14", "2026-08-15", "2026-11-01", "2026-11-11", "2026-12-25", "2026-12-26"}},
		{2027, true, []string{"2027-01-01", "2027-03-26", "2027-03-29", "2027-05-01", "2027-05-06", "2027-05-08", "2027-05-17",
			"2027-07-14", "2027-08-15", "2027-11-01", "2027-11-11", "2027-12-25", "2027-12-26"}},
	}
	for _, tt := range tests {
		got := Holidays(tt.year, tt.alsace)
		if len(got) != len(tt.want) {
			t.Fatalf("Holidays(%d, %v): got %d days %v, want %d", tt.year, tt.alsace, len(got), got, len(tt.want))
		}
		w := window(t, WithAlsaceMoselle(tt.alsace))
		for i, h := range got {
			if s := date(h.Year, h.Month, h.Day); s != tt.want[i] {
				t.Errorf("Holidays(%d, %v)[%d] = %s (%s), want %s", tt.year, tt.alsace, i, s, h.Name, tt.want[i])
			}
			if !IsHoliday(h.Year, h.Month, h.Day, tt.alsace) {
				t.Errorf("IsHoliday(%s) = false", tt.want[i])
			}
			// Every holiday is closed all day, at the window's busiest hour too.
			noon := time.Date(h.Year, h.Month, h.Day, 12, 0, 0, 0, w.Location())
			if w.Open(noon) {
				t.Errorf("%v, alsace %v: %s (%s) at noon is open", w.Location(), tt.alsace, tt.want[i], h.Name)
			}
		}
	}
	if IsHoliday(2026, time.December, 26, false) || IsHoliday(2026, time.April, 3, false) {
		t.Error("Alsace-Moselle days are holidays without the option")
	}
}

func TestOpenAndNextOpen(t *testing.T) {
	loc := paris(t)
	at := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, loc) }
	national := window(t)
	alsace := window(t, WithAlsaceMoselle(true))
	late, err := NewWindow(loc, 8*time.Hour, 21*time.Hour+30*time.Minute) // af2m charter 2026
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		w    Window
		t    time.Time
		open bool
		next time.Time
	}{
		{"tuesday 10:00", national, at(2026, 11, 24, 10, 0), true, at(2026, 11, 24, 10, 0)},
		{"tuesday 07:59", national, at(2026, 11, 24, 7, 59), false, at(2026, 11, 24, 8, 0)},
		{"tuesday 08:00", national, at(2026, 11, 24, 8, 0), true, at(2026, 11, 24, 8, 0)},
		{"tuesday 00:00", national, at(2026, 11, 24, 0, 0), false, at(2026, 11, 24, 8, 0)},
		{"sunday noon to monday 08:00", national, at(2026, 11, 29, 12, 0), false, at(2026, 11, 30, 8, 0)},
		{"saturday 21:59 open", national, at(2026, 11, 28, 21, 59), true, at(2026, 11, 28, 21, 59)},
		{"saturday 22:00 closed", national, at(2026, 11, 28, 22, 0), false, at(2026, 11, 30, 8, 0)},
		{"saturday 21:30 closed at af2m close", late, at(2026, 11, 28, 21, 30), false, at(2026, 11, 30, 8, 0)},
		{"saturday 21:29 open at af2m close", late, at(2026, 11, 28, 21, 29), true, at(2026, 11, 28, 21, 29)},
		{"1 May closed", national, at(2026, 5, 1, 10, 0), false, at(2026, 5, 2, 8, 0)},
		{"14 July closed", national, at(2026, 7, 14, 10, 0), false, at(2026, 7, 15, 8, 0)},
		{"eve of 14 July 22:30", national, at(2026, 7, 13, 22, 30), false, at(2026, 7, 15, 8, 0)},
		{"eve of Ascension 22:30", national, at(2026, 5, 13, 22, 30), false, at(2026, 5, 15, 8, 0)},
		{"eve of 11 November 2027 22:30", national, at(2027, 11, 10, 22, 30), false, at(2027, 11, 12, 8, 0)},
		{"saturday before Easter Monday", national, at(2026, 4, 4, 22, 15), false, at(2026, 4, 7, 8, 0)},
		{"saturday before Easter Monday 2027", national, at(2027, 3, 27, 23, 0), false, at(2027, 3, 30, 8, 0)},
		{"saturday before Whit Monday", national, at(2026, 5, 23, 22, 0), false, at(2026, 5, 26, 8, 0)},
		{"christmas friday 2026", national, at(2026, 12, 24, 22, 0), false, at(2026, 12, 26, 8, 0)},
		{"26 December Alsace-Moselle", alsace, at(2026, 12, 24, 22, 0), false, at(2026, 12, 28, 8, 0)},
		{"Good Friday national", national, at(2026, 4, 3, 10, 0), true, at(2026, 4, 3, 10, 0)},
		{"Good Friday Alsace-Moselle", alsace, at(2026, 4, 2, 22, 0), false, at(2026, 4, 4, 8, 0)},
		{"new year's eve", national, at(2026, 12, 31, 23, 0), false, at(2027, 1, 2, 8, 0)},
		// DST: 2026-03-29 and 2026-10-25 are the change Sundays; the
		// Monday opening is 08:00 on the new offset.
		{"spring-forward sunday 02:30", national, at(2026, 3, 29, 2, 30), false, at(2026, 3, 30, 8, 0)},
		{"saturday before spring forward", national, at(2026, 3, 28, 22, 0), false, at(2026, 3, 30, 8, 0)},
		{"saturday before fall back", national, at(2026, 10, 24, 22, 0), false, at(2026, 10, 26, 8, 0)},
		{"fall-back sunday 02:30", national, at(2026, 10, 25, 2, 30), false, at(2026, 10, 26, 8, 0)},
		{"UTC input", national, time.Date(2026, 11, 29, 23, 30, 0, 0, time.UTC), false, at(2026, 11, 30, 8, 0)},
		{"UTC input, Paris already open", national, time.Date(2026, 11, 30, 7, 30, 0, 0, time.UTC), true, time.Date(2026, 11, 30, 7, 30, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		if got := tt.w.Open(tt.t); got != tt.open {
			t.Errorf("%s: Open(%v) = %v, want %v", tt.name, tt.t, got, tt.open)
		}
		if got := tt.w.NextOpen(tt.t); !got.Equal(tt.next) {
			t.Errorf("%s: NextOpen(%v) = %v, want %v", tt.name, tt.t, got, tt.next)
		}
	}
	// DST: 08:00 is 07:00 UTC in winter and 06:00 UTC in summer.
	if got, want := national.NextOpen(at(2026, 3, 29, 12, 0)).UTC(), time.Date(2026, 3, 30, 6, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("after spring forward: got %v, want %v", got, want)
	}
	if got, want := national.NextOpen(at(2026, 10, 25, 12, 0)).UTC(), time.Date(2026, 10, 26, 7, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("after fall back: got %v, want %v", got, want)
	}
}

func TestNewWindowRejects(t *testing.T) {
	loc := paris(t)
	tests := []struct {
		name        string
		loc         *time.Location
		open, close time.Duration
	}{
		{"no location", nil, 8 * time.Hour, 22 * time.Hour},
		{"open after close", loc, 22 * time.Hour, 8 * time.Hour},
		{"empty", loc, 8 * time.Hour, 8 * time.Hour},
		{"negative", loc, -time.Hour, 8 * time.Hour},
		{"past midnight", loc, 8 * time.Hour, 25 * time.Hour},
	}
	for _, tt := range tests {
		if _, err := NewWindow(tt.loc, tt.open, tt.close); err == nil {
			t.Errorf("%s: got no error", tt.name)
		}
	}
}

// FuzzNextOpen checks NextOpen against Open: the result is not before t,
// is open, and no quarter hour between t and it is open.
func FuzzNextOpen(f *testing.F) {
	loc := paris(f)
	for _, s := range []time.Time{
		time.Date(2026, 11, 29, 12, 0, 0, 0, loc),
		time.Date(2026, 4, 4, 22, 15, 0, 0, loc),
		time.Date(2026, 3, 29, 2, 30, 0, 0, loc),
		time.Date(2026, 10, 25, 2, 30, 0, 0, loc),
	} {
		f.Add(s.Unix(), uint16(8*60), uint16(22*60), false)
	}
	f.Fuzz(func(t *testing.T, sec int64, openMin, closeMin uint16, alsace bool) {
		// Keep to years the Gregorian algorithm and tzdata cover.
		const lo, hi = -11676096000, 253402300799 // 1600-01-01 .. 9999-12-31
		if sec < lo || sec > hi-400*24*3600 {
			t.Skip()
		}
		open := time.Duration(openMin%(24*60)) * time.Minute
		closing := time.Duration(closeMin%(24*60)+1) * time.Minute
		w, err := NewWindow(loc, open, closing, WithAlsaceMoselle(alsace))
		if err != nil {
			t.Skip()
		}
		start := time.Unix(sec, 0)
		got := w.NextOpen(start)
		if got.Before(start) {
			t.Fatalf("NextOpen(%v) = %v, before", start, got)
		}
		if !w.Open(got) {
			t.Fatalf("NextOpen(%v) = %v, not open", start, got)
		}
		if got.Sub(start) > 10*24*time.Hour {
			t.Fatalf("NextOpen(%v) = %v, more than 10 days later", start, got)
		}
		for p := start; p.Before(got); p = p.Add(15 * time.Minute) {
			if w.Open(p) {
				t.Fatalf("NextOpen(%v) = %v, but %v is open", start, got, p)
			}
		}
		if got.After(start) && w.Open(got.Add(-time.Nanosecond)) {
			t.Fatalf("NextOpen(%v) = %v, but just before is open", start, got)
		}
	})
}
