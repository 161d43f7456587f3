package sqlite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
	"github.com/leasehold/leasehold/internal/store/storetest"
)

func openTemp(t testing.TB, opts ...Option) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data", "leasehold.db")
	s, err := Open(path, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, path
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openTemp(t)
		return s
	})
}

func TestParseDSN(t *testing.T) {
	for _, c := range []struct {
		dsn, path, sync string
		busy            int
		bad             bool
	}{
		{dsn: "sqlite://./data/x.db", path: "./data/x.db", sync: "NORMAL", busy: 5000},
		{dsn: "sqlite:///abs/x.db", path: "/abs/x.db", sync: "NORMAL", busy: 5000},
		{dsn: "sqlite:rel.db", path: "rel.db", sync: "NORMAL", busy: 5000},
		{dsn: "./bare/x.db", path: "./bare/x.db", sync: "NORMAL", busy: 5000},
		{dsn: "/abs/bare.db?synchronous=full", path: "/abs/bare.db", sync: "FULL", busy: 5000},
		{dsn: "sqlite:///a/b%20c.db?synchronous=Extra&busy_timeout=100", path: "/a/b c.db", sync: "EXTRA", busy: 100},
		{dsn: "sqlite://", bad: true},
		{dsn: "", bad: true},
		{dsn: ":memory:", bad: true},
		{dsn: "x.db?synchronous=sometimes", bad: true},
		{dsn: "x.db?busy_timeout=-1", bad: true},
		{dsn: "x.db?journal_mode=delete", bad: true},
		{dsn: "x.db?cache_size=0", bad: true},
		{dsn: "x.db?mmap_size=-1", bad: true},
		{dsn: "x.db?cache_size=2000&mmap_size=268435456", path: "x.db", sync: "NORMAL", busy: 5000},
	} {
		st, err := parseDSN(c.dsn)
		if c.bad {
			if err == nil {
				t.Errorf("parseDSN(%q) = %+v, want an error", c.dsn, st)
			}
			continue
		}
		wantCache := defaultWriterCacheKiB
		if strings.Contains(c.dsn, "cache_size=2000") {
			wantCache = 2000
		}
		if err != nil || st.path != c.path || st.synchronous != c.sync || st.busyTimeout != c.busy || st.cacheKiB != wantCache {
			t.Errorf("parseDSN(%q) = %+v, %v; want path %q sync %s busy %d", c.dsn, st, err, c.path, c.sync, c.busy)
		}
	}
}

