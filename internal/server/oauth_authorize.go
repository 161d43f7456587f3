package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/session"
	"github.com/leasehold/leasehold/internal/tokenhash"
)

// The authorization endpoint (RFC 6749 §4.1, RFC 7636, RFC 9700 §2.1): a server-rendered
// login page (no JavaScript), PKCE S256, exact redirect URI matching, and a redirect only
// once the client and its redirect URI are known to be registered.

const (
	oauthCSRFCookie = "lh_csrf"
	oauthCSRFField  = "csrf"
	// The anti-CSRF cookie outlives no login page for long.
	oauthCSRFMaxAge = 3600
)

// authzRequest is a validated authorization request.
type authzRequest struct {
	client        *domain.Client
	redirectURI   string
	redirectGiven bool
	state         string
	scope         string // as sent, to carry through the login form
	scopes        []string
	challenge     string
	method        string
	prompt        string
}

// authzFailure is a refused authorization request. With redirect it goes back to the client
// (RFC 6749 §4.1.2.1); without (unknown client, unregistered redirect URI) it is shown to
// the user and never redirected.
type authzFailure struct {
	redirect    bool
	code        string
	description string
}

// oauthParseAuthorize validates the parameters of an authorization request (GET query or POST
// form).
func (s *Server) oauthParseAuthorize(r *http.Request, tenant string, form url.Values) (*authzRequest, *authzFailure) {
	for _, k := range []string{"client_id", "redirect_uri"} {
		if len(form[k]) > 1 {
			return nil, &authzFailure{description: k + " is repeated"}
		}
	}
	id := form.Get("client_id")
	if id == "" {
		return nil, &authzFailure{description: "The request names no client (client_id is missing)."}
	}
	snap, err := s.deps.Catalog.Get(r.Context(), tenant)
	if err != nil {
		return nil, &authzFailure{description: "The server could not load this tenant; try again."}
	}
	client := snap.Clients[id]
	if client == nil || !client.Enabled {
		return nil, &authzFailure{description: "Unknown or disabled client."}
	}
	req := &authzRequest{client: client, state: form.Get("state"), prompt: form.Get("prompt")}
	if form.Has("redirect_uri") {
		req.redirectURI, req.redirectGiven = form.Get("redirect_uri"), true
		if !slices.Contains(client.RedirectURIs, req.redirectURI) {
			return nil, &authzFailure{description: "The redirect_uri is not registered for this client."}
		}
	} else if len(client.RedirectURIs) == 1 {
		req.redirectURI = client.RedirectURIs[0] // RFC 6749 §3.1.2.3
	} else {
		return nil, &authzFailure{description: "The request must name its redirect_uri."}
	}

	// From here on the client is known and the redirect URI is its own: errors go back to it.
	fail := func(code, description string) (*authzRequest, *authzFailure) {
		return req, &authzFailure{redirect: true, code: code, description: description}
	}
	for _, k := range []string{"response_type", "scope", "state", "code_challenge", "code_challenge_method", "prompt"} {
		if len(form[k]) > 1 {
			return fail("invalid_request", k+" is repeated")
		}
	}
	if len(req.state) > 1024 {
		return fail("invalid_request", "state is too long")
	}
	switch rt := form.Get("response_type"); {
	case rt == "":
		return fail("invalid_request", "response_type is required")
	case rt != "code":
		return fail("unsupported_response_type", "only response_type=code is supported")
	}
	if !slices.Contains(client.GrantTypes, "authorization_code") {
		return fail("unauthorized_client", "this client may not use the authorization_code grant")
	}
	req.scope = form.Get("scope")
	scopes, err := session.ClientScopes(client, req.scope)
	if err != nil {
		return fail("invalid_scope", strings.TrimPrefix(err.Error(), session.ErrInvalidScope.Error()+": "))
	}
	if !slices.Contains(client.GrantTypes, "refresh_token") {
		// A refresh token this client could not use is not granted (the response's scope says so).
		scopes = slices.DeleteFunc(scopes, func(s string) bool { return s == session.ScopeOffline })
	}
	req.scopes = scopes
	req.challenge, req.method = form.Get("code_challenge"), form.Get("code_challenge_method")
	switch {
	case req.challenge == "" && req.method != "":
		return fail("invalid_request", "code_challenge_method without code_challenge")
	case req.challenge == "" && client.Public():
		return fail("invalid_request", "PKCE is required for public clients: send code_challenge with code_challenge_method=S256")
	case req.challenge != "" && req.method != "S256":
		// RFC 7636 defaults the method to plain, which RFC 9700 §2.1.1 advises against.
		return fail("invalid_request", "code_challenge_method must be S256 (plain is not supported)")
	case req.challenge != "" && !session.ValidVerifier(req.challenge):
		return fail("invalid_request", "code_challenge must be the base64url SHA-256 of the code_verifier (43 characters)")
	}
	switch req.prompt {
	case "", "login", "none", "consent", "select_account":
	default:
		return fail("invalid_request", "unsupported prompt value")
	}
	return req, nil
}

