// Package sqlite is the embedded store backend: one SQLite file serving one process.
//
// Writes go through a single writer connection that group-commits: a writer goroutine
// takes queued Updates and runs each fn in a SAVEPOINT of one BEGIN IMMEDIATE transaction
// (up to maxBatch of them, or until the queue is empty), rolls back to the savepoint of a
// fn that fails, COMMITs once, and only then answers every caller. One commit thus serves
// many Updates, and the single writer is what serializes seat decisions (LockLicense needs
// no row lock here). Views run on a pool of query_only reader connections beside the
// writer (WAL mode). Statements are prepared once per connection.
//
// Durability: WAL with synchronous=NORMAL (the default) keeps every committed transaction
// through a crash or kill -9 of the process; surviving a power loss or OS crash needs
// synchronous=FULL (`sqlite:///path.db?synchronous=full`), which syncs the WAL on each
// commit, once per group.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leasehold/leasehold/internal/store"
)

var _ store.Store = (*Store)(nil)

// carefulAfterReplay is how many batches run every fn in a savepoint after one had to be
// replayed: fns failing after writes come in bursts (a conflict storm), and each replay
// runs its batch twice.
const carefulAfterReplay = 64

// maxBatch bounds the Updates one commit serves, so a long queue still sees commits (and
// answers) at a steady pace.
const maxBatch = 128

// Checkpoints (copying the WAL back into the database file, with an fsync of each) run on a
// connection of their own, so that a commit never waits for them: every checkpointEvery
// commits, or checkpointPeriod. The writer checkpoints by itself only if the WAL outgrows
// writerAutoCheckpoint pages (about 80 MB), should the checkpointer fall behind.
//
// Past largeFile bytes, checkpoints come every checkpointEveryLarge commits instead. A
// large file's pages are spread wide, and the fsync of a checkpoint that copies many of
// them held renewals back (a million leases: p99 2.2–3.3× that of a small store, and
// 0.8–1.2× with checkpoints every 20 commits, BENCHMARKS.md); a small file's few hot pages
// are better copied once for many commits (every 20 commits cost it 8–13 % more CPU).
const (
	checkpointEvery      = 100
	checkpointEveryLarge = 20
	checkpointPeriod     = time.Second
	writerAutoCheckpoint = 20000
	defaultLargeFile     = 256 << 20
)

var (
	// ErrClosed is returned by every call on a closed store.
	ErrClosed   = errors.New("sqlite: store closed")
	errReadOnly = errors.New("sqlite: write in a read-only transaction (View)")
	errTxDone   = errors.New("sqlite: transaction used after its fn returned")
)

// Option configures Open.
type Option func(*config)

type config struct {
	clock     func() time.Time
	readers   int
	largeFile int64
}

// WithClock sets the store's clock (Store.Now and every Tx.Now); engine tests move it.
func WithClock(now func() time.Time) Option { return func(c *config) { c.clock = now } }

// Store is a store.Store on one SQLite file.
type Store struct {
	path  string
	clock func() time.Time

	wdb, rdb, cdb *sql.DB
	writer        *conn
	readers       chan *conn
	nReaders      int

	tokenKey []byte // see TokenKey

	checkpointer *sql.Conn
	ckptEvery    atomic.Int64  // commits between checkpoints (checkpointEvery or checkpointEveryLarge)
	largeFile    int64         // bytes past which a file gets checkpointEveryLarge
	kick         chan struct{} // asks the checkpointer for a checkpoint
	stopCkpt     chan struct{}
	ckptDone     chan struct{}

	queue      chan *request
	writerDone chan struct{}
	batch      []*request // owned by the writer goroutine

	// mu is held shared by every call in flight and exclusively by Close, so Close waits for
	// them and nothing is queued once the queue is closed.
	mu     sync.RWMutex
	closed bool

	commits atomic.Int64 // transactions committed by the writer (tests read it)
	updates atomic.Int64 // Updates those commits served
	replays atomic.Int64 // batches rolled back and run again in savepoints (runBatch)

	carefulBatches int // owned by the writer: batches still to run in savepoints
}

