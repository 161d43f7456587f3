package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
	"github.com/leasehold/leasehold/internal/store"
)

func (h *harness) expiredLeases() int {
	h.t.Helper()
	var n int
	err := h.st.View(h.ctx, func(tx store.Tx) error {
		ls, err := tx.ExpiredLeases(h.ctx, tx.Now(), 1000)
		n = len(ls)
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

func TestSweep(t *testing.T) {
	h := newHarness(t)
	h.setup(5, func(m *domain.LicenseModel) {
		m.OnlineLease = domain.Duration(time.Minute)
		m.Linger = domain.Duration(2 * time.Minute)
	})
	h.grant(req("alice", "FeatA"))
	h.grant(req("bob", "FeatA"))
	c := h.grant(req("carol", "FeatA"))
	h.mustRelease("carol", c.ID) // lingers until t0+2m

	if n, err := h.eng.Sweep(h.ctx); err != nil || n != 0 {
		t.Fatalf("sweep with nothing expired: %d %v", n, err)
	}
	h.clock.Advance(time.Minute)
	// Two leases and their two seats; carol's seat still lingers.
	if n, err := h.eng.Sweep(h.ctx); err != nil || n != 4 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	if st := h.state("L1"); st.SeatsHeld != 1 {
		t.Errorf("SeatsHeld %d, want 1", st.SeatsHeld)
	}
	if h.expiredLeases() != 0 || h.events(domain.EventExpire) != 2 {
		t.Errorf("expired leases left or events missing: %+v", h.usage())
	}
	h.clock.Advance(time.Minute)
	if n, err := h.eng.Sweep(h.ctx); err != nil || n != 1 {
		t.Fatalf("sweep of the linger: %d %v", n, err)
	}
	if st := h.state("L1"); st.SeatsHeld != 0 {
		t.Errorf("SeatsHeld %d, want 0", st.SeatsHeld)
	}
	if n, _ := h.eng.Sweep(h.ctx); n != 0 {
		t.Errorf("second sweep removed %d", n)
	}
}

func TestSweepIsBounded(t *testing.T) {
	h := newHarness(t, func(o *engine.Options) { o.SweepBatch = 2 })
	h.setup(5, func(m *domain.LicenseModel) { m.OnlineLease = domain.Duration(time.Minute) })
	for _, u := range []string{"alice", "bob", "carol"} {
		h.grant(req(u, "FeatA"))
	}
	h.clock.Advance(time.Minute)
	if _, err := h.eng.Sweep(h.ctx); err != nil {
		t.Fatal(err)
	}
	if n := h.expiredLeases(); n != 1 {
		t.Errorf("%d expired leases after a sweep of 2, want 1", n)
	}
	if _, err := h.eng.Sweep(h.ctx); err != nil {
		t.Fatal(err)
	}
	if n := h.expiredLeases(); n != 0 {
		t.Errorf("%d expired leases left", n)
	}
}

func TestRun(t *testing.T) {
	h := newHarness(t)
	h.setup(5, func(m *domain.LicenseModel) { m.OnlineLease = domain.Duration(time.Minute) })
	h.grant(req("alice", "FeatA"))
	h.clock.Advance(time.Minute)
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.eng.Run(ctx, "proc-1", 10*time.Millisecond)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for h.expiredLeases() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if h.expiredLeases() != 0 {
		t.Error("Run did not sweep")
	}
	var beat time.Time
	err := h.st.View(h.ctx, func(tx store.Tx) error {
		var err error
		beat, err = tx.LastHeartbeat(h.ctx, "someone-else")
		return err
	})
	if err != nil || !beat.Equal(h.clock.Now()) {
		t.Errorf("heartbeat %v %v, want %v", beat, err, h.clock.Now())
	}
}

func TestRestartGrace(t *testing.T) {
	for _, tt := range []struct {
		name     string
		gap      time.Duration
		beatLate bool // another process beat just before the restart
		grace    time.Duration
		kept     bool
	}{
		{name: "nobody ran: seats held for restart_grace", gap: 10 * time.Minute, grace: time.Minute, kept: true},
		{name: "another process ran: no grace", gap: 10 * time.Minute, beatLate: true, grace: time.Minute},
		{name: "restart_grace 0s: no grace", gap: 10 * time.Minute, grace: 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.setup(1, func(m *domain.LicenseModel) {
				m.OnlineLease = domain.Duration(time.Minute)
				m.RestartGrace = domain.Duration(tt.grace)
			})
			if err := h.eng.Start(h.ctx, "run-1"); err != nil {
				t.Fatal(err)
			}
			a := h.grant(req("alice", "FeatA"))
			h.clock.Advance(tt.gap)
			if tt.beatLate {
				err := h.st.Update(h.ctx, func(tx store.Tx) error { return tx.Heartbeat(h.ctx, "run-1", tx.Now().Add(-time.Second)) })
				if err != nil {
					t.Fatal(err)
				}
			}
			restarted := engine.New(h.st, h.cat, engine.Options{HeartbeatPeriod: time.Second})
			if err := restarted.Start(h.ctx, "run-2"); err != nil {
				t.Fatal(err)
			}
			h.eng = restarted
			if !tt.kept {
				h.grant(req("bob", "FeatA"))
				return
			}
			seat := h.seat("L1", a.SeatKey)
			if seat == nil || !seat.Lingering || !seat.HeldUntil.Equal(h.clock.Now().Add(tt.grace)) {
				t.Fatalf("seat: %+v", seat)
			}
			h.refuse(req("bob", "FeatA"), domain.CodeQuotaExceeded)
			h.grant(req("alice", "FeatA")) // the live client wins its seat back
			h.refuse(req("bob", "FeatA"), domain.CodeQuotaExceeded)
			// A second start changes nothing: run-2's own beat is fresh.
			if err := engine.New(h.st, h.cat, engine.Options{HeartbeatPeriod: time.Second}).Start(h.ctx, "run-3"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRestartGraceExpires(t *testing.T) {
	h := newHarness(t)
	h.setup(1, func(m *domain.LicenseModel) {
		m.OnlineLease = domain.Duration(time.Minute)
		m.RestartGrace = domain.Duration(time.Minute)
	})
	if err := h.eng.Start(h.ctx, "run-1"); err != nil {
		t.Fatal(err)
	}
	h.grant(req("alice", "FeatA"))
	h.clock.Advance(time.Hour)
	if err := h.eng.Start(h.ctx, "run-2"); err != nil {
		t.Fatal(err)
	}
	h.refuse(req("bob", "FeatA"), domain.CodeQuotaExceeded)
	h.clock.Advance(time.Minute)
	h.grant(req("bob", "FeatA"))
}
