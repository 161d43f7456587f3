package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

var _ store.Tx = (*tx)(nil)

// tx is one transaction on one pooled connection. Like the connection under it, it must not
// be used from several goroutines at once.
//
// Writes that answer nothing but success (PutSeat, SaveLicenseState, AppendUsage, Heartbeat,
// PutObject, the catalog version bump) are held back and sent in the same round trip as the transaction's next
// statement, or its COMMIT: a seat grant then costs up to three round trips fewer. Every statement
// still runs in call order, so a read sees the writes before it, and a held-back write that
// fails fails the transaction (Update returns its error). In a View they are sent at once,
// so that they fail at the call.
type tx struct {
	conn     *pgxpool.Conn
	now      time.Time
	readOnly bool
	// dbErr is the first error the database returned. After it PostgreSQL ignores every
	// statement until the transaction ends, so it decides the outcome even if fn drops it.
	dbErr error
	// pending are the held-back writes, with the operation each came from (for errors).
	pending    []*pgx.QueuedQuery
	pendingOps []string
	// wrote is set by the first statement that may change data (see note). A transaction
	// that only read and locked commits without waiting for its commit record to reach the
	// disk (when lazyCommit): a crash can lose nothing of it, and a refused seat, the
	// common answer on a busy license, then holds the license's lock for no disk flush.
	wrote      bool
	lazyCommit bool
	// writes counts the statements that may have changed data, so that a batch can tell
	// whether one Update of it wrote anything (see batcher).
	writes int
	// holdInserts: InsertLease is held back (see InsertLease); off when the Update runs
	// again after such an insert conflicted.
	holdInserts bool
	// stmtCtx, when set, carries every statement instead of the caller's context: the
	// statements of a batch serve several callers, and one caller giving up must not break
	// the connection under the others.
	stmtCtx context.Context
	// locked is set once the transaction holds a license or lease row lock (see GetSeat).
	locked bool
	// lockedLeases are the roots of the leases this transaction row-locked (LockLease) and
	// has not deleted: an UpdateLease of one of them cannot miss its row, so it is held back
	// like a write that answers nothing but success.
	lockedLeases []string
	// hint is the key of the last plain GetLeaseBySessionKey (a decision looking for the
	// lease it may renew). LockLicense of its license locks and reads that lease and its
	// seat in the same round trip (pre), for the LockLease and GetSeat that follow it in a
	// grant or a refusal (see LockLicense).
	hint *leaseKey
	pre  *prefetched
	// held are the licenses whose state row this transaction has locked, keyed tenant NUL
	// license, with the state as last read or saved (see LockLicense). Unlike the fields
	// above it outlives an Update of a batch: the locks stay until COMMIT.
	held map[string]domain.LicenseState
	// hooks run after COMMIT succeeded (attempt); a retried attempt's tx is dropped with
	// its hooks.
	hooks []func()
}

// note sets wrote unless sql only reads or locks. LockLicense's insert of a zero state row
// counts as neither: losing it in a crash loses nothing, and it is written again on demand.
// Anything not starting with SELECT counts as a write, so a new statement errs on the safe
// side.
// Every such statement also drops what was read ahead (pre): it may have changed it. An
// UpdateLease changes no seat, so the seat read ahead stays (a renewal extends it next).
func (t *tx) note(sql string) {
	if sql != insertLicenseState && sql != insertCatalogVersion && !strings.HasPrefix(sql, "SELECT") {
		t.wrote = true
		t.writes++
		if sql == updateLease && t.pre != nil {
			t.pre.leaseUsed = true
		} else {
			t.pre = nil
		}
		if sql != saveLicenseState && strings.Contains(sql, "license_state") {
			t.held = nil // still locked, but what it holds must be read again
		}
	}
}

// ctx is the context a statement runs under (see stmtCtx).
func (t *tx) ctx(caller context.Context) context.Context {
	if t.stmtCtx != nil {
		return t.stmtCtx
	}
	return caller
}

// nextUpdate readies the transaction for the next Update of a batch: what the locks and
// reads of the previous one told this transaction (which leases it locked, what
// LockLicense read ahead, whether a lock is held) describes that Update's decisions, not
// this one's, whose lock order starts afresh. The locks themselves stay until COMMIT.
func (t *tx) nextUpdate(now time.Time) {
	t.now = now
	t.locked = false
	t.lockedLeases = nil
	t.hint, t.pre = nil, nil
	t.hooks = nil
}

func (t *tx) Now() time.Time { return t.now }

// AfterCommit implements store.Tx.
func (t *tx) AfterCommit(fn func()) { t.hooks = append(t.hooks, fn) }

// Serial implements store.Tx: Updates run side by side (READ COMMITTED), so what this one
// read may change before it locks it.
func (t *tx) Serial() bool { return false }

