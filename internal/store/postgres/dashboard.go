package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

func (t *tx) InsertUISession(ctx context.Context, s *store.UISession) error {
	tag, err := t.exec(ctx, "insert ui session",
		`INSERT INTO ui_sessions (hash, created_at, expires_at) VALUES ($1, $2, $3) ON CONFLICT (hash) DO NOTHING`,
		s.Hash, ts(s.CreatedAt), ts(s.ExpiresAt))
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: insert ui session: %w", domain.ErrConflict)
	}
	return nil
}

func (t *tx) GetUISession(ctx context.Context, hash string) (*store.UISession, error) {
	s := store.UISession{Hash: hash}
	err := t.get(ctx, "get ui session", `SELECT created_at, expires_at FROM ui_sessions WHERE hash = $1`,
		[]any{hash}, &s.CreatedAt, &s.ExpiresAt)
	if err != nil {
		return nil, err
	}
	s.CreatedAt, s.ExpiresAt = s.CreatedAt.UTC(), s.ExpiresAt.UTC()
	return &s, nil
}

func (t *tx) DeleteUISession(ctx context.Context, hash string) (bool, error) {
	tag, err := t.exec(ctx, "delete ui session", `DELETE FROM ui_sessions WHERE hash = $1`, hash)
	return err == nil && tag.RowsAffected() > 0, err
}

func (t *tx) DeleteExpiredUISessions(ctx context.Context, now time.Time) (int, error) {
	tag, err := t.exec(ctx, "delete expired ui sessions", `DELETE FROM ui_sessions WHERE expires_at <= $1`, ts(now))
	return int(tag.RowsAffected()), err
}

func (t *tx) ListHeldSeats(ctx context.Context, tenant, licenseID string, now time.Time, after string, n int) ([]domain.Seat, error) {
	// The primary key walks the seats in key order from after: a page costs its own rows
	// plus the expired ones it skips, never the seats before it.
	q, args := limitTo(`SELECT `+seatColumns+` FROM seats WHERE tenant = $1 AND license_id = $2 AND seat_key > $3
		AND held_until > $4 ORDER BY seat_key`, []any{tenant, licenseID, after, ts(now)}, n)
	return list(ctx, t, "list held seats", q, args, func(r pgx.Rows) (domain.Seat, error) { return scanSeat(r) })
}

func (t *tx) CountLingeringSeats(ctx context.Context, tenant, licenseID string, now time.Time) (int, error) {
	var n int
	// A lingering seat is one no live lease holds (a release, the end of a checkout, the
	// restart grace); the flag says so. The partial index seats_lingering holds only those.
	err := t.get(ctx, "count lingering seats",
		`SELECT count(*) FROM seats WHERE tenant = $1 AND license_id = $2 AND held_until > $3 AND lingering`,
		[]any{tenant, licenseID, ts(now)}, &n)
	return n, err
}

func (t *tx) ListLeasesOnSeats(ctx context.Context, tenant, licenseID string, seatKeys []string, now time.Time) ([]domain.Lease, error) {
	if len(seatKeys) == 0 {
		return nil, nil
	}
	// The keys' range bounds the index scan whatever the planner guesses of = ANY($3) on a
	// table without fresh statistics (it filtered a whole license's leases by the array).
	lo, hi := slices.Min(seatKeys), slices.Max(seatKeys)
	return list(ctx, t, "list leases on seats",
		`SELECT `+leaseColumns+` FROM leases WHERE tenant = $1 AND license_id = $2 AND seat_key >= $3 AND seat_key <= $4
		AND seat_key = ANY($5) AND expires_at > $6 ORDER BY seat_key, root`,
		[]any{tenant, licenseID, lo, hi, seatKeys, ts(now)}, func(r pgx.Rows) (domain.Lease, error) { return scanLease(r) })
}

func (t *tx) AddUsageHours(ctx context.Context, rows []store.UsageHour) error {
	if len(rows) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, u := range rows {
		b.Queue(`INSERT INTO usage_hours (tenant, hour, license_id, peak_seats, denials) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (tenant, hour, license_id) DO UPDATE
			SET peak_seats = greatest(usage_hours.peak_seats, excluded.peak_seats),
				denials = usage_hours.denials + excluded.denials`,
			u.Tenant, ts(u.Hour.Truncate(time.Hour)), u.LicenseID, u.PeakSeats, u.Denials)
	}
	n := b.Len()
	return t.batch(ctx, "add usage hours", b, func(br pgx.BatchResults) error {
		for range n {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		return nil
	})
}

func (t *tx) ListUsageHours(ctx context.Context, tenant string, from, to time.Time) ([]store.UsageHour, error) {
	return list(ctx, t, "list usage hours",
		`SELECT hour, license_id, peak_seats, denials FROM usage_hours
		WHERE tenant = $1 AND hour >= $2 AND hour < $3 ORDER BY hour, license_id`,
		[]any{tenant, ts(from), ts(to)}, func(r pgx.Rows) (store.UsageHour, error) {
			u := store.UsageHour{Tenant: tenant}
			var denials int64
			err := r.Scan(&u.Hour, &u.LicenseID, &u.PeakSeats, &denials)
			u.Hour, u.Denials = u.Hour.UTC(), int(denials)
			return u, err
		})
}

func (t *tx) PruneUsageHours(ctx context.Context, before time.Time) (int, error) {
	tag, err := t.exec(ctx, "prune usage hours", `DELETE FROM usage_hours WHERE hour < $1`, ts(before))
	return int(tag.RowsAffected()), err
}