func pragma(t *testing.T, s *Store, name string) string {
	t.Helper()
	var v string
	if err := s.writer.c.QueryRowContext(t.Context(), "PRAGMA "+name).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOpenForms(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, c := range []struct{ dsn, file, sync string }{
		{"sqlite://./rel/one.db", filepath.Join(dir, "rel", "one.db"), "1"},
		{"sqlite://" + filepath.Join(dir, "abs", "two.db") + "?synchronous=full", filepath.Join(dir, "abs", "two.db"), "2"},
		{"bare/three.db?synchronous=FULL", filepath.Join(dir, "bare", "three.db"), "2"},
	} {
		s, err := Open(c.dsn)
		if err != nil {
			t.Fatalf("Open(%q): %v", c.dsn, err)
		}
		if _, err := os.Stat(c.file); err != nil {
			t.Errorf("Open(%q) did not create %s: %v", c.dsn, c.file, err)
		}
		if got := pragma(t, s, "synchronous"); got != c.sync {
			t.Errorf("Open(%q): synchronous = %s, want %s", c.dsn, got, c.sync)
		}
		if got := pragma(t, s, "journal_mode"); got != "wal" {
			t.Errorf("Open(%q): journal_mode = %s", c.dsn, got)
		}
		if got := pragma(t, s, "foreign_keys"); got != "1" {
			t.Errorf("Open(%q): foreign_keys = %s", c.dsn, got)
		}
		// The writer's pages and its savepoints' undo pages stay in memory (BENCHMARKS.md).
		if got, want := pragma(t, s, "cache_size"), strconv.Itoa(-defaultWriterCacheKiB); got != want {
			t.Errorf("Open(%q): cache_size = %s, want %s", c.dsn, got, want)
		}
		if got := pragma(t, s, "temp_store"); got != "2" {
			t.Errorf("Open(%q): temp_store = %s, want 2 (memory)", c.dsn, got)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Open("sqlite://?synchronous=full"); err == nil {
		t.Error("Open without a path succeeded")
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	s, path := openTemp(t)
	update(t, s, func(tx store.Tx) error { return tx.Heartbeat(t.Context(), "p", time.UnixMilli(1)) })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopening runs the migrations again: nothing changes, nothing is lost.
	s2, err := Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	// And running them again on a live database, from another connection, is a no-op.
	db, err := openDB(path, connOptions{busyTimeout: 5000})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := migrate(t.Context(), c, time.Now()); err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	var n, maxV int
	if err := c.QueryRowContext(t.Context(), "SELECT COUNT(*), MAX(version) FROM schema_migrations").Scan(&n, &maxV); err != nil {
		t.Fatal(err)
	}
	if n != len(migrations)-1 || maxV != len(migrations)-1 {
		t.Errorf("schema_migrations: %d rows, max %d; want %d", n, maxV, len(migrations)-1)
	}
	hb := read(t, s2, func(tx store.Tx) (time.Time, error) { return tx.LastHeartbeat(t.Context(), "") })
	if !hb.Equal(time.UnixMilli(1)) {
		t.Errorf("heartbeat after reopen = %v", hb)
	}

	// A schema newer than the program is refused, not guessed at.
	if _, err := c.ExecContext(t.Context(), "INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)"); err != nil {
		t.Fatal(err)
	}
	if s3, err := Open(path); err == nil {
		s3.Close()
		t.Error("Open of a database with a newer schema succeeded")
	}
}

func TestConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "race.db")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			s, err := Open(path)
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			s.Close()
		})
	}
	wg.Wait()
}