// Open opens (creating it and its directory when missing) and migrates the database named
// by dsn: `sqlite://./relative/path.db`, `sqlite:///abs/path.db` or a bare path, with
// optional `?synchronous=off|normal|full|extra` and `busy_timeout=MS` options.
func Open(dsn string, opts ...Option) (*Store, error) {
	st, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	cfg := config{clock: time.Now, readers: max(4, runtime.GOMAXPROCS(0)), largeFile: defaultLargeFile}
	for _, o := range opts {
		o(&cfg)
	}
	if dir := filepath.Dir(st.path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("sqlite: %w", err)
		}
	}
	s := &Store{
		path:       st.path,
		clock:      cfg.clock,
		largeFile:  cfg.largeFile,
		nReaders:   cfg.readers,
		readers:    make(chan *conn, cfg.readers),
		queue:      make(chan *request, 4*maxBatch),
		writerDone: make(chan struct{}),
		batch:      make([]*request, 0, maxBatch),
		kick:       make(chan struct{}, 1),
		stopCkpt:   make(chan struct{}),
		ckptDone:   make(chan struct{}),
	}
	// Switching a new file to WAL takes an exclusive lock that SQLite does not wait for
	// (no busy handler), so a process opening the file at the same moment as another can
	// be told "database is locked": retry that for a while instead of failing the start.
	for deadline := time.Now().Add(10 * time.Second); ; {
		err := s.open(st)
		if err == nil {
			break
		}
		s.closeConns()
		if !isBusy(err) || time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(time.Duration(20+rand.IntN(80)) * time.Millisecond)
	}
	s.ckptEvery.Store(checkpointEvery)
	go s.writeLoop()
	go s.checkpointLoop()
	return s, nil
}

// TokenKey implements store.Store.
func (s *Store) TokenKey() []byte { return s.tokenKey }

func (s *Store) open(st settings) error {
	ctx := context.Background()
	var err error
	if s.wdb, err = openDB(st.path, st.connOptions(false)); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", st.path, err)
	}
	s.wdb.SetMaxOpenConns(1)
	wc, err := s.wdb.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", st.path, err)
	}
	s.writer = newConn(wc, true)
	if err := setMmap(ctx, wc, st.mmapSize); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", st.path, err)
	}
	// Every Update runs in a savepoint, and SQLite copies each page a savepoint first
	// changes into a sub-journal; past 64 KiB a transaction's sub-journal becomes a temporary
	// file, costing a write(2) per page. In memory it is a copy. (It only ever holds the
	// open batch's undo pages, and a crash discards it with the uncommitted batch anyway.)
	if _, err := wc.ExecContext(ctx, "PRAGMA temp_store = MEMORY"); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", st.path, err)
	}
	var mode string
	if err := wc.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", st.path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("sqlite: open %s: journal mode is %q, not WAL (is the file on a filesystem without shared memory?)", st.path, mode)
	}
	if err := migrate(ctx, wc, s.clock()); err != nil {
		return err
	}
	if s.tokenKey, err = loadTokenKey(ctx, wc); err != nil {
		return err
	}
	if _, err := wc.ExecContext(ctx, fmt.Sprintf("PRAGMA wal_autocheckpoint = %d", writerAutoCheckpoint)); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", st.path, err)
	}
	if s.cdb, err = openDB(st.path, st.connOptions(false)); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", st.path, err)
	}
	s.cdb.SetMaxOpenConns(1)
	if s.checkpointer, err = s.cdb.Conn(ctx); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", st.path, err)
	}
	if s.rdb, err = openDB(st.path, st.connOptions(true)); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", st.path, err)
	}
	s.rdb.SetMaxOpenConns(s.nReaders)
	s.rdb.SetMaxIdleConns(s.nReaders)
	for range s.nReaders {
		rc, err := s.rdb.Conn(ctx)
		if err != nil {
			return fmt.Errorf("sqlite: open %s: %w", st.path, err)
		}
		s.readers <- newConn(rc, false)
		if err := setMmap(ctx, rc, st.mmapSize); err != nil {
			return fmt.Errorf("sqlite: open %s: %w", st.path, err)
		}
	}
	return nil
}

// setMmap sets the connection's PRAGMA mmap_size when the DSN asks for one (the driver's
// DSN has no parameter for it).
func setMmap(ctx context.Context, c *sql.Conn, size int64) error {
	if size <= 0 {
		return nil
	}
	_, err := c.ExecContext(ctx, fmt.Sprintf("PRAGMA mmap_size = %d", size))
	return err
}

// now is the store clock at millisecond precision: times are stored in milliseconds, so a
// time computed from Tx.Now reads back exactly as written.
func (s *Store) now() time.Time { return s.clock().UTC().Truncate(time.Millisecond) }

// Now implements store.Store.
func (s *Store) Now(context.Context) (time.Time, error) { return s.now(), nil }

// Ping implements store.Store: a reader runs a query.
func (s *Store) Ping(ctx context.Context) error {
	return s.View(ctx, func(store.Tx) error { return nil })
}

