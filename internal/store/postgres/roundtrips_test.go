package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// openCounting opens a store whose connections count their writes (one per round trip).
func openCounting(t *testing.T) (*Store, *atomic.Int64) {
	var writes atomic.Int64
	count := func(cfg *pgxpool.Config) {
		dial := cfg.ConnConfig.DialFunc
		cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			return countingConn{c, &writes}, err
		}
	}
	return mustOpen(t, newDatabase(t), func(o *options) { o.pool, o.noAnalyze = count, true }), &writes
}

// TestNowFromTransactions: Now answers from the clock the last transactions read, without
// a round trip, and never ahead of a later transaction's clock.
func TestNowFromTransactions(t *testing.T) {
	st, writes := openCounting(t)
	ctx := context.Background()
	view := func() time.Time {
		var now time.Time
		if err := st.View(ctx, func(tx store.Tx) error { now = tx.Now(); return nil }); err != nil {
			t.Fatal(err)
		}
		return now
	}
	view()
	time.Sleep(5 * time.Millisecond) // older than the reading's round trip
	before := writes.Load()
	n1, err := st.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := writes.Load() - before; got != 0 {
		t.Errorf("Now after a transaction cost %d round trips, want 0", got)
	}
	if n1.Location() != time.UTC {
		t.Errorf("Now = %v, want UTC", n1)
	}
	for i := range 200 {
		n, err := st.Now(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if later := view(); later.Before(n) {
			t.Fatalf("round %d: a later transaction's Now %v is before Now %v", i, later, n)
		}
	}
	// Without a recent reading Now asks the database.
	st.sample.Store(&clockSample{db: n1, local: time.Now().Add(-2 * sampleMaxAge)})
	before = writes.Load()
	n2, err := st.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := writes.Load() - before; got != 1 {
		t.Errorf("Now with an old reading cost %d round trips, want 1", got)
	}
	if !n2.After(n1) {
		t.Errorf("Now did not advance: %v then %v", n1, n2)
	}
}

// TestUpdateOfLockedLeaseHeldBack: UpdateLease of a lease the transaction locked travels
// with the next round trip (here the COMMIT); of one it did not lock it is checked at once.
func TestUpdateOfLockedLeaseHeldBack(t *testing.T) {
	st, writes := openCounting(t)
	ctx := context.Background()
	l := &domain.Lease{Tenant: "acme", Root: "r1", ID: "r1", LicenseID: "L", Item: "i", SeatKey: "s", SessionKey: "k",
		IssuedAt: time.Now(), RenewedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour), RefreshAt: time.Now()}
	if err := st.Update(ctx, func(tx store.Tx) error { return tx.InsertLease(ctx, l) }); err != nil {
		t.Fatal(err)
	}
	for round := range 2 { // the first round prepares the statements
		before := writes.Load()
		err := st.Update(ctx, func(tx store.Tx) error {
			cur, err := tx.LockLease(ctx, "acme", "L", "s", "k")
			if err != nil {
				return err
			}
			cur.HWName = "renamed"
			return tx.UpdateLease(ctx, cur)
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := writes.Load() - before; round == 1 && got != 3 { // BEGIN+now(), the lock, the update with COMMIT
			t.Errorf("lock and update cost %d round trips, want 3", got)
		}
	}
	err := st.View(ctx, func(tx store.Tx) error {
		got, err := tx.FindLease(ctx, "acme", "r1")
		if err == nil && got.HWName != "renamed" {
			t.Errorf("hw_name %q after the update, want renamed", got.HWName)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Deleted, then updated: no longer held back, so the missing row is reported.
	err = st.Update(ctx, func(tx store.Tx) error {
		cur, err := tx.LockLease(ctx, "acme", "L", "s", "k")
		if err != nil {
			return err
		}
		if _, err := tx.DeleteLease(ctx, "acme", cur.Root); err != nil {
			return err
		}
		if err := tx.UpdateLease(ctx, cur); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("UpdateLease of a deleted lease: %v, want ErrNotFound", err)
		}
		return errors.New("roll back")
	})
	if err == nil {
		t.Fatal("the update committed")
	}
}

// TestLockLicenseReadsAhead: after a plain GetLeaseBySessionKey, LockLicense of its license
// locks and reads the lease and its seat in its own round trip, for the LockLease and
// GetSeat that follow; a write in between makes them read again.
func TestLockLicenseReadsAhead(t *testing.T) {
	st, writes := openCounting(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	grant := func(hw string) error {
		return st.Update(ctx, func(tx store.Tx) error {
			if _, err := tx.GetLeaseBySessionKey(ctx, "acme", "L", "seat-"+hw, "sk-"+hw); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("GetLeaseBySessionKey: %v, want ErrNotFound", err)
			}
			ls, err := tx.LockLicense(ctx, "acme", "L")
			if err != nil {
				return err
			}
			if _, err := tx.LockLease(ctx, "acme", "L", "seat-"+hw, "sk-"+hw); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("LockLease: %v, want ErrNotFound", err)
			}
			if _, err := tx.GetSeat(ctx, "acme", "L", "seat-"+hw); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("GetSeat: %v, want ErrNotFound", err)
			}
			seat := &domain.Seat{Tenant: "acme", LicenseID: "L", Key: "seat-" + hw, User: "u", HeldUntil: now.Add(time.Hour)}
			if err := tx.PutSeat(ctx, seat); err != nil {
				return err
			}
			l := &domain.Lease{Tenant: "acme", Root: "r-" + hw, ID: "r-" + hw, LicenseID: "L", Item: "i", SeatKey: "seat-" + hw,
				SessionKey: "sk-" + hw, IssuedAt: now, RenewedAt: now, ExpiresAt: now.Add(time.Hour), RefreshAt: now}
			if err := tx.InsertLease(ctx, l); err != nil {
				return err
			}
			ls.SeatsHeld++
			return tx.SaveLicenseState(ctx, ls)
		})
	}
	if err := grant("warm-up"); err != nil { // prepares the statements
		t.Fatal(err)
	}
	before := writes.Load()
	if err := grant("a"); err != nil {
		t.Fatal(err)
	}
	// BEGIN+now(), the lookup, the license lock with the lease and seat, the seat, lease
	// and state writes with COMMIT.
	if got := writes.Load() - before; got != 4 {
		t.Errorf("a grant cost %d round trips, want 4", got)
	}

	// Found: the lease and seat read ahead are the ones LockLease and GetSeat read.
	err := st.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.GetLeaseBySessionKey(ctx, "acme", "L", "seat-a", "sk-a"); err != nil {
			return err
		}
		if _, err := tx.LockLicense(ctx, "acme", "L"); err != nil {
			return err
		}
		l, err := tx.LockLease(ctx, "acme", "L", "seat-a", "sk-a")
		if err != nil || l.Root != "r-a" || !l.ExpiresAt.Equal(now.Add(time.Hour)) {
			t.Errorf("LockLease read ahead: %+v, %v", l, err)
		}
		s, err := tx.GetSeat(ctx, "acme", "L", "seat-a")
		if err != nil || s.Key != "seat-a" || !s.HeldUntil.Equal(now.Add(time.Hour)) {
			t.Errorf("GetSeat read ahead: %+v, %v", s, err)
		}
		// Read ahead once: asked again, they are read again (the same here).
		if _, err := tx.GetSeat(ctx, "acme", "L", "seat-a"); err != nil {
			t.Errorf("GetSeat again: %v", err)
		}
		return errors.New("roll back")
	})
	if err == nil {
		t.Fatal("committed")
	}

	// A write between the lock and the reads: they go to the database.
	err = st.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.GetLeaseBySessionKey(ctx, "acme", "L", "seat-a", "sk-a"); err != nil {
			return err
		}
		if _, err := tx.LockLicense(ctx, "acme", "L"); err != nil {
			return err
		}
		if _, err := tx.DeleteLease(ctx, "acme", "r-a"); err != nil {
			return err
		}
		if _, err := tx.DeleteSeat(ctx, "acme", "L", "seat-a"); err != nil {
			return err
		}
		if l, err := tx.LockLease(ctx, "acme", "L", "seat-a", "sk-a"); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("LockLease after DeleteLease: %+v, %v; want ErrNotFound", l, err)
		}
		if s, err := tx.GetSeat(ctx, "acme", "L", "seat-a"); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("GetSeat after DeleteSeat: %+v, %v; want ErrNotFound", s, err)
		}
		return errors.New("roll back")
	})
	if err == nil {
		t.Fatal("committed")
	}
}

