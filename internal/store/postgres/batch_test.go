package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// batchOf runs fns as concurrent Updates through a batcher of its own whose single batch
// (driven here, not by a loop) takes them all, unless it ends early: the first to run waits 10 ms so that the
// others are queued by then. It returns each Update's error and the batcher.
func batchOf(t *testing.T, s *Store, fns ...func(store.Tx) error) ([]error, *batcher) {
	t.Helper()
	b := &batcher{s: s, queue: make(chan *request), maxTime: time.Minute, stop: make(chan struct{}), done: make(chan struct{})}
	var first atomic.Bool
	errs := make([]error, len(fns))
	panics := make([]any, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Go(func() {
			defer func() { panics[i] = recover() }()
			errs[i] = b.update(t.Context(), func(tx store.Tx) error {
				if first.CompareAndSwap(false, true) {
					time.Sleep(10 * time.Millisecond)
				}
				return fn(tx)
			})
		})
		time.Sleep(2 * time.Millisecond) // queued in order
	}
	b.runBatch(<-b.queue)
	// Those the batch did not take (it ended early) get batches of their own.
	go func() { b.loop(); close(b.done) }()
	wg.Wait()
	b.close()
	for i, p := range panics {
		if p != nil {
			errs[i] = fmt.Errorf("panic: %v", p)
		}
	}
	return errs, b
}

func putSeat(key string) func(store.Tx) error {
	return func(tx store.Tx) error {
		return tx.PutSeat(context.Background(), &domain.Seat{Tenant: "acme", LicenseID: "L1", Key: key, HeldUntil: tx.Now().Add(time.Hour)})
	}
}

