package server

import (
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/secret"
	"github.com/leasehold/leasehold/internal/session"
	"github.com/leasehold/leasehold/internal/throttle"
)

// tokenResponse is RFC 6749 §5.1.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	Scope        string `json:"scope,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// clientRequest is the common start of the client-authenticated endpoints (token, revoke,
// introspect): the tenant, the form, and the authenticated client. It answers itself when
// one of them fails.
func (s *Server) clientRequest(w http.ResponseWriter, r *http.Request) (string, url.Values, *domain.Client, bool) {
	tenant, ok := s.entryTenant(w, r)
	if !ok {
		return "", nil, nil, false
	}
	form, ok := parseForm(w, r)
	if !ok {
		return "", nil, nil, false
	}
	client, ok := s.authenticateClient(w, r, tenant, form)
	return tenant, form, client, ok
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	tenant, form, client, ok := s.clientRequest(w, r)
	if !ok {
		return
	}
	grant := form.Get("grant_type")
	if grant == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "grant_type is required")
		return
	}
	if !slices.Contains(client.GrantTypes, grant) {
		writeOAuthError(w, http.StatusBadRequest, "unauthorized_client", "this client may not use grant_type "+grant)
		return
	}
	switch grant {
	case "client_credentials":
		s.clientCredentials(w, r, tenant, client, form)
	case "authorization_code":
		s.grantAuthorizationCode(w, r, tenant, client, form)
	case "refresh_token":
		s.grantRefreshToken(w, r, tenant, client, form)
	default:
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "unsupported grant_type "+grant)
	}
}

func (s *Server) clientCredentials(w http.ResponseWriter, r *http.Request, tenant string, client *domain.Client, form url.Values) {
	if client.Public() {
		writeOAuthError(w, http.StatusBadRequest, "unauthorized_client", "a public client cannot use client_credentials")
		return
	}
	scopes, err := session.ClientScopes(client, form.Get("scope"))
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_scope", err.Error())
		return
	}
	device := form.Get("device")
	if len(device) > 256 {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "device is too long")
		return
	}
	queue, ok := formQueue(w, form)
	if !ok {
		return
	}
	g, err := s.deps.Sessions.ClientCredentialsQueued(r.Context(), tenant, client, scopes, device, s.addrOf(r), queue)
	if err != nil {
		s.grantError(w, r, err)
		return
	}
	s.writeGrant(w, g)
}

// formQueue reads the token endpoint's optional `queue` (milliseconds to wait for a seat).
func formQueue(w http.ResponseWriter, form url.Values) (time.Duration, bool) {
	v := form.Get("queue")
	if v == "" {
		return 0, true
	}
	queue, err := parseQueue(v)
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return 0, false
	}
	return queue, true
}

// grantAuthorizationCode redeems a code (RFC 6749 §4.1.3, RFC 7636 §4.5): the seat is taken now.
func (s *Server) grantAuthorizationCode(w http.ResponseWriter, r *http.Request, tenant string, client *domain.Client, form url.Values) {
	code := form.Get("code")
	if code == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "code is required")
		return
	}
	queue, ok := formQueue(w, form)
	if !ok {
		return
	}
	g, err := s.deps.Sessions.ExchangeCode(r.Context(), tenant, client, session.CodeExchange{
		Code: code, RedirectURI: form.Get("redirect_uri"), Verifier: form.Get("code_verifier"),
		ClientIP: s.addrOf(r), Queue: queue,
	})
	if err != nil {
		s.grantError(w, r, err)
		return
	}
	s.writeGrant(w, g)
}

// grantRefreshToken rotates a refresh token (RFC 6749 §6); `scope` may narrow the new access token.
func (s *Server) grantRefreshToken(w http.ResponseWriter, r *http.Request, tenant string, client *domain.Client, form url.Values) {
	token := form.Get("refresh_token")
	if token == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "refresh_token is required")
		return
	}
	var scopes []string
	if form.Has("scope") {
		scopes = strings.Fields(form.Get("scope"))
	}
	g, err := s.deps.Sessions.RefreshScopes(r.Context(), tenant, token, client.ClientID, scopes, s.addrOf(r))
	if err != nil {
		s.grantError(w, r, err)
		return
	}
	s.writeGrant(w, g)
}

func (s *Server) writeGrant(w http.ResponseWriter, g *session.Grant) {
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken:  g.AccessToken,
		TokenType:    "bearer",
		ExpiresIn:    g.ExpiresIn,
		Scope:        strings.Join(g.Scopes, " "),
		RefreshToken: g.RefreshToken,
	})
}