// request is one queued Update.
type request struct {
	fn    func(store.Tx) error
	state atomic.Int32 // queued, then taken by the writer or abandoned by its caller
	err   error
	panic any
	// hooks are what fn's last run registered with AfterCommit: the caller runs them once
	// the group has committed (never those of a run that was rolled back and replayed).
	hooks []func()
	done  chan struct{}
}

const (
	queued int32 = iota
	taken
	abandoned
)

var requests = sync.Pool{New: func() any { return &request{done: make(chan struct{}, 1)} }}

// Update implements store.Store. fn runs on the writer goroutine, inside the group's
// transaction: it must not call the store itself (Update or View) and must return before
// the next Update can run. A panic in fn is re-raised here once the group is committed.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	hooks, err := s.update(ctx, fn)
	if err == nil {
		runHooks(hooks)
	}
	return err
}

// runHooks runs what a committed transaction registered with AfterCommit: on the caller's
// goroutine (not the writer's) and after the store's lock is released, since a hook may use
// the store.
func runHooks(hooks []func()) {
	for _, fn := range hooks {
		fn()
	}
}

// update is Update without running the hooks, which it returns.
func (s *Store) update(ctx context.Context, fn func(store.Tx) error) ([]func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	r := requests.Get().(*request)
	r.fn, r.err, r.panic, r.hooks = fn, nil, nil, nil
	r.state.Store(queued)
	select {
	case s.queue <- r:
	case <-ctx.Done():
		r.fn = nil
		requests.Put(r)
		return nil, ctx.Err()
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		if r.state.CompareAndSwap(queued, abandoned) {
			// The writer will skip it, and still holds it: it is not reused.
			return nil, ctx.Err()
		}
		// Already running: its outcome is the answer, whatever the context says.
		<-r.done
	}
	err, p, hooks := r.err, r.panic, r.hooks
	r.fn, r.err, r.panic, r.hooks = nil, nil, nil, nil
	requests.Put(r)
	if p != nil {
		panic(p)
	}
	return hooks, err
}

func (s *Store) writeLoop() {
	defer close(s.writerDone)
	for r := range s.queue {
		s.runBatch(r)
	}
}

