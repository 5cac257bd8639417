package billing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"pushsms.io/lib/fault"
)

// Bounds of a forecast.
const (
	// MaxForecastVolume is a month's volume no short code reaches.
	MaxForecastVolume = 100_000_000_000
	// MaxForecastThroughput is in SMS/s: far above the 150 of the
	// largest option.
	MaxForecastThroughput = 10_000
	// DefaultDriftBP is the drift beyond which a month is flagged: 20 %,
	// in basis points (1 % = 100).
	DefaultDriftBP = 2000
	// MaxDriftBP is 1000 %.
	MaxDriftBP      = 100_000
	maxForecastNote = 256
	// maxForecastEntries is a thousand short codes.
	maxForecastEntries = 6 * 1000
)

// HalfYear is a forecast period: H1 is January to June, H2 July to
// December, as the operator asks for forecasts twice a year.
type HalfYear struct {
	Year int
	// Half is 1 or 2.
	Half int
}

// ParseHalfYear reads "2027-H1".
func ParseHalfYear(s string) (HalfYear, error) {
	y, h, ok := strings.Cut(s, "-")
	if !ok || len(y) != 4 || (h != "H1" && h != "H2") {
		return HalfYear{}, fmt.Errorf("period %q: want YYYY-H1 or YYYY-H2", s)
	}
	year, err := strconv.Atoi(y)
	if err != nil || year < 2000 {
		return HalfYear{}, fmt.Errorf("period %q: want YYYY-H1 or YYYY-H2", s)
	}
	return HalfYear{Year: year, Half: int(h[1] - '0')}, nil
}

func (p HalfYear) String() string { return fmt.Sprintf("%04d-H%d", p.Year, p.Half) }

// Months are the six months of the period.
func (p HalfYear) Months() []Month {
	out := make([]Month, 6)
	for i := range out {
		out[i] = Month{Year: p.Year, Month: time.Month(6*(p.Half-1) + i + 1)}
	}
	return out
}

// Contains tells whether m is in the period.
func (p HalfYear) Contains(m Month) bool {
	return m.Year == p.Year && (int(m.Month)-1)/6+1 == p.Half
}

// ForecastMonth is the forecast of one month of a short code.
type ForecastMonth struct {
	Month Month
	// Volume is the delivered segments expected in the month.
	Volume int64
	// Throughput is the peak expected, SMS/s.
	Throughput int
}

// Forecast is one revision of a short code's forecast for a period.
type Forecast struct {
	Period      HalfYear
	ShortCode   string
	Revision    int
	Note        string
	SubmittedAt time.Time
	Months      []ForecastMonth
}

// ForecastEntry is one month of one short code in a forecast upload.
type ForecastEntry struct {
	ShortCode  string
	Month      Month
	Volume     int64
	Throughput int
}