// grantError answers a failed grant: a refused seat is 403 access_denied with the license
// error code (SPEC §4).
func (s *Server) grantError(w http.ResponseWriter, r *http.Request, err error) {
	var seat *session.SeatError
	if errors.As(err, &seat) {
		writeJSON(w, http.StatusForbidden, oauthError{
			Error:            "access_denied",
			ErrorDescription: seat.Error(),
			LicenseError:     string(seat.Err.Code),
		})
		return
	}
	if errors.Is(err, session.ErrInvalidScope) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_scope", err.Error())
		return
	}
	if errors.Is(err, session.ErrInvalidGrant) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", strings.TrimPrefix(err.Error(), session.ErrInvalidGrant.Error()+": "))
		return
	}
	var limit *session.SessionLimitError
	if errors.As(err, &limit) {
		writeOAuthError(w, http.StatusForbidden, "access_denied", limit.Error())
		return
	}
	s.internalError(w, r, err)
}

// authenticateClient checks client_secret_basic or client_secret_post credentials. Public
// clients identify themselves with client_id alone. Every failure is the same
// invalid_client answer, so that it does not tell which part was wrong.
func (s *Server) authenticateClient(w http.ResponseWriter, r *http.Request, tenant string, form url.Values) (*domain.Client, bool) {
	id, secretValue, basic := r.BasicAuth()
	if basic {
		// RFC 6749 §2.3.1: both parts are form-urlencoded before the Basic encoding.
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secretValue, err2 = url.QueryUnescape(secretValue)
		if err1 != nil || err2 != nil || form.Has("client_secret") {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "malformed or duplicate client credentials")
			return nil, false
		}
	} else {
		id, secretValue = form.Get("client_id"), form.Get("client_secret")
	}
	if id == "" || len(id) > 256 || len(secretValue) > 1024 {
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return nil, false
	}
	snap, err := s.deps.Catalog.Get(r.Context(), tenant)
	if err != nil {
		s.internalError(w, r, err)
		return nil, false
	}
	client := snap.Clients[id]
	if client == nil || !client.Enabled {
		// Client ids are public (they travel in every authorization URL), so answering
		// an unknown one without a KDF run tells nothing secret, and a stream of made-up
		// ids costs the server nothing. The comparison keeps the time flat anyway.
		secret.Equal(secretValue, unknownClientSecret)
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return nil, false
	}
	if client.Public() {
		if secretValue != "" {
			writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
			return nil, false
		}
		actedAs(r, tenant, "", client.ClientID)
		return client, true
	}
	clientKey, addrKey := clientThrottleKeys(tenant, id, s.addrOf(r))
	if wait := s.guesses.Wait(time.Now(), clientKey, addrKey); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(throttle.RetrySeconds(wait)))
		writeOAuthError(w, http.StatusTooManyRequests, "too_many_attempts",
			"too many failed client authentications for this client from this address; retry in "+strconv.Itoa(throttle.RetrySeconds(wait))+" s")
		return nil, false
	}
	ok, err := s.secrets.Verify(tenant, id, secretValue, client.ClientSecretHash)
	if err != nil || !ok {
		s.guesses.Fail(time.Now(), clientKey, addrKey)
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return nil, false
	}
	actedAs(r, tenant, "", client.ClientID)
	return client, true
}

// unknownClientSecret is what a secret sent for an unknown or disabled client is compared
// with: nothing anybody could know.
const unknownClientSecret = "\x00leasehold: no such client\x00"

// Client secrets may fail a few times freely per (client, address), and more per address,
// before they wait: a client is never throttled from an address that has not failed.
const (
	throttleClientFree     = 5
	throttleClientAddrFree = 20
)

func clientThrottleKeys(tenant, client string, addr netip.Addr) (clientAtAddr, address throttle.Key) {
	a := throttle.Addr(addr)
	clientAtAddr = throttle.Key{ID: "c\x00" + tenant + "\x00" + client + "\x00" + a, Free: throttleClientFree}
	if a != "" {
		address = throttle.Key{ID: "ca\x00" + a, Free: throttleClientAddrFree}
	}
	return clientAtAddr, address
}

// logoff ends the caller's session now; its seat lingers (SPEC §4).
func (s *Server) logoff(w http.ResponseWriter, r *http.Request) {
	p, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	if _, err := s.deps.Sessions.End(r.Context(), p.Tenant, p.Session.ID, true); err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, okBody{OK: true})
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	tenant, ok := s.entryTenant(w, r)
	if !ok {
		return
	}
	body, err := s.deps.Keys.JWKS(r.Context(), tenant)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	_, _ = w.Write(body)
}
