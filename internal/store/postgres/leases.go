package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

const leaseColumns = `tenant, root, id, license_id, item, seat_key, session_key,
	user_name, client, hw, hw_name, process, process_name, version,
	mode, issued_at, renewed_at, expires_at, refresh_at, prev_id, prev_until,
	overage, use_time_reserved, session_id, chain_seq, chain_key`

func leaseArgs(l *domain.Lease) []any {
	return []any{
		l.Tenant, l.Root, l.ID, l.LicenseID, l.Item, l.SeatKey, l.SessionKey,
		l.User, l.Client, l.HW, l.HWName, l.Process, l.ProcessName, l.Version,
		l.Mode, ts(l.IssuedAt), ts(l.RenewedAt), ts(l.ExpiresAt), ts(l.RefreshAt), l.PrevID, nts(l.PrevUntil),
		l.Overage, int64(l.UseTimeReserved), l.SessionID, l.ChainSeq, chainKey(l),
	}
}

// chainKey is never NULL, which a nil slice would bind as.
func chainKey(l *domain.Lease) []byte {
	if l.ChainKey == nil {
		return []byte{}
	}
	return l.ChainKey
}

// needsChainRow reports whether FindLease needs a lease_chain row to resolve l.ID: a root
// resolves by the lease's key and a derived id by itself (domain/chainid.go).
func needsChainRow(l *domain.Lease) bool { return l.ID != l.Root && !l.DerivedChainID(l.ID) }

func scanLease(r pgx.Row) (domain.Lease, error) {
	var ls leaseScan
	err := r.Scan(ls.dest()...)
	return ls.lease(), err
}

// leaseScan receives a lease's columns (leaseColumns, in order).
type leaseScan struct {
	l         domain.Lease
	prevUntil *time.Time
	reserved  int64
}

func (ls *leaseScan) dest() []any {
	l := &ls.l
	return []any{&l.Tenant, &l.Root, &l.ID, &l.LicenseID, &l.Item, &l.SeatKey, &l.SessionKey,
		&l.User, &l.Client, &l.HW, &l.HWName, &l.Process, &l.ProcessName, &l.Version,
		&l.Mode, &l.IssuedAt, &l.RenewedAt, &l.ExpiresAt, &l.RefreshAt, &l.PrevID, &ls.prevUntil,
		&l.Overage, &ls.reserved, &l.SessionID, &l.ChainSeq, &l.ChainKey}
}

