package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

const leaseColumns = `tenant, root, id, license_id, item, seat_key, session_key,
	user_name, client, hw, hw_name, process, process_name, version,
	mode, issued_at, renewed_at, expires_at, refresh_at, prev_id, prev_until,
	overage, use_time_reserved, session_id`

func leaseArgs(l *domain.Lease) []any {
	return []any{
		l.Tenant, l.Root, l.ID, l.LicenseID, l.Item, l.SeatKey, l.SessionKey,
		l.User, l.Client, l.HW, l.HWName, l.Process, l.ProcessName, l.Version,
		l.Mode, ts(l.IssuedAt), ts(l.RenewedAt), ts(l.ExpiresAt), ts(l.RefreshAt), l.PrevID, nts(l.PrevUntil),
		l.Overage, int64(l.UseTimeReserved), l.SessionID,
	}
}

func scanLease(r pgx.Row) (domain.Lease, error) {
	var l domain.Lease
	var prevUntil *time.Time
	var reserved int64
	err := r.Scan(&l.Tenant, &l.Root, &l.ID, &l.LicenseID, &l.Item, &l.SeatKey, &l.SessionKey,
		&l.User, &l.Client, &l.HW, &l.HWName, &l.Process, &l.ProcessName, &l.Version,
		&l.Mode, &l.IssuedAt, &l.RenewedAt, &l.ExpiresAt, &l.RefreshAt, &l.PrevID, &prevUntil,
		&l.Overage, &reserved, &l.SessionID)
	l.IssuedAt, l.RenewedAt, l.ExpiresAt, l.RefreshAt = l.IssuedAt.UTC(), l.RenewedAt.UTC(), l.ExpiresAt.UTC(), l.RefreshAt.UTC()
	l.PrevUntil = fromNull(prevUntil)
	l.UseTimeReserved = time.Duration(reserved)
	return l, err
}

func (t *tx) getLease(ctx context.Context, op, sql string, args ...any) (*domain.Lease, error) {
	rows, err := list(ctx, t, op, sql, args, func(r pgx.Rows) (domain.Lease, error) { return scanLease(r) })
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, domain.ErrNotFound
	}
	return &rows[0], nil
}

