package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/session"
)

// The docuware dialect: DocuWare Platform's cookie logon. Account/Logon and TokenLogOn open
// a session of the session API (its seat taken by the session manager) with the cookies
// .DWPLATFORMAUTH and DWPLATFORMBROWSERID; the cookie then authenticates every cookie-based
// route of the tenant (authenticateBrowser). As DocuWare's 20-year cookie, the session does
// not idle out: it holds its seat until LogOff (or cookie_max_age, or max_lifetime).
// LogOff leaves the seat lingering; Organizations/LoginToken makes the login token with
// which TokenLogOn reclaims it.
func init() {
	const base = "/DocuWare/Platform"
	registerDialect(&dialect{
		name: "docuware",
		routes: []dialectRoute{
			{pattern: "POST " + base + "/Account/Logon", auth: dialectEntry, serve: (*Server).dwLogon},
			{pattern: "POST " + base + "/Account/TokenLogOn", auth: dialectEntry, serve: (*Server).dwTokenLogOn},
			{pattern: "POST " + base + "/Account/LogOff", auth: dialectBrowser, serve: (*Server).dwLogOff},
			{pattern: "POST " + base + "/Organizations/LoginToken", auth: dialectBrowser, serve: (*Server).dwLoginToken},
		},
	})
}

// dwLogonResult is the body of a successful logon (DocuWare clients read the cookies).
type dwLogonResult struct {
	UserName     string `json:"UserName"`
	Organization string `json:"Organization,omitempty"`
}

// dwLogon is Account/Logon: form (or JSON) UserName, Password and, optionally, Organization:
// the name of the user's organization.
func (s *Server) dwLogon(w http.ResponseWriter, r *http.Request, c *dialectCall) {
	if s.crossSiteLogin(w, r) {
		return
	}
	raw, isJSON, form, ok := readSessionBody(w, r)
	if !ok {
		return
	}
	user, password, org := form.Get("UserName"), form.Get("Password"), form.Get("Organization")
	if isJSON && len(raw) > 0 {
		var j dwLogonRequest
		if err := json.Unmarshal(raw, &j); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", "malformed JSON body: "+jsonReason(err))
			return
		}
		user, password, org = j.UserName, j.Password, j.Organization
	}
	if u, p, ok := r.BasicAuth(); ok && user == "" {
		user, password = u, p
	}
	if user == "" {
		writeError(w, http.StatusUnauthorized, "invalid_credentials", "UserName and Password are required")
		return
	}
	device, ok := requestDevice(w, r, "")
	if !ok {
		return
	}
	addr := s.addrOf(r)
	u, err := s.deps.Sessions.CheckPassword(r.Context(), c.Tenant, user, password, addr)
	if err != nil {
		s.dwLoginError(w, r, err)
		return
	}
	snap, err := s.deps.Catalog.Get(r.Context(), c.Tenant)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	orgName := dwOrganization(snap, u.Username)
	if org != "" && !strings.EqualFold(org, orgName) {
		// Told apart from a wrong password by nothing: the name of an organization is no
		// secret, but which organization a user belongs to is not the caller's to probe.
		s.dwLoginError(w, r, session.ErrBadCredentials)
		return
	}
	g, err := s.deps.Sessions.Login(r.Context(), c.Tenant, u, session.LoginOptions{Device: device, ClientIP: addr, NoIdle: true})
	if err != nil {
		s.dwLoginError(w, r, err)
		return
	}
	s.setSessionCookies(w, r, g, dwSessionCookie, dwDeviceCookie)
	writeJSON(w, http.StatusOK, dwLogonResult{UserName: u.Username, Organization: orgName})
}

// dwTokenLogOn is Account/TokenLogOn: JSON {"Token"} or form Token, a login token made by
// Organizations/LoginToken; it reclaims the seat of the session that made the token while
// that seat lingers.
func (s *Server) dwTokenLogOn(w http.ResponseWriter, r *http.Request, c *dialectCall) {
	if s.crossSiteLogin(w, r) {
		return
	}
	in, ok := readLoginInput(w, r)
	if !ok {
		return
	}
	if in.Token == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "Token is required (JSON {\"Token\"} or form Token=)")
		return
	}
	device, ok := requestDevice(w, r, "")
	if !ok {
		return
	}
	g, err := s.deps.Sessions.TokenLogin(r.Context(), c.Tenant, in.Token,
		session.LoginOptions{Device: device, ClientIP: s.addrOf(r), NoIdle: true})
	if err != nil {
		s.dwLoginError(w, r, err)
		return
	}
	orgName := ""
	if snap, err := s.deps.Catalog.Get(r.Context(), c.Tenant); err == nil {
		orgName = dwOrganization(snap, g.Session.User)
	}
	s.setSessionCookies(w, r, g, dwSessionCookie, dwDeviceCookie)
	writeJSON(w, http.StatusOK, dwLogonResult{UserName: g.Session.User, Organization: orgName})
}

// dwOrganization is the name DocuWare knows a user's organization by: its name, else its id
// ("" for a user without one).
func dwOrganization(snap *catalog.Snapshot, user string) string {
	u := snap.Users[user]
	if u == nil {
		return ""
	}
	o := snap.Organizations[u.Organization]
	if o == nil {
		return ""
	}
	if o.Name != "" {
		return o.Name
	}
	return o.ID
}

// dwLogOff is Account/LogOff: the session ends, its cookie dies, its seat lingers.
func (s *Server) dwLogOff(w http.ResponseWriter, r *http.Request, c *dialectCall) {
	s.logoutSession(w, r, c.Principal, c.ViaCookie, dwSessionCookie)
}

// dwLoginToken is Organizations/LoginToken: the seed's JSON body
// {"TargetProducts":["PlatformService"],"Usage":"Multi","Lifetime":"1.00:00:00"} → the token,
// as a JSON string.
func (s *Server) dwLoginToken(w http.ResponseWriter, r *http.Request, c *dialectCall) {
	if tok, ok := s.createLoginToken(w, r, c.Principal); ok {
		writeJSON(w, http.StatusOK, tok)
	}
}

// dwLoginError answers a refused logon: no seat is DocuWare's 401 with its text; the rest as
// the session API answers.
func (s *Server) dwLoginError(w http.ResponseWriter, r *http.Request, err error) {
	var seat *session.SeatError
	if errors.As(err, &seat) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, seat.Error()) // "None of the registered licenses are available for client <user>"
		return
	}
	s.sessionError(w, r, err)
}
