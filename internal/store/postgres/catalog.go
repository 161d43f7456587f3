package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

const bumpVersion = `INSERT INTO catalog_versions (tenant, version) VALUES ($1, 1)
	ON CONFLICT (tenant) DO UPDATE SET version = catalog_versions.version + 1`

// versionTenant is the tenant whose catalog version a write to obj moves: a tenant's own
// definition belongs to that tenant's snapshot.
func versionTenant(tenant string, kind domain.Kind, id string) string {
	if tenant == "" && kind == domain.KindTenant {
		return id
	}
	return tenant
}

func (t *tx) GetObject(ctx context.Context, tenant string, kind domain.Kind, id string) (*store.Object, error) {
	o := store.Object{Tenant: tenant, Kind: kind, ID: id}
	err := t.get(ctx, "get object",
		`SELECT spec, file_hash, updated_at FROM objects WHERE tenant = $1 AND kind = $2 AND id = $3`,
		[]any{tenant, string(kind), id}, &o.Spec, &o.FileHash, &o.UpdatedAt)
	if err != nil {
		return nil, err
	}
	o.UpdatedAt = o.UpdatedAt.UTC()
	return &o, nil
}

func (t *tx) ListObjects(ctx context.Context, tenant string, kind domain.Kind) ([]store.Object, error) {
	return list(ctx, t, "list objects",
		`SELECT id, spec, file_hash, updated_at FROM objects WHERE tenant = $1 AND kind = $2 ORDER BY id`,
		[]any{tenant, string(kind)},
		func(r pgx.Rows) (store.Object, error) {
			o := store.Object{Tenant: tenant, Kind: kind}
			err := r.Scan(&o.ID, &o.Spec, &o.FileHash, &o.UpdatedAt)
			o.UpdatedAt = o.UpdatedAt.UTC()
			return o, err
		})
}

func (t *tx) PutObject(ctx context.Context, obj store.Object) error {
	at := obj.UpdatedAt
	if at.IsZero() {
		at = t.now
	}
	err := t.write(ctx, "put object",
		`INSERT INTO objects (tenant, kind, id, spec, file_hash, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (tenant, kind, id) DO UPDATE
		SET spec = excluded.spec, file_hash = excluded.file_hash, updated_at = excluded.updated_at`,
		obj.Tenant, string(obj.Kind), obj.ID, []byte(obj.Spec), obj.FileHash, ts(at))
	if err != nil {
		return err
	}
	return t.write(ctx, "put object", bumpVersion, versionTenant(obj.Tenant, obj.Kind, obj.ID))
}

func (t *tx) DeleteObject(ctx context.Context, tenant string, kind domain.Kind, id string) (bool, error) {
	tag, err := t.exec(ctx, "delete object",
		`DELETE FROM objects WHERE tenant = $1 AND kind = $2 AND id = $3`, tenant, string(kind), id)
	if err != nil || tag.RowsAffected() == 0 {
		return false, err
	}
	if err := t.write(ctx, "delete object", bumpVersion, versionTenant(tenant, kind, id)); err != nil {
		return false, err
	}
	return true, nil
}

func (t *tx) DeleteTenantData(ctx context.Context, tenant string) error {
	t.lockedLeases = nil // their rows go too
	b := &pgx.Batch{}
	// The tenant's own definition is an object of tenant "".
	b.Queue(`DELETE FROM objects WHERE tenant = '' AND kind = $1 AND id = $2`, string(domain.KindTenant), tenant)
	for _, table := range []string{
		"objects", "signing_keys", "signing_key_guards", "license_state", "seats", "leases", "lease_chain",
		"hw_locks", "usage_events", "sessions", "tokens", "usage_hours", "session_leases",
		"webhook_deliveries", "webhook_license_state",
	} {
		b.Queue(`DELETE FROM `+table+` WHERE tenant = $1`, tenant)
	}
	// The version moves rather than disappears: a cache holding the old snapshot must see
	// a change even if the tenant is created again.
	b.Queue(bumpVersion, tenant)
	n := b.Len()
	return t.batch(ctx, "delete tenant data", b, func(br pgx.BatchResults) error {
		for range n {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		return nil
	})
}

// insertCatalogVersion makes the row LockCatalog locks. Version 0 reads as no version, so
// the row is no write to wait for the disk for: like insertLicenseState, it leaves the
// transaction a reader.
const insertCatalogVersion = `INSERT INTO catalog_versions (tenant, version) VALUES ($1, 0) ON CONFLICT (tenant) DO NOTHING`

// LockCatalog locks the tenant's row of catalog_versions, the row every object write of
// the tenant bumps, so a writer that skipped LockCatalog still waits for the holder at its
// first write. A missing row is created at version 0, which reads as no version at all.
func (t *tx) LockCatalog(ctx context.Context, tenant string) (int64, error) {
	var v int64
	b := &pgx.Batch{}
	b.Queue(insertCatalogVersion, tenant)
	b.Queue(`SELECT version FROM catalog_versions WHERE tenant = $1 FOR UPDATE`, tenant)
	err := t.batch(ctx, "lock catalog", b, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		return br.QueryRow().Scan(&v)
	})
	return v, err
}

