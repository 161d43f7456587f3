package server

import (
	"context"
	"crypto/subtle"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/leasehold/leasehold/internal/apply"
	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/config"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/secret"
	"github.com/leasehold/leasehold/internal/session"
	"github.com/leasehold/leasehold/internal/store"
)

// maxAdminBody bounds admin request bodies (a whole configuration file for apply).
const maxAdminBody = 8 << 20

func (s *Server) adminRoutes() {
	m := s.mux
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

// publicSpec removes secrets (even hashed) from an object before it is shown.
func publicSpec(kind domain.Kind, spec json.RawMessage) json.RawMessage {
	if kind != domain.KindUser && kind != domain.KindClient {
		return spec
	}
	var m map[string]any
	if json.Unmarshal(spec, &m) != nil {
		return spec
	}
	delete(m, "password")
	delete(m, "client_secret")
	if _, ok := m["password_hash"]; ok {
		m["password_hash"] = "(set)"
	}
	if _, ok := m["client_secret_hash"]; ok {
		m["client_secret_hash"] = "(set)"
	}
	out, _ := json.Marshal(m)
	return out
}

func (s *Server) adminListTenants(w http.ResponseWriter, r *http.Request) {
	list, err := s.deps.Catalog.Tenants(r.Context())
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenants": list})
}

func (s *Server) adminGetTenant(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, snap.Tenant)
}

func (s *Server) adminCreateTenant(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, maxAdminBody)
	if !ok {
		return
	}
	var t domain.Tenant
	if err := json.Unmarshal(body, &t); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "tenant: "+err.Error())
		return
	}
	if _, err := s.deps.Catalog.Get(r.Context(), t.Name); err == nil {
		writeError(w, http.StatusConflict, "conflict", "tenant "+t.Name+" exists")
		return
	}
	s.saveTenant(w, r, t, nil, http.StatusCreated)
}

func (s *Server) adminWriteTenant(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	body, ok := readBody(w, r, maxAdminBody)
	if !ok {
		return
	}
	cur, _ := json.Marshal(snap.Tenant)
	merged, err := mergeBody(r.Method, cur, body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	var t domain.Tenant
	if err := json.Unmarshal(merged, &t); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "tenant: "+err.Error())
		return
	}
	if t.Name != snap.Tenant.Name {
		writeError(w, http.StatusBadRequest, "invalid_request", "a tenant cannot be renamed")
		return
	}
	s.saveTenant(w, r, t, snap, http.StatusOK)
}

func (s *Server) saveTenant(w http.ResponseWriter, r *http.Request, t domain.Tenant, snap *catalog.Snapshot, status int) {
	ct := tenantConfig(snap)
	ct.Spec = t
	if err := config.ValidateTenant(ct, s.opts.GeoIP); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_object", err.Error())
		return
	}
	if t.Default {
		list, err := s.deps.Catalog.Tenants(r.Context())
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		for _, o := range list {
			if o.Default && o.Name != t.Name {
				writeError(w, http.StatusConflict, "conflict", "tenant "+o.Name+" is already the default")
				return
			}
		}
	}
	spec, _ := json.Marshal(t)
	if err := s.putObject(r.Context(), "", domain.KindTenant, t.Name, spec); err != nil {
		s.internalError(w, r, err)
		return
	}
	s.deps.Catalog.Invalidate(t.Name)
	writeJSON(w, status, t)
}

