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

// LockLiveLease needs no lock on SQLite either.
func (t *tx) LockLiveLease(ctx context.Context, tenant, licenseID, seatKey, sessionKey string, now time.Time) (*domain.Lease, error) {
	l, err := t.LockLease(ctx, tenant, licenseID, seatKey, sessionKey)
	if err == nil && !l.Live(now) {
		return nil, domain.ErrNotFound
	}
	return l, err
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
