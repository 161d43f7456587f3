package engine_test

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
	"github.com/leasehold/leasehold/internal/store"
)

// recorder is an Observer that keeps every delivery.
type recorder struct {
	mu         sync.Mutex
	deliveries [][]engine.Event
}

func (r *recorder) Observe(events []engine.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deliveries = append(r.deliveries, events)
}

// kinds lists the kinds delivered so far (a grant that renews is "renew") and forgets them.
func (r *recorder) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, d := range r.deliveries {
		for _, ev := range d {
			k := ev.Kind
			if k == domain.EventGrant && ev.Renewal {
				k = domain.EventRenew
			}
			if k == domain.EventDeny {
				k += ":" + string(ev.Code)
			}
			out = append(out, k)
		}
	}
	r.deliveries = nil
	return out
}

// TestSessionSeat: the engine's one path for a session's seat. A login token's seat is
// reclaimed only by its own user (the session then takes over the seat's device); a
// session's seat is extended by naming its lease and released when the session ends; and
// every step is reported to the observers once committed, never when rolled back.
func TestSessionSeat(t *testing.T) {
	rec := &recorder{}
	h := newHarness(t, func(o *engine.Options) { o.Observers = []engine.Observer{rec} })
	policy := domain.DefaultSessionPolicy()
	policy.Item = "FeatA"
	h.put("", domain.KindTenant, tenant, domain.Tenant{Name: tenant, Session: policy})
	h.setup(3, func(m *domain.LicenseModel) {
		m.Anchors = []string{"user", "hw"}
		m.Linger = domain.Duration(2 * time.Minute)
	})
	old := h.grant(req("alice", "FeatA", hw("desktop")))
	h.mustRelease("alice", old.ID) // lingers: a login token of alice's may take it back
	rc := &engine.Reclaim{License: "L1", SeatKey: old.SeatKey, Device: "desktop"}
	if got := rec.kinds(); !slices.Equal(got, []string{domain.EventGrant, domain.EventRelease}) {
		t.Errorf("events of an /authz grant and release: %v", got)
	}

	snap, err := h.cat.Get(h.ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	seatOf := func(user, session, device string) engine.SessionSeat {
		return engine.SessionSeat{Tenant: tenant, SessionID: session, Caller: caller(user), Device: device,
			Expiry: h.clock.Now().Add(time.Hour)}
	}
	run := func(fn func(tx store.Tx) (engine.SessionGrant, error)) (engine.SessionGrant, error) {
		t.Helper()
		var g engine.SessionGrant
		err := h.st.Update(h.ctx, func(tx store.Tx) error {
			var err error
			g, err = fn(tx)
			return err
		})
		return g, err
	}

	// Another user's login cannot reclaim alice's seat: it takes one from its own device.
	bob := seatOf("bob", "s-bob", "phone")
	bob.Reclaim = rc
	g, err := run(func(tx store.Tx) (engine.SessionGrant, error) { return h.eng.TakeSessionSeat(h.ctx, tx, snap, bob) })
	if err != nil {
		t.Fatal(err)
	}
	if g.Device != "phone" || g.Lease.HW != "phone" || g.Lease.SeatKey == old.SeatKey {
		t.Errorf("bob reclaimed alice's seat: device %q, lease %+v", g.Device, g.Lease)
	}

	// Alice's login takes it back, with its device.
	alice := seatOf("alice", "s-alice", "laptop")
	alice.Reclaim = rc
	g, err = run(func(tx store.Tx) (engine.SessionGrant, error) { return h.eng.TakeSessionSeat(h.ctx, tx, snap, alice) })
	if err != nil {
		t.Fatal(err)
	}
	if g.Device != "desktop" || g.Lease.SeatKey != old.SeatKey || !g.Expiry.Equal(alice.Expiry) {
		t.Fatalf("alice's token login: %+v", g)
	}
	if got := rec.kinds(); !slices.Equal(got, []string{domain.EventGrant, domain.EventGrant}) {
		t.Errorf("events of two session grants: %v", got)
	}

	// Used: extended by naming its lease, although its anchors changed.
	h.clock.Advance(time.Minute)
	alice.LeaseID, alice.Device, alice.Reclaim = g.Lease.Root, "desktop", nil
	alice.Expiry = h.clock.Now().Add(2 * time.Hour)
	g2, err := run(func(tx store.Tx) (engine.SessionGrant, error) { return h.eng.ExtendSessionSeat(h.ctx, tx, snap, alice) })
	if err != nil || g2.Lease.Root != g.Lease.Root || !g2.Lease.ExpiresAt.Equal(alice.Expiry) {
		t.Fatalf("extension: %+v %v", g2, err)
	}

	// A license that ends first ends the new session with it.
	validUntil := h.clock.Now().Add(30 * time.Minute)
	h.license(license("L1", "m", 3, func(l *domain.License) { l.ValidUntil = &validUntil }))
	snap, _ = h.cat.Get(h.ctx, tenant)
	g3, err := run(func(tx store.Tx) (engine.SessionGrant, error) {
		return h.eng.TakeSessionSeat(h.ctx, tx, snap, seatOf("dave", "s-dave", "pc"))
	})
	if err != nil || !g3.Expiry.Equal(validUntil) || !g3.Lease.ExpiresAt.Equal(validUntil) {
		t.Errorf("session deadline past valid_until: %+v %v", g3, err)
	}
	if got := rec.kinds(); !slices.Equal(got, []string{domain.EventRenew, domain.EventGrant}) {
		t.Errorf("events of an extension and a grant: %v", got)
	}

	// Carol finds no seat: a SeatError, reported as a refusal (the transaction committed).
	_, err = run(func(tx store.Tx) (engine.SessionGrant, error) {
		g, err := h.eng.TakeSessionSeat(h.ctx, tx, snap, seatOf("carol", "s-carol", "tablet"))
		var se *engine.SeatError
		if errors.As(err, &se) && se.Err.Code == domain.CodeQuotaExceeded {
			return g, nil
		}
		return g, errors.New("carol was not refused for want of a seat")
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.kinds(); !slices.Equal(got, []string{domain.EventDeny + ":" + string(domain.CodeQuotaExceeded)}) {
		t.Errorf("events of a refused session seat: %v", got)
	}

	// The session ends (a logoff): its seat lingers, and the end is reported, but only once
	// committed: the first try rolls back and reports nothing.
	for _, commit := range []bool{false, true} {
		err := h.st.Update(h.ctx, func(tx store.Tx) error {
			if err := h.eng.EndSessionSeat(h.ctx, tx, snap, tenant, g.Lease.Root, true); err != nil {
				return err
			}
			if !commit {
				return errors.New("rolled back")
			}
			return nil
		})
		if commit != (err == nil) {
			t.Fatalf("end (commit %v): %v", commit, err)
		}
		want := []string(nil)
		if commit {
			want = []string{domain.EventRelease}
		}
		if got := rec.kinds(); !slices.Equal(got, want) {
			t.Errorf("events of an end (commit %v): %v", commit, got)
		}
	}
	if s := h.seat("L1", old.SeatKey); s == nil || !s.Lingering {
		t.Errorf("seat after the session's end: %+v", s)
	}
}