func (t *tx) CatalogVersion(ctx context.Context, tenant string) (int64, error) {
	var v int64
	err := t.get(ctx, "catalog version", `SELECT version FROM catalog_versions WHERE tenant = $1`, []any{tenant}, &v)
	if err == domain.ErrNotFound {
		return 0, nil
	}
	return v, err
}

// Signing keys.

func (t *tx) ListSigningKeys(ctx context.Context, tenant string) ([]store.SigningKey, error) {
	return list(ctx, t, "list signing keys",
		`SELECT kid, algorithm, private, created_at, retired_at, publish_until FROM signing_keys
		WHERE tenant = $1 ORDER BY retired_at IS NOT NULL, created_at DESC, kid DESC`,
		[]any{tenant},
		func(r pgx.Rows) (store.SigningKey, error) {
			k := store.SigningKey{Tenant: tenant}
			err := r.Scan(&k.KID, &k.Algorithm, &k.Private, &k.CreatedAt, &k.RetiredAt, &k.PublishUntil)
			k.CreatedAt, k.RetiredAt, k.PublishUntil = k.CreatedAt.UTC(), utcPtr(k.RetiredAt), utcPtr(k.PublishUntil)
			return k, err
		})
}

// InsertSigningKey with ifNone first takes the tenant's row lock in signing_key_guards,
// then inserts unless an active key exists. The three statements share one round trip, and
// under READ COMMITTED the last one sees a key that the previous lock holder committed.
func (t *tx) InsertSigningKey(ctx context.Context, key store.SigningKey, ifNone bool) (bool, error) {
	created := key.CreatedAt
	if created.IsZero() {
		created = t.now
	}
	args := []any{key.Tenant, key.KID, key.Algorithm, key.Private, ts(created), utcPtr(key.RetiredAt), utcPtr(key.PublishUntil)}
	if !ifNone {
		tag, err := t.exec(ctx, "insert signing key",
			`INSERT INTO signing_keys (tenant, kid, algorithm, private, created_at, retired_at, publish_until)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`, args...)
		if err != nil {
			return false, err
		}
		if tag.RowsAffected() == 0 {
			return false, fmt.Errorf("postgres: insert signing key %s: %w", key.KID, domain.ErrConflict)
		}
		return true, nil
	}
	var inserted bool
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO signing_key_guards (tenant) VALUES ($1) ON CONFLICT DO NOTHING`, key.Tenant)
	b.Queue(`SELECT tenant FROM signing_key_guards WHERE tenant = $1 FOR UPDATE`, key.Tenant)
	b.Queue(`INSERT INTO signing_keys (tenant, kid, algorithm, private, created_at, retired_at, publish_until)
		SELECT $1::text, $2::text, $3::text, $4::bytea, $5::timestamptz, $6::timestamptz, $7::timestamptz
		WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE tenant = $1 AND retired_at IS NULL)
		ON CONFLICT DO NOTHING`, args...)
	err := t.batch(ctx, "insert signing key", b, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		if _, err := br.Exec(); err != nil {
			return err
		}
		tag, err := br.Exec()
		inserted = tag.RowsAffected() > 0
		return err
	})
	return inserted, err
}

func (t *tx) RetireSigningKey(ctx context.Context, tenant, kid string, at, publishUntil time.Time) error {
	tag, err := t.exec(ctx, "retire signing key",
		`UPDATE signing_keys SET retired_at = $3, publish_until = $4 WHERE tenant = $1 AND kid = $2`,
		tenant, kid, ts(at), ts(publishUntil))
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return domain.ErrNotFound
	}
	return nil
}

func (t *tx) DeleteSigningKey(ctx context.Context, tenant, kid string) error {
	_, err := t.exec(ctx, "delete signing key", `DELETE FROM signing_keys WHERE tenant = $1 AND kid = $2`, tenant, kid)
	return err
}