// InsertLease inserts the lease and its chain entries (its root and its id) in one
// statement; a lease root, session key or chain id that exists already is domain.ErrConflict. DO NOTHING,
// rather than a unique violation, leaves the transaction usable for the caller's next move.
func (t *tx) InsertLease(ctx context.Context, l *domain.Lease) error {
	var leases, chain int
	err := t.get(ctx, "insert lease",
		`WITH ins AS (
			INSERT INTO leases (`+leaseColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)
			ON CONFLICT DO NOTHING
			RETURNING tenant, root, id
		), ch AS (
			INSERT INTO lease_chain (tenant, id, root)
			SELECT tenant, root, root FROM ins UNION SELECT tenant, id, root FROM ins
			ON CONFLICT DO NOTHING
			RETURNING 1
		)
		SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM ch)`,
		leaseArgs(l), &leases, &chain)
	if err != nil {
		return err
	}
	want := 1
	if l.ID != l.Root {
		want = 2
	}
	if leases != 1 || chain != want {
		return fmt.Errorf("postgres: insert lease %s: %w", l.Root, domain.ErrConflict)
	}
	return nil
}

func (t *tx) UpdateLease(ctx context.Context, l *domain.Lease) error {
	var n int
	err := t.get(ctx, "update lease",
		`WITH u AS (
			UPDATE leases SET id = $3, license_id = $4, item = $5, seat_key = $6, session_key = $7,
				user_name = $8, client = $9, hw = $10, hw_name = $11, process = $12, process_name = $13, version = $14,
				mode = $15, issued_at = $16, renewed_at = $17, expires_at = $18, refresh_at = $19, prev_id = $20, prev_until = $21,
				overage = $22, use_time_reserved = $23, session_id = $24
			WHERE tenant = $1 AND root = $2
			RETURNING tenant, id, root
		), ch AS (
			INSERT INTO lease_chain (tenant, id, root) SELECT tenant, id, root FROM u
			ON CONFLICT DO NOTHING
			RETURNING 1
		)
		SELECT count(*) FROM u`,
		leaseArgs(l), &n)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("postgres: update lease %s: %w", l.Root, domain.ErrNotFound)
	}
	return nil
}

func (t *tx) DeleteLease(ctx context.Context, tenant, root string) (bool, error) {
	tag, err := t.exec(ctx, "delete lease",
		`WITH c AS (DELETE FROM lease_chain WHERE tenant = $1 AND root = $2)
		DELETE FROM leases WHERE tenant = $1 AND root = $2`, tenant, root)
	return err == nil && tag.RowsAffected() > 0, err
}

func (t *tx) FindLease(ctx context.Context, tenant, id string) (*domain.Lease, error) {
	return t.getLease(ctx, "find lease",
		`SELECT `+prefixed("l.", leaseColumns)+` FROM lease_chain c
		JOIN leases l ON l.tenant = c.tenant AND l.root = c.root
		WHERE c.tenant = $1 AND c.id = $2`, tenant, id)
}

// GetLeaseBySessionKey returns the session key's lease: a point lookup on the unique index
// (a session key has one lease at most).
func (t *tx) GetLeaseBySessionKey(ctx context.Context, tenant, licenseID, sessionKey string) (*domain.Lease, error) {
	return t.getLease(ctx, "get lease by session key",
		`SELECT `+leaseColumns+` FROM leases WHERE tenant = $1 AND license_id = $2 AND session_key = $3`,
		tenant, licenseID, sessionKey)
}

// LockLease row-locks the session key's lease: a renewal holding it needs no license lock,
// and it makes every later GetSeat of the transaction lock the seat too (see GetSeat).
func (t *tx) LockLease(ctx context.Context, tenant, licenseID, sessionKey string) (*domain.Lease, error) {
	t.locked = true
	return t.getLease(ctx, "lock lease",
		`SELECT `+leaseColumns+` FROM leases WHERE tenant = $1 AND license_id = $2 AND session_key = $3 FOR UPDATE`,
		tenant, licenseID, sessionKey)
}

func (t *tx) CountLiveLeasesOnSeat(ctx context.Context, tenant, licenseID, seatKey string, now time.Time) (int, error) {
	var n int
	err := t.get(ctx, "count live leases on seat",
		`SELECT count(*) FROM leases WHERE tenant = $1 AND license_id = $2 AND seat_key = $3 AND expires_at > $4`,
		[]any{tenant, licenseID, seatKey, ts(now)}, &n)
	return n, err
}

func (t *tx) CountLiveLeasesByHolder(ctx context.Context, tenant, licenseID, user, client string, now time.Time) (int, error) {
	q := `SELECT count(*) FROM leases WHERE tenant = $1 AND license_id = $2 AND expires_at > $3`
	args := []any{tenant, licenseID, ts(now)}
	if user != "" {
		args = append(args, user)
		q += fmt.Sprintf(` AND user_name = $%d`, len(args))
	}
	if client != "" {
		args = append(args, client)
		q += fmt.Sprintf(` AND client = $%d`, len(args))
	}
	var n int
	err := t.get(ctx, "count live leases by holder", q, args, &n)
	return n, err
}

func (t *tx) LatestLiveExpiryOnSeat(ctx context.Context, tenant, licenseID, seatKey, exceptRoot string, now time.Time) (time.Time, error) {
	var at *time.Time
	err := t.get(ctx, "latest live expiry on seat",
		`SELECT max(expires_at) FROM leases
		WHERE tenant = $1 AND license_id = $2 AND seat_key = $3 AND root <> $4 AND expires_at > $5`,
		[]any{tenant, licenseID, seatKey, exceptRoot, ts(now)}, &at)
	return fromNull(at), err
}

// ListLeases lists the tenant's live leases, oldest first.
func (t *tx) ListLeases(ctx context.Context, tenant string, f store.LeaseFilter, now time.Time) ([]domain.Lease, error) {
	q := `SELECT ` + leaseColumns + ` FROM leases WHERE tenant = $1 AND expires_at > $2`
	args := []any{tenant, ts(now)}
	q, args = filter(q, args, map[string]string{"license_id": f.LicenseID, "user_name": f.User, "client": f.Client})
	q += ` ORDER BY issued_at, root`
	q, args = limitTo(q, args, f.Limit)
	return list(ctx, t, "list leases", q, args, func(r pgx.Rows) (domain.Lease, error) { return scanLease(r) })
}

func (t *tx) ExpiredLeases(ctx context.Context, now time.Time, n int) ([]domain.Lease, error) {
	q, args := limitTo(`SELECT `+leaseColumns+` FROM leases WHERE expires_at <= $1 ORDER BY expires_at, tenant, root`,
		[]any{ts(now)}, n)
	return list(ctx, t, "expired leases", q, args, func(r pgx.Rows) (domain.Lease, error) { return scanLease(r) })
}

// filter appends an equality condition for each non-empty value, in a fixed column order so
// the statement text (and its cached plan) depends only on which filters are set.
func filter(q string, args []any, by map[string]string) (string, []any) {
	for _, col := range []string{"license_id", "lease_license", "user_name", "client", "kind"} {
		v, ok := by[col]
		if !ok || v == "" {
			continue
		}
		args = append(args, v)
		q += fmt.Sprintf(` AND %s = $%d`, col, len(args))
	}
	return q, args
}

// limitTo appends LIMIT n when n > 0 (0 means no limit).
func limitTo(q string, args []any, n int) (string, []any) {
	if n <= 0 {
		return q, args
	}
	args = append(args, n)
	return q + fmt.Sprintf(` LIMIT $%d`, len(args)), args
}

// prefixed qualifies each column of a column list with p.
func prefixed(p, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}
