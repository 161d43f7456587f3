package storetest

import (
	"reflect"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// testUISessions: a sign-in is found by its hash until deleted, expired ones included
// (the caller checks ExpiresAt), and the sweep deletes only expired ones.
func testUISessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := baseTime(t, s)
	live := store.UISession{Hash: "h-live", CreatedAt: base, ExpiresAt: base.Add(12 * time.Hour)}
	old := store.UISession{Hash: "h-old", CreatedAt: base.Add(-13 * time.Hour), ExpiresAt: base.Add(-time.Hour)}
	update(t, s, func(tx store.Tx) error {
		if err := tx.InsertUISession(ctx, &live); err != nil {
			return err
		}
		return tx.InsertUISession(ctx, &old)
	})
	err := readErr(t, s, func(tx store.Tx) error {
		return tx.InsertUISession(ctx, &live)
	})
	if err == nil {
		t.Error("InsertUISession in a View succeeded")
	}
	var dup error
	_ = s.Update(ctx, func(tx store.Tx) error {
		dup = tx.InsertUISession(ctx, &live)
		return dup
	})
	wantConflict(t, "InsertUISession of an existing hash", dup)

	got := read(t, s, func(tx store.Tx) (*store.UISession, error) { return tx.GetUISession(ctx, "h-live") })
	same(t, "GetUISession", *got, live)
	got = read(t, s, func(tx store.Tx) (*store.UISession, error) { return tx.GetUISession(ctx, "h-old") })
	same(t, "GetUISession(expired)", *got, old)
	wantNotFound(t, "GetUISession(unknown)", readErr(t, s, func(tx store.Tx) error {
		_, err := tx.GetUISession(ctx, "h-none")
		return err
	}))

	if n := write(t, s, func(tx store.Tx) (int, error) { return tx.DeleteExpiredUISessions(ctx, base) }); n != 1 {
		t.Errorf("DeleteExpiredUISessions = %d, want 1", n)
	}
	wantNotFound(t, "GetUISession after the sweep", readErr(t, s, func(tx store.Tx) error {
		_, err := tx.GetUISession(ctx, "h-old")
		return err
	}))
	if ok := write(t, s, func(tx store.Tx) (bool, error) { return tx.DeleteUISession(ctx, "h-live") }); !ok {
		t.Error("DeleteUISession(live) = false")
	}
	if ok := write(t, s, func(tx store.Tx) (bool, error) { return tx.DeleteUISession(ctx, "h-live") }); ok {
		t.Error("DeleteUISession twice = true")
	}
}

// testHeldSeats: the license page reads held seats page by page in key order, their live
// leases in one call, and counts the lingering ones.
func testHeldSeats(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := baseTime(t, s)
	seat := func(license, key string, held time.Duration, lingering bool) domain.Seat {
		return domain.Seat{Tenant: "acme", LicenseID: license, Key: key, User: "u-" + key, HeldUntil: base.Add(held), Lingering: lingering}
	}
	putSeats(t, s,
		seat("L1", "a", time.Minute, false),
		seat("L1", "b", -time.Minute, false), // expired, not reaped
		seat("L1", "c", time.Minute, true),   // lingering
		seat("L1", "d", time.Hour, false),
		seat("L1", "e", -time.Second, true), // linger over
		seat("L2", "f", time.Minute, true),
		domain.Seat{Tenant: "other", LicenseID: "L1", Key: "g", HeldUntil: base.Add(time.Hour)},
	)
	keys := func(after string, n int) []string {
		return seatKeys(read(t, s, func(tx store.Tx) ([]domain.Seat, error) {
			return tx.ListHeldSeats(ctx, "acme", "L1", base, after, n)
		}))
	}
	if got, want := keys("", 0), []string{"acme/L1/a", "acme/L1/c", "acme/L1/d"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ListHeldSeats = %v, want %v", got, want)
	}
	if got, want := keys("", 2), []string{"acme/L1/a", "acme/L1/c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ListHeldSeats(limit 2) = %v, want %v", got, want)
	}
	if got, want := keys("c", 2), []string{"acme/L1/d"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ListHeldSeats(after c) = %v, want %v", got, want)
	}
	seats := read(t, s, func(tx store.Tx) ([]domain.Seat, error) { return tx.ListHeldSeats(ctx, "acme", "L1", base, "b", 1) })
	if len(seats) != 1 {
		t.Fatalf("ListHeldSeats(after b, 1) = %v", seats)
	}
	same(t, "ListHeldSeats row", seats[0], seat("L1", "c", time.Minute, true))

	lingering := func(license string) int {
		return read(t, s, func(tx store.Tx) (int, error) { return tx.CountLingeringSeats(ctx, "acme", license, base) })
	}
	if n := lingering("L1"); n != 1 {
		t.Errorf("CountLingeringSeats(L1) = %d, want 1 (c)", n)
	}
	if n := lingering("L2"); n != 1 {
		t.Errorf("CountLingeringSeats(L2) = %d, want 1", n)
	}

	lease := func(id, seatKey string, exp time.Duration) domain.Lease {
		l := fullLease("acme", id, base)
		l.SeatKey, l.SessionKey, l.ExpiresAt = seatKey, "sk-"+id, base.Add(exp)
		return l
	}
	insertLeases(t, s,
		lease("l-a2", "a", time.Minute),
		lease("l-a1", "a", time.Minute),
		lease("l-a0", "a", -time.Second), // expired
		lease("l-d", "d", time.Hour),
		lease("l-x", "x", time.Hour),
	)
	ids := func(keys ...string) []string {
		return leaseIDs(read(t, s, func(tx store.Tx) ([]domain.Lease, error) {
			return tx.ListLeasesOnSeats(ctx, "acme", "L1", keys, base)
		}))
	}
	if got, want := ids("a", "c", "d"), []string{"l-a1", "l-a2", "l-d"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ListLeasesOnSeats(a, c, d) = %v, want %v (by seat, then root; live only)", got, want)
	}
	if got := ids(); len(got) != 0 {
		t.Errorf("ListLeasesOnSeats() = %v, want none", got)
	}
	got := read(t, s, func(tx store.Tx) ([]domain.Lease, error) {
		return tx.ListLeasesOnSeats(ctx, "acme", "L1", []string{"d"}, base)
	})
	if len(got) != 1 {
		t.Fatalf("ListLeasesOnSeats(d) = %v", got)
	}
	same(t, "ListLeasesOnSeats row", got[0], lease("l-d", "d", time.Hour))
}