func (ls *leaseScan) lease() domain.Lease {
	l := ls.l
	l.IssuedAt, l.RenewedAt, l.ExpiresAt, l.RefreshAt = l.IssuedAt.UTC(), l.RenewedAt.UTC(), l.ExpiresAt.UTC(), l.RefreshAt.UTC()
	l.PrevUntil = fromNull(ls.prevUntil)
	l.UseTimeReserved = time.Duration(ls.reserved)
	if len(l.ChainKey) == 0 {
		l.ChainKey = nil
	}
	return l
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

// InsertLease inserts the lease, and its id's chain entry when one is needed (needsChainRow),
// in one statement; a lease root, session key or chain id that exists already is
// domain.ErrConflict. DO NOTHING, rather than a unique violation, leaves the transaction
// usable for the caller's next move.
//
// In an Update (not a View), it is first held back like a write that answers nothing but
// success, as two plain INSERTs: a grant then costs one round trip fewer. The conflict it
// would have answered is then a unique violation at the next round trip, which aborts the
// transaction (its COMMIT, if sent with it, answers ROLLBACK); the Update then runs fn
// again with InsertLease answering at once (errHeldBackConflict, Store.run), where the
// conflict is ErrConflict at the call and leaves the transaction usable, as store.Tx says.
// A conflict is rare: the license lock orders the grants of a session key.
func (t *tx) InsertLease(ctx context.Context, l *domain.Lease) error {
	if t.holdInserts && !t.readOnly {
		if err := t.write(ctx, opInsertLeaseHeld, insertLeasePlain, leaseArgs(l)...); err != nil {
			return err
		}
		if needsChainRow(l) {
			return t.write(ctx, opInsertLeaseHeld, `INSERT INTO lease_chain (tenant, id, root) VALUES ($1, $2, $3)`, l.Tenant, l.ID, l.Root)
		}
		return nil
	}
	var leases, chain int
	err := t.get(ctx, "insert lease",
		`WITH ins AS (
			INSERT INTO leases (`+leaseColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23,
				$24, $25, $26)
			ON CONFLICT DO NOTHING
			RETURNING tenant, root, id
		), ch AS (
			INSERT INTO lease_chain (tenant, id, root) SELECT tenant, id, root FROM ins WHERE $27::boolean
			ON CONFLICT DO NOTHING
			RETURNING 1
		)
		SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM ch)`,
		append(leaseArgs(l), needsChainRow(l)), &leases, &chain)
	if err != nil {
		return err
	}
	want := 0
	if needsChainRow(l) {
		want = 1
	}
	if leases != 1 || chain != want {
		return fmt.Errorf("postgres: insert lease %s: %w", l.Root, domain.ErrConflict)
	}
	return nil
}

const insertLeasePlain = `INSERT INTO leases (` + leaseColumns + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23,
		$24, $25, $26)`

// opInsertLeaseHeld names the held-back statements of InsertLease (see fail).
const opInsertLeaseHeld = "insert lease (held back)"

func (t *tx) UpdateLease(ctx context.Context, l *domain.Lease) error {
	args := []any{l.Tenant, l.Root, l.ID, l.HWName, l.ProcessName, l.Version, l.Mode, ts(l.RenewedAt), ts(l.ExpiresAt), ts(l.RefreshAt),
		l.PrevID, nts(l.PrevUntil), l.Overage, int64(l.UseTimeReserved), l.SessionID, l.ChainSeq, chainKey(l),
		needsChainRow(l)}
	if t.leaseLocked(l.Tenant, l.Root) {
		// Locked by this transaction, which has not deleted it: the row is there until the
		// commit, so the update rides with the next round trip (a renewal's seat).
		return t.write(ctx, "update lease", updateLease, args...)
	}
	var n int
	err := t.get(ctx, "update lease", updateLease, args, &n)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("postgres: update lease %s: %w", l.Root, domain.ErrNotFound)
	}
	return nil
}

// updateLease writes a lease's mutable columns and the chain entry of its new id; it answers
// the number of leases updated.
const updateLease = `WITH u AS (
			UPDATE leases SET id = $3, hw_name = $4, process_name = $5, version = $6, mode = $7, renewed_at = $8,
				expires_at = $9, refresh_at = $10, prev_id = $11, prev_until = $12, overage = $13, use_time_reserved = $14,
				session_id = $15, chain_seq = $16, chain_key = $17
			WHERE tenant = $1 AND root = $2
			RETURNING tenant, id, root
		), ch AS (
			INSERT INTO lease_chain (tenant, id, root) SELECT tenant, id, root FROM u WHERE $18::boolean
			ON CONFLICT DO NOTHING
			RETURNING 1
		)
		SELECT count(*) FROM u`

// leaseLocked reports whether this transaction holds the row lock of the lease root.
func (t *tx) leaseLocked(tenant, root string) bool {
	for _, k := range t.lockedLeases {
		if k == tenant+"\x00"+root {
			return true
		}
	}
	return false
}

// forgetLease drops root from the locked leases (it is being deleted).
func (t *tx) forgetLease(tenant, root string) {
	t.lockedLeases = slices.DeleteFunc(t.lockedLeases, func(k string) bool { return k == tenant+"\x00"+root })
}

