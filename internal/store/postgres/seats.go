package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leasehold/leasehold/internal/domain"
)

// License state.

const insertLicenseState = `INSERT INTO license_state (tenant, license_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`

// LockLicense creates the state row when missing, then row-locks it until the transaction
// ends. Both statements share one round trip; each gets its own snapshot (READ COMMITTED),
// so the SELECT sees a row that a concurrent transaction inserted and committed while the
// INSERT waited for it.
//
// When the transaction looked for a lease of this license by session key before (t.hint:
// a decision that found no live lease to renew), the same round trip also runs the
// LockLease and the locking GetSeat that a grant or refusal runs next, after the license
// lock, in the order those calls take their locks (license, lease, seat). Their answers
// (pre) serve those calls, once, unless a statement that may write runs first. That saves
// two round trips while the license lock is held.
//
// A license this transaction has locked already (an earlier Update of its batch) is
// answered from what it read and saved since (held): no one else can have changed the row.
func (t *tx) LockLicense(ctx context.Context, tenant, licenseID string) (*domain.LicenseState, error) {
	if st, ok := t.held[tenant+"\x00"+licenseID]; ok && !t.readOnly {
		t.locked = true
		if k := t.hint; k != nil && k.tenant == tenant && k.licenseID == licenseID {
			if _, err := t.readAhead(ctx, *k); err != nil {
				return nil, err
			}
			t.pre.leaseUsed = false
		}
		return &st, nil
	}
	st := &domain.LicenseState{Tenant: tenant, LicenseID: licenseID}
	var useTime int64
	b := &pgx.Batch{}
	b.Queue(insertLicenseState, tenant, licenseID)
	b.Queue(`SELECT seats_held, use_count, use_time FROM license_state WHERE tenant = $1 AND license_id = $2 FOR UPDATE`, tenant, licenseID)
	k := t.hint
	if k == nil || k.tenant != tenant || k.licenseID != licenseID || t.readOnly {
		k = nil
	} else {
		b.Queue(lockLease, tenant, licenseID, k.sessionKey, k.seatKey)
		b.Queue(lockSeat, tenant, licenseID, k.seatKey)
	}
	var pre *prefetched
	err := t.batch(ctx, "lock license", b, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		if err := br.QueryRow().Scan(&st.SeatsHeld, &st.UseCount, &useTime); err != nil {
			return err
		}
		if k == nil {
			return nil
		}
		pre = &prefetched{key: *k}
		return pre.scan(br)
	})
	if err != nil {
		return nil, err
	}
	t.locked = true
	if k != nil {
		t.hint, t.pre = nil, pre
		if pre.lease != nil {
			t.lockedLeases = append(t.lockedLeases, pre.lease.Tenant+"\x00"+pre.lease.Root)
		}
	}
	st.UseTime = time.Duration(useTime)
	if !t.readOnly {
		t.hold(*st)
	}
	return st, nil
}

// hold records st as the state of a license this transaction has locked (see LockLicense).
func (t *tx) hold(st domain.LicenseState) {
	if t.held == nil {
		t.held = map[string]domain.LicenseState{}
	}
	t.held[st.Tenant+"\x00"+st.LicenseID] = st
}

// holds reports whether this transaction has locked the license's state row.
func (t *tx) holds(tenant, licenseID string) bool {
	_, ok := t.held[tenant+"\x00"+licenseID]
	return ok
}

// leaseKey names a lease by its session key.
type leaseKey struct{ tenant, licenseID, seatKey, sessionKey string }

// prefetched is what LockLicense locked and read ahead for key: the lease (nil: none) and
// its seat (nil: none), each taken by the first LockLease or GetSeat that asks for it.
type prefetched struct {
	key                 leaseKey
	lease               *domain.Lease
	seat                *domain.Seat
	leaseUsed, seatUsed bool
}

// scan reads the lease and the seat of a read ahead, in that order; none is nil.
func (p *prefetched) scan(br pgx.BatchResults) error {
	l, err := scanLease(br.QueryRow())
	switch err = notFound(err); err {
	case nil:
		p.lease = &l
	case domain.ErrNotFound:
	default:
		return err
	}
	s, err := scanSeat(br.QueryRow())
	switch err = notFound(err); err {
	case nil:
		p.seat = &s
	case domain.ErrNotFound:
	default:
		return err
	}
	return nil
}

