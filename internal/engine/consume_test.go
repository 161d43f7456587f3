package engine_test

import (
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
	"github.com/leasehold/leasehold/internal/store"
)

func TestGrantLease(t *testing.T) {
	h := newHarness(t)
	h.setup(3, func(m *domain.LicenseModel) {
		m.SessionsPerSeat = 5
		m.OnlineLease = domain.Duration(15 * time.Minute)
		m.OfflineLease = domain.Duration(48 * time.Hour)
		m.RefreshRatio = 0.5
	})
	r := h.one(req("alice", "FeatA", hw("H1"), func(r *engine.Request) { r.HWName = "laptop"; r.Version = "1.2.3" }))
	if r.Err != nil || r.Lease == nil || r.License == nil || r.License.ID != "L1" || r.Item != "FeatA" || r.Renewed {
		t.Fatalf("result: %+v", r)
	}
	l := r.Lease
	if l.ID == "" || l.Root != l.ID || !l.IssuedAt.Equal(t0) || !l.ExpiresAt.Equal(t0.Add(15*time.Minute)) ||
		!l.RefreshAt.Equal(t0.Add(450*time.Second)) || l.Mode != domain.ModeCache || l.HW != "H1" || l.HWName != "laptop" ||
		l.Version != "1.2.3" || l.User != "alice" || l.Overage {
		t.Errorf("lease: %+v", l)
	}
	// The requested duration is granted when shorter than the maximum, capped otherwise.
	if l := h.grant(req("bob", "FeatA", func(r *engine.Request) { r.ConsumeDuration = time.Minute })); !l.ExpiresAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("consumeDuration=1m: exp %v", l.ExpiresAt)
	}
	if l := h.grant(req("bob", "FeatB", checkout, func(r *engine.Request) { r.ConsumeDuration = 1000 * time.Hour })); !l.ExpiresAt.Equal(t0.Add(48*time.Hour)) || l.Mode != domain.ModeCheckout {
		t.Errorf("checkout: exp %v, mode %s", l.ExpiresAt, l.Mode)
	}
	// Never past the license's valid_until.
	h.license(license("L1", "m", 3, func(l *domain.License) { until := t0.Add(5 * time.Minute); l.ValidUntil = &until }))
	if l := h.grant(req("carol", "FeatA")); !l.ExpiresAt.Equal(t0.Add(5 * time.Minute)) {
		t.Errorf("valid_until cap: exp %v", l.ExpiresAt)
	}
	if h.events(domain.EventGrant) != 4 {
		t.Errorf("usage: %+v", h.usage())
	}
}

func TestRenewalChaining(t *testing.T) {
	h := newHarness(t)
	h.setup(1, func(m *domain.LicenseModel) {
		m.LeaseChaining = true
		m.ChainGrace = domain.Duration(10 * time.Second)
	})
	first := h.grant(req("alice", "FeatA"))

	h.clock.Advance(time.Minute)
	r := h.one(req("alice", "FeatA", leaseID(first.ID)))
	second := r.Lease
	if r.Err != nil || !r.Renewed || second.ID == first.ID || second.Root != first.Root || second.PrevID != first.ID ||
		!second.ExpiresAt.Equal(t0.Add(16*time.Minute)) || !second.RenewedAt.Equal(t0.Add(time.Minute)) || !second.IssuedAt.Equal(t0) {
		t.Fatalf("renewal: %+v %+v", r, second)
	}

	// The response was lost: the client retries with the previous id within chain_grace
	// and gets the same lease back.
	h.clock.Advance(5 * time.Second)
	retry := h.one(req("alice", "FeatA", leaseID(first.ID)))
	if retry.Err != nil || retry.Lease.ID != second.ID || !retry.Lease.ExpiresAt.Equal(second.ExpiresAt) || !retry.Lease.RefreshAt.Equal(second.RefreshAt) {
		t.Fatalf("retry within chain_grace: %+v, want jti %s exp %v", retry.Lease, second.ID, second.ExpiresAt)
	}

	// Past chain_grace the previous id is stale.
	h.clock.Advance(6 * time.Second)
	h.refuse(req("alice", "FeatA", leaseID(first.ID)), domain.CodeLeaseIDNotMatching)
	h.refuse(req("alice", "FeatA"), domain.CodeLeaseIDNotMatching)
	// The refusals left the lease untouched and renewable; a per-item leaseId wins.
	third := h.grant(req("alice", "FeatA", leaseID("stale"), func(r *engine.Request) { r.Items[0].LeaseID = second.ID }))
	if third.Root != first.Root || third.PrevID != second.ID {
		t.Errorf("third: %+v", third)
	}
	// The renewals held one seat all along.
	if n := h.liveSeats("L1"); n != 1 {
		t.Errorf("%d seats held, want 1", n)
	}
	// Release accepts any id of the chain: here the middle one, neither root nor current.
	h.mustRelease("alice", second.ID)
	if len(h.leases()) != 0 {
		t.Errorf("lease still listed after release")
	}
	if h.events(domain.EventRenew) != 2 {
		t.Errorf("renew events: %+v", h.usage())
	}
}