func (s *Server) adminDeleteTenant(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	err := s.deps.Store.Update(r.Context(), func(tx store.Tx) error {
		return tx.DeleteTenantData(r.Context(), snap.Tenant.Name)
	})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.deps.Catalog.Invalidate(snap.Tenant.Name)
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// putObject writes an object from the admin API, keeping the file hash of the last file
// apply: a restart then re-applies the object only if its file definition changed.
func (s *Server) putObject(ctx context.Context, tenant string, kind domain.Kind, id string, spec []byte) error {
	return s.deps.Store.Update(ctx, func(tx store.Tx) error {
		obj := store.Object{Tenant: tenant, Kind: kind, ID: id, Spec: spec}
		cur, err := tx.GetObject(ctx, tenant, kind, id)
		if err == nil {
			obj.FileHash = cur.FileHash
		} else if !errors.Is(err, domain.ErrNotFound) {
			return err
		}
		if err := revokeLoginTokensOnPasswordChange(ctx, tx, kind, cur, spec); err != nil {
			return err
		}
		return tx.PutObject(ctx, obj)
	})
}

func (s *Server) adminListObjects(w http.ResponseWriter, r *http.Request) {
	kind, ok := adminKinds[r.PathValue("kind")]
	if !ok {
		s.notFound(w, r)
		return
	}
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	objs, err := store.Read(r.Context(), s.deps.Store, func(tx store.Tx) ([]store.Object, error) {
		return tx.ListObjects(r.Context(), snap.Tenant.Name, kind)
	})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	out := make([]json.RawMessage, 0, len(objs))
	for _, o := range objs {
		out = append(out, publicSpec(kind, o.Spec))
	}
	writeJSON(w, http.StatusOK, map[string]any{string(kind): out})
}

func (s *Server) adminGetObject(w http.ResponseWriter, r *http.Request) {
	kind, ok := adminKinds[r.PathValue("kind")]
	if !ok {
		s.notFound(w, r)
		return
	}
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	obj, err := s.getObject(r.Context(), snap.Tenant.Name, kind, r.PathValue("id"))
	if errors.Is(err, domain.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no such %s: %s", kind, r.PathValue("id")))
		return
	} else if err != nil {
		s.internalError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(publicSpec(kind, obj.Spec))
}

func (s *Server) getObject(ctx context.Context, tenant string, kind domain.Kind, id string) (*store.Object, error) {
	var obj *store.Object
	err := s.deps.Store.View(ctx, func(tx store.Tx) error {
		var err error
		obj, err = tx.GetObject(ctx, tenant, kind, id)
		return err
	})
	return obj, err
}

// adminWriteObject creates (POST), replaces (PUT) or patches (PATCH) an object. The tenant
// with the change is validated as a whole, exactly as a configuration file would be.
func (s *Server) adminWriteObject(w http.ResponseWriter, r *http.Request) {
	kind, ok := adminKinds[r.PathValue("kind")]
	if !ok {
		s.notFound(w, r)
		return
	}
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	body, ok := readBody(w, r, maxAdminBody)
	if !ok {
		return
	}
	tenant := snap.Tenant.Name
	id := r.PathValue("id")
	status := http.StatusOK
	var cur *store.Object
	if r.Method == http.MethodPost {
		status = http.StatusCreated
	} else {
		obj, err := s.getObject(r.Context(), tenant, kind, id)
		if errors.Is(err, domain.ErrNotFound) && r.Method == http.MethodPatch {
			writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no such %s: %s", kind, id))
			return
		} else if err != nil && !errors.Is(err, domain.ErrNotFound) {
			s.internalError(w, r, err)
			return
		}
		cur = obj
	}
	merged := body
	if cur != nil {
		var err error
		if merged, err = mergeBody(r.Method, cur.Spec, body); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
	}
	ct := tenantConfig(snap)
	newID, spec, err := setObject(ct, kind, merged)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_object", fmt.Sprintf("%s: %v", kind, err))
		return
	}
	switch {
	case r.Method == http.MethodPost && objectExists(snap, kind, newID):
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("%s %s exists", kind, newID))
		return
	case r.Method != http.MethodPost && newID != id:
		writeError(w, http.StatusBadRequest, "invalid_request", "the body names another object than the path")
		return
	}
	if err := config.ValidateTenant(ct, s.opts.GeoIP); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_object", err.Error())
		return
	}
	if err := s.putObject(r.Context(), tenant, kind, newID, spec); err != nil {
		s.internalError(w, r, err)
		return
	}
	s.deps.Catalog.Invalidate(tenant)
	if kind == domain.KindClient {
		s.secrets.Forget(tenant, newID)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(publicSpec(kind, spec))
}

