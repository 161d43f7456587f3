package server

import (
	"net/http"

	"github.com/leasehold/leasehold/internal/ui"
)

// uiRoutes mounts the dashboard (SPEC §10) at /ui/ on the main listener. It is not served
// under /t/{tenant}/: the dashboard spans every tenant.
func (s *Server) uiRoutes() {
	if s.deps.UI == nil {
		return
	}
	s.mux.Handle("/ui/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if prefixTenant(r) != "" {
			s.notFound(w, r)
			return
		}
		r = r.WithContext(ui.WithClientAddr(r.Context(), s.addrOf(r)))
		s.deps.UI.ServeHTTP(w, r)
	}))
}
