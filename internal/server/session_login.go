package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/leasehold/leasehold/internal/engine"
	"github.com/leasehold/leasehold/internal/extauth"
	"github.com/leasehold/leasehold/internal/jsonerr"
	"github.com/leasehold/leasehold/internal/session"
)

// sessionGrant is the answer of /session/login, /session/token-login and /session/refresh
// (webPDF's shape). refreshToken is "" unless one was asked for.
type sessionGrant struct {
	Token        string `json:"token"`
	ExpiresIn    int    `json:"expiresIn"`
	RefreshToken string `json:"refreshToken"`
}

// licenseRefusal is the answer to a login that found no seat (DocuWare's 401).
type licenseRefusal struct {
	Error        string `json:"error"`
	Message      string `json:"message"`
	LicenseError string `json:"license_error,omitempty"`
}

// loginInput is what a session login request carries, whichever way it was sent.
type loginInput struct {
	Username string
	Password string
	Token    string // token-login
	Device   string
	Refresh  bool
	Queue    time.Duration // queue=: wait this long for a seat
}

// flexBool accepts JSON true/false and the strings "true"/"false"/"1"/"0".
type flexBool bool

func (b *flexBool) UnmarshalJSON(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case bool:
		*b = flexBool(x)
	case string:
		p, err := strconv.ParseBool(x)
		if err != nil {
			return errors.New("refresh must be true or false")
		}
		*b = flexBool(p)
	case nil:
		*b = false
	default:
		return errors.New("refresh must be true or false")
	}
	return nil
}

// readSessionBody reads a session API body: JSON (by its Content-Type, or a body that
// starts with "{" whatever curl -d labelled it) or a form, merged over the query string.
// With JSON, raw is the body and form holds only the query.
func readSessionBody(w http.ResponseWriter, r *http.Request) (raw []byte, isJSON bool, form url.Values, ok bool) {
	body, ok := readBody(w, r, maxFormBody)
	if !ok {
		return nil, false, nil, false
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	trimmed := bytes.TrimSpace(body)
	form = url.Values{}
	switch {
	case ct == "application/json" || (len(trimmed) > 0 && trimmed[0] == '{' && (ct == "" || ct == "application/x-www-form-urlencoded")):
		isJSON, raw = true, trimmed
	case ct == "" || ct == "application/x-www-form-urlencoded":
		parsed, err := url.ParseQuery(string(body))
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", "malformed form body")
			return nil, false, nil, false
		}
		form = parsed
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "malformed query string")
		return nil, false, nil, false
	}
	for k, vs := range q {
		if _, inBody := form[k]; !inBody {
			form[k] = vs
		}
	}
	return raw, isJSON, form, true
}

// readLoginInput reads credentials by HTTP Basic, a form or a JSON body, and refresh and
// device from the body or the query string. It answers itself when the request is malformed.
func readLoginInput(w http.ResponseWriter, r *http.Request) (loginInput, bool) {
	var in loginInput
	raw, isJSON, form, ok := readSessionBody(w, r)
	if !ok {
		return in, false
	}
	refresh, queue := form.Get("refresh"), form.Get("queue")
	in.Username, in.Password, in.Device = form.Get("username"), form.Get("password"), form.Get("device")
	in.Token = form.Get("token")
	if in.Token == "" {
		in.Token = form.Get("Token")
	}
	if isJSON && len(raw) > 0 {
		var j sessionLoginRequest
		if err := json.Unmarshal(raw, &j); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", "malformed JSON body: "+jsonReason(err))
			return in, false
		}
		for _, f := range []struct {
			dst *string
			v   string
		}{
			{&in.Username, j.Username}, {&in.Password, j.Password}, {&in.Token, j.Token}, {&in.Device, j.Device},
		} {
			if f.v != "" {
				*f.dst = f.v
			}
		}
		if j.Refresh != nil {
			in.Refresh, refresh = bool(*j.Refresh), ""
		}
		if j.Queue != nil {
			queue = strconv.FormatInt(*j.Queue, 10)
		}
	}
	if queue != "" {
		d, err := parseQueue(queue)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
			return in, false
		}
		in.Queue = d
	}
	if refresh != "" {
		v, err := strconv.ParseBool(refresh)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", "refresh must be true or false")
			return in, false
		}
		in.Refresh = v
	}
	if u, p, ok := r.BasicAuth(); ok {
		in.Username, in.Password = u, p
	}
	return in, true
}