// authorizeGet starts an authorization: with a valid login cookie it answers with a code at
// once; otherwise it shows the login page.
func (s *Server) authorizeGet(w http.ResponseWriter, r *http.Request) {
	tenant, ok := s.entryTenant(w, r)
	if !ok {
		return
	}
	form, ok := parseForm(w, r)
	if !ok {
		return
	}
	req, fail := s.oauthParseAuthorize(r, tenant, form)
	if fail != nil {
		s.authorizeFail(w, r, tenant, req, fail)
		return
	}
	if req.prompt != "login" {
		if user, sessionDevice, ok := s.oauthCookieUser(r, tenant); ok {
			// The seat's hw is the browser's device cookie, else the login's device.
			device, _ := requestDevice(w, r, "") // never fails without a parameter
			if device == "" {
				device = sessionDevice
			}
			s.authorizeIssue(w, r, tenant, req, user, device)
			return
		}
	}
	if req.prompt == "none" {
		s.authorizeFail(w, r, tenant, req, &authzFailure{redirect: true, code: "login_required", description: "the user is not logged in"})
		return
	}
	s.oauthRenderLogin(w, r, req, http.StatusOK, "", "")
}

// authorizePost takes the login form: it checks the anti-CSRF token and the password, sets
// the login cookie (a session that holds no seat) and redirects to the client with a code.
func (s *Server) authorizePost(w http.ResponseWriter, r *http.Request) {
	// The form is ours: a browser that marks the post cross-site did not submit it from
	// our page (login CSRF).
	if err := s.cop.Check(r); err != nil {
		s.oauthRenderError(w, r, http.StatusForbidden, "This sign-in was sent from another site and was refused.")
		return
	}
	tenant, ok := s.entryTenant(w, r)
	if !ok {
		return
	}
	form, ok := parseForm(w, r)
	if !ok {
		return
	}
	req, fail := s.oauthParseAuthorize(r, tenant, form)
	if fail != nil {
		s.authorizeFail(w, r, tenant, req, fail)
		return
	}
	username := form.Get("username")
	if !s.oauthCSRFValid(r, form.Get(oauthCSRFField)) {
		s.oauthRenderLogin(w, r, req, http.StatusForbidden, username, "The sign-in form expired or did not come from this page. Please sign in again.")
		return
	}
	password := form.Get("password")
	if username == "" || password == "" {
		s.oauthRenderLogin(w, r, req, http.StatusBadRequest, username, "Enter your username and password.")
		return
	}
	u, err := s.deps.Sessions.CheckPassword(r.Context(), tenant, username, password, s.addrOf(r))
	var throttled *session.ThrottledError
	switch {
	case errors.As(err, &throttled):
		w.Header().Set("Retry-After", strconv.Itoa(throttled.RetryAfterSeconds()))
		s.oauthRenderLogin(w, r, req, http.StatusTooManyRequests, username,
			"Too many failed sign-in attempts. Try again in "+strconv.Itoa(throttled.RetryAfterSeconds())+" seconds.")
		return
	case errors.Is(err, session.ErrBadCredentials):
		s.oauthRenderLogin(w, r, req, http.StatusUnauthorized, username, "Invalid username or password.")
		return
	case err != nil:
		s.internalError(w, r, err)
		return
	}
	device, _ := requestDevice(w, r, "") // never fails without a parameter
	lg, err := s.deps.Sessions.BrowserLogin(r.Context(), tenant, u, device)
	var limit *session.SessionLimitError
	if errors.As(err, &limit) {
		s.oauthRenderLogin(w, r, req, http.StatusForbidden, username, limit.Error())
		return
	} else if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.setSessionCookies(w, r, lg, sessionCookie, deviceCookie)
	s.authorizeIssue(w, r, tenant, req, u.Username, lg.Device)
}