func objectExists(snap *catalog.Snapshot, kind domain.Kind, id string) bool {
	switch kind {
	case domain.KindOrganization:
		return snap.Organizations[id] != nil
	case domain.KindUser:
		return snap.Users[id] != nil
	case domain.KindClient:
		return snap.Clients[id] != nil
	case domain.KindProduct:
		return snap.Products[id] != nil
	case domain.KindModel:
		return snap.Models[id] != nil
	case domain.KindLicense:
		return snap.Licenses[id] != nil
	}
	return false
}

// setObject decodes body as an object of kind, hashes any plaintext secret, puts it into
// the tenant (replacing the one with the same id) and returns its id and stored form.
func setObject(ct *config.Tenant, kind domain.Kind, body []byte) (string, []byte, error) {
	switch kind {
	case domain.KindOrganization:
		return upsert(&ct.Organizations, body, func(o *domain.Organization) string { return o.ID }, nil)
	case domain.KindUser:
		return upsert(&ct.Users, body, func(o *domain.User) string { return o.Username }, func(u *domain.User) error {
			return hashSecret(&u.Password, &u.PasswordHash, "password")
		})
	case domain.KindClient:
		return upsert(&ct.Clients, body, func(o *domain.Client) string { return o.ClientID }, func(c *domain.Client) error {
			return hashSecret(&c.ClientSecret, &c.ClientSecretHash, "client_secret")
		})
	case domain.KindProduct:
		return upsert(&ct.Products, body, func(o *domain.Product) string { return o.Name }, nil)
	case domain.KindModel:
		return upsert(&ct.Models, body, func(o *domain.LicenseModel) string { return o.Name }, nil)
	case domain.KindLicense:
		return upsert(&ct.Licenses, body, func(o *domain.License) string { return o.ID }, nil)
	}
	return "", nil, fmt.Errorf("unknown kind %s", kind)
}

// hashSecret replaces a plaintext secret by its PHC hash: nothing stored holds plaintext.
func hashSecret(plain, hash *string, field string) error {
	if *plain == "" {
		return nil
	}
	if *hash != "" && *hash != "(set)" {
		return fmt.Errorf("give %s or %s_hash, not both", field, field)
	}
	h, err := secret.Hash(*plain)
	*plain, *hash = "", h
	return err
}

func upsert[T any](list *[]config.Entry[T], body []byte, id func(*T) string, prepare func(*T) error) (string, []byte, error) {
	v := new(T)
	if err := json.Unmarshal(body, v); err != nil {
		return "", nil, err
	}
	if prepare != nil {
		if err := prepare(v); err != nil {
			return "", nil, err
		}
	}
	key := id(v)
	i := slices.IndexFunc(*list, func(e config.Entry[T]) bool { return id(&e.Spec) == key })
	if i < 0 {
		*list = append(*list, config.Entry[T]{Spec: *v})
	} else {
		(*list)[i].Spec = *v
	}
	spec, err := json.Marshal(v)
	return key, spec, err
}

func (s *Server) adminDeleteObject(w http.ResponseWriter, r *http.Request) {
	kind, ok := adminKinds[r.PathValue("kind")]
	if !ok {
		s.notFound(w, r)
		return
	}
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if !objectExists(snap, kind, id) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no such %s: %s", kind, id))
		return
	}
	ct := tenantConfig(snap)
	removeObject(ct, kind, id)
	if err := config.ValidateTenant(ct, s.opts.GeoIP); err != nil {
		writeError(w, http.StatusConflict, "in_use", err.Error())
		return
	}
	err := s.deps.Store.Update(r.Context(), func(tx store.Tx) error {
		if kind == domain.KindUser {
			// A user created again under the name must not inherit its login tokens.
			if _, err := session.RevokeLoginTokensTx(r.Context(), tx, snap.Tenant.Name, id); err != nil {
				return err
			}
		}
		_, err := tx.DeleteObject(r.Context(), snap.Tenant.Name, kind, id)
		return err
	})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.deps.Catalog.Invalidate(snap.Tenant.Name)
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func removeObject(ct *config.Tenant, kind domain.Kind, id string) {
	switch kind {
	case domain.KindOrganization:
		ct.Organizations = slices.DeleteFunc(ct.Organizations, func(e config.Entry[domain.Organization]) bool { return e.Spec.ID == id })
	case domain.KindUser:
		ct.Users = slices.DeleteFunc(ct.Users, func(e config.Entry[domain.User]) bool { return e.Spec.Username == id })
	case domain.KindClient:
		ct.Clients = slices.DeleteFunc(ct.Clients, func(e config.Entry[domain.Client]) bool { return e.Spec.ClientID == id })
	case domain.KindProduct:
		ct.Products = slices.DeleteFunc(ct.Products, func(e config.Entry[domain.Product]) bool { return e.Spec.Name == id })
	case domain.KindModel:
		ct.Models = slices.DeleteFunc(ct.Models, func(e config.Entry[domain.LicenseModel]) bool { return e.Spec.Name == id })
	case domain.KindLicense:
		ct.Licenses = slices.DeleteFunc(ct.Licenses, func(e config.Entry[domain.License]) bool { return e.Spec.ID == id })
	}
}