// TestLockLeaseReadsSeatAhead: a renewal under its lease lock alone (a plain lookup, then
// LockLease of the same key, no lock before) locks and reads the seat in LockLease's round
// trip, and ExtendSeat answers from it and is held back: 4 round trips in all. What it
// answers is what the UPDATE does.
func TestLockLeaseReadsSeatAhead(t *testing.T) {
	st, writes := openCounting(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	err := st.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutSeat(ctx, &domain.Seat{Tenant: "acme", LicenseID: "L", Key: "seat", User: "u", HeldUntil: now.Add(time.Hour)}); err != nil {
			return err
		}
		return tx.InsertLease(ctx, &domain.Lease{Tenant: "acme", Root: "r", ID: "r", LicenseID: "L", Item: "i", SeatKey: "seat",
			SessionKey: "sk", IssuedAt: now, RenewedAt: now, ExpiresAt: now.Add(time.Hour), RefreshAt: now})
	})
	if err != nil {
		t.Fatal(err)
	}
	// renewAfter extends the lease to until after the first lookup, and reports what
	// ExtendSeat answered; renew's first lookup is the plain one.
	renewAfter := func(lookup func(tx store.Tx) (*domain.Lease, error), until time.Time) (bool, error) {
		var extended bool
		err := st.Update(ctx, func(tx store.Tx) error {
			if _, err := lookup(tx); err != nil {
				return err
			}
			l, err := tx.LockLease(ctx, "acme", "L", "seat", "sk")
			if err != nil {
				return err
			}
			l.ExpiresAt = until
			if err := tx.UpdateLease(ctx, l); err != nil {
				return err
			}
			extended, err = tx.ExtendSeat(ctx, "acme", "L", "seat", until)
			return err
		})
		return extended, err
	}
	renew := func(until time.Time) (bool, error) {
		return renewAfter(func(tx store.Tx) (*domain.Lease, error) {
			return tx.GetLeaseBySessionKey(ctx, "acme", "L", "seat", "sk")
		}, until)
	}
	if _, err := renew(now.Add(61 * time.Minute)); err != nil { // prepares the statements
		t.Fatal(err)
	}
	before := writes.Load()
	extended, err := renew(now.Add(2 * time.Hour))
	if err != nil || !extended {
		t.Fatalf("renewal: extended %v, %v", extended, err)
	}
	if got := writes.Load() - before; got != 4 {
		t.Errorf("a renewal cost %d round trips, want 4", got)
	}
	seat := func() *domain.Seat {
		var s *domain.Seat
		if err := st.View(ctx, func(tx store.Tx) (err error) { s, err = tx.GetSeat(ctx, "acme", "L", "seat"); return err }); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := seat(); !s.HeldUntil.Equal(now.Add(2 * time.Hour)) {
		t.Errorf("seat held until %v after the renewal, want %v", s.HeldUntil, now.Add(2*time.Hour))
	}

	// A seat that already holds long enough is not extended, as the UPDATE would not.
	if extended, err := renew(now.Add(90 * time.Minute)); err != nil || extended {
		t.Errorf("renewal within the seat's hold: extended %v, %v; want false", extended, err)
	}
	if s := seat(); !s.HeldUntil.Equal(now.Add(2 * time.Hour)) {
		t.Errorf("seat held until %v, want it kept at %v", s.HeldUntil, now.Add(2*time.Hour))
	}

	// The engine's first lookup of a renewal locks the live lease and its seat at once
	// (LockLiveLease): the LockLease and ExtendSeat after it cost no round trip.
	renewLive := func(until time.Time) error {
		_, err := renewAfter(func(tx store.Tx) (*domain.Lease, error) {
			return tx.LockLiveLease(ctx, "acme", "L", "seat", "sk", now)
		}, until)
		return err
	}
	if err := renewLive(now.Add(150 * time.Minute)); err != nil { // prepares the statement
		t.Fatal(err)
	}
	before = writes.Load()
	if err := renewLive(now.Add(3 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := writes.Load() - before; got != 3 {
		t.Errorf("a renewal found by LockLiveLease cost %d round trips, want 3 (BEGIN, the lock, COMMIT)", got)
	}
	if s := seat(); !s.HeldUntil.Equal(now.Add(3 * time.Hour)) {
		t.Errorf("seat held until %v after the renewal, want %v", s.HeldUntil, now.Add(3*time.Hour))
	}
}

// TestHeldBackInsertConflict: an InsertLease held back that conflicts is found at COMMIT,
// which then rolls back; the Update runs again with InsertLease answering at once, and
// its caller sees ErrConflict as without holding back. Through a batch as well.
func TestHeldBackInsertConflict(t *testing.T) {
	for _, opts := range [][]Option{{WithoutBatching()}, nil} {
		st := mustOpen(t, newDatabase(t), opts...)
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Millisecond)
		lease := func(root string) *domain.Lease {
			return &domain.Lease{Tenant: "acme", Root: root, ID: root, LicenseID: "L", Item: "i", SeatKey: "seat", SessionKey: "sk",
				IssuedAt: now, RenewedAt: now, ExpiresAt: now.Add(time.Hour), RefreshAt: now}
		}
		if err := st.Update(ctx, func(tx store.Tx) error { return tx.InsertLease(ctx, lease("first")) }); err != nil {
			t.Fatal(err)
		}
		var runs atomic.Int64
		err := st.Update(ctx, func(tx store.Tx) error {
			runs.Add(1)
			if err := tx.PutSeat(ctx, &domain.Seat{Tenant: "acme", LicenseID: "L", Key: "other", HeldUntil: now.Add(time.Hour)}); err != nil {
				return err
			}
			// The same session key: a conflict.
			if err := tx.InsertLease(ctx, lease("second")); err != nil {
				return err
			}
			return tx.SaveLicenseState(ctx, &domain.LicenseState{Tenant: "acme", LicenseID: "L", SeatsHeld: 9})
		})
		if !errors.Is(err, domain.ErrConflict) {
			t.Errorf("batching %v: Update = %v, want ErrConflict", opts == nil, err)
		}
		if n := runs.Load(); n != 2 {
			t.Errorf("batching %v: fn ran %d times, want 2 (held back, then at once)", opts == nil, n)
		}
		err = st.View(ctx, func(tx store.Tx) error {
			if _, err := tx.GetSeat(ctx, "acme", "L", "other"); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("the seat of the conflicting Update: %v, want ErrNotFound", err)
			}
			if s, _ := tx.GetLicenseState(ctx, "acme", "L"); s.SeatsHeld != 0 {
				t.Errorf("the state of the conflicting Update was saved: %+v", s)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestBatchHeldLicense: in a batch, a license an earlier Update locked is held by the
// transaction: a later Update's lookup of a lease there locks and reads the lease and seat
// at once, and its LockLicense answers from what the batch read and saved, with no round
// trip; a state changed but not saved is not taken for saved.
func TestBatchHeldLicense(t *testing.T) {
	var writes atomic.Int64
	st := mustOpen(t, newDatabase(t), func(o *options) {
		o.noAnalyze = true
		o.pool = func(cfg *pgxpool.Config) {
			cfg.MaxConns = 1 // every batch on the connection that prepared the statements
			dial := cfg.ConnConfig.DialFunc
			cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := dial(ctx, network, addr)
				return countingConn{c, &writes}, err
			}
		}
	})
	ctx := context.Background()
	grant := func(n int) func(store.Tx) error {
		return func(tx store.Tx) error {
			ls, err := tx.LockLicense(ctx, "acme", "L")
			if err != nil {
				return err
			}
			ls.SeatsHeld = n
			return tx.SaveLicenseState(ctx, ls)
		}
	}
	var costs []int64
	later := func(tx store.Tx) error {
		before := writes.Load()
		if _, err := tx.GetLeaseBySessionKey(ctx, "acme", "L", "seat", "sk"); !errors.Is(err, domain.ErrNotFound) {
			return fmt.Errorf("GetLeaseBySessionKey: %v, want ErrNotFound", err)
		}
		ls, err := tx.LockLicense(ctx, "acme", "L")
		if err != nil {
			return err
		}
		if ls.SeatsHeld != 7 {
			return fmt.Errorf("LockLicense of the held license: %d seats held, want the 7 saved", ls.SeatsHeld)
		}
		ls.SeatsHeld = 99 // not saved
		if _, err := tx.LockLease(ctx, "acme", "L", "seat", "sk"); !errors.Is(err, domain.ErrNotFound) {
			return fmt.Errorf("LockLease: %v, want ErrNotFound", err)
		}
		if _, err := tx.GetSeat(ctx, "acme", "L", "seat"); !errors.Is(err, domain.ErrNotFound) {
			return fmt.Errorf("GetSeat: %v, want ErrNotFound", err)
		}
		costs = append(costs, writes.Load()-before)
		return nil
	}
	check := func(tx store.Tx) error {
		ls, err := tx.LockLicense(ctx, "acme", "L")
		if err != nil {
			return err
		}
		if ls.SeatsHeld != 7 {
			return fmt.Errorf("after an unsaved change: %d seats held, want 7", ls.SeatsHeld)
		}
		return nil
	}
	for range 2 { // the first prepares the statements
		costs = nil
		errs, b := batchOf(t, st, grant(7), later, check)
		for i, err := range errs {
			if err != nil {
				t.Fatalf("Update %d: %v", i, err)
			}
		}
		if b.batches.Load() != 1 || b.updates.Load() != 3 {
			t.Fatalf("%d batches of %d Updates, want one of 3", b.batches.Load(), b.updates.Load())
		}
	}
	if len(costs) != 1 || costs[0] != 1 {
		t.Errorf("the later Update cost %v round trips, want 1 (the lookup with the lease and seat)", costs)
	}
}

// TestLockKeyRidesWithNextStatement: a key lock costs no round trip of its own; it is taken
// by the statement after it, whose read runs under it.
func TestLockKeyRidesWithNextStatement(t *testing.T) {
	st, writes := openCounting(t)
	ctx := context.Background()
	lockAndRead := func() error {
		return st.Update(ctx, func(tx store.Tx) error {
			if err := tx.LockKey(ctx, "session:s"); err != nil {
				return err
			}
			_, err := tx.GetSession(ctx, "acme", "s")
			if errors.Is(err, domain.ErrNotFound) {
				return nil
			}
			return err
		})
	}
	if err := lockAndRead(); err != nil { // prepares the statements
		t.Fatal(err)
	}
	before := writes.Load()
	if err := lockAndRead(); err != nil {
		t.Fatal(err)
	}
	if got := writes.Load() - before; got != 3 {
		t.Errorf("a key lock and a read cost %d round trips, want 3 (BEGIN, lock with read, COMMIT)", got)
	}
}