// validateForecast checks an upload: each short code has exactly the six
// months of the period, once each. Fields are named as in the API.
func validateForecast(period HalfYear, note string, entries []ForecastEntry) error {
	var errs []error
	if len(note) > maxForecastNote {
		errs = append(errs, fault.Invalidf("note", "longer than %d bytes", maxForecastNote))
	}
	if len(entries) == 0 {
		errs = append(errs, fault.Invalidf("entries", "no entry"))
	}
	if len(entries) > maxForecastEntries {
		return fault.Join(append(errs, fault.Invalidf("entries", "%d entries, at most %d", len(entries), maxForecastEntries))...)
	}
	type key struct {
		sc string
		m  Month
	}
	seen := map[key]int{}
	months := map[string]int{}
	var order []string
	for i, e := range entries {
		field := fmt.Sprintf("entries[%d]", i)
		if !validShortCodeText(e.ShortCode) {
			errs = append(errs, fault.Invalidf(field+".short_code", "%q: want 5 digits", e.ShortCode))
			continue
		}
		if !period.Contains(e.Month) {
			errs = append(errs, fault.Invalidf(field+".month", "%s is not in %s", e.Month, period))
			continue
		}
		if e.Volume < 0 || e.Volume > MaxForecastVolume {
			errs = append(errs, fault.Invalidf(field+".volume", "want 0 to %d", int64(MaxForecastVolume)))
		}
		if e.Throughput < 0 || e.Throughput > MaxForecastThroughput {
			errs = append(errs, fault.Invalidf(field+".throughput", "want 0 to %d SMS/s", MaxForecastThroughput))
		}
		k := key{e.ShortCode, e.Month}
		if j, dup := seen[k]; dup {
			errs = append(errs, fault.Invalidf(field, "%s %s already in entries[%d]", e.ShortCode, e.Month, j))
			continue
		}
		seen[k] = i
		if months[e.ShortCode] == 0 {
			order = append(order, e.ShortCode)
		}
		months[e.ShortCode]++
	}
	for _, sc := range order {
		if n := months[sc]; n != 6 {
			errs = append(errs, fault.Invalidf("entries", "short code %s has %d months of %s, want all 6", sc, n, period))
		}
	}
	return fault.Join(errs...)
}

