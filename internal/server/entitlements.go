package server

import (
	"net/http"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
)

type entitlementView struct {
	ID          string            `json:"id"`
	Product     string            `json:"product,omitempty"`
	Items       []string          `json:"items"`
	Owner       domain.Owner      `json:"owner"`
	Entitlement string            `json:"entitlement,omitempty"`
	Seats       int               `json:"seats"`
	SeatsUsed   int               `json:"seats_used"`
	ValidFrom   *time.Time        `json:"valid_from,omitempty"`
	ValidUntil  *time.Time        `json:"valid_until,omitempty"`
	Active      bool              `json:"active"`
	Properties  map[string]string `json:"properties,omitempty"`
}

// entitlements lists the licenses the caller may consume (SPEC §3).
func (s *Server) entitlements(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.authenticateBrowser(w, r) // a browser-facing route: the session cookie works too
	if !ok {
		return
	}
	list, err := s.deps.Engine.Entitlements(r.Context(), p.Tenant, p.Caller)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	out := make([]entitlementView, 0, len(list))
	for _, e := range list {
		l := e.License
		out = append(out, entitlementView{
			ID: l.ID, Product: l.Product, Items: e.Items, Owner: l.Owner, Entitlement: l.Entitlement,
			Seats: l.Seats, SeatsUsed: e.SeatsUsed, ValidFrom: l.ValidFrom, ValidUntil: l.ValidUntil,
			Active: l.Active, Properties: l.Properties,
		})
	}
	writeJSON(w, http.StatusOK, entitlementList{Licenses: out})
}
