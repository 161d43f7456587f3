package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/extauth"
	"github.com/leasehold/leasehold/internal/session"
)

// gateway is one gateway's configuration, ready to serve; a change swaps it whole.
type gateway struct {
	tenant   string
	spec     domain.Gateway
	key      string // tenant/name, in logs
	origin   string // the public URL's origin
	secure   bool   // public_url is https: cookies are Secure and __Host- prefixed
	cookie   string
	docuware bool
	proxy    *httputil.ReverseProxy // nil without upstream
	cop      *http.CrossOriginProtection
	// reqLog writes the request log with the tenant and gateway attributes encoded once,
	// not at every request.
	reqLog slog.Handler
}

func newGateway(tenant string, snap *catalog.Snapshot, spec *domain.Gateway, log *slog.Logger) (*gateway, error) {
	g := &gateway{tenant: tenant, spec: *spec, key: tenant + "/" + spec.Name,
		docuware: slices.Contains(snap.Tenant.Dialects, "docuware"),
		reqLog:   log.Handler().WithAttrs([]slog.Attr{slog.String("tenant", tenant), slog.String("gateway", spec.Name)})}
	pub := spec.PublicURL
	if pub == "" {
		pub = "http://" + spec.Listen
		if spec.TLS.CertFile != "" {
			pub = "https://" + spec.Listen
		}
	}
	u, err := url.Parse(pub)
	if err != nil {
		return nil, fmt.Errorf("public_url: %w", err)
	}
	g.origin = u.Scheme + "://" + u.Host
	g.secure = u.Scheme == "https"
	g.cookie = "lh_gw_" + spec.Name
	if g.secure {
		g.cookie = "__Host-" + g.cookie
	}
	g.cop = http.NewCrossOriginProtection()
	// Behind a proxy the Host the gateway sees is not the browser's: public_url is.
	if err := g.cop.AddTrustedOrigin(g.origin); err != nil {
		return nil, fmt.Errorf("public_url: %w", err)
	}
	if spec.Upstream != "" {
		up, err := url.Parse(spec.Upstream)
		if err != nil {
			return nil, fmt.Errorf("upstream: %w", err)
		}
		g.proxy = newProxy(up, spec.Timeout.D(), log.With("gateway", g.key))
	}
	return g, nil
}

// closeIdle closes the upstream connections kept for reuse, when the configuration is
// replaced or stopped.
func (g *gateway) closeIdle() {
	if g.proxy != nil {
		if t, ok := g.proxy.Transport.(interface{ CloseIdleConnections() }); ok {
			t.CloseIdleConnections()
		}
	}
}

// handler serves one gateway's listener.
type handler struct {
	deps Deps
	met  *metrics
	cur  atomic.Pointer[gateway]
}

