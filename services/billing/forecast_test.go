package billing

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"pushsms.io/lib/fault"
)

func TestParseHalfYear(t *testing.T) {
	tests := []struct {
		in     string
		want   HalfYear
		first  time.Month
		reject bool
	}{
		{in: "2027-H1", want: HalfYear{2027, 1}, first: time.January},
		{in: "2026-H2", want: HalfYear{2026, 2}, first: time.July},
		{in: "2026-H3", reject: true},
		{in: "2026-h1", reject: true},
		{in: "26-H1", reject: true},
		{in: "1999-H1", reject: true},
		{in: "", reject: true},
	}
	for _, tt := range tests {
		got, err := ParseHalfYear(tt.in)
		if (err != nil) != tt.reject {
			t.Errorf("%q: got error %v, want rejected %v", tt.in, err, tt.reject)
			continue
		}
		if tt.reject {
			continue
		}
		ms := got.Months()
		if got != tt.want || got.String() != tt.in || len(ms) != 6 || ms[0].Month != tt.first || ms[5].Month != tt.first+5 {
			t.Errorf("%q: got %v months %v", tt.in, got, ms)
		}
	}
}

func TestForecastDrift(t *testing.T) {
	tests := []struct {
		name             string
		progress         MonthProgress
		forecast, actual int64
		bp               int64
		flagged          bool
	}{
		{"on_forecast", MonthClosed, 1000, 1000, 0, false},
		{"plus_20_is_in", MonthClosed, 1000, 1200, 2000, false},
		{"plus_20.1", MonthClosed, 1000, 1201, 2010, true},
		{"minus_20_is_in", MonthClosed, 1000, 800, -2000, false},
		{"minus_20.1", MonthClosed, 1000, 799, -2010, true},
		{"nothing_sent", MonthClosed, 1000, 0, -10000, true},
		{"zero_forecast_traffic", MonthClosed, 0, 1, 0, true},
		{"zero_forecast_zero", MonthClosed, 0, 0, 0, false},
		{"truncated_bp", MonthClosed, 3, 4, 3333, true},
		// A month in progress is only flagged once it is already over.
		{"in_progress_under", MonthInProgress, 1000, 10, -9900, false},
		{"in_progress_over", MonthInProgress, 1000, 1300, 3000, true},
		{"future", MonthFuture, 1000, 0, 0, false},
	}
	for _, tt := range tests {
		bp, flagged := forecastDrift(tt.progress, tt.forecast, tt.actual, DefaultDriftBP)
		if bp != tt.bp || flagged != tt.flagged {
			t.Errorf("%s: got %d bp flagged %v, want %d %v", tt.name, bp, flagged, tt.bp, tt.flagged)
		}
	}
}

func TestForecastReportLines(t *testing.T) {
	paris, err := time.LoadLocation(Zone)
	if err != nil {
		t.Fatal(err)
	}
	period := HalfYear{2027, 1}
	months := period.Months()
	at := func(m Month, d int) time.Time { return time.Date(m.Year, m.Month, d, 0, 0, 0, 0, paris) }
	f := Forecast{Period: period, ShortCode: "36101", Revision: 2}
	for _, m := range months {
		f.Months = append(f.Months, ForecastMonth{Month: m, Volume: 100, Throughput: 20})
	}
	counts := []DailyCount{
		{Day: at(months[0], 1), ShortCode: "36101", TenantID: "a", State: Delivered, Segments: 60},
		{Day: at(months[0], 31), ShortCode: "36101", TenantID: "b", State: Delivered, Segments: 70},
		{Day: at(months[0], 31), ShortCode: "36101", TenantID: "b", State: Failed, Segments: 900},
		{Day: at(months[1], 3), ShortCode: "36101", TenantID: "a", State: Delivered, Segments: 10},
		{Day: at(months[1], 3), ShortCode: "36109", TenantID: "a", State: Delivered, Segments: 4},
	}
	contracted := map[monthKey]int{{"36101", months[0]}: 20, {"36101", months[1]}: 50, {"36109", months[1]}: 10}
	// Now is in February: January closed, February in progress.
	now := at(months[1], 10)
	rep := forecastReport(period, DefaultDriftBP, []Forecast{f}, counts, contracted, now, paris)
	if len(rep.Lines) != 12 {
		t.Fatalf("got %d lines, want 12: %+v", len(rep.Lines), rep.Lines)
	}
	want := map[int]ForecastReportLine{
		0: {ShortCode: "36101", Month: months[0], Progress: MonthClosed, Revision: 2, ForecastVolume: 100, ActualVolume: 130, DriftBP: 3000, VolumeDrift: true, ForecastThroughput: 20, ContractedThroughput: 20},
		1: {ShortCode: "36101", Month: months[1], Progress: MonthInProgress, Revision: 2, ForecastVolume: 100, ActualVolume: 10, DriftBP: -9000, ForecastThroughput: 20, ContractedThroughput: 50, ThroughputMismatch: true},
		2: {ShortCode: "36101", Month: months[2], Progress: MonthFuture, Revision: 2, ForecastVolume: 100, ForecastThroughput: 20, ThroughputMismatch: true},
		6: {ShortCode: "36109", Month: months[0], Progress: MonthClosed},
		7: {ShortCode: "36109", Month: months[1], Progress: MonthInProgress, ActualVolume: 4, ContractedThroughput: 10, Unforecast: true},
	}
	for i, w := range want {
		if rep.Lines[i] != w {
			t.Errorf("line %d: got %+v\nwant %+v", i, rep.Lines[i], w)
		}
	}
}

