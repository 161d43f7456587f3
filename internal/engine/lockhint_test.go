package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
	"github.com/leasehold/leasehold/internal/store"
)

// lockHints records the lock hint (store.LockHint) of every Update it runs.
type lockHints struct {
	store.Store
	mu    sync.Mutex
	hints []string
}

func (s *lockHints) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	s.mu.Lock()
	s.hints = append(s.hints, store.LockHint(ctx))
	s.mu.Unlock()
	return s.Store.Update(ctx, fn)
}

// last is the hint of the latest Update.
func (s *lockHints) last() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.hints) == 0 {
		return "(no Update)"
	}
	return s.hints[len(s.hints)-1]
}

// A consumption that can only be decided under the license lock names it, so that a
// batching store groups those of one license; one that may renew under a lease's lock, or
// be refused without the license lock, names none.
func TestConsumptionNamesLicenseLock(t *testing.T) {
	h := newHarness(t)
	h.setup(2, func(m *domain.LicenseModel) {
		m.LeaseChaining = true
		m.Anchors = []string{domain.AnchorUser, domain.AnchorHW}
	})
	hints := &lockHints{Store: h.st}
	eng := engine.New(hints, h.cat, engine.Options{QueuePoll: 20 * time.Millisecond, HeartbeatPeriod: time.Second})
	licenseLock := store.LicenseLock(tenant, "L1")
	consume := func(name string, r engine.Request, want string) engine.Result {
		t.Helper()
		res, err := eng.Consume(h.ctx, r)
		if err != nil || len(res) != 1 {
			t.Fatalf("%s: Consume: %+v, %v", name, res, err)
		}
		if got := hints.last(); got != want {
			t.Errorf("%s: lock hint %q, want %q", name, got, want)
		}
		return res[0]
	}
	first := consume("new seat, chained model", req("alice", "FeatA", hw("h1")), licenseLock)
	if first.Lease == nil {
		t.Fatalf("new seat refused: %+v", first.Err)
	}
	consume("renewal naming its lease", req("alice", "FeatA", hw("h1"), leaseID(first.Lease.ID)), "")
	consume("second seat", req("bob", "FeatA", hw("h2")), licenseLock)
	if res := consume("no seat left", req("carol", "FeatA", hw("h3")), licenseLock); res.Err == nil || res.Err.Code != domain.CodeQuotaExceeded {
		t.Fatalf("want a refusal for want of a seat, got %+v", res)
	}
	consume("license refused lately", req("dave", "FeatA", hw("h4")), "")

	// Without chaining, a request naming no lease may renew by session key.
	h.model(model("m", func(m *domain.LicenseModel) { m.Anchors = []string{domain.AnchorUser, domain.AnchorHW} }))
	h.license(license("L2", "m", 5, nil))
	consume("new seat, model without chaining", req("alice", "FeatB", hw("h5"), onLicense("L2")), "")
}