// recorder keeps the status for the log line and metrics; Unwrap lets the proxy flush and
// hijack (server-sent events, WebSocket) through it.
type recorder struct {
	http.ResponseWriter
	status  int
	wrote   bool
	written time.Time
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote && code >= 200 {
		r.status, r.wrote, r.written = code, true, time.Now()
	} else if code == http.StatusSwitchingProtocols {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.wrote, r.written = true, time.Now()
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// outcome is what the log line and the metrics say of a request.
type outcome struct {
	client            netip.Addr // read once: with trusted_proxies it parses headers
	route, user, sess string
	refusal           domain.ErrorCode // a license refusal's code
	proxied           time.Time        // when the request was handed to the upstream
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := h.cur.Load()
	start := time.Now()
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	out := outcome{client: h.deps.ClientAddr(r)}
	defer func() {
		h.met.observe(g, &out, rec)
		h.logRequest(g, r, rec, &out, time.Since(start))
	}()
	h.serve(rec, r, g, &out)
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request, g *gateway, out *outcome) {
	path, err := CleanPath(r.URL.EscapedPath())
	if err != nil {
		out.route = "-"
		g.refuse(w, r, &refusal{status: http.StatusBadRequest, code: "invalid_path", msg: err.Error()}, false)
		return
	}
	if path+"/" == ReservedPrefix || strings.HasPrefix(path, ReservedPrefix) {
		out.route = path
		h.page(w, r, g, path, out)
		return
	}
	route, allow := Match(g.spec.Routes, path, r.Method)
	if route == nil {
		out.route = "-"
		if allow != nil {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			g.refuse(w, r, &refusal{status: http.StatusMethodNotAllowed, code: "method_not_allowed", msg: "this path does not take " + r.Method}, false)
			return
		}
		g.refuse(w, r, &refusal{status: http.StatusNotFound, code: "not_found", msg: "no route of this gateway matches the path"}, false)
		return
	}
	out.route = route.Path
	if g.proxy == nil {
		g.refuse(w, r, &refusal{status: http.StatusNotFound, code: "not_found", msg: "this gateway has no upstream; it answers forward-auth at /.leasehold/auth"}, false)
		return
	}
	a, ref := h.admit(r.Context(), r, g, route, r.Method, out)
	if ref != nil {
		g.refuse(w, r, ref, true)
		return
	}
	a.path = path
	a.clientAddr = out.client
	a.proto = "http"
	if g.secure || r.TLS != nil {
		a.proto = "https"
	}
	a.docuware = g.docuware
	ctx := withAdmission(r.Context(), a)
	if a.identity.Session != "" {
		// Closed when its session, or the lease that admitted it, ends.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		keys := []openKey{{'s', g.tenant, a.identity.Session}}
		if a.leaseRoot != "" {
			keys = append(keys, openKey{'l', g.tenant, a.leaseRoot})
		}
		defer h.deps.Leases.open.track(cancel, keys...)()
		// Only a request still open at its session's refresh point costs more than a timer.
		if at, ok := session.NextUse(a.principal.Session); ok {
			t := time.AfterFunc(time.Until(at)+10*time.Millisecond, func() { h.keepUsing(ctx, cancel, g, a.principal, a.clientAddr) })
			defer t.Stop()
		}
	}
	out.proxied = time.Now()
	g.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// refusal is a request the gateway does not admit.
type refusal struct {
	status int
	code   string
	msg    string
	// challenge: a 401 that asks for credentials (WWW-Authenticate); login: a browser may
	// be sent to the login page instead.
	challenge, login bool
	invalidToken     bool
	licenseErr       domain.ErrorCode
	// retryAfter: seconds until a seat may free (0: not known).
	retryAfter int
}

// browser: a request a person's browser made for a page (GET or HEAD accepting HTML).
func browser(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.Contains(r.Header.Get("Accept"), "text/html")
}

// refuse answers a refusal: a browser asking for a page is sent to the login page when that
// would help (mayRedirect; never for forward-auth, whose 302 nginx could not pass on) and
// gets an HTML page otherwise; anything else gets JSON.
func (g *gateway) refuse(w http.ResponseWriter, r *http.Request, ref *refusal, mayRedirect bool) {
	if ref.login && mayRedirect && browser(r) {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, "/.leasehold/login?return_to="+url.QueryEscape(ReturnTo(r.URL.RequestURI())), http.StatusFound)
		return
	}
	if ref.challenge {
		c := `Bearer realm="` + g.tenant + `"`
		if ref.invalidToken {
			c += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", c)
	}
	if ref.licenseErr != "" {
		writeLicenseRefusal(w, r, ref, true)
		return
	}
	if browser(r) && ref.status != http.StatusUnauthorized {
		renderMessage(w, ref.status, http.StatusText(ref.status), ref.msg)
		return
	}
	writeJSON(w, ref.status, errorBody{Error: ref.code, Message: ref.msg})
}

type licenseBody struct {
	Error        string `json:"error"`
	LicenseError string `json:"license_error"`
	Message      string `json:"message"`
	// RetryAfter is absent when the earliest moment a seat may free is not known.
	RetryAfter int `json:"retry_after,omitempty"`
}

// writeLicenseRefusal answers a license refusal: JSON, or a page for a browser (html).
func writeLicenseRefusal(w http.ResponseWriter, r *http.Request, ref *refusal, html bool) {
	if ref.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ref.retryAfter))
	}
	if html && browser(r) {
		msg := ref.msg
		if ref.retryAfter > 0 {
			msg += " A seat may free in " + strconv.Itoa(ref.retryAfter) + " s."
		}
		renderMessage(w, ref.status, "License unavailable", msg)
		return
	}
	writeJSON(w, ref.status, licenseBody{Error: "license_unavailable", LicenseError: string(ref.licenseErr), Message: ref.msg, RetryAfter: ref.retryAfter})
}

// credential is how a request authenticated.
type credential struct {
	p          *session.Principal
	usedBearer bool
	viaCookie  bool
}