// oauthCookieUser is the user of a valid login cookie (lh_session, or where the docuware
// dialect is mounted .DWPLATFORMAUTH), and the device of its session.
func (s *Server) oauthCookieUser(r *http.Request, tenant string) (user, device string, ok bool) {
	snap, err := s.deps.Catalog.Get(r.Context(), tenant)
	if err != nil {
		return "", "", false
	}
	values := cookieValues(r, sessionCookie)
	if hasDialect(snap, "docuware") {
		values = append(values, cookieValues(r, dwSessionCookie)...)
	}
	for _, v := range values {
		p, err := s.deps.Sessions.AuthenticateCookie(r.Context(), tenant, v, s.addrOf(r))
		if err != nil || !session.ActsAsUser(p.Session.Kind) || snap.Users[p.Session.User] == nil {
			continue
		}
		return p.Session.User, p.Session.Device, true
	}
	return "", "", false
}

// authorizeIssue redirects to the client with a new code (RFC 6749 §4.1.2; `iss` as RFC
// 9207, against mix-up attacks).
func (s *Server) authorizeIssue(w http.ResponseWriter, r *http.Request, tenant string, req *authzRequest, user, device string) {
	code, err := s.deps.Sessions.IssueCode(r.Context(), tenant, session.CodeRequest{
		ClientID: req.client.ClientID, RedirectURI: req.redirectURI, RedirectGiven: req.redirectGiven,
		Challenge: req.challenge, Scopes: req.scopes, User: user, Device: device,
	})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.oauthRedirect(w, r, tenant, req, url.Values{"code": {code}})
}

func (s *Server) authorizeFail(w http.ResponseWriter, r *http.Request, tenant string, req *authzRequest, f *authzFailure) {
	if !f.redirect {
		s.oauthRenderError(w, r, http.StatusBadRequest, f.description)
		return
	}
	s.oauthRedirect(w, r, tenant, req, url.Values{"error": {f.code}, "error_description": {f.description}})
}

func (s *Server) oauthRedirect(w http.ResponseWriter, r *http.Request, tenant string, req *authzRequest, params url.Values) {
	u, err := url.Parse(req.redirectURI)
	if err != nil {
		s.oauthRenderError(w, r, http.StatusBadRequest, "The registered redirect_uri is malformed.")
		return
	}
	q := u.Query()
	for k, vs := range params {
		q[k] = vs
	}
	if req.state != "" {
		q.Set("state", req.state)
	}
	q.Set("iss", s.issuer(tenant))
	u.RawQuery = q.Encode()
	u.Fragment = ""
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

func oauthCookieValue(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil || len(c.Value) > 512 {
		return ""
	}
	return c.Value
}

// oauthCSRFValid checks the form's anti-CSRF token against its cookie (double submit) in
// constant time.
func (s *Server) oauthCSRFValid(r *http.Request, field string) bool {
	cookie := oauthCookieValue(r, oauthCSRFCookie)
	if len(cookie) != 43 || len(field) != len(cookie) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(cookie), []byte(field)) == 1
}

