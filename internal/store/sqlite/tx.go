package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// tx is one store.Tx: a savepoint of the writer's group transaction (write), or a read
// transaction on a reader connection.
type tx struct {
	c     *conn
	now   time.Time
	write bool
	done  bool
	wrote bool // a statement that may have changed the database ran (see runBare)
	// hooks run once the group that holds this Update has committed (Store.Update); a
	// replayed attempt's tx is dropped with its hooks.
	hooks []func()
}

var _ store.Tx = (*tx)(nil)

func (t *tx) Now() time.Time { return t.now }

// AfterCommit implements store.Tx.
func (t *tx) AfterCommit(fn func()) { t.hooks = append(t.hooks, fn) }

// LockKey implements store.Tx. It has nothing to do: an Update runs on the single writer,
// so no other Update can take the key before this one has committed.
func (t *tx) LockKey(ctx context.Context, key string) error { return t.ready(ctx) }

func (t *tx) ready(ctx context.Context) error {
	if t.done {
		return errTxDone
	}
	return ctx.Err()
}

func (t *tx) writable(ctx context.Context) error {
	if err := t.ready(ctx); err != nil {
		return err
	}
	if !t.write {
		return errReadOnly
	}
	return nil
}

// sctx is the context statements run under (see conn.writer).
func (t *tx) sctx(ctx context.Context) context.Context {
	if t.c.writer {
		return context.Background()
	}
	return ctx
}

func (t *tx) exec(ctx context.Context, q string, args ...any) (int64, error) {
	t.wrote = true
	st, err := t.c.stmt(q)
	if err != nil {
		return 0, err
	}
	res, err := st.ExecContext(t.sctx(ctx), args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t *tx) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := t.c.stmt(q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(t.sctx(ctx), args...)
}

type row struct {
	r   *sql.Row
	err error
}

func (r row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	return r.r.Scan(dest...)
}

func (t *tx) row(ctx context.Context, q string, args ...any) row {
	st, err := t.c.stmt(q)
	if err != nil {
		return row{err: err}
	}
	return row{r: st.QueryRowContext(t.sctx(ctx), args...)}
}

type scanner interface{ Scan(dest ...any) error }

func wrap(op string, err error) error {
	if err == nil || errors.Is(err, domain.ErrNotFound) || errors.Is(err, domain.ErrConflict) ||
		errors.Is(err, errReadOnly) || errors.Is(err, errTxDone) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

// notFound maps "no row" to domain.ErrNotFound.
func notFound(op string, err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return domain.ErrNotFound
	}
	return wrap(op, err)
}

func ms(t time.Time) int64 { return t.UnixMilli() }

// fromMS inverts ms; the zero time.Time maps to itself.
func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMilli()
}

func fromNullMS(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMS(v.Int64)
	return &t
}