// tenantConfig rebuilds a tenant's configuration from its snapshot (nil: empty tenant).
func tenantConfig(snap *catalog.Snapshot) *config.Tenant {
	ct := &config.Tenant{}
	if snap == nil {
		return ct
	}
	ct.Spec = snap.Tenant
	for _, id := range sortedIDs(snap.Organizations) {
		ct.Organizations = append(ct.Organizations, config.Entry[domain.Organization]{Spec: *snap.Organizations[id]})
	}
	for _, id := range sortedIDs(snap.Users) {
		ct.Users = append(ct.Users, config.Entry[domain.User]{Spec: *snap.Users[id]})
	}
	for _, id := range sortedIDs(snap.Clients) {
		ct.Clients = append(ct.Clients, config.Entry[domain.Client]{Spec: *snap.Clients[id]})
	}
	for _, id := range sortedIDs(snap.Products) {
		ct.Products = append(ct.Products, config.Entry[domain.Product]{Spec: *snap.Products[id]})
	}
	for _, id := range sortedIDs(snap.Models) {
		ct.Models = append(ct.Models, config.Entry[domain.LicenseModel]{Spec: *snap.Models[id]})
	}
	for _, id := range sortedIDs(snap.Licenses) {
		ct.Licenses = append(ct.Licenses, config.Entry[domain.License]{Spec: *snap.Licenses[id]})
	}
	return ct
}

func sortedIDs[T any](m map[string]*T) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// mergeBody applies a PATCH (RFC 7396 JSON merge patch) to cur; a PUT replaces it.
func mergeBody(method string, cur, body []byte) ([]byte, error) {
	if method != http.MethodPatch {
		return body, nil
	}
	var base, patch any
	if err := json.Unmarshal(cur, &base); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, &patch); err != nil {
		return nil, fmt.Errorf("body: %v", err)
	}
	p, ok := patch.(map[string]any)
	if !ok {
		return nil, errors.New("body: a PATCH body is a JSON object of the fields to change")
	}
	// A new plaintext password or secret replaces the stored hash.
	if b, ok := base.(map[string]any); ok {
		for plain, hash := range map[string]string{"password": "password_hash", "client_secret": "client_secret_hash"} {
			if _, given := p[plain]; given {
				if _, alsoHash := p[hash]; !alsoHash {
					delete(b, hash)
				}
			}
		}
	}
	return json.Marshal(mergePatch(base, patch))
}

func mergePatch(base, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	b, ok := base.(map[string]any)
	if !ok {
		b = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(b, k)
		} else {
			b[k] = mergePatch(b[k], v)
		}
	}
	return b
}

