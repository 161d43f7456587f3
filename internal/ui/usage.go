package ui

import (
	"encoding/csv"
	"net/http"
	"strconv"
	"time"

	"github.com/leasehold/leasehold/internal/store"
)

// The chart's geometry, in SVG user units; the stylesheet scales it to the page width.
const (
	chartW, chartH         = 720.0, 200.0
	padL, padR, padT, padB = 40.0, 8.0, 10.0, 22.0
)

type usageRange struct {
	Name    string // "7d" or "90d"
	Step    time.Duration
	Buckets int
	Label   string
}

var (
	range7d  = usageRange{Name: "7d", Step: time.Hour, Buckets: 7 * 24, Label: "per hour, last 7 days"}
	range90d = usageRange{Name: "90d", Step: 24 * time.Hour, Buckets: 90, Label: "per day, last 90 days"}
)

// span is the range's buckets ending with the one that holds now: [from, to).
func (u usageRange) span(now time.Time) (from, to time.Time) {
	to = now.UTC().Truncate(u.Step).Add(u.Step)
	return to.Add(-time.Duration(u.Buckets) * u.Step), to
}

type bar struct {
	X, Y, W, H string
	Title      string
}

type axisLabel struct {
	X, Text string
}

type chart struct {
	License      string
	Label        string // the chart's accessible description
	Peak         string // polyline points of the peak seats held
	Bars         []bar  // denials
	Max          int
	XLabels      []axisLabel
	MaxPeak      int
	TotalDenials int
	// geometry for the template
	W, H, Left, Right, Top, Bottom, LabelY string
}

type usageData struct {
	Tenant string
	Range  usageRange
	Other  string // the other range's query
	Charts []chart
}

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// usagePage shows, per license, the peak seats held and the refusals per hour for the
// last 7 days (per day for 90 days with ?range=90d), as inline SVG drawn here: no script
// and no inline style, so it renders under the dashboard's CSP with JavaScript off.
func (d *Dashboard) usagePage(w http.ResponseWriter, r *http.Request) {
	snap, ok := d.tenant(w, r)
	if !ok {
		return
	}
	tenant := snap.Tenant.Name
	rg := range7d
	other := "?range=90d"
	if r.URL.Query().Get("range") == "90d" {
		rg, other = range90d, "?range=7d"
	}
	var rows []store.UsageHour
	var from time.Time
	err := d.deps.Store.View(r.Context(), func(tx store.Tx) error {
		var to time.Time
		from, to = rg.span(tx.Now())
		var err error
		rows, err = tx.ListUsageHours(r.Context(), tenant, from, to)
		return err
	})
	if err != nil {
		d.internalError(w, r, err)
		return
	}
	// Every license of the tenant gets a chart, idle ones too, plus one for refusals no
	// license was a candidate for (noLicenseFound) when there were any.
	byLicense := map[string][]store.UsageHour{}
	for _, u := range rows {
		byLicense[u.LicenseID] = append(byLicense[u.LicenseID], u)
	}
	ids := sortedLicenseIDs(snap)
	if len(byLicense[""]) > 0 {
		ids = append(ids, "")
	}
	for id := range byLicense {
		if id != "" && snap.Licenses[id] == nil {
			ids = append(ids, id) // a license deleted since: its history stays readable
		}
	}
	data := usageData{Tenant: tenant, Range: rg, Other: other}
	for _, id := range ids {
		data.Charts = append(data.Charts, drawChart(id, rg, from, byLicense[id]))
	}
	d.render(w, r, http.StatusOK, "usage", page{Title: "Usage of " + tenant, Tenant: tenant, Data: data})
}

func drawChart(license string, rg usageRange, from time.Time, rows []store.UsageHour) chart {
	peaks := make([]int, rg.Buckets)
	denials := make([]int, rg.Buckets)
	for _, u := range rows {
		i := int(u.Hour.Sub(from) / rg.Step)
		if i < 0 || i >= rg.Buckets {
			continue
		}
		peaks[i] = max(peaks[i], u.PeakSeats)
		denials[i] += u.Denials
	}
	c := chart{License: license, W: f1(chartW), H: f1(chartH), Left: f1(padL), Right: f1(chartW - padR),
		Top: f1(padT), Bottom: f1(chartH - padB), LabelY: f1(chartH - 6)}
	if license == "" {
		c.License = "(no license)"
	}
	c.Max = 1
	for i := range peaks {
		c.Max = max(c.Max, peaks[i], denials[i])
		c.MaxPeak = max(c.MaxPeak, peaks[i])
		c.TotalDenials += denials[i]
	}
	plotW, plotH := chartW-padL-padR, chartH-padT-padB
	bw := plotW / float64(rg.Buckets)
	y := func(v int) float64 { return chartH - padB - float64(v)/float64(c.Max)*plotH }
	pts := make([]byte, 0, rg.Buckets*24)
	for i, p := range peaks {
		x0, x1 := padL+float64(i)*bw, padL+float64(i+1)*bw
		pts = append(pts, f1(x0)+","+f1(y(p))+" "+f1(x1)+","+f1(y(p))+" "...)
		if n := denials[i]; n > 0 {
			at := from.Add(time.Duration(i) * rg.Step)
			c.Bars = append(c.Bars, bar{X: f1(x0 + bw*0.15), Y: f1(y(n)), W: f1(bw * 0.7), H: f1(chartH - padB - y(n)),
				Title: fmtTime(at) + ": " + strconv.Itoa(n) + " refused"})
		}
	}
	c.Peak = string(pts)
	every := 24 // a label a day on the hourly chart
	if rg.Step != time.Hour {
		every = 15
	}
	for i := 0; i < rg.Buckets; i += every {
		at := from.Add(time.Duration(i) * rg.Step)
		c.XLabels = append(c.XLabels, axisLabel{X: f1(padL + float64(i)*bw), Text: at.Format("Jan 02")})
	}
	c.Label = "Peak seats held (line, at most " + strconv.Itoa(c.MaxPeak) + ") and refusals (bars, " +
		strconv.Itoa(c.TotalDenials) + " in all) " + rg.Label + " for license " + c.License
	return c
}

// usageCSV downloads the hourly rows behind the chart's range: hour,license,peak_seats,denials.
func (d *Dashboard) usageCSV(w http.ResponseWriter, r *http.Request) {
	snap, ok := d.tenant(w, r)
	if !ok {
		return
	}
	rg := range7d
	if r.URL.Query().Get("range") == "90d" {
		rg = range90d
	}
	rows, err := store.Read(r.Context(), d.deps.Store, func(tx store.Tx) ([]store.UsageHour, error) {
		from, to := rg.span(tx.Now())
		return tx.ListUsageHours(r.Context(), snap.Tenant.Name, from, to)
	})
	if err != nil {
		d.internalError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="usage-`+snap.Tenant.Name+`-`+rg.Name+`.csv"`)
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"hour", "license", "peak_seats", "denials"})
	for _, u := range rows {
		_ = cw.Write([]string{u.Hour.UTC().Format(time.RFC3339), u.LicenseID, strconv.Itoa(u.PeakSeats), strconv.Itoa(u.Denials)})
	}
	cw.Flush()
}
