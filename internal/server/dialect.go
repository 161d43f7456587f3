package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/leasehold/leasehold/internal/session"
)

// Dialects (SPEC §5) are the seed systems' own request shapes, mounted as aliases onto the
// server's handlers so that a seed's example requests work with only the base URL changed.
// An adapter translates the request into the shape of the session or OAuth2 API, calls that
// API's handler (or the session manager, as those handlers do) and translates the answer
// back. No licensing rule lives in an adapter.
//
// Each dialect is one file, dialect_<name>.go, that registers itself in init(), as Caddy's
// modules do. The server mounts every registered dialect's routes once; a request is served
// only for a tenant whose `dialects` list names the dialect, and is a 404 otherwise. Adding
// a dialect touches neither the engine nor the handlers it adapts, only the list of names
// the configuration accepts (config.Dialects, which a test keeps equal to the registry).

// dialectAuth says how a dialect route finds its tenant (and caller).
type dialectAuth int

const (
	// dialectEntry routes are unauthenticated entry points, or call a handler that
	// authenticates by itself: the tenant is the one the request names (/t/{tenant}/,
	// tenant=, or the path of a tenant-rooted route), else the default tenant.
	dialectEntry dialectAuth = iota
	// dialectBearer routes take a Bearer access token; the tenant is the one named, else
	// the token's.
	dialectBearer
	// dialectBrowser routes take a Bearer access token or the session cookie (SPEC §4: the
	// dialect routes are cookie-based routes); cross-site state changes are refused.
	dialectBrowser
)

// dialectCall is what the mounting resolved for a dialect route.
type dialectCall struct {
	Tenant    string
	Principal *session.Principal // nil on dialectEntry routes
	ViaCookie bool               // the session cookie authenticated the request
}

type dialectRoute struct {
	pattern string // an http.ServeMux pattern, method included
	auth    dialectAuth
	serve   func(s *Server, w http.ResponseWriter, r *http.Request, c *dialectCall)
}

// alias makes a route serve one of the server's own handlers unchanged.
func alias(h func(*Server, http.ResponseWriter, *http.Request)) func(*Server, http.ResponseWriter, *http.Request, *dialectCall) {
	return func(s *Server, w http.ResponseWriter, r *http.Request, _ *dialectCall) { h(s, w, r) }
}

type dialect struct {
	name string
	// routes are mounted at the root (and so also under /t/{tenant}/).
	routes []dialectRoute
	// tenantRoutes are mounted under /{tenant}/ (Jim2's /{tenant}/token). They are tried
	// only for paths no other route matches, so they never shadow one, and only for a
	// tenant that mounts the dialect.
	tenantRoutes []dialectRoute
	// foldTenant: the seed system's tenant names are case-insensitive and may hold '_'
	// (Therefore's tenant=NTWare1, Jim2's /Jim_Test/token); they are matched as Leasehold
	// names, lower case with '-' for '_'.
	foldTenant bool
}

// dialects is the registry, written only by the dialect files' init functions.
var dialects = map[string]*dialect{}

func registerDialect(d *dialect) {
	if _, dup := dialects[d.name]; dup {
		panic("server: dialect " + d.name + " registered twice")
	}
	dialects[d.name] = d
}