// authenticate reads the request's credentials in SPEC order: a Bearer token (an invalid one
// is final: the cookie is then not tried), then the gateway's own cookie. A request with
// neither has a nil principal and no refusal.
func (h *handler) authenticate(ctx context.Context, r *http.Request, g *gateway) (credential, *refusal) {
	if tok, ok := bearer(r); ok {
		p, err := h.bearerPrincipal(ctx, r, g, tok)
		if err != nil {
			return credential{}, h.authRefusal(ctx, err)
		}
		return credential{p: p, usedBearer: true}, nil
	}
	for _, c := range r.CookiesNamed(g.cookie) {
		p, err := h.deps.Sessions.AuthenticateGatewayCookie(ctx, g.tenant, g.spec.Name, c.Value, h.deps.ClientAddr(r))
		if err == nil {
			return credential{p: p, viaCookie: true}, nil
		}
		if !errors.Is(err, session.ErrInvalidToken) {
			return credential{}, h.authRefusal(ctx, err)
		}
	}
	return credential{}, nil
}

func bearer(r *http.Request) (string, bool) {
	v := r.Header.Get("Authorization")
	if len(v) < 7 || !strings.EqualFold(v[:7], "bearer ") {
		return "", false
	}
	return strings.TrimSpace(v[7:]), true
}

var errUntrusted = errors.New("untrusted")

func (h *handler) bearerPrincipal(ctx context.Context, r *http.Request, g *gateway, tok string) (*session.Principal, error) {
	if !extauth.LooksLikeJWT(tok) {
		return h.deps.Sessions.Authenticate(ctx, g.tenant, tok, h.deps.ClientAddr(r))
	}
	// Our own tokens never contain a dot: this one is a trusted issuer's or nobody's.
	snap, err := h.deps.Catalog.Get(ctx, g.tenant)
	if err != nil {
		return nil, err
	}
	if h.deps.ExtAuth == nil {
		return nil, errUntrusted
	}
	id, err := h.deps.ExtAuth.Verify(ctx, snap.Tenant.TrustedIssuers, tok)
	if err != nil {
		return nil, errUntrusted
	}
	return h.deps.Sessions.External(ctx, g.tenant, session.ExternalIdentity{
		Issuer: id.Issuer, Subject: id.Subject, User: id.User, Expiry: id.Expiry, IssuedAt: id.IssuedAt,
	}, h.deps.ClientAddr(r))
}

// authRefusal maps an authentication failure to its answer.
func (h *handler) authRefusal(ctx context.Context, err error) *refusal {
	var seat *session.SeatError
	var limit *session.SessionLimitError
	switch {
	case errors.Is(err, session.ErrInvalidToken), errors.Is(err, errUntrusted):
		return &refusal{status: http.StatusUnauthorized, code: "invalid_token", msg: "the access token is invalid, expired or revoked", challenge: true, invalidToken: true}
	case errors.As(err, &seat):
		ref := licenseRefusal(seat)
		if at, err := h.deps.Sessions.SeatFreesAt(ctx, seat); err == nil && !at.IsZero() {
			ref.retryAfter = max(1, int(math.Ceil(time.Until(at).Seconds())))
		}
		return ref
	case errors.As(err, &limit):
		return &refusal{status: http.StatusForbidden, code: "too_many_sessions", msg: limit.Error()}
	}
	h.deps.Log.Error("gateway authentication failed", "err", err)
	return &refusal{status: http.StatusInternalServerError, code: "internal_error", msg: "internal error"}
}

func licenseRefusal(seat *session.SeatError) *refusal {
	msg := seat.Error()
	if seat.Err != nil && seat.Err.Message != "" {
		msg = seat.Err.Message
	}
	code := domain.ErrorCode("")
	if seat.Err != nil {
		code = seat.Err.Code
	}
	return &refusal{status: http.StatusForbidden, code: "license_unavailable", msg: msg, licenseErr: code}
}

