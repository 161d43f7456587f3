// Package catalog keeps a per-tenant, read-only snapshot of the configurable objects
// (users, clients, products, models, licenses) with the indexes the hot paths need.
//
// A snapshot is reloaded when the tenant's catalog version in the store moves. Each process
// checks that version at most every MaxStaleness, so a change made by another process (a
// disabled client, a lowered seat count) is seen everywhere within that bound; writes made
// through this process call Invalidate and are seen at once.
package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// MaxStaleness bounds how old a snapshot may be before its version is checked again.
const MaxStaleness = 250 * time.Millisecond

// Snapshot is an immutable view of one tenant's objects.
type Snapshot struct {
	Version       int64
	Tenant        domain.Tenant
	Organizations map[string]*domain.Organization
	Users         map[string]*domain.User
	Clients       map[string]*domain.Client
	Products      map[string]*domain.Product
	Models        map[string]*domain.LicenseModel
	Licenses      map[string]*domain.License
	Gateways      map[string]*domain.Gateway
	Webhooks      map[string]*domain.Webhook
	// byItem lists, in license id order, the licenses that cover an item (a product's
	// license covers the product item and all its items).
	byItem map[string][]*domain.License
}

// LicensesFor returns the licenses covering item, in license id order.
func (s *Snapshot) LicensesFor(item string) []*domain.License { return s.byItem[item] }

// Items returns every item a license covers.
func (s *Snapshot) Items(l *domain.License) []string {
	var items []string
	if l.Product != "" {
		items = append(items, l.Product)
		if p := s.Products[l.Product]; p != nil {
			items = append(items, p.Items...)
		}
	}
	return append(items, l.Items...)
}

// Cache holds the latest snapshot of every tenant it has been asked about.
type Cache struct {
	store store.Store
	now   func() time.Time

	// peeks holds each tenant's latest snapshot for Peek, which takes no lock: mu is held
	// across a store read (Tenants), and Peek runs inside transactions holding row locks.
	peeks sync.Map // tenant name → *Snapshot

	mu           sync.Mutex
	tenants      map[string]*entry
	tenantList   []domain.Tenant
	tenantListAt time.Time
}

type entry struct {
	mu      sync.Mutex // one reload at a time per tenant
	snap    *Snapshot
	checked time.Time
}

func New(st store.Store) *Cache {
	return &Cache{store: st, now: time.Now, tenants: map[string]*entry{}}
}

// Invalidate forces the next Get of tenant to check the store.
func (c *Cache) Invalidate(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tenantList = nil
	if e := c.tenants[tenant]; e != nil {
		e.mu.Lock()
		e.checked = time.Time{}
		e.mu.Unlock()
	}
}

// Get returns the tenant's snapshot, or domain.ErrNotFound when the tenant does not exist.
func (c *Cache) Get(ctx context.Context, tenant string) (*Snapshot, error) {
	c.mu.Lock()
	e := c.tenants[tenant]
	if e == nil {
		e = &entry{}
		c.tenants[tenant] = e
	}
	c.mu.Unlock()

	// Forget names that do not exist (after e.mu is released: Invalidate locks c.mu, then
	// e.mu), so that a client naming random tenants cannot grow the map.
	forget := false
	defer func() {
		if forget {
			c.mu.Lock()
			if c.tenants[tenant] == e {
				delete(c.tenants, tenant)
			}
			c.mu.Unlock()
		}
	}()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.snap != nil && c.now().Sub(e.checked) < MaxStaleness {
		return e.snap, nil
	}
	var snap *Snapshot
	err := c.store.View(ctx, func(tx store.Tx) error {
		snap = nil
		v, err := tx.CatalogVersion(ctx, tenant)
		if err != nil {
			return err
		}
		if e.snap != nil && e.snap.Version == v {
			snap = e.snap
			return nil
		}
		snap, err = load(ctx, tx, tenant, v)
		return err
	})
	if err != nil {
		forget = e.snap == nil
		return nil, err
	}
	e.snap, e.checked = snap, c.now()
	c.peeks.Store(tenant, snap)
	return snap, nil
}