func seatExists(t *testing.T, s *Store, key string) bool {
	t.Helper()
	var found bool
	err := s.View(t.Context(), func(tx store.Tx) error {
		_, err := tx.GetSeat(t.Context(), "acme", "L1", key)
		found = err == nil
		if errors.Is(err, domain.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestBatchGroupsUpdates: concurrent Updates share transactions, and each one's writes and
// hooks take effect once.
func TestBatchGroupsUpdates(t *testing.T) {
	s := mustOpen(t, newDatabase(t))
	const n = 40
	var hooks atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			err := s.Update(t.Context(), func(tx store.Tx) error {
				tx.AfterCommit(func() { hooks.Add(1) })
				time.Sleep(time.Millisecond) // let the others queue
				return putSeat(fmt.Sprint("s", i))(tx)
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i := range n {
		if !seatExists(t, s, fmt.Sprint("s", i)) {
			t.Errorf("seat s%d missing", i)
		}
	}
	if h := hooks.Load(); h != n {
		t.Errorf("hooks ran %d times, want %d", h, n)
	}
	batches, updates, alone := s.BatchStats()
	if updates != n || alone != 0 || batches >= n {
		t.Errorf("%d batches held %d Updates (%d alone), want fewer batches than the %d Updates, none alone", batches, updates, alone, n)
	}
}

// TestBatchHandsBackFailedWriter: an Update that fails after writing cannot be undone
// inside the batch, so the batch is rolled back; that Update runs alone, and those before
// it in a new batch: they commit, the failed one leaves nothing, and only the committed
// ones' hooks run.
func TestBatchHandsBackFailedWriter(t *testing.T) {
	s := mustOpen(t, newDatabase(t))
	errBoom := errors.New("boom")
	var hooks sync.Map
	withHook := func(name string, fn func(store.Tx) error) func(store.Tx) error {
		return func(tx store.Tx) error {
			tx.AfterCommit(func() {
				n, _ := hooks.LoadOrStore(name, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			})
			return fn(tx)
		}
	}
	errs, b := batchOf(t, s,
		withHook("a", putSeat("a")),
		withHook("c", putSeat("c")),
		withHook("b", func(tx store.Tx) error {
			if err := putSeat("b")(tx); err != nil {
				return err
			}
			return errBoom
		}),
	)
	if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], errBoom) {
		t.Fatalf("errors %v, want nil, nil, boom", errs)
	}
	if got := b.alone.Load(); got != 1 {
		t.Errorf("%d Updates ran alone, want 1 (the failed one)", got)
	}
	if b.batches.Load() != 1 || b.updates.Load() != 2 {
		t.Errorf("%d batches of %d Updates committed, want one of the 2 before the failed one", b.batches.Load(), b.updates.Load())
	}
	for key, want := range map[string]bool{"a": true, "b": false, "c": true} {
		if got := seatExists(t, s, key); got != want {
			t.Errorf("seat %s exists: %v, want %v", key, got, want)
		}
		var ran int64
		if n, ok := hooks.Load(key); ok {
			ran = n.(*atomic.Int64).Load()
		}
		if want && ran != 1 || !want && ran != 0 {
			t.Errorf("hook of %s ran %d times", key, ran)
		}
	}
}

// TestBatchKeepsFailureWithoutWrites: an Update that fails before writing is answered with
// its error from within the batch; the others commit with it.
func TestBatchKeepsFailureWithoutWrites(t *testing.T) {
	s := mustOpen(t, newDatabase(t))
	errNo := errors.New("refused")
	errs, b := batchOf(t, s, putSeat("a"), func(store.Tx) error { return errNo }, putSeat("c"))
	if errs[0] != nil || errs[2] != nil || !errors.Is(errs[1], errNo) {
		t.Fatalf("errors %v, want nil, refused, nil", errs)
	}
	if b.alone.Load() != 0 || b.batches.Load() != 1 || b.updates.Load() != 3 {
		t.Errorf("%d batches of %d Updates, %d alone: want one batch of 3", b.batches.Load(), b.updates.Load(), b.alone.Load())
	}
	if !seatExists(t, s, "a") || !seatExists(t, s, "c") {
		t.Error("a seat of the batch is missing")
	}
}

// TestBatchDatabaseErrorAndPanic: a statement the database refuses, or a panic, in one
// Update does not take the others down.
func TestBatchDatabaseErrorAndPanic(t *testing.T) {
	s := mustOpen(t, newDatabase(t))
	bad := func(st store.Tx) error {
		_, err := st.(*tx).exec(context.Background(), "divide", `SELECT 1/0`)
		return err
	}
	errs, _ := batchOf(t, s, putSeat("a"), bad, putSeat("c"), func(store.Tx) error { panic("oops") })
	if errs[0] != nil || errs[2] != nil || errs[1] == nil || errs[3] == nil || errs[3].Error() != "panic: oops" {
		t.Fatalf("errors %v, want nil, a division error, nil, panic: oops", errs)
	}
	if !seatExists(t, s, "a") || !seatExists(t, s, "c") {
		t.Error("a seat of the good Updates is missing")
	}
}

// TestBatchLockWait: an Update after a batch's first waits for a lock no longer than
// lockWait (two batches could be waiting for each other); the batch then runs alone.
func TestBatchLockWait(t *testing.T) {
	dsn := newDatabase(t)
	s := mustOpen(t, dsn)
	holdLicense(t, mustOpen(t, dsn, WithoutBatching()), "busy", 300*time.Millisecond)
	lock := func(license string) func(store.Tx) error {
		return func(tx store.Tx) error {
			_, err := tx.LockLicense(context.Background(), "acme", license)
			return err
		}
	}
	began := time.Now()
	errs, b := batchOf(t, s, lock("free"), lock("busy"))
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("errors %v", errs)
	}
	if got := b.alone.Load(); got != 2 {
		t.Errorf("%d Updates ran alone, want 2: the second's lock wait should have ended the batch", got)
	}
	if d := time.Since(began); d < 250*time.Millisecond {
		t.Errorf("the Update of the busy license returned after %v, before its lock was free", d)
	}
}

// TestBatchIgnoresCallerContext: a caller giving up while its Update runs in a batch
// neither breaks the batch nor undoes its own committed Update.
func TestBatchIgnoresCallerContext(t *testing.T) {
	s := mustOpen(t, newDatabase(t))
	ctx, cancel := context.WithCancel(context.Background())
	canceling := func(tx store.Tx) error {
		cancel()
		if _, err := tx.GetSeat(ctx, "acme", "L1", "a"); err != nil {
			return err
		}
		return tx.PutSeat(ctx, &domain.Seat{Tenant: "acme", LicenseID: "L1", Key: "b", HeldUntil: tx.Now().Add(time.Hour)})
	}
	errs, b := batchOf(t, s, putSeat("a"), canceling, putSeat("c"))
	if errs[0] != nil || errs[1] != nil || errs[2] != nil {
		t.Fatalf("errors %v", errs)
	}
	if b.alone.Load() != 0 {
		t.Errorf("%d Updates ran alone, want 0", b.alone.Load())
	}
	for _, key := range []string{"a", "b", "c"} {
		if !seatExists(t, s, key) {
			t.Errorf("seat %s missing", key)
		}
	}
}

// TestBatchWorkersSetting: batch_workers in the connection string sets how many batches run
// at once (0: none) and is not sent to the server, which would refuse it as an unknown
// parameter; a bad value is refused at Open without echoing the connection string.
func TestBatchWorkersSetting(t *testing.T) {
	dsn := newDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		t.Skip("the test DSN is not a URL")
	}
	with := func(v string) string {
		q := u.Query()
		q.Set("batch_workers", v)
		w := *u
		w.RawQuery = q.Encode()
		return w.String()
	}
	ctx := context.Background()
	for _, c := range []struct {
		dsn     string
		workers int // 0: no batcher
	}{
		{dsn, batchWorkers},
		{with("1"), 1},
		{with("0"), 0},
		{fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=disable batch_workers=2", u.Hostname(), u.Port(), u.User.Username(), strings.TrimPrefix(u.Path, "/")), 2},
	} {
		s := mustOpen(t, c.dsn)
		switch {
		case c.workers == 0 && s.batches != nil:
			t.Errorf("%s: batches run, want none", c.dsn)
		case c.workers > 0 && (s.batches == nil || s.batches.workers != c.workers):
			t.Errorf("%s: want %d batch workers", c.dsn, c.workers)
		}
		if err := s.Update(ctx, putSeat("k-"+strconv.Itoa(c.workers))); err != nil {
			t.Errorf("%s: Update: %v", c.dsn, err)
		}
	}
	withSecret := strings.Replace(with("many"), "://"+u.User.Username()+"@", "://"+u.User.Username()+":hunter2@", 1)
	if _, err := Open(ctx, withSecret); err == nil || !strings.Contains(err.Error(), "batch_workers") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("batch_workers=many: %v; want an error naming the setting, without the password", err)
	}
}

// TestBatchFirstUpdateKeepsCallerDeadline: the first Update of a batch, waiting for a lock
// that another transaction holds, still ends at its caller's deadline, as it would outside
// a batch, rather than wait as long as the lock is held.
func TestBatchFirstUpdateKeepsCallerDeadline(t *testing.T) {
	dsn := newDatabase(t)
	s := mustOpen(t, dsn)
	// Held for long enough that a wait for it shows, and no longer than the test needs.
	defer holdLicense(t, mustOpen(t, dsn, WithoutBatching()), "busy", 8*time.Second)()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	err := s.Update(ctx, func(tx store.Tx) error {
		_, err := tx.LockLicense(ctx, "acme", "busy")
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Update returned %v, want the deadline's error", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("Update returned after %v, long past its caller's deadline", d)
	}
	// The batcher is not stuck behind it.
	if err := s.Update(t.Context(), putSeat("after")); err != nil {
		t.Fatal(err)
	}
}

// holdLicense locks license of tenant acme in a transaction of other and keeps it for d,
// or until the returned function is called, which also waits for that transaction's end.
func holdLicense(t *testing.T, other *Store, license string, d time.Duration) (release func()) {
	t.Helper()
	held, done := make(chan struct{}), make(chan struct{})
	var once sync.Once
	free := make(chan struct{})
	release = func() {
		once.Do(func() { close(free) })
		<-done
	}
	go func() {
		defer close(done)
		err := other.Update(context.Background(), func(tx store.Tx) error {
			if _, err := tx.LockLicense(context.Background(), "acme", license); err != nil {
				return err
			}
			close(held)
			<-free
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}()
	<-held
	time.AfterFunc(d, func() { once.Do(func() { close(free) }) })
	return release
}
