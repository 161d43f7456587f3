// Package server is Leasehold's HTTP front: routing, tenant resolution, authentication,
// parsing and rendering. It holds no licensing rule: those live in package engine.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/leasehold/leasehold/internal/admintoken"
	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/documents"
	"github.com/leasehold/leasehold/internal/engine"
	"github.com/leasehold/leasehold/internal/extauth"
	"github.com/leasehold/leasehold/internal/keys"
	"github.com/leasehold/leasehold/internal/objects"
	"github.com/leasehold/leasehold/internal/secret"
	"github.com/leasehold/leasehold/internal/server/openapi"
	"github.com/leasehold/leasehold/internal/session"
	"github.com/leasehold/leasehold/internal/store"
	"github.com/leasehold/leasehold/internal/throttle"
	"github.com/leasehold/leasehold/internal/ui"
)

// Options are the server settings taken from the configuration file.
type Options struct {
	PublicURL      string // no trailing slash
	TrustedProxies []netip.Prefix
	// Admin checks the admin token (nil or unconfigured: the admin API is off).
	Admin *admintoken.Guard
	// MetricsToken is the Bearer token /metrics takes besides the admin token.
	MetricsToken string
	// SeparateAdmin serves the admin API and /metrics only on AdminHandler (admin_listen),
	// not on Handler.
	SeparateAdmin bool
	GeoIP         bool // a GeoIP database is configured (models may use `countries`)
	Logger        *slog.Logger
	Metrics       *Metrics // nil: a private registry
}

// Deps are the services the handlers drive.
type Deps struct {
	Store    store.Store
	Catalog  *catalog.Cache
	Engine   *engine.Engine
	Keys     *keys.Manager
	Sessions *session.Manager
	// Documents is the session document storage; ExtAuth verifies trusted external
	// tokens (nil: none accepted).
	Documents *documents.Store
	ExtAuth   *extauth.Verifier
	// UI is the dashboard mounted at /ui/ (nil: none).
	UI *ui.Dashboard
	// Ready, when set, names what else keeps this process from being ready (a gateway
	// listener it could not bind); /readyz fails with its error.
	Ready func() error
}

type Server struct {
	opts    Options
	deps    Deps
	log     *slog.Logger
	secrets *secret.VerifyCache
	// guesses throttles failed client-secret checks (passwords are the session manager's,
	// the admin token admintoken.Guard's).
	guesses throttle.Limiter
	// writer makes the admin API's object changes.
	writer  *objects.Writer
	metrics *Metrics
	mux     *routeMux
	// adminMux holds the admin API and /metrics: mux itself, unless SeparateAdmin.
	adminMux *routeMux
	// cop refuses cookie-authenticated state changes a browser marks cross-site.
	cop *http.CrossOriginProtection
}

func New(opts Options, deps Deps) *Server {
	opts.PublicURL = strings.TrimRight(opts.PublicURL, "/")
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	s := &Server{
		opts:    opts,
		deps:    deps,
		log:     opts.Logger,
		secrets: secret.NewVerifyCache(0, 0),
		writer:  objects.NewWriter(deps.Store, deps.Catalog, opts.GeoIP),
		mux:     newRouteMux(),
	}
	s.adminMux = s.mux
	if opts.SeparateAdmin {
		s.adminMux = newRouteMux()
	}
	s.metrics = opts.Metrics
	s.cop = newCrossOriginProtection(opts.PublicURL)
	s.metrics.reg.MustRegister(&seatCollector{deps: deps})
	s.routes()
	return s
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /readyz", s.readyz)
	m.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapi.Document)
	})
	s.adminMux.Handle("GET /metrics", s.requireMetricsToken(s.metrics.handler()))
	m.HandleFunc("/authz/", s.authz)
	m.HandleFunc("POST /oauth2/token", s.token)
	m.HandleFunc("POST /oauth2/logoff", s.logoff)
	m.HandleFunc("GET /.well-known/jwks.json", s.jwks)
	m.HandleFunc("GET /entitlements/licenses", s.entitlements)
	s.oauthRoutes()
	s.sessionRoutes()
	s.adminRoutes()
	s.uiRoutes()
	// The dialects' aliases (SPEC §5); a path no route matches may be a tenant-rooted
	// dialect route (Jim2's /{tenant}/token), else it is a 405 or a 404.
	m.Handle("/", s.dialectRoutes(http.HandlerFunc(s.unmatched)))
}

// Handler is the server's root handler, with the `/t/{tenant}/` prefix, logging, metrics
// and panic containment around the routes.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveHTTP(w, r, s.mux) })
}

// AdminHandler serves the admin API and /metrics (and /healthz), with Handler's logging and
// metrics, for the admin_listen listener. Without SeparateAdmin it is Handler.
func (s *Server) AdminHandler() http.Handler {
	if s.adminMux == s.mux {
		return s.Handler()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveHTTP(w, r, s.adminMux) })
}

