package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
)

type sqlStateErr string

func (e sqlStateErr) Error() string    { return "pg: " + string(e) }
func (e sqlStateErr) SQLState() string { return string(e) }

func TestUnavailable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("nil pointer somewhere"), false},
		{fmt.Errorf("read lease: %w", ErrNoSuchThing), false},
		{fmt.Errorf("begin: %w", context.DeadlineExceeded), true},
		{fmt.Errorf("dial: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")}), true},
		{fmt.Errorf("commit: %w", sqlStateErr("08006")), true},
		{sqlStateErr("53300"), true}, // too many connections
		{sqlStateErr("57P01"), true}, // admin shutdown
		{sqlStateErr("40001"), true},
		{sqlStateErr("23505"), false}, // unique violation: a bug here
		{sqlStateErr("42P01"), false}, // undefined table
	} {
		if got := Unavailable(c.err); got != c.want {
			t.Errorf("Unavailable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

var ErrNoSuchThing = errors.New("no such thing")
