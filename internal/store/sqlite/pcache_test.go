//go:build cgo

package sqlite

import (
	"crypto/rand"
	"database/sql"
	"path/filepath"
	"testing"
)

// openRaw opens a plain connection to a new file in WAL mode, with the writer's cache size,
// outside the store, so that a test controls every transaction.
func openRaw(t *testing.T) *sql.DB {
	t.Helper()
	db := openFile(t, filepath.Join(t.TempDir(), "raw.db"))
	mustExec(t, db, "CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
	return db
}

func openFile(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	mustExec(t, db, "PRAGMA cache_size = -65536")
	return db
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// insertRandom inserts n rows with random keys in one transaction: random keys split pages
// in the middle of the index, which is what renumbers pages through the lock page.
func insertRandom(t *testing.T, tx *sql.Tx, n int) {
	t.Helper()
	for range n {
		if _, err := tx.Exec("INSERT INTO t (k, v) VALUES (?, ?)", rand.Text(), "value"); err != nil {
			t.Fatal(err)
		}
	}
}

func integrityOK(t *testing.T, db *sql.DB) {
	t.Helper()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check: %q, %v", res, err)
	}
}

func TestPageCacheSkipsNeedlessTruncation(t *testing.T) {
	if pageCacheInstalled != 0 {
		t.Fatalf("the page cache wrapper is not installed: sqlite3_config returned %d", pageCacheInstalled)
	}
	db := openRaw(t)
	before := truncatesSkipped()
	for range 50 {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		insertRandom(t, tx, 200)
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if skipped := truncatesSkipped() - before; skipped == 0 {
		t.Fatal("no truncation was skipped in 50 commits of random inserts under 1 GiB: the scan the wrapper exists to avoid still runs")
	}
	integrityOK(t, db)
}

// A connection that sees another one's commit empties its cache (a truncation to nothing
// but page 1): that one must never be skipped, or it would read its stale pages.
func TestPageCacheSeesOtherConnectionsCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	a := openFile(t, path)
	mustExec(t, a, "CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
	tx, err := a.Begin()
	if err != nil {
		t.Fatal(err)
	}
	insertRandom(t, tx, 3000)
	if _, err := tx.Exec("INSERT INTO t (k, v) VALUES ('probe', 'old')"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	b := openFile(t, path)
	for i := range 5 {
		var n int
		if err := a.QueryRow("SELECT count(*) FROM t WHERE v <> ''").Scan(&n); err != nil || n != 3001 {
			t.Fatalf("count: %d, %v", n, err) // every page of t now in a's cache
		}
		want := "new-" + string(rune('0'+i))
		mustExec(t, b, "UPDATE t SET v = ? WHERE k = 'probe'", want)
		var got string
		if err := a.QueryRow("SELECT v FROM t WHERE k = 'probe'").Scan(&got); err != nil || got != want {
			t.Fatalf("round %d: a reads %q (%v) after b wrote %q: a stale page cache", i, got, err, want)
		}
	}
}

// The skip relies on the wrapper knowing every key in the cache: a page renumbered above
// the largest key fetched, or parked at the lock page number, must still be dropped by a
// truncation below it.
func TestPageCacheTracksRenumberedPages(t *testing.T) {
	integrityOK(t, openRaw(t)) // SQLite initialized
	if step := checkKeyTracking(); step != 0 {
		t.Fatalf("pcache.c's key-tracking check failed at step %d", step)
	}
}