// serveHTTP runs on every request, so it is kept to what each one needs: one status
// recorder, one derived request, the client address parsed once.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request, mux *routeMux) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK, requestID: requestID(r.Header.Get("X-Request-Id"))}
	w.Header().Set("X-Request-Id", rec.requestID)
	addr := clientAddr(r, s.opts.TrustedProxies)
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("panic", "path", r.URL.Path, "request_id", rec.requestID, "panic", v)
			if !rec.wrote {
				writeError(rec, http.StatusInternalServerError, "internal_error", "internal error")
			}
		}
		elapsed := time.Since(start)
		s.metrics.observe(r.Method, routeOf(r.Pattern), rec.status, elapsed)
		s.logRequest(r, rec, elapsed, addr)
	}()
	rec.addr = addr
	ctx := context.WithValue(r.Context(), recorderKey{}, rec)
	if strings.HasPrefix(r.URL.Path, "/t/") {
		rest := r.URL.Path[len("/t/"):]
		name, sub, _ := strings.Cut(rest, "/")
		if !tenantName.MatchString(name) {
			writeError(rec, http.StatusNotFound, "not_found", "unknown tenant")
			return
		}
		ctx = context.WithValue(ctx, tenantPrefixKey{}, name)
		r.URL.Path = "/" + sub
		r.URL.RawPath = ""
	}
	r = r.WithContext(ctx)
	mux.ServeHTTP(rec, r)
}

// logRequest writes the one line per request (SPEC §6). It names no query parameter and no
// header, so that no token, password or secret can reach the log.
// A 5xx is the server's failure and logs at ERROR; a 4xx is the client's, at INFO.
func (s *Server) logRequest(r *http.Request, rw *statusRecorder, elapsed time.Duration, addr netip.Addr) {
	ctx := context.Background()
	level := slog.LevelInfo
	if rw.status >= 500 {
		level = slog.LevelError
	}
	if !s.log.Enabled(ctx, level) {
		return
	}
	tenant := rw.tenant
	if tenant == "" {
		tenant = loggedTenant(explicitTenant(r))
	}
	// Straight to the handler, as Logger.LogAttrs would but without the runtime.Callers
	// walk for a source position, which would name this function on every line anyway.
	rec := slog.NewRecord(time.Now(), level, "request", 0)
	rec.AddAttrs(
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", rw.status),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.String("client", addr.String()),
		slog.String("tenant", tenant),
		slog.String("request_id", rw.requestID),
	)
	if rw.user != "" {
		rec.AddAttrs(slog.String("user", rw.user))
	}
	if rw.clientID != "" {
		rec.AddAttrs(slog.String("client_id", rw.clientID))
	}
	_ = s.log.Handler().Handle(ctx, rec)
}

// routeOf is the route label of a ServeMux pattern: its path, without the method (which
// has a label of its own).
func routeOf(pattern string) string {
	if pattern == "" {
		return "unmatched"
	}
	if _, path, ok := strings.Cut(pattern, " "); ok {
		return path
	}
	return pattern
}

type recorderKey struct{}

// actedAs records, for the request's log line, the tenant, user and client its credential
// belongs to.
func actedAs(r *http.Request, tenant, user, client string) {
	if rw, ok := r.Context().Value(recorderKey{}).(*statusRecorder); ok {
		rw.tenant, rw.user, rw.clientID = tenant, user, client
	}
}

func actedAsPrincipal(r *http.Request, p *session.Principal) {
	if p != nil && p.Session != nil {
		actedAs(r, p.Tenant, p.Session.User, p.Session.Client)
	}
}

// requestIDs: a random prefix per process and a counter make an id unique without a
// crypto/rand read per request.
var (
	requestIDPrefix = func() string {
		var b [6]byte
		_, _ = rand.Read(b[:])
		return hex.EncodeToString(b[:])
	}()
	requestIDSeq atomic.Uint64
)

// requestID is the client's X-Request-Id when it is a plain token of at most 64 characters
// (so a client cannot write what it likes into the log), else a new one.
func requestID(given string) string {
	if given != "" && len(given) <= 64 && !strings.ContainsFunc(given, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':')
	}) {
		return given
	}
	return requestIDPrefix + "-" + strconv.FormatUint(requestIDSeq.Add(1), 36)
}

var tenantName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// loggedTenant is what the request log says of a client-named tenant: the name when it is
// one, else a fixed word, so that a client cannot write what it likes (megabytes, line
// breaks, a forged field) into the log.
func loggedTenant(t string) string {
	if t == "" || tenantName.MatchString(t) {
		return t
	}
	return "(invalid)"
}

type tenantPrefixKey struct{}

// prefixTenant is the tenant named by the `/t/{tenant}/` path prefix ("" when none).
func prefixTenant(r *http.Request) string {
	t, _ := r.Context().Value(tenantPrefixKey{}).(string)
	return t
}

// explicitTenant is the tenant a request names: its path prefix, else `tenant=`.
func explicitTenant(r *http.Request) string {
	if t := prefixTenant(r); t != "" {
		return t
	}
	return queryTenant(r.URL.RawQuery)
}

