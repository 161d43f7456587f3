package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// ---- Catalog ----

// catalogTenant is the tenant whose catalog version a write of o moves: a tenant object
// belongs to the tenant it names.
func catalogTenant(tenant string, kind domain.Kind, id string) string {
	if tenant == "" && kind == domain.KindTenant {
		return id
	}
	return tenant
}

func (t *tx) bump(ctx context.Context, tenant string) error {
	_, err := t.exec(ctx, `INSERT INTO catalog_versions (tenant, version) VALUES (?, 1)
		ON CONFLICT (tenant) DO UPDATE SET version = version + 1`, tenant)
	return wrap("bump catalog version", err)
}

func (t *tx) GetObject(ctx context.Context, tenant string, kind domain.Kind, id string) (*store.Object, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	o := &store.Object{Tenant: tenant, Kind: kind, ID: id}
	var spec []byte
	var at int64
	err := t.row(ctx, `SELECT spec, file_hash, updated_at FROM objects WHERE tenant = ? AND kind = ? AND id = ?`,
		tenant, string(kind), id).Scan(&spec, &o.FileHash, &at)
	if err != nil {
		return nil, notFound("get object", err)
	}
	o.Spec, o.UpdatedAt = spec, fromMS(at)
	return o, nil
}

func (t *tx) ListObjects(ctx context.Context, tenant string, kind domain.Kind) ([]store.Object, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, `SELECT id, spec, file_hash, updated_at FROM objects WHERE tenant = ? AND kind = ? ORDER BY id`,
		tenant, string(kind))
	if err != nil {
		return nil, wrap("list objects", err)
	}
	defer rows.Close()
	var out []store.Object
	for rows.Next() {
		o := store.Object{Tenant: tenant, Kind: kind}
		var spec []byte
		var at int64
		if err := rows.Scan(&o.ID, &spec, &o.FileHash, &at); err != nil {
			return nil, wrap("list objects", err)
		}
		o.Spec, o.UpdatedAt = spec, fromMS(at)
		out = append(out, o)
	}
	return out, wrap("list objects", rows.Err())
}

func (t *tx) PutObject(ctx context.Context, obj store.Object) error {
	if err := t.writable(ctx); err != nil {
		return err
	}
	at := obj.UpdatedAt
	if at.IsZero() {
		at = t.now
	}
	_, err := t.exec(ctx, `INSERT INTO objects (tenant, kind, id, spec, file_hash, updated_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (tenant, kind, id) DO UPDATE SET spec = excluded.spec, file_hash = excluded.file_hash, updated_at = excluded.updated_at`,
		obj.Tenant, string(obj.Kind), obj.ID, notNil(obj.Spec), obj.FileHash, ms(at))
	if err != nil {
		return wrap("put object", err)
	}
	return t.bump(ctx, catalogTenant(obj.Tenant, obj.Kind, obj.ID))
}

func (t *tx) DeleteObject(ctx context.Context, tenant string, kind domain.Kind, id string) (bool, error) {
	if err := t.writable(ctx); err != nil {
		return false, err
	}
	n, err := t.exec(ctx, `DELETE FROM objects WHERE tenant = ? AND kind = ? AND id = ?`, tenant, string(kind), id)
	if err != nil || n == 0 {
		return false, wrap("delete object", err)
	}
	return true, t.bump(ctx, catalogTenant(tenant, kind, id))
}

// tenantTables are the tables DeleteTenantData empties of a tenant's rows (lease_ids
// before leases, tokens before sessions, so no cascade has to find them one by one).
var tenantTables = []string{
	"objects", "signing_keys", "license_state", "seats", "lease_ids", "leases", "hw_locks", "usage", "tokens",
	"session_leases", "sessions", "usage_hours", "webhook_deliveries", "webhook_license_state",
}