func TestRenewalWithoutChaining(t *testing.T) {
	h := newHarness(t)
	h.setup(1, nil)
	first := h.grant(req("alice", "FeatA"))
	h.clock.Advance(time.Minute)
	second := h.grant(req("alice", "FeatA"))
	if second.Root != first.Root || second.ID == first.ID || !second.ExpiresAt.Equal(t0.Add(16*time.Minute)) {
		t.Errorf("renewal: %+v", second)
	}
	// Another process of the same user is another session key: with one session per seat
	// it is refused, not renewed.
	h.refuse(req("alice", "FeatA", process("other")), domain.CodeMaxSessions)
}

func TestLinger(t *testing.T) {
	h := newHarness(t)
	h.setup(1, func(m *domain.LicenseModel) {
		m.Anchors = []string{"user", "hw"}
		m.Linger = domain.Duration(2 * time.Minute)
	})
	l := h.grant(req("alice", "FeatA", hw("A")))
	h.clock.Advance(time.Minute)
	h.mustRelease("alice", l.ID)

	seat := h.seat("L1", l.SeatKey)
	if !seat.Lingering || !seat.HeldUntil.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("seat after release: %+v", seat)
	}
	if n := h.liveSeats("L1"); n != 1 {
		t.Errorf("lingering seat not counted: %d", n)
	}
	// Only the same anchor key may take it while it lingers.
	h.refuse(req("bob", "FeatA", hw("B")), domain.CodeQuotaExceeded)
	h.refuse(req("alice", "FeatA", hw("B")), domain.CodeQuotaExceeded)
	back := h.grant(req("alice", "FeatA", hw("A")))
	if back.SeatKey != l.SeatKey {
		t.Errorf("reclaimed another seat")
	}
	if s := h.seat("L1", l.SeatKey); s.Lingering {
		t.Errorf("reclaimed seat still lingering")
	}

	// Released again, the linger runs out and anyone may take the seat.
	h.mustRelease("alice", back.ID)
	h.clock.Advance(2*time.Minute - time.Millisecond)
	h.refuse(req("bob", "FeatA", hw("B")), domain.CodeQuotaExceeded)
	h.clock.Advance(time.Millisecond)
	h.grant(req("bob", "FeatA", hw("B")))
	if st := h.state("L1"); st.SeatsHeld != 1 {
		t.Errorf("SeatsHeld %d, want 1 (the lingering row reaped)", st.SeatsHeld)
	}
}

func TestZeroLingerFreesAtOnce(t *testing.T) {
	h := newHarness(t)
	h.setup(1, func(m *domain.LicenseModel) { m.Linger = 0 })
	l := h.grant(req("alice", "FeatA"))
	h.mustRelease("alice", l.ID)
	if s := h.seat("L1", l.SeatKey); s != nil {
		t.Errorf("seat kept: %+v", s)
	}
	h.grant(req("bob", "FeatA"))
	if st := h.state("L1"); st.SeatsHeld != 1 {
		t.Errorf("SeatsHeld %d", st.SeatsHeld)
	}
}

func TestExpiryFreesSeatWithoutSweep(t *testing.T) {
	h := newHarness(t)
	h.setup(1, func(m *domain.LicenseModel) {
		m.OnlineLease = domain.Duration(time.Minute)
		m.Linger = domain.Duration(time.Hour) // expiry is not a release: no linger
	})
	l := h.grant(req("alice", "FeatA"))
	h.clock.Advance(time.Minute - time.Millisecond)
	h.refuse(req("bob", "FeatA"), domain.CodeQuotaExceeded)
	h.clock.Advance(time.Millisecond)
	h.grant(req("bob", "FeatA"))
	// Alice's expired lease is gone for good: a consumption of hers is a new lease, refused.
	h.refuse(req("alice", "FeatA"), domain.CodeQuotaExceeded)
	if r := h.release("alice", l.ID); r[0].Err == nil || r[0].Err.Code != domain.CodeNoConsumptionFoundByID {
		t.Errorf("release of an expired lease: %+v", r[0])
	}
}

