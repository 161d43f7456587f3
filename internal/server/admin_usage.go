package server

import (
	"encoding/csv"
	"net/http"
	"strconv"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// adminUsage is the consumption history: one row per lease event.
func (s *Server) adminUsage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	tenant := q.Get("tenant")
	if tenant == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "tenant is required")
		return
	}
	var from, to time.Time
	for _, p := range []struct {
		name string
		into *time.Time
	}{{"from", &from}, {"to", &to}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				writeError(w, http.StatusBadRequest, "invalid_request", p.name+": use RFC 3339 (2026-01-02T15:04:05Z)")
				return
			}
			*p.into = t
		}
	}
	format := q.Get("format")
	if format == "" {
		format = "json"
	}
	if format != "json" && format != "csv" {
		writeError(w, http.StatusBadRequest, "invalid_request", "format: json or csv")
		return
	}
	events, err := store.Read(r.Context(), s.deps.Store, func(tx store.Tx) ([]domain.UsageEvent, error) {
		return tx.ListUsage(r.Context(), tenant, from, to)
	})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"at", "event", "license", "item", "user", "client", "hw", "hw_name", "lease", "code", "overage", "duration_s"})
		for _, e := range events {
			_ = cw.Write([]string{e.At.UTC().Format(time.RFC3339Nano), e.Event, e.LicenseID, e.Item, e.User, e.Client, e.HW,
				e.HWName, e.LeaseID, string(e.Code), strconv.FormatBool(e.Overage), strconv.FormatFloat(e.Duration.Seconds(), 'f', 3, 64)})
		}
		cw.Flush()
		return
	}
	out := make([]usageRow, 0, len(events))
	for _, e := range events {
		out = append(out, usageRow{e.At, e.Event, e.LicenseID, e.Item, e.User, e.Client, e.HW, e.HWName, e.LeaseID, string(e.Code), e.Overage, e.Duration.Seconds()})
	}
	writeJSON(w, http.StatusOK, usageReport{Tenant: tenant, Usage: out})
}