func update(t testing.TB, s store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func read[T any](t testing.TB, s store.Store, fn func(tx store.Tx) (T, error)) T {
	t.Helper()
	var v T
	if err := s.View(context.Background(), func(tx store.Tx) error {
		var err error
		v, err = fn(tx)
		return err
	}); err != nil {
		t.Fatalf("View: %v", err)
	}
	return v
}

func seat(key string, until time.Time) *domain.Seat {
	return &domain.Seat{Tenant: "acme", LicenseID: "L1", Key: key, User: "u", HeldUntil: until}
}

func hasSeat(t testing.TB, s store.Store, key string) bool {
	t.Helper()
	var found bool
	if err := s.View(context.Background(), func(tx store.Tx) error {
		_, err := tx.GetSeat(context.Background(), "acme", "L1", key)
		found = err == nil
		if errors.Is(err, domain.ErrNotFound) {
			return nil
		}
		return err
	}); err != nil {
		t.Fatalf("View: %v", err)
	}
	return found
}

func TestDurableAcrossReopen(t *testing.T) {
	s, path := openTemp(t)
	base := time.Now().Truncate(time.Millisecond)
	for i := range 50 {
		update(t, s, func(tx store.Tx) error { return tx.PutSeat(t.Context(), seat(fmt.Sprint(i), base.Add(time.Hour))) })
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open("sqlite://" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for i := range 50 {
		if !hasSeat(t, s2, fmt.Sprint(i)) {
			t.Errorf("seat %d lost across Close/Open", i)
		}
	}
}

// TestKillChild is the writer half of TestDurableAfterKill; it does nothing on its own.
func TestKillChild(t *testing.T) {
	path := os.Getenv("LEASEHOLD_SQLITE_KILL_CHILD")
	if path == "" {
		t.Skip("run by TestDurableAfterKill")
	}
	s, err := Open(path)
	if err != nil {
		fmt.Println("error", err)
		return
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				key := fmt.Sprintf("%d-%d", g, i)
				err := s.Update(context.Background(), func(tx store.Tx) error {
					return tx.PutSeat(context.Background(), seat(key, tx.Now().Add(time.Hour)))
				})
				mu.Lock()
				if err != nil {
					fmt.Println("error", err)
				} else {
					fmt.Println("ok", key) // acknowledged: must survive the kill
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestDurableAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	path := filepath.Join(t.TempDir(), "kill.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LEASEHOLD_SQLITE_KILL_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(acked) < 2000 {
		line := sc.Text()
		if key, ok := strings.CutPrefix(line, "ok "); ok {
			acked = append(acked, key)
		} else if strings.HasPrefix(line, "error") {
			t.Errorf("child: %s", line)
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no Close, no flush
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(acked) < 2000 {
		t.Fatalf("child acknowledged only %d writes", len(acked))
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	lost := 0
	for _, key := range acked {
		if !hasSeat(t, s, key) {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged writes lost after kill -9", lost, len(acked))
	}
}

func TestGroupCommit(t *testing.T) {
	s, _ := openTemp(t)
	const n = 500
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			key := strconv.Itoa(i)
			err := s.Update(t.Context(), func(tx store.Tx) error {
				return tx.PutSeat(t.Context(), seat(key, tx.Now().Add(time.Hour)))
			})
			if err != nil {
				t.Errorf("Update %d: %v", i, err)
				return
			}
			// Visible to a reader as soon as Update returns.
			if !hasSeat(t, s, key) {
				t.Errorf("seat %s not visible after its Update returned", key)
			}
		})
	}
	wg.Wait()
	commits, updates := s.commits.Load(), s.updates.Load()
	t.Logf("%d updates in %d commits", updates, commits)
	if updates != n {
		t.Errorf("updates = %d, want %d", updates, n)
	}
	if commits >= updates {
		t.Errorf("no group commit: %d commits for %d updates", commits, updates)
	}
}

func TestPanicInFn(t *testing.T) {
	s, _ := openTemp(t)
	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Errorf("recovered %v, want the fn's panic", v)
			}
		}()
		_ = s.Update(t.Context(), func(tx store.Tx) error {
			if err := tx.PutSeat(t.Context(), seat("p", tx.Now().Add(time.Hour))); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	if hasSeat(t, s, "p") {
		t.Error("a panicking fn's write was kept")
	}
	update(t, s, func(tx store.Tx) error { return tx.PutSeat(t.Context(), seat("after", tx.Now().Add(time.Hour))) })
	if !hasSeat(t, s, "after") {
		t.Error("store broken after a panic in fn")
	}
}

func TestCancelWhileQueued(t *testing.T) {
	s, _ := openTemp(t)
	hold, running := make(chan struct{}), make(chan struct{})
	go func() {
		_ = s.Update(context.Background(), func(tx store.Tx) error {
			close(running)
			<-hold // keeps the writer busy
			return nil
		})
	}()
	<-running
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- s.Update(ctx, func(tx store.Tx) error {
			ran <- struct{}{}
			return tx.PutSeat(ctx, seat("queued", tx.Now().Add(time.Hour)))
		})
	}()
	time.Sleep(20 * time.Millisecond) // let it queue
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("queued Update after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a queued Update ignored its context")
	}
	close(hold)
	update(t, s, func(tx store.Tx) error { return nil }) // the writer is past the abandoned one
	select {
	case <-ran:
		t.Error("the fn of an abandoned Update ran")
	default:
	}
	if hasSeat(t, s, "queued") {
		t.Error("an abandoned Update wrote")
	}
}

// TestBatchReplay: fns of one batch run without savepoints; one that fails after writing
// rolls the batch back and replays it in savepoints, so its writes vanish and the others'
// commit. One that fails before writing costs no replay.
func TestBatchReplay(t *testing.T) {
	for _, c := range []struct {
		name       string
		writeFirst bool
		replays    int64
	}{{"fails after writing", true, 1}, {"fails before writing", false, 0}} {
		t.Run(c.name, func(t *testing.T) {
			s, _ := openTemp(t)
			ctx := t.Context()
			hold, running := make(chan struct{}), make(chan struct{})
			first := make(chan error, 1)
			go func() {
				first <- s.Update(ctx, func(tx store.Tx) error {
					if err := tx.PutSeat(ctx, seat("first", tx.Now().Add(time.Hour))); err != nil {
						return err
					}
					select {
					case <-running:
					default:
						close(running)
					}
					<-hold // the others queue behind it and join its batch
					return nil
				})
			}()
			<-running
			errBoom := errors.New("boom")
			runs := map[string]int{}
			var mu sync.Mutex
			results := map[string]chan error{"a": make(chan error, 1), "b": make(chan error, 1), "c": make(chan error, 1)}
			for i, key := range []string{"a", "b", "c"} {
				go func() {
					results[key] <- s.Update(ctx, func(tx store.Tx) error {
						mu.Lock()
						runs[key]++
						mu.Unlock()
						if key == "b" && !c.writeFirst {
							return errBoom
						}
						if err := tx.PutSeat(ctx, seat(key, tx.Now().Add(time.Hour))); err != nil {
							return err
						}
						if key == "b" {
							return errBoom
						}
						return nil
					})
				}()
				// One at a time, so that they queue (and run) in this order.
				for deadline := time.Now().Add(5 * time.Second); len(s.queue) < i+1; time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatal("the Updates did not queue")
					}
				}
			}
			commits := s.commits.Load()
			close(hold)
			if err := <-first; err != nil {
				t.Fatalf("first: %v", err)
			}
			for key, want := range map[string]error{"a": nil, "b": errBoom, "c": nil} {
				if err := <-results[key]; !errors.Is(err, want) {
					t.Errorf("Update %s = %v, want %v", key, err, want)
				}
			}
			if got := s.commits.Load() - commits; got != 1 {
				t.Fatalf("%d commits for the batch, want 1 (the test needs them batched)", got)
			}
			for key, want := range map[string]bool{"first": true, "a": true, "b": false, "c": true} {
				if hasSeat(t, s, key) != want {
					t.Errorf("seat %s kept = %v, want %v", key, !want, want)
				}
			}
			if got := s.replays.Load(); got != c.replays {
				t.Errorf("%d replays, want %d", got, c.replays)
			}
			// A replay runs the batch so far again: a and b twice, c (after it) once.
			wantRuns := map[string]int{"a": 1, "b": 1, "c": 1}
			if c.replays > 0 {
				wantRuns["a"], wantRuns["b"] = 2, 2
			}
			mu.Lock()
			defer mu.Unlock()
			for key, n := range wantRuns {
				if runs[key] != n {
					t.Errorf("fn %s ran %d times, want %d", key, runs[key], n)
				}
			}
		})
	}
}

func TestClose(t *testing.T) {
	s, path := openTemp(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var acked []string
	for i := range 200 {
		wg.Go(func() {
			key := strconv.Itoa(i)
			err := s.Update(context.Background(), func(tx store.Tx) error {
				return tx.PutSeat(context.Background(), seat(key, tx.Now().Add(time.Hour)))
			})
			switch {
			case err == nil:
				mu.Lock()
				acked = append(acked, key)
				mu.Unlock()
			case !errors.Is(err, ErrClosed):
				t.Errorf("Update during Close: %v", err)
			}
		})
	}
	time.Sleep(time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Update(t.Context(), func(store.Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Update after Close = %v, want ErrClosed", err)
	}
	if err := s.View(t.Context(), func(store.Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("View after Close = %v, want ErrClosed", err)
	}
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for _, key := range acked {
		if !hasSeat(t, s2, key) {
			t.Errorf("acknowledged seat %s lost by Close", key)
		}
	}
}

func TestTxAfterFn(t *testing.T) {
	s, _ := openTemp(t)
	var kept store.Tx
	update(t, s, func(tx store.Tx) error { kept = tx; return nil })
	if err := kept.PutSeat(t.Context(), seat("late", time.Now())); err == nil {
		t.Error("a Tx used after its fn returned still wrote")
	}
}

func TestWithClock(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 678999999, time.FixedZone("X", 3600))
	s, _ := openTemp(t, WithClock(func() time.Time { return at }))
	want := at.UTC().Truncate(time.Millisecond)
	if now, _ := s.Now(t.Context()); !now.Equal(want) || now.Location() != time.UTC {
		t.Errorf("Now = %v, want %v UTC", now, want)
	}
	txNow := read(t, s, func(tx store.Tx) (time.Time, error) { return tx.Now(), nil })
	if !txNow.Equal(want) {
		t.Errorf("tx.Now = %v, want %v", txNow, want)
	}
}

func TestBackup(t *testing.T) {
	s, _ := openTemp(t)
	base := time.Now().Truncate(time.Millisecond)
	for i := range 20 {
		update(t, s, func(tx store.Tx) error { return tx.PutSeat(t.Context(), seat(strconv.Itoa(i), base.Add(time.Hour))) })
	}
	dest := filepath.Join(t.TempDir(), "backups", "copy.db")
	// Writes go on during the backup; the copy is one consistent snapshot either way.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			update(t, s, func(tx store.Tx) error { return tx.PutSeat(t.Context(), seat(fmt.Sprintf("w%d", i), base)) })
		}
	})
	err := s.Backup(t.Context(), dest, false)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	// It holds private keys and password hashes.
	if fi, err := os.Stat(dest); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup mode: %v %v, want 0600", fi.Mode(), err)
	}
	// An existing file is kept unless overwrite is asked for.
	if err := s.Backup(t.Context(), dest, false); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Backup over an existing file without overwrite: %v, want fs.ErrExist", err)
	}
	if err := s.Backup(t.Context(), dest, true); err != nil {
		t.Fatalf("Backup over an existing file: %v", err)
	}
	if err := s.Backup(t.Context(), s.path, true); err == nil {
		t.Error("Backup onto the live database succeeded")
	}
	b, err := Open(dest)
	if err != nil {
		t.Fatalf("open backup: %v", err)
	}
	defer b.Close()
	for i := range 20 {
		if !hasSeat(t, b, strconv.Itoa(i)) {
			t.Errorf("seat %d missing from the backup", i)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(dest))
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("backup left %s behind", e.Name())
		}
	}
}

