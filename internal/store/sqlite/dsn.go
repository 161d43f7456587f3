package sqlite

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// settings are what a store DSN may set.
type settings struct {
	path        string
	synchronous string // as SQLite spells it: OFF, NORMAL, FULL, EXTRA
	busyTimeout int    // milliseconds
}

// parseDSN reads `sqlite://./relative/path.db`, `sqlite:///abs/path.db`, `sqlite:path.db` or a
// bare path, each optionally followed by `?synchronous=full&busy_timeout=10000`.
func parseDSN(dsn string) (settings, error) {
	st := settings{synchronous: "NORMAL", busyTimeout: 5000}
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
		default:
			return st, fmt.Errorf("sqlite: unknown option %q in %q (known: synchronous, busy_timeout)", key, dsn)
		}
	}
	return st, nil
}

// driverDSN is the DSN for mattn/go-sqlite3, which sets these pragmas on every connection
// it opens. Readers are query_only so that a write through a View fails in SQLite too.
func (st settings) driverDSN(reader bool) string {
	v := url.Values{}
	v.Set("_busy_timeout", strconv.Itoa(st.busyTimeout))
	v.Set("_synchronous", st.synchronous)
	v.Set("_foreign_keys", "1")
	if reader {
		v.Set("_query_only", "1")
	} else {
		v.Set("_journal_mode", "WAL")
	}
	return st.path + "?" + v.Encode()
}