func TestUseCount(t *testing.T) {
	h := newHarness(t)
	h.setup(5, func(m *domain.LicenseModel) { m.MaxUseCount = 3 })
	a := h.grant(req("alice", "FeatA", count(2)))
	// A renewal draws only a count it names.
	h.grant(req("alice", "FeatA", leaseID(a.ID)))
	if st := h.state("L1"); st.UseCount != 2 {
		t.Fatalf("use count %d after a renewal without count, want 2", st.UseCount)
	}
	h.refuse(req("alice", "FeatA", count(2)), domain.CodeMaxUseCount) // refused renewal
	h.grant(req("bob", "FeatA"))                                      // default count 1
	h.refuse(req("carol", "FeatA"), domain.CodeMaxUseCount)
	if st := h.state("L1"); st.UseCount != 3 {
		t.Errorf("use count %d, want 3", st.UseCount)
	}
	// Releasing gives no use count back.
	h.mustRelease("bob", h.grant(req("bob", "FeatA")).ID)
	h.refuse(req("carol", "FeatA"), domain.CodeMaxUseCount)
}

func TestUseTimeReserveAndRefund(t *testing.T) {
	h := newHarness(t)
	h.setup(5, func(m *domain.LicenseModel) {
		m.MaxUseTime = domain.Duration(20 * time.Minute)
		m.OnlineLease = domain.Duration(15 * time.Minute)
	})
	a := h.grant(req("alice", "FeatA"))
	if got := a.ExpiresAt.Sub(a.IssuedAt); got != 15*time.Minute {
		t.Fatalf("alice got %v", got)
	}
	b := h.grant(req("bob", "FeatA")) // capped by what is left
	if got := b.ExpiresAt.Sub(b.IssuedAt); got != 5*time.Minute {
		t.Fatalf("bob got %v, want 5m", got)
	}
	h.refuse(req("carol", "FeatA"), domain.CodeMaxUseTime)
	if st := h.state("L1"); st.UseTime != 20*time.Minute {
		t.Fatalf("use time %v", st.UseTime)
	}

	// Alice releases after 5 minutes: the unused 10 minutes come back.
	h.clock.Advance(5 * time.Minute)
	h.mustRelease("alice", a.ID)
	if st := h.state("L1"); st.UseTime != 10*time.Minute {
		t.Fatalf("use time after refund %v, want 10m", st.UseTime)
	}
	c := h.grant(req("carol", "FeatA"))
	if got := c.ExpiresAt.Sub(c.IssuedAt); got != 10*time.Minute {
		t.Errorf("carol got %v, want 10m", got)
	}
	h.refuse(req("dave", "FeatA"), domain.CodeMaxUseTime)
	if st := h.state("L1"); st.UseTime != 20*time.Minute {
		t.Errorf("use time %v, want 20m", st.UseTime)
	}
}

func TestUseTimeRenewalReservesTheExtension(t *testing.T) {
	h := newHarness(t)
	h.setup(5, func(m *domain.LicenseModel) {
		m.MaxUseTime = domain.Duration(20 * time.Minute)
		m.OnlineLease = domain.Duration(10 * time.Minute)
	})
	a := h.grant(req("alice", "FeatA"))
	h.clock.Advance(5 * time.Minute)
	r := h.grant(req("alice", "FeatA")) // exp t0+15m: 5 more minutes
	if !r.ExpiresAt.Equal(t0.Add(15*time.Minute)) || r.UseTimeReserved != 15*time.Minute {
		t.Fatalf("renewal: exp %v reserved %v", r.ExpiresAt, r.UseTimeReserved)
	}
	if st := h.state("L1"); st.UseTime != 15*time.Minute {
		t.Fatalf("use time %v", st.UseTime)
	}
	h.clock.Advance(5 * time.Minute)
	r = h.grant(req("alice", "FeatA")) // wants t0+20m: 5 more, exactly what is left
	if !r.ExpiresAt.Equal(t0.Add(20 * time.Minute)) {
		t.Fatalf("renewal: exp %v", r.ExpiresAt)
	}
	h.clock.Advance(time.Minute)
	h.refuse(req("alice", "FeatA"), domain.CodeMaxUseTime)
	// The refused renewal left the lease as it was.
	if ls := h.leases(); len(ls) != 1 || ls[0].Root != a.Root || !ls[0].ExpiresAt.Equal(t0.Add(20*time.Minute)) {
		t.Errorf("leases: %+v", ls)
	}
}