// parseQueue reads queue= (milliseconds to wait for a seat), clamped to engine.MaxQueue.
func parseQueue(v string) (time.Duration, error) {
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms < 0 {
		return 0, fmt.Errorf("queue must be a number of milliseconds, got %q", v)
	}
	if ms > engine.MaxQueue.Milliseconds() {
		return engine.MaxQueue, nil
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// jsonReason says what is wrong with a JSON body in the API's terms (jsonerr.Reason).
func jsonReason(err error) string { return jsonerr.Reason(err) }

// sessionLogin is POST /session/login.
func (s *Server) sessionLogin(w http.ResponseWriter, r *http.Request) {
	if s.crossSiteLogin(w, r) {
		return
	}
	tenant, ok := s.entryTenant(w, r)
	if !ok {
		return
	}
	in, ok := readLoginInput(w, r)
	if !ok {
		return
	}
	device, ok := requestDevice(w, r, in.Device)
	if !ok {
		return
	}
	if in.Username == "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="leasehold"`)
		writeError(w, http.StatusUnauthorized, "invalid_credentials", "username and password are required (HTTP Basic, form or JSON)")
		return
	}
	addr := s.addrOf(r)
	u, err := s.deps.Sessions.CheckPassword(r.Context(), tenant, in.Username, in.Password, addr)
	if err != nil {
		s.sessionError(w, r, err)
		return
	}
	g, err := s.deps.Sessions.Login(r.Context(), tenant, u, session.LoginOptions{Device: device, Refresh: in.Refresh, ClientIP: addr, Queue: in.Queue})
	if err != nil {
		s.sessionError(w, r, err)
		return
	}
	actedAs(r, tenant, u.Username, "")
	s.setSessionCookies(w, r, g, sessionCookie, deviceCookie)
	writeJSON(w, http.StatusOK, sessionGrant{Token: g.AccessToken, ExpiresIn: g.ExpiresIn, RefreshToken: g.RefreshToken})
}

// sessionTokenLogin is POST /session/token-login: a login with a login token.
func (s *Server) sessionTokenLogin(w http.ResponseWriter, r *http.Request) {
	if s.crossSiteLogin(w, r) {
		return
	}
	tenant, ok := s.entryTenant(w, r)
	if !ok {
		return
	}
	in, ok := readLoginInput(w, r)
	if !ok {
		return
	}
	device, ok := requestDevice(w, r, in.Device)
	if !ok {
		return
	}
	if in.Token == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "token is required (JSON {\"token\"} or form token=)")
		return
	}
	addr := s.addrOf(r)
	g, err := s.deps.Sessions.TokenLogin(r.Context(), tenant, in.Token, session.LoginOptions{Device: device, Refresh: in.Refresh, ClientIP: addr})
	if err != nil {
		s.sessionError(w, r, err)
		return
	}
	s.setSessionCookies(w, r, g, sessionCookie, deviceCookie)
	writeJSON(w, http.StatusOK, sessionGrant{Token: g.AccessToken, ExpiresIn: g.ExpiresIn, RefreshToken: g.RefreshToken})
}

// sessionError is the session API's one table of refusals (login, token login, refresh,
// a trusted external token's session): each error always gets the same status and code.
func (s *Server) sessionError(w http.ResponseWriter, r *http.Request, err error) {
	var throttled *session.ThrottledError
	var seat *session.SeatError
	var limit *session.SessionLimitError
	switch {
	case errors.Is(err, session.ErrBadCredentials):
		w.Header().Set("WWW-Authenticate", `Basic realm="leasehold"`)
		writeError(w, http.StatusUnauthorized, "invalid_credentials", "invalid username or password")
	case errors.Is(err, session.ErrInvalidToken):
		writeError(w, http.StatusUnauthorized, "invalid_token", "the login token is invalid, expired, revoked or already used")
	case errors.Is(err, session.ErrInvalidGrant):
		writeError(w, http.StatusUnauthorized, "invalid_token", refreshReason(err))
	case errors.As(err, &throttled):
		w.Header().Set("Retry-After", strconv.Itoa(throttled.RetryAfterSeconds()))
		writeError(w, http.StatusTooManyRequests, "too_many_attempts", throttled.Error())
	case errors.As(err, &seat):
		writeJSON(w, http.StatusUnauthorized, licenseRefusal{
			Error: "license_unavailable", Message: seat.Error(), LicenseError: string(seat.Err.Code),
		})
	case errors.As(err, &limit):
		writeError(w, http.StatusForbidden, "too_many_sessions", limit.Error())
	default:
		s.internalError(w, r, err)
	}
}

