package client

import (
	"testing"
	"time"

	"github.com/leasehold/leasehold/client/internal/testserver"
)

func TestMain(m *testing.M) { testserver.Main(m, "..") }

// --- events ---

// waitEvent reads l's events until one of kind arrives; an event in forbid fails the test.
func waitEvent(t *testing.T, l *Lease, kind EventKind, timeout time.Duration, forbid ...EventKind) Event {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-l.Events():
			if !ok {
				t.Fatalf("events closed while waiting for %s", kind)
			}
			t.Logf("event: %s", ev)
			if ev.Kind == kind {
				return ev
			}
			for _, f := range forbid {
				if ev.Kind == f {
					t.Fatalf("unexpected event %s while waiting for %s", ev, kind)
				}
			}
		case <-timer.C:
			t.Fatalf("no %s event within %s", kind, timeout)
		}
	}
}
