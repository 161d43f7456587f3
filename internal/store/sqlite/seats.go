package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"math"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
)

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
