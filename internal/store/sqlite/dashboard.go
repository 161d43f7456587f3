package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

func (t *tx) InsertUISession(ctx context.Context, s *store.UISession) error {
	if err := t.writable(ctx); err != nil {
		return err
	}
	n, err := t.exec(ctx, `INSERT INTO ui_sessions (hash, created_at, expires_at) VALUES (?, ?, ?) ON CONFLICT (hash) DO NOTHING`,
		s.Hash, ms(s.CreatedAt), ms(s.ExpiresAt))
	if err != nil {
		return wrap("insert ui session", err)
	}
	if n == 0 {
		return fmt.Errorf("ui session exists: %w", domain.ErrConflict)
	}
	return nil
}

func (t *tx) GetUISession(ctx context.Context, hash string) (*store.UISession, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	var created, expires int64
	err := t.row(ctx, `SELECT created_at, expires_at FROM ui_sessions WHERE hash = ?`, hash).Scan(&created, &expires)
	if err != nil {
		return nil, notFound("get ui session", err)
	}
	return &store.UISession{Hash: hash, CreatedAt: fromMS(created), ExpiresAt: fromMS(expires)}, nil
}

func (t *tx) DeleteUISession(ctx context.Context, hash string) (bool, error) {
	if err := t.writable(ctx); err != nil {
		return false, err
	}
	n, err := t.exec(ctx, `DELETE FROM ui_sessions WHERE hash = ?`, hash)
	return n > 0, wrap("delete ui session", err)
}

func (t *tx) DeleteExpiredUISessions(ctx context.Context, now time.Time) (int, error) {
	if err := t.writable(ctx); err != nil {
		return 0, err
	}
	n, err := t.exec(ctx, `DELETE FROM ui_sessions WHERE expires_at <= ?`, ms(now))
	return int(n), wrap("delete expired ui sessions", err)
}

func (t *tx) ListHeldSeats(ctx context.Context, tenant, licenseID string, now time.Time, after string, n int) ([]domain.Seat, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	// The primary key walks the seats in key order from after: a page costs its own rows
	// plus the expired ones it skips, never the seats before it.
	rows, err := t.query(ctx, `SELECT `+seatCols+` FROM seats WHERE tenant = ? AND license_id = ? AND seat_key > ?
		AND held_until > ? ORDER BY seat_key LIMIT ?`, tenant, licenseID, after, ms(now), limit(n))
	if err != nil {
		return nil, wrap("list held seats", err)
	}
	defer rows.Close()
	var out []domain.Seat
	for rows.Next() {
		s, err := scanSeat(rows)
		if err != nil {
			return nil, wrap("list held seats", err)
		}
		out = append(out, s)
	}
	return out, wrap("list held seats", rows.Err())
}

func (t *tx) CountLingeringSeats(ctx context.Context, tenant, licenseID string, now time.Time) (int, error) {
	if err := t.ready(ctx); err != nil {
		return 0, err
	}
	var n int
	// A lingering seat is one no live lease holds (a release, the end of a checkout, the
	// restart grace); the flag says so. The partial index seats_lingering holds only those.
	err := t.row(ctx, `SELECT COUNT(*) FROM seats WHERE tenant = ? AND license_id = ? AND held_until > ? AND lingering = 1`,
		tenant, licenseID, ms(now)).Scan(&n)
	return n, wrap("count lingering seats", err)
}

func (t *tx) ListLeasesOnSeats(ctx context.Context, tenant, licenseID string, seatKeys []string, now time.Time) ([]domain.Lease, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	if len(seatKeys) == 0 {
		return nil, nil
	}
	// One statement whatever the number of keys (a JSON array), so the statement cache
	// holds one entry; each key is a prefix seek of leases_seat_session.
	keys, err := json.Marshal(seatKeys)
	if err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, `SELECT `+leaseCols+` FROM leases WHERE tenant = ? AND license_id = ?
		AND seat_key IN (SELECT value FROM json_each(?)) AND expires_at > ? ORDER BY seat_key, root`,
		tenant, licenseID, string(keys), ms(now))
	if err != nil {
		return nil, wrap("list leases on seats", err)
	}
	return scanLeases(rows, "list leases on seats")
}

func (t *tx) AddUsageHours(ctx context.Context, list []store.UsageHour) error {
	if err := t.writable(ctx); err != nil {
		return err
	}
	for _, u := range list {
		_, err := t.exec(ctx, `INSERT INTO usage_hours (tenant, hour, license_id, peak_seats, denials) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (tenant, hour, license_id) DO UPDATE SET peak_seats = max(peak_seats, excluded.peak_seats),
			denials = denials + excluded.denials`,
			u.Tenant, ms(u.Hour.Truncate(time.Hour)), u.LicenseID, u.PeakSeats, u.Denials)
		if err != nil {
			return wrap("add usage hours", err)
		}
	}
	return nil
}

func (t *tx) ListUsageHours(ctx context.Context, tenant string, from, to time.Time) ([]store.UsageHour, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, `SELECT hour, license_id, peak_seats, denials FROM usage_hours
		WHERE tenant = ? AND hour >= ? AND hour < ? ORDER BY hour, license_id`, tenant, ms(from), ms(to))
	if err != nil {
		return nil, wrap("list usage hours", err)
	}
	defer rows.Close()
	var out []store.UsageHour
	for rows.Next() {
		u := store.UsageHour{Tenant: tenant}
		var hour int64
		if err := rows.Scan(&hour, &u.LicenseID, &u.PeakSeats, &u.Denials); err != nil {
			return nil, wrap("list usage hours", err)
		}
		u.Hour = fromMS(hour)
		out = append(out, u)
	}
	return out, wrap("list usage hours", rows.Err())
}

func (t *tx) PruneUsageHours(ctx context.Context, before time.Time) (int, error) {
	if err := t.writable(ctx); err != nil {
		return 0, err
	}
	n, err := t.exec(ctx, `DELETE FROM usage_hours WHERE hour < ?`, ms(before))
	return int(n), wrap("prune usage hours", err)
}
