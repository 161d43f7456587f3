// Package objects is the one writer of the configurable objects: tenants, organizations,
// users, clients, products, models and licenses. The configuration file (package apply, on
// start and for `admin apply`) and the admin API change them only through it, so that a
// change is validated, written and followed by its hooks in the same way, whoever makes it.
//
// A change runs inside one store transaction that first locks the tenant's catalog
// (store.Tx.LockCatalog), then reads the stored objects, writes, validates the tenant as it
// now stands (as a configuration file is validated) and runs the hooks; any refusal rolls
// the whole of it back. Because the lock comes before the read, a PATCH is a
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
	// stored holds the tenant's objects as the transaction sees them, this edit's writes
	// included; the tenant's own definition is under key{domain.KindTenant, tenant}.
	stored map[key]*store.Object
	// tenantWritten: the tenant's own definition was written, so whether it is the default
	// has to be checked against the other tenants.
	tenantWritten bool
}

// Open locks the tenant's catalog and reads its objects. The tenant need not exist yet.
func Open(ctx context.Context, tx store.Tx, tenant string) (*Edit, error) {
	if err := tx.LockCatalog(ctx, tenant); err != nil {
		return nil, err
	}
	e := &Edit{tx: tx, tenant: tenant, stored: map[key]*store.Object{}}
	tobj, err := tx.GetObject(ctx, "", domain.KindTenant, tenant)
	switch {
	case err == nil:
		e.stored[key{domain.KindTenant, tenant}] = tobj
	case !errors.Is(err, domain.ErrNotFound):
		return nil, err
	}
	for _, kind := range domain.TenantKinds {
		list, err := tx.ListObjects(ctx, tenant, kind)
		if err != nil {
			return nil, err
		}
		for i := range list {
			e.stored[key{kind, list[i].ID}] = &list[i]
		}
	}
	return e, nil
}

// Get returns the object as stored in the transaction, or nil. The tenant's own
// definition is Get(domain.KindTenant, its name).
func (e *Edit) Get(kind domain.Kind, id string) *store.Object {
	return e.stored[key{kind, id}]
}

// TenantExists reports whether the tenant's own definition is stored.
func (e *Edit) TenantExists() bool {
	return e.Get(domain.KindTenant, e.tenant) != nil
}

// Put writes an object of the tenant (or the tenant's own definition: Tenant "", Kind
// domain.KindTenant, ID the tenant's name) and runs the hooks of the change.
func (e *Edit) Put(ctx context.Context, obj store.Object) error {
	if !e.owns(obj.Tenant, obj.Kind, obj.ID) {
		return fmt.Errorf("objects: %s %s/%s written through the edit of tenant %s", obj.Kind, obj.Tenant, obj.ID, e.tenant)
	}
	k := key{obj.Kind, obj.ID}
	if err := afterPut(ctx, e.tx, e.tenant, obj.Kind, e.stored[k], &obj); err != nil {
		return err
	}
	if err := e.tx.PutObject(ctx, obj); err != nil {
		return err
	}
	e.stored[k] = &obj
	e.tenantWritten = e.tenantWritten || obj.Kind == domain.KindTenant
	return nil
}

// Delete removes an object of the tenant and runs the hooks of the removal. It reports
// whether the object existed.
func (e *Edit) Delete(ctx context.Context, kind domain.Kind, id string) (bool, error) {
	if kind == domain.KindTenant {
		return false, errors.New("objects: a tenant is removed with DeleteTenant")
	}
	k := key{kind, id}
	cur := e.stored[k]
	if cur == nil {
		return false, nil
	}
	if err := afterDelete(ctx, e.tx, e.tenant, kind, cur); err != nil {
		return false, err
	}
	if _, err := e.tx.DeleteObject(ctx, e.tenant, kind, id); err != nil {
		return false, err
	}
	delete(e.stored, k)
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
	ct, err := e.config()
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
	if err := e.tx.LockCatalog(ctx, ""); err != nil {
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

// config is the tenant as a configuration file would give it, objects in id order.
func (e *Edit) config() (*config.Tenant, error) {
	ct := &config.Tenant{}
	if tobj := e.Get(domain.KindTenant, e.tenant); tobj != nil {
		if err := json.Unmarshal(tobj.Spec, &ct.Spec); err != nil {
			return nil, fmt.Errorf("tenant %s: %w", e.tenant, err)
		}
	} else {
		ct.Spec = domain.Tenant{Name: e.tenant, Session: domain.DefaultSessionPolicy()}
	}
	ids := map[domain.Kind][]string{}
	for k := range e.stored {
		if k.kind != domain.KindTenant {
			ids[k.kind] = append(ids[k.kind], k.id)
		}
	}
	for _, list := range ids {
		slices.Sort(list)
	}
	var err error
	ct.Organizations, err = entries[domain.Organization](e, domain.KindOrganization, ids, err)
	ct.Users, err = entries[domain.User](e, domain.KindUser, ids, err)
	ct.Clients, err = entries[domain.Client](e, domain.KindClient, ids, err)
	ct.Products, err = entries[domain.Product](e, domain.KindProduct, ids, err)
	ct.Models, err = entries[domain.LicenseModel](e, domain.KindModel, ids, err)
	ct.Licenses, err = entries[domain.License](e, domain.KindLicense, ids, err)
	return ct, err
}

func entries[T any](e *Edit, kind domain.Kind, ids map[domain.Kind][]string, err error) ([]config.Entry[T], error) {
	if err != nil {
		return nil, err
	}
	var out []config.Entry[T]
	for _, id := range ids[kind] {
		var v T
		if err := json.Unmarshal(e.stored[key{kind, id}].Spec, &v); err != nil {
			return nil, fmt.Errorf("%s %s: %w", kind, id, err)
		}
		out = append(out, config.Entry[T]{Spec: v})
	}
	return out, nil
}