// runBatch runs first and whatever else is queued in one transaction, then answers them.
func (s *Store) runBatch(first *request) {
	if !first.state.CompareAndSwap(queued, taken) {
		return
	}
	batch := append(s.batch[:0], first)
	defer func() {
		for i, r := range batch {
			r.done <- struct{}{}
			batch[i] = nil
		}
	}()
	w := s.writer
	if err := w.execNoCtx("BEGIN IMMEDIATE"); err != nil {
		first.err = fmt.Errorf("sqlite: begin: %w", err)
		return
	}
	// Most fns succeed, or fail before writing: those run bare, without the SAVEPOINT and
	// RELEASE around each and without SQLite copying every page a savepoint first touches.
	// A fn that fails after writing has nothing to roll back to; then the batch so far is
	// rolled back and run again from the start, each fn in a savepoint (fns may run more
	// than once, store.Store.Update says), and so are the next few batches.
	careful := s.carefulBatches > 0
	if careful {
		s.carefulBatches--
	}
	run := func(r *request) bool {
		if careful {
			return s.runOne(r)
		}
		if s.runBare(r) {
			return true
		}
		careful, s.carefulBatches = true, carefulAfterReplay
		s.replays.Add(1)
		if !w.autocommit() {
			_ = w.execNoCtx("ROLLBACK")
		}
		if err := w.execNoCtx("BEGIN IMMEDIATE"); err != nil {
			r.err = fmt.Errorf("sqlite: begin: %w", err)
			return false
		}
		for _, q := range batch {
			q.err, q.panic, q.hooks = nil, nil, nil
			if !s.runOne(q) {
				return false
			}
		}
		return true
	}
	if !run(first) {
		s.abort(batch)
		return
	}
	yielded := false
	for len(batch) < maxBatch {
		var r *request
		select {
		case r = <-s.queue:
		default:
		}
		if r == nil && !yielded {
			// Before committing, let the goroutines that are runnable (requests on their way
			// here) run once: under load several more Updates join this commit, and each
			// commit writes its dirty pages (2 write(2) calls apiece) however few Updates it
			// serves. Alone on the machine, the yield returns at once. Measured: about 5
			// times fewer commits and a tenth less CPU per renewal (BENCHMARKS.md).
			yielded = true
			runtime.Gosched()
			select {
			case r = <-s.queue:
			default:
			}
		}
		if r == nil {
			break
		}
		if !r.state.CompareAndSwap(queued, taken) {
			continue
		}
		batch = append(batch, r)
		if !run(r) {
			s.abort(batch)
			return
		}
	}
	if err := w.execNoCtx("COMMIT"); err != nil {
		_ = w.execNoCtx("ROLLBACK")
		for _, r := range batch {
			if r.err == nil && r.panic == nil {
				r.err = fmt.Errorf("sqlite: commit: %w", err)
			}
		}
		return
	}
	if s.commits.Add(1)%s.ckptEvery.Load() == 0 {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	s.updates.Add(int64(len(batch)))
}

// checkpointLoop runs PASSIVE checkpoints, which never block the writer or the readers.
// A failed one is retried at the next turn; the writer's own auto-checkpoint is the backstop.
// After each it sets the cadence for the file's size.
func (s *Store) checkpointLoop() {
	defer close(s.ckptDone)
	tick := time.NewTicker(checkpointPeriod)
	defer tick.Stop()
	for {
		select {
		case <-s.stopCkpt:
			return
		case <-s.kick:
		case <-tick.C:
		}
		ctx := context.Background()
		_, _ = s.checkpointer.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
		var size int64
		err := s.checkpointer.QueryRowContext(ctx,
			"SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()").Scan(&size)
		if err == nil {
			s.ckptEvery.Store(checkpointCadence(size, s.largeFile))
		}
	}
}

// checkpointCadence is how many commits go between checkpoints for a file of size bytes.
func checkpointCadence(size, largeFile int64) int64 {
	if size > largeFile {
		return checkpointEveryLarge
	}
	return checkpointEvery
}

// runBare runs r.fn in the open transaction without a savepoint. It reports false when fn
// failed after a statement that may have written: only rolling back the whole transaction
// can undo that.
func (s *Store) runBare(r *request) bool {
	t := &tx{c: s.writer, now: s.now(), write: true}
	r.panic, r.err = call(r.fn, t)
	t.done = true
	r.hooks = t.hooks
	return (r.err == nil && r.panic == nil) || (!t.wrote && !s.writer.autocommit())
}

// runOne runs r.fn in a savepoint of the open transaction. It reports false when the
// transaction itself was lost (SQLite rolls back the whole transaction on some errors,
// such as an I/O error or a full disk), so the batch cannot be committed.
func (s *Store) runOne(r *request) bool {
	w := s.writer
	if err := w.execNoCtx("SAVEPOINT u"); err != nil {
		r.err = fmt.Errorf("sqlite: savepoint: %w", err)
		return !w.autocommit()
	}
	t := &tx{c: w, now: s.now(), write: true}
	r.panic, r.err = call(r.fn, t)
	t.done = true
	r.hooks = t.hooks
	if r.err == nil && r.panic == nil {
		if err := w.execNoCtx("RELEASE u"); err != nil {
			r.err = fmt.Errorf("sqlite: release savepoint: %w", err)
		} else {
			return true
		}
	}
	if w.autocommit() {
		return false
	}
	if err := w.execNoCtx("ROLLBACK TO u"); err != nil {
		return false
	}
	if err := w.execNoCtx("RELEASE u"); err != nil {
		return false
	}
	return true
}

// abort ends a batch whose transaction is lost: nothing of it was committed.
func (s *Store) abort(batch []*request) {
	w := s.writer
	if !w.autocommit() {
		_ = w.execNoCtx("ROLLBACK")
	}
	cause := batch[len(batch)-1].err
	if cause == nil {
		cause = errors.New("transaction rolled back")
	}
	for _, r := range batch {
		if r.err == nil && r.panic == nil {
			r.err = fmt.Errorf("sqlite: transaction lost, nothing written: %w", cause)
		}
	}
}

func call(fn func(store.Tx) error, t store.Tx) (p any, err error) {
	defer func() {
		if v := recover(); v != nil {
			p = v
		}
	}()
	return nil, fn(t)
}

// View implements store.Store: fn reads one consistent snapshot on a reader connection.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	hooks, err := s.view(ctx, fn)
	if err == nil {
		runHooks(hooks)
	}
	return err
}

// view is View without running the hooks, which it returns.
func (s *Store) view(ctx context.Context, fn func(store.Tx) error) (hooks []func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	var c *conn
	select {
	case c = <-s.readers:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { s.readers <- c }()
	if err := c.execNoCtx("BEGIN"); err != nil {
		return nil, fmt.Errorf("sqlite: begin: %w", err)
	}
	t := &tx{c: c, now: s.now()}
	defer func() {
		t.done = true
		if rerr := c.execNoCtx("ROLLBACK"); rerr != nil && err == nil && !c.autocommit() {
			err = fmt.Errorf("sqlite: end read: %w", rerr)
		}
		hooks = t.hooks
	}()
	return nil, fn(t)
}

// Close drains queued Updates, waits for those in flight, and closes the database.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.queue)
	<-s.writerDone
	close(s.stopCkpt)
	<-s.ckptDone
	if s.writer != nil {
		// Cheap, and keeps the query planner's statistics fresh for the next start.
		_ = s.writer.execNoCtx("PRAGMA optimize")
	}
	return s.closeConns()
}

