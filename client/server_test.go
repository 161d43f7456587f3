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

// abandon stops the Client as a crash would: no release, no logoff, the StateDir as it is.
func (c *Client) abandon() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	c.mu.Lock()
	for _, l := range c.leases {
		l.closeEvents()
	}
	c.mu.Unlock()
	if c.state != nil {
		c.state.close()
	}
	c.closeTransport()
}