// sessionRefresh is POST /session/refresh: `{"refreshToken"}` (or a form field, or the
// refresh token as Bearer, as webPDF sends it) rotates the pair.
func (s *Server) sessionRefresh(w http.ResponseWriter, r *http.Request) {
	tenant, ok := s.entryTenant(w, r)
	if !ok {
		return
	}
	raw, isJSON, form, ok := readSessionBody(w, r)
	if !ok {
		return
	}
	value := form.Get("refreshToken")
	if value == "" {
		value = form.Get("refresh_token")
	}
	if isJSON && len(raw) > 0 {
		var j sessionRefreshRequest
		if err := json.Unmarshal(raw, &j); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", "malformed JSON body: "+jsonReason(err))
			return
		}
		value = j.RefreshToken
	}
	if value == "" {
		value = bearerToken(r)
	}
	if value == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "refreshToken is required")
		return
	}
	if extauth.LooksLikeJWT(value) {
		// webPDF: tokens of an OAuth2 provider are renewed at the provider; presenting the
		// new access token extends the session.
		writeError(w, http.StatusBadRequest, "external_token",
			"this session was opened by a token of an external OAuth2 provider: it has no refresh token here; "+
				"obtain a new access token from that provider and use it, which extends the session")
		return
	}
	g, err := s.deps.Sessions.Refresh(r.Context(), tenant, value, "", s.addrOf(r))
	if err != nil {
		s.sessionError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sessionGrant{Token: g.AccessToken, ExpiresIn: g.ExpiresIn, RefreshToken: g.RefreshToken})
}

// refreshReason is the wrapped reason of an invalid_grant, for the client's developer.
func refreshReason(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, ": "); i >= 0 && strings.HasPrefix(msg, session.ErrInvalidGrant.Error()) {
		return msg[i+2:]
	}
	return "the refresh token is invalid, expired or revoked"
}

// sessionLogout ends the caller's session (POST with the cookie or a Bearer token; GET with
// a Bearer token, as webPDF). Its documents are deleted; its seat lingers.
func (s *Server) sessionLogout(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead || (r.Method == http.MethodGet && bearerToken(r) == "") {
		// A GET must not change state on the strength of a cookie (a link or an image
		// on another site would log the user out).
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "log out with POST, or with GET and a Bearer token")
		return
	}
	p, viaCookie, ok := s.authenticateBrowser(w, r)
	if !ok {
		return
	}
	s.logoutSession(w, r, p, viaCookie, sessionCookie)
}

// logoutSession ends p's session (documents deleted, seat lingering) and answers; a session
// cookie named cookie is dropped when it authenticated the request.
func (s *Server) logoutSession(w http.ResponseWriter, r *http.Request, p *session.Principal, viaCookie bool, cookie string) {
	if err := s.deps.Sessions.Logout(r.Context(), p); err != nil {
		s.internalError(w, r, err)
		return
	}
	if viaCookie {
		s.clearSessionCookie(w, r, cookie)
	}
	writeJSON(w, http.StatusOK, okBody{OK: true})
}

// sessionLogoutAll ends every session of the caller's user.
func (s *Server) sessionLogoutAll(w http.ResponseWriter, r *http.Request) {
	p, viaCookie, ok := s.authenticateBrowser(w, r)
	if !ok {
		return
	}
	n, err := s.deps.Sessions.EndAll(r.Context(), p.Tenant, p.Session.User)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if viaCookie {
		s.clearSessionCookie(w, r, sessionCookie)
	}
	writeJSON(w, http.StatusOK, sessionsEnded{OK: true, SessionsEnded: n})
}

// sessionLoginToken is POST /session/login-token (DocuWare's Organizations/LoginToken body).
func (s *Server) sessionLoginToken(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.authenticateBrowser(w, r)
	if !ok {
		return
	}
	if tok, ok := s.createLoginToken(w, r, p); ok {
		writeJSON(w, http.StatusOK, loginTokenBody{Token: tok})
	}
}

// createLoginToken makes a login token for p's user from the request's body (DocuWare's
// {"TargetProducts","Usage","Lifetime"}). It answers itself when it fails.
func (s *Server) createLoginToken(w http.ResponseWriter, r *http.Request, p *session.Principal) (string, bool) {
	body, ok := readBody(w, r, maxFormBody)
	if !ok {
		return "", false
	}
	var j loginTokenRequest
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &j); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", "malformed JSON body: "+jsonReason(err))
			return "", false
		}
	}
	req, err := session.NormalizeLoginTokenRequest(j.TargetProducts, j.Usage, j.Lifetime)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return "", false
	}
	tok, _, err := s.deps.Sessions.CreateLoginToken(r.Context(), p, req)
	switch {
	case errors.Is(err, session.ErrNotAllowed):
		writeError(w, http.StatusForbidden, "forbidden", err.Error())
		return "", false
	case errors.Is(err, session.ErrInvalidToken):
		writeError(w, http.StatusUnauthorized, "invalid_token", "the session has ended")
		return "", false
	case err != nil:
		s.internalError(w, r, err)
		return "", false
	}
	return tok, true
}
