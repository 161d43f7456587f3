package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/session"
)

// oauthRevoke is RFC 7009: a client revokes one of its own tokens. Revoking a refresh token ends
// its session (the seat lingers, as at a logoff); revoking an access token kills that token.
// An unknown token is not an error (§2.2).
func (s *Server) oauthRevoke(w http.ResponseWriter, r *http.Request) {
	tenant, form, client, ok := s.clientRequest(w, r)
	if !ok {
		return
	}
	token := form.Get("token")
	if token == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	// token_type_hint is only a hint (§2.1): every kind is looked up by its hash anyway.
	err := s.deps.Sessions.Revoke(domain.WithEndReason(r.Context(), domain.EndRevoked), tenant, token, client.ClientID)
	if errors.Is(err, session.ErrForeignToken) {
		writeOAuthError(w, http.StatusBadRequest, "unauthorized_client", err.Error())
		return
	} else if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, okBody{OK: true})
}

// introspectResponse is RFC 7662 §2.2, with Leasehold's own members (tenant, session_id,
// seat).
type introspectResponse struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Username  string `json:"username,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	Exp       int64  `json:"exp,omitempty"`
	Iat       int64  `json:"iat,omitempty"`
	Sub       string `json:"sub,omitempty"`
	Iss       string `json:"iss,omitempty"`
	Tenant    string `json:"tenant,omitempty"`
	SessionID string `json:"session_id,omitempty"`
	Seat      *bool  `json:"seat,omitempty"`
}

// oauthIntrospect is RFC 7662, for authenticated (confidential) clients of the tenant, typically
// resource servers: it costs one read-only transaction.
func (s *Server) oauthIntrospect(w http.ResponseWriter, r *http.Request) {
	tenant, form, client, ok := s.clientRequest(w, r)
	if !ok {
		return
	}
	if client.Public() {
		// §4: an unauthenticated caller could probe for valid tokens.
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "introspection requires client authentication (a confidential client)")
		return
	}
	token := form.Get("token")
	if token == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	in, err := s.deps.Sessions.Introspect(r.Context(), tenant, token)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if !in.Active {
		writeJSON(w, http.StatusOK, introspectResponse{Active: false})
		return
	}
	tokenType := "access_token"
	if in.Kind == domain.TokenRefresh {
		tokenType = "refresh_token"
	}
	seat := in.Seat
	writeJSON(w, http.StatusOK, introspectResponse{
		Active: true, Scope: strings.Join(in.Scopes, " "), ClientID: in.ClientID, Username: in.User,
		TokenType: tokenType, Exp: in.ExpiresAt.Unix(), Iat: in.IssuedAt.Unix(), Sub: in.User,
		Iss: s.issuer(in.Tenant), Tenant: in.Tenant, SessionID: in.SessionID, Seat: &seat,
	})
}

// authServerMetadata is RFC 8414 §2.
type authServerMetadata struct {
	Issuer                                     string   `json:"issuer"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint"`
	TokenEndpoint                              string   `json:"token_endpoint"`
	JWKSURI                                    string   `json:"jwks_uri"`
	RevocationEndpoint                         string   `json:"revocation_endpoint"`
	IntrospectionEndpoint                      string   `json:"introspection_endpoint"`
	ScopesSupported                            []string `json:"scopes_supported,omitempty"`
	ResponseTypesSupported                     []string `json:"response_types_supported"`
	ResponseModesSupported                     []string `json:"response_modes_supported"`
	GrantTypesSupported                        []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethodsSupported     []string `json:"revocation_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthMethodsSupported  []string `json:"introspection_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported"`
	AuthorizationResponseIssParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
}

// oauthMetadata serves RFC 8414 metadata (also as /.well-known/openid-configuration). The tenant
// is named as at every entry point, or by RFC 8414 §3.1 path insertion
// (/.well-known/oauth-authorization-server/t/{tenant}).
func (s *Server) oauthMetadata(w http.ResponseWriter, r *http.Request) {
	var tenant string
	if name := r.PathValue("tenant"); name != "" {
		if !tenantName.MatchString(name) || (prefixTenant(r) != "" && prefixTenant(r) != name) {
			writeError(w, http.StatusNotFound, "unknown_tenant", "no such tenant")
			return
		}
		if _, err := s.deps.Catalog.Get(r.Context(), name); err != nil {
			writeError(w, http.StatusNotFound, "unknown_tenant", "no such tenant: "+name)
			return
		}
		tenant = name
	} else {
		var ok bool
		if tenant, ok = s.entryTenant(w, r); !ok {
			return
		}
	}
	snap, err := s.deps.Catalog.Get(r.Context(), tenant)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	scopes := []string{session.ScopeOffline}
	for _, c := range snap.Clients {
		scopes = append(scopes, c.Scopes...)
	}
	slices.Sort(scopes)
	iss := s.issuer(tenant)
	authMethods := []string{"client_secret_basic", "client_secret_post"}
	body, err := json.Marshal(authServerMetadata{
		Issuer:                                     iss,
		AuthorizationEndpoint:                      iss + "/oauth2/authorize",
		TokenEndpoint:                              iss + "/oauth2/token",
		JWKSURI:                                    iss + "/.well-known/jwks.json",
		RevocationEndpoint:                         iss + "/oauth2/revoke",
		IntrospectionEndpoint:                      iss + "/oauth2/introspect",
		ScopesSupported:                            slices.Compact(scopes),
		ResponseTypesSupported:                     []string{"code"},
		ResponseModesSupported:                     []string{"query"},
		GrantTypesSupported:                        []string{"authorization_code", "client_credentials", "refresh_token"},
		TokenEndpointAuthMethodsSupported:          slices.Concat(authMethods, []string{"none"}),
		RevocationEndpointAuthMethodsSupported:     slices.Concat(authMethods, []string{"none"}),
		IntrospectionEndpointAuthMethodsSupported:  authMethods,
		CodeChallengeMethodsSupported:              []string{"S256"},
		AuthorizationResponseIssParameterSupported: true,
	})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Access-Control-Allow-Origin", "*") // public metadata, read by browser apps
	w.Header().Set("Cache-Control", "public, max-age=60")
	_, _ = w.Write(body)
}
