package sqlite

import (
	"database/sql"
	"net/url"
)

// sqlDriver is what the store needs of a SQLite driver beyond database/sql: how to ask
// for per-connection settings, whether a transaction is open, and which errors mean
// "busy". Two implement it, one per build (both are SQLite, so the SQL, the schema and the
// file format are the same): mattn/go-sqlite3 when cgo is on (driver_cgo.go) and the
// pure-Go ncruces/go-sqlite3 when it is off (driver_nocgo.go), so `CGO_ENABLED=0 go build`
// gives a binary that needs no C compiler (BENCHMARKS.md says what it costs).
type sqlDriver interface {
	// name is the driver's database/sql name.
	name() string
	// dsn opens the file at path with o applied to every connection the pool opens.
	dsn(path string, o connOptions) string
	// autocommit reports whether no transaction is open on dc, a driver connection as
	// sql.Conn.Raw hands it over. SQLite rolls a transaction back by itself on some
	// errors (a full disk, an I/O error), so the store asks instead of keeping count.
	autocommit(dc any) bool
	// isBusy reports whether err is SQLITE_BUSY or SQLITE_LOCKED (an extended code too).
	isBusy(err error) bool
	// describe names the driver, for `leasehold version`.
	describe() string
}

// connOptions are the pragmas a connection gets as it opens, before any statement.
type connOptions struct {
	busyTimeout int    // milliseconds; always set (0 means "do not wait")
	synchronous string // OFF, NORMAL, FULL or EXTRA; "" leaves SQLite's default
	foreignKeys bool
	queryOnly   bool // writes fail in SQLite itself
	wal         bool // journal_mode = WAL
	cacheKiB    int  // cache_size = -cacheKiB; 0 leaves SQLite's default
	// immutable opens the file read-only as a file that nothing changes (URI
	// mode=ro&immutable=1): no -wal or -shm file is created beside it.
	immutable bool
}

// fileURI is path as a SQLite "file:" URI, with the characters a URI reserves escaped.
func fileURI(path string) string {
	return "file:" + (&url.URL{Path: path}).EscapedPath()
}

// openDB opens a pool on path through the build's driver.
func openDB(path string, o connOptions) (*sql.DB, error) {
	return sql.Open(drv.name(), drv.dsn(path, o))
}

// Driver names the SQLite driver this build uses and the SQLite version it bundles.
func Driver() string {
	v := "unknown"
	if db, err := sql.Open(drv.name(), ":memory:"); err == nil {
		_ = db.QueryRow("SELECT sqlite_version()").Scan(&v)
		db.Close()
	}
	return drv.describe() + ", SQLite " + v
}
