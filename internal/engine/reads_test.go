package engine_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
	"github.com/leasehold/leasehold/internal/store"
)

// leaseReads counts the lookups of a lease by session key in the Updates it runs.
type leaseReads struct {
	store.Store
	n atomic.Int64
}

func (s *leaseReads) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	return s.Store.Update(ctx, func(tx store.Tx) error { return fn(&leaseReadsTx{Tx: tx, n: &s.n}) })
}

// leaseReadsTx counts the lease reads of the SQLite Tx it wraps; every other method is the
// wrapped Tx's, so the engine takes the same paths as without it.
type leaseReadsTx struct {
	store.Tx
	n *atomic.Int64
}

func (t *leaseReadsTx) GetLeaseBySessionKey(ctx context.Context, tenant, licenseID, seatKey, sessKey string) (*domain.Lease, error) {
	t.n.Add(1)
	return t.Tx.GetLeaseBySessionKey(ctx, tenant, licenseID, seatKey, sessKey)
}

func (t *leaseReadsTx) LockLease(ctx context.Context, tenant, licenseID, seatKey, sessKey string) (*domain.Lease, error) {
	t.n.Add(1)
	return t.Tx.LockLease(ctx, tenant, licenseID, seatKey, sessKey)
}

// On the single writer, a consumption reads its session key's lease once: decide's look
// answers the lock that follows, for a new seat (no lease) as for a renewal.
func TestConsumeReadsSessionKeyOnce(t *testing.T) {
	h := newHarness(t)
	h.setup(10, func(m *domain.LicenseModel) { m.Anchors = []string{domain.AnchorUser, domain.AnchorHW} })
	reads := &leaseReads{Store: h.st}
	eng := engine.New(reads, h.cat, engine.Options{QueuePoll: 20 * time.Millisecond, HeartbeatPeriod: time.Second})
	consume := func(r engine.Request) *domain.Lease {
		t.Helper()
		res, err := eng.Consume(h.ctx, r)
		if err != nil || len(res) != 1 || res[0].Err != nil || res[0].Lease == nil {
			t.Fatalf("Consume: %+v, %v", res, err)
		}
		return res[0].Lease
	}
	readsOf := func(name string, r engine.Request) *domain.Lease {
		t.Helper()
		before := reads.n.Load()
		l := consume(r)
		if n := reads.n.Load() - before; n != 1 {
			t.Errorf("%s: %d lease reads by session key, want 1", name, n)
		}
		return l
	}
	first := readsOf("new seat", req("alice", "FeatA", hw("h1")))
	readsOf("renewal", req("alice", "FeatA", hw("h1"), leaseID(first.ID)))
	readsOf("another new seat", req("bob", "FeatA", hw("h2")))
}