// scanJoined reads a lease and its seat from one row of lockLiveLease, where the seat's
// columns are NULL when it has none; no row is no lease.
func (p *prefetched) scanJoined(r pgx.Row) error {
	var ls leaseScan
	var tenant, licenseID, key, user *string
	var heldUntil *time.Time
	var lingering, overage *bool
	err := r.Scan(append(ls.dest(), &tenant, &licenseID, &key, &user, &heldUntil, &lingering, &overage)...)
	if err = notFound(err); err == domain.ErrNotFound {
		return nil
	} else if err != nil {
		return err
	}
	l := ls.lease()
	p.lease = &l
	if key != nil {
		p.seat = &domain.Seat{Tenant: *tenant, LicenseID: *licenseID, Key: *key, User: *user,
			HeldUntil: heldUntil.UTC(), Lingering: *lingering, Overage: *overage}
	}
	return nil
}

const lockSeat = `SELECT ` + seatColumns + ` FROM seats WHERE tenant = $1 AND license_id = $2 AND seat_key = $3 FOR UPDATE`

func (t *tx) SaveLicenseState(ctx context.Context, st *domain.LicenseState) error {
	err := t.write(ctx, "save license state", saveLicenseState, st.Tenant, st.LicenseID, st.SeatsHeld, st.UseCount, int64(st.UseTime))
	if err == nil && t.holds(st.Tenant, st.LicenseID) {
		t.hold(*st)
	}
	return err
}

const saveLicenseState = `INSERT INTO license_state (tenant, license_id, seats_held, use_count, use_time) VALUES ($1, $2, $3, $4, $5)
	ON CONFLICT (tenant, license_id) DO UPDATE
	SET seats_held = excluded.seats_held, use_count = excluded.use_count, use_time = excluded.use_time`

func (t *tx) GetLicenseState(ctx context.Context, tenant, licenseID string) (*domain.LicenseState, error) {
	st := &domain.LicenseState{Tenant: tenant, LicenseID: licenseID}
	var useTime int64
	err := t.get(ctx, "get license state",
		`SELECT seats_held, use_count, use_time FROM license_state WHERE tenant = $1 AND license_id = $2`,
		[]any{tenant, licenseID}, &st.SeatsHeld, &st.UseCount, &useTime)
	if err != nil && err != domain.ErrNotFound {
		return nil, err
	}
	st.UseTime = time.Duration(useTime)
	return st, nil
}

// Seats.

const seatColumns = `tenant, license_id, seat_key, user_name, held_until, lingering, overage`

func scanSeat(r pgx.Row) (domain.Seat, error) {
	var s domain.Seat
	err := r.Scan(&s.Tenant, &s.LicenseID, &s.Key, &s.User, &s.HeldUntil, &s.Lingering, &s.Overage)
	s.HeldUntil = s.HeldUntil.UTC()
	return s, err
}

// GetSeat row-locks the seat once the transaction holds a license or lease lock: a renewal
// under its lease lock (no license lock) extends the seat, and a decision under the license
// lock that computes the seat's hold from the expiries of its other leases (a release, a
// grant on a held seat) must not read those before such a renewal committed and then write
// over it. The seat lock makes them take turns. Before any lock (a login looking at a seat
// it may reclaim) the read stays plain, so no lock is ever taken before the license's.
func (t *tx) GetSeat(ctx context.Context, tenant, licenseID, key string) (*domain.Seat, error) {
	if p := t.pre; p != nil && !p.seatUsed && p.key.tenant == tenant && p.key.licenseID == licenseID && p.key.seatKey == key {
		p.seatUsed = true
		if p.seat == nil {
			return nil, domain.ErrNotFound
		}
		s := *p.seat
		return &s, nil
	}
	var s domain.Seat
	q := `SELECT ` + seatColumns + ` FROM seats WHERE tenant = $1 AND license_id = $2 AND seat_key = $3`
	if t.locked && !t.readOnly {
		q = lockSeat
	}
	err := t.get(ctx, "get seat", q,
		[]any{tenant, licenseID, key},
		&s.Tenant, &s.LicenseID, &s.Key, &s.User, &s.HeldUntil, &s.Lingering, &s.Overage)
	if err != nil {
		return nil, err
	}
	s.HeldUntil = s.HeldUntil.UTC()
	return &s, nil
}