// fail records a database error (not "no rows", which is an answer) and wraps it. A
// held-back InsertLease that conflicted is errHeldBackConflict.
func (t *tx) fail(op string, err error) error {
	var pe *pgconn.PgError
	if op == opInsertLeaseHeld && errors.As(err, &pe) && pe.Code == "23505" {
		err = fmt.Errorf("%w: %w", errHeldBackConflict, err)
	}
	if t.dbErr == nil {
		t.dbErr = err
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// sendHeldInserts sends the held-back writes when an InsertLease is among them, so that
// its conflict, if any, is known (t.dbErr).
func (t *tx) sendHeldInserts(ctx context.Context) {
	if t.dbErr != nil || !slices.Contains(t.pendingOps, opInsertLeaseHeld) {
		return
	}
	_ = t.send(ctx, "held-back writes", &pgx.Batch{}, func(pgx.BatchResults) error { return nil })
}

// errHeldBackConflict: an InsertLease held back conflicted; the Update runs again with
// InsertLease answering at once (see InsertLease).
var errHeldBackConflict = errors.New("postgres: a held-back lease insert conflicted")

// write holds a write back until the next round trip (see tx).
func (t *tx) write(ctx context.Context, op, sql string, args ...any) error {
	t.note(sql)
	if t.readOnly {
		_, err := t.exec(ctx, op, sql, args...)
		return err
	}
	if t.dbErr != nil {
		return fmt.Errorf("postgres: %s: transaction already failed: %w", op, t.dbErr)
	}
	t.pending = append(t.pending, &pgx.QueuedQuery{SQL: sql, Arguments: args})
	t.pendingOps = append(t.pendingOps, op)
	return nil
}

// send runs the statements of b, after the held-back writes, in one round trip, and hands
// the results of b's statements to read.
func (t *tx) send(ctx context.Context, op string, b *pgx.Batch, read func(pgx.BatchResults) error) error {
	pending, ops := t.pending, t.pendingOps
	t.pending, t.pendingOps = nil, nil
	all := &pgx.Batch{QueuedQueries: append(pending, b.QueuedQueries...)}
	br := t.conn.SendBatch(t.ctx(ctx), all)
	for i := range pending {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return t.fail(ops[i], err)
		}
	}
	err := read(br)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, domain.ErrNotFound) || errors.Is(err, domain.ErrConflict) {
		return err
	}
	if err != nil {
		return t.fail(op, err)
	}
	return nil
}

func (t *tx) exec(ctx context.Context, op, sql string, args ...any) (pgconn.CommandTag, error) {
	t.note(sql)
	if len(t.pending) > 0 {
		var tag pgconn.CommandTag
		b := &pgx.Batch{}
		b.Queue(sql, args...)
		err := t.send(ctx, op, b, func(br pgx.BatchResults) error {
			var err error
			tag, err = br.Exec()
			return err
		})
		return tag, err
	}
	tag, err := t.conn.Exec(t.ctx(ctx), sql, args...)
	if err != nil {
		return tag, t.fail(op, err)
	}
	return tag, nil
}

// get scans one row; no row is domain.ErrNotFound.
func (t *tx) get(ctx context.Context, op, sql string, args []any, dest ...any) error {
	t.note(sql)
	if len(t.pending) > 0 {
		b := &pgx.Batch{}
		b.Queue(sql, args...)
		return t.send(ctx, op, b, func(br pgx.BatchResults) error {
			return notFound(br.QueryRow().Scan(dest...))
		})
	}
	err := notFound(t.conn.QueryRow(t.ctx(ctx), sql, args...).Scan(dest...))
	if err != nil && err != domain.ErrNotFound {
		return t.fail(op, err)
	}
	return err
}

func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.ErrNotFound
	}
	return err
}

// list runs a query and scans every row with scan.
func list[T any](ctx context.Context, t *tx, op, sql string, args []any, scan func(pgx.Rows) (T, error)) ([]T, error) {
	t.note(sql)
	var out []T
	collect := func(rows pgx.Rows, err error) error {
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			v, err := scan(rows)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return rows.Err()
	}
	if len(t.pending) > 0 {
		b := &pgx.Batch{}
		b.Queue(sql, args...)
		err := t.send(ctx, op, b, func(br pgx.BatchResults) error { return collect(br.Query()) })
		return out, err
	}
	if err := collect(t.conn.Query(t.ctx(ctx), sql, args...)); err != nil {
		return nil, t.fail(op, err)
	}
	return out, nil
}

// batch sends statements in one round trip (with any held-back writes) and hands their
// results to read, in order.
func (t *tx) batch(ctx context.Context, op string, b *pgx.Batch, read func(pgx.BatchResults) error) error {
	for _, q := range b.QueuedQueries {
		t.note(q.SQL)
	}
	return t.send(ctx, op, b, read)
}

// commit sends the held-back writes and COMMIT in one round trip.
func (t *tx) commit(ctx context.Context) error {
	var tag pgconn.CommandTag
	b := &pgx.Batch{}
	if !t.wrote && t.lazyCommit && !t.readOnly {
		b.Queue(`SET LOCAL synchronous_commit = off`)
	}
	b.Queue(`COMMIT`)
	err := t.send(ctx, "commit", b, func(br pgx.BatchResults) error {
		var err error
		for range b.QueuedQueries {
			if tag, err = br.Exec(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// COMMIT of a transaction that had failed answers ROLLBACK, not an error.
	if tag.String() != "COMMIT" {
		return errors.New("postgres: commit: the transaction was rolled back")
	}
	return nil
}

// ts is a time argument: UTC, so the value is the same whatever the session's TimeZone.
func ts(t time.Time) time.Time { return t.UTC() }

// nts is an optional time argument: the zero time is NULL.
func nts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

// fromNull reads an optional time column.
func fromNull(p *time.Time) time.Time {
	if p == nil {
		return time.Time{}
	}
	return p.UTC()
}

func utcPtr(p *time.Time) *time.Time {
	if p == nil {
		return nil
	}
	u := p.UTC()
	return &u
}
