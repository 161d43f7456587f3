package engine_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
)

// SeatsUsed trusts the license's seat counter; through grants, renewals, releases that
// linger, admin ends, expiries no sweep has reaped, sweeps and reclaimed seats, it must
// always equal a count of the live and lingering seat rows.
func TestSeatsUsedMatchesLiveSeatRows(t *testing.T) {
	h := newHarness(t)
	h.setup(6, func(m *domain.LicenseModel) {
		m.Anchors = []string{domain.AnchorUser, domain.AnchorHW}
		m.SessionsPerSeat = 2
		m.OnlineLease = domain.Duration(5 * time.Second)
		m.Linger = domain.Duration(2 * time.Second)
	})
	rnd := rand.New(rand.NewPCG(7, 11))
	users, hws, procs := []string{"alice", "bob", "carol", "dave"}, []string{"h1", "h2", "h3"}, []string{"p1", "p2"}
	var live []*domain.Lease
	full := 0 // refusals for want of a seat: the counter's reap-at-capacity path ran
	pick := func() (int, *domain.Lease) {
		if len(live) == 0 {
			return -1, nil
		}
		i := rnd.IntN(len(live))
		return i, live[i]
	}
	drop := func(i int) { live = append(live[:i], live[i+1:]...) }
	for step := range 400 {
		switch op := rnd.IntN(10); {
		case op < 4: // a consumption: a new seat, another session on a seat, or a refusal
			r := req(users[rnd.IntN(len(users))], "FeatA", hw(hws[rnd.IntN(len(hws))]), process(procs[rnd.IntN(len(procs))]))
			switch res := h.one(r); {
			case res.Err == nil && res.Lease != nil:
				live = append(live, res.Lease)
			case res.Err != nil && res.Err.Code == domain.CodeQuotaExceeded:
				full++
			}
		case op < 5:
			if i, l := pick(); l != nil {
				r := req(l.User, "FeatA", hw(l.HW), process(l.Process), leaseID(l.ID))
				if res := h.one(r); res.Err == nil && res.Lease != nil {
					live[i] = res.Lease
				}
			}
		case op < 6:
			if i, l := pick(); l != nil {
				h.release(l.User, l.ID)
				drop(i)
			}
		case op < 7:
			if i, l := pick(); l != nil {
				if _, err := h.eng.EndLease(h.ctx, tenant, l.ID, true); err != nil {
					t.Fatal(err)
				}
				drop(i)
			}
		case op < 9:
			h.clock.Advance(time.Duration(rnd.IntN(1500)) * time.Millisecond)
		default:
			if _, err := h.eng.Sweep(h.ctx); err != nil {
				t.Fatal(err)
			}
		}
		h.liveSeats("L1") // fails the test when SeatsUsed disagrees
		if t.Failed() {
			t.Fatalf("after step %d", step)
		}
	}
	if full == 0 {
		t.Fatal("the sequence never filled the license")
	}
	ents, err := h.eng.Entitlements(h.ctx, tenant, caller("alice"))
	if err != nil || len(ents) != 1 || ents[0].SeatsUsed != h.liveSeats("L1") {
		t.Fatalf("Entitlements: %+v, %v; want seats_used %d", ents, err, h.liveSeats("L1"))
	}
}