func TestOverage(t *testing.T) {
	h := newHarness(t)
	h.setup(2, func(m *domain.LicenseModel) { m.Overage = 1.5 }) // cap 3
	for _, u := range []string{"alice", "bob"} {
		if l := h.grant(req(u, "FeatA")); l.Overage {
			t.Errorf("%s flagged overage", u)
		}
	}
	c := h.grant(req("carol", "FeatA"))
	if !c.Overage || !h.seat("L1", c.SeatKey).Overage {
		t.Errorf("carol's lease over seats not flagged")
	}
	h.refuse(req("dave", "FeatA"), domain.CodeQuotaExceeded)
	// Renewals keep the flag.
	if l := h.grant(req("carol", "FeatA")); !l.Overage {
		t.Errorf("renewal lost the overage flag")
	}
	var flagged int
	for _, e := range h.usage() {
		if e.Overage {
			flagged++
		}
	}
	if flagged != 2 {
		t.Errorf("%d usage events flagged, want 2", flagged)
	}
}

func TestReservations(t *testing.T) {
	h := newHarness(t)
	h.model(model("m", func(m *domain.LicenseModel) { m.Linger = 0 }))
	h.license(license("L1", "m", 2, func(l *domain.License) { l.Reservations = []string{"carol"} }))

	a := h.grant(req("alice", "FeatA"))
	// One seat is free but reserved for carol, who holds none.
	h.refuse(req("bob", "FeatA"), domain.CodeQuotaExceeded)
	h.grant(req("carol", "FeatA"))
	h.refuse(req("bob", "FeatA"), domain.CodeQuotaExceeded)
	h.mustRelease("alice", a.ID)
	h.grant(req("bob", "FeatA"))
}

func TestSessionsPerSeat(t *testing.T) {
	h := newHarness(t)
	h.setup(5, func(m *domain.LicenseModel) { m.SessionsPerSeat = 2 })
	p1 := h.grant(req("alice", "FeatA", process("p1")))
	p2 := h.grant(req("alice", "FeatA", process("p2")))
	if p1.SeatKey != p2.SeatKey || p1.SessionKey == p2.SessionKey {
		t.Fatalf("anchors [user] should share one seat with two session keys")
	}
	h.refuse(req("alice", "FeatA", process("p3")), domain.CodeMaxSessions)
	// Items are part of the session key too.
	h.refuse(req("alice", "FeatB", process("p1")), domain.CodeMaxSessions)
	// A renewal is no new session.
	h.grant(req("alice", "FeatA", process("p1")))
	if n := h.liveSeats("L1"); n != 1 {
		t.Errorf("%d seats, want 1", n)
	}
	// An expired session frees its place on the seat.
	h.clock.Advance(16 * time.Minute)
	h.grant(req("alice", "FeatA", process("p3")))
}

func TestConsumptionLimitCountsLiveLeasesOnly(t *testing.T) {
	h := newHarness(t)
	h.setup(5, func(m *domain.LicenseModel) {
		m.Anchors = []string{"user", "hw"}
		m.ConsumptionLimit = 2
		m.OnlineLease = domain.Duration(time.Minute)
	})
	h.grant(req("alice", "FeatA", hw("H1")))
	h.grant(req("alice", "FeatA", hw("H2")))
	h.refuse(req("alice", "FeatA", hw("H3")), domain.CodeConsumptionLimit)
	h.grant(req("bob", "FeatA", hw("H3"))) // per user
	h.clock.Advance(time.Minute)
	h.grant(req("alice", "FeatA", hw("H3")))
}