// TestQueryPlans checks that the hot queries use an index rather than scanning a table.
func TestQueryPlans(t *testing.T) {
	s, _ := openTemp(t)
	for _, q := range []string{
		qLicenseState,
		`SELECT ` + seatCols + ` FROM seats WHERE tenant = ? AND license_id = ? AND seat_key = ?`,
		`DELETE FROM seats WHERE tenant = ? AND license_id = ? AND held_until <= ?`,
		`SELECT COUNT(*) FROM seats WHERE tenant = ? AND license_id = ? AND held_until > ?`,
		`SELECT DISTINCT tenant, license_id FROM seats WHERE held_until <= ? LIMIT ?`,
		`SELECT ` + seatCols + ` FROM seats WHERE held_until > ? AND held_until <= ? ORDER BY held_until LIMIT ?`,
		`SELECT ` + leaseCols + ` FROM leases WHERE tenant = ? AND root = (SELECT root FROM lease_ids WHERE tenant = ? AND id = ?)`,
		`SELECT ` + leaseCols + ` FROM leases WHERE tenant = ? AND license_id = ? AND seat_key = ? AND session_key = ?`,
		`SELECT COUNT(*) FROM leases WHERE tenant = ? AND license_id = ? AND seat_key = ? AND expires_at > ?`,
		`SELECT COUNT(*) FROM leases WHERE tenant = ? AND license_id = ? AND user = ? AND expires_at > ?`,
		`SELECT COUNT(*) FROM leases WHERE tenant = ? AND license_id = ? AND client = ? AND expires_at > ?`,
		`SELECT ` + leaseCols + ` FROM leases WHERE expires_at <= ? ORDER BY expires_at LIMIT ?`,
		`SELECT license_id FROM hw_locks WHERE tenant = ? AND model = ? AND hw = ?`,
		`DELETE FROM hw_locks WHERE tenant = ? AND hw = ?`,
		`SELECT ` + usageCols + ` FROM usage WHERE tenant = ? AND at >= ? AND at < ? ORDER BY at, seq`,
		`SELECT ` + tokenCols + ` FROM tokens WHERE hash = ?`,
		`DELETE FROM tokens WHERE tenant = ? AND session_id = ?`,
		`DELETE FROM tokens WHERE hash IN (SELECT hash FROM tokens WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)`,
		`SELECT ` + sessionCols + ` FROM sessions WHERE expires_at <= ? ORDER BY expires_at LIMIT ?`,
		`SELECT COUNT(*) FROM sessions WHERE tenant = ? AND lease_root = ?`,
		`SELECT version FROM catalog_versions WHERE tenant = ?`,
		`SELECT id, spec, file_hash, updated_at FROM objects WHERE tenant = ? AND kind = ? ORDER BY id`,
	} {
		args := make([]any, strings.Count(q, "?"))
		rows, err := s.writer.c.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		for _, step := range plan {
			if strings.HasPrefix(step, "SCAN ") && !strings.Contains(step, "USING") {
				t.Errorf("full scan in %q:\n  %s", q, strings.Join(plan, "\n  "))
			}
			if strings.Contains(step, "TEMP B-TREE") {
				t.Errorf("sort without an index in %q:\n  %s", q, strings.Join(plan, "\n  "))
			}
		}
	}
}

