// Package postgres is the PostgreSQL backend of store.Store, for running several Leasehold
// processes on one database.
//
// Seat decisions are serialized by a row lock on the license's state row (LockLicense:
// INSERT … ON CONFLICT DO NOTHING, then SELECT … FOR UPDATE) inside READ COMMITTED
// transactions, so they hold across processes. Update runs fn again on a serialization
// failure or deadlock (SQLSTATE 40001, 40P01). The clock is the database's now(), the
// transaction's start, fetched in the same round trip as BEGIN, so processes with skewed
// clocks agree on what has expired. Concurrent Updates of one process share transactions
// (batcher), so that one lock, one COMMIT and one WAL flush serve many. Writes that answer
// nothing but success travel with the transaction's next statement or its COMMIT, and a
// transaction that only read and locked (a refused seat) commits without waiting for the
// disk (see tx).
//
// The SQL keeps to what CockroachDB and YugabyteDB also accept where that costs nothing:
// plain tables, B-tree indexes, INSERT … ON CONFLICT, SELECT … FOR UPDATE, data-modifying
// CTEs, text[] and bytea columns, bigserial, set_config('lock_timeout'). PostgreSQL-specific
// is only the pg_advisory_xact_lock around migrations, skipped where the function is missing
// (the migration statements are idempotent and retried on a serialization failure).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leasehold/leasehold/internal/store"
)

var _ store.Store = (*Store)(nil)

// maxAttempts bounds how often Update runs fn when the database reports a serialization
// failure or a deadlock; both clear on their own, so a few quick retries almost always win.
const maxAttempts = 10

// defaultMaxConns is the pool size unless the connection string sets pool_max_conns.
const defaultMaxConns = 10

// Store is a store.Store on a PostgreSQL database.
type Store struct {
	pool   *pgxpool.Pool
	offset time.Duration
	clock  func() time.Time // replaces the database's clock (tests)
	// lazyCommit: the server is PostgreSQL itself, where a transaction that changed nothing
	// may commit with synchronous_commit off (see tx.wrote).
	lazyCommit bool
	tokenKey   []byte // see TokenKey
	// sample is the database's clock as the latest transactions read it (see Now).
	sample atomic.Pointer[clockSample]
	// batches runs the Updates (nil: each in a transaction of its own).
	batches *batcher
	// stopAnalyze ends analyzeLoop, which closes analyzeDone (nil: no loop).
	stopAnalyze context.CancelFunc
	analyzeDone chan struct{}
}

// clockSample is a reading of the database's clock: db, read by a statement sent at local
// (a time.Now with its monotonic reading) and answered rtt later.
type clockSample struct {
	db, local time.Time
	rtt       time.Duration
}

// sampleMaxAge is how long a clock sample answers Now. Past it Now asks the database.
const sampleMaxAge = time.Second

// observe keeps a reading of the database's clock for Now: a newer one when it was answered
// as fast as the one kept, or when the one kept is getting old.
func (s *Store) observe(db, local time.Time, rtt time.Duration) {
	old := s.sample.Load()
	if old == nil || rtt <= old.rtt || time.Since(old.local) > sampleMaxAge/2 {
		s.sample.Store(&clockSample{db: db, local: local, rtt: rtt})
	}
}

// Option configures Open.
type Option func(*options)

type options struct {
	offset time.Duration
	clock  func() time.Time
	pool   func(*pgxpool.Config) // tests: e.g. count round trips
	// noAnalyze: no analyzeLoop (tests that count round trips).
	noAnalyze bool
	// noBatch: every Update in a transaction of its own (benchmarks: the A/B of batching).
	noBatch bool
}

// WithoutBatching runs every Update in a transaction of its own instead of in batches
// (see batcher): for comparing the two.
func WithoutBatching() Option {
	return func(o *options) { o.noBatch = true }
}

// WithClockOffset shifts the store clock (the database's now()) by d, so that tests can
// see the future without waiting.
func WithClockOffset(d time.Duration) Option {
	return func(o *options) { o.offset = d }
}

// WithTracer has every statement of the store's connections reported to tr (profiling and
// tests: which statements an operation runs, how many round trips it costs).
func WithTracer(tr pgx.QueryTracer) Option {
	return func(o *options) {
		prev := o.pool
		o.pool = func(cfg *pgxpool.Config) {
			if prev != nil {
				prev(cfg)
			}
			cfg.ConnConfig.Tracer = tr
		}
	}
}

// WithClock replaces the database's clock with now, as sqlite.WithClock does, so that tests
// can move time. For tests only: processes then no longer share one clock.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.clock = now }
}

