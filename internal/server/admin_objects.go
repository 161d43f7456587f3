package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/leasehold/leasehold/internal/apply"
	"github.com/leasehold/leasehold/internal/config"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/objects"
	"github.com/leasehold/leasehold/internal/store"
)

// Objects are written by package objects, the one writer the configuration file and
// `admin apply` also go through: each handler here parses, makes one call and renders.

// publicSpec removes secrets (even hashed) from an object before it is shown.
func publicSpec(kind domain.Kind, spec json.RawMessage) json.RawMessage {
	if kind != domain.KindUser && kind != domain.KindClient && kind != domain.KindWebhook {
		return spec
	}
	var m map[string]any
	if json.Unmarshal(spec, &m) != nil {
		return spec
	}
	delete(m, "password")
	delete(m, "client_secret")
	if _, ok := m["secret"]; ok {
		m["secret"] = "(set)"
	}
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
	writeJSON(w, http.StatusOK, tenantList{Tenants: list})
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
	t, err := s.writer.WriteTenant(r.Context(), objects.Create, "", body)
	if err != nil {
		s.objectError(w, r, err)
		return
	}
	s.deps.Catalog.Invalidate(t.Name)
	writeJSON(w, http.StatusCreated, t)
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
	t, err := s.writer.WriteTenant(r.Context(), writeOp(r.Method), snap.Tenant.Name, body)
	if err != nil {
		s.objectError(w, r, err)
		return
	}
	s.deps.Catalog.Invalidate(t.Name)
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) adminDeleteTenant(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	if err := s.writer.DeleteTenant(r.Context(), snap.Tenant.Name); err != nil {
		s.objectError(w, r, err)
		return
	}
	s.deps.Catalog.Invalidate(snap.Tenant.Name)
	writeJSON(w, http.StatusOK, okBody{OK: true})
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
	writeJSON(w, http.StatusOK, objectList{string(kind): out})
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
	id, spec, err := s.writer.Write(r.Context(), writeOp(r.Method), tenant, kind, r.PathValue("id"), body)
	if err != nil {
		s.objectError(w, r, err)
		return
	}
	s.deps.Catalog.Invalidate(tenant)
	if kind == domain.KindClient {
		s.secrets.Forget(tenant, id)
	}
	status := http.StatusOK
	if r.Method == http.MethodPost {
		status = http.StatusCreated
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(publicSpec(kind, spec))
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
	if err := s.writer.Delete(r.Context(), snap.Tenant.Name, kind, r.PathValue("id")); err != nil {
		s.objectError(w, r, err)
		return
	}
	s.deps.Catalog.Invalidate(snap.Tenant.Name)
	writeJSON(w, http.StatusOK, okBody{OK: true})
}

// writeOp is the write a method asks for (POST, PUT or PATCH: the routes take no other).
func writeOp(method string) objects.Op {
	switch method {
	case http.MethodPost:
		return objects.Create
	case http.MethodPatch:
		return objects.Patch
	}
	return objects.Replace
}

// objectRefusals maps each refused change to its answer.
var objectRefusals = map[objects.Refusal]struct {
	status int
	code   string
}{
	objects.NotFound:   {http.StatusNotFound, "not_found"},
	objects.BadRequest: {http.StatusBadRequest, "invalid_request"},
	objects.Invalid:    {http.StatusBadRequest, "invalid_object"},
	objects.Conflict:   {http.StatusConflict, "conflict"},
	objects.InUse:      {http.StatusConflict, "in_use"},
}

func (s *Server) objectError(w http.ResponseWriter, r *http.Request, err error) {
	if e, ok := errors.AsType[*objects.Error](err); ok {
		if a, ok := objectRefusals[e.Refusal]; ok {
			writeError(w, a.status, a.code, e.Msg)
			return
		}
	}
	s.internalError(w, r, err)
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
	// dry_run=true plans and reports what the file would change, writing nothing.
	dry := r.URL.Query().Get("dry_run") == "true"
	rep, err := apply.Apply(r.Context(), s.deps.Store, cfg.Tenants, apply.Options{DryRun: dry})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if !dry {
		for _, t := range cfg.Tenants {
			s.deps.Catalog.Invalidate(t.Name())
		}
	}
	writeJSON(w, http.StatusOK, applyResult{OK: true, DryRun: dry, Report: rep})
}