// oauthCSRFToken returns the browser's anti-CSRF token, setting a new cookie when it has
// none (an existing one is kept, so that several open login pages all work).
func (s *Server) oauthCSRFToken(w http.ResponseWriter, r *http.Request) string {
	if v := oauthCookieValue(r, oauthCSRFCookie); len(v) == 43 {
		return v
	}
	v := tokenhash.Random()
	http.SetCookie(w, &http.Cookie{Name: oauthCSRFCookie, Value: v, Path: cookiePath(r), MaxAge: oauthCSRFMaxAge,
		HttpOnly: true, Secure: forwardedTLS(r, s.opts.TrustedProxies), SameSite: http.SameSiteStrictMode})
	return v
}

// The pages carry no script and one inline style, allowed by its hash; the dashboard's
// stylesheet (served by the server itself, 'self') gives them its look.
const oauthPageStyle = `body{font-family:system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem;color:#222}` +
	`h1{font-size:1.3rem}label{display:block;margin:.8rem 0 .2rem}input[type=text],input[type=password]{width:100%;padding:.4rem;box-sizing:border-box}` +
	`button{margin-top:1rem;padding:.5rem 1.2rem}.error{color:#a00;border:1px solid #a00;padding:.5rem;margin:1rem 0}.muted{color:#666;font-size:.9rem}`

var oauthPageCSP = func() string {
	sum := sha256.Sum256([]byte(oauthPageStyle))
	return "default-src 'none'; style-src 'self' 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; frame-ancestors 'none'; base-uri 'none'"
}()

var oauthLoginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in</title><style>{{.Style}}</style><link rel="stylesheet" href="/ui/assets/style.css"></head>
<body class="auth">
{{if .Form}}<h1>Sign in</h1>
<p class="muted">to continue to <strong>{{.Client}}</strong>{{if .Scopes}} (access: {{.Scopes}}){{end}}</p>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
{{range .Hidden}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<label for="username">Username</label>
<input type="text" id="username" name="username" value="{{.Username}}" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
{{else}}<h1>Sign-in request refused</h1>
<p class="error" role="alert">{{.Error}}</p>
<p class="muted">Return to the application you came from and try again.</p>
{{end}}</body></html>
`))

type oauthHidden struct{ Name, Value string }

type oauthPage struct {
	Style    template.CSS
	Form     bool
	Error    string
	Client   string
	Scopes   string
	Action   string
	CSRF     string
	Username string
	Hidden   []oauthHidden
}

func oauthPageHeaders(w http.ResponseWriter, status int) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", oauthPageCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
}

// oauthRenderLogin shows the login form, carrying the authorization request's parameters.
func (s *Server) oauthRenderLogin(w http.ResponseWriter, r *http.Request, req *authzRequest, status int, username, message string) {
	csrf := s.oauthCSRFToken(w, r)
	hidden := []oauthHidden{{"response_type", "code"}, {"client_id", req.client.ClientID}}
	add := func(name, value string) {
		if value != "" {
			hidden = append(hidden, oauthHidden{name, value})
		}
	}
	if req.redirectGiven {
		add("redirect_uri", req.redirectURI)
	}
	add("scope", req.scope)
	add("state", req.state)
	add("code_challenge", req.challenge)
	add("code_challenge_method", req.method)
	// The form posts back to where the page was served: the tenant prefix or tenant= stays.
	action := cookiePath(r) + strings.TrimPrefix(r.URL.Path, "/")
	if prefixTenant(r) == "" {
		if t := r.URL.Query().Get("tenant"); t != "" {
			action += "?" + url.Values{"tenant": {t}}.Encode()
		}
	}
	oauthPageHeaders(w, status)
	_ = oauthLoginPage.Execute(w, oauthPage{
		Style: template.CSS(oauthPageStyle), Form: true, Error: message, Client: req.client.ClientID,
		Scopes: strings.Join(req.scopes, " "), Action: action, CSRF: csrf, Username: username, Hidden: hidden,
	})
}

// oauthRenderError shows an error to the user without redirecting anywhere.
func (s *Server) oauthRenderError(w http.ResponseWriter, r *http.Request, status int, message string) {
	oauthPageHeaders(w, status)
	_ = oauthLoginPage.Execute(w, oauthPage{Style: template.CSS(oauthPageStyle), Error: message})
}