func TestValidateForecast(t *testing.T) {
	period := HalfYear{2027, 1}
	full := func(sc string) []ForecastEntry {
		var out []ForecastEntry
		for _, m := range period.Months() {
			out = append(out, ForecastEntry{ShortCode: sc, Month: m, Volume: 1000, Throughput: 10})
		}
		return out
	}
	tests := []struct {
		name    string
		entries []ForecastEntry
		fields  []string
	}{
		{"valid", append(full("36101"), full("36102")...), nil},
		{"empty", nil, []string{"entries"}},
		{"missing_month", full("36101")[1:], []string{"entries"}},
		{"duplicate", append(full("36101"), full("36101")[2]), []string{"entries[6]"}},
		{"outside", append(full("36101")[:5], ForecastEntry{ShortCode: "36101", Month: Month{2027, time.July}}), []string{"entries[5].month", "entries"}},
		{"values", func() []ForecastEntry {
			e := full("36101")
			e[0].Volume, e[1].Throughput, e[2].ShortCode = -1, MaxForecastThroughput+1, "3610"
			return e
		}(), []string{"entries[0].volume", "entries[1].throughput", "entries[2].short_code", "entries"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validateForecast(period, "", tt.entries)
			var got []string
			var ie *fault.InvalidError
			if errors.As(err, &ie) {
				for _, v := range ie.Violations {
					got = append(got, v.Field)
				}
			} else if err != nil {
				t.Fatalf("got %v, want an InvalidError", err)
			}
			if !slices.Equal(got, tt.fields) {
				t.Errorf("got fields %v (%v), want %v", got, err, tt.fields)
			}
		})
	}
}

func TestParseForecastCSV(t *testing.T) {
	got, err := ParseForecastCSV(strings.NewReader("short_code;month;volume;throughput\r\n36101;2027-01;1500000;20\r\n# revised\r\n36101;2027-02;0;10\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []ForecastEntry{
		{ShortCode: "36101", Month: Month{2027, time.January}, Volume: 1500000, Throughput: 20},
		{ShortCode: "36101", Month: Month{2027, time.February}, Volume: 0, Throughput: 10},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	_, err = ParseForecastCSV(strings.NewReader("36101,2027-01,10,10\n36101,2027-13,10,10\n36101,2027-03,ten,10\n36101,2027-04,10\n"))
	var ie *fault.InvalidError
	if !errors.As(err, &ie) {
		t.Fatalf("got %v, want an InvalidError", err)
	}
	var fields []string
	for _, v := range ie.Violations {
		fields = append(fields, v.Field)
	}
	if want := []string{"line 2", "line 3", "line 4"}; !slices.Equal(fields, want) {
		t.Errorf("got %v (%v), want %v", fields, err, want)
	}
}

// FuzzParseForecastCSV checks that no file crashes the parser and that
// what it accepts is within bounds.
func FuzzParseForecastCSV(f *testing.F) {
	for _, s := range []string{
		"short_code,month,volume,throughput\n36101,2027-01,1500000,20\n",
		"\ufeff36101;2027-02;0;10\r\n",
		"36101,2027-13,10,10\n",
		"\"36101\",\"2027-01\",\"1\",\"150\"\n# c\n",
		"36101,2027-01,10\n",
		"36101,2027-01,99999999999999999999,10\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := ParseForecastCSV(strings.NewReader(string(data)))
		if err != nil {
			var ie *fault.InvalidError
			if !errors.As(err, &ie) || len(ie.Violations) == 0 {
				t.Fatalf("error %v: want an InvalidError", err)
			}
			return
		}
		if len(entries) == 0 {
			t.Fatal("no entry and no error")
		}
		for _, e := range entries {
			if !validShortCodeText(e.ShortCode) || e.Volume < 0 || e.Volume > MaxForecastVolume ||
				e.Throughput < 0 || e.Throughput > MaxForecastThroughput || e.Month.Month < time.January || e.Month.Month > time.December {
				t.Fatalf("accepted %+v", e)
			}
		}
	})
}
