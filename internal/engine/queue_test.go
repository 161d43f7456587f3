package engine_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
)

// withPoll sets the queue's own retry period; a long one leaves only the wake-ups of this
// process to move a waiter.
func withPoll(d time.Duration) option { return func(o *engine.Options) { o.QueuePoll = d } }

type answer struct {
	res engine.Result
	err error
	at  time.Time
}

// enqueue starts a queued consumption and returns where its answer will arrive.
func (h *harness) enqueue(ctx context.Context, r engine.Request) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		res, err := h.eng.Consume(ctx, r)
		a := answer{err: err, at: time.Now()}
		if err == nil {
			a.res = res[0]
		}
		ch <- a
	}()
	return ch
}

func waitAnswer(t *testing.T, ch <-chan answer) answer {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("no answer within 10s")
		return answer{}
	}
}

func noAnswer(t *testing.T, ch <-chan answer, within time.Duration) {
	t.Helper()
	select {
	case a := <-ch:
		t.Fatalf("answered early: %+v", a)
	case <-time.After(within):
	}
}

func TestQueueWaiterGetsReleasedSeat(t *testing.T) {
	h := newHarness(t, withPoll(time.Hour))
	h.setup(1, func(m *domain.LicenseModel) { m.Linger = 0 })
	a := h.grant(req("alice", "FeatA"))

	bob := h.enqueue(h.ctx, req("bob", "FeatA", queue(30*time.Second)))
	noAnswer(t, bob, 100*time.Millisecond)
	released := time.Now()
	h.mustRelease("alice", a.ID)
	got := waitAnswer(t, bob)
	if got.err != nil || got.res.Err != nil || got.res.Lease == nil {
		t.Fatalf("bob: %+v", got)
	}
	if d := got.at.Sub(released); d > 2*time.Second {
		t.Errorf("bob waited %v after the release", d)
	}
}

func TestQueueFIFO(t *testing.T) {
	h := newHarness(t, withPoll(time.Hour))
	h.setup(1, func(m *domain.LicenseModel) { m.Linger = 0 })
	a := h.grant(req("alice", "FeatA"))

	bob := h.enqueue(h.ctx, req("bob", "FeatA", queue(30*time.Second)))
	noAnswer(t, bob, 50*time.Millisecond)
	carol := h.enqueue(h.ctx, req("carol", "FeatA", queue(30*time.Second)))
	noAnswer(t, carol, 50*time.Millisecond)

	h.mustRelease("alice", a.ID)
	b := waitAnswer(t, bob)
	if b.err != nil || b.res.Lease == nil {
		t.Fatalf("bob: %+v", b)
	}
	noAnswer(t, carol, 100*time.Millisecond)
	h.mustRelease("bob", b.res.Lease.ID)
	c := waitAnswer(t, carol)
	if c.err != nil || c.res.Lease == nil {
		t.Fatalf("carol: %+v", c)
	}
}

func TestQueueSeesExpiry(t *testing.T) {
	h := newHarness(t) // polls every 20ms
	h.setup(1, func(m *domain.LicenseModel) { m.OnlineLease = domain.Duration(time.Minute) })
	h.grant(req("alice", "FeatA"))
	bob := h.enqueue(h.ctx, req("bob", "FeatA", queue(30*time.Second)))
	noAnswer(t, bob, 100*time.Millisecond)
	h.clock.Advance(time.Minute)
	if got := waitAnswer(t, bob); got.err != nil || got.res.Lease == nil {
		t.Fatalf("bob: %+v", got)
	}
}

func TestQueueGivesUp(t *testing.T) {
	h := newHarness(t)
	h.setup(1, nil)
	h.grant(req("alice", "FeatA"))
	start := time.Now()
	h.refuse(req("bob", "FeatA", queue(200*time.Millisecond)), domain.CodeQuotaExceeded)
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("gave up after %v", d)
	}
	// Other refusals are not queued.
	start = time.Now()
	h.refuse(req("bob", "Nope", queue(10*time.Second)), domain.CodeNoLicenseFound)
	h.refuse(req("bob", "FeatA", queue(10*time.Second), count(-1)), domain.CodeBadArgument)
	if d := time.Since(start); d > time.Second {
		t.Errorf("a refusal other than licenseQuotaExceeded waited %v", d)
	}
}

