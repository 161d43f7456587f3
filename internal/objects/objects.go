// Package objects is the one writer of the configurable objects: tenants, organizations,
// users, clients, products, models and licenses. The configuration file (package apply, on
// start and for `admin apply`) and the admin API change them only through it, so that a
// change is validated, written and followed by its hooks in the same way, whoever makes it.
//
// A change runs inside one store transaction that first locks the tenant's catalog
// (store.Tx.LockCatalog), then reads the stored objects, writes them and runs their hooks,
// and validates the tenant as it now stands (as a configuration file is validated); a
// refusal rolls the whole of it back, hooks included. Because the lock comes before the read, a PATCH is a
// compare-and-swap: it merges into the object as stored when it holds the lock, so two
// PATCHes of different fields of one object both survive, and two writers never both pass
// validation against a state that only one of them leaves behind.
package objects

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/config"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// Refusal says why a change was refused; the admin API maps each to a status.
type Refusal int

const (
	NotFound   Refusal = iota + 1 // the tenant or the object does not exist
	BadRequest                    // the request is malformed (a patch that is no object, a renaming)
	Invalid                       // the object, or its tenant with it, is not valid
	Conflict                      // the object exists already, or another tenant is the default
	InUse                         // other objects still name it
)

// Error is a refused change. Msg is meant for the one who asked for it.
type Error struct {
	Refusal Refusal
	Msg     string
}

func (e *Error) Error() string { return e.Msg }

func refuse(r Refusal, format string, args ...any) *Error {
	return &Error{Refusal: r, Msg: fmt.Sprintf(format, args...)}
}

type key struct {
	kind domain.Kind
	id   string
}

// Edit is a change of one tenant's objects inside a store transaction (an Update). Open
// it before anything else in the transaction reads the tenant's objects.
type Edit struct {
	tx     store.Tx
	tenant string
	// version is the tenant's catalog version under the lock, before this edit wrote.
	version int64
	// snap, when its version is current, stands for the stored tenant in Validate: a large
	// tenant is then not read and decoded again inside the transaction.
	snap *catalog.Snapshot
	// seen holds the objects read or written in the transaction (nil: none stored); the
	// tenant's own definition is read by Open, under key{domain.KindTenant, tenant}.
	seen map[key]*store.Object
	// changes are this edit's writes in order (spec nil: removed), laid over the stored
	// tenant to validate it.
	changes []change
	// tenantWritten: the tenant's own definition was written, so whether it is the default
	// has to be checked against the other tenants.
	tenantWritten bool
}

type change struct {
	kind domain.Kind
	id   string
	spec json.RawMessage
}

// Open locks the tenant's catalog and reads the tenant's own definition; the tenant need
// not exist yet. snap may be nil, or a cached snapshot of the tenant from any time: it is
// used only if nothing was written since it was taken.
func Open(ctx context.Context, tx store.Tx, tenant string, snap *catalog.Snapshot) (*Edit, error) {
	version, err := tx.LockCatalog(ctx, tenant)
	if err != nil {
		return nil, err
	}
	e := &Edit{tx: tx, tenant: tenant, version: version, snap: snap, seen: map[key]*store.Object{}}
	if _, err := e.Get(ctx, domain.KindTenant, tenant); err != nil {
		return nil, err
	}
	return e, nil
}

