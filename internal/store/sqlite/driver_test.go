package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The same tests run against whichever driver the build chose (mattn/go-sqlite3 with cgo,
// ncruces/go-sqlite3 without; scripts/test.sh runs both): each thing sqlDriver promises is
// checked on a real file, so a driver that ignored an option or misread an error fails here.

func driverConn(t *testing.T, path string, o connOptions) *sql.Conn {
	t.Helper()
	db, err := openDB(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c, err := db.Conn(t.Context())
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func connPragma(t *testing.T, c *sql.Conn, name string) string {
	t.Helper()
	var v string
	if err := c.QueryRowContext(t.Context(), "PRAGMA "+name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

// Every option reaches every connection of the pool, the way the store sets its writer and
// its readers up; a path with a space and a percent sign opens the file named, not another.
func TestDriverConnOptions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a b%20c")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "x.db")
	st := settings{path: path, synchronous: "FULL", busyTimeout: 1234, cacheKiB: 3000}
	w := driverConn(t, path, st.connOptions(false))
	if _, err := w.ExecContext(t.Context(), "CREATE TABLE t (v INTEGER)"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the file named was not created: %v", err)
	}
	for name, want := range map[string]string{
		"busy_timeout": "1234", "synchronous": "2", "foreign_keys": "1", "query_only": "0",
		"journal_mode": "wal", "cache_size": "-3000",
	} {
		if got := connPragma(t, w, name); got != want {
			t.Errorf("writer: PRAGMA %s = %s, want %s", name, got, want)
		}
	}
	st.synchronous, st.busyTimeout = "OFF", 0
	r := driverConn(t, path, st.connOptions(true))
	for name, want := range map[string]string{
		"busy_timeout": "0", "synchronous": "0", "foreign_keys": "1", "query_only": "1", "journal_mode": "wal",
	} {
		if got := connPragma(t, r, name); got != want {
			t.Errorf("reader: PRAGMA %s = %s, want %s", name, got, want)
		}
	}
	if _, err := r.ExecContext(t.Context(), "INSERT INTO t VALUES (1)"); err == nil {
		t.Error("a write on a query_only connection succeeded")
	}
}

// An immutable connection reads the file and writes nothing, not even a -wal or -shm file.
func TestDriverImmutable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	w := driverConn(t, path, connOptions{busyTimeout: 5000})
	if _, err := w.ExecContext(t.Context(), "CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	c := driverConn(t, path, connOptions{immutable: true})
	var v int
	if err := c.QueryRowContext(t.Context(), "SELECT v FROM t").Scan(&v); err != nil || v != 7 {
		t.Fatalf("read: %d, %v", v, err)
	}
	if _, err := c.ExecContext(t.Context(), "INSERT INTO t VALUES (8)"); err == nil {
		t.Error("a write on an immutable connection succeeded")
	}
	for _, side := range []string{"-wal", "-shm", "-journal"} {
		if _, err := os.Stat(path + side); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s%s exists (%v)", path, side, err)
		}
	}
}

// isBusy recognises SQLite's busy answer, which Open retries, and nothing else.
func TestDriverIsBusy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	a := driverConn(t, path, connOptions{busyTimeout: 5000, wal: true})
	if _, err := a.ExecContext(t.Context(), "CREATE TABLE t (v INTEGER)"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer a.ExecContext(context.Background(), "ROLLBACK")
	b := driverConn(t, path, connOptions{busyTimeout: 0})
	_, err := b.ExecContext(t.Context(), "BEGIN IMMEDIATE")
	if err == nil {
		t.Fatal("a second writer began while the first held the lock")
	}
	if !isBusy(err) {
		t.Errorf("isBusy(%v) = false", err)
	}
	_, err = b.ExecContext(t.Context(), "SELEC 1")
	if err == nil || isBusy(err) {
		t.Errorf("a syntax error: %v, isBusy %v", err, err != nil && isBusy(err))
	}
	if isBusy(errors.New("some other failure")) {
		t.Error("isBusy of a plain error = true")
	}
}

// autocommit follows the transaction SQL opens and ends, including one SQLite ends by
// itself.
func TestDriverAutocommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	c := newConn(driverConn(t, path, connOptions{busyTimeout: 5000, wal: true}), true)
	step := func(q string, want bool) {
		t.Helper()
		if err := c.execNoCtx(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if got := c.autocommit(); got != want {
			t.Errorf("after %s: autocommit = %v, want %v", q, got, want)
		}
	}
	if !c.autocommit() {
		t.Error("a new connection is not in autocommit mode")
	}
	step("CREATE TABLE t (v INTEGER)", true)
	step("BEGIN IMMEDIATE", false)
	step("INSERT INTO t VALUES (1)", false)
	step("COMMIT", true)
	step("BEGIN", false)
	step("SAVEPOINT u", false)
	step("ROLLBACK TO u", false)
	step("ROLLBACK", true)
	// A SAVEPOINT outside a transaction opens one, and releasing it ends it.
	step("SAVEPOINT u", false)
	step("RELEASE u", true)
}

// Driver names the driver this build chose (build constraints: mattn with cgo, ncruces
// without) and the SQLite it runs.
func TestDriverName(t *testing.T) {
	got := Driver()
	if !strings.HasPrefix(got, wantDriver+" ") || !strings.Contains(got, ", SQLite 3.") {
		t.Errorf("Driver() = %q, want %s and a SQLite 3 version", got, wantDriver)
	}
	// The version comes from SQLite itself.
	v := got[strings.LastIndex(got, " ")+1:]
	if parts := strings.Split(v, "."); len(parts) != 3 {
		t.Errorf("SQLite version %q", v)
	} else if minor, err := strconv.Atoi(parts[1]); err != nil || minor < 24 {
		t.Errorf("SQLite version %q: want 3.24 or newer (the upserts)", v)
	}
}