func TestQueueClientGoneWhileWaiting(t *testing.T) {
	h := newHarness(t)
	h.setup(1, func(m *domain.LicenseModel) { m.Linger = 0 })
	a := h.grant(req("alice", "FeatA"))
	ctx, cancel := context.WithCancel(h.ctx)
	bob := h.enqueue(ctx, req("bob", "FeatA", queue(30*time.Second)))
	noAnswer(t, bob, 50*time.Millisecond)
	cancel()
	if got := waitAnswer(t, bob); !errors.Is(got.err, context.Canceled) {
		t.Fatalf("bob: %+v", got)
	}
	h.mustRelease("alice", a.ID)
	h.grant(req("carol", "FeatA"))
}

// grantHook cancels a context at the first grant it sees once armed.
type grantHook struct {
	mu     sync.Mutex
	cancel context.CancelFunc
}

func (g *grantHook) OnGrant(tenant, licenseID, item string, renewal, overage bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cancel != nil {
		g.cancel()
		g.cancel = nil
	}
}
func (g *grantHook) OnDeny(string, string, domain.ErrorCode) {}
func (g *grantHook) OnRelease(string, string, string)        {}

func TestQueueClientGoneAfterGrant(t *testing.T) {
	hook := &grantHook{}
	h := newHarness(t, withMetrics(hook), withPoll(time.Hour))
	h.setup(1, func(m *domain.LicenseModel) { m.Linger = domain.Duration(time.Hour) })
	a := h.grant(req("alice", "FeatA"))
	h.mustRelease("alice", a.ID) // lingering: only alice may take it
	b := h.grant(req("alice", "FeatA"))

	ctx, cancel := context.WithCancel(h.ctx)
	hook.mu.Lock()
	hook.cancel = cancel // the client goes away the moment bob's grant is made
	hook.mu.Unlock()
	bob := h.enqueue(ctx, req("bob", "FeatA", queue(30*time.Second)))
	noAnswer(t, bob, 50*time.Millisecond)
	// Ended by an administrator: no linger, so bob's waiter is granted the seat.
	if res, err := h.eng.EndLease(h.ctx, tenant, b.ID, false); err != nil || !res.Freed {
		t.Fatalf("end: %+v %v", res, err)
	}
	if got := waitAnswer(t, bob); !errors.Is(got.err, context.Canceled) {
		t.Fatalf("bob: %+v", got)
	}
	// What bob was granted went back at once, without linger.
	if ls := h.leases(); len(ls) != 0 {
		t.Errorf("leases left: %+v", ls)
	}
	if n := h.liveSeats("L1"); n != 0 {
		t.Errorf("%d seats held", n)
	}
	if h.events(domain.EventGrant) != 3 || h.events(domain.EventEnd) != 2 {
		t.Errorf("usage: %+v", h.usage())
	}
}

// TestQueueFIFOWhilePolling: waiters that all poll are still served in arrival order.
func TestQueueFIFOWhilePolling(t *testing.T) {
	h := newHarness(t) // polls every 20ms
	h.setup(1, func(m *domain.LicenseModel) {
		m.Anchors = []string{"user", "hw"}
		m.Linger = 0
	})
	cur := h.grant(req("alice", "FeatA", hw("first")))
	var waiters []<-chan answer
	for i := range 4 {
		waiters = append(waiters, h.enqueue(h.ctx, req("bob", "FeatA", hw(string(rune('a'+i))), queue(30*time.Second))))
		noAnswer(t, waiters[i], 40*time.Millisecond)
	}
	for i, w := range waiters {
		h.mustRelease(cur.User, cur.ID)
		got := waitAnswer(t, w)
		if got.err != nil || got.res.Lease == nil {
			t.Fatalf("waiter %d: %+v", i, got)
		}
		cur = got.res.Lease
	}
}
