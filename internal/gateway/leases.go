package gateway

import (
	"sync"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
)

// ItemRecheck bounds how long this process trusts its memory of an item lease without
// asking the store: an administrator may end the lease through another process, whose
// engine events this one never sees.
const ItemRecheck = 5 * time.Second

// Leases remembers, per process, which item leases sessions hold, so that admitting a
// request whose session already holds its route's item is a memory lookup, not an engine
// call. It is an engine Observer: a lease that ends (a logout, the session's end, an
// administrator, expiry) is forgotten when its transaction commits.
type Leases struct {
	// open are the admitted requests still open, closed when their session's seat or
	// their item lease ends (also fed by SessionEnded).
	open *openRequests

	mu     sync.Mutex
	byKey  map[leaseKey]heldLease
	byRoot map[rootKey]leaseKey
	gen    uint64 // moves at every forgotten lease
}

type leaseKey struct{ tenant, session, item string }
type rootKey struct{ tenant, root string }

type heldLease struct {
	license, root string
	checked       time.Time
}

var _ engine.Observer = (*Leases)(nil)

func NewLeases() *Leases {
	return &Leases{open: newOpenRequests(), byKey: map[leaseKey]heldLease{}, byRoot: map[rootKey]leaseKey{}}
}

// SessionEnded closes the requests still open of a session that ended (the session
// manager's end hook: a session sharing its seat lease with another ends without the
// lease's end event).
func (c *Leases) SessionEnded(tenant, sessionID string) {
	c.open.close(openKey{'s', tenant, sessionID})
}

// Observe forgets the leases that ended.
func (c *Leases) Observe(events []engine.Event) {
	for _, ev := range events {
		if ev.Lease == nil || ev.Lease.SessionID == "" || ev.Kind == domain.EventGrant || ev.Kind == domain.EventDeny {
			continue
		}
		c.open.close(openKey{'l', ev.Tenant, ev.Lease.Root})
		c.mu.Lock()
		rk := rootKey{ev.Tenant, ev.Lease.Root}
		if k, ok := c.byRoot[rk]; ok {
			delete(c.byRoot, rk)
			delete(c.byKey, k)
			c.gen++
		}
		c.mu.Unlock()
	}
}

// lookup returns the license of the lease the session holds on item, when it is known and
// was checked within ItemRecheck.
func (c *Leases) lookup(tenant, session, item string, now time.Time) (license, root string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.byKey[leaseKey{tenant, session, item}]
	if !ok || now.Sub(h.checked) >= ItemRecheck {
		return "", "", false
	}
	return h.license, h.root, true
}

func (c *Leases) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// remember records a lease taken or confirmed since generation gen. When a lease ended in
// between (its event may have come before this call), the entry is kept as due for a
// recheck, so a stale one cannot outlive the next request.
func (c *Leases) remember(tenant, session, item, license, root string, gen uint64, now time.Time) {
	if root == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		now = time.Time{}
	}
	k := leaseKey{tenant, session, item}
	if old, ok := c.byKey[k]; ok && old.root != root {
		delete(c.byRoot, rootKey{tenant, old.root})
	}
	c.byKey[k] = heldLease{license: license, root: root, checked: now}
	c.byRoot[rootKey{tenant, root}] = k
}

// forget drops a session's entry (its session is gone or the lease was refused).
func (c *Leases) forget(tenant, session, item string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := leaseKey{tenant, session, item}
	if h, ok := c.byKey[k]; ok {
		delete(c.byRoot, rootKey{tenant, h.root})
		delete(c.byKey, k)
	}
}