func (t *tx) DeleteLease(ctx context.Context, tenant, root string) (bool, error) {
	t.forgetLease(tenant, root)
	tag, err := t.exec(ctx, "delete lease",
		`WITH c AS (DELETE FROM lease_chain WHERE tenant = $1 AND root = $2)
		DELETE FROM leases WHERE tenant = $1 AND root = $2`, tenant, root)
	return err == nil && tag.RowsAffected() > 0, err
}

func (t *tx) FindLease(ctx context.Context, tenant, id string) (*domain.Lease, error) {
	if root, ok := domain.ChainRoot(id); ok {
		l, err := t.getLease(ctx, "find lease", `SELECT `+leaseColumns+` FROM leases WHERE tenant = $1 AND root = $2`, tenant, root)
		switch {
		case err == nil && l.HasChainID(id):
			return l, nil
		case err != nil && !errors.Is(err, domain.ErrNotFound):
			return nil, err
		}
		// Not a derived id after all: it may still be one of lease_chain.
	}
	// A root names its lease; any other id is one of lease_chain.
	return t.getLease(ctx, "find lease",
		`SELECT `+leaseColumns+` FROM leases WHERE tenant = $1
		AND root = COALESCE((SELECT root FROM lease_chain WHERE tenant = $1 AND id = $2), $2)`, tenant, id)
}

// GetLeaseBySessionKey returns the session key's lease: a point lookup on the unique index
// (a session key has one lease at most); the seat key is checked on the row, as SQLite's
// index of a seat's leases checks it.
//
// Once the transaction holds the license's lock (an earlier Update of its batch took it),
// the lookup locks the lease and its seat at once, in the order a decision takes them
// (license, lease, seat), and they serve the LockLease and GetSeat that follow (pre): the
// LockLicense after it then costs no round trip (see LockLicense).
func (t *tx) GetLeaseBySessionKey(ctx context.Context, tenant, licenseID, seatKey, sessionKey string) (*domain.Lease, error) {
	if !t.readOnly {
		t.hint = &leaseKey{tenant: tenant, licenseID: licenseID, seatKey: seatKey, sessionKey: sessionKey}
		if t.holds(tenant, licenseID) {
			t.locked = true
			pre, err := t.readAhead(ctx, *t.hint)
			if err != nil {
				return nil, err
			}
			pre.leaseUsed = false
			if pre.lease == nil {
				return nil, domain.ErrNotFound
			}
			l := *pre.lease
			return &l, nil
		}
	}
	return t.getLease(ctx, "get lease by session key",
		`SELECT `+leaseColumns+` FROM leases WHERE tenant = $1 AND license_id = $2 AND session_key = $3 AND seat_key = $4`,
		tenant, licenseID, sessionKey, seatKey)
}

// LockLease row-locks the session key's lease: a renewal holding it needs no license lock,
// and it makes every later GetSeat of the transaction lock the seat too (see GetSeat).
//
// Right after a plain GetLeaseBySessionKey of the same key, with no lock held yet, this is
// a renewal under its lease lock alone (engine: tryFast), which extends the seat next: the
// same round trip then locks and reads the seat too (pre), in the order the renewal takes
// those locks (lease, seat), for ExtendSeat and GetSeat.
func (t *tx) LockLease(ctx context.Context, tenant, licenseID, seatKey, sessionKey string) (*domain.Lease, error) {
	wasLocked := t.locked
	t.locked = true
	key := leaseKey{tenant, licenseID, seatKey, sessionKey}
	if p := t.pre; p != nil && !p.leaseUsed && p.key == key {
		p.leaseUsed = true
		if p.lease == nil {
			return nil, domain.ErrNotFound
		}
		l := *p.lease
		return &l, nil
	}
	if !wasLocked && !t.readOnly && t.hint != nil && *t.hint == key {
		return t.lockLeaseAndSeat(ctx, key)
	}
	l, err := t.getLease(ctx, "lock lease", lockLease, tenant, licenseID, sessionKey, seatKey)
	if err == nil && !t.readOnly {
		t.lockedLeases = append(t.lockedLeases, l.Tenant+"\x00"+l.Root)
	}
	return l, err
}

