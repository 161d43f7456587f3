package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"

	"github.com/leasehold/leasehold/internal/session"
	"github.com/leasehold/leasehold/internal/tokenhash"
	"github.com/leasehold/leasehold/internal/ui"
)

// page serves the reserved /.leasehold/ paths, which are never proxied.
func (h *handler) page(w http.ResponseWriter, r *http.Request, g *gateway, path string, out *outcome) {
	var allow string
	switch path {
	case ReservedPrefix + "login":
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			g.loginForm(w, r, http.StatusOK, "", "")
			return
		case http.MethodPost:
			h.login(w, r, g, out)
			return
		}
		allow = "GET, HEAD, POST"
	case ReservedPrefix + "logout":
		if r.Method == http.MethodPost {
			h.logout(w, r, g, out)
			return
		}
		allow = "POST"
	case ReservedPrefix + "whoami":
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			h.whoami(w, r, g, out)
			return
		}
		allow = "GET, HEAD"
	case ReservedPrefix + "style.css":
		// The dashboard's look, from this listener itself (the pages' CSP allows 'self').
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			w.Header().Set("Content-Type", "text/css; charset=utf-8")
			w.Header().Set("Cache-Control", "public, max-age=3600")
			_, _ = w.Write(stylesheet)
			return
		}
		allow = "GET, HEAD"
	case ReservedPrefix + "auth":
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			h.forwardAuth(w, r, g, out)
			return
		}
		allow = "GET, HEAD"
	default:
		out.route = "-"
		g.refuse(w, r, &refusal{status: http.StatusNotFound, code: "not_found", msg: "no such gateway page"}, false)
		return
	}
	w.Header().Set("Allow", allow)
	g.refuse(w, r, &refusal{status: http.StatusMethodNotAllowed, code: "method_not_allowed", msg: "this page does not take " + r.Method}, false)
}

const (
	csrfCookie = "lh_csrf"
	csrfField  = "csrf"
	deviceName = "lh_device"
	// A device id lives as long as the browser keeps it: it anchors the user's seat.
	deviceMaxAge = 400 * 24 * 3600
)

func (g *gateway) cookieNamed(name string) string {
	if g.secure {
		return "__Host-" + name
	}
	return name
}

// cookieSecure: a cookie set over TLS is Secure even when public_url says http (a client
// reaching the TLS listener directly), so that it never travels back in clear.
func (g *gateway) cookieSecure(r *http.Request) bool {
	return g.secure || r.TLS != nil
}

func (g *gateway) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(g.cookieNamed(csrfCookie)); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	v := tokenhash.Random()
	http.SetCookie(w, &http.Cookie{Name: g.cookieNamed(csrfCookie), Value: v, Path: "/", MaxAge: 3600,
		HttpOnly: true, Secure: g.cookieSecure(r), SameSite: http.SameSiteStrictMode})
	return v
}

func (g *gateway) csrfValid(r *http.Request, field string) bool {
	c, err := r.Cookie(g.cookieNamed(csrfCookie))
	if err != nil || len(c.Value) != 43 || len(field) != 43 {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(field)) == 1
}

func (g *gateway) loginForm(w http.ResponseWriter, r *http.Request, status int, username, msg string) {
	csrf := g.csrfToken(w, r)
	pageHeaders(w, status)
	if r.Method == http.MethodHead {
		return
	}
	_ = loginPage.Execute(w, loginData{
		Style: template.CSS(pageStyle), Gateway: g.spec.Name, CSRF: csrf, Username: username, Error: msg,
		ReturnTo: ReturnTo(r.FormValue("return_to")),
	})
}