// BenchmarkUpdate is the grant hot path: LockLicense, PutSeat, SaveLicenseState.
func BenchmarkUpdate(b *testing.B) {
	for _, syncMode := range []string{"normal", "full"} {
		b.Run("serial/"+syncMode, func(b *testing.B) {
			s := benchStore(b, syncMode)
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				grant(b, s, ctx, i%1000, strconv.Itoa(i%5000))
			}
		})
		b.Run("parallel/"+syncMode, func(b *testing.B) {
			s := benchStore(b, syncMode)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(32)
			var mu sync.Mutex
			n := 0
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					mu.Lock()
					n++
					i := n
					mu.Unlock()
					grant(b, s, ctx, i%1000, strconv.Itoa(i%5000))
				}
			})
			b.ReportMetric(float64(s.updates.Load())/float64(max(1, s.commits.Load())), "updates/commit")
		})
	}
}

func benchStore(b *testing.B, syncMode string) *Store {
	s, err := Open(filepath.Join(b.TempDir(), "bench.db") + "?synchronous=" + syncMode)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func grant(b *testing.B, s *Store, ctx context.Context, license int, key string) {
	lic := "L" + strconv.Itoa(license)
	err := s.Update(ctx, func(tx store.Tx) error {
		st, err := tx.LockLicense(ctx, "acme", lic)
		if err != nil {
			return err
		}
		if err := tx.PutSeat(ctx, &domain.Seat{Tenant: "acme", LicenseID: lic, Key: key, User: "u", HeldUntil: tx.Now().Add(time.Minute)}); err != nil {
			return err
		}
		st.SeatsHeld++
		return tx.SaveLicenseState(ctx, st)
	})
	if err != nil {
		b.Error(err)
	}
}

// TestMigrationSessionKeyUnique: a database of schema 2 holding two leases of one session
// key (which no engine wrote, but the index used to allow) keeps the latest when migration
// 3 makes the key unique, and the other's chain ids go with it.
func TestMigrationSessionKeyUnique(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leasehold.db")
	db, err := openDB(path, connOptions{busyTimeout: 5000, foreignKeys: true, wal: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`)
	for v := 1; v <= 2; v++ {
		exec(migrations[v])
		exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)`, v)
	}
	now := time.Now().UnixMilli()
	for _, l := range []struct {
		root, sk string
		exp      int64
	}{{"old", "sk", now - 60_000}, {"new", "sk", now + 60_000}, {"alone", "sk2", now + 60_000}} {
		exec(`INSERT INTO leases (tenant, root, id, license_id, item, seat_key, session_key, user, client, hw, hw_name,
			process, process_name, version, mode, issued_at, renewed_at, expires_at, refresh_at, prev_id, prev_until,
			overage, use_time_reserved, session_id) VALUES (?, ?, ?, 'L1', 'i', 'seat', ?, 'u', '', '', '', '', '', '', 'cache',
			0, 0, ?, 0, '', 0, 0, 0, '')`, "acme", l.root, l.root, l.sk, l.exp)
		exec(`INSERT INTO lease_ids (tenant, id, root) VALUES ('acme', ?, ?)`, l.root, l.root)
	}
	exec(`INSERT INTO lease_ids (tenant, id, root) VALUES ('acme', 'old-2', 'old')`)
	db.Close()

	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open (migration 3): %v", err)
	}
	defer s.Close()
	got := read(t, s, func(tx store.Tx) (*domain.Lease, error) {
		return tx.GetLeaseBySessionKey(ctx, "acme", "L1", "seat", "sk")
	})
	if got.Root != "new" {
		t.Errorf("lease of the session key after migration = %s, want new", got.Root)
	}
	for _, id := range []string{"old", "old-2"} {
		err := s.View(ctx, func(tx store.Tx) error { _, err := tx.FindLease(ctx, "acme", id); return err })
		if !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("FindLease(%s) after migration: %v, want ErrNotFound", id, err)
		}
	}
	if err := s.View(ctx, func(tx store.Tx) error { _, err := tx.FindLease(ctx, "acme", "alone"); return err }); err != nil {
		t.Errorf("FindLease(alone) after migration: %v", err)
	}
}