// LockLiveLease locks the live lease of the key and then its seat, in one statement and in
// that order (the seat only when there is a live lease), and keeps both for the LockLease,
// GetSeat and ExtendSeat of the renewal that follows (pre). Finding none, it locks nothing
// and leaves the key as a hint for LockLicense's read-ahead, as a plain lookup does.
func (t *tx) LockLiveLease(ctx context.Context, tenant, licenseID, seatKey, sessionKey string, now time.Time) (*domain.Lease, error) {
	if t.readOnly || t.holds(tenant, licenseID) {
		// Under the license lock the lease and seat are read ahead as for any lookup.
		l, err := t.GetLeaseBySessionKey(ctx, tenant, licenseID, seatKey, sessionKey)
		if err == nil && !l.Live(now) {
			return nil, domain.ErrNotFound
		}
		return l, err
	}
	k := leaseKey{tenant, licenseID, seatKey, sessionKey}
	pre := &prefetched{key: k}
	b := &pgx.Batch{}
	b.Queue(lockLiveLease, tenant, licenseID, sessionKey, seatKey, ts(now))
	err := t.batch(ctx, "lock live lease", b, func(br pgx.BatchResults) error { return pre.scanJoined(br.QueryRow()) })
	if err != nil {
		return nil, err
	}
	if pre.lease == nil {
		t.hint = &k
		return nil, domain.ErrNotFound
	}
	t.locked, t.hint, t.pre = true, nil, pre
	t.lockedLeases = append(t.lockedLeases, pre.lease.Tenant+"\x00"+pre.lease.Root)
	l := *pre.lease
	return &l, nil
}

// lockLiveLease locks a live lease, then its seat: the seat's sub-select is LATERAL, run
// for each lease found, so it locks after the lease and never without one.
const lockLiveLease = `SELECT l.*, s.* FROM (SELECT ` + leaseColumns + ` FROM leases
	WHERE tenant = $1 AND license_id = $2 AND session_key = $3 AND seat_key = $4 AND expires_at > $5 FOR UPDATE) l
	LEFT JOIN LATERAL (SELECT ` + seatColumns + ` FROM seats
	WHERE tenant = l.tenant AND license_id = l.license_id AND seat_key = l.seat_key FOR UPDATE) s ON true`

// lockLeaseAndSeat is LockLease reading the seat ahead (see LockLease).
func (t *tx) lockLeaseAndSeat(ctx context.Context, k leaseKey) (*domain.Lease, error) {
	pre, err := t.readAhead(ctx, k)
	if err != nil {
		return nil, err
	}
	if pre.lease == nil {
		return nil, domain.ErrNotFound
	}
	l := *pre.lease
	return &l, nil
}

// readAhead locks and reads the lease of k and its seat in one round trip, in that order,
// for the LockLease (taken: leaseUsed), GetSeat and ExtendSeat that follow (pre).
func (t *tx) readAhead(ctx context.Context, k leaseKey) (*prefetched, error) {
	b := &pgx.Batch{}
	b.Queue(lockLease, k.tenant, k.licenseID, k.sessionKey, k.seatKey)
	b.Queue(lockSeat, k.tenant, k.licenseID, k.seatKey)
	pre := &prefetched{key: k, leaseUsed: true}
	if err := t.batch(ctx, "lock lease", b, pre.scan); err != nil {
		return nil, err
	}
	t.hint, t.pre = nil, pre
	if pre.lease != nil {
		t.lockedLeases = append(t.lockedLeases, pre.lease.Tenant+"\x00"+pre.lease.Root)
	}
	return pre, nil
}

const lockLease = `SELECT ` + leaseColumns + ` FROM leases WHERE tenant = $1 AND license_id = $2 AND session_key = $3 AND seat_key = $4
	FOR UPDATE`

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
	for _, col := range []string{"license_id", "lease_license", "lease_root", "user_name", "client", "kind"} {
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
