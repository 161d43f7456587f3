package server

import (
	"net/http"
	"slices"
	"strings"
)

// routeMux is an http.ServeMux that keeps the patterns registered on it, so that what is
// served can be listed (Routes) and checked against the OpenAPI document.
type routeMux struct {
	*http.ServeMux
	patterns []string
}

func newRouteMux() *routeMux { return &routeMux{ServeMux: http.NewServeMux()} }

func (m *routeMux) Handle(pattern string, h http.Handler) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.Handle(pattern, h)
}

func (m *routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

// Routes lists every route the server serves as "METHOD /path" (the ServeMux pattern;
// no method: every method), the admin listener's included, and each dialect's
// tenant-rooted routes under /{tenant}. Dialect routes are listed whichever tenant mounts
// them. The catch-all "/" (the tenant-rooted routes and the 404/405 answers) is left out.
func (s *Server) Routes() []string {
	var out []string
	for _, m := range []*routeMux{s.mux, s.adminMux} {
		for _, p := range m.patterns {
			if p != "/" && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
		if s.adminMux == s.mux {
			break
		}
	}
	for _, name := range dialectNames() {
		for _, rt := range dialects[name].tenantRoutes {
			method, path, _ := strings.Cut(rt.pattern, " ")
			out = append(out, method+" /{tenant}"+path)
		}
	}
	slices.Sort(out)
	return out
}