func (t *tx) PutSeat(ctx context.Context, s *domain.Seat) error {
	return t.write(ctx, "put seat",
		`INSERT INTO seats (`+seatColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (tenant, license_id, seat_key) DO UPDATE
		SET user_name = excluded.user_name, held_until = excluded.held_until,
			lingering = excluded.lingering, overage = excluded.overage`,
		s.Tenant, s.LicenseID, s.Key, s.User, ts(s.HeldUntil), s.Lingering, s.Overage)
}

// ExtendSeat implements store.Tx. The UPDATE row-locks the seat as GetSeat would; a
// concurrent writer's extension is waited for and then re-read (READ COMMITTED), so the
// seat keeps the later of the two.
//
// After LockLease read the seat ahead (pre), the seat has been row-locked by this
// transaction since that read, so the UPDATE's outcome is known without running it: it is
// held back like a write that answers nothing but success (a renewal: one round trip fewer).
func (t *tx) ExtendSeat(ctx context.Context, tenant, licenseID, key string, until time.Time) (bool, error) {
	args := []any{tenant, licenseID, key, ts(until)}
	if p := t.pre; p != nil && !p.seatUsed && p.key.tenant == tenant && p.key.licenseID == licenseID && p.key.seatKey == key {
		if p.seat == nil || !p.seat.HeldUntil.Before(until) && !p.seat.Lingering {
			return false, nil
		}
		return true, t.write(ctx, "extend seat", extendSeat, args...)
	}
	tag, err := t.exec(ctx, "extend seat", extendSeat, args...)
	return err == nil && tag.RowsAffected() > 0, err
}

const extendSeat = `UPDATE seats SET held_until = GREATEST(held_until, $4), lingering = false
	WHERE tenant = $1 AND license_id = $2 AND seat_key = $3 AND (held_until < $4 OR lingering)`

func (t *tx) DeleteSeat(ctx context.Context, tenant, licenseID, key string) (bool, error) {
	tag, err := t.exec(ctx, "delete seat",
		`DELETE FROM seats WHERE tenant = $1 AND license_id = $2 AND seat_key = $3`, tenant, licenseID, key)
	return err == nil && tag.RowsAffected() > 0, err
}

// ReapSeats implements store.Tx. A reap that finds nothing to delete changed nothing, so it
// leaves the transaction's commit lazy (see tx.wrote): a refusal on a full license, which
// reaps before it refuses, then holds the license lock for no disk flush.
func (t *tx) ReapSeats(ctx context.Context, tenant, licenseID string, now time.Time) (int, error) {
	wrote := t.wrote
	tag, err := t.exec(ctx, "reap seats",
		`DELETE FROM seats WHERE tenant = $1 AND license_id = $2 AND held_until <= $3`, tenant, licenseID, ts(now))
	if err == nil && tag.RowsAffected() == 0 {
		t.wrote = wrote
	}
	return int(tag.RowsAffected()), err
}

func (t *tx) CountLiveSeats(ctx context.Context, tenant, licenseID string, now time.Time) (int, error) {
	var n int
	err := t.get(ctx, "count live seats",
		`SELECT count(*) FROM seats WHERE tenant = $1 AND license_id = $2 AND held_until > $3`,
		[]any{tenant, licenseID, ts(now)}, &n)
	return n, err
}

func (t *tx) EarliestSeatRelease(ctx context.Context, tenant, licenseID string, now time.Time) (time.Time, error) {
	var at *time.Time
	err := t.get(ctx, "earliest seat release",
		`SELECT min(held_until) FROM seats WHERE tenant = $1 AND license_id = $2 AND held_until > $3`,
		[]any{tenant, licenseID, ts(now)}, &at)
	return fromNull(at), err
}

func (t *tx) CountExpiredSeats(ctx context.Context, tenant, licenseID string, now time.Time) (int, error) {
	var n int
	err := t.get(ctx, "count expired seats",
		`SELECT count(*) FROM seats WHERE tenant = $1 AND license_id = $2 AND held_until <= $3`,
		[]any{tenant, licenseID, ts(now)}, &n)
	return n, err
}

func (t *tx) UsersHoldingSeats(ctx context.Context, tenant, licenseID string, users []string, now time.Time) (map[string]bool, error) {
	out := map[string]bool{}
	if len(users) == 0 {
		return out, nil
	}
	names, err := list(ctx, t, "users holding seats",
		`SELECT DISTINCT user_name FROM seats
		WHERE tenant = $1 AND license_id = $2 AND user_name = ANY($3) AND held_until > $4`,
		[]any{tenant, licenseID, users, ts(now)},
		func(r pgx.Rows) (string, error) {
			var s string
			return s, r.Scan(&s)
		})
	for _, n := range names {
		out[n] = true
	}
	return out, err
}

func (t *tx) LicensesWithExpiredSeats(ctx context.Context, now time.Time, n int) ([][2]string, error) {
	q, args := limitTo(`SELECT DISTINCT tenant, license_id FROM seats WHERE held_until <= $1 ORDER BY tenant, license_id`,
		[]any{ts(now)}, n)
	return list(ctx, t, "licenses with expired seats", q, args,
		func(r pgx.Rows) ([2]string, error) {
			var p [2]string
			return p, r.Scan(&p[0], &p[1])
		})
}

func (t *tx) SeatsExpiredBetween(ctx context.Context, from, to time.Time, n int) ([]domain.Seat, error) {
	q, args := limitTo(`SELECT `+seatColumns+` FROM seats WHERE held_until > $1 AND held_until <= $2
		ORDER BY held_until, tenant, license_id, seat_key`, []any{ts(from), ts(to)}, n)
	return list(ctx, t, "seats expired between", q, args,
		func(r pgx.Rows) (domain.Seat, error) { return scanSeat(r) })
}

// Hardware locks.

// LockHW inserts the lock unless one exists, then reads whichever won; two statements (one
// round trip) because a single statement's snapshot would not see a lock that a concurrent
// transaction committed while the INSERT waited on it.
func (t *tx) LockHW(ctx context.Context, tenant, model, hw, licenseID string) (string, error) {
	var owner string
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO hw_locks (tenant, model, hw, license_id) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
		tenant, model, hw, licenseID)
	b.Queue(`SELECT license_id FROM hw_locks WHERE tenant = $1 AND model = $2 AND hw = $3`, tenant, model, hw)
	err := t.batch(ctx, "lock hw", b, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		return br.QueryRow().Scan(&owner)
	})
	return owner, err
}

func (t *tx) GetHWLock(ctx context.Context, tenant, model, hw string) (string, error) {
	var owner string
	err := t.get(ctx, "get hw lock",
		`SELECT license_id FROM hw_locks WHERE tenant = $1 AND model = $2 AND hw = $3`,
		[]any{tenant, model, hw}, &owner)
	if err == domain.ErrNotFound {
		return "", nil
	}
	return owner, err
}

func (t *tx) DeleteHWLocks(ctx context.Context, tenant, hw string) (int, error) {
	tag, err := t.exec(ctx, "delete hw locks", `DELETE FROM hw_locks WHERE tenant = $1 AND hw = $2`, tenant, hw)
	return int(tag.RowsAffected()), err
}

// Usage history.

func (t *tx) AppendUsage(ctx context.Context, events []domain.UsageEvent) error {
	for _, e := range events {
		err := t.write(ctx, "append usage",
			`INSERT INTO usage_events (tenant, at, license_id, item, user_name, client, hw, lease_id, event, code, overage, duration, hw_name)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			e.Tenant, ts(e.At), e.LicenseID, e.Item, e.User, e.Client, e.HW, e.LeaseID, e.Event, string(e.Code), e.Overage, int64(e.Duration),
			e.HWName)
		if err != nil {
			return err
		}
	}
	return nil
}

