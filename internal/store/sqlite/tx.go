package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
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

// Serial implements store.Tx: an Update runs on the single writer, inside its group
// transaction, so nothing else writes between its statements.
func (t *tx) Serial() bool { return t.write }