// queryTenant is url.ParseQuery(raw).Get("tenant") without building the map of every
// parameter: it runs for the log line and the authentication of every request, whose
// queries (an /authz renewal's items, hw, leaseId…) almost never name a tenant.
func queryTenant(raw string) string {
	if !strings.Contains(raw, "tenant") && !strings.Contains(raw, "%") {
		return "" // no key can unescape to "tenant"
	}
	if strings.Count(raw, "&") >= 1000 {
		q, _ := url.ParseQuery(raw) // ParseQuery's own limit on the number of parameters applies
		return q.Get("tenant")
	}
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" || strings.Contains(pair, ";") {
			continue // ParseQuery skips these
		}
		k, v, _ := strings.Cut(pair, "=")
		if k != "tenant" {
			if !strings.Contains(k, "%") {
				continue // only an escape can spell "tenant" differently
			}
			if uk, err := url.QueryUnescape(k); err != nil || uk != "tenant" {
				continue
			}
		}
		if v, err := url.QueryUnescape(v); err == nil {
			return v
		}
	}
	return ""
}

// entryTenant resolves the tenant of an unauthenticated entry point: the one named, else
// the default tenant. It answers 404 itself when there is none.
func (s *Server) entryTenant(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := explicitTenant(r)
	if name == "" {
		def, err := s.deps.Catalog.DefaultTenant(r.Context())
		if err != nil {
			s.internalError(w, r, err)
			return "", false
		}
		name = def
	}
	if name == "" || !tenantName.MatchString(name) {
		writeError(w, http.StatusNotFound, "unknown_tenant", "no such tenant (name one with /t/{tenant}/ or tenant=)")
		return "", false
	}
	if _, err := s.deps.Catalog.Get(r.Context(), name); err != nil {
		writeError(w, http.StatusNotFound, "unknown_tenant", "no such tenant: "+name)
		return "", false
	}
	return name, true
}

// authenticate resolves the request's Bearer token. It answers 401 itself when it fails.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*session.Principal, bool) {
	tok := bearerToken(r)
	if tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="leasehold"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", "a Bearer access token is required")
		return nil, false
	}
	if s.deps.ExtAuth != nil && extauth.LooksLikeJWT(tok) {
		return s.authenticateExternal(w, r, tok) // our own tokens never contain a dot
	}
	p, err := s.deps.Sessions.Authenticate(r.Context(), explicitTenant(r), tok, s.addrOf(r))
	if err != nil {
		if err == session.ErrInvalidToken {
			w.Header().Set("WWW-Authenticate", `Bearer realm="leasehold", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "invalid_token", "the access token is invalid, expired or revoked")
		} else {
			s.internalError(w, r, err)
		}
		return nil, false
	}
	actedAsPrincipal(r, p)
	return p, true
}

func (s *Server) internalError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client went away; nothing to answer
	}
	rid := ""
	if rw, ok := r.Context().Value(recorderKey{}).(*statusRecorder); ok {
		rid = rw.requestID
	}
	s.log.Error("internal error", "path", r.URL.Path, "request_id", rid, "err", err)
	if store.Unavailable(err) {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the store could not be reached; retry")
		return
	}
	// A bug: retrying will not help, and a 503 would say it might.
	writeError(w, http.StatusInternalServerError, "internal_error", "internal error (request "+rid+"); the server's log has the cause")
}

// unmatched answers a request no route took: 405 with Allow when the path is served under
// other methods (RFC 9110 §15.5.6: the catch-all route would otherwise hide that), else 404.
func (s *Server) unmatched(w http.ResponseWriter, r *http.Request) {
	if allowed := allowedMethods(s.mux, r, "/"); len(allowed) > 0 {
		methodNotAllowed(w, r, allowed)
		return
	}
	s.notFound(w, r)
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allowed []string) {
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
		r.Method+" is not served at "+r.URL.Path+"; use "+strings.Join(allowed, " or "))
}

// allowedMethods lists the methods that some route of mux other than catchAll serves at
// r's path.
func allowedMethods(mux *routeMux, r *http.Request, catchAll string) []string {
	var allowed []string
	probe := *r
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		probe.Method = m
		if _, pattern := mux.Handler(&probe); pattern != "" && pattern != catchAll {
			allowed = append(allowed, m)
		}
	}
	return allowed
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "not_found", "no such route: "+r.Method+" "+r.URL.Path)
}

// healthzBody is what writeJSON would write for {"ok": true}, made once: load balancers
// poll this route.
var healthzBody = []byte("{\"ok\":true}\n")

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(healthzBody)
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.deps.Store.Ping(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, readiness{Error: "store unreachable"})
		return
	}
	if s.deps.Ready != nil {
		if err := s.deps.Ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, readiness{Error: err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, readiness{OK: true})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
	// For the log line: the request's id, and who its credential acted as.
	requestID              string
	tenant, user, clientID string
	// addr is the client address, resolved once per request (addrOf).
	addr netip.Addr
}

// addrOf is the request's client address (trusted_proxies applied) for ip_ranges,
// countries, throttling and logs: the one serveHTTP resolved.
func (s *Server) addrOf(r *http.Request) netip.Addr {
	if rec, ok := r.Context().Value(recorderKey{}).(*statusRecorder); ok {
		return rec.addr
	}
	return clientAddr(r, s.opts.TrustedProxies)
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