// Open connects to the database named by dsn (any connection string pgx accepts: a
// postgres:// URL or key=value pairs, with password, sslmode, host=/socket/dir, and the pool
// settings such as pool_max_conns) and brings its schema up to date.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors quote the whole connection string, password included.
		return nil, errors.New("postgres: invalid connection string (see https://pkg.go.dev/github.com/jackc/pgx/v5/pgconn#ParseConfig)")
	}
	workers, err := batchWorkersOf(cfg)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		// An Update holds its connection while it waits for a license's row lock, so a
		// handful of requests queued on one busy license must not starve all the others.
		cfg.MaxConns = max(cfg.MaxConns, defaultMaxConns)
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "leasehold"
	}
	if o.pool != nil {
		o.pool(cfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	var version string
	if err := pool.QueryRow(ctx, `SELECT version()`).Scan(&version); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	lazy := strings.HasPrefix(version, "PostgreSQL") && !strings.Contains(version, "-YB-")
	key, err := loadTokenKey(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s := &Store{pool: pool, offset: o.offset, clock: o.clock, lazyCommit: lazy, tokenKey: key}
	if lazy && !o.noAnalyze {
		actx, cancel := context.WithCancel(context.Background())
		s.stopAnalyze, s.analyzeDone = cancel, make(chan struct{})
		go s.analyzeLoop(actx)
	}
	if !o.noBatch && workers > 0 {
		s.batches = newBatcher(s, workers)
	}
	return s, nil
}

// batchWorkersSetting is the connection-string setting of how many batches a process runs
// at once (see batcher); Open takes it out before pgx would send it to the server as a
// run-time parameter.
const batchWorkersSetting = "batch_workers"

// batchWorkersOf reads batch_workers (default batchWorkers; 0: no batches, every Update a
// transaction of its own) from the parsed connection string, and removes it there.
func batchWorkersOf(cfg *pgxpool.Config) (int, error) {
	v, ok := cfg.ConnConfig.RuntimeParams[batchWorkersSetting]
	if !ok {
		return batchWorkers, nil
	}
	delete(cfg.ConnConfig.RuntimeParams, batchWorkersSetting)
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > maxBatchWorkers {
		return 0, fmt.Errorf("postgres: %s: want a whole number from 0 to %d, got %q", batchWorkersSetting, maxBatchWorkers, v)
	}
	return n, nil
}

// TokenKey implements store.Store.
func (s *Store) TokenKey() []byte { return s.tokenKey }

// Update runs fn in a READ COMMITTED read-write transaction and commits it, in a batch
// with the Updates that arrive meanwhile (see batcher) unless WithoutBatching. A
// serialization failure or deadlock (SQLSTATE 40001, 40P01) runs fn again, up to
// maxAttempts times.
func (s *Store) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	if s.batches != nil {
		return s.batches.update(ctx, fn)
	}
	hooks, err := s.run(ctx, false, true, fn)
	if err == nil {
		runHooks(hooks)
	}
	return err
}

// View runs fn in a read-only transaction on one snapshot (REPEATABLE READ READ ONLY, which
// PostgreSQL never aborts for serialization); a write method called from it fails.
func (s *Store) View(ctx context.Context, fn func(tx store.Tx) error) error {
	hooks, err := s.run(ctx, true, false, fn)
	if err == nil {
		runHooks(hooks)
	}
	return err
}

// Now is the database's clock. It costs no round trip while a transaction of the last
// second has read it (each reads now() with its BEGIN). A reading db, taken somewhere
// between the local times local and local+rtt, is followed by the database's clock at
// no less than db + time.Since(local+rtt) on the local monotonic clock, and Now answers
// that lower bound: never ahead of the database (a later transaction's Now is never before
// it), behind it by at most the reading's round trip, the same as a `SELECT now()` answer
// is by the time it arrives. observe keeps the readings answered fastest.
func (s *Store) Now(ctx context.Context) (time.Time, error) {
	if s.clock != nil {
		return s.clock().UTC().Add(s.offset), nil
	}
	if now, ok := s.sampledNow(); ok {
		return now, nil
	}
	var now time.Time
	local := time.Now()
	if err := s.pool.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
		return time.Time{}, fmt.Errorf("postgres: now: %w", err)
	}
	s.observe(now, local, time.Since(local))
	return now.UTC().Add(s.offset), nil
}

// sampledNow is Now from the latest clock reading, when one answers (see Now).
func (s *Store) sampledNow() (time.Time, bool) {
	if c := s.sample.Load(); c != nil {
		if age := time.Since(c.local); age >= c.rtt && age < sampleMaxAge {
			return c.db.Add(age - c.rtt).UTC().Add(s.offset), true
		}
	}
	return time.Time{}, false
}

func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

func (s *Store) Close() error {
	if s.batches != nil {
		s.batches.close()
	}
	if s.stopAnalyze != nil {
		s.stopAnalyze()
		<-s.analyzeDone
	}
	s.pool.Close()
	return nil
}