func (t *tx) DeleteTenantData(ctx context.Context, tenant string) error {
	if err := t.writable(ctx); err != nil {
		return err
	}
	for _, table := range tenantTables {
		if _, err := t.exec(ctx, "DELETE FROM "+table+" WHERE tenant = ?", tenant); err != nil {
			return wrap("delete tenant data", err)
		}
	}
	if _, err := t.exec(ctx, `DELETE FROM objects WHERE tenant = '' AND kind = ? AND id = ?`, string(domain.KindTenant), tenant); err != nil {
		return wrap("delete tenant data", err)
	}
	// The version row stays (and moves): a cache must never meet an old version again.
	return t.bump(ctx, tenant)
}

// LockCatalog has nothing to lock: an Update is the only writer from start to commit.
func (t *tx) LockCatalog(ctx context.Context, tenant string) (int64, error) {
	if err := t.writable(ctx); err != nil {
		return 0, err
	}
	return t.CatalogVersion(ctx, tenant)
}

func (t *tx) CatalogVersion(ctx context.Context, tenant string) (int64, error) {
	if err := t.ready(ctx); err != nil {
		return 0, err
	}
	var v int64
	err := t.row(ctx, `SELECT version FROM catalog_versions WHERE tenant = ?`, tenant).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return v, wrap("catalog version", err)
}

// ---- Signing keys ----

func (t *tx) ListSigningKeys(ctx context.Context, tenant string) ([]store.SigningKey, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, `SELECT kid, algorithm, private, created_at, retired_at, publish_until FROM signing_keys
		WHERE tenant = ? ORDER BY retired_at IS NOT NULL, created_at DESC, kid DESC`, tenant)
	if err != nil {
		return nil, wrap("list signing keys", err)
	}
	defer rows.Close()
	var out []store.SigningKey
	for rows.Next() {
		k := store.SigningKey{Tenant: tenant}
		var created int64
		var retired, until sql.NullInt64
		if err := rows.Scan(&k.KID, &k.Algorithm, &k.Private, &created, &retired, &until); err != nil {
			return nil, wrap("list signing keys", err)
		}
		k.CreatedAt, k.RetiredAt, k.PublishUntil = fromMS(created), fromNullMS(retired), fromNullMS(until)
		out = append(out, k)
	}
	return out, wrap("list signing keys", rows.Err())
}

func (t *tx) InsertSigningKey(ctx context.Context, key store.SigningKey, ifNone bool) (bool, error) {
	if err := t.writable(ctx); err != nil {
		return false, err
	}
	if ifNone {
		// The single writer makes this check and the insert below one atomic step.
		var active bool
		err := t.row(ctx, `SELECT EXISTS (SELECT 1 FROM signing_keys WHERE tenant = ? AND retired_at IS NULL)`, key.Tenant).Scan(&active)
		if err != nil {
			return false, wrap("insert signing key", err)
		}
		if active {
			return false, nil
		}
	}
	n, err := t.exec(ctx, `INSERT INTO signing_keys (tenant, kid, algorithm, private, created_at, retired_at, publish_until)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, kid) DO NOTHING`,
		key.Tenant, key.KID, key.Algorithm, notNil(key.Private), ms(key.CreatedAt), nullTime(key.RetiredAt), nullTime(key.PublishUntil))
	if err != nil {
		return false, wrap("insert signing key", err)
	}
	if n == 0 {
		return false, fmt.Errorf("signing key %s/%s exists: %w", key.Tenant, key.KID, domain.ErrConflict)
	}
	return true, nil
}

func (t *tx) RetireSigningKey(ctx context.Context, tenant, kid string, at, publishUntil time.Time) error {
	if err := t.writable(ctx); err != nil {
		return err
	}
	n, err := t.exec(ctx, `UPDATE signing_keys SET retired_at = ?, publish_until = ? WHERE tenant = ? AND kid = ?`,
		ms(at), ms(publishUntil), tenant, kid)
	if err != nil {
		return wrap("retire signing key", err)
	}
	if n == 0 {
		return domain.ErrNotFound
	}
	return nil
}

func (t *tx) DeleteSigningKey(ctx context.Context, tenant, kid string) error {
	if err := t.writable(ctx); err != nil {
		return err
	}
	_, err := t.exec(ctx, `DELETE FROM signing_keys WHERE tenant = ? AND kid = ?`, tenant, kid)
	return wrap("delete signing key", err)
}