// Get returns the object as stored in the transaction, or nil. The tenant's own
// definition is Get(ctx, domain.KindTenant, its name).
func (e *Edit) Get(ctx context.Context, kind domain.Kind, id string) (*store.Object, error) {
	k := key{kind, id}
	if o, ok := e.seen[k]; ok {
		return o, nil
	}
	tenant := e.tenant
	if kind == domain.KindTenant {
		tenant = ""
	}
	o, err := e.tx.GetObject(ctx, tenant, kind, id)
	if errors.Is(err, domain.ErrNotFound) {
		o, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	e.seen[k] = o
	return o, nil
}

// TenantExists reports whether the tenant's own definition is stored.
func (e *Edit) TenantExists() bool {
	return e.seen[key{domain.KindTenant, e.tenant}] != nil
}

// Put writes an object of the tenant (or the tenant's own definition: Tenant "", Kind
// domain.KindTenant, ID the tenant's name) and runs the hooks of the change.
func (e *Edit) Put(ctx context.Context, obj store.Object) error {
	if !e.owns(obj.Tenant, obj.Kind, obj.ID) {
		return fmt.Errorf("objects: %s %s/%s written through the edit of tenant %s", obj.Kind, obj.Tenant, obj.ID, e.tenant)
	}
	cur, err := e.Get(ctx, obj.Kind, obj.ID)
	if err != nil {
		return err
	}
	if err := afterPut(ctx, e.tx, e.tenant, obj.Kind, cur, &obj); err != nil {
		return err
	}
	if err := e.tx.PutObject(ctx, obj); err != nil {
		return err
	}
	e.seen[key{obj.Kind, obj.ID}] = &obj
	if obj.Kind == domain.KindTenant {
		e.tenantWritten = true
	} else {
		e.changes = append(e.changes, change{obj.Kind, obj.ID, obj.Spec})
	}
	return nil
}

// Delete removes an object of the tenant and runs the hooks of the removal. It reports
// whether the object existed.
func (e *Edit) Delete(ctx context.Context, kind domain.Kind, id string) (bool, error) {
	if !e.owns(e.tenant, kind, id) {
		return false, fmt.Errorf("objects: cannot remove %s %s through Delete", kind, id)
	}
	cur, err := e.Get(ctx, kind, id)
	if err != nil || cur == nil {
		return false, err
	}
	if err := afterDelete(ctx, e.tx, e.tenant, kind, cur); err != nil {
		return false, err
	}
	if _, err := e.tx.DeleteObject(ctx, e.tenant, kind, id); err != nil {
		return false, err
	}
	e.seen[key{kind, id}] = nil
	e.changes = append(e.changes, change{kind, id, nil})
	return true, nil
}

func (e *Edit) owns(tenant string, kind domain.Kind, id string) bool {
	if kind == domain.KindTenant {
		return tenant == "" && id == e.tenant
	}
	return tenant == e.tenant && slices.Contains(domain.TenantKinds, kind)
}

// Validate checks the tenant as it now stands in the transaction, its objects together,
// exactly as package config checks a tenant of a file (geoip: models may use countries).
// When the edit wrote the tenant's own definition and it is the default, no other tenant
// may be, leaving out peers: tenants of the same file, which package config has checked
// together with this one. Invalid or Conflict.
func (e *Edit) Validate(ctx context.Context, geoip bool, peers ...string) error {
	ct, err := e.config(ctx)
	if err != nil {
		return refuse(Invalid, "%v", err)
	}
	if err := config.ValidateTenant(ct, geoip); err != nil {
		return refuse(Invalid, "%v", err)
	}
	if !e.tenantWritten || !ct.Spec.Default {
		return nil
	}
	// Tenant definitions are versioned each under its own name: "" is a lock no tenant
	// takes otherwise, held so that two tenants cannot become the default side by side.
	if _, err := e.tx.LockCatalog(ctx, ""); err != nil {
		return err
	}
	list, err := e.tx.ListObjects(ctx, "", domain.KindTenant)
	if err != nil {
		return err
	}
	for _, o := range list {
		if o.ID == e.tenant || slices.Contains(peers, o.ID) {
			continue
		}
		var t domain.Tenant
		if json.Unmarshal(o.Spec, &t) == nil && t.Default {
			return refuse(Conflict, "tenant %s is already the default", o.ID)
		}
	}
	return nil
}

// config is the tenant as a configuration file would give it: the stored objects in id
// order, then this edit's changes laid over them.
func (e *Edit) config(ctx context.Context) (*config.Tenant, error) {
	ct := &config.Tenant{}
	if tobj := e.seen[key{domain.KindTenant, e.tenant}]; tobj != nil {
		if err := json.Unmarshal(tobj.Spec, &ct.Spec); err != nil {
			return nil, fmt.Errorf("tenant %s: %w", e.tenant, err)
		}
	} else {
		ct.Spec = domain.Tenant{Name: e.tenant, Session: domain.DefaultSessionPolicy()}
	}
	var err error
	if e.snap != nil && e.snap.Version == e.version && e.snap.Tenant.Name == e.tenant {
		fromSnapshot(ct, e.snap)
	} else if err = e.load(ctx, ct); err != nil {
		return nil, err
	}
	for _, c := range e.changes {
		switch c.kind {
		case domain.KindOrganization:
			err = lay(&ct.Organizations, c, func(o *domain.Organization) string { return o.ID })
		case domain.KindUser:
			err = lay(&ct.Users, c, func(o *domain.User) string { return o.Username })
		case domain.KindClient:
			err = lay(&ct.Clients, c, func(o *domain.Client) string { return o.ClientID })
		case domain.KindProduct:
			err = lay(&ct.Products, c, func(o *domain.Product) string { return o.Name })
		case domain.KindModel:
			err = lay(&ct.Models, c, func(o *domain.LicenseModel) string { return o.Name })
		case domain.KindLicense:
			err = lay(&ct.Licenses, c, func(o *domain.License) string { return o.ID })
		case domain.KindGateway:
			err = lay(&ct.Gateways, c, func(o *domain.Gateway) string { return o.Name })
		case domain.KindWebhook:
			err = lay(&ct.Webhooks, c, func(o *domain.Webhook) string { return o.ID })
		}
		if err != nil {
			return nil, err
		}
	}
	return ct, nil
}

// load reads the tenant's objects from the transaction (this edit's writes included).
func (e *Edit) load(ctx context.Context, ct *config.Tenant) error {
	var err error
	ct.Organizations, err = loadKind[domain.Organization](ctx, e, domain.KindOrganization, err)
	ct.Users, err = loadKind[domain.User](ctx, e, domain.KindUser, err)
	ct.Clients, err = loadKind[domain.Client](ctx, e, domain.KindClient, err)
	ct.Products, err = loadKind[domain.Product](ctx, e, domain.KindProduct, err)
	ct.Models, err = loadKind[domain.LicenseModel](ctx, e, domain.KindModel, err)
	ct.Licenses, err = loadKind[domain.License](ctx, e, domain.KindLicense, err)
	ct.Gateways, err = loadKind[domain.Gateway](ctx, e, domain.KindGateway, err)
	ct.Webhooks, err = loadKind[domain.Webhook](ctx, e, domain.KindWebhook, err)
	return err
}

func loadKind[T any](ctx context.Context, e *Edit, kind domain.Kind, err error) ([]config.Entry[T], error) {
	if err != nil {
		return nil, err
	}
	list, err := e.tx.ListObjects(ctx, e.tenant, kind)
	if err != nil {
		return nil, err
	}
	out := make([]config.Entry[T], 0, len(list))
	for _, o := range list {
		var v T
		if err := json.Unmarshal(o.Spec, &v); err != nil {
			return nil, fmt.Errorf("%s %s: %w", kind, o.ID, err)
		}
		out = append(out, config.Entry[T]{Spec: v})
	}
	return out, nil
}

func fromSnapshot(ct *config.Tenant, s *catalog.Snapshot) {
	ct.Organizations = snapshotKind(s.Organizations)
	ct.Users = snapshotKind(s.Users)
	ct.Clients = snapshotKind(s.Clients)
	ct.Products = snapshotKind(s.Products)
	ct.Models = snapshotKind(s.Models)
	ct.Licenses = snapshotKind(s.Licenses)
	ct.Gateways = snapshotKind(s.Gateways)
	ct.Webhooks = snapshotKind(s.Webhooks)
}

func snapshotKind[T any](m map[string]*T) []config.Entry[T] {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]config.Entry[T], 0, len(ids))
	for _, id := range ids {
		out = append(out, config.Entry[T]{Spec: *m[id]})
	}
	return out
}

// lay applies one change to a list: a written object replaces the one with its id (or is
// added at the end), a removed one goes. Applying it twice changes nothing more.
func lay[T any](list *[]config.Entry[T], c change, id func(*T) string) error {
	i := slices.IndexFunc(*list, func(e config.Entry[T]) bool { return id(&e.Spec) == c.id })
	if c.spec == nil {
		if i >= 0 {
			*list = slices.Delete(*list, i, i+1)
		}
		return nil
	}
	var v T
	if err := json.Unmarshal(c.spec, &v); err != nil {
		return fmt.Errorf("%s %s: %w", c.kind, c.id, err)
	}
	if i >= 0 {
		(*list)[i].Spec = v
	} else {
		*list = append(*list, config.Entry[T]{Spec: v})
	}
	return nil
}