type sessionView struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	User       string    `json:"user"`
	Client     string    `json:"client,omitempty"`
	Device     string    `json:"device,omitempty"`
	Scopes     []string  `json:"scopes"`
	Seat       bool      `json:"seat"`
	License    string    `json:"license,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

func adminFilter(r *http.Request) store.LeaseFilter {
	q := r.URL.Query()
	f := store.LeaseFilter{LicenseID: q.Get("license"), User: q.Get("user"), Client: q.Get("client"), Limit: 1000}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 && n <= 100000 {
		f.Limit = n
	}
	return f
}

func (s *Server) adminListSessions(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	list, err := store.Read(r.Context(), s.deps.Store, func(tx store.Tx) ([]domain.Session, error) {
		return tx.ListSessions(r.Context(), snap.Tenant.Name, adminFilter(r))
	})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	out := make([]sessionView, 0, len(list))
	for _, x := range list {
		out = append(out, sessionView{ID: x.ID, Kind: x.Kind, User: x.User, Client: x.Client, Device: x.Device,
			Scopes: x.Scopes, Seat: x.LeaseRoot != "", License: x.LeaseLicense,
			CreatedAt: x.CreatedAt, LastUsedAt: x.LastUsedAt, ExpiresAt: x.ExpiresAt})
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out})
}

// adminEndSession ends a session; its seat is freed at once (no linger).
func (s *Server) adminEndSession(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	ended, err := s.deps.Sessions.End(r.Context(), snap.Tenant.Name, r.PathValue("id"), false)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if !ended {
		writeError(w, http.StatusNotFound, "not_found", "no such session")
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

type leaseView struct {
	ID        string    `json:"id"`
	License   string    `json:"license"`
	Item      string    `json:"item"`
	User      string    `json:"user,omitempty"`
	Client    string    `json:"client,omitempty"`
	HW        string    `json:"hw,omitempty"`
	HWName    string    `json:"hw_name,omitempty"`
	Process   string    `json:"process,omitempty"`
	Version   string    `json:"version,omitempty"`
	Mode      string    `json:"mode"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Overage   bool      `json:"overage,omitempty"`
	Session   string    `json:"session,omitempty"`
}

func (s *Server) adminListLeases(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	list, err := store.Read(r.Context(), s.deps.Store, func(tx store.Tx) ([]domain.Lease, error) {
		return tx.ListLeases(r.Context(), snap.Tenant.Name, adminFilter(r), tx.Now())
	})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	out := make([]leaseView, 0, len(list))
	for _, l := range list {
		out = append(out, leaseView{ID: l.ID, License: l.LicenseID, Item: l.Item, User: l.User, Client: l.Client,
			HW: l.HW, HWName: l.HWName, Process: l.Process, Version: l.Version, Mode: l.Mode,
			IssuedAt: l.IssuedAt, ExpiresAt: l.ExpiresAt, Overage: l.Overage, Session: l.SessionID})
	}
	writeJSON(w, http.StatusOK, map[string]any{"leases": out})
}

// adminEndLease frees a lease's seat at once — except an offline checkout without
// ?force=true, whose signed token stays valid offline and so keeps counting until its exp.
// A session's seat lease is ended by ending the sessions that hold it.
func (s *Server) adminEndLease(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	res, err := s.deps.Sessions.EndLease(r.Context(), snap.Tenant.Name, r.PathValue("id"), r.URL.Query().Get("force") == "true")
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if !res.Found {
		writeError(w, http.StatusNotFound, "not_found", "no such lease")
		return
	}
	out := map[string]any{"ok": true, "freed": res.Freed}
	if !res.Freed {
		out["counts_until"] = res.CountsUntil
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) adminResetLock(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	var n int
	err := s.deps.Store.Update(r.Context(), func(tx store.Tx) error {
		var err error
		n, err = tx.DeleteHWLocks(r.Context(), snap.Tenant.Name, r.PathValue("hw"))
		return err
	})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "locks_removed": n})
}

func (s *Server) adminRotateKey(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	// The retired key stays published as long as the longest lease it may have signed.
	publish := 24 * time.Hour
	for _, m := range snap.Models {
		publish = max(publish, m.OfflineLease.D(), m.OnlineLease.D())
	}
	kid, err := s.deps.Keys.Rotate(r.Context(), snap.Tenant.Name, publish)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "kid": kid})
}

type loginTokenView struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Data      any       `json:"details,omitempty"`
}

func (s *Server) adminListLoginTokens(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	list, err := store.Read(r.Context(), s.deps.Store, func(tx store.Tx) ([]domain.Token, error) {
		return tx.ListTokens(r.Context(), snap.Tenant.Name, domain.TokenLogin, r.PathValue("id"))
	})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	out := make([]loginTokenView, 0, len(list))
	for _, t := range list {
		v := loginTokenView{ID: t.Hash, User: t.User, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt}
		var details map[string]any
		if json.Unmarshal(t.Data, &details) == nil {
			delete(details, "seat_key")
			v.Data = details
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"login_tokens": out})
}

