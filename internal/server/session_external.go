package server

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/extauth"
	"github.com/leasehold/leasehold/internal/session"
)

// authenticateExternal authenticates a Bearer JWT of a trusted external issuer: it opens or
// continues the session of the token's (iss, sub). The tenant is the one the request names;
// else the one tenant that trusts the token's issuer (the default tenant when several do).
func (s *Server) authenticateExternal(w http.ResponseWriter, r *http.Request, tok string) (*session.Principal, bool) {
	refuse := func(msg string) (*session.Principal, bool) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="leasehold", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "invalid_token", msg)
		return nil, false
	}
	tenant := explicitTenant(r)
	if tenant == "" {
		var err error
		if tenant, err = s.tenantTrusting(r, extauth.Issuer(tok)); err != nil {
			s.internalError(w, r, err)
			return nil, false
		}
		if tenant == "" {
			return refuse("the access token is invalid, expired or revoked (an external token's tenant must be named when several trust its issuer)")
		}
	}
	snap, err := s.deps.Catalog.Get(r.Context(), tenant)
	if err != nil {
		return refuse("the access token is invalid, expired or revoked")
	}
	id, err := s.deps.ExtAuth.Verify(r.Context(), snap.Tenant.TrustedIssuers, tok)
	switch {
	case errors.Is(err, extauth.ErrUntrusted):
		return refuse("the access token is invalid, expired or revoked")
	case err != nil:
		return refuse(strings.TrimPrefix(err.Error(), extauth.ErrInvalid.Error()+": ") + " (external token)")
	}
	p, err := s.deps.Sessions.External(r.Context(), tenant, session.ExternalIdentity{
		Issuer: id.Issuer, Subject: id.Subject, User: id.User, Expiry: id.Expiry, IssuedAt: id.IssuedAt,
	}, s.addrOf(r))
	switch {
	case err == nil:
		actedAsPrincipal(r, p)
		return p, true
	case errors.Is(err, session.ErrInvalidToken):
		return refuse("the external token's user is unknown to this tenant or disabled")
	}
	s.sessionError(w, r, err)
	return nil, false
}

// tenantTrusting is the tenant that trusts issuer: the only one, else the default tenant
// if it is among them ("" when none fits).
func (s *Server) tenantTrusting(r *http.Request, issuer string) (string, error) {
	if issuer == "" {
		return "", nil
	}
	list, err := s.deps.Catalog.Tenants(r.Context())
	if err != nil {
		return "", err
	}
	var match []domain.Tenant
	for _, t := range list {
		if slices.ContainsFunc(t.TrustedIssuers, func(ti domain.TrustedIssuer) bool { return ti.Issuer == issuer }) {
			match = append(match, t)
		}
	}
	if len(match) == 1 {
		return match[0].Name, nil
	}
	for _, t := range match {
		if t.Default {
			return t.Name, nil
		}
	}
	return "", nil
}
