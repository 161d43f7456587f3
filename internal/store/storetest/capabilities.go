package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// The methods whose work differs between backends (AfterCommit, Serial, LockKey,
// ExtendSeat). Each case fails on a backend that implements its method as a no-op where
// the contract needs work.

// testAfterCommit: a hook runs once, after the commit and before Update returns; never
// for a failed Update, nor twice for an Update whose fn a backend ran again.
func testAfterCommit(t *testing.T, s store.Store) {
	ctx := t.Context()
	// Failing and succeeding Updates at once (first, while a fresh store runs groups
	// without savepoints): a group-committing backend that replays a group runs the fns
	// again, and the first run's hooks must be dropped.
	const n = 64
	var hooks [n]atomic.Int64
	var runs atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			err := s.Update(ctx, func(tx store.Tx) error {
				runs.Add(1)
				tx.AfterCommit(func() { hooks[i].Add(1) })
				seat := &domain.Seat{Tenant: "acme", LicenseID: "L2", Key: fmt.Sprintf("k%02d", i), HeldUntil: tx.Now().Add(time.Hour)}
				if err := tx.PutSeat(ctx, seat); err != nil {
					return err
				}
				if i%2 == 0 {
					return errBoom // after a write: a group cannot just skip it
				}
				return nil
			})
			if (i%2 == 0) != (err != nil) {
				t.Errorf("Update %d = %v", i, err)
			}
		})
	}
	wg.Wait()
	for i := range n {
		want := int64(i % 2)
		if got := hooks[i].Load(); got != want {
			t.Errorf("Update %d (failing: %v): hook ran %d times, want %d", i, i%2 == 0, got, want)
		}
	}
	t.Logf("%d Updates ran their fn %d times", n, runs.Load())

	var calls atomic.Int64
	var sawCommit atomic.Bool
	update(t, s, func(tx store.Tx) error {
		seat := &domain.Seat{Tenant: "acme", LicenseID: "L1", Key: "hooked", HeldUntil: tx.Now().Add(time.Hour)}
		tx.AfterCommit(func() {
			calls.Add(1)
			// The transaction is over: its writes are visible, and the store may be used.
			_, err := getSeat(t, s, "acme", "L1", "hooked")
			sawCommit.Store(err == nil)
		})
		return tx.PutSeat(ctx, seat)
	})
	if n := calls.Load(); n != 1 {
		t.Fatalf("hook of a committed Update ran %d times by the time Update returned, want 1", n)
	}
	if !sawCommit.Load() {
		t.Error("a hook did not see its transaction's write")
	}

	// Several hooks run in the order registered.
	var order []int
	update(t, s, func(tx store.Tx) error {
		order = order[:0]
		for i := range 3 {
			tx.AfterCommit(func() { order = append(order, i) })
		}
		return nil
	})
	same(t, "hook order", order, []int{0, 1, 2})

	calls.Store(0)
	err := s.Update(ctx, func(tx store.Tx) error {
		tx.AfterCommit(func() { calls.Add(1) })
		if err := tx.PutSeat(ctx, &domain.Seat{Tenant: "acme", LicenseID: "L1", Key: "rolled-back", HeldUntil: tx.Now().Add(time.Hour)}); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("failing Update = %v", err)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("hook of a rolled-back Update ran %d times", n)
	}

	view(t, s, func(tx store.Tx) error {
		tx.AfterCommit(func() { calls.Add(1) })
		return nil
	})
	_ = s.View(ctx, func(tx store.Tx) error {
		tx.AfterCommit(func() { calls.Add(100) })
		return errBoom
	})
	if n := calls.Load(); n != 1 {
		t.Errorf("hooks of a good and a failed View: %d, want 1 (the good one's)", n)
	}

}

