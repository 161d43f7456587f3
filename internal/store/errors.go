package store

import (
	"context"
	"errors"
	"net"
	"strings"
)

// Unavailable reports whether err says the store could not be reached or was overloaded
// (the connection failed or timed out, the database is shutting down or out of
// resources): a retry may succeed, and the HTTP answer is 503. Any other error is a bug
// or a broken invariant, and the answer is 500.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	// PostgreSQL's SQLSTATE, without importing a driver: class 08 connection exception,
	// 53 insufficient resources, 57P0x operator intervention (shutdown, crash), and the
	// serialization failures Update retries itself, should they still surface.
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		code := pg.SQLState()
		return strings.HasPrefix(code, "08") || strings.HasPrefix(code, "53") ||
			strings.HasPrefix(code, "57P") || code == "40001" || code == "40P01"
	}
	return false
}
