package server

import (
	"errors"
	"net/http"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
)

// maxAdminBody bounds admin request bodies (a whole configuration file for apply).
const maxAdminBody = 8 << 20

func (s *Server) adminRoutes() {
	m := s.adminMux
	if m != s.mux {
		m.HandleFunc("GET /healthz", s.healthz)
	}
	a := s.requireAdmin
	m.Handle("GET /admin/v1/tenants", a(s.adminListTenants))
	m.Handle("POST /admin/v1/tenants", a(s.adminCreateTenant))
	m.Handle("GET /admin/v1/tenants/{tenant}", a(s.adminGetTenant))
	m.Handle("PUT /admin/v1/tenants/{tenant}", a(s.adminWriteTenant))
	m.Handle("PATCH /admin/v1/tenants/{tenant}", a(s.adminWriteTenant))
	m.Handle("DELETE /admin/v1/tenants/{tenant}", a(s.adminDeleteTenant))
	m.Handle("GET /admin/v1/tenants/{tenant}/sessions", a(s.adminListSessions))
	m.Handle("DELETE /admin/v1/tenants/{tenant}/sessions/{id}", a(s.adminEndSession))
	m.Handle("GET /admin/v1/tenants/{tenant}/leases", a(s.adminListLeases))
	m.Handle("DELETE /admin/v1/tenants/{tenant}/leases/{id}", a(s.adminEndLease))
	m.Handle("DELETE /admin/v1/tenants/{tenant}/locks/{hw}", a(s.adminResetLock))
	m.Handle("POST /admin/v1/tenants/{tenant}/keys/rotate", a(s.adminRotateKey))
	m.Handle("GET /admin/v1/tenants/{tenant}/users/{id}/login-tokens", a(s.adminListLoginTokens))
	m.Handle("DELETE /admin/v1/tenants/{tenant}/users/{id}/login-tokens", a(s.adminRevokeLoginTokens))
	m.Handle("DELETE /admin/v1/tenants/{tenant}/users/{id}/login-tokens/{token}", a(s.adminRevokeLoginTokens))
	m.Handle("POST /admin/v1/tenants/{tenant}/users/{id}/logout-all", a(s.adminLogoutAll))
	m.Handle("GET /admin/v1/tenants/{tenant}/webhooks/deliveries", a(s.adminListDeliveries))
	m.Handle("POST /admin/v1/tenants/{tenant}/webhooks/deliveries/{event}/retry", a(s.adminRetryDelivery))
	m.Handle("GET /admin/v1/tenants/{tenant}/{kind}", a(s.adminListObjects))
	m.Handle("POST /admin/v1/tenants/{tenant}/{kind}", a(s.adminWriteObject))
	m.Handle("GET /admin/v1/tenants/{tenant}/{kind}/{id}", a(s.adminGetObject))
	m.Handle("PUT /admin/v1/tenants/{tenant}/{kind}/{id}", a(s.adminWriteObject))
	m.Handle("PATCH /admin/v1/tenants/{tenant}/{kind}/{id}", a(s.adminWriteObject))
	m.Handle("DELETE /admin/v1/tenants/{tenant}/{kind}/{id}", a(s.adminDeleteObject))
	m.Handle("GET /admin/v1/usage", a(s.adminUsage))
	m.Handle("POST /admin/v1/apply", a(s.adminApply))
}

var adminKinds = map[string]domain.Kind{
	"organizations": domain.KindOrganization, "users": domain.KindUser, "clients": domain.KindClient,
	"products": domain.KindProduct, "models": domain.KindModel, "licenses": domain.KindLicense,
	"gateways": domain.KindGateway, "webhooks": domain.KindWebhook,
}

// adminTenant resolves the {tenant} path value to an existing tenant's snapshot.
func (s *Server) adminTenant(w http.ResponseWriter, r *http.Request) (*catalog.Snapshot, bool) {
	name := r.PathValue("tenant")
	if !tenantName.MatchString(name) {
		writeError(w, http.StatusNotFound, "not_found", "no such tenant")
		return nil, false
	}
	snap, err := s.deps.Catalog.Get(r.Context(), name)
	if errors.Is(err, domain.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no such tenant: "+name)
		return nil, false
	} else if err != nil {
		s.internalError(w, r, err)
		return nil, false
	}
	return snap, true
}
