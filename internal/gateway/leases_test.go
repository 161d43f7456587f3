package gateway

import (
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
)

func TestLeasesRememberAndForget(t *testing.T) {
	c := NewLeases()
	now := time.Now()
	if _, _, ok := c.lookup("t", "s1", "I", now); ok {
		t.Fatal("hit on an empty cache")
	}
	c.remember("t", "s1", "I", "L1", "r1", c.generation(), now)
	if lic, root, ok := c.lookup("t", "s1", "I", now.Add(time.Second)); !ok || lic != "L1" || root != "r1" {
		t.Fatalf("lookup: %q %v", lic, ok)
	}
	if _, _, ok := c.lookup("t", "s1", "I", now.Add(ItemRecheck)); ok {
		t.Fatal("an entry older than ItemRecheck answered")
	}
	// A grant or renewal changes nothing; the lease's end (any kind) forgets it.
	c.Observe([]engine.Event{{Kind: domain.EventGrant, Tenant: "t", Lease: &domain.Lease{Root: "r1", SessionID: "s1"}}})
	if _, _, ok := c.lookup("t", "s1", "I", now); !ok {
		t.Fatal("forgotten on a grant")
	}
	c.Observe([]engine.Event{{Kind: domain.EventEnd, Tenant: "other", Lease: &domain.Lease{Root: "r1", SessionID: "s1"}}})
	if _, _, ok := c.lookup("t", "s1", "I", now); !ok {
		t.Fatal("forgotten on another tenant's lease")
	}
	c.Observe([]engine.Event{{Kind: domain.EventRelease, Tenant: "t", Lease: &domain.Lease{Root: "r1", SessionID: "s1"}}})
	if _, _, ok := c.lookup("t", "s1", "I", now); ok {
		t.Fatal("remembered after its lease ended")
	}
	// Taken while a lease ended: kept, but due for a recheck at once.
	gen := c.generation()
	c.remember("t", "s2", "I", "L1", "r2", gen, now)
	c.Observe([]engine.Event{{Kind: domain.EventExpire, Tenant: "t", Lease: &domain.Lease{Root: "r2", SessionID: "s2"}}})
	c.remember("t", "s3", "I", "L1", "r3", gen, now)
	if _, _, ok := c.lookup("t", "s3", "I", now); ok {
		t.Fatal("an entry taken across an end answered without a recheck")
	}
	if len(c.byKey) != 1 || len(c.byRoot) != 1 {
		t.Fatalf("maps: %d %d", len(c.byKey), len(c.byRoot))
	}
}