// limit maps "0: no limit" to SQLite's -1.
func limit(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

func notNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func encScopes(s []string) (any, error) {
	if s == nil {
		return nil, nil
	}
	b, err := json.Marshal(s)
	return string(b), err
}

func decScopes(v sql.NullString) ([]string, error) {
	if !v.Valid {
		return nil, nil
	}
	var s []string
	err := json.Unmarshal([]byte(v.String), &s)
	return s, err
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }

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
	"session_leases", "sessions", "usage_hours",
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

// ---- License state ----

const qLicenseState = `SELECT seats_held, use_count, use_time FROM license_state WHERE tenant = ? AND license_id = ?`

func (t *tx) getLicenseState(ctx context.Context, tenant, licenseID string) (*domain.LicenseState, bool, error) {
	st := &domain.LicenseState{Tenant: tenant, LicenseID: licenseID}
	var useTime int64
	err := t.row(ctx, qLicenseState, tenant, licenseID).Scan(&st.SeatsHeld, &st.UseCount, &useTime)
	if errors.Is(err, sql.ErrNoRows) {
		return st, false, nil
	}
	if err != nil {
		return nil, false, wrap("license state", err)
	}
	st.UseTime = time.Duration(useTime)
	return st, true, nil
}

// LockLicense needs no lock on SQLite: the writer's transaction excludes every other writer.
func (t *tx) LockLicense(ctx context.Context, tenant, licenseID string) (*domain.LicenseState, error) {
	if err := t.writable(ctx); err != nil {
		return nil, err
	}
	st, found, err := t.getLicenseState(ctx, tenant, licenseID)
	if err != nil || found {
		return st, err
	}
	_, err = t.exec(ctx, `INSERT INTO license_state (tenant, license_id, seats_held, use_count, use_time) VALUES (?, ?, 0, 0, 0)`,
		tenant, licenseID)
	if err != nil {
		return nil, wrap("lock license", err)
	}
	return st, nil
}

func (t *tx) SaveLicenseState(ctx context.Context, st *domain.LicenseState) error {
	if err := t.writable(ctx); err != nil {
		return err
	}
	_, err := t.exec(ctx, `INSERT INTO license_state (tenant, license_id, seats_held, use_count, use_time) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (tenant, license_id) DO UPDATE SET seats_held = excluded.seats_held, use_count = excluded.use_count, use_time = excluded.use_time`,
		st.Tenant, st.LicenseID, st.SeatsHeld, st.UseCount, int64(st.UseTime))
	return wrap("save license state", err)
}

func (t *tx) GetLicenseState(ctx context.Context, tenant, licenseID string) (*domain.LicenseState, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	st, _, err := t.getLicenseState(ctx, tenant, licenseID)
	return st, err
}

// ---- Seats ----

const seatCols = `tenant, license_id, seat_key, user, held_until, lingering, overage`

func scanSeat(sc scanner) (domain.Seat, error) {
	var s domain.Seat
	var held int64
	err := sc.Scan(&s.Tenant, &s.LicenseID, &s.Key, &s.User, &held, &s.Lingering, &s.Overage)
	s.HeldUntil = fromMS(held)
	return s, err
}

func (t *tx) GetSeat(ctx context.Context, tenant, licenseID, key string) (*domain.Seat, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	s, err := scanSeat(t.row(ctx, `SELECT `+seatCols+` FROM seats WHERE tenant = ? AND license_id = ? AND seat_key = ?`,
		tenant, licenseID, key))
	if err != nil {
		return nil, notFound("get seat", err)
	}
	return &s, nil
}

func (t *tx) PutSeat(ctx context.Context, s *domain.Seat) error {
	if err := t.writable(ctx); err != nil {
		return err
	}
	_, err := t.exec(ctx, `INSERT INTO seats (`+seatCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (tenant, license_id, seat_key) DO UPDATE SET user = excluded.user, held_until = excluded.held_until,
		lingering = excluded.lingering, overage = excluded.overage`,
		s.Tenant, s.LicenseID, s.Key, s.User, ms(s.HeldUntil), s.Lingering, s.Overage)
	return wrap("put seat", err)
}

// ExtendSeat implements store.Tx.
func (t *tx) ExtendSeat(ctx context.Context, tenant, licenseID, key string, until time.Time) (bool, error) {
	if err := t.writable(ctx); err != nil {
		return false, err
	}
	n, err := t.exec(ctx, `UPDATE seats SET held_until = max(held_until, ?), lingering = 0
		WHERE tenant = ? AND license_id = ? AND seat_key = ? AND (held_until < ? OR lingering)`,
		ms(until), tenant, licenseID, key, ms(until))
	return n > 0, wrap("extend seat", err)
}

func (t *tx) DeleteSeat(ctx context.Context, tenant, licenseID, key string) (bool, error) {
	if err := t.writable(ctx); err != nil {
		return false, err
	}
	n, err := t.exec(ctx, `DELETE FROM seats WHERE tenant = ? AND license_id = ? AND seat_key = ?`, tenant, licenseID, key)
	return n > 0, wrap("delete seat", err)
}

func (t *tx) ReapSeats(ctx context.Context, tenant, licenseID string, now time.Time) (int, error) {
	if err := t.writable(ctx); err != nil {
		return 0, err
	}
	n, err := t.exec(ctx, `DELETE FROM seats WHERE tenant = ? AND license_id = ? AND held_until <= ?`, tenant, licenseID, ms(now))
	return int(n), wrap("reap seats", err)
}

func (t *tx) CountLiveSeats(ctx context.Context, tenant, licenseID string, now time.Time) (int, error) {
	if err := t.ready(ctx); err != nil {
		return 0, err
	}
	var n int
	err := t.row(ctx, `SELECT COUNT(*) FROM seats WHERE tenant = ? AND license_id = ? AND held_until > ?`,
		tenant, licenseID, ms(now)).Scan(&n)
	return n, wrap("count live seats", err)
}

func (t *tx) EarliestSeatRelease(ctx context.Context, tenant, licenseID string, now time.Time) (time.Time, error) {
	if err := t.ready(ctx); err != nil {
		return time.Time{}, err
	}
	var v sql.NullInt64
	err := t.row(ctx, `SELECT MIN(held_until) FROM seats WHERE tenant = ? AND license_id = ? AND held_until > ?`,
		tenant, licenseID, ms(now)).Scan(&v)
	if err != nil || !v.Valid {
		return time.Time{}, wrap("earliest seat release", err)
	}
	return fromMS(v.Int64), nil
}

func (t *tx) CountExpiredSeats(ctx context.Context, tenant, licenseID string, now time.Time) (int, error) {
	if err := t.ready(ctx); err != nil {
		return 0, err
	}
	var n int
	err := t.row(ctx, `SELECT COUNT(*) FROM seats WHERE tenant = ? AND license_id = ? AND held_until <= ?`,
		tenant, licenseID, ms(now)).Scan(&n)
	return n, wrap("count expired seats", err)
}

func (t *tx) UsersHoldingSeats(ctx context.Context, tenant, licenseID string, users []string, now time.Time) (map[string]bool, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	if len(users) == 0 {
		return out, nil
	}
	list, err := json.Marshal(users)
	if err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, `SELECT DISTINCT user FROM seats WHERE tenant = ? AND license_id = ? AND held_until > ?
		AND user IN (SELECT value FROM json_each(?))`, tenant, licenseID, ms(now), string(list))
	if err != nil {
		return nil, wrap("users holding seats", err)
	}
	defer rows.Close()
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, wrap("users holding seats", err)
		}
		out[u] = true
	}
	return out, wrap("users holding seats", rows.Err())
}

func (t *tx) LicensesWithExpiredSeats(ctx context.Context, now time.Time, n int) ([][2]string, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, `SELECT DISTINCT tenant, license_id FROM seats WHERE held_until <= ? LIMIT ?`, ms(now), limit(n))
	if err != nil {
		return nil, wrap("licenses with expired seats", err)
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var p [2]string
		if err := rows.Scan(&p[0], &p[1]); err != nil {
			return nil, wrap("licenses with expired seats", err)
		}
		out = append(out, p)
	}
	return out, wrap("licenses with expired seats", rows.Err())
}

func (t *tx) SeatsExpiredBetween(ctx context.Context, from, to time.Time, n int) ([]domain.Seat, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, `SELECT `+seatCols+` FROM seats WHERE held_until > ? AND held_until <= ? ORDER BY held_until LIMIT ?`,
		ms(from), ms(to), limit(n))
	if err != nil {
		return nil, wrap("seats expired between", err)
	}
	defer rows.Close()
	var out []domain.Seat
	for rows.Next() {
		s, err := scanSeat(rows)
		if err != nil {
			return nil, wrap("seats expired between", err)
		}
		out = append(out, s)
	}
	return out, wrap("seats expired between", rows.Err())
}

// ---- Leases ----

const leaseCols = `tenant, root, id, license_id, item, seat_key, session_key, user, client, hw, hw_name, process,
	process_name, version, mode, issued_at, renewed_at, expires_at, refresh_at, prev_id, prev_until, overage,
	use_time_reserved, session_id, chain_seq, chain_key`

var (
	// DO NOTHING on either key, the root or the session key: both are domain.ErrConflict.
	qInsertLease = `INSERT INTO leases (` + leaseCols + `) VALUES (` + placeholders(26) + `) ON CONFLICT DO NOTHING`
	// Only what a renewal may change: the identity columns, which the indexes hold, stay
	// as inserted, so the update rewrites the row and the expiry index alone.
	qUpdateLease = `UPDATE leases SET id = ?, hw_name = ?, process_name = ?, version = ?, mode = ?, renewed_at = ?,
		expires_at = ?, refresh_at = ?, prev_id = ?, prev_until = ?, overage = ?, use_time_reserved = ?, session_id = ?,
		chain_seq = ?, chain_key = ?
		WHERE tenant = ? AND root = ?`
)

func leaseArgs(l *domain.Lease) []any {
	return []any{l.Tenant, l.Root, l.ID, l.LicenseID, l.Item, l.SeatKey, l.SessionKey, l.User, l.Client, l.HW, l.HWName,
		l.Process, l.ProcessName, l.Version, l.Mode, ms(l.IssuedAt), ms(l.RenewedAt), ms(l.ExpiresAt), ms(l.RefreshAt),
		l.PrevID, ms(l.PrevUntil), l.Overage, int64(l.UseTimeReserved), l.SessionID, l.ChainSeq, chainKey(l)}
}

// chainKey is never NULL, which a nil slice would bind as.
func chainKey(l *domain.Lease) []byte {
	if l.ChainKey == nil {
		return []byte{}
	}
	return l.ChainKey
}

func scanLease(sc scanner) (domain.Lease, error) {
	var l domain.Lease
	var issued, renewed, expires, refresh, prevUntil, reserved int64
	err := sc.Scan(&l.Tenant, &l.Root, &l.ID, &l.LicenseID, &l.Item, &l.SeatKey, &l.SessionKey, &l.User, &l.Client,
		&l.HW, &l.HWName, &l.Process, &l.ProcessName, &l.Version, &l.Mode, &issued, &renewed, &expires, &refresh,
		&l.PrevID, &prevUntil, &l.Overage, &reserved, &l.SessionID, &l.ChainSeq, &l.ChainKey)
	l.IssuedAt, l.RenewedAt, l.ExpiresAt, l.RefreshAt = fromMS(issued), fromMS(renewed), fromMS(expires), fromMS(refresh)
	l.PrevUntil, l.UseTimeReserved = fromMS(prevUntil), time.Duration(reserved)
	if len(l.ChainKey) == 0 {
		l.ChainKey = nil
	}
	return l, err
}

func scanLeases(rows *sql.Rows, op string) ([]domain.Lease, error) {
	defer rows.Close()
	var out []domain.Lease
	for rows.Next() {
		l, err := scanLease(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		out = append(out, l)
	}
	return out, wrap(op, rows.Err())
}

func (t *tx) chainID(ctx context.Context, tenant, id, root string) error {
	_, err := t.exec(ctx, `INSERT INTO lease_ids (tenant, id, root) VALUES (?, ?, ?) ON CONFLICT (tenant, id) DO NOTHING`, tenant, id, root)
	return err
}

func (t *tx) InsertLease(ctx context.Context, l *domain.Lease) error {
	if err := t.writable(ctx); err != nil {
		return err
	}
	n, err := t.exec(ctx, qInsertLease, leaseArgs(l)...)
	if err != nil {
		return wrap("insert lease", err)
	}
	if n == 0 {
		return fmt.Errorf("lease %s/%s or its session key exists: %w", l.Tenant, l.Root, domain.ErrConflict)
	}
	if needsChainRow(l) {
		if err := t.chainID(ctx, l.Tenant, l.ID, l.Root); err != nil {
			return wrap("insert lease", err)
		}
	}
	return nil
}

// needsChainRow reports whether FindLease needs a lease_ids row to resolve l.ID: a root
// resolves by the lease's key and a derived id by itself (domain/chainid.go).
func needsChainRow(l *domain.Lease) bool { return l.ID != l.Root && !l.DerivedChainID(l.ID) }

func (t *tx) UpdateLease(ctx context.Context, l *domain.Lease) error {
	if err := t.writable(ctx); err != nil {
		return err
	}
	n, err := t.exec(ctx, qUpdateLease, l.ID, l.HWName, l.ProcessName, l.Version, l.Mode, ms(l.RenewedAt),
		ms(l.ExpiresAt), ms(l.RefreshAt), l.PrevID, ms(l.PrevUntil), l.Overage, int64(l.UseTimeReserved), l.SessionID,
		l.ChainSeq, chainKey(l), l.Tenant, l.Root)
	if err != nil {
		return wrap("update lease", err)
	}
	if n == 0 {
		return domain.ErrNotFound
	}
	if !needsChainRow(l) {
		return nil
	}
	return wrap("update lease", t.chainID(ctx, l.Tenant, l.ID, l.Root))
}

func (t *tx) DeleteLease(ctx context.Context, tenant, root string) (bool, error) {
	if err := t.writable(ctx); err != nil {
		return false, err
	}
	// lease_ids follow by ON DELETE CASCADE.
	n, err := t.exec(ctx, `DELETE FROM leases WHERE tenant = ? AND root = ?`, tenant, root)
	return n > 0, wrap("delete lease", err)
}

func (t *tx) FindLease(ctx context.Context, tenant, id string) (*domain.Lease, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	if root, ok := domain.ChainRoot(id); ok {
		l, err := scanLease(t.row(ctx, `SELECT `+leaseCols+` FROM leases WHERE tenant = ? AND root = ?`, tenant, root))
		switch {
		case err == nil && l.HasChainID(id):
			return &l, nil
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return nil, wrap("find lease", err)
		}
		// Not a derived id after all: it may still be one of lease_ids.
	}
	// A root names its lease; any other id is one of lease_ids.
	l, err := scanLease(t.row(ctx, `SELECT `+leaseCols+` FROM leases
		WHERE tenant = ? AND root = COALESCE((SELECT root FROM lease_ids WHERE tenant = ? AND id = ?), ?)`, tenant, tenant, id, id))
	if err != nil {
		return nil, notFound("find lease", err)
	}
	return &l, nil
}

func (t *tx) GetLeaseBySessionKey(ctx context.Context, tenant, licenseID, seatKey, sessionKey string) (*domain.Lease, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	l, err := scanLease(t.row(ctx, `SELECT `+leaseCols+` FROM leases
		WHERE tenant = ? AND license_id = ? AND seat_key = ? AND session_key = ?`,
		tenant, licenseID, seatKey, sessionKey))
	if err != nil {
		return nil, notFound("lease by session key", err)
	}
	return &l, nil
}

// LockLease needs no lock on SQLite: the writer's transaction excludes every other writer.
func (t *tx) LockLease(ctx context.Context, tenant, licenseID, seatKey, sessionKey string) (*domain.Lease, error) {
	if err := t.writable(ctx); err != nil {
		return nil, err
	}
	return t.GetLeaseBySessionKey(ctx, tenant, licenseID, seatKey, sessionKey)
}

func (t *tx) CountLiveLeasesOnSeat(ctx context.Context, tenant, licenseID, seatKey string, now time.Time) (int, error) {
	if err := t.ready(ctx); err != nil {
		return 0, err
	}
	var n int
	err := t.row(ctx, `SELECT COUNT(*) FROM leases WHERE tenant = ? AND license_id = ? AND seat_key = ? AND expires_at > ?`,
		tenant, licenseID, seatKey, ms(now)).Scan(&n)
	return n, wrap("count live leases on seat", err)
}

func (t *tx) CountLiveLeasesByHolder(ctx context.Context, tenant, licenseID, user, client string, now time.Time) (int, error) {
	if err := t.ready(ctx); err != nil {
		return 0, err
	}
	var n int
	var err error
	switch {
	case client == "":
		err = t.row(ctx, `SELECT COUNT(*) FROM leases WHERE tenant = ? AND license_id = ? AND user = ? AND expires_at > ?`,
			tenant, licenseID, user, ms(now)).Scan(&n)
	case user == "":
		err = t.row(ctx, `SELECT COUNT(*) FROM leases WHERE tenant = ? AND license_id = ? AND client = ? AND expires_at > ?`,
			tenant, licenseID, client, ms(now)).Scan(&n)
	default:
		err = t.row(ctx, `SELECT COUNT(*) FROM leases WHERE tenant = ? AND license_id = ? AND user = ? AND client = ? AND expires_at > ?`,
			tenant, licenseID, user, client, ms(now)).Scan(&n)
	}
	return n, wrap("count live leases by holder", err)
}

func (t *tx) LatestLiveExpiryOnSeat(ctx context.Context, tenant, licenseID, seatKey, exceptRoot string, now time.Time) (time.Time, error) {
	if err := t.ready(ctx); err != nil {
		return time.Time{}, err
	}
	var v sql.NullInt64
	err := t.row(ctx, `SELECT MAX(expires_at) FROM leases WHERE tenant = ? AND license_id = ? AND seat_key = ? AND expires_at > ?
		AND root <> ?`, tenant, licenseID, seatKey, ms(now), exceptRoot).Scan(&v)
	if err != nil || !v.Valid {
		return time.Time{}, wrap("latest live expiry on seat", err)
	}
	return fromMS(v.Int64), nil
}

func (t *tx) ListLeases(ctx context.Context, tenant string, f store.LeaseFilter, now time.Time) ([]domain.Lease, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, `SELECT `+leaseCols+` FROM leases WHERE tenant = ? AND expires_at > ?
		AND (? = '' OR license_id = ?) AND (? = '' OR user = ?) AND (? = '' OR client = ?)
		ORDER BY issued_at, root LIMIT ?`,
		tenant, ms(now), f.LicenseID, f.LicenseID, f.User, f.User, f.Client, f.Client, limit(f.Limit))
	if err != nil {
		return nil, wrap("list leases", err)
	}
	return scanLeases(rows, "list leases")
}

func (t *tx) ExpiredLeases(ctx context.Context, now time.Time, n int) ([]domain.Lease, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, `SELECT `+leaseCols+` FROM leases WHERE expires_at <= ? ORDER BY expires_at LIMIT ?`, ms(now), limit(n))
	if err != nil {
		return nil, wrap("expired leases", err)
	}
	return scanLeases(rows, "expired leases")
}

// ---- Hardware locks ----

func (t *tx) LockHW(ctx context.Context, tenant, model, hw, licenseID string) (string, error) {
	if err := t.writable(ctx); err != nil {
		return "", err
	}
	owner, err := t.GetHWLock(ctx, tenant, model, hw)
	if err != nil || owner != "" {
		return owner, err
	}
	_, err = t.exec(ctx, `INSERT INTO hw_locks (tenant, model, hw, license_id) VALUES (?, ?, ?, ?)`, tenant, model, hw, licenseID)
	if err != nil {
		return "", wrap("lock hw", err)
	}
	return licenseID, nil
}

func (t *tx) GetHWLock(ctx context.Context, tenant, model, hw string) (string, error) {
	if err := t.ready(ctx); err != nil {
		return "", err
	}
	var owner string
	err := t.row(ctx, `SELECT license_id FROM hw_locks WHERE tenant = ? AND model = ? AND hw = ?`, tenant, model, hw).Scan(&owner)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return owner, wrap("get hw lock", err)
}

func (t *tx) DeleteHWLocks(ctx context.Context, tenant, hw string) (int, error) {
	if err := t.writable(ctx); err != nil {
		return 0, err
	}
	n, err := t.exec(ctx, `DELETE FROM hw_locks WHERE tenant = ? AND hw = ?`, tenant, hw)
	return int(n), wrap("delete hw locks", err)
}

// ---- Usage ----

const usageCols = `tenant, at, license_id, item, user, client, hw, lease_id, event, code, overage, duration, hw_name`

// Built once: a renewal appends a usage row every time.
var qAppendUsage = `INSERT INTO usage (` + usageCols + `) VALUES (` + placeholders(13) + `)`

func (t *tx) AppendUsage(ctx context.Context, events []domain.UsageEvent) error {
	if err := t.writable(ctx); err != nil {
		return err
	}
	for i := range events {
		e := &events[i]
		_, err := t.exec(ctx, qAppendUsage,
			e.Tenant, ms(e.At), e.LicenseID, e.Item, e.User, e.Client, e.HW, e.LeaseID, e.Event, string(e.Code), e.Overage, int64(e.Duration),
			e.HWName)
		if err != nil {
			return wrap("append usage", err)
		}
	}
	return nil
}

func (t *tx) ListUsage(ctx context.Context, tenant string, from, to time.Time) ([]domain.UsageEvent, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	if !from.IsZero() {
		lo = ms(from)
	}
	if !to.IsZero() {
		hi = ms(to)
	}
	rows, err := t.query(ctx, `SELECT `+usageCols+` FROM usage WHERE tenant = ? AND at >= ? AND at < ? ORDER BY at, seq`, tenant, lo, hi)
	if err != nil {
		return nil, wrap("list usage", err)
	}
	defer rows.Close()
	var out []domain.UsageEvent
	for rows.Next() {
		var e domain.UsageEvent
		var at, dur int64
		var code string
		if err := rows.Scan(&e.Tenant, &at, &e.LicenseID, &e.Item, &e.User, &e.Client, &e.HW, &e.LeaseID, &e.Event,
			&code, &e.Overage, &dur, &e.HWName); err != nil {
			return nil, wrap("list usage", err)
		}
		e.At, e.Code, e.Duration = fromMS(at), domain.ErrorCode(code), time.Duration(dur)
		out = append(out, e)
	}
	return out, wrap("list usage", rows.Err())
}

// ---- Heartbeats ----

func (t *tx) Heartbeat(ctx context.Context, process string, at time.Time) error {
	if err := t.writable(ctx); err != nil {
		return err
	}
	_, err := t.exec(ctx, `INSERT INTO heartbeats (process, at) VALUES (?, ?) ON CONFLICT (process) DO UPDATE SET at = excluded.at`,
		process, ms(at))
	return wrap("heartbeat", err)
}

func (t *tx) LastHeartbeat(ctx context.Context, except string) (time.Time, error) {
	if err := t.ready(ctx); err != nil {
		return time.Time{}, err
	}
	var v sql.NullInt64
	err := t.row(ctx, `SELECT MAX(at) FROM heartbeats WHERE process <> ?`, except).Scan(&v)
	if err != nil || !v.Valid {
		return time.Time{}, wrap("last heartbeat", err)
	}
	return fromMS(v.Int64), nil
}

// ---- Sessions ----

const sessionCols = `tenant, id, kind, user, client, device, scopes, licensed, refreshable, lease_license, lease_root,
	ext_issuer, ext_subject, created_at, last_used_at, expires_at, hard_expiry, no_idle`

func sessionArgs(s *domain.Session) ([]any, error) {
	scopes, err := encScopes(s.Scopes)
	if err != nil {
		return nil, err
	}
	return []any{s.Tenant, s.ID, s.Kind, s.User, s.Client, s.Device, scopes, s.Licensed, s.Refreshable, s.LeaseLicense, s.LeaseRoot,
		s.ExtIssuer, s.ExtSubject, ms(s.CreatedAt), ms(s.LastUsedAt), ms(s.ExpiresAt), ms(s.HardExpiry), s.NoIdle}, nil
}

func scanSession(sc scanner) (domain.Session, error) {
	var s domain.Session
	var scopes sql.NullString
	var created, used, expires, hard int64
	err := sc.Scan(&s.Tenant, &s.ID, &s.Kind, &s.User, &s.Client, &s.Device, &scopes, &s.Licensed, &s.Refreshable, &s.LeaseLicense,
		&s.LeaseRoot, &s.ExtIssuer, &s.ExtSubject, &created, &used, &expires, &hard, &s.NoIdle)
	if err != nil {
		return s, err
	}
	s.CreatedAt, s.LastUsedAt, s.ExpiresAt, s.HardExpiry = fromMS(created), fromMS(used), fromMS(expires), fromMS(hard)
	s.Scopes, err = decScopes(scopes)
	return s, err
}

func scanSessions(rows *sql.Rows, op string) ([]domain.Session, error) {
	defer rows.Close()
	var out []domain.Session
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		out = append(out, s)
	}
	return out, wrap(op, rows.Err())
}

func (t *tx) InsertSession(ctx context.Context, s *domain.Session) error {
	if err := t.writable(ctx); err != nil {
		return err
	}
	args, err := sessionArgs(s)
	if err != nil {
		return wrap("insert session", err)
	}
	n, err := t.exec(ctx, `INSERT INTO sessions (`+sessionCols+`) VALUES (`+placeholders(18)+`) ON CONFLICT (tenant, id) DO NOTHING`, args...)
	if err != nil {
		return wrap("insert session", err)
	}
	if n == 0 {
		return fmt.Errorf("session %s/%s exists: %w", s.Tenant, s.ID, domain.ErrConflict)
	}
	return nil
}

func (t *tx) GetSession(ctx context.Context, tenant, id string) (*domain.Session, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	s, err := scanSession(t.row(ctx, `SELECT `+sessionCols+` FROM sessions WHERE tenant = ? AND id = ?`, tenant, id))
	if err != nil {
		return nil, notFound("get session", err)
	}
	return &s, nil
}

func (t *tx) UpdateSession(ctx context.Context, s *domain.Session) error {
	if err := t.writable(ctx); err != nil {
		return err
	}
	args, err := sessionArgs(s)
	if err != nil {
		return wrap("update session", err)
	}
	n, err := t.exec(ctx, `UPDATE sessions SET kind = ?, user = ?, client = ?, device = ?, scopes = ?, licensed = ?,
		refreshable = ?, lease_license = ?, lease_root = ?, ext_issuer = ?, ext_subject = ?, created_at = ?, last_used_at = ?, expires_at = ?,
		hard_expiry = ?, no_idle = ? WHERE tenant = ? AND id = ?`, append(args[2:], s.Tenant, s.ID)...)
	if err != nil {
		return wrap("update session", err)
	}
	if n == 0 {
		return domain.ErrNotFound
	}
	return nil
}

func (t *tx) DeleteSession(ctx context.Context, tenant, id string) (bool, error) {
	if err := t.writable(ctx); err != nil {
		return false, err
	}
	if _, err := t.exec(ctx, `DELETE FROM tokens WHERE tenant = ? AND session_id = ?`, tenant, id); err != nil {
		return false, wrap("delete session", err)
	}
	if _, err := t.exec(ctx, `DELETE FROM session_leases WHERE tenant = ? AND session_id = ?`, tenant, id); err != nil {
		return false, wrap("delete session", err)
	}
	n, err := t.exec(ctx, `DELETE FROM sessions WHERE tenant = ? AND id = ?`, tenant, id)
	return n > 0, wrap("delete session", err)
}

func (t *tx) PutSessionLease(ctx context.Context, l store.SessionLease) error {
	if err := t.writable(ctx); err != nil {
		return err
	}
	_, err := t.exec(ctx, `INSERT INTO session_leases (tenant, session_id, item, lease_root) VALUES (?, ?, ?, ?)
		ON CONFLICT (tenant, session_id, item) DO UPDATE SET lease_root = excluded.lease_root`,
		l.Tenant, l.SessionID, l.Item, l.LeaseRoot)
	return wrap("put session lease", err)
}

func (t *tx) ListSessionLeases(ctx context.Context, tenant, sessionID string) ([]store.SessionLease, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, `SELECT item, lease_root FROM session_leases WHERE tenant = ? AND session_id = ? ORDER BY item`, tenant, sessionID)
	if err != nil {
		return nil, wrap("list session leases", err)
	}
	defer rows.Close()
	var out []store.SessionLease
	for rows.Next() {
		l := store.SessionLease{Tenant: tenant, SessionID: sessionID}
		if err := rows.Scan(&l.Item, &l.LeaseRoot); err != nil {
			return nil, wrap("list session leases", err)
		}
		out = append(out, l)
	}
	return out, wrap("list session leases", rows.Err())
}

func (t *tx) DeleteSessionLease(ctx context.Context, tenant, sessionID, item string) error {
	if err := t.writable(ctx); err != nil {
		return err
	}
	_, err := t.exec(ctx, `DELETE FROM session_leases WHERE tenant = ? AND session_id = ? AND item = ?`, tenant, sessionID, item)
	return wrap("delete session lease", err)
}

func (t *tx) ListSessions(ctx context.Context, tenant string, f store.LeaseFilter) ([]domain.Session, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, `SELECT `+sessionCols+` FROM sessions WHERE tenant = ?
		AND (? = '' OR lease_license = ?) AND (? = '' OR user = ?) AND (? = '' OR client = ?)
		AND (? = '' OR lease_root = ?)
		ORDER BY created_at, id LIMIT ?`,
		tenant, f.LicenseID, f.LicenseID, f.User, f.User, f.Client, f.Client, f.LeaseRoot, f.LeaseRoot, limit(f.Limit))
	if err != nil {
		return nil, wrap("list sessions", err)
	}
	return scanSessions(rows, "list sessions")
}

func (t *tx) CountSessionsByLease(ctx context.Context, tenant, leaseRoot string) (int, error) {
	if err := t.ready(ctx); err != nil {
		return 0, err
	}
	if leaseRoot == "" {
		return 0, nil // sessions without a seat share nothing
	}
	var n int
	err := t.row(ctx, `SELECT COUNT(*) FROM sessions WHERE tenant = ? AND lease_root = ?`, tenant, leaseRoot).Scan(&n)
	return n, wrap("count sessions by lease", err)
}

func (t *tx) ExpiredSessions(ctx context.Context, now time.Time, n int) ([]domain.Session, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, `SELECT `+sessionCols+` FROM sessions WHERE expires_at <= ? ORDER BY expires_at LIMIT ?`, ms(now), limit(n))
	if err != nil {
		return nil, wrap("expired sessions", err)
	}
	return scanSessions(rows, "expired sessions")
}

// ---- Tokens ----

const tokenCols = `hash, tenant, kind, session_id, family_id, client_id, user, scopes, created_at, expires_at, data`

func scanToken(sc scanner) (domain.Token, error) {
	var tk domain.Token
	var scopes sql.NullString
	var created, expires int64
	err := sc.Scan(&tk.Hash, &tk.Tenant, &tk.Kind, &tk.SessionID, &tk.FamilyID, &tk.ClientID, &tk.User, &scopes,
		&created, &expires, &tk.Data)
	if err != nil {
		return tk, err
	}
	tk.CreatedAt, tk.ExpiresAt = fromMS(created), fromMS(expires)
	tk.Scopes, err = decScopes(scopes)
	return tk, err
}

func (t *tx) InsertToken(ctx context.Context, tk *domain.Token) error {
	if err := t.writable(ctx); err != nil {
		return err
	}
	scopes, err := encScopes(tk.Scopes)
	if err != nil {
		return wrap("insert token", err)
	}
	n, err := t.exec(ctx, `INSERT INTO tokens (`+tokenCols+`) VALUES (`+placeholders(11)+`) ON CONFLICT (hash) DO NOTHING`,
		tk.Hash, tk.Tenant, tk.Kind, tk.SessionID, tk.FamilyID, tk.ClientID, tk.User, scopes, ms(tk.CreatedAt), ms(tk.ExpiresAt), tk.Data)
	if err != nil {
		return wrap("insert token", err)
	}
	if n == 0 {
		return fmt.Errorf("token exists: %w", domain.ErrConflict)
	}
	return nil
}

func (t *tx) GetToken(ctx context.Context, hash string) (*domain.Token, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	tk, err := scanToken(t.row(ctx, `SELECT `+tokenCols+` FROM tokens WHERE hash = ?`, hash))
	if err != nil {
		return nil, notFound("get token", err)
	}
	return &tk, nil
}

func (t *tx) DeleteToken(ctx context.Context, hash string) (bool, error) {
	if err := t.writable(ctx); err != nil {
		return false, err
	}
	n, err := t.exec(ctx, `DELETE FROM tokens WHERE hash = ?`, hash)
	return n > 0, wrap("delete token", err)
}

func (t *tx) DeleteTokens(ctx context.Context, tenant, sessionID, familyID string) (int, error) {
	if err := t.writable(ctx); err != nil {
		return 0, err
	}
	if sessionID == "" {
		// Tokens without a session (login tokens, codes) belong to no session's family.
		return 0, nil
	}
	var n int64
	var err error
	if familyID == "" {
		n, err = t.exec(ctx, `DELETE FROM tokens WHERE tenant = ? AND session_id = ?`, tenant, sessionID)
	} else {
		n, err = t.exec(ctx, `DELETE FROM tokens WHERE tenant = ? AND session_id = ? AND family_id = ?`, tenant, sessionID, familyID)
	}
	return int(n), wrap("delete tokens", err)
}

func (t *tx) ListTokens(ctx context.Context, tenant, kind, user string) ([]domain.Token, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, `SELECT `+tokenCols+` FROM tokens WHERE tenant = ? AND (? = '' OR kind = ?) AND (? = '' OR user = ?)
		ORDER BY created_at, hash`, tenant, kind, kind, user, user)
	if err != nil {
		return nil, wrap("list tokens", err)
	}
	defer rows.Close()
	var out []domain.Token
	for rows.Next() {
		tk, err := scanToken(rows)
		if err != nil {
			return nil, wrap("list tokens", err)
		}
		out = append(out, tk)
	}
	return out, wrap("list tokens", rows.Err())
}

func (t *tx) DeleteExpiredTokens(ctx context.Context, now time.Time, n int) (int, error) {
	if err := t.writable(ctx); err != nil {
		return 0, err
	}
	deleted, err := t.exec(ctx, `DELETE FROM tokens WHERE hash IN
		(SELECT hash FROM tokens WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)`, ms(now), limit(n))
	return int(deleted), wrap("delete expired tokens", err)
}

// Serial implements store.Tx: an Update runs on the single writer, inside its group
// transaction, so nothing else writes between its statements.
func (t *tx) Serial() bool { return t.write }