// TestMultipleCandidates: the first license in id order that grants wins; when none can,
// the error of the one that passed the most checks is reported.
func TestMultipleCandidates(t *testing.T) {
	t.Run("first in id order", func(t *testing.T) {
		h := newHarness(t)
		h.model(model("m", func(m *domain.LicenseModel) { m.Linger = 0 }))
		h.license(license("L2", "m", 1, nil))
		h.license(license("L1", "m", 1, nil))
		if l := h.grant(req("alice", "FeatA")); l.LicenseID != "L1" {
			t.Errorf("alice got %s, want L1", l.LicenseID)
		}
		b := h.grant(req("bob", "FeatA"))
		if b.LicenseID != "L2" {
			t.Errorf("bob got %s, want L2", b.LicenseID)
		}
		h.refuse(req("carol", "FeatA"), domain.CodeQuotaExceeded)
		// A renewal stays on its license even when an earlier one has room.
		h.mustRelease("alice", h.leasesOf("alice")[0].ID)
		if l := h.grant(req("bob", "FeatA")); l.LicenseID != "L2" || l.Root != b.Root {
			t.Errorf("bob's renewal moved to %s", l.LicenseID)
		}
		// The owner filter picks one.
		h.refuse(req("carol", "FeatA", onLicense("L2")), domain.CodeQuotaExceeded)
		if l := h.grant(req("carol", "FeatA", onLicense("L1"))); l.LicenseID != "L1" {
			t.Errorf("carol got %s", l.LicenseID)
		}
	})

	type lic struct {
		id    string
		model func(m *domain.LicenseModel)
		lic   func(l *domain.License)
	}
	past, future := t0.Add(-time.Hour), t0.Add(time.Hour)
	tests := []struct {
		name string
		lics []lic
		want domain.ErrorCode
	}{
		{"inactive vs full", []lic{
			{"L1", nil, func(l *domain.License) { l.Active = false }},
			{"L2", nil, func(l *domain.License) { l.Seats = 0 }},
		}, domain.CodeQuotaExceeded},
		{"full vs expired", []lic{
			{"L1", nil, func(l *domain.License) { l.Seats = 0 }},
			{"L2", nil, func(l *domain.License) { l.ValidUntil = &past }},
		}, domain.CodeQuotaExceeded},
		{"not started vs version", []lic{
			{"L1", nil, func(l *domain.License) { l.ValidFrom = &future }},
			{"L2", func(m *domain.LicenseModel) { m.Version = ">=2" }, nil},
		}, domain.CodeUnallowedVersion},
		{"anchor vs ip", []lic{
			{"L1", func(m *domain.LicenseModel) { m.IPRanges = []string{"10.0.0.0/8"} }, nil},
			{"L2", func(m *domain.LicenseModel) { m.Anchors = []string{"hw"} }, nil},
		}, domain.CodeAnchorMissing},
		{"use count vs seats", []lic{
			{"L1", func(m *domain.LicenseModel) { m.MaxUseCount = 1 }, nil},
			{"L2", nil, func(l *domain.License) { l.Seats = 0 }},
		}, domain.CodeQuotaExceeded},
		{"equal steps: the first in id order", []lic{
			{"L1", nil, func(l *domain.License) { l.ValidUntil = &past }},
			{"L2", nil, func(l *domain.License) { l.ValidFrom = &future }},
		}, domain.CodeLicenseExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			for _, l := range tt.lics {
				h.model(model("m-"+l.id, l.model))
				h.license(license(l.id, "m-"+l.id, 1, l.lic))
			}
			h.refuse(req("alice", "FeatA", count(2)), tt.want)
		})
	}
}

func TestLoweringSeatsEndsNothing(t *testing.T) {
	h := newHarness(t)
	h.setup(3, func(m *domain.LicenseModel) { m.Linger = 0 })
	a := h.grant(req("alice", "FeatA"))
	b := h.grant(req("bob", "FeatA"))
	h.grant(req("carol", "FeatA"))
	h.license(license("L1", "m", 1, nil))
	// Everyone keeps renewing.
	h.grant(req("alice", "FeatA"))
	h.grant(req("carol", "FeatA"))
	h.mustRelease("alice", a.ID)
	h.refuse(req("dave", "FeatA"), domain.CodeQuotaExceeded) // 2 held, limit 1
	h.mustRelease("bob", b.ID)
	h.refuse(req("dave", "FeatA"), domain.CodeQuotaExceeded) // 1 held, limit 1
	h.license(license("L1", "m", 2, nil))
	h.grant(req("dave", "FeatA"))
}