// PutForecast stores a new revision of the forecast of every short code
// in entries, in one transaction: the first upload of a period is
// revision 1, a correction during the year the next one.
func PutForecast(ctx context.Context, db Beginner, period HalfYear, note string, entries []ForecastEntry) ([]Forecast, error) {
	if err := validateForecast(period, note, entries); err != nil {
		return nil, err
	}
	byCode := map[string]*Forecast{}
	var out []*Forecast
	for _, e := range entries {
		f := byCode[e.ShortCode]
		if f == nil {
			f = &Forecast{Period: period, ShortCode: e.ShortCode, Note: note}
			byCode[e.ShortCode] = f
			out = append(out, f)
		}
		f.Months = append(f.Months, ForecastMonth{Month: e.Month, Volume: e.Volume, Throughput: e.Throughput})
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("forecast %s: %w", period, errors.Join(err, fault.ErrUnavailable))
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// Two uploads at once must not both take the next revision: forecasts
	// come twice a year, a table lock costs nothing.
	if _, err := tx.Exec(ctx, `LOCK TABLE billing.forecasts IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		return nil, fmt.Errorf("forecast %s: lock: %w", period, err)
	}
	for _, f := range out {
		slices.SortFunc(f.Months, func(a, b ForecastMonth) int { return monthCompare(a.Month, b.Month) })
		err := tx.QueryRow(ctx, `
			INSERT INTO billing.forecasts (period, short_code, revision, note)
			SELECT $1, $2, coalesce(max(revision), 0) + 1, $3 FROM billing.forecasts WHERE period = $1 AND short_code = $2
			RETURNING revision, submitted_at`, period.String(), f.ShortCode, note).Scan(&f.Revision, &f.SubmittedAt)
		if err != nil {
			return nil, fmt.Errorf("forecast %s of %s: %w", period, f.ShortCode, err)
		}
		for _, fm := range f.Months {
			if _, err := tx.Exec(ctx, `
				INSERT INTO billing.forecast_months (period, short_code, revision, month, volume, throughput)
				VALUES ($1, $2, $3, $4, $5, $6)`, period.String(), f.ShortCode, f.Revision, fm.Month.First().Time(), fm.Volume, fm.Throughput); err != nil {
				return nil, fmt.Errorf("forecast %s of %s: %w", period, f.ShortCode, err)
			}
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("forecast %s: commit: %w", period, err)
	}
	res := make([]Forecast, len(out))
	for i, f := range out {
		res[i] = *f
	}
	slices.SortFunc(res, func(a, b Forecast) int { return strings.Compare(a.ShortCode, b.ShortCode) })
	return res, nil
}

// LatestForecasts returns the latest revision of each short code's
// forecast for the period, by short code.
func LatestForecasts(ctx context.Context, q Querier, period HalfYear) ([]Forecast, error) {
	rows, err := q.Query(ctx, `
		SELECT f.short_code, f.revision, f.note, f.submitted_at, m.month, m.volume, m.throughput
		FROM billing.forecasts f
		JOIN billing.forecast_months m USING (period, short_code, revision)
		WHERE f.period = $1 AND f.revision = (
			SELECT max(revision) FROM billing.forecasts l WHERE l.period = f.period AND l.short_code = f.short_code)
		ORDER BY f.short_code, m.month`, period.String())
	if err != nil {
		return nil, fmt.Errorf("forecasts of %s: %w", period, err)
	}
	defer rows.Close()
	var out []Forecast
	for rows.Next() {
		var (
			sc, note string
			rev      int
			at       time.Time
			month    time.Time
			fm       ForecastMonth
		)
		if err := rows.Scan(&sc, &rev, &note, &at, &month, &fm.Volume, &fm.Throughput); err != nil {
			return nil, fmt.Errorf("forecasts of %s: %w", period, err)
		}
		fm.Month = monthOfDate(month)
		if len(out) == 0 || out[len(out)-1].ShortCode != sc {
			out = append(out, Forecast{Period: period, ShortCode: sc, Revision: rev, Note: note, SubmittedAt: at})
		}
		out[len(out)-1].Months = append(out[len(out)-1].Months, fm)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("forecasts of %s: %w", period, err)
	}
	return out, nil
}

// MonthProgress tells whether a month's actuals are complete.
type MonthProgress string

const (
	MonthClosed     MonthProgress = "closed"
	MonthInProgress MonthProgress = "in_progress"
	MonthFuture     MonthProgress = "future"
)

// ForecastReportLine compares one month of one short code with its
// forecast.
type ForecastReportLine struct {
	ShortCode string
	Month     Month
	Progress  MonthProgress
	// Revision is the forecast's, 0 when the short code has none.
	Revision       int
	ForecastVolume int64
	// ActualVolume is the delivered segments of the month so far.
	ActualVolume int64
	// DriftBP is (actual − forecast) / forecast in basis points,
	// truncated; 0 when it has no meaning (no forecast, forecast at zero,
	// future month).
	DriftBP int64
	// VolumeDrift flags a drift beyond the threshold (see forecastDrift).
	VolumeDrift        bool
	ForecastThroughput int
	// ContractedThroughput is the catalog's rate for the month, SMS/s;
	// 0 when the catalog does not know the short code.
	ContractedThroughput int
	// ThroughputMismatch flags a forecast throughput other than the
	// contracted one: the operator sizes its platform on the forecast.
	ThroughputMismatch bool
	// Unforecast flags traffic on a short code without a forecast.
	Unforecast bool
}

// Flagged tells whether the line needs attention.
func (l ForecastReportLine) Flagged() bool {
	return l.VolumeDrift || l.ThroughputMismatch || l.Unforecast
}

// ForecastReport is the actuals of a period against its forecasts.
type ForecastReport struct {
	Period      HalfYear
	ThresholdBP int
	// Lines are by short code, then month.
	Lines []ForecastReportLine
}

// forecastDrift tells a month's drift and whether it is flagged, for a
// threshold in basis points. A closed month drifts when its actual
// differs from the forecast by more than the threshold, either way (a
// forecast of zero with traffic drifts). A month in progress only drifts
// upwards: its actual already exceeds the forecast by more than the
// threshold, which the rest of the month cannot undo. A future month has
// no drift.
func forecastDrift(progress MonthProgress, forecast, actual int64, thresholdBP int) (int64, bool) {
	if progress == MonthFuture {
		return 0, false
	}
	diff := actual - forecast
	var bp int64
	if forecast > 0 {
		bp = diff * 10_000 / forecast
	}
	over := func(d int64) bool {
		if forecast == 0 {
			return d > 0
		}
		return d*10_000 > int64(thresholdBP)*forecast
	}
	if progress == MonthInProgress {
		return bp, over(diff)
	}
	if diff < 0 {
		return bp, over(-diff)
	}
	return bp, over(diff)
}

// monthCompare orders months.
func monthCompare(a, b Month) int {
	return (a.Year*12 + int(a.Month)) - (b.Year*12 + int(b.Month))
}

// progressOf tells whether m is closed, in progress or future at now.
func progressOf(m Month, now time.Time, loc *time.Location) MonthProgress {
	from, to := monthBounds(m, loc)
	switch {
	case !now.Before(to):
		return MonthClosed
	case now.Before(from):
		return MonthFuture
	}
	return MonthInProgress
}

// monthKey is a short code's month.
type monthKey struct {
	sc string
	m  Month
}

// forecastReport compares forecasts with the delivered segments of counts
// (the period's daily counts) and the contracted throughputs.
func forecastReport(period HalfYear, thresholdBP int, forecasts []Forecast, counts []DailyCount, contracted map[monthKey]int, now time.Time, loc *time.Location) ForecastReport {
	actual := map[monthKey]int64{}
	traffic := map[string]bool{}
	for _, c := range counts {
		if c.State != Delivered {
			continue
		}
		m := MonthOf(civilDayOf(c.Day, loc))
		if !period.Contains(m) {
			continue
		}
		actual[monthKey{c.ShortCode, m}] += c.Segments
		if c.Segments > 0 {
			traffic[c.ShortCode] = true
		}
	}
	rep := ForecastReport{Period: period, ThresholdBP: thresholdBP}
	forecast := map[string]bool{}
	for _, f := range forecasts {
		forecast[f.ShortCode] = true
		for _, fm := range f.Months {
			k := monthKey{f.ShortCode, fm.Month}
			l := ForecastReportLine{
				ShortCode: f.ShortCode, Month: fm.Month, Progress: progressOf(fm.Month, now, loc),
				Revision: f.Revision, ForecastVolume: fm.Volume, ActualVolume: actual[k],
				ForecastThroughput: fm.Throughput, ContractedThroughput: contracted[k],
			}
			l.DriftBP, l.VolumeDrift = forecastDrift(l.Progress, l.ForecastVolume, l.ActualVolume, thresholdBP)
			l.ThroughputMismatch = l.ForecastThroughput != l.ContractedThroughput
			rep.Lines = append(rep.Lines, l)
		}
	}
	for sc := range traffic {
		if forecast[sc] {
			continue
		}
		for _, m := range period.Months() {
			k := monthKey{sc, m}
			rep.Lines = append(rep.Lines, ForecastReportLine{
				ShortCode: sc, Month: m, Progress: progressOf(m, now, loc),
				ActualVolume: actual[k], ContractedThroughput: contracted[k],
				Unforecast: actual[k] > 0,
			})
		}
	}
	slices.SortFunc(rep.Lines, func(a, b ForecastReportLine) int {
		if c := strings.Compare(a.ShortCode, b.ShortCode); c != 0 {
			return c
		}
		return monthCompare(a.Month, b.Month)
	})
	return rep
}

// BuildForecastReport compares the latest forecasts of period with the
// ledger's delivered segments and the catalog's contracted throughput, at
// now; thresholdBP 0 is DefaultDriftBP.
func BuildForecastReport(ctx context.Context, q Querier, loc *time.Location, period HalfYear, thresholdBP int, now time.Time) (ForecastReport, error) {
	if thresholdBP == 0 {
		thresholdBP = DefaultDriftBP
	}
	if thresholdBP < 0 || thresholdBP > MaxDriftBP {
		return ForecastReport{}, fault.Invalidf("drift_threshold_bp", "want 1 to %d (0 for the default %d)", MaxDriftBP, DefaultDriftBP)
	}
	q, done, err := readSnapshot(ctx, q)
	if err != nil {
		return ForecastReport{}, fmt.Errorf("forecast report %s: %w", period, err)
	}
	defer done()
	forecasts, err := LatestForecasts(ctx, q, period)
	if err != nil {
		return ForecastReport{}, err
	}
	months := period.Months()
	from, _ := monthBounds(months[0], loc)
	_, to := monthBounds(months[5], loc)
	counts, err := DailyCounts(ctx, q, from, to)
	if err != nil {
		return ForecastReport{}, fmt.Errorf("forecast report %s: %w", period, err)
	}
	contracted, err := contractedThroughputs(ctx, q, months)
	if err != nil {
		return ForecastReport{}, fmt.Errorf("forecast report %s: %w", period, err)
	}
	return forecastReport(period, thresholdBP, forecasts, counts, contracted, now, loc), nil
}

// contractedThroughputs returns the throughput each short code of the
// catalog subscribed in each of months: the highest rate in force on a day
// of the month, as the invoice bills it. A month without the short code in
// service has none.
func contractedThroughputs(ctx context.Context, q Querier, months []Month) (map[monthKey]int, error) {
	events, err := shortCodeEvents(ctx, q, "", months[len(months)-1].Last())
	if err != nil {
		return nil, err
	}
	out := map[monthKey]int{}
	for sc, evs := range byShortCode(events) {
		for _, m := range months {
			sm, ok, err := monthOf(sc, evs, m)
			if err != nil {
				return nil, err
			}
			if ok {
				out[monthKey{sc, m}] = sm.throughput
			}
		}
	}
	return out, nil
}

// ParseForecastCSV reads a forecast upload:
//
//	short_code,month,volume,throughput
//	36123,2027-01,1500000,20
//
// one line per short code and month (YYYY-MM), the header optional. It
// checks the form of each line, with its line number; PutForecast checks
// the whole (six months per short code, in the period).
func ParseForecastCSV(r io.Reader) ([]ForecastEntry, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxStatementBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read forecast: %w", err)
	}
	if len(data) > MaxStatementBytes {
		return nil, fault.Invalidf("file", "more than %d bytes", MaxStatementBytes)
	}
	var (
		out []ForecastEntry
		bad lineErrors
		cl  = newCSVLines(data)
	)
	for first := true; ; first = false {
		rec, line, err := cl.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			bad.add(line, "%v", err)
			break
		}
		if first && isHeader(rec, "short_code", "month", "volume", "throughput") {
			continue
		}
		if len(out) == maxForecastEntries {
			bad.add(line, "more than %d lines", maxForecastEntries)
			break
		}
		e, err := parseForecastRecord(rec)
		if err != nil {
			bad.add(line, "%v", err)
			continue
		}
		out = append(out, e)
	}
	if err := bad.err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fault.Invalidf("file", "no line")
	}
	return out, nil
}

func parseForecastRecord(rec []string) (ForecastEntry, error) {
	if len(rec) != 4 {
		return ForecastEntry{}, fmt.Errorf("%d fields, want 4: short_code,month,volume,throughput", len(rec))
	}
	if !validShortCodeText(rec[0]) {
		return ForecastEntry{}, fmt.Errorf("short code %q: want 5 digits", rec[0])
	}
	t, err := time.Parse("2006-01", rec[1])
	if err != nil {
		return ForecastEntry{}, fmt.Errorf("month %q: want YYYY-MM", rec[1])
	}
	vol, err := parseCount(rec[2], MaxForecastVolume)
	if err != nil {
		return ForecastEntry{}, fmt.Errorf("volume %q: %w", rec[2], err)
	}
	tp, err := parseCount(rec[3], MaxForecastThroughput)
	if err != nil {
		return ForecastEntry{}, fmt.Errorf("throughput %q: %w", rec[3], err)
	}
	return ForecastEntry{ShortCode: rec[0], Month: Month{Year: t.Year(), Month: t.Month()}, Volume: vol, Throughput: int(tp)}, nil
}