func load(ctx context.Context, tx store.Tx, tenant string, version int64) (*Snapshot, error) {
	tobj, err := tx.GetObject(ctx, "", domain.KindTenant, tenant)
	if err != nil {
		return nil, err
	}
	s := &Snapshot{
		Version:       version,
		Organizations: map[string]*domain.Organization{},
		Users:         map[string]*domain.User{},
		Clients:       map[string]*domain.Client{},
		Products:      map[string]*domain.Product{},
		Models:        map[string]*domain.LicenseModel{},
		Licenses:      map[string]*domain.License{},
		Gateways:      map[string]*domain.Gateway{},
		Webhooks:      map[string]*domain.Webhook{},
		byItem:        map[string][]*domain.License{},
	}
	if err := json.Unmarshal(tobj.Spec, &s.Tenant); err != nil {
		return nil, fmt.Errorf("tenant %s: %w", tenant, err)
	}
	if err := loadKind(ctx, tx, tenant, domain.KindOrganization, s.Organizations, func(o *domain.Organization) string { return o.ID }); err != nil {
		return nil, err
	}
	if err := loadKind(ctx, tx, tenant, domain.KindUser, s.Users, func(o *domain.User) string { return o.Username }); err != nil {
		return nil, err
	}
	if err := loadKind(ctx, tx, tenant, domain.KindClient, s.Clients, func(o *domain.Client) string { return o.ClientID }); err != nil {
		return nil, err
	}
	if err := loadKind(ctx, tx, tenant, domain.KindProduct, s.Products, func(o *domain.Product) string { return o.Name }); err != nil {
		return nil, err
	}
	if err := loadKind(ctx, tx, tenant, domain.KindModel, s.Models, func(o *domain.LicenseModel) string { return o.Name }); err != nil {
		return nil, err
	}
	if err := loadKind(ctx, tx, tenant, domain.KindLicense, s.Licenses, func(o *domain.License) string { return o.ID }); err != nil {
		return nil, err
	}
	if err := loadKind(ctx, tx, tenant, domain.KindGateway, s.Gateways, func(o *domain.Gateway) string { return o.Name }); err != nil {
		return nil, err
	}
	if err := loadKind(ctx, tx, tenant, domain.KindWebhook, s.Webhooks, func(o *domain.Webhook) string { return o.ID }); err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(s.Licenses))
	for id := range s.Licenses {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		l := s.Licenses[id]
		seen := map[string]bool{}
		for _, item := range s.Items(l) {
			if !seen[item] {
				seen[item] = true
				s.byItem[item] = append(s.byItem[item], l)
			}
		}
	}
	return s, nil
}

func loadKind[T any](ctx context.Context, tx store.Tx, tenant string, kind domain.Kind, into map[string]*T, key func(*T) string) error {
	objs, err := tx.ListObjects(ctx, tenant, kind)
	if err != nil {
		return err
	}
	for _, o := range objs {
		v := new(T)
		if err := json.Unmarshal(o.Spec, v); err != nil {
			return fmt.Errorf("%s %s/%s: %w", kind, tenant, o.ID, err)
		}
		into[key(v)] = v
	}
	return nil
}

// Tenants returns every tenant's definition, re-read at most every MaxStaleness.
func (c *Cache) Tenants(ctx context.Context) ([]domain.Tenant, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tenantList != nil && c.now().Sub(c.tenantListAt) < MaxStaleness {
		return c.tenantList, nil
	}
	var list []domain.Tenant
	err := c.store.View(ctx, func(tx store.Tx) error {
		objs, err := tx.ListObjects(ctx, "", domain.KindTenant)
		if err != nil {
			return err
		}
		list = make([]domain.Tenant, 0, len(objs))
		for _, o := range objs {
			var t domain.Tenant
			if err := json.Unmarshal(o.Spec, &t); err != nil {
				return fmt.Errorf("tenant %s: %w", o.ID, err)
			}
			list = append(list, t)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.tenantList, c.tenantListAt = list, c.now()
	return list, nil
}

// DefaultTenant is the name of the tenant marked `default: true` ("" when none).
func (c *Cache) DefaultTenant(ctx context.Context) (string, error) {
	list, err := c.Tenants(ctx)
	if err != nil {
		return "", err
	}
	for _, t := range list {
		if t.Default {
			return t.Name, nil
		}
	}
	return "", nil
}