func TestCheckWritesNothing(t *testing.T) {
	h := newHarness(t)
	h.setup(1, func(m *domain.LicenseModel) { m.MaxUseCount = 5; m.MaxUseTime = domain.Duration(time.Hour) })
	r := h.one(req("alice", "FeatA", check, count(2)))
	if r.Err != nil || r.Lease != nil || r.License == nil || r.License.ID != "L1" {
		t.Fatalf("check: %+v", r)
	}
	if st := h.state("L1"); st != (domain.LicenseState{Tenant: st.Tenant, LicenseID: st.LicenseID}) {
		t.Errorf("a check changed the license state: %+v", st)
	}
	if len(h.leases()) != 0 || len(h.usage()) != 0 || h.liveSeats("L1") != 0 {
		t.Errorf("a check wrote something")
	}
	// It answers what the consumption would get.
	h.grant(req("bob", "FeatA"))
	h.refuse(req("alice", "FeatA", check), domain.CodeQuotaExceeded)
	if r := h.one(req("bob", "FeatA", check)); r.Err != nil || r.Lease != nil {
		t.Errorf("check of a renewal: %+v", r)
	}
	// An expired seat is free for a check too, and the check leaves the expired rows alone.
	h.clock.Advance(time.Hour)
	if r := h.one(req("alice", "FeatA", check)); r.Err != nil {
		t.Errorf("check after expiry: %v", r.Err)
	}
	if st := h.state("L1"); st.SeatsHeld != 1 {
		t.Errorf("a check reaped seats")
	}
}

