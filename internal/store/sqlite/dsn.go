package sqlite

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// defaultWriterCacheKiB is the writer's page cache unless the DSN sets cache_size.
const defaultWriterCacheKiB = 64 << 10

// settings are what a store DSN may set.
type settings struct {
	path        string
	synchronous string // as SQLite spells it: OFF, NORMAL, FULL, EXTRA
	busyTimeout int    // milliseconds
	// cacheKiB is the writer's page cache (PRAGMA cache_size = -cacheKiB). The writer is the
	// one connection whose cache survives other connections' commits in WAL mode, and every
	// page it misses is a pread(2) inside the single writer's critical path: with SQLite's
	// 2 MB, a renewal load spent a tenth of its CPU in them (BENCHMARKS.md), so the default
	// is 64 MiB, memory that holds the hot index pages of a million leases.
	cacheKiB int
	mmapSize int64 // bytes of the file every connection maps (PRAGMA mmap_size); 0: none
}

// FilePath is the database file a store DSN names.
func FilePath(dsn string) (string, error) {
	st, err := parseDSN(dsn)
	return st.path, err
}

// parseDSN reads `sqlite://./relative/path.db`, `sqlite:///abs/path.db`, `sqlite:path.db` or a
// bare path, each optionally followed by `?synchronous=full&busy_timeout=10000`, and
// `cache_size=KiB` (the writer's page cache; default 64 MiB) and `mmap_size=bytes`
// (every connection's; default 0).
func parseDSN(dsn string) (settings, error) {
	st := settings{synchronous: "NORMAL", busyTimeout: 5000, cacheKiB: defaultWriterCacheKiB}
	rest, escaped := dsn, false
	switch {
	case strings.HasPrefix(rest, "sqlite://"):
		rest, escaped = strings.TrimPrefix(rest, "sqlite://"), true
	case strings.HasPrefix(rest, "sqlite:"):
		rest, escaped = strings.TrimPrefix(rest, "sqlite:"), true
	}
	path, rawQuery, _ := strings.Cut(rest, "?")
	if escaped {
		p, err := url.PathUnescape(path)
		if err != nil {
			return st, fmt.Errorf("sqlite: bad path in %q: %w", dsn, err)
		}
		path = p
	}
	switch {
	case path == "":
		return st, fmt.Errorf("sqlite: no file path in %q (use sqlite://./dir/file.db or sqlite:///abs/file.db)", dsn)
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		// Each connection of an in-memory database would see a database of its own.
		return st, fmt.Errorf("sqlite: %q: the store needs a file path", dsn)
	}
	st.path = path
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return st, fmt.Errorf("sqlite: bad options in %q: %w", dsn, err)
	}
	for key, vals := range q {
		val := vals[len(vals)-1]
		switch strings.ToLower(key) {
		case "synchronous":
			switch v := strings.ToUpper(val); v {
			case "OFF", "NORMAL", "FULL", "EXTRA":
				st.synchronous = v
			default:
				return st, fmt.Errorf("sqlite: synchronous=%q in %q: want off, normal, full or extra", val, dsn)
			}
		case "busy_timeout":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return st, fmt.Errorf("sqlite: busy_timeout=%q in %q: want milliseconds", val, dsn)
			}
			st.busyTimeout = n
		case "cache_size":
			n, err := strconv.Atoi(val)
			if err != nil || n <= 0 {
				return st, fmt.Errorf("sqlite: cache_size=%q in %q: want KiB (the writer's page cache)", val, dsn)
			}
			st.cacheKiB = n
		case "mmap_size":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || n < 0 {
				return st, fmt.Errorf("sqlite: mmap_size=%q in %q: want bytes", val, dsn)
			}
			st.mmapSize = n
		default:
			return st, fmt.Errorf("sqlite: unknown option %q in %q (known: synchronous, busy_timeout, cache_size, mmap_size)", key, dsn)
		}
	}
	return st, nil
}

// connOptions are the pragmas of the store's connections. Readers are query_only so that
// a write through a View fails in SQLite too.
func (st settings) connOptions(reader bool) connOptions {
	o := connOptions{busyTimeout: st.busyTimeout, synchronous: st.synchronous, foreignKeys: true}
	if reader {
		o.queryOnly = true
	} else {
		o.wal = true
		o.cacheKiB = st.cacheKiB
	}
	return o
}