// admit judges a request (or, for forward-auth, the request it describes: method) under
// route, by SPEC section 8's rules, and returns what the proxy needs.
func (h *handler) admit(ctx context.Context, r *http.Request, g *gateway, route *domain.Route, method string, out *outcome) (*admission, *refusal) {
	a := &admission{identity: Identity{Tenant: g.tenant}}
	if route.Access == domain.AccessPublic {
		return a, nil
	}
	cred, ref := h.authenticate(ctx, r, g)
	if ref != nil {
		out.refusal = ref.licenseErr
		return nil, ref
	}
	if cred.p == nil {
		return nil, &refusal{status: http.StatusUnauthorized, code: "unauthorized", msg: "this path needs a session: send a Bearer token or sign in at /.leasehold/login", challenge: true, login: true}
	}
	p := cred.p
	out.user, out.sess = p.Session.User, p.Session.ID
	scopes := p.Session.Scopes
	if p.Token != nil && len(p.Token.Scopes) > 0 {
		scopes = p.Token.Scopes
	}
	if len(route.Scopes) > 0 && !slices.ContainsFunc(route.Scopes, func(s string) bool { return slices.Contains(scopes, s) }) {
		return nil, &refusal{status: http.StatusForbidden, code: "insufficient_scope", msg: "this path needs one of the scopes " + strings.Join(route.Scopes, " ")}
	}
	if route.Access == domain.AccessSeat {
		if !p.Session.Licensed {
			return nil, &refusal{status: http.StatusForbidden, code: "insufficient_scope", msg: "this path needs a licensed session (one that holds a seat); this session's scopes are all free"}
		}
		a.identity.License = p.Session.LeaseLicense
		if route.Item != "" {
			lic, root, ref := h.holdItem(ctx, r, g, p, route.Item)
			if ref != nil {
				out.refusal = ref.licenseErr
				return nil, ref
			}
			a.identity.License = lic
			a.leaseRoot = root
		}
	}
	if cred.viaCookie && !safeMethod(method) {
		cr := r
		if method != r.Method {
			cr = r.Clone(ctx)
			cr.Method = method
		}
		if err := g.cop.Check(cr); err != nil {
			return nil, &refusal{status: http.StatusForbidden, code: "cross_origin", msg: "a cookie-authenticated " + method + " must come from " + g.origin}
		}
	}
	a.identity.User, a.identity.Session, a.identity.Scopes = p.Session.User, p.Session.ID, scopes
	a.usedBearer = cred.usedBearer
	a.principal = p
	if a.leaseRoot == "" {
		a.leaseRoot = p.Session.LeaseRoot
	}
	return a, nil
}

// holdItem makes sure the session holds a lease on item (SPEC section 8: taken on its first
// request under the route, then the session's like its seat). A session already known to
// hold it is admitted from memory.
func (h *handler) holdItem(ctx context.Context, r *http.Request, g *gateway, p *session.Principal, item string) (license, root string, ref *refusal) {
	now := time.Now()
	if lic, root, ok := h.deps.Leases.lookup(g.tenant, p.Session.ID, item, now); ok {
		return lic, root, nil
	}
	gen := h.deps.Leases.generation()
	l, err := h.deps.Sessions.HoldItem(ctx, p, item, h.deps.ClientAddr(r))
	if err != nil {
		h.deps.Leases.forget(g.tenant, p.Session.ID, item)
		return "", "", h.authRefusal(ctx, err)
	}
	h.deps.Leases.remember(g.tenant, p.Session.ID, item, l.License, l.Root, gen, now)
	return l.License, l.Root, nil
}

// keepUsing counts an open request (a stream, an upgraded connection) as use of its session
// at each of the session's refresh points, so that an idle-timeout session does not end
// under a long download. A session that has ended closes the request.
func (h *handler) keepUsing(ctx context.Context, cancel context.CancelFunc, g *gateway, p *session.Principal, addr netip.Addr) {
	for ctx.Err() == nil {
		if err := h.deps.Sessions.Use(ctx, p, addr); err != nil {
			if ctx.Err() == nil {
				if !errors.Is(err, session.ErrInvalidToken) {
					h.deps.Log.Warn("gateway: extending the session of an open request failed", "gateway", g.key, "err", err)
				}
				cancel()
			}
			return
		}
		at, ok := session.NextUse(p.Session)
		if !ok {
			return
		}
		t := time.NewTimer(time.Until(at) + 10*time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions || m == http.MethodTrace
}

func (h *handler) logRequest(g *gateway, r *http.Request, rec *recorder, out *outcome, elapsed time.Duration) {
	ctx := context.Background()
	level := slog.LevelInfo
	if rec.status >= 500 {
		level = slog.LevelError
	}
	if !g.reqLog.Enabled(ctx, level) {
		return
	}
	// Like the server's request log: no query and no header, so no credential is logged.
	rc := slog.NewRecord(time.Now(), level, "gateway request", 0)
	rc.AddAttrs(
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("route", out.route),
		slog.Int("status", rec.status),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.String("client", out.client.String()),
	)
	if out.user != "" {
		rc.AddAttrs(slog.String("user", out.user), slog.String("session", out.sess))
	}
	if out.refusal != "" {
		rc.AddAttrs(slog.String("license_error", string(out.refusal)))
	}
	_ = g.reqLog.Handle(ctx, rc)
}
