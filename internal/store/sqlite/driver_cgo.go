//go:build cgo

package sqlite

import (
	"errors"
	"net/url"
	"strconv"
	"strings"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// mattnDriver is github.com/mattn/go-sqlite3: SQLite's C source compiled with cgo, the
// fastest for the store's write path (BENCHMARKS.md, "A build without cgo").
type mattnDriver struct{}

var (
	_   sqlDriver = mattnDriver{}
	drv sqlDriver = mattnDriver{}
)

func (mattnDriver) name() string { return "sqlite3" }

// dsn uses the driver's own parameters, which it applies on every connection it opens.
func (mattnDriver) dsn(path string, o connOptions) string {
	v := url.Values{}
	v.Set("_busy_timeout", strconv.Itoa(o.busyTimeout))
	if o.synchronous != "" {
		v.Set("_synchronous", o.synchronous)
	}
	if o.foreignKeys {
		v.Set("_foreign_keys", "1")
	}
	if o.queryOnly {
		v.Set("_query_only", "1")
	}
	if o.wal {
		v.Set("_journal_mode", "WAL")
	}
	if o.cacheKiB > 0 {
		v.Set("_cache_size", strconv.Itoa(-o.cacheKiB))
	}
	if o.immutable {
		// The driver hands a "file:" name to SQLite as a URI, its own "_" parameters removed.
		return fileURI(path) + "?mode=ro&immutable=1&" + v.Encode()
	}
	return path + "?" + v.Encode()
}

func (mattnDriver) autocommit(dc any) bool {
	sc, ok := dc.(*sqlite3.SQLiteConn)
	return ok && sc.AutoCommit()
}

func (mattnDriver) isBusy(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked
	}
	return strings.Contains(err.Error(), "database is locked")
}

func (mattnDriver) describe() string { return "mattn/go-sqlite3 (cgo)" }