// The engine skips LockLease's second read of a lease only where Serial says no other
// writer can run in between: an Update, never a View.
func TestSerialTx(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	serial := func(tx store.Tx) bool { return tx.Serial() }
	var inUpdate, inView bool
	if err := s.Update(ctx, func(tx store.Tx) error { inUpdate = serial(tx); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.View(ctx, func(tx store.Tx) error { inView = serial(tx); return nil }); err != nil {
		t.Fatal(err)
	}
	if !inUpdate || inView {
		t.Fatalf("Serial: Update %v, View %v; want true, false", inUpdate, inView)
	}
}

func TestExtendSeat(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	base := time.UnixMilli(1_800_000_000_000).UTC()
	extend := func(key string, until time.Time) bool {
		t.Helper()
		var wrote bool
		if err := s.Update(ctx, func(tx store.Tx) error {
			var err error
			wrote, err = tx.ExtendSeat(ctx, "t", "lic", key, until)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return wrote
	}
	seat := func(key string) domain.Seat {
		t.Helper()
		var got *domain.Seat
		if err := s.View(ctx, func(tx store.Tx) error {
			var err error
			got, err = tx.GetSeat(ctx, "t", "lic", key)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return *got
	}
	if err := s.Update(ctx, func(tx store.Tx) error {
		for _, st := range []domain.Seat{
			{Tenant: "t", LicenseID: "lic", Key: "a", User: "u", HeldUntil: base, Overage: true},
			{Tenant: "t", LicenseID: "lic", Key: "b", User: "u", HeldUntil: base.Add(time.Hour), Lingering: true},
		} {
			if err := tx.PutSeat(ctx, &st); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	if extend("missing", base) {
		t.Error("a missing seat was extended")
	}
	if extend("a", base) || extend("a", base.Add(-time.Minute)) {
		t.Error("a seat holding long enough was written")
	}
	if !extend("a", base.Add(time.Minute)) {
		t.Error("a seat was not extended")
	}
	if got := seat("a"); !got.HeldUntil.Equal(base.Add(time.Minute)) || got.Lingering || !got.Overage || got.User != "u" {
		t.Errorf("extended seat: %+v", got)
	}
	// A lingering seat stops lingering, and never holds for less than it did.
	if !extend("b", base.Add(time.Minute)) {
		t.Error("a lingering seat was not written")
	}
	if got := seat("b"); !got.HeldUntil.Equal(base.Add(time.Hour)) || got.Lingering {
		t.Errorf("lingering seat after extension: %+v", got)
	}
	if err := s.View(ctx, func(tx store.Tx) error {
		_, err := tx.ExtendSeat(ctx, "t", "lic", "a", base.Add(time.Hour))
		return err
	}); !errors.Is(err, errReadOnly) {
		t.Errorf("ExtendSeat in a View: %v, want errReadOnly", err)
	}
}

// TestDerivedIDsNeedNoChainRows: a lease granted and renewed with derived ids writes no
// lease_ids row (the point of deriving them: no random page per renewal); an id of the
// caller's choosing still gets one.
func TestDerivedIDsNeedNoChainRows(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	now := time.Now()
	l := domain.Lease{ID: "root-1", Root: "root-1", Tenant: "acme", LicenseID: "L1", Item: "F", SeatKey: "seat",
		SessionKey: "sk", Mode: domain.ModeCache, IssuedAt: now, RenewedAt: now, ExpiresAt: now.Add(time.Hour),
		ChainKey: domain.NewChainKey()}
	update(t, s, func(tx store.Tx) error { return tx.InsertLease(ctx, &l) })
	for range 3 {
		l.ChainSeq++
		l.ID = domain.ChainedLeaseID(l.Root, l.ChainKey, l.ChainSeq)
		update(t, s, func(tx store.Tx) error { return tx.UpdateLease(ctx, &l) })
	}
	rows := func() int {
		var n int
		if err := s.writer.c.QueryRowContext(ctx, "SELECT COUNT(*) FROM lease_ids").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := rows(); n != 0 {
		t.Errorf("lease_ids holds %d rows after a grant and 3 derived renewals, want 0", n)
	}
	l.ID = "chosen-id"
	update(t, s, func(tx store.Tx) error { return tx.UpdateLease(ctx, &l) })
	if n := rows(); n != 1 {
		t.Errorf("lease_ids holds %d rows after an id of the caller's choosing, want 1", n)
	}
}

// Past largeFile bytes the checkpointer sets the shorter cadence (checkpointEveryLarge);
// under it, the longer one.
func TestCheckpointCadenceFollowsFileSize(t *testing.T) {
	if got := checkpointCadence(defaultLargeFile/2, defaultLargeFile); got != checkpointEvery {
		t.Errorf("cadence of a small file = %d, want %d", got, checkpointEvery)
	}
	s, _ := openTemp(t, withLargeFile(1)) // every file is large
	ctx := t.Context()
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.Heartbeat(ctx, "p", time.Now()) }); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * checkpointPeriod)
	for s.ckptEvery.Load() != checkpointEveryLarge {
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint cadence of a large file = %d commits after %v, want %d",
				s.ckptEvery.Load(), 5*checkpointPeriod, checkpointEveryLarge)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// withLargeFile sets the size past which a file gets the shorter checkpoint cadence.
func withLargeFile(bytes int64) Option { return func(c *config) { c.largeFile = bytes } }

func TestTokenKey(t *testing.T) {
	paths := map[store.Store]string{}
	storetest.RunTokenKey(t, func(t *testing.T) store.Store {
		s, path := openTemp(t)
		paths[s] = path
		return s
	}, func(t *testing.T, s store.Store, fromBefore bool) store.Store {
		path := paths[s]
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if fromBefore {
			db, err := openDB(path, connOptions{busyTimeout: 5000})
			if err != nil {
				t.Fatal(err)
			}
			_, err = db.Exec(`DELETE FROM schema_migrations WHERE version >= 10; DROP TABLE server_secrets`)
			if cerr := db.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		again, err := Open(path)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { again.Close() })
		paths[again] = path
		return again
	})
}
