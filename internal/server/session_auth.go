package server

import (
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/session"
)

// Cookies of the session API. `.DWPLATFORMAUTH` and `DWPLATFORMBROWSERID` are DocuWare's
// names for the same session and device cookies; the session cookie is accepted under that
// name only for tenants that mount the docuware dialect.
const (
	sessionCookie   = "lh_session"
	deviceCookie    = "lh_device"
	dwSessionCookie = ".DWPLATFORMAUTH"
	dwDeviceCookie  = "DWPLATFORMBROWSERID"

	// maxDeviceLen bounds a device id (it is stored with the session and its lease).
	maxDeviceLen = 128
)

func newCrossOriginProtection(publicURL string) *http.CrossOriginProtection {
	cop := http.NewCrossOriginProtection()
	// Behind a proxy the Host header may not be the public one; the public origin is ours.
	if u, err := url.Parse(publicURL); err == nil && u.Scheme != "" && u.Host != "" {
		_ = cop.AddTrustedOrigin(u.Scheme + "://" + u.Host)
	}
	return cop
}

// crossSiteLogin refuses a login that a browser marks cross-site (Sec-Fetch-Site, Origin),
// as the authorization endpoint's form does: another site's form must not sign a victim in
// to the attacker's account (login CSRF). API clients send neither header and pass. It
// answers itself when it refuses.
func (s *Server) crossSiteLogin(w http.ResponseWriter, r *http.Request) bool {
	if err := s.cop.Check(r); err != nil {
		writeError(w, http.StatusForbidden, "cross_site_request", "a login must come from the same site; this one was sent from another site")
		return true
	}
	return false
}

// authenticateBrowser authenticates a browser-facing route (SPEC §4: /session/*,
// /entitlements/*, /ui/*, dialects): a Bearer token when there is one, else the session
// cookie. A cookie-authenticated request with an unsafe method is refused when the browser
// marks it cross-site (CSRF); Bearer requests are not subject to that, since a browser never
// adds the header by itself. viaCookie tells which one authenticated. It answers itself when
// it fails.
func (s *Server) authenticateBrowser(w http.ResponseWriter, r *http.Request) (p *session.Principal, viaCookie, ok bool) {
	if bearerToken(r) != "" || r.Header.Get("Authorization") != "" {
		p, ok = s.authenticate(w, r)
		return p, false, ok
	}
	values, dwValues := cookieValues(r, sessionCookie), cookieValues(r, dwSessionCookie)
	if len(values) == 0 && len(dwValues) == 0 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="leasehold"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", "a Bearer access token or the "+sessionCookie+" cookie is required")
		return nil, false, false
	}
	if !safeMethod(r.Method) {
		if err := s.cop.Check(r); err != nil {
			writeError(w, http.StatusForbidden, "cross_site_request",
				"a cookie-authenticated request that changes state must come from the same site (or use a Bearer token)")
			return nil, true, false
		}
	}
	tenant := explicitTenant(r)
	try := func(list []string, dw bool) (*session.Principal, error) {
		for _, v := range list {
			p, err := s.deps.Sessions.AuthenticateCookie(r.Context(), tenant, v, s.addrOf(r))
			if errors.Is(err, session.ErrInvalidToken) {
				continue
			} else if err != nil {
				return nil, err
			}
			if dw {
				snap, err := s.deps.Catalog.Get(r.Context(), p.Tenant)
				if err != nil {
					return nil, err
				}
				if !hasDialect(snap, "docuware") {
					continue
				}
			}
			return p, nil
		}
		return nil, session.ErrInvalidToken
	}
	p, err := try(values, false)
	if errors.Is(err, session.ErrInvalidToken) {
		p, err = try(dwValues, true)
	}
	if err != nil {
		if errors.Is(err, session.ErrInvalidToken) {
			writeError(w, http.StatusUnauthorized, "invalid_token", "the session cookie is invalid, or its session has ended")
		} else {
			s.internalError(w, r, err)
		}
		return nil, true, false
	}
	actedAsPrincipal(r, p)
	return p, true, true
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func hasDialect(snap *catalog.Snapshot, name string) bool {
	return slices.Contains(snap.Tenant.Dialects, name)
}

// cookieValues returns the values of the cookies named name, most specific path first (as
// the browser sends them), at most a few: a tenant-prefixed cookie and a root one may both
// be present.
func cookieValues(r *http.Request, name string) []string {
	var out []string
	for _, c := range r.CookiesNamed(name) {
		if c.Value != "" && len(c.Value) <= 512 {
			out = append(out, c.Value)
		}
		if len(out) == 3 {
			break
		}
	}
	return out
}

// cookiePath scopes the session cookies to the tenant prefix when the request came
// through one (SPEC §4: `Path=/t/{tenant}/`).
func cookiePath(r *http.Request) string {
	if t := prefixTenant(r); t != "" {
		return "/t/" + t + "/"
	}
	return "/"
}

// setSessionCookies sets the session cookie and the device cookie: HttpOnly, SameSite=Lax,
// Secure under TLS, Max-Age cookie_max_age. names gives the cookie names to use (the
// session API's own, or a dialect's).
func (s *Server) setSessionCookies(w http.ResponseWriter, r *http.Request, g *session.LoginGrant, sessionName, deviceName string) {
	maxAge := int(g.CookieMaxAge.Seconds())
	secure := forwardedTLS(r, s.opts.TrustedProxies)
	path := cookiePath(r)
	http.SetCookie(w, &http.Cookie{Name: sessionName, Value: g.Cookie, Path: path, MaxAge: maxAge,
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
	http.SetCookie(w, &http.Cookie{Name: deviceName, Value: g.Device, Path: path, MaxAge: maxAge,
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
}

// clearSessionCookie tells the browser to drop the session cookie of an ended session.
func (s *Server) clearSessionCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: cookiePath(r), MaxAge: -1,
		HttpOnly: true, Secure: forwardedTLS(r, s.opts.TrustedProxies), SameSite: http.SameSiteLaxMode})
}

// requestDevice is the caller's device id: the device parameter, else the lh_device or
// DWPLATFORMBROWSERID cookie ("" when none: the login makes one). ok is false (and the
// answer written) when the parameter is malformed.
func requestDevice(w http.ResponseWriter, r *http.Request, param string) (string, bool) {
	if param != "" {
		if !validDevice(param) {
			writeError(w, http.StatusBadRequest, "invalid_request",
				"device must be 1 to 128 printable ASCII characters without spaces, quotes, commas, semicolons or backslashes")
			return "", false
		}
		return param, true
	}
	for _, name := range []string{deviceCookie, dwDeviceCookie} {
		for _, v := range cookieValues(r, name) {
			if validDevice(v) {
				return v, true
			}
		}
	}
	return "", true
}

// validDevice: the id goes back into a cookie, so it must be a valid cookie value.
func validDevice(v string) bool {
	if v == "" || len(v) > maxDeviceLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == ',' || c == ';' || c == '\\' {
			return false
		}
	}
	return true
}
