//go:build !cgo

package sqlite

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/ncruces/go-sqlite3"
	_ "github.com/ncruces/go-sqlite3/driver" // registers "sqlite3"
)

// ncrucesDriver is github.com/ncruces/go-sqlite3: SQLite's C source translated to Go
// (through WebAssembly), so the build needs no C compiler; slower than the cgo build
// (BENCHMARKS.md, "A build without cgo").
type ncrucesDriver struct{}

var (
	_   sqlDriver = ncrucesDriver{}
	drv sqlDriver = ncrucesDriver{}
)

func (ncrucesDriver) name() string { return "sqlite3" }

// dsn is a "file:" URI (the driver reads parameters only from one) whose _pragma
// parameters the driver runs, in order, on every connection it opens: busy_timeout
// first, so that the ones after it wait for a lock rather than fail.
func (ncrucesDriver) dsn(path string, o connOptions) string {
	pragmas := []string{fmt.Sprintf("busy_timeout(%d)", o.busyTimeout)}
	if o.synchronous != "" {
		pragmas = append(pragmas, "synchronous("+o.synchronous+")")
	}
	if o.foreignKeys {
		pragmas = append(pragmas, "foreign_keys(1)")
	}
	if o.queryOnly {
		pragmas = append(pragmas, "query_only(1)")
	}
	if o.wal {
		pragmas = append(pragmas, "journal_mode(WAL)")
	}
	if o.cacheKiB > 0 {
		pragmas = append(pragmas, fmt.Sprintf("cache_size(%d)", -o.cacheKiB))
	}
	var q []string
	if o.immutable {
		q = append(q, "mode=ro", "immutable=1")
	}
	for _, p := range pragmas {
		q = append(q, "_pragma="+url.QueryEscape(p))
	}
	return fileURI(path) + "?" + strings.Join(q, "&")
}

func (ncrucesDriver) autocommit(dc any) bool {
	c, ok := dc.(interface{ Raw() *sqlite3.Conn })
	return ok && c.Raw().GetAutocommit()
}

func (ncrucesDriver) isBusy(err error) bool {
	return errors.Is(err, sqlite3.BUSY) || errors.Is(err, sqlite3.LOCKED)
}

func (ncrucesDriver) describe() string { return "ncruces/go-sqlite3 (pure Go, no cgo)" }