// login takes the login form: a session opened as POST /session/login opens one (scope
// all, its seat taken now, the lh_device cookie read and set), whose cookie is this
// gateway's alone.
func (h *handler) login(w http.ResponseWriter, r *http.Request, g *gateway, out *outcome) {
	// Login CSRF: a form posted from another site would sign the browser in as the
	// attacker.
	if err := g.cop.Check(r); err != nil {
		renderMessage(w, http.StatusForbidden, "Sign-in refused", "This sign-in was sent from another site and was refused.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		renderMessage(w, http.StatusBadRequest, "Bad request", "The sign-in form could not be read.")
		return
	}
	username := r.PostForm.Get("username")
	if !g.csrfValid(r, r.PostForm.Get(csrfField)) {
		g.loginForm(w, r, http.StatusForbidden, username, "The sign-in form expired or did not come from this page. Please sign in again.")
		return
	}
	password := r.PostForm.Get("password")
	if username == "" || password == "" {
		g.loginForm(w, r, http.StatusBadRequest, username, "Enter your username and password.")
		return
	}
	addr := h.deps.ClientAddr(r)
	ctx := r.Context()
	u, err := h.deps.Sessions.CheckPassword(ctx, g.tenant, username, password, addr)
	var throttled *session.ThrottledError
	switch {
	case errors.As(err, &throttled):
		w.Header().Set("Retry-After", strconv.Itoa(throttled.RetryAfterSeconds()))
		g.loginForm(w, r, http.StatusTooManyRequests, username, throttled.Error())
		return
	case errors.Is(err, session.ErrBadCredentials):
		g.loginForm(w, r, http.StatusUnauthorized, username, "Invalid username or password.")
		return
	case err != nil:
		h.deps.Log.Error("gateway login failed", "gateway", g.key, "err", err)
		renderMessage(w, http.StatusInternalServerError, "Error", "The sign-in failed; please try again.")
		return
	}
	device := ""
	if c, err := r.Cookie(deviceName); err == nil && validDevice(c.Value) {
		device = c.Value
	}
	lg, err := h.deps.Sessions.Login(ctx, g.tenant, u, session.LoginOptions{Device: device, ClientIP: addr, Gateway: g.spec.Name})
	if err != nil {
		ref := h.authRefusal(ctx, err)
		out.refusal = ref.licenseErr
		if ref.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(ref.retryAfter))
			ref.msg += " A seat may free in " + strconv.Itoa(ref.retryAfter) + " s."
		}
		if ref.status == http.StatusForbidden {
			g.loginForm(w, r, ref.status, username, ref.msg)
			return
		}
		renderMessage(w, ref.status, "Error", ref.msg)
		return
	}
	out.user, out.sess = u.Username, lg.Session.ID
	http.SetCookie(w, &http.Cookie{Name: g.cookie, Value: lg.Cookie, Path: "/", MaxAge: int(lg.CookieMaxAge.Seconds()),
		HttpOnly: true, Secure: g.cookieSecure(r), SameSite: http.SameSiteLaxMode})
	http.SetCookie(w, &http.Cookie{Name: deviceName, Value: lg.Device, Path: "/", MaxAge: deviceMaxAge,
		HttpOnly: true, Secure: g.cookieSecure(r), SameSite: http.SameSiteLaxMode})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, ReturnTo(r.PostForm.Get("return_to")), http.StatusSeeOther)
}

func validDevice(v string) bool {
	if v == "" || len(v) > 128 {
		return false
	}
	return !strings.ContainsFunc(v, func(c rune) bool {
		return c <= ' ' || c >= 0x7f || c == '"' || c == ',' || c == ';' || c == '\\'
	})
}

// logout ends the caller's session: its seat lingers, as at any logout.
func (h *handler) logout(w http.ResponseWriter, r *http.Request, g *gateway, out *outcome) {
	cred, ref := h.authenticate(r.Context(), r, g)
	if ref == nil && cred.p == nil {
		ref = &refusal{status: http.StatusUnauthorized, code: "unauthorized", msg: "no session to log out of", challenge: true}
	}
	if ref != nil {
		g.refuse(w, r, ref, false)
		return
	}
	if cred.viaCookie {
		if err := g.cop.Check(r); err != nil {
			g.refuse(w, r, &refusal{status: http.StatusForbidden, code: "cross_origin", msg: "a cookie-authenticated logout must come from " + g.origin}, false)
			return
		}
	}
	out.user, out.sess = cred.p.Session.User, cred.p.Session.ID
	if err := h.deps.Sessions.Logout(r.Context(), cred.p); err != nil {
		h.deps.Log.Error("gateway logout failed", "gateway", g.key, "err", err)
		g.refuse(w, r, &refusal{status: http.StatusInternalServerError, code: "internal_error", msg: "internal error"}, false)
		return
	}
	if cred.viaCookie {
		http.SetCookie(w, &http.Cookie{Name: g.cookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: g.cookieSecure(r), SameSite: http.SameSiteLaxMode})
	}
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, "/.leasehold/login", http.StatusSeeOther)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

type whoamiBody struct {
	Tenant  string   `json:"tenant"`
	User    string   `json:"user"`
	Session string   `json:"session"`
	Scopes  []string `json:"scopes"`
	Seats   []held   `json:"seats"`
	Leases  []held   `json:"leases"`
}

type held struct {
	License string `json:"license"`
	Lease   string `json:"lease"`
	Item    string `json:"item,omitempty"`
}