// dialectNames lists the registered dialects, sorted.
func dialectNames() []string {
	names := make([]string, 0, len(dialects))
	for name := range dialects {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// dialectRoutes mounts every registered dialect's routes and returns the handler for paths
// no route matches: a tenant-rooted dialect route when one fits, else notFound.
func (s *Server) dialectRoutes(notFound http.Handler) http.Handler {
	var roots []tenantRooted // this server's: the registry is shared by every server
	for _, name := range dialectNames() {
		d := dialects[name]
		for _, rt := range d.routes {
			s.mux.Handle(rt.pattern, s.dialectHandler(d, rt))
		}
		if len(d.tenantRoutes) > 0 {
			root := tenantRooted{d: d, mux: newRouteMux()}
			for _, rt := range d.tenantRoutes {
				root.mux.Handle(rt.pattern, s.dialectHandler(d, rt))
			}
			roots = append(roots, root)
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seg, rest, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/"); ok {
			for _, root := range roots {
				if s.serveTenantRooted(w, r, root, seg, rest) {
					return
				}
			}
		}
		notFound.ServeHTTP(w, r)
	})
}

// tenantRooted is a dialect's tenant-rooted routes, mounted on a server.
type tenantRooted struct {
	d   *dialect
	mux *routeMux
}

// serveTenantRooted serves /{seg}/{rest} with a dialect's tenant-rooted routes when seg
// names a tenant that mounts the dialect and rest is one of them; it reports whether it did.
func (s *Server) serveTenantRooted(w http.ResponseWriter, r *http.Request, root tenantRooted, seg, rest string) bool {
	d := root.d
	name := seg
	if d.foldTenant {
		name = foldTenantName(name)
	}
	if !tenantName.MatchString(name) || (prefixTenant(r) != "" && prefixTenant(r) != name) {
		return false
	}
	// The request relative to the tenant, which its path names as a /t/{tenant}/ prefix does.
	sub := r.WithContext(context.WithValue(r.Context(), tenantPrefixKey{}, name))
	u := *r.URL
	u.Path, u.RawPath = "/"+rest, ""
	sub.URL = &u
	_, pattern := root.mux.Handler(sub)
	if pattern == "" {
		// A tenant-rooted route asked with another method (GET /{tenant}/token): 405, as
		// for every other route, when the tenant mounts the dialect.
		allowed := allowedMethods(root.mux, sub, "")
		if len(allowed) == 0 || !s.tenantMounts(r, name, d.name) {
			return false
		}
		methodNotAllowed(w, r, allowed)
		return true
	}
	if !s.tenantMounts(r, name, d.name) {
		return false
	}
	method, path, _ := strings.Cut(pattern, " ")
	r.Pattern = method + " /{tenant}" + path // for the metrics
	root.mux.ServeHTTP(w, sub)
	return true
}

// tenantMounts reports whether tenant exists and mounts the dialect. It reads the cached
// tenant list, so that unmatched paths cost no store read whatever their first segment.
func (s *Server) tenantMounts(r *http.Request, tenant, dialect string) bool {
	list, err := s.deps.Catalog.Tenants(r.Context())
	if err != nil {
		return false
	}
	for _, t := range list {
		if t.Name == tenant {
			return slices.Contains(t.Dialects, dialect)
		}
	}
	return false
}

// dialectHandler resolves a dialect route's tenant (and caller), refuses the request when
// that tenant does not mount the dialect, and serves it.
func (s *Server) dialectHandler(d *dialect, rt dialectRoute) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.foldTenant {
			r = foldTenantQuery(r)
		}
		c := &dialectCall{}
		// The tenant named (or the default one, when the request carries no credential to
		// tell) is checked before authenticating: a tenant without the dialect answers 404,
		// not 401.
		if rt.auth == dialectEntry || explicitTenant(r) != "" || !hasCredentials(r, rt.auth) {
			tenant, ok := s.entryTenant(w, r)
			if !ok {
				return
			}
			if !s.dialectMounted(w, r, tenant, d.name) {
				return
			}
			c.Tenant = tenant
		}
		switch rt.auth {
		case dialectBearer:
			p, ok := s.authenticate(w, r)
			if !ok {
				return
			}
			c.Principal = p
		case dialectBrowser:
			p, viaCookie, ok := s.authenticateBrowser(w, r)
			if !ok {
				return
			}
			c.Principal, c.ViaCookie = p, viaCookie
		}
		if c.Principal != nil {
			if c.Tenant == "" && !s.dialectMounted(w, r, c.Principal.Tenant, d.name) {
				return
			}
			c.Tenant = c.Principal.Tenant
		}
		rt.serve(s, w, r, c)
	})
}

// dialectMounted answers 404 itself unless tenant mounts the dialect.
func (s *Server) dialectMounted(w http.ResponseWriter, r *http.Request, tenant, dialect string) bool {
	snap, err := s.deps.Catalog.Get(r.Context(), tenant)
	if err != nil {
		s.internalError(w, r, err)
		return false
	}
	if !hasDialect(snap, dialect) {
		writeError(w, http.StatusNotFound, "not_found",
			fmt.Sprintf("no such route: %s %s (tenant %s does not mount the %s dialect)", r.Method, r.URL.Path, tenant, dialect))
		return false
	}
	return true
}

// hasCredentials reports whether the request carries what a route of kind auth
// authenticates with.
func hasCredentials(r *http.Request, auth dialectAuth) bool {
	if r.Header.Get("Authorization") != "" {
		return true
	}
	return auth == dialectBrowser && (len(cookieValues(r, sessionCookie)) > 0 || len(cookieValues(r, dwSessionCookie)) > 0)
}

func foldTenantName(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// foldTenantQuery rewrites a `tenant=` query parameter the dialect's way (foldTenant).
func foldTenantQuery(r *http.Request) *http.Request {
	q := r.URL.Query()
	t := q.Get("tenant")
	if t == "" || t == foldTenantName(t) {
		return r
	}
	q.Set("tenant", foldTenantName(t))
	r2 := r.WithContext(r.Context())
	u := *r.URL
	u.RawQuery = q.Encode()
	r2.URL = &u
	return r2
}