// testUsageHours: peaks merge by max, denials add up, hours are truncated, listed by hour
// then license within [from, to), pruned by hour, and deleted with the tenant.
func testUsageHours(t *testing.T, s store.Store) {
	ctx := t.Context()
	h0 := baseTime(t, s).Truncate(time.Hour)
	h1 := h0.Add(time.Hour)
	add := func(rows ...store.UsageHour) {
		update(t, s, func(tx store.Tx) error { return tx.AddUsageHours(ctx, rows) })
	}
	add(store.UsageHour{Tenant: "acme", LicenseID: "L1", Hour: h0.Add(10 * time.Minute), PeakSeats: 5},
		store.UsageHour{Tenant: "acme", LicenseID: "L1", Hour: h0, Denials: 2})
	add(store.UsageHour{Tenant: "acme", LicenseID: "L1", Hour: h0.Add(59 * time.Minute), PeakSeats: 3, Denials: 1},
		store.UsageHour{Tenant: "acme", LicenseID: "", Hour: h0, Denials: 4},
		store.UsageHour{Tenant: "acme", LicenseID: "L0", Hour: h1, PeakSeats: 1},
		store.UsageHour{Tenant: "other", LicenseID: "L1", Hour: h0, PeakSeats: 9})
	list := func(tenant string, from, to time.Time) []store.UsageHour {
		return read(t, s, func(tx store.Tx) ([]store.UsageHour, error) { return tx.ListUsageHours(ctx, tenant, from, to) })
	}
	want := []store.UsageHour{
		{Tenant: "acme", LicenseID: "", Hour: h0, Denials: 4},
		{Tenant: "acme", LicenseID: "L1", Hour: h0, PeakSeats: 5, Denials: 3},
		{Tenant: "acme", LicenseID: "L0", Hour: h1, PeakSeats: 1},
	}
	same(t, "ListUsageHours", list("acme", h0, h1.Add(time.Hour)), want)
	same(t, "ListUsageHours([h0, h1))", list("acme", h0, h1), want[:2])
	if n := write(t, s, func(tx store.Tx) (int, error) { return tx.PruneUsageHours(ctx, h1) }); n != 3 {
		t.Errorf("PruneUsageHours = %d, want 3 (both tenants' h0)", n)
	}
	same(t, "ListUsageHours after pruning", list("acme", h0, h1.Add(time.Hour)), want[2:])
	update(t, s, func(tx store.Tx) error { return tx.DeleteTenantData(ctx, "acme") })
	if got := list("acme", h0, h1.Add(time.Hour)); len(got) != 0 {
		t.Errorf("ListUsageHours after DeleteTenantData = %v", got)
	}
}