// adminRevokeLoginTokens revokes one login token (by id) or all of a user's.
func (s *Server) adminRevokeLoginTokens(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	tenant, user, one := snap.Tenant.Name, r.PathValue("id"), r.PathValue("token")
	n := 0
	err := s.deps.Store.Update(r.Context(), func(tx store.Tx) error {
		n = 0
		list, err := tx.ListTokens(r.Context(), tenant, domain.TokenLogin, user)
		if err != nil {
			return err
		}
		for _, t := range list {
			if one != "" && subtle.ConstantTimeCompare([]byte(t.Hash), []byte(one)) != 1 {
				continue
			}
			if _, err := tx.DeleteToken(r.Context(), t.Hash); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if one != "" && n == 0 {
		writeError(w, http.StatusNotFound, "not_found", "no such login token")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "revoked": n})
}

// adminLogoutAll ends every session of a user (their seats linger, as at a logout).
func (s *Server) adminLogoutAll(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	n, err := s.deps.Sessions.EndAll(r.Context(), snap.Tenant.Name, r.PathValue("id"))
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "sessions_ended": n})
}

// adminUsage is the consumption history: one row per lease event.
func (s *Server) adminUsage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	tenant := q.Get("tenant")
	if tenant == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "tenant is required")
		return
	}
	var from, to time.Time
	for _, p := range []struct {
		name string
		into *time.Time
	}{{"from", &from}, {"to", &to}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				writeError(w, http.StatusBadRequest, "invalid_request", p.name+": use RFC 3339 (2026-01-02T15:04:05Z)")
				return
			}
			*p.into = t
		}
	}
	format := q.Get("format")
	if format == "" {
		format = "json"
	}
	if format != "json" && format != "csv" {
		writeError(w, http.StatusBadRequest, "invalid_request", "format: json or csv")
		return
	}
	events, err := store.Read(r.Context(), s.deps.Store, func(tx store.Tx) ([]domain.UsageEvent, error) {
		return tx.ListUsage(r.Context(), tenant, from, to)
	})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"at", "event", "license", "item", "user", "client", "hw", "hw_name", "lease", "code", "overage", "duration_s"})
		for _, e := range events {
			_ = cw.Write([]string{e.At.UTC().Format(time.RFC3339Nano), e.Event, e.LicenseID, e.Item, e.User, e.Client, e.HW,
				e.HWName, e.LeaseID, string(e.Code), strconv.FormatBool(e.Overage), strconv.FormatFloat(e.Duration.Seconds(), 'f', 3, 64)})
		}
		cw.Flush()
		return
	}
	type row struct {
		At        time.Time `json:"at"`
		Event     string    `json:"event"`
		License   string    `json:"license"`
		Item      string    `json:"item"`
		User      string    `json:"user,omitempty"`
		Client    string    `json:"client,omitempty"`
		HW        string    `json:"hw,omitempty"`
		HWName    string    `json:"hw_name,omitempty"`
		Lease     string    `json:"lease,omitempty"`
		Code      string    `json:"code,omitempty"`
		Overage   bool      `json:"overage,omitempty"`
		DurationS float64   `json:"duration_s"`
	}
	out := make([]row, 0, len(events))
	for _, e := range events {
		out = append(out, row{e.At, e.Event, e.LicenseID, e.Item, e.User, e.Client, e.HW, e.HWName, e.LeaseID, string(e.Code), e.Overage, e.Duration.Seconds()})
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenant": tenant, "usage": out})
}

// adminApply applies a configuration file (YAML or JSON body) to the running server, object
// by object, exactly as a start does.
func (s *Server) adminApply(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, maxAdminBody)
	if !ok {
		return
	}
	cfg, err := config.Parse(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_config", err.Error())
		return
	}
	rep, err := apply.Apply(r.Context(), s.deps.Store, cfg.Tenants, apply.Options{})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	for _, t := range cfg.Tenants {
		s.deps.Catalog.Invalidate(t.Name())
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "report": rep})
}
