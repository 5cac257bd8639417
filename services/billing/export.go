package billing

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// csvHeader are the columns of WriteCSV. Amounts are in euros with a dot,
// exact: unit prices with up to 5 decimals, amounts with 2.
var csvHeader = []string{"month", "tariff_version", "kind", "short_code", "legal_entity", "date",
	"description", "quantity", "unit_price_eur", "amount_eur"}

// WriteCSV writes the invoice as CSV: a header, one row per line, and a
// last row of kind "total" holding the total.
func (inv Invoice) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	month := inv.Month.String()
	if err := cw.Write(csvHeader); err != nil {
		return fmt.Errorf("invoice %s csv: %w", month, err)
	}
	for _, l := range inv.Lines {
		row := []string{month, inv.TariffVersion, l.Kind, l.ShortCode, csvSafe(l.LegalEntity), l.Date.String(),
			csvSafe(l.Description), strconv.FormatInt(l.Quantity, 10), FormatMillicents(l.UnitMillicents), FormatCents(l.AmountCents)}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("invoice %s csv: %w", month, err)
		}
	}
	if err := cw.Write([]string{month, inv.TariffVersion, "total", "", "", "", "Total excluding VAT", "", "", FormatCents(inv.TotalCents)}); err != nil {
		return fmt.Errorf("invoice %s csv: %w", month, err)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("invoice %s csv: %w", month, err)
	}
	return nil
}

// csvSafe keeps a spreadsheet from reading a legal entity's name as a
// formula (CSV injection): such a cell gets a leading quote.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// FormatCents writes cents as euros: 400000 → "4000.00".
func FormatCents(c int64) string {
	sign := ""
	u := uint64(c)
	if c < 0 {
		sign, u = "-", uint64(-(c+1))+1
	}
	return fmt.Sprintf("%s%d.%02d", sign, u/100, u%100)
}

// FormatMillicents writes millicents as euros with 2 to 5 decimals, as
// exact as the value: 3000 → "0.03", 15000000 → "150.00", 1 → "0.00001".
func FormatMillicents(mc int64) string {
	sign := ""
	u := uint64(mc)
	if mc < 0 {
		sign, u = "-", uint64(-(mc+1))+1
	}
	frac := strings.TrimRight(fmt.Sprintf("%05d", u%100_000), "0")
	for len(frac) < 2 {
		frac += "0"
	}
	return fmt.Sprintf("%s%d.%s", sign, u/100_000, frac)
}