// ListUsage lists the events in [from, to); a zero to has no upper bound.
func (t *tx) ListUsage(ctx context.Context, tenant string, from, to time.Time) ([]domain.UsageEvent, error) {
	if to.IsZero() {
		to = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	}
	return list(ctx, t, "list usage",
		`SELECT at, license_id, item, user_name, client, hw, lease_id, event, code, overage, duration, hw_name
		FROM usage_events WHERE tenant = $1 AND at >= $2 AND at < $3 ORDER BY at, seq`,
		[]any{tenant, ts(from), ts(to)},
		func(r pgx.Rows) (domain.UsageEvent, error) {
			e := domain.UsageEvent{Tenant: tenant}
			var code string
			var d int64
			err := r.Scan(&e.At, &e.LicenseID, &e.Item, &e.User, &e.Client, &e.HW, &e.LeaseID, &e.Event, &code, &e.Overage, &d, &e.HWName)
			e.At, e.Code, e.Duration = e.At.UTC(), domain.ErrorCode(code), time.Duration(d)
			return e, err
		})
}

// Liveness of server processes.

func (t *tx) Heartbeat(ctx context.Context, process string, at time.Time) error {
	return t.write(ctx, "heartbeat",
		`INSERT INTO heartbeats (process, at) VALUES ($1, $2) ON CONFLICT (process) DO UPDATE SET at = excluded.at`,
		process, ts(at))
}

func (t *tx) LastHeartbeat(ctx context.Context, except string) (time.Time, error) {
	var at *time.Time
	err := t.get(ctx, "last heartbeat", `SELECT max(at) FROM heartbeats WHERE process <> $1`, []any{except}, &at)
	return fromNull(at), err
}

// LockKey implements store.Tx with a transaction-scoped advisory lock. The lock is held
// back like a write and travels with the transaction's next statement, which runs after
// it: every read of the Update that took it is still made under it, and a client's token
// grant (lock, then its session) costs one round trip instead of two.
func (t *tx) LockKey(ctx context.Context, key string) error {
	return t.write(ctx, "lock key", lockKey, key)
}

const lockKey = `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`