func (h *handler) whoami(w http.ResponseWriter, r *http.Request, g *gateway, out *outcome) {
	cred, ref := h.authenticate(r.Context(), r, g)
	if ref == nil && cred.p == nil {
		ref = &refusal{status: http.StatusUnauthorized, code: "unauthorized", msg: "no session: send a Bearer token or sign in at /.leasehold/login", challenge: true}
	}
	if ref != nil {
		g.refuse(w, r, ref, false)
		return
	}
	s := cred.p.Session
	out.user, out.sess = s.User, s.ID
	body := whoamiBody{Tenant: g.tenant, User: s.User, Session: s.ID, Scopes: s.Scopes, Seats: []held{}, Leases: []held{}}
	if cred.p.Token != nil && len(cred.p.Token.Scopes) > 0 {
		body.Scopes = cred.p.Token.Scopes
	}
	if s.LeaseRoot != "" {
		body.Seats = append(body.Seats, held{License: s.LeaseLicense, Lease: s.LeaseRoot})
	}
	items, err := h.deps.Sessions.ItemLeases(r.Context(), cred.p)
	if err != nil {
		h.deps.Log.Error("gateway whoami failed", "gateway", g.key, "err", err)
		g.refuse(w, r, &refusal{status: http.StatusInternalServerError, code: "internal_error", msg: "internal error"}, false)
		return
	}
	for _, l := range items {
		body.Leases = append(body.Leases, held{License: l.License, Lease: l.Root, Item: l.Item})
	}
	writeJSON(w, http.StatusOK, body)
}

// forwardAuth judges, for a proxy in front (nginx auth_request, Traefik ForwardAuth, Caddy
// forward_auth, Envoy ext_authz), the request the X-Forwarded-* headers describe, with this
// request's own credentials. It never redirects: auth_request could not pass a 302 on.
func (h *handler) forwardAuth(w http.ResponseWriter, r *http.Request, g *gateway, out *outcome) {
	method := r.Header.Get("X-Forwarded-Method")
	if method == "" {
		method = http.MethodGet
	}
	uri := r.Header.Get("X-Forwarded-Uri")
	if uri == "" {
		uri = r.Header.Get("X-Original-URI")
	}
	if uri == "" {
		uri = "/"
	}
	escaped, _, _ := strings.Cut(uri, "?")
	path, err := CleanPath(escaped)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "invalid_path", Message: err.Error()})
		return
	}
	if strings.HasPrefix(path, ReservedPrefix) || path+"/" == ReservedPrefix {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "not_found", Message: "the gateway's own pages are not judged"})
		return
	}
	route, allow := Match(g.spec.Routes, path, method)
	if route == nil {
		if allow != nil {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "method_not_allowed", Message: "this path does not take " + method})
			return
		}
		writeJSON(w, http.StatusNotFound, errorBody{Error: "not_found", Message: "no route of this gateway matches the path"})
		return
	}
	out.route = route.Path
	a, ref := h.admit(r.Context(), r, g, route, method, out)
	if ref != nil {
		// The JSON answers, whatever the Accept: the proxy in front renders for people.
		ref.login = false
		if ref.challenge {
			c := `Bearer realm="` + g.tenant + `"`
			if ref.invalidToken {
				c += `, error="invalid_token"`
			}
			w.Header().Set("WWW-Authenticate", c)
		}
		if ref.licenseErr != "" {
			writeLicenseRefusal(w, r, ref, false)
			return
		}
		writeJSON(w, ref.status, errorBody{Error: ref.code, Message: ref.msg})
		return
	}
	setIdentity(w.Header(), a.identity)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// The pages carry no script; the dashboard's stylesheet (served at /.leasehold/style.css)
// gives them the dashboard's look, and one inline style, allowed by its hash, keeps them
// readable should it fail to load.
var stylesheet = ui.Stylesheet()

const pageStyle = `body{font-family:system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem;color:#222}` +
	`h1{font-size:1.3rem}label{display:block;margin:.8rem 0 .2rem}input[type=text],input[type=password]{width:100%;padding:.4rem;box-sizing:border-box}` +
	`button{margin-top:1rem;padding:.5rem 1.2rem}.error{color:#a00;border:1px solid #a00;padding:.5rem;margin:1rem 0}.muted{color:#666;font-size:.9rem}`

var pageCSP = func() string {
	sum := sha256.Sum256([]byte(pageStyle))
	return "default-src 'none'; style-src 'self' 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
}()

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in</title><style>{{.Style}}</style><link rel="stylesheet" href="/.leasehold/style.css"></head>
<body><h1>Sign in</h1>
<p class="muted">to continue to <strong>{{.Gateway}}</strong></p>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="/.leasehold/login">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="return_to" value="{{.ReturnTo}}">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="{{.Username}}" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form></body></html>
`))

type loginData struct {
	Style                                    template.CSS
	Gateway, CSRF, Username, Error, ReturnTo string
}

var messagePage = template.Must(template.New("message").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title><style>{{.Style}}</style><link rel="stylesheet" href="/.leasehold/style.css"></head>
<body><h1>{{.Title}}</h1><p class="error" role="alert">{{.Message}}</p></body></html>
`))

func renderMessage(w http.ResponseWriter, status int, title, msg string) {
	pageHeaders(w, status)
	_ = messagePage.Execute(w, struct {
		Style          template.CSS
		Title, Message string
	}{template.CSS(pageStyle), title, msg})
}

func pageHeaders(w http.ResponseWriter, status int) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
}