func (s *Store) closeConns() error {
	var errs []error
	if s.rdb != nil {
		for len(s.readers) > 0 {
			errs = append(errs, (<-s.readers).close())
		}
		errs = append(errs, s.rdb.Close())
	}
	if s.checkpointer != nil {
		errs = append(errs, s.checkpointer.Close())
	}
	if s.cdb != nil {
		errs = append(errs, s.cdb.Close())
	}
	// The writer goes last: closing the last connection checkpoints the WAL into the file.
	if s.writer != nil {
		errs = append(errs, s.writer.close())
	}
	if s.wdb != nil {
		errs = append(errs, s.wdb.Close())
	}
	s.rdb, s.checkpointer, s.cdb, s.writer, s.wdb = nil, nil, nil, nil, nil
	return errors.Join(errs...)
}

// Backup writes a consistent copy of the live database to dest (VACUUM INTO, on a
// connection of its own, beside the writer), readable by its owner only: it holds private
// signing keys and password hashes. dest appears atomically once the copy is complete and
// synced. An existing dest is replaced only with overwrite; otherwise Backup fails with an
// error wrapping fs.ErrExist, without overwriting a file that appears meanwhile.
func (s *Store) Backup(ctx context.Context, dest string, overwrite bool) (err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	dest, err = filepath.Abs(dest)
	if err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	src, err := filepath.Abs(s.path)
	if err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	if src == dest {
		return fmt.Errorf("sqlite: backup: %s is the live database", dest)
	}
	if !overwrite {
		// Checked first as well, so a refusal does not cost a copy of the whole database.
		if _, err := os.Lstat(dest); err == nil {
			return fmt.Errorf("sqlite: backup: %s: %w", dest, fs.ErrExist)
		}
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o750); err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), filepath.Base(dest)+".tmp-*")
	if err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	// VACUUM INTO refuses an existing file, even an empty one.
	if err := os.Remove(tmpName); err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	defer func() {
		if err != nil {
			os.Remove(tmpName)
		}
	}()

	// Not query_only: VACUUM INTO counts as a write there, although it writes only the copy.
	db, err := openDB(s.path, connOptions{busyTimeout: 5000})
	if err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", tmpName); err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	// VACUUM INTO creates the file under the umask (0644 as a rule).
	if err := os.Chmod(tmpName, 0o600); err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	if err := syncFile(tmpName); err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	if overwrite {
		err = os.Rename(tmpName, dest)
	} else {
		// A hard link fails on an existing name, where a rename would replace it.
		if err = os.Link(tmpName, dest); err == nil {
			err = os.Remove(tmpName)
		}
	}
	if err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	if err := syncFile(filepath.Dir(dest)); err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	return nil
}

func syncFile(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// conn is one connection with its prepared statements. Only one goroutine uses it at a
// time (the writer, or the View holding it), so the cache needs no lock.
type conn struct {
	c     *sql.Conn
	stmts map[string]*sql.Stmt
	// writer statements run without the caller's context: cancelling a running statement
	// interrupts the connection, and SQLite may then roll back the whole group transaction.
	writer bool
}

func newConn(c *sql.Conn, writer bool) *conn {
	return &conn{c: c, stmts: map[string]*sql.Stmt{}, writer: writer}
}

func (c *conn) stmt(q string) (*sql.Stmt, error) {
	if st := c.stmts[q]; st != nil {
		return st, nil
	}
	st, err := c.c.PrepareContext(context.Background(), q)
	if err != nil {
		return nil, err
	}
	c.stmts[q] = st
	return st, nil
}

func (c *conn) execNoCtx(q string) error {
	st, err := c.stmt(q)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(context.Background())
	return err
}

// autocommit reports whether no transaction is open on the connection.
func (c *conn) autocommit() bool {
	ac := false
	_ = c.c.Raw(func(dc any) error {
		ac = drv.autocommit(dc)
		return nil
	})
	return ac
}

func (c *conn) close() error {
	var errs []error
	for _, st := range c.stmts {
		errs = append(errs, st.Close())
	}
	errs = append(errs, c.c.Close())
	return errors.Join(errs...)
}

// isBusy reports whether err is SQLite's SQLITE_BUSY or SQLITE_LOCKED.
func isBusy(err error) bool { return drv.isBusy(err) }
