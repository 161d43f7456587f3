package ui

import (
	"bytes"
	"encoding/json"
	"html/template"
	"net/http"
	"time"
)

// page is what every template gets: the layout's parts and the page's own data.
type page struct {
	Title string
	// Tenant, when set, adds the tenant's links to the navigation.
	Tenant string
	// Live is the URL of the page's JSON twin, which assets/app.js polls ("" for none).
	Live string
	// CSRF is the signed-in operator's CSRF token, for the forms (empty when signed out).
	CSRF    string
	Message string
	Data    any
}

// Cell is one table cell: text, and a link when Href is set (always a /ui/ path).
type Cell struct {
	T    string `json:"t"`
	Href string `json:"href,omitempty"`
}

// Row is one table row. End, when set, is the form action of the row's "End" button;
// Confirm marks an End that asks for a confirmation first (an offline checkout lease).
type Row struct {
	Cells   []Cell `json:"cells"`
	End     string `json:"end,omitempty"`
	EndWhat string `json:"end_what,omitempty"` // the accessible name's object ("lease 0193…")
}

// Table is a table body that the script can replace: the JSON twin of a page carries the
// same rows under the same ID.
type Table struct {
	ID    string `json:"-"`
	Empty string `json:"-"` // what an empty table says
	Rows  []Row  `json:"rows"`
}

// live is a page's JSON twin: its tables' rows and its live figures, by element id.
type live struct {
	Tables map[string][]Row  `json:"tables"`
	Text   map[string]string `json:"text"`
}

var funcs = template.FuncMap{
	"when":  fmtTime,
	"tbody": tbodyArgs,
}

type tbodyData struct {
	T      Table
	CSRF   string
	Cols   int
	Action bool // the rows have an End column
}

func tbodyArgs(t Table, csrf string, cols int, action bool) tbodyData {
	return tbodyData{T: t, CSRF: csrf, Cols: cols, Action: action}
}

// fmtTime shows a time the same way on every page and in the JSON twins, in UTC so that
// operators in several time zones read the same figures.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

var pageNames = []string{"login", "error", "overview", "license", "sessions", "usage", "confirm"}

func parsePages() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		out[name] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(files,
			"templates/layout.html", "templates/"+name+".html"))
	}
	return out
}

// render writes a page; it is rendered into a buffer first so that a template error is a
// clean 503, never half a page.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	if p.CSRF == "" {
		if s := signedIn(r.Context()); s.value != "" {
			p.CSRF = s.csrf()
		}
	}
	var buf bytes.Buffer
	if err := d.pages[name].Execute(&buf, p); err != nil {
		d.log.Error("dashboard: rendering failed", "page", name, "err", err)
		http.Error(w, "rendering failed", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (d *Dashboard) errorPage(w http.ResponseWriter, r *http.Request, status int, msg string) {
	d.render(w, r, status, "error", page{Title: http.StatusText(status), Message: msg})
}

func writeLive(w http.ResponseWriter, l live) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(l)
}

func tablesOf(ts ...Table) map[string][]Row {
	out := make(map[string][]Row, len(ts))
	for _, t := range ts {
		rows := t.Rows
		if rows == nil {
			rows = []Row{}
		}
		out[t.ID] = rows
	}
	return out
}