// testAfterCommitRetried: two Updates lock two keys in opposite orders. Where Updates run
// side by side this deadlocks, and the backend aborts one and runs its fn again; the
// aborted attempt's hook must not run. (A serial backend runs them one after the other; so
// may a batching one, which then proves nothing here: its own tests cover a batch's retry.)
func testAfterCommitRetried(t *testing.T, s store.Store) {
	ctx := t.Context()
	var runs, hooks atomic.Int64
	var serial, overlapped atomic.Bool
	var running atomic.Int64
	var wg sync.WaitGroup
	for i, keys := range [][2]string{{"a", "b"}, {"b", "a"}} {
		wg.Go(func() {
			err := s.Update(ctx, func(tx store.Tx) error {
				runs.Add(1)
				serial.Store(tx.Serial())
				if running.Add(1) > 1 {
					overlapped.Store(true)
				}
				defer running.Add(-1)
				tx.AfterCommit(func() { hooks.Add(1) })
				if err := tx.LockKey(ctx, "retry:"+keys[0]); err != nil {
					return err
				}
				// A lock is taken by the next statement at the latest (LockKey).
				if _, err := tx.GetLicenseState(ctx, "acme", "L1"); err != nil {
					return err
				}
				if runs.Load() <= 2 && !tx.Serial() {
					// Let the other take its first key (bounded: it may have committed).
					time.Sleep(200 * time.Millisecond)
				}
				return tx.LockKey(ctx, "retry:"+keys[1])
			})
			if err != nil {
				t.Errorf("Update %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if n := hooks.Load(); n != 2 {
		t.Errorf("hooks of 2 Updates ran %d times (fns ran %d times)", n, runs.Load())
	}
	if !serial.Load() && overlapped.Load() && runs.Load() < 3 {
		t.Errorf("2 Updates that deadlock ran their fn %d times: no attempt was retried, so this proved nothing", runs.Load())
	}
}

// testSerial: a View never excludes writers.
func testSerial(t *testing.T, s store.Store) {
	view(t, s, func(tx store.Tx) error {
		if tx.Serial() {
			return errors.New("a View reports Serial")
		}
		return nil
	})
}

// testLockKey: Updates that take the same key run one after the other, so a read-modify-
// write under it loses nothing, whether the store serializes every Update (Serial) or only
// those that lock.
func testLockKey(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 8
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			err := s.Update(ctx, func(tx store.Tx) error {
				if err := tx.LockKey(ctx, "counter"); err != nil {
					return err
				}
				st, err := tx.GetLicenseState(ctx, "acme", "L1") // no row lock
				if err != nil {
					return err
				}
				time.Sleep(5 * time.Millisecond) // widen the window a missing lock leaves open
				st.UseCount++
				return tx.SaveLicenseState(ctx, st)
			})
			if err != nil {
				t.Errorf("Update: %v", err)
			}
		})
	}
	wg.Wait()
	st := read(t, s, func(tx store.Tx) (*domain.LicenseState, error) { return tx.GetLicenseState(ctx, "acme", "L1") })
	if st.UseCount != n {
		t.Errorf("use count after %d increments under LockKey = %d: LockKey did not serialize them", n, st.UseCount)
	}
	// A key is free again once its transaction ended.
	update(t, s, func(tx store.Tx) error { return tx.LockKey(ctx, "counter") })
}

// testExtendSeat: ExtendSeat writes exactly when the seat must hold longer or stop
// lingering, and keeps the later of the two times.
func testExtendSeat(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := baseTime(t, s)
	extend := func(key string, until time.Time) bool {
		t.Helper()
		return write(t, s, func(tx store.Tx) (bool, error) { return tx.ExtendSeat(ctx, "acme", "L1", key, until) })
	}
	if extend("missing", base.Add(time.Hour)) {
		t.Error("ExtendSeat of a missing seat reported a write")
	}
	if _, err := getSeat(t, s, "acme", "L1", "missing"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("ExtendSeat created a seat: %v", err)
	}

	held := domain.Seat{Tenant: "acme", LicenseID: "L1", Key: "held", User: "alice", HeldUntil: base.Add(time.Hour), Overage: true}
	lingering := domain.Seat{Tenant: "acme", LicenseID: "L1", Key: "lingering", User: "bob", HeldUntil: base.Add(time.Hour), Lingering: true}
	putSeats(t, s, held, lingering)

	if extend("held", base.Add(time.Minute)) {
		t.Error("ExtendSeat to an earlier time reported a write")
	}
	got, _ := getSeat(t, s, "acme", "L1", "held")
	same(t, "seat after an ExtendSeat to an earlier time", *got, held)

	if !extend("held", base.Add(2*time.Hour)) {
		t.Error("ExtendSeat to a later time reported no write")
	}
	got, _ = getSeat(t, s, "acme", "L1", "held")
	want := held
	want.HeldUntil = base.Add(2 * time.Hour)
	same(t, "extended seat", *got, want)

	// A lingering seat stops lingering, and keeps its later time.
	if !extend("lingering", base.Add(time.Minute)) {
		t.Error("ExtendSeat of a lingering seat reported no write")
	}
	got, _ = getSeat(t, s, "acme", "L1", "lingering")
	want = lingering
	want.Lingering = false
	same(t, "lingering seat after ExtendSeat", *got, want)

	if err := readErr(t, s, func(tx store.Tx) error {
		_, err := tx.ExtendSeat(ctx, "acme", "L1", "held", base.Add(3*time.Hour))
		return err
	}); err == nil {
		t.Error("ExtendSeat in a View succeeded")
	}
}
