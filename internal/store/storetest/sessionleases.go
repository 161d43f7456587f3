package storetest

import (
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// testSessionLeases: the item leases a session holds, one per item (a Put replaces), listed
// by item, deleted one by one, with the session, and with the tenant.
func testSessionLeases(t *testing.T, s store.Store) {
	base := baseTime(t, s)
	insertSessions(t, s,
		domain.Session{ID: "s1", Tenant: "acme", Kind: domain.SessionPassword, User: "alice", CreatedAt: base, LastUsedAt: base, ExpiresAt: base.Add(time.Hour)},
		domain.Session{ID: "s2", Tenant: "acme", Kind: domain.SessionPassword, User: "bob", CreatedAt: base, LastUsedAt: base, ExpiresAt: base.Add(time.Hour)},
		domain.Session{ID: "s1", Tenant: "other", Kind: domain.SessionPassword, User: "alice", CreatedAt: base, LastUsedAt: base, ExpiresAt: base.Add(time.Hour)},
	)
	list := func(tenant, id string) []store.SessionLease {
		return read(t, s, func(tx store.Tx) ([]store.SessionLease, error) { return tx.ListSessionLeases(t.Context(), tenant, id) })
	}
	put := func(l store.SessionLease) {
		update(t, s, func(tx store.Tx) error { return tx.PutSessionLease(t.Context(), l) })
	}
	if got := list("acme", "s1"); len(got) != 0 {
		t.Fatalf("no leases yet: %v", got)
	}
	put(store.SessionLease{Tenant: "acme", SessionID: "s1", Item: "B", LeaseRoot: "r1"})
	put(store.SessionLease{Tenant: "acme", SessionID: "s1", Item: "A", LeaseRoot: "r2"})
	put(store.SessionLease{Tenant: "acme", SessionID: "s1", Item: "B", LeaseRoot: "r3"}) // replaces r1
	put(store.SessionLease{Tenant: "acme", SessionID: "s2", Item: "A", LeaseRoot: "r4"})
	put(store.SessionLease{Tenant: "other", SessionID: "s1", Item: "A", LeaseRoot: "r5"})
	same(t, "s1's leases", list("acme", "s1"), []store.SessionLease{
		{Tenant: "acme", SessionID: "s1", Item: "A", LeaseRoot: "r2"},
		{Tenant: "acme", SessionID: "s1", Item: "B", LeaseRoot: "r3"},
	})

	update(t, s, func(tx store.Tx) error { return tx.DeleteSessionLease(t.Context(), "acme", "s1", "A") })
	same(t, "s1's leases after deleting A", list("acme", "s1"), []store.SessionLease{{Tenant: "acme", SessionID: "s1", Item: "B", LeaseRoot: "r3"}})

	update(t, s, func(tx store.Tx) error { _, err := tx.DeleteSession(t.Context(), "acme", "s1"); return err })
	if got := list("acme", "s1"); len(got) != 0 {
		t.Fatalf("DeleteSession kept its leases: %v", got)
	}
	if got := list("acme", "s2"); len(got) != 1 {
		t.Fatalf("another session's leases: %v", got)
	}
	update(t, s, func(tx store.Tx) error { return tx.DeleteTenantData(t.Context(), "acme") })
	if got := list("acme", "s2"); len(got) != 0 {
		t.Fatalf("DeleteTenantData kept session leases: %v", got)
	}
	if got := list("other", "s1"); len(got) != 1 {
		t.Fatalf("another tenant's session leases: %v", got)
	}
}
