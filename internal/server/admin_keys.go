package server

import (
	"net/http"
	"time"
)

func (s *Server) adminRotateKey(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	// The retired key stays published as long as the longest lease it may have signed.
	publish := 24 * time.Hour
	for _, m := range snap.Models {
		publish = max(publish, m.OfflineLease.D(), m.OnlineLease.D())
	}
	kid, err := s.deps.Keys.Rotate(r.Context(), snap.Tenant.Name, publish)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, keyRotated{OK: true, Kid: kid})
}
