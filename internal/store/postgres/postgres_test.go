package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
	"github.com/leasehold/leasehold/internal/store/postgres/pgtest"
	"github.com/leasehold/leasehold/internal/store/storetest"
)

// newDatabase creates a fresh database (pgtest: the test is skipped without
// LEASEHOLD_TEST_POSTGRES) and returns the connection string for it.
func newDatabase(tb testing.TB) string {
	tb.Helper()
	return pgtest.FreshDatabase(tb, "leasehold_")
}

func mustOpen(tb testing.TB, dsn string, opts ...Option) *Store {
	tb.Helper()
	st, err := Open(context.Background(), dsn, opts...)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return mustOpen(t, newDatabase(t))
	})
}

// TestConformanceUnbatched: the same without batches, the path of an Update that a batch
// hands back (see batcher), and the one where Updates deadlock and are retried.
func TestConformanceUnbatched(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return mustOpen(t, newDatabase(t), WithoutBatching())
	})
}

// TestSeatRaceAcrossProcesses races 200 goroutines over three Stores (three pools, as three
// server processes would have) for a 10-seat license: exactly 10 must win.
func TestSeatRaceAcrossProcesses(t *testing.T) {
	dsn := newDatabase(t)
	stores := []*Store{mustOpen(t, dsn), mustOpen(t, dsn), mustOpen(t, dsn)}
	ctx := context.Background()
	const seats, racers = 10, 200

	var granted atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, racers)
	for i := range racers {
		wg.Go(func() {
			<-start
			var got bool
			err := stores[i%len(stores)].Update(ctx, func(tx store.Tx) error {
				got = false
				st, err := tx.LockLicense(ctx, "acme", "lic-1")
				if err != nil {
					return err
				}
				if st.SeatsHeld >= seats {
					return nil
				}
				seat := &domain.Seat{Tenant: "acme", LicenseID: "lic-1", Key: fmt.Sprintf("seat-%d", i),
					User: fmt.Sprintf("user-%d", i), HeldUntil: tx.Now().Add(time.Hour)}
				if err := tx.PutSeat(ctx, seat); err != nil {
					return err
				}
				st.SeatsHeld++
				if err := tx.SaveLicenseState(ctx, st); err != nil {
					return err
				}
				got = true
				return nil
			})
			if err != nil {
				errs <- err
				return
			}
			if got {
				granted.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Update: %v", err)
	}
	if g := granted.Load(); g != seats {
		t.Errorf("granted %d seats, want %d", g, seats)
	}
	for i, s := range stores {
		err := s.View(ctx, func(tx store.Tx) error {
			n, err := tx.CountLiveSeats(ctx, "acme", "lic-1", tx.Now())
			if err != nil {
				return err
			}
			st, err := tx.GetLicenseState(ctx, "acme", "lic-1")
			if err != nil {
				return err
			}
			if n != seats || st.SeatsHeld != seats {
				t.Errorf("store %d sees %d seat rows and SeatsHeld %d, want %d", i, n, st.SeatsHeld, seats)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestConcurrentOpen starts five processes' worth of Opens at once on an empty database:
// the migrations race, and every Open must succeed.
func TestConcurrentOpen(t *testing.T) {
	dsn := newDatabase(t)
	const n = 5
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = Open(context.Background(), dsn)
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Open %d: %v", i, errs[i])
			continue
		}
		defer stores[i].Close()
	}
	if t.Failed() {
		return
	}
	var versions []int
	err := stores[0].View(context.Background(), func(stx store.Tx) error {
		var err error
		versions, err = list(context.Background(), stx.(*tx), "versions", `SELECT version FROM schema_migrations ORDER BY version`, nil,
			func(r pgx.Rows) (int, error) {
				var v int
				return v, r.Scan(&v)
			})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := len(migrations) - 1; len(versions) != want || versions[want-1] != want {
		t.Errorf("schema_migrations = %v, want 1..%d once each", versions, want)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	dsn := newDatabase(t)
	st := mustOpen(t, dsn)
	if _, err := st.pool.Exec(context.Background(), `INSERT INTO schema_migrations (version) VALUES (9999)`); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), dsn)
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open on a newer schema: %v, want a refusal", err)
	}
}

func TestConnectionStrings(t *testing.T) {
	dsn := newDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		t.Skip("the test DSN is not a URL")
	}
	name := strings.TrimPrefix(u.Path, "/")
	user := u.User.Username()

	forms := map[string]string{
		"url":           dsn,
		"key=value":     fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=disable", u.Hostname(), u.Port(), user, name),
		"password":      strings.Replace(dsn, "://"+user+"@", "://"+user+":unused-secret@", 1),
		"pool settings": dsn + "&pool_max_conns=2",
	}
	for _, dir := range []string{"/var/run/postgresql", "/tmp"} {
		if _, err := os.Stat(dir + "/.s.PGSQL." + u.Port()); err == nil {
			forms["socket dir"] = fmt.Sprintf("host=%s port=%s user=%s dbname=%s", dir, u.Port(), user, name)
			forms["socket dir URL"] = fmt.Sprintf("postgres://%s@/%s?host=%s&port=%s", user, name, dir, u.Port())
			break
		}
	}
	for form, s := range forms {
		t.Run(form, func(t *testing.T) {
			st := mustOpen(t, s)
			if err := st.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}

	_, err = Open(context.Background(), "postgres://u:hunter2@host:notaport/db")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("bad connection string: error %v must exist and not show the password", err)
	}
}

func TestClock(t *testing.T) {
	dsn := newDatabase(t)
	ctx := context.Background()
	st := mustOpen(t, dsn)
	shifted := mustOpen(t, dsn, WithClockOffset(time.Hour))

	var dbNow time.Time
	if err := st.pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&dbNow); err != nil {
		t.Fatal(err)
	}
	err := st.Update(ctx, func(tx store.Tx) error {
		first := tx.Now()
		if d := first.Sub(dbNow); d < -time.Second || d > time.Second {
			t.Errorf("Tx.Now %v is not the database's clock %v", first, dbNow)
		}
		if first.Location() != time.UTC {
			t.Errorf("Tx.Now location %v, want UTC", first.Location())
		}
		time.Sleep(20 * time.Millisecond)
		// One statement later the clock has not moved: it is the transaction's start.
		if _, err := tx.GetLicenseState(ctx, "acme", "x"); err != nil {
			return err
		}
		if !tx.Now().Equal(first) {
			t.Errorf("Tx.Now moved within a transaction")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	now, err := st.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	later, err := shifted.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := later.Sub(now); d < time.Hour-time.Second || d > time.Hour+time.Second {
		t.Errorf("WithClockOffset(1h): Now differs by %v", d)
	}
	err = shifted.View(ctx, func(tx store.Tx) error {
		if d := tx.Now().Sub(now); d < time.Hour-time.Second || d > time.Hour+time.Second {
			t.Errorf("WithClockOffset(1h): Tx.Now differs by %v", d)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	fixed := time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 7200))
	injected := mustOpen(t, dsn, WithClock(func() time.Time { return fixed }))
	err = injected.Update(ctx, func(tx store.Tx) error {
		if !tx.Now().Equal(fixed) || tx.Now().Location() != time.UTC {
			t.Errorf("WithClock: Tx.Now = %v, want %v in UTC", tx.Now(), fixed)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := injected.Now(ctx); !got.Equal(fixed) {
		t.Errorf("WithClock: Now = %v, want %v", got, fixed)
	}
}

// TestTimePrecision: times come back as the same instant to the microsecond, in UTC.
func TestTimePrecision(t *testing.T) {
	st := mustOpen(t, newDatabase(t))
	ctx := context.Background()
	at := time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", 3600))
	err := st.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutSeat(ctx, &domain.Seat{Tenant: "acme", LicenseID: "l", Key: "zero"}); err != nil {
			return err
		}
		return tx.PutSeat(ctx, &domain.Seat{Tenant: "acme", LicenseID: "l", Key: "k", HeldUntil: at})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = st.View(ctx, func(tx store.Tx) error {
		s, err := tx.GetSeat(ctx, "acme", "l", "k")
		if err != nil {
			return err
		}
		if !s.HeldUntil.Equal(at.Truncate(time.Microsecond)) || s.HeldUntil.Location() != time.UTC {
			t.Errorf("HeldUntil = %v, want %v in UTC", s.HeldUntil, at.Truncate(time.Microsecond))
		}
		// The zero time is stored (as long past: the seat counts for nothing) and read back.
		z, err := tx.GetSeat(ctx, "acme", "l", "zero")
		if err != nil {
			return err
		}
		if z.HeldUntil != (time.Time{}) {
			t.Errorf("zero HeldUntil read back as %v", z.HeldUntil)
		}
		if n, err := tx.CountLiveSeats(ctx, "acme", "l", tx.Now()); err != nil || n != 1 {
			t.Errorf("CountLiveSeats = %d, %v; want 1 (the zero seat is not live)", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestViewIsReadOnly(t *testing.T) {
	st := mustOpen(t, newDatabase(t))
	ctx := context.Background()
	err := st.View(ctx, func(tx store.Tx) error {
		return tx.PutSeat(ctx, &domain.Seat{Tenant: "acme", LicenseID: "l", Key: "k", HeldUntil: tx.Now().Add(time.Hour)})
	})
	if err == nil {
		t.Fatal("a write in View succeeded")
	}
	err = st.View(ctx, func(tx store.Tx) error {
		_, err := tx.LockLicense(ctx, "acme", "l")
		return err
	})
	if err == nil {
		t.Fatal("LockLicense in View succeeded")
	}
}

// TestSwallowedErrorRollsBack: PostgreSQL aborts a transaction at its first error, so an
// Update whose fn drops that error must fail, and keep nothing.
func TestSwallowedErrorRollsBack(t *testing.T) {
	st := mustOpen(t, newDatabase(t))
	ctx := context.Background()
	err := st.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutSeat(ctx, &domain.Seat{Tenant: "acme", LicenseID: "l", Key: "kept?", HeldUntil: tx.Now().Add(time.Hour)}); err != nil {
			return err
		}
		// Not valid UTF-8: the server refuses the statement.
		_ = tx.PutSeat(ctx, &domain.Seat{Tenant: "acme", LicenseID: "l", Key: "\xff", HeldUntil: tx.Now()})
		return nil
	})
	if err == nil {
		t.Fatal("Update reported success after a failed statement")
	}
	err = st.View(ctx, func(tx store.Tx) error {
		if _, err := tx.GetSeat(ctx, "acme", "l", "kept?"); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("GetSeat after the failed Update: %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDeadlockRetried: two transactions lock two licenses in opposite orders; PostgreSQL
// aborts one with a deadlock (40P01) and Update runs it again, so both succeed.
func TestDeadlockRetried(t *testing.T) {
	dsn := newDatabase(t)
	a, b := mustOpen(t, dsn), mustOpen(t, dsn)
	ctx := context.Background()
	var attempts atomic.Int32
	var firstA, firstB sync.Once
	lockedA, lockedB := make(chan struct{}), make(chan struct{})
	lockBoth := func(st *Store, first, second string, once *sync.Once, mine, theirs chan struct{}) error {
		return st.Update(ctx, func(tx store.Tx) error {
			attempts.Add(1)
			if _, err := tx.LockLicense(ctx, "acme", first); err != nil {
				return err
			}
			once.Do(func() { close(mine) })
			select {
			case <-theirs:
			case <-time.After(10 * time.Second):
				return errors.New("the other transaction never took its first lock")
			}
			st, err := tx.LockLicense(ctx, "acme", second)
			if err != nil {
				return err
			}
			st.UseCount++
			return tx.SaveLicenseState(ctx, st)
		})
	}
	var wg sync.WaitGroup
	var errA, errB error
	wg.Go(func() { errA = lockBoth(a, "lic-1", "lic-2", &firstA, lockedA, lockedB) })
	wg.Go(func() { errB = lockBoth(b, "lic-2", "lic-1", &firstB, lockedB, lockedA) })
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("Update: %v, %v", errA, errB)
	}
	// At least one deadlock victim ran again. Under load a retried attempt can meet the
	// other's first insert of a license's state row and be chosen as a victim once more,
	// so more than 3 is allowed; what counts is that both committed exactly once.
	if n := attempts.Load(); n < 3 {
		t.Errorf("%d attempts, want at least 3 (a deadlock victim run again)", n)
	}
	err := a.View(ctx, func(tx store.Tx) error {
		s1, _ := tx.GetLicenseState(ctx, "acme", "lic-1")
		s2, _ := tx.GetLicenseState(ctx, "acme", "lic-2")
		if s1.UseCount+s2.UseCount != 2 {
			t.Errorf("use counts %d + %d, want 2 in all", s1.UseCount, s2.UseCount)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestLockLicenseSerializes: while one process holds a license, another's LockLicense waits
// for its commit and then sees what it wrote.
func TestLockLicenseSerializes(t *testing.T) {
	dsn := newDatabase(t)
	a, b := mustOpen(t, dsn), mustOpen(t, dsn)
	ctx := context.Background()
	locked, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		err := a.Update(ctx, func(tx store.Tx) error {
			st, err := tx.LockLicense(ctx, "acme", "new-license")
			if err != nil {
				return err
			}
			close(locked)
			time.Sleep(200 * time.Millisecond)
			st.SeatsHeld = 7
			return tx.SaveLicenseState(ctx, st)
		})
		if err != nil {
			t.Error(err)
		}
	}()
	<-locked
	began := time.Now()
	err := b.Update(ctx, func(tx store.Tx) error {
		st, err := tx.LockLicense(ctx, "acme", "new-license")
		if err != nil {
			return err
		}
		if st.SeatsHeld != 7 {
			t.Errorf("second LockLicense saw SeatsHeld %d, want 7", st.SeatsHeld)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(began); waited < 100*time.Millisecond {
		t.Errorf("second LockLicense returned after %v: it did not wait for the first", waited)
	}
	<-done
}

// TestRacesAcrossProcesses: the first signing key of a tenant, an hw lock and a
// deterministic session id each have exactly one winner across processes.
func TestRacesAcrossProcesses(t *testing.T) {
	dsn := newDatabase(t)
	stores := []*Store{mustOpen(t, dsn), mustOpen(t, dsn), mustOpen(t, dsn)}
	ctx := context.Background()
	const racers = 30

	race := func(fn func(i int, tx store.Tx) error) {
		t.Helper()
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range racers {
			wg.Go(func() {
				<-start
				if err := stores[i%len(stores)].Update(ctx, func(tx store.Tx) error { return fn(i, tx) }); err != nil {
					t.Error(err)
				}
			})
		}
		close(start)
		wg.Wait()
	}

	var keys atomic.Int32
	race(func(i int, tx store.Tx) error {
		ok, err := tx.InsertSigningKey(ctx, store.SigningKey{Tenant: "acme", KID: fmt.Sprintf("kid-%d", i),
			Algorithm: "RS256", Private: []byte("k"), CreatedAt: tx.Now()}, true)
		if ok {
			keys.Add(1)
		}
		return err
	})
	if n := keys.Load(); n != 1 {
		t.Errorf("%d processes created the first signing key, want 1", n)
	}

	var mu sync.Mutex
	owners := map[string]bool{}
	race(func(i int, tx store.Tx) error {
		owner, err := tx.LockHW(ctx, "acme", "trial", "hw-1", fmt.Sprintf("lic-%d", i))
		mu.Lock()
		owners[owner] = true
		mu.Unlock()
		return err
	})
	if len(owners) != 1 {
		t.Errorf("hw-1 locked to %d licenses, want 1", len(owners))
	}

	var created atomic.Int32
	race(func(i int, tx store.Tx) error {
		s := &domain.Session{ID: "cc-jim2-app", Tenant: "acme", Kind: domain.SessionClientCredentials,
			Client: "jim2-app", CreatedAt: tx.Now(), LastUsedAt: tx.Now(), ExpiresAt: tx.Now().Add(time.Hour)}
		err := tx.InsertSession(ctx, s)
		if errors.Is(err, domain.ErrConflict) {
			// The conflict leaves the transaction usable: the loser joins the winner's session.
			_, err = tx.GetSession(ctx, "acme", s.ID)
			return err
		}
		if err == nil {
			created.Add(1)
		}
		return err
	})
	if n := created.Load(); n != 1 {
		t.Errorf("%d processes created the session, want 1", n)
	}
}

func TestLeaseChain(t *testing.T) {
	st := mustOpen(t, newDatabase(t))
	ctx := context.Background()
	err := st.Update(ctx, func(tx store.Tx) error {
		now := tx.Now()
		l := &domain.Lease{ID: "a", Root: "a", Tenant: "acme", LicenseID: "lic", Item: "i", SeatKey: "s", SessionKey: "sk",
			Mode: domain.ModeCache, IssuedAt: now, RenewedAt: now, ExpiresAt: now.Add(time.Minute), RefreshAt: now}
		if err := tx.InsertLease(ctx, l); err != nil {
			return err
		}
		// Returned, not reported: the first run holds the inserts back and learns of the
		// conflict only from the database, then runs again (see InsertLease).
		if err := tx.InsertLease(ctx, l); !errors.Is(err, domain.ErrConflict) {
			return fmt.Errorf("second InsertLease: %v, want ErrConflict", err)
		}
		l.PrevID, l.ID, l.PrevUntil = "a", "b", now.Add(10*time.Second)
		if err := tx.UpdateLease(ctx, l); err != nil {
			return err
		}
		l.PrevID, l.ID = "b", "c"
		if err := tx.UpdateLease(ctx, l); err != nil {
			return err
		}
		for _, id := range []string{"a", "b", "c"} {
			got, err := tx.FindLease(ctx, "acme", id)
			if err != nil {
				return fmt.Errorf("FindLease(%s): %w", id, err)
			}
			if got.Root != "a" || got.ID != "c" || got.PrevID != "b" || !got.PrevUntil.Equal(l.PrevUntil) {
				t.Errorf("FindLease(%s) = %+v", id, got)
			}
		}
		if _, err := tx.FindLease(ctx, "other", "a"); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("FindLease in another tenant: %v, want ErrNotFound", err)
		}
		if err := tx.UpdateLease(ctx, &domain.Lease{Tenant: "acme", Root: "nope", ID: "x"}); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("UpdateLease of a missing lease: %v, want ErrNotFound", err)
		}
		if ok, err := tx.DeleteLease(ctx, "acme", "a"); !ok || err != nil {
			t.Errorf("DeleteLease = %v, %v", ok, err)
		}
		for _, id := range []string{"a", "b", "c", "x"} {
			if _, err := tx.FindLease(ctx, "acme", id); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("FindLease(%s) after delete: %v, want ErrNotFound", id, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkGrant is the hot path of a seat grant: LockLicense, PutSeat, SaveLicenseState in
// one Update (three round trips: BEGIN with now(), the lock, then the two writes with COMMIT).
func BenchmarkGrant(b *testing.B) {
	st := mustOpen(b, newDatabase(b))
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		if err := grant(ctx, st, "lic-1", fmt.Sprintf("seat-%d", i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGrantParallel: concurrent grants, each goroutine on its own license (no lock
// contention: measures throughput of the pool and the server's commits).
func BenchmarkGrantParallel(b *testing.B) {
	st := mustOpen(b, newDatabase(b))
	ctx := context.Background()
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		lic := fmt.Sprintf("lic-%d", n.Add(1))
		i := 0
		for pb.Next() {
			i++
			if err := grant(ctx, st, lic, fmt.Sprintf("seat-%d", i)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGrantContended: concurrent grants on one license (they queue on its row lock).
func BenchmarkGrantContended(b *testing.B) {
	st := mustOpen(b, newDatabase(b))
	ctx := context.Background()
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := grant(ctx, st, "lic-1", fmt.Sprintf("seat-%d", n.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRefusal is a refused seat: the license is locked and read, nothing written (its
// commit does not wait for the disk).
func BenchmarkRefusal(b *testing.B) {
	st := mustOpen(b, newDatabase(b))
	ctx := context.Background()
	if err := grant(ctx, st, "lic-1", "seat-0"); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		err := st.Update(ctx, func(tx store.Tx) error {
			if _, err := tx.LockLicense(ctx, "acme", "lic-1"); err != nil {
				return err
			}
			_, err := tx.CountLiveSeats(ctx, "acme", "lic-1", tx.Now())
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGrantRoundTrips reports the round trips (client writes) a grant costs.
func BenchmarkGrantRoundTrips(b *testing.B) {
	var writes atomic.Int64
	count := func(cfg *pgxpool.Config) {
		dial := cfg.ConnConfig.DialFunc
		cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			return countingConn{c, &writes}, err
		}
	}
	st := mustOpen(b, newDatabase(b), func(o *options) { o.pool, o.noAnalyze = count, true })
	ctx := context.Background()
	if err := grant(ctx, st, "lic-1", "warm-up"); err != nil { // prepares the statements
		b.Fatal(err)
	}
	writes.Store(0)
	i := 0
	for b.Loop() {
		i++
		if err := grant(ctx, st, "lic-1", fmt.Sprintf("seat-%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(writes.Load())/float64(i), "roundtrips/op")
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(p)
}

func grant(ctx context.Context, st *Store, license, key string) error {
	return st.Update(ctx, func(tx store.Tx) error {
		ls, err := tx.LockLicense(ctx, "acme", license)
		if err != nil {
			return err
		}
		seat := &domain.Seat{Tenant: "acme", LicenseID: license, Key: key, User: "alice", HeldUntil: tx.Now().Add(time.Hour)}
		if err := tx.PutSeat(ctx, seat); err != nil {
			return err
		}
		ls.SeatsHeld++
		return tx.SaveLicenseState(ctx, ls)
	})
}

// TestHeldBackWriteFails: a write held back for the next round trip still fails its
// transaction when the database refuses it.
func TestHeldBackWriteFails(t *testing.T) {
	st := mustOpen(t, newDatabase(t))
	ctx := context.Background()
	var readErr error
	err := st.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutSeat(ctx, &domain.Seat{Tenant: "acme", LicenseID: "l", Key: "\xff", HeldUntil: tx.Now()}); err != nil {
			return err
		}
		_, readErr = tx.GetLicenseState(ctx, "acme", "l")
		return readErr
	})
	if readErr == nil || !strings.Contains(readErr.Error(), "put seat") {
		t.Errorf("the read after a refused write: %v, want the write's error", readErr)
	}
	if err == nil {
		t.Error("Update succeeded")
	}
}

// TestSurvivesKilledConnections: connections the server dropped while idle in the pool (a
// restart, a failover) cost a retry, not a failed Update.
func TestSurvivesKilledConnections(t *testing.T) {
	dsn := newDatabase(t)
	st := mustOpen(t, dsn)
	ctx := context.Background()
	if err := grant(ctx, st, "lic-1", "a"); err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, os.Getenv(pgtest.EnvDSN))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var db string
	if err := st.pool.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	var killed int
	err = admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = $1 AND pid <> pg_backend_pid()`, db).Scan(&killed)
	if err != nil || killed == 0 {
		t.Fatalf("terminated %d backends: %v", killed, err)
	}
	if err := grant(ctx, st, "lic-1", "b"); err != nil {
		t.Fatalf("Update after the server dropped the pool's connections: %v", err)
	}
}

// TestWritesAreNoted: every method that may change data marks its transaction as a writer,
// so that its commit waits for the disk; only reads and locks leave it unmarked. A method
// missing from this table fails the test (the count of store.Tx methods is checked).
func TestWritesAreNoted(t *testing.T) {
	st := mustOpen(t, newDatabase(t))
	ctx := context.Background()
	now := time.Now()
	lease := &domain.Lease{ID: "l", Root: "l", Tenant: "acme", LicenseID: "L", ExpiresAt: now}
	session := &domain.Session{ID: "s", Tenant: "acme"}
	writes := map[string]func(tx store.Tx) error{
		"PutObject": func(tx store.Tx) error {
			return tx.PutObject(ctx, store.Object{Tenant: "acme", Kind: domain.KindUser, ID: "u", Spec: []byte(`{}`)})
		},
		"DeleteObject":     func(tx store.Tx) error { _, err := tx.DeleteObject(ctx, "acme", domain.KindUser, "u"); return err },
		"DeleteTenantData": func(tx store.Tx) error { return tx.DeleteTenantData(ctx, "acme") },
		"InsertSigningKey": func(tx store.Tx) error {
			_, err := tx.InsertSigningKey(ctx, store.SigningKey{Tenant: "acme", KID: "k"}, false)
			return err
		},
		"InsertSigningKey(ifNone)": func(tx store.Tx) error {
			_, err := tx.InsertSigningKey(ctx, store.SigningKey{Tenant: "acme", KID: "k"}, true)
			return err
		},
		"RetireSigningKey": func(tx store.Tx) error { return tx.RetireSigningKey(ctx, "acme", "k", now, now) },
		"DeleteSigningKey": func(tx store.Tx) error { return tx.DeleteSigningKey(ctx, "acme", "k") },
		"SaveLicenseState": func(tx store.Tx) error {
			return tx.SaveLicenseState(ctx, &domain.LicenseState{Tenant: "acme", LicenseID: "L"})
		},
		"PutSeat": func(tx store.Tx) error {
			return tx.PutSeat(ctx, &domain.Seat{Tenant: "acme", LicenseID: "L", Key: "k"})
		},
		"ExtendSeat":    func(tx store.Tx) error { _, err := tx.ExtendSeat(ctx, "acme", "L", "k", now); return err },
		"DeleteSeat":    func(tx store.Tx) error { _, err := tx.DeleteSeat(ctx, "acme", "L", "k"); return err },
		"ReapSeats":     func(tx store.Tx) error { _, err := tx.ReapSeats(ctx, "acme", "expired", now); return err },
		"InsertLease":   func(tx store.Tx) error { return tx.InsertLease(ctx, lease) },
		"UpdateLease":   func(tx store.Tx) error { return tx.UpdateLease(ctx, lease) },
		"DeleteLease":   func(tx store.Tx) error { _, err := tx.DeleteLease(ctx, "acme", "l"); return err },
		"LockHW":        func(tx store.Tx) error { _, err := tx.LockHW(ctx, "acme", "m", "hw", "L"); return err },
		"DeleteHWLocks": func(tx store.Tx) error { _, err := tx.DeleteHWLocks(ctx, "acme", "hw"); return err },
		"AppendUsage":   func(tx store.Tx) error { return tx.AppendUsage(ctx, []domain.UsageEvent{{Tenant: "acme"}}) },
		"Heartbeat":     func(tx store.Tx) error { return tx.Heartbeat(ctx, "p", now) },
		"InsertSession": func(tx store.Tx) error { return tx.InsertSession(ctx, session) },
		"UpdateSession": func(tx store.Tx) error { return tx.UpdateSession(ctx, session) },
		"DeleteSession": func(tx store.Tx) error { _, err := tx.DeleteSession(ctx, "acme", "s"); return err },
		"PutSessionLease": func(tx store.Tx) error {
			return tx.PutSessionLease(ctx, store.SessionLease{Tenant: "acme", SessionID: "s", Item: "i", LeaseRoot: "r"})
		},
		"DeleteSessionLease": func(tx store.Tx) error { return tx.DeleteSessionLease(ctx, "acme", "s", "i") },
		"InsertToken":        func(tx store.Tx) error { return tx.InsertToken(ctx, &domain.Token{Hash: "h", Tenant: "acme"}) },
		"DeleteToken":        func(tx store.Tx) error { _, err := tx.DeleteToken(ctx, "h"); return err },
		"DeleteTokens":       func(tx store.Tx) error { _, err := tx.DeleteTokens(ctx, "acme", "s", ""); return err },
		"DeleteExpiredTokens": func(tx store.Tx) error {
			_, err := tx.DeleteExpiredTokens(ctx, now, 10)
			return err
		},
		"InsertUISession": func(tx store.Tx) error {
			return tx.InsertUISession(ctx, &store.UISession{Hash: "h", CreatedAt: now, ExpiresAt: now})
		},
		"DeleteUISession": func(tx store.Tx) error { _, err := tx.DeleteUISession(ctx, "h"); return err },
		"DeleteExpiredUISessions": func(tx store.Tx) error {
			_, err := tx.DeleteExpiredUISessions(ctx, now)
			return err
		},
		"AddUsageHours": func(tx store.Tx) error {
			return tx.AddUsageHours(ctx, []store.UsageHour{{Tenant: "acme", LicenseID: "L", Hour: now, Denials: 1}})
		},
		"PruneUsageHours": func(tx store.Tx) error { _, err := tx.PruneUsageHours(ctx, now); return err },
		"InsertWebhookDeliveries": func(tx store.Tx) error {
			_, err := tx.InsertWebhookDeliveries(ctx, []store.WebhookDelivery{{EventID: "e", Tenant: "acme", Webhook: "w"}})
			return err
		},
		"ClaimWebhookDeliveries": func(tx store.Tx) error { _, err := tx.ClaimWebhookDeliveries(ctx, now, now, 1); return err },
		"FinishWebhookDelivery": func(tx store.Tx) error {
			_, err := tx.FinishWebhookDelivery(ctx, &store.WebhookDelivery{EventID: "e", Webhook: "w"})
			return err
		},
		"RetryWebhookDelivery": func(tx store.Tx) error {
			_, err := tx.RetryWebhookDelivery(ctx, "acme", "e", now, now)
			return err
		},
		"CancelWebhookDeliveries": func(tx store.Tx) error { _, err := tx.CancelWebhookDeliveries(ctx, "acme", "w"); return err },
		"PruneWebhookDeliveries":  func(tx store.Tx) error { _, err := tx.PruneWebhookDeliveries(ctx, now, 1); return err },
		"SetLicenseExhausted":     func(tx store.Tx) error { _, err := tx.SetLicenseExhausted(ctx, "acme", "L", true); return err },
		"MarkLicenseExpiring":     func(tx store.Tx) error { _, err := tx.MarkLicenseExpiring(ctx, "acme", "L", now); return err },
	}
	reads := map[string]func(tx store.Tx) error{
		// Nothing to reap: the transaction changed nothing (a refusal on a full license).
		"ReapSeats(none)": func(tx store.Tx) error { _, err := tx.ReapSeats(ctx, "acme", "L", now); return err },
		"Now":             func(tx store.Tx) error { tx.Now(); return nil },
		"AfterCommit":     func(tx store.Tx) error { tx.AfterCommit(func() {}); return nil },
		"Serial":          func(tx store.Tx) error { tx.Serial(); return nil },
		"LockKey":         func(tx store.Tx) error { return tx.LockKey(ctx, "k") },
		"GetObject":       func(tx store.Tx) error { _, err := tx.GetObject(ctx, "acme", domain.KindUser, "u"); return err },
		"ListObjects":     func(tx store.Tx) error { _, err := tx.ListObjects(ctx, "acme", domain.KindUser); return err },
		"CatalogVersion":  func(tx store.Tx) error { _, err := tx.CatalogVersion(ctx, "acme"); return err },
		"LockCatalog":     func(tx store.Tx) error { _, err := tx.LockCatalog(ctx, "acme"); return err },
		"ListSigningKeys": func(tx store.Tx) error {
			_, err := tx.ListSigningKeys(ctx, "acme")
			return err
		},
		"LockLicense":     func(tx store.Tx) error { _, err := tx.LockLicense(ctx, "acme", "L"); return err },
		"GetLicenseState": func(tx store.Tx) error { _, err := tx.GetLicenseState(ctx, "acme", "L"); return err },
		"GetSeat":         func(tx store.Tx) error { _, err := tx.GetSeat(ctx, "acme", "L", "k"); return err },
		"CountLiveSeats":  func(tx store.Tx) error { _, err := tx.CountLiveSeats(ctx, "acme", "L", now); return err },
		"CountExpiredSeats": func(tx store.Tx) error {
			_, err := tx.CountExpiredSeats(ctx, "acme", "L", now)
			return err
		},
		"UsersHoldingSeats": func(tx store.Tx) error {
			_, err := tx.UsersHoldingSeats(ctx, "acme", "L", []string{"u"}, now)
			return err
		},
		"LicensesWithExpiredSeats": func(tx store.Tx) error { _, err := tx.LicensesWithExpiredSeats(ctx, now, 1); return err },
		"SeatsExpiredBetween":      func(tx store.Tx) error { _, err := tx.SeatsExpiredBetween(ctx, now, now, 1); return err },
		"FindLease":                func(tx store.Tx) error { _, err := tx.FindLease(ctx, "acme", "l"); return err },
		"GetLeaseBySessionKey": func(tx store.Tx) error {
			_, err := tx.GetLeaseBySessionKey(ctx, "acme", "L", "seat", "sk")
			return err
		},
		"LockLease": func(tx store.Tx) error { _, err := tx.LockLease(ctx, "acme", "L", "seat", "sk"); return err },
		"LockLiveLease": func(tx store.Tx) error {
			_, err := tx.LockLiveLease(ctx, "acme", "L", "seat", "sk", now)
			return err
		},
		"CountLiveLeasesOnSeat": func(tx store.Tx) error {
			_, err := tx.CountLiveLeasesOnSeat(ctx, "acme", "L", "k", now)
			return err
		},
		"CountLiveLeasesByHolder": func(tx store.Tx) error {
			_, err := tx.CountLiveLeasesByHolder(ctx, "acme", "L", "u", "", now)
			return err
		},
		"LatestLiveExpiryOnSeat": func(tx store.Tx) error {
			_, err := tx.LatestLiveExpiryOnSeat(ctx, "acme", "L", "k", "", now)
			return err
		},
		"ListLeases":           func(tx store.Tx) error { _, err := tx.ListLeases(ctx, "acme", store.LeaseFilter{}, now); return err },
		"ExpiredLeases":        func(tx store.Tx) error { _, err := tx.ExpiredLeases(ctx, now, 1); return err },
		"GetHWLock":            func(tx store.Tx) error { _, err := tx.GetHWLock(ctx, "acme", "m", "hw"); return err },
		"ListUsage":            func(tx store.Tx) error { _, err := tx.ListUsage(ctx, "acme", now, now); return err },
		"LastHeartbeat":        func(tx store.Tx) error { _, err := tx.LastHeartbeat(ctx, "p"); return err },
		"GetSession":           func(tx store.Tx) error { _, err := tx.GetSession(ctx, "acme", "s"); return err },
		"ListSessions":         func(tx store.Tx) error { _, err := tx.ListSessions(ctx, "acme", store.LeaseFilter{}); return err },
		"CountSessionsByLease": func(tx store.Tx) error { _, err := tx.CountSessionsByLease(ctx, "acme", "l"); return err },
		"ListSessionLeases":    func(tx store.Tx) error { _, err := tx.ListSessionLeases(ctx, "acme", "s"); return err },
		"EarliestSeatRelease":  func(tx store.Tx) error { _, err := tx.EarliestSeatRelease(ctx, "acme", "L", now); return err },
		"ExpiredSessions":      func(tx store.Tx) error { _, err := tx.ExpiredSessions(ctx, now, 1); return err },
		"GetToken":             func(tx store.Tx) error { _, err := tx.GetToken(ctx, "h"); return err },
		"ListTokens":           func(tx store.Tx) error { _, err := tx.ListTokens(ctx, "acme", "", ""); return err },
		"GetUISession":         func(tx store.Tx) error { _, err := tx.GetUISession(ctx, "h"); return err },
		"ListHeldSeats": func(tx store.Tx) error {
			_, err := tx.ListHeldSeats(ctx, "acme", "L", now, "", 10)
			return err
		},
		"CountLingeringSeats": func(tx store.Tx) error {
			_, err := tx.CountLingeringSeats(ctx, "acme", "L", now)
			return err
		},
		"ListLeasesOnSeats": func(tx store.Tx) error {
			_, err := tx.ListLeasesOnSeats(ctx, "acme", "L", []string{"k"}, now)
			return err
		},
		"ListUsageHours": func(tx store.Tx) error { _, err := tx.ListUsageHours(ctx, "acme", now, now); return err },
		"ListWebhookDeliveries": func(tx store.Tx) error {
			_, err := tx.ListWebhookDeliveries(ctx, "acme", 1)
			return err
		},
		"CountPendingWebhookDeliveries": func(tx store.Tx) error { _, err := tx.CountPendingWebhookDeliveries(ctx); return err },
		"ExhaustedLicenses":             func(tx store.Tx) error { _, err := tx.ExhaustedLicenses(ctx, 1); return err },
	}
	if !st.lazyCommit {
		t.Error("lazyCommit is off on PostgreSQL")
	}
	// A seat that expired an hour ago, for ReapSeats to delete.
	err := st.Update(ctx, func(tx store.Tx) error {
		return tx.PutSeat(ctx, &domain.Seat{Tenant: "acme", LicenseID: "expired", Key: "k", HeldUntil: now.Add(-time.Hour)})
	})
	if err != nil {
		t.Fatal(err)
	}
	methods := map[string]bool{}
	for name := range writes {
		methods[strings.TrimSuffix(name, "(ifNone)")] = true
	}
	for name := range reads {
		methods[strings.TrimSuffix(name, "(none)")] = true
	}
	if n := reflect.TypeFor[store.Tx]().NumMethod(); len(methods) != n {
		t.Fatalf("the table covers %d methods, store.Tx has %d: classify the new ones", len(methods), n)
	}
	check := func(name string, call func(tx store.Tx) error, want bool) {
		var wrote bool
		_ = st.Update(ctx, func(stx store.Tx) error {
			_ = call(stx)
			wrote = stx.(*tx).wrote
			return errors.New("roll back")
		})
		if wrote != want {
			t.Errorf("%s: wrote = %v, want %v", name, wrote, want)
		}
	}
	for name, call := range writes {
		check(name, call, true)
	}
	for name, call := range reads {
		check(name, call, false)
	}
}

func TestTokenKey(t *testing.T) {
	dsns := map[store.Store]string{}
	storetest.RunTokenKey(t, func(t *testing.T) store.Store {
		dsn := newDatabase(t)
		s := mustOpen(t, dsn)
		dsns[s] = dsn
		return s
	}, func(t *testing.T, s store.Store, fromBefore bool) store.Store {
		if fromBefore {
			if _, err := s.(*Store).pool.Exec(t.Context(), `DELETE FROM schema_migrations WHERE version >= 8; DROP TABLE server_secrets`); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
		again := mustOpen(t, dsns[s])
		dsns[again] = dsns[s]
		return again
	})
}