func TestMultipleItems(t *testing.T) {
	h := newHarness(t)
	h.setup(1, func(m *domain.LicenseModel) { m.SessionsPerSeat = 3 })
	res, err := h.eng.Consume(h.ctx, engine.Request{
		Tenant: tenant, Caller: caller("alice"), DoConsume: true,
		Items: []engine.ItemRequest{{Name: "FeatA"}, {Name: "Nope"}, {Name: "FeatB"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 || res[0].Item != "FeatA" || res[0].Lease == nil || res[1].Item != "Nope" ||
		res[1].Err == nil || res[1].Err.Code != domain.CodeNoLicenseFound || res[2].Lease == nil {
		t.Fatalf("results: %+v", res)
	}
	if res[0].Lease.SeatKey != res[2].Lease.SeatKey {
		t.Errorf("two items of one user took two seats")
	}
	// Renewing both at once, each by its own lease id.
	res, err = h.eng.Consume(h.ctx, engine.Request{
		Tenant: tenant, Caller: caller("alice"), DoConsume: true,
		Items: []engine.ItemRequest{{Name: "FeatA", LeaseID: res[0].Lease.ID}, {Name: "FeatB", LeaseID: res[2].Lease.ID}},
	})
	if err != nil || !res[0].Renewed || !res[1].Renewed {
		t.Fatalf("renewal: %+v %v", res, err)
	}
}

func TestReclaimSeat(t *testing.T) {
	h := newHarness(t)
	h.setup(1, func(m *domain.LicenseModel) {
		m.Anchors = []string{"user", "hw"}
		m.Linger = domain.Duration(2 * time.Minute)
	})
	l := h.grant(req("alice", "FeatA", hw("desktop")))
	h.mustRelease("alice", l.ID)

	// From another device the seat is not hers without the token.
	h.refuse(req("alice", "FeatA", hw("phone")), domain.CodeQuotaExceeded)
	reclaim := func(r *engine.Request) { r.ReclaimLicense, r.ReclaimSeat = "L1", l.SeatKey }
	got := h.grant(req("alice", "FeatA", hw("phone"), reclaim))
	if got.SeatKey != l.SeatKey || got.HW != "phone" {
		t.Fatalf("reclaim took seat %s hw %s", got.SeatKey, got.HW)
	}
	// The seat is held now: a second device with the same token falls back to its own
	// anchors, and there is no seat for them.
	h.refuse(req("alice", "FeatA", hw("tablet"), reclaim), domain.CodeQuotaExceeded)
	if n := h.liveSeats("L1"); n != 1 {
		t.Errorf("%d seats", n)
	}
}

func TestEntitlements(t *testing.T) {
	h := newHarness(t)
	h.model(model("m", func(m *domain.LicenseModel) {
		m.Linger = domain.Duration(time.Minute)
		m.OnlineLease = domain.Duration(time.Minute)
		m.Anchors = []string{"user", "hw"}
		m.SessionsPerSeat = 2
	}))
	h.license(license("L1", "m", 5, nil))
	h.license(license("L2", "m", 5, func(l *domain.License) {
		l.Owner = domain.Owner{User: "alice"}
		l.Product = ""
		l.Items = []string{"X"}
	}))
	h.license(license("L3", "m", 5, func(l *domain.License) { l.Owner = domain.Owner{Organization: "org-2"} }))

	a := h.grant(req("alice", "FeatA", hw("1")))
	h.grant(req("alice", "FeatB", hw("1"), process("p"))) // same seat
	h.grant(req("bob", "FeatA", hw("2")))
	h.clock.Advance(30 * time.Second)
	h.mustRelease("alice", a.ID) // the seat still has FeatB

	ents, err := h.eng.Entitlements(h.ctx, tenant, caller("alice"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2 || ents[0].License.ID != "L1" || ents[1].License.ID != "L2" {
		t.Fatalf("entitlements: %+v", ents)
	}
	if ents[0].SeatsUsed != 2 || ents[1].SeatsUsed != 0 || len(ents[0].Items) != 3 || ents[1].Items[0] != "X" {
		t.Errorf("entitlements: %+v", ents)
	}
	// Bob's lease expires (not counted); alice's last lease is released (lingering: counted).
	h.mustRelease("alice", h.leasesOf("alice")[0].ID)
	h.clock.Advance(45 * time.Second)
	ents, _ = h.eng.Entitlements(h.ctx, tenant, caller("bob"))
	if len(ents) != 1 || ents[0].SeatsUsed != 1 {
		t.Errorf("after expiry: %+v", ents)
	}
}

func (h *harness) leasesOf(user string) []domain.Lease {
	var out []domain.Lease
	for _, l := range h.leases() {
		if l.User == user {
			out = append(out, l)
		}
	}
	return out
}

func TestEndLease(t *testing.T) {
	h := newHarness(t)
	h.setup(1, func(m *domain.LicenseModel) { m.Linger = domain.Duration(time.Hour) })

	l := h.grant(req("alice", "FeatA"))
	res, err := h.eng.EndLease(h.ctx, tenant, l.ID, false)
	if err != nil || !res.Found || !res.Freed {
		t.Fatalf("end: %+v %v", res, err)
	}
	h.grant(req("bob", "FeatA")) // no linger
	if h.events(domain.EventEnd) != 1 {
		t.Errorf("usage: %+v", h.usage())
	}

	// A checkout lease keeps counting until its exp unless forced.
	h.mustRelease("bob", h.leasesOf("bob")[0].ID)
	h.clock.Advance(time.Hour)
	c := h.grant(req("carol", "FeatA", checkout))
	res, err = h.eng.EndLease(h.ctx, tenant, c.ID, false)
	if err != nil || !res.Found || res.Freed || !res.CountsUntil.Equal(c.ExpiresAt) {
		t.Fatalf("end checkout: %+v %v", res, err)
	}
	if len(h.leases()) != 0 {
		t.Errorf("ended checkout lease still listed")
	}
	h.refuse(req("dave", "FeatA"), domain.CodeQuotaExceeded)
	// Ending it again finds nothing; the seat is freed by its own lease id no more, but
	// forcing works on a fresh checkout.
	if res, _ := h.eng.EndLease(h.ctx, tenant, c.ID, true); res.Found {
		t.Errorf("ended lease found again")
	}
	h.clock.Advance(c.ExpiresAt.Sub(h.clock.Now()))
	d := h.grant(req("dave", "FeatA", checkout))
	res, err = h.eng.EndLease(h.ctx, tenant, d.ID, true)
	if err != nil || !res.Freed {
		t.Fatalf("forced end: %+v %v", res, err)
	}
	h.grant(req("carol", "FeatA"))
	if res, _ := h.eng.EndLease(h.ctx, tenant, "nope", true); res.Found {
		t.Errorf("unknown lease found")
	}
}

// TestSessionLease: the session code takes a session's seat with ConsumeTx; such a lease
// lasts until the session's deadline, needs no lease id, draws on no counter, is never
// shortened, and cannot be released through /authz.
func TestSessionLease(t *testing.T) {
	h := newHarness(t)
	h.setup(1, func(m *domain.LicenseModel) {
		m.LeaseChaining = true
		m.MaxUseCount = 1
		m.MaxUseTime = domain.Duration(time.Minute)
		m.Linger = domain.Duration(2 * time.Minute)
		m.Anchors = []string{"user", "hw"}
	})
	session := func(expiry time.Time) engine.Result {
		t.Helper()
		snap, err := h.cat.Get(h.ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		r := req("alice", "FeatA", hw("dev-1"), func(r *engine.Request) { r.SessionID, r.Expiry = "s1", expiry })
		var res engine.Result
		err = h.st.Update(h.ctx, func(tx store.Tx) error {
			var err error
			res, err = h.eng.ConsumeTx(h.ctx, tx, snap, r, r.Items[0])
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	r := session(t0.Add(time.Hour))
	if r.Err != nil || r.Lease.SessionID != "s1" || !r.Lease.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("session seat: %+v", r)
	}
	if st := h.state("L1"); st.UseCount != 0 || st.UseTime != 0 {
		t.Errorf("a session seat drew on counters: %+v", st)
	}
	h.clock.Advance(time.Minute)
	if r2 := session(t0.Add(30 * time.Minute)); r2.Err != nil || r2.Lease.ID != r.Lease.ID || !r2.Lease.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("shorter deadline: %+v", r2)
	}
	if r2 := session(t0.Add(2 * time.Hour)); r2.Err != nil || r2.Lease.Root != r.Lease.Root || !r2.Lease.ExpiresAt.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("longer deadline: %+v", r2)
	}
	if rr := h.release("alice", r.Lease.ID); rr[0].Err == nil || rr[0].Err.Code != domain.CodeNoConsumptionFoundByID {
		t.Errorf("/authz release of a session seat: %+v", rr[0])
	}
	// The session ends: its seat lingers.
	snap, _ := h.cat.Get(h.ctx, tenant)
	err := h.st.Update(h.ctx, func(tx store.Tx) error {
		ok, err := h.eng.ReleaseTx(h.ctx, tx, snap, r.Lease, true)
		if !ok && err == nil {
			t.Error("ReleaseTx found nothing")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := h.seat("L1", r.Lease.SeatKey); s == nil || !s.Lingering {
		t.Errorf("seat after the session: %+v", s)
	}
	h.refuse(req("bob", "FeatA", hw("dev-2")), domain.CodeQuotaExceeded)
}

// TestSessionKeepsReclaimedSeat: a token-login session that reclaimed another device's seat
// extends that lease when it names it, although its own anchors differ.
func TestSessionKeepsReclaimedSeat(t *testing.T) {
	h := newHarness(t)
	h.setup(1, func(m *domain.LicenseModel) {
		m.Anchors = []string{"user", "hw"}
		m.Linger = domain.Duration(2 * time.Minute)
	})
	old := h.grant(req("alice", "FeatA", hw("desktop")))
	h.mustRelease("alice", old.ID)
	snap, _ := h.cat.Get(h.ctx, tenant)
	take := func(mod func(*engine.Request)) engine.Result {
		r := req("alice", "FeatA", hw("phone"), func(r *engine.Request) { r.SessionID, r.Expiry = "s1", h.clock.Now().Add(time.Hour) }, mod)
		var res engine.Result
		if err := h.st.Update(h.ctx, func(tx store.Tx) error {
			var err error
			res, err = h.eng.ConsumeTx(h.ctx, tx, snap, r, r.Items[0])
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := take(func(r *engine.Request) { r.ReclaimLicense, r.ReclaimSeat = "L1", old.SeatKey })
	if first.Err != nil || first.Lease.SeatKey != old.SeatKey {
		t.Fatalf("token login: %+v", first)
	}
	h.clock.Advance(time.Minute)
	again := take(func(r *engine.Request) { r.LeaseID = first.Lease.Root })
	if again.Err != nil || again.Lease.Root != first.Lease.Root || !again.Renewed {
		t.Fatalf("session touch: %+v", again)
	}
	// Without naming it, the phone's own anchors want a seat of their own.
	if r := take(func(*engine.Request) {}); r.Err == nil || r.Err.Code != domain.CodeQuotaExceeded {
		t.Errorf("unnamed: %+v", r)
	}
}