func (s *Store) run(ctx context.Context, readOnly, hold bool, fn func(tx store.Tx) error) ([]func(), error) {
	for attempt := 1; ; attempt++ {
		hooks, err := s.attempt(ctx, readOnly, hold, fn)
		if err == nil {
			return hooks, nil
		}
		if hold && errors.Is(err, errHeldBackConflict) {
			hold = false // once more, with InsertLease answering at once
			attempt--
			continue
		}
		var r retryable
		if !errors.As(err, &r) {
			return nil, err
		}
		if attempt >= maxAttempts || ctx.Err() != nil {
			return nil, r.err
		}
		// Jittered exponential backoff, so that the transactions that collided do not
		// collide again in lock step.
		backoff := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 7)))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, r.err
		case <-t.C:
		}
	}
}

// runHooks runs what a committed transaction registered with AfterCommit: on the caller's
// goroutine, after its connection went back to the pool, since a hook may use the store.
func runHooks(hooks []func()) {
	for _, fn := range hooks {
		fn()
	}
}

// retryable marks an attempt whose transaction may simply be run again.
type retryable struct{ err error }

func (r retryable) Error() string { return r.err.Error() }
func (r retryable) Unwrap() error { return r.err }

// attempt runs fn in one transaction and returns the hooks it registered.
func (s *Store) attempt(ctx context.Context, readOnly, holdInserts bool, fn func(tx store.Tx) error) ([]func(), error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	// Release destroys a connection still inside a transaction (a failed ROLLBACK), so a
	// broken connection never returns to the pool.
	defer conn.Release()

	t, err := s.begin(ctx, conn, readOnly)
	if err != nil {
		return nil, err
	}
	t.holdInserts = holdInserts
	ferr := fn(t)
	if ferr != nil {
		// fn may have failed because an InsertLease did not conflict: only the database
		// knows yet (see InsertLease).
		t.sendHeldInserts(ctx)
	}
	if errors.Is(t.dbErr, errHeldBackConflict) {
		ferr = t.dbErr // whatever fn made of it
	}
	if ferr == nil && t.dbErr != nil {
		// fn swallowed a database error: PostgreSQL has aborted the transaction, so nothing
		// fn did after it happened; never report that as success.
		ferr = t.dbErr
	}
	if ferr != nil {
		s.rollback(conn)
		if isRetryable(t.dbErr) {
			return nil, retryable{ferr}
		}
		return nil, ferr
	}
	if err := t.commit(ctx); err != nil {
		s.rollback(conn)
		if isRetryable(t.dbErr) {
			return nil, retryable{err}
		}
		if errors.Is(t.dbErr, errHeldBackConflict) {
			return nil, t.dbErr
		}
		return nil, err
	}
	return t.hooks, nil
}

// begin starts a transaction on conn. An error it returns has rolled back.
func (s *Store) begin(ctx context.Context, conn *pgxpool.Conn, readOnly bool) (*tx, error) {
	t := &tx{conn: conn, readOnly: readOnly, lazyCommit: s.lazyCommit}
	begin := `BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE`
	if readOnly {
		begin = `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`
	}
	// BEGIN and now() share one round trip.
	sent := time.Now()
	b := &pgx.Batch{}
	b.Queue(begin)
	if s.clock == nil {
		b.Queue(`SELECT now()`)
	} else {
		t.now = s.clock()
	}
	br := conn.SendBatch(ctx, b)
	_, err := br.Exec()
	if err == nil && s.clock == nil {
		err = br.QueryRow().Scan(&t.now)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// Nothing of fn has run, so a connection that broke while idle in the pool (a
		// restarted server, a failover) costs one more attempt on a fresh one, not a failed
		// request.
		var pe *pgconn.PgError
		retry := ctx.Err() == nil && (conn.Conn().IsClosed() || !errors.As(err, &pe))
		s.rollback(conn)
		err = fmt.Errorf("postgres: begin: %w", err)
		if retry || isRetryable(err) {
			return nil, retryable{err}
		}
		return nil, err
	}
	if s.clock == nil {
		s.observe(t.now, sent, time.Since(sent))
	}
	t.now = t.now.UTC().Add(s.offset)
	return t, nil
}

func (s *Store) rollback(conn *pgxpool.Conn) {
	if conn.Conn().PgConn().TxStatus() == 'I' {
		return
	}
	// The caller's context may be what ended the transaction; ROLLBACK must still be sent.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, `ROLLBACK`); err != nil {
		_ = conn.Conn().Close(ctx)
	}
}

// isRetryable reports a serialization failure or a deadlock: the transaction lost a race
// and may run again.
func isRetryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	return false
}
