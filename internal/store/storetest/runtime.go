package storetest

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

func licenseState(t *testing.T, s store.Store, tenant, license string) domain.LicenseState {
	t.Helper()
	st := read(t, s, func(tx store.Tx) (*domain.LicenseState, error) {
		return tx.GetLicenseState(t.Context(), tenant, license)
	})
	if st == nil {
		t.Fatalf("GetLicenseState(%s, %s) = nil", tenant, license)
	}
	return *st
}

func testLicenseState(t *testing.T, s store.Store) {
	ctx := t.Context()
	zero := domain.LicenseState{Tenant: "acme", LicenseID: "L1"}
	same(t, "GetLicenseState of a new license", licenseState(t, s, "acme", "L1"), zero)

	locked := write(t, s, func(tx store.Tx) (*domain.LicenseState, error) { return tx.LockLicense(ctx, "acme", "L1") })
	if locked == nil {
		t.Fatal("LockLicense = nil")
	}
	same(t, "LockLicense of a new license", *locked, zero)

	want := domain.LicenseState{Tenant: "acme", LicenseID: "L1", SeatsHeld: 3, UseCount: 7, UseTime: 90*time.Minute + 123456789}
	update(t, s, func(tx store.Tx) error {
		st, err := tx.LockLicense(ctx, "acme", "L1")
		if err != nil {
			return err
		}
		st.SeatsHeld, st.UseCount, st.UseTime = want.SeatsHeld, want.UseCount, want.UseTime
		return tx.SaveLicenseState(ctx, st)
	})
	same(t, "GetLicenseState after save", licenseState(t, s, "acme", "L1"), want)
	locked = write(t, s, func(tx store.Tx) (*domain.LicenseState, error) { return tx.LockLicense(ctx, "acme", "L1") })
	same(t, "LockLicense after save", *locked, want)

	// Licenses and tenants are apart.
	same(t, "another license", licenseState(t, s, "acme", "L2"), domain.LicenseState{Tenant: "acme", LicenseID: "L2"})
	same(t, "another tenant", licenseState(t, s, "other", "L1"), domain.LicenseState{Tenant: "other", LicenseID: "L1"})

	err := s.Update(ctx, func(tx store.Tx) error {
		st, err := tx.LockLicense(ctx, "acme", "L1")
		if err != nil {
			return err
		}
		st.SeatsHeld = 99
		if err := tx.SaveLicenseState(ctx, st); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Errorf("Update = %v, want the fn's error", err)
	}
	same(t, "license state after a failed Update", licenseState(t, s, "acme", "L1"), want)
}

func getSeat(t *testing.T, s store.Store, tenant, license, key string) (*domain.Seat, error) {
	t.Helper()
	var seat *domain.Seat
	err := readErr(t, s, func(tx store.Tx) error {
		var err error
		seat, err = tx.GetSeat(t.Context(), tenant, license, key)
		return err
	})
	return seat, err
}

func putSeats(t *testing.T, s store.Store, seats ...domain.Seat) {
	t.Helper()
	update(t, s, func(tx store.Tx) error {
		for i := range seats {
			seat := seats[i]
			if err := tx.PutSeat(t.Context(), &seat); err != nil {
				return err
			}
		}
		return nil
	})
}

func testSeats(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := baseTime(t, s)
	_, err := getSeat(t, s, "acme", "L1", "k1")
	wantNotFound(t, "GetSeat of a missing seat", err)

	seat := domain.Seat{Tenant: "acme", LicenseID: "L1", Key: "k1", User: "alice", HeldUntil: base.Add(time.Minute), Overage: true}
	putSeats(t, s, seat)
	got, err := getSeat(t, s, "acme", "L1", "k1")
	if err != nil {
		t.Fatalf("GetSeat: %v", err)
	}
	same(t, "seat", *got, seat)

	seat2 := domain.Seat{Tenant: "acme", LicenseID: "L1", Key: "k1", User: "bob", HeldUntil: base.Add(2 * time.Minute), Lingering: true}
	putSeats(t, s, seat2)
	got, _ = getSeat(t, s, "acme", "L1", "k1")
	same(t, "replaced seat", *got, seat2)

	_, err = getSeat(t, s, "acme", "L2", "k1")
	wantNotFound(t, "GetSeat on another license", err)
	_, err = getSeat(t, s, "other", "L1", "k1")
	wantNotFound(t, "GetSeat on another tenant", err)

	// An expired seat is still a row until deleted or reaped.
	expired := domain.Seat{Tenant: "acme", LicenseID: "L1", Key: "k2", User: "carol", HeldUntil: base.Add(-time.Hour)}
	putSeats(t, s, expired)
	got, err = getSeat(t, s, "acme", "L1", "k2")
	if err != nil {
		t.Fatalf("GetSeat of an expired seat: %v", err)
	}
	same(t, "expired seat", *got, expired)

	del := func() bool {
		return write(t, s, func(tx store.Tx) (bool, error) { return tx.DeleteSeat(ctx, "acme", "L1", "k1") })
	}
	if !del() {
		t.Error("DeleteSeat of an existing seat = false")
	}
	if del() {
		t.Error("DeleteSeat of a deleted seat = true")
	}
	_, err = getSeat(t, s, "acme", "L1", "k1")
	wantNotFound(t, "GetSeat after delete", err)
}

func pairs(p [][2]string) []string {
	out := []string{}
	for _, x := range p {
		out = append(out, x[0]+"/"+x[1])
	}
	sort.Strings(out)
	return out
}

func seatKeys(seats []domain.Seat) []string {
	out := []string{}
	for _, s := range seats {
		out = append(out, s.Tenant+"/"+s.LicenseID+"/"+s.Key)
	}
	sort.Strings(out)
	return out
}

func testSeatQueries(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := baseTime(t, s)
	seat := func(tenant, license, key, user string, held time.Duration, lingering bool) domain.Seat {
		return domain.Seat{Tenant: tenant, LicenseID: license, Key: key, User: user, HeldUntil: base.Add(held), Lingering: lingering}
	}
	putSeats(t, s,
		seat("acme", "L1", "a", "alice", time.Minute, false),
		seat("acme", "L1", "b", "bob", -time.Minute, false),
		seat("acme", "L1", "c", "carol", 0, true), // HeldUntil == now: expired
		seat("acme", "L1", "d", "dave", 30*time.Second, true),
		seat("acme", "L2", "e", "alice", -2*time.Minute, false),
		seat("acme", "L3", "g", "alice", time.Hour, false),
		seat("other", "L1", "f", "alice", -5*time.Minute, false),
	)
	update(t, s, func(tx store.Tx) error {
		st, err := tx.LockLicense(ctx, "acme", "L1")
		if err != nil {
			return err
		}
		st.SeatsHeld = 4
		return tx.SaveLicenseState(ctx, st)
	})

	count := func(tenant, license string, now time.Time) int {
		return read(t, s, func(tx store.Tx) (int, error) { return tx.CountLiveSeats(ctx, tenant, license, now) })
	}
	if n := count("acme", "L1", base); n != 2 {
		t.Errorf("CountLiveSeats(L1) = %d, want 2 (a, d)", n)
	}
	if n := count("acme", "L1", base.Add(-90*time.Second)); n != 4 {
		t.Errorf("CountLiveSeats(L1, now-90s) = %d, want 4", n)
	}
	if n := count("acme", "L1", base.Add(-time.Minute)); n != 3 {
		t.Errorf("CountLiveSeats(L1, now-1m) = %d, want 3 (b is due then)", n)
	}
	earliest := func(license string) time.Time {
		return read(t, s, func(tx store.Tx) (time.Time, error) { return tx.EarliestSeatRelease(ctx, "acme", license, base) })
	}
	sameTime(t, "EarliestSeatRelease(L1): d's", earliest("L1"), base.Add(30*time.Second))
	if at := earliest("L2"); !at.IsZero() {
		t.Errorf("EarliestSeatRelease(L2) = %v, want none (its only seat expired)", at)
	}
	if n := count("acme", "L2", base); n != 0 {
		t.Errorf("CountLiveSeats(L2) = %d, want 0", n)
	}
	expired := func(tenant, license string, now time.Time) int {
		return read(t, s, func(tx store.Tx) (int, error) { return tx.CountExpiredSeats(ctx, tenant, license, now) })
	}
	if n := expired("acme", "L1", base); n != 2 {
		t.Errorf("CountExpiredSeats(L1) = %d, want 2 (b, c)", n)
	}
	if n := expired("acme", "L1", base.Add(-time.Minute)); n != 1 {
		t.Errorf("CountExpiredSeats(L1, now-1m) = %d, want 1 (b is due then)", n)
	}
	if n := expired("acme", "L2", base); n != 1 {
		t.Errorf("CountExpiredSeats(L2) = %d, want 1", n)
	}
	if n := expired("acme", "L3", base); n != 0 {
		t.Errorf("CountExpiredSeats(L3) = %d, want 0", n)
	}

	users := read(t, s, func(tx store.Tx) (map[string]bool, error) {
		return tx.UsersHoldingSeats(ctx, "acme", "L1", []string{"alice", "bob", "carol", "dave", "zed"}, base)
	})
	for u, want := range map[string]bool{"alice": true, "bob": false, "carol": false, "dave": true, "zed": false} {
		if users[u] != want {
			t.Errorf("UsersHoldingSeats[%s] = %v, want %v (all: %v)", u, users[u], want, users)
		}
	}
	if users := read(t, s, func(tx store.Tx) (map[string]bool, error) {
		return tx.UsersHoldingSeats(ctx, "acme", "L1", nil, base)
	}); slices.Contains(slices.Collect(maps.Values(users)), true) {
		t.Errorf("UsersHoldingSeats with no users = %v", users)
	}

	lics := read(t, s, func(tx store.Tx) ([][2]string, error) { return tx.LicensesWithExpiredSeats(ctx, base, 100) })
	if got, want := pairs(lics), []string{"acme/L1", "acme/L2", "other/L1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("LicensesWithExpiredSeats = %v, want %v", got, want)
	}
	lics = read(t, s, func(tx store.Tx) ([][2]string, error) { return tx.LicensesWithExpiredSeats(ctx, base, 2) })
	if len(lics) != 2 || len(slices.Compact(pairs(lics))) != 2 {
		t.Errorf("LicensesWithExpiredSeats(limit 2) = %v, want 2 distinct licenses", lics)
	}
	lics = read(t, s, func(tx store.Tx) ([][2]string, error) {
		return tx.LicensesWithExpiredSeats(ctx, base.Add(-3*time.Minute), 100)
	})
	if got, want := pairs(lics), []string{"other/L1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("LicensesWithExpiredSeats(now-3m) = %v, want %v", got, want)
	}

	between := read(t, s, func(tx store.Tx) ([]domain.Seat, error) {
		return tx.SeatsExpiredBetween(ctx, base.Add(-2*time.Minute), base, 100)
	})
	if got, want := seatKeys(between), []string{"acme/L1/b", "acme/L1/c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("SeatsExpiredBetween(now-2m, now] = %v, want %v", got, want)
	}
	for _, st := range between {
		if st.Key == "c" {
			same(t, "seat from SeatsExpiredBetween", st, seat("acme", "L1", "c", "carol", 0, true))
		}
	}
	between = read(t, s, func(tx store.Tx) ([]domain.Seat, error) {
		return tx.SeatsExpiredBetween(ctx, base.Add(-2*time.Minute), base, 1)
	})
	if len(between) != 1 {
		t.Errorf("SeatsExpiredBetween(limit 1) returned %d seats", len(between))
	}

	reaped := write(t, s, func(tx store.Tx) (int, error) { return tx.ReapSeats(ctx, "acme", "L1", base) })
	if reaped != 2 {
		t.Errorf("ReapSeats = %d, want 2 (b, c)", reaped)
	}
	for key, live := range map[string]bool{"a": true, "b": false, "c": false, "d": true} {
		_, err := getSeat(t, s, "acme", "L1", key)
		if live && err != nil {
			t.Errorf("seat %s after reap: %v", key, err)
		}
		if !live {
			wantNotFound(t, "reaped seat "+key, err)
		}
	}
	if _, err := getSeat(t, s, "acme", "L2", "e"); err != nil {
		t.Errorf("ReapSeats(L1) removed a seat of L2: %v", err)
	}
	if st := licenseState(t, s, "acme", "L1"); st.SeatsHeld != 4 {
		t.Errorf("SeatsHeld after ReapSeats = %d, want 4 (the engine adjusts it, not the store)", st.SeatsHeld)
	}
	if n := write(t, s, func(tx store.Tx) (int, error) { return tx.ReapSeats(ctx, "acme", "L1", base) }); n != 0 {
		t.Errorf("second ReapSeats = %d, want 0", n)
	}
	lics = read(t, s, func(tx store.Tx) ([][2]string, error) { return tx.LicensesWithExpiredSeats(ctx, base, 100) })
	if got, want := pairs(lics), []string{"acme/L2", "other/L1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("LicensesWithExpiredSeats after reap = %v, want %v", got, want)
	}
}

func fullLease(tenant, id string, base time.Time) domain.Lease {
	return domain.Lease{
		ID: id, Root: id, Tenant: tenant, LicenseID: "L1", Item: "Feature", SeatKey: "seat-1", SessionKey: "sk-" + id,
		User: "alice", Client: "app", HW: "hw-1", HWName: "Laptop", Process: "p-1", ProcessName: "proc.exe",
		Version: "1.2.3", Mode: domain.ModeCache,
		IssuedAt: base, RenewedAt: base, ExpiresAt: base.Add(10 * time.Minute), RefreshAt: base.Add(8 * time.Minute),
		Overage: true, UseTimeReserved: 10*time.Minute + 7, SessionID: "sess-1",
	}
}

func findLease(t *testing.T, s store.Store, tenant, id string) (*domain.Lease, error) {
	t.Helper()
	var l *domain.Lease
	err := readErr(t, s, func(tx store.Tx) error {
		var err error
		l, err = tx.FindLease(t.Context(), tenant, id)
		return err
	})
	return l, err
}

func insertLeases(t *testing.T, s store.Store, leases ...domain.Lease) {
	t.Helper()
	update(t, s, func(tx store.Tx) error {
		for i := range leases {
			l := leases[i]
			if err := tx.InsertLease(t.Context(), &l); err != nil {
				return err
			}
		}
		return nil
	})
}

func testLeaseChain(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := baseTime(t, s)
	_, err := findLease(t, s, "acme", "l1-a")
	wantNotFound(t, "FindLease of a missing lease", err)

	l := fullLease("acme", "l1-a", base)
	insertLeases(t, s, l)
	got, err := findLease(t, s, "acme", "l1-a")
	if err != nil {
		t.Fatalf("FindLease: %v", err)
	}
	same(t, "lease", *got, l)
	_, err = findLease(t, s, "other", "l1-a")
	wantNotFound(t, "FindLease from another tenant", err)

	err = s.Update(ctx, func(tx store.Tx) error { c := l; return tx.InsertLease(ctx, &c) })
	wantConflict(t, "InsertLease of an existing root", err)

	bySK := func(tenant, license, seat, sk string) (*domain.Lease, error) {
		var l *domain.Lease
		err := readErr(t, s, func(tx store.Tx) error {
			var err error
			l, err = tx.GetLeaseBySessionKey(ctx, tenant, license, seat, sk)
			return err
		})
		return l, err
	}
	got, err = bySK("acme", "L1", l.SeatKey, l.SessionKey)
	if err != nil {
		t.Fatalf("GetLeaseBySessionKey: %v", err)
	}
	same(t, "lease by session key", *got, l)
	_, err = bySK("acme", "L2", l.SeatKey, l.SessionKey)
	wantNotFound(t, "GetLeaseBySessionKey on another license", err)
	_, err = bySK("acme", "L1", l.SeatKey, "nope")
	wantNotFound(t, "GetLeaseBySessionKey of an unknown key", err)
	_, err = bySK("acme", "L1", "another-seat", l.SessionKey)
	wantNotFound(t, "GetLeaseBySessionKey on another seat", err)

	// Renewals chain new ids; every id of the chain resolves to the current lease.
	ids := []string{"l1-a"}
	cur := l
	for i, id := range []string{"l1-b", "l1-c", "l1-d"} {
		prev := cur.ID
		cur.ID, cur.PrevID, cur.PrevUntil = id, prev, base.Add(time.Duration(i+1)*time.Minute+10*time.Second)
		cur.RenewedAt = base.Add(time.Duration(i+1) * time.Minute)
		cur.ExpiresAt = cur.RenewedAt.Add(10 * time.Minute)
		cur.RefreshAt = cur.RenewedAt.Add(8 * time.Minute)
		cur.UseTimeReserved += time.Minute
		cur.Overage = !cur.Overage
		next := cur
		update(t, s, func(tx store.Tx) error { return tx.UpdateLease(ctx, &next) })
		ids = append(ids, id)
		for _, old := range ids {
			got, err := findLease(t, s, "acme", old)
			if err != nil {
				t.Fatalf("FindLease(%s) after renewal to %s: %v", old, id, err)
			}
			same(t, fmt.Sprintf("FindLease(%s) after renewal to %s", old, id), *got, cur)
		}
	}
	// An update that keeps the id changes the lease only.
	cur.ExpiresAt = cur.ExpiresAt.Add(time.Hour)
	cur.Mode = domain.ModeCheckout
	same1 := cur
	update(t, s, func(tx store.Tx) error { return tx.UpdateLease(ctx, &same1) })
	for _, id := range ids {
		got, err := findLease(t, s, "acme", id)
		if err != nil {
			t.Fatalf("FindLease(%s): %v", id, err)
		}
		same(t, "FindLease after an update in place", *got, cur)
	}
	// The identity is fixed at insert: an update never moves a lease to another key.
	moved := cur
	moved.LicenseID, moved.Item, moved.SeatKey, moved.SessionKey = "L2", "Other", "seat-x", "session-x"
	moved.User, moved.Client, moved.HW, moved.Process, moved.IssuedAt = "mallory", "other-app", "hw-x", "p-x", base.Add(time.Hour)
	update(t, s, func(tx store.Tx) error { return tx.UpdateLease(ctx, &moved) })
	got, err = bySK("acme", "L1", l.SeatKey, l.SessionKey)
	if err != nil {
		t.Fatalf("GetLeaseBySessionKey after renewals: %v", err)
	}
	same(t, "lease by session key after renewals", *got, cur)

	err = s.Update(ctx, func(tx store.Tx) error {
		m := fullLease("acme", "missing", base)
		return tx.UpdateLease(ctx, &m)
	})
	wantNotFound(t, "UpdateLease of a missing root", err)

	// A second lease keeps its own chain.
	l2 := fullLease("acme", "l2-a", base)
	insertLeases(t, s, l2)
	del := func(root string) bool {
		return write(t, s, func(tx store.Tx) (bool, error) { return tx.DeleteLease(ctx, "acme", root) })
	}
	if del("l1-b") {
		t.Error("DeleteLease by a non-root id = true; it takes the root")
	}
	if !del("l1-a") {
		t.Error("DeleteLease of an existing lease = false")
	}
	if del("l1-a") {
		t.Error("DeleteLease of a deleted lease = true")
	}
	for _, id := range ids {
		_, err := findLease(t, s, "acme", id)
		wantNotFound(t, "FindLease("+id+") after DeleteLease", err)
	}
	_, err = bySK("acme", "L1", l.SeatKey, l.SessionKey)
	wantNotFound(t, "GetLeaseBySessionKey after DeleteLease", err)
	if got, err := findLease(t, s, "acme", "l2-a"); err != nil {
		t.Errorf("other lease after DeleteLease: %v", err)
	} else {
		same(t, "other lease", *got, l2)
	}
	// A deleted chain's ids can be used again.
	insertLeases(t, s, fullLease("acme", "l1-a", base))
	if _, err := findLease(t, s, "acme", "l1-a"); err != nil {
		t.Errorf("FindLease of a re-inserted root: %v", err)
	}
	if _, err := findLease(t, s, "acme", "l1-b"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("FindLease of an old chain id after the root was reused = %v, want ErrNotFound", err)
	}
}

// testLeaseDerivedIDs: a lease renewed with derived ids (domain/chainid.go) resolves by
// every id of its chain up to the current one, and by nothing else that looks like one.
func testLeaseDerivedIDs(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := baseTime(t, s)
	l := fullLease("acme", "d-root", base)
	l.ChainKey = domain.NewChainKey()
	insertLeases(t, s, l)
	other := fullLease("acme", "d-other", base)
	other.ChainKey = domain.NewChainKey()
	insertLeases(t, s, other)

	ids := []string{l.Root}
	cur := l
	for range 3 {
		cur.PrevID = cur.ID
		cur.ChainSeq++
		cur.ID = domain.ChainedLeaseID(cur.Root, cur.ChainKey, cur.ChainSeq)
		cur.ExpiresAt = cur.ExpiresAt.Add(time.Minute)
		next := cur
		update(t, s, func(tx store.Tx) error { return tx.UpdateLease(ctx, &next) })
		ids = append(ids, cur.ID)
	}
	for _, id := range ids {
		got, err := findLease(t, s, "acme", id)
		if err != nil {
			t.Fatalf("FindLease(%s): %v", id, err)
		}
		same(t, "FindLease("+id+")", *got, cur)
	}
	forged := []string{
		domain.ChainedLeaseID(l.Root, l.ChainKey, cur.ChainSeq+1), // not issued yet
		domain.ChainedLeaseID(l.Root, other.ChainKey, 1),          // another lease's key
		domain.ChainedLeaseID(other.Root, l.ChainKey, 1),          // another lease's root
		domain.ChainedLeaseID(l.Root, l.ChainKey, 0),              // the root is not derived
		offByOne(ids[1]), // a tag off by a character
		l.Root + ".01." + ids[1][strings.LastIndexByte(ids[1], '.')+1:], // n not canonical
		"missing.1.AAAAAAAAAAAAAAAA",
	}
	for _, id := range forged {
		_, err := findLease(t, s, "acme", id)
		wantNotFound(t, "FindLease of a forged id "+id, err)
	}
	_, err := findLease(t, s, "other-tenant", ids[2])
	wantNotFound(t, "FindLease of a derived id in another tenant", err)
	if !write(t, s, func(tx store.Tx) (bool, error) { return tx.DeleteLease(ctx, "acme", l.Root) }) {
		t.Fatal("DeleteLease = false")
	}
	for _, id := range ids {
		_, err := findLease(t, s, "acme", id)
		wantNotFound(t, "FindLease("+id+") after DeleteLease", err)
	}
}

// offByOne changes the last character of id to another (a tag ending in "A" stayed the
// same under a fixed "A", one run in 64).
func offByOne(id string) string {
	last := "A"
	if strings.HasSuffix(id, last) {
		last = "B"
	}
	return id[:len(id)-1] + last
}

// testLeaseSessionKeyUnique: a session key has one lease at most, live or expired; the
// engine deletes an expired one before granting the key again, in the same transaction.
// (A session key is derived from its seat key, so its leases are all on one seat.)
func testLeaseSessionKeyUnique(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := baseTime(t, s)
	old := fullLease("acme", "u1", base.Add(-time.Hour))
	old.ExpiresAt = base.Add(-time.Minute) // expired, not swept
	insertLeases(t, s, old)

	dup := fullLease("acme", "u2", base)
	dup.ID = "u2-next" // a chain id besides the root: neither may be written
	dup.SessionKey = old.SessionKey
	err := s.Update(ctx, func(tx store.Tx) error { c := dup; return tx.InsertLease(ctx, &c) })
	wantConflict(t, "InsertLease of a second lease with the same session key", err)
	for _, id := range []string{"u2", "u2-next"} {
		_, err = findLease(t, s, "acme", id)
		wantNotFound(t, "FindLease("+id+") after the refused InsertLease", err)
	}
	got := read(t, s, func(tx store.Tx) (*domain.Lease, error) {
		return tx.GetLeaseBySessionKey(ctx, "acme", "L1", old.SeatKey, old.SessionKey)
	})
	same(t, "lease by session key after the refused InsertLease", *got, old)

	// The conflict leaves the transaction usable: the caller may go on, and what it wrote
	// before and after is kept.
	other := fullLease("acme", "u3", base)
	update(t, s, func(tx store.Tx) error {
		c := dup
		if err := tx.InsertLease(ctx, &c); !errors.Is(err, domain.ErrConflict) {
			return fmt.Errorf("InsertLease of a duplicate session key inside a transaction: %v, want ErrConflict", err)
		}
		o := other
		return tx.InsertLease(ctx, &o)
	})
	if _, err := findLease(t, s, "acme", "u3"); err != nil {
		t.Errorf("FindLease of the lease inserted after a refused one: %v", err)
	}

	// The same session key on another license or tenant is another key.
	onL2, onOther := dup, fullLease("other", "u4", base)
	onL2.LicenseID = "L2"
	onOther.SessionKey = old.SessionKey
	insertLeases(t, s, onL2, onOther)

	// Delete the expired lease, then insert, in one transaction: the new one takes the key.
	update(t, s, func(tx store.Tx) error {
		if _, err := tx.DeleteLease(ctx, "acme", old.Root); err != nil {
			return err
		}
		c := dup
		c.LicenseID = "L1"
		c.Root, c.ID = "u5", "u5"
		return tx.InsertLease(ctx, &c)
	})
	got = read(t, s, func(tx store.Tx) (*domain.Lease, error) {
		return tx.GetLeaseBySessionKey(ctx, "acme", "L1", old.SeatKey, old.SessionKey)
	})
	if got.Root != "u5" {
		t.Errorf("lease by session key after delete + insert = %s, want u5", got.Root)
	}
	_, err = findLease(t, s, "acme", "u1")
	wantNotFound(t, "FindLease of the deleted expired lease", err)

	// LockLease answers as GetLeaseBySessionKey does.
	locked := write(t, s, func(tx store.Tx) (*domain.Lease, error) {
		return tx.LockLease(ctx, "acme", "L1", old.SeatKey, old.SessionKey)
	})
	same(t, "LockLease", *locked, *got)
	err = s.Update(ctx, func(tx store.Tx) error { _, err := tx.LockLease(ctx, "acme", "L1", old.SeatKey, "nope"); return err })
	wantNotFound(t, "LockLease of an unknown key", err)

	// LockLiveLease answers a live lease as LockLease does, and nothing for an expired one
	// or none; the GetSeat after it answers the seat (PostgreSQL reads it ahead), or none.
	lockLive := func(sessKey string, now time.Time) (*domain.Lease, *domain.Seat, error) {
		var l *domain.Lease
		var seat *domain.Seat
		err := s.Update(ctx, func(tx store.Tx) (err error) {
			if l, err = tx.LockLiveLease(ctx, "acme", "L1", old.SeatKey, sessKey, now); err != nil {
				return err
			}
			seat, err = tx.GetSeat(ctx, "acme", "L1", old.SeatKey)
			if errors.Is(err, domain.ErrNotFound) {
				return nil
			}
			return err
		})
		return l, seat, err
	}
	l, seat, err := lockLive(old.SessionKey, base)
	if err != nil {
		t.Fatalf("LockLiveLease: %v", err)
	}
	same(t, "LockLiveLease", *l, *got)
	if seat != nil {
		t.Errorf("LockLiveLease of a lease with no seat row, then GetSeat: %+v, want none", seat)
	}
	held := domain.Seat{Tenant: "acme", LicenseID: "L1", Key: old.SeatKey, User: "alice", HeldUntil: got.ExpiresAt, Overage: true}
	update(t, s, func(tx store.Tx) error { c := held; return tx.PutSeat(ctx, &c) })
	if _, seat, err = lockLive(old.SessionKey, base); err != nil || seat == nil || !reflect.DeepEqual(*seat, held) {
		t.Errorf("LockLiveLease, then GetSeat: %+v, %v; want %+v", seat, err, held)
	}
	_, _, err = lockLive(old.SessionKey, got.ExpiresAt)
	wantNotFound(t, "LockLiveLease at the lease's expiry", err)
	_, _, err = lockLive("nope", base)
	wantNotFound(t, "LockLiveLease of an unknown key", err)
}

func leaseIDs(ls []domain.Lease) []string {
	out := []string{}
	for _, l := range ls {
		out = append(out, l.ID)
	}
	return out
}

func sortedIDs(ls []domain.Lease) []string {
	out := leaseIDs(ls)
	sort.Strings(out)
	return out
}

func testLeaseQueries(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := baseTime(t, s)
	lease := func(tenant, id, license, seat, user, client string, expires time.Duration) domain.Lease {
		l := fullLease(tenant, id, base)
		l.LicenseID, l.SeatKey, l.User, l.Client = license, seat, user, client
		l.ExpiresAt = base.Add(expires)
		l.RefreshAt = base.Add(expires / 2)
		return l
	}
	x1 := lease("acme", "x1", "L1", "S", "alice", "c1", 5*time.Minute)
	x2 := lease("acme", "x2", "L1", "S", "alice", "c2", 7*time.Minute)
	x3 := lease("acme", "x3", "L1", "S", "bob", "c1", 0) // expires now
	x4 := lease("acme", "x4", "L1", "S2", "alice", "c1", 9*time.Minute)
	x5 := lease("acme", "x5", "L2", "S", "alice", "c1", 20*time.Minute)
	x6 := lease("other", "x6", "L1", "S", "alice", "c1", 30*time.Minute)
	x7 := lease("other", "x7", "L1", "S", "alice", "c1", -time.Minute)
	insertLeases(t, s, x1, x2, x3, x4, x5, x6, x7)

	onSeat := func(seat string, now time.Time) int {
		return read(t, s, func(tx store.Tx) (int, error) { return tx.CountLiveLeasesOnSeat(ctx, "acme", "L1", seat, now) })
	}
	if n := onSeat("S", base); n != 2 {
		t.Errorf("CountLiveLeasesOnSeat(S) = %d, want 2 (x1, x2)", n)
	}
	if n := onSeat("S", base.Add(-time.Second)); n != 3 {
		t.Errorf("CountLiveLeasesOnSeat(S, now-1s) = %d, want 3", n)
	}
	if n := onSeat("S", base.Add(6*time.Minute)); n != 1 {
		t.Errorf("CountLiveLeasesOnSeat(S, now+6m) = %d, want 1", n)
	}
	if n := onSeat("S3", base); n != 0 {
		t.Errorf("CountLiveLeasesOnSeat(S3) = %d, want 0", n)
	}

	byHolder := func(user, client string) int {
		return read(t, s, func(tx store.Tx) (int, error) {
			return tx.CountLiveLeasesByHolder(ctx, "acme", "L1", user, client, base)
		})
	}
	for _, c := range []struct {
		user, client string
		want         int
	}{{"alice", "", 3}, {"", "c1", 2}, {"", "c2", 1}, {"bob", "", 0}, {"carol", "", 0}} {
		if n := byHolder(c.user, c.client); n != c.want {
			t.Errorf("CountLiveLeasesByHolder(user %q, client %q) = %d, want %d", c.user, c.client, n, c.want)
		}
	}

	latest := func(seat, except string, now time.Time) time.Time {
		return read(t, s, func(tx store.Tx) (time.Time, error) {
			return tx.LatestLiveExpiryOnSeat(ctx, "acme", "L1", seat, except, now)
		})
	}
	sameTime(t, "LatestLiveExpiryOnSeat(S)", latest("S", "", base), x2.ExpiresAt)
	sameTime(t, "LatestLiveExpiryOnSeat(S, except x2)", latest("S", "x2", base), x1.ExpiresAt)
	if got := latest("S", "x2", base.Add(5*time.Minute)); !got.IsZero() {
		t.Errorf("LatestLiveExpiryOnSeat(S, except x2, at x1's expiry) = %v, want zero", got)
	}
	if got := latest("S3", "", base); !got.IsZero() {
		t.Errorf("LatestLiveExpiryOnSeat of a seat without leases = %v, want zero", got)
	}

	list := func(f store.LeaseFilter, now time.Time) []domain.Lease {
		return read(t, s, func(tx store.Tx) ([]domain.Lease, error) { return tx.ListLeases(ctx, "acme", f, now) })
	}
	for _, c := range []struct {
		f    store.LeaseFilter
		want []string
	}{
		{store.LeaseFilter{}, []string{"x1", "x2", "x4", "x5"}},
		{store.LeaseFilter{LicenseID: "L1"}, []string{"x1", "x2", "x4"}},
		{store.LeaseFilter{LicenseID: "L1", User: "alice"}, []string{"x1", "x2", "x4"}},
		{store.LeaseFilter{User: "alice"}, []string{"x1", "x2", "x4", "x5"}},
		{store.LeaseFilter{User: "bob"}, []string{}},
		{store.LeaseFilter{LicenseID: "L9"}, []string{}},
		{store.LeaseFilter{Client: "c1"}, []string{"x1", "x4", "x5"}},
		{store.LeaseFilter{LicenseID: "L1", User: "alice", Client: "c2"}, []string{"x2"}},
	} {
		if got := sortedIDs(list(c.f, base)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("ListLeases(%+v) = %v, want %v", c.f, got, c.want)
		}
	}
	if got := list(store.LeaseFilter{Limit: 2}, base); len(got) != 2 {
		t.Errorf("ListLeases(limit 2) returned %d", len(got))
	}
	for _, l := range list(store.LeaseFilter{LicenseID: "L2"}, base) {
		same(t, "listed lease", l, x5)
	}

	expired := func(now time.Time, limit int) []string {
		return leaseIDs(read(t, s, func(tx store.Tx) ([]domain.Lease, error) { return tx.ExpiredLeases(ctx, now, limit) }))
	}
	if got, want := expired(base.Add(6*time.Minute), 100), []string{"x7", "x3", "x1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ExpiredLeases = %v, want oldest first %v", got, want)
	}
	if got, want := expired(base.Add(6*time.Minute), 2), []string{"x7", "x3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ExpiredLeases(limit 2) = %v, want %v", got, want)
	}
	if got := expired(base.Add(-2*time.Minute), 100); len(got) != 0 {
		t.Errorf("ExpiredLeases before any expiry = %v", got)
	}
	full := read(t, s, func(tx store.Tx) ([]domain.Lease, error) { return tx.ExpiredLeases(ctx, base, 100) })
	if len(full) == 2 {
		same(t, "expired lease", full[1], x3)
	} else {
		t.Errorf("ExpiredLeases(now) = %v, want [x7 x3]", leaseIDs(full))
	}
}

func hwLock(t *testing.T, s store.Store, tenant, model, hw string) string {
	t.Helper()
	return read(t, s, func(tx store.Tx) (string, error) { return tx.GetHWLock(t.Context(), tenant, model, hw) })
}

func testHWLocks(t *testing.T, s store.Store) {
	ctx := t.Context()
	if got := hwLock(t, s, "acme", "m1", "hw1"); got != "" {
		t.Errorf("GetHWLock of an unlocked hw = %q", got)
	}
	lock := func(tenant, model, hw, license string) string {
		return write(t, s, func(tx store.Tx) (string, error) { return tx.LockHW(ctx, tenant, model, hw, license) })
	}
	if got := lock("acme", "m1", "hw1", "L1"); got != "L1" {
		t.Errorf("first LockHW = %q, want L1", got)
	}
	if got := lock("acme", "m1", "hw1", "L2"); got != "L1" {
		t.Errorf("LockHW of a locked hw = %q, want the earlier L1", got)
	}
	if got := lock("acme", "m1", "hw1", "L1"); got != "L1" {
		t.Errorf("LockHW again by its owner = %q, want L1", got)
	}
	if got := hwLock(t, s, "acme", "m1", "hw1"); got != "L1" {
		t.Errorf("GetHWLock = %q, want L1", got)
	}
	if got := lock("acme", "m2", "hw1", "L3"); got != "L3" {
		t.Errorf("LockHW under another model = %q, want L3", got)
	}
	if got := lock("other", "m1", "hw1", "L9"); got != "L9" {
		t.Errorf("LockHW in another tenant = %q, want L9", got)
	}
	lock("acme", "m1", "hw2", "L1")
	if n := write(t, s, func(tx store.Tx) (int, error) { return tx.DeleteHWLocks(ctx, "acme", "hw1") }); n != 2 {
		t.Errorf("DeleteHWLocks = %d, want 2", n)
	}
	for _, c := range []struct{ tenant, model, hw, want string }{
		{"acme", "m1", "hw1", ""}, {"acme", "m2", "hw1", ""}, {"other", "m1", "hw1", "L9"}, {"acme", "m1", "hw2", "L1"},
	} {
		if got := hwLock(t, s, c.tenant, c.model, c.hw); got != c.want {
			t.Errorf("GetHWLock(%s, %s, %s) after DeleteHWLocks = %q, want %q", c.tenant, c.model, c.hw, got, c.want)
		}
	}
	if n := write(t, s, func(tx store.Tx) (int, error) { return tx.DeleteHWLocks(ctx, "acme", "hw1") }); n != 0 {
		t.Errorf("second DeleteHWLocks = %d, want 0", n)
	}
	if got := lock("acme", "m1", "hw1", "L2"); got != "L2" {
		t.Errorf("LockHW after reset = %q, want L2", got)
	}
}

func testHWLockRace(t *testing.T, s store.Store) {
	const n = 50
	owners := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			err := s.Update(t.Context(), func(tx store.Tx) error {
				var err error
				owners[i], err = tx.LockHW(t.Context(), "acme", "m1", "hw-race", fmt.Sprintf("lic-%02d", i))
				return err
			})
			if err != nil {
				t.Errorf("LockHW %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	owner := hwLock(t, s, "acme", "m1", "hw-race")
	if owner == "" {
		t.Fatal("no hw lock after the race")
	}
	for i, o := range owners {
		if o != owner {
			t.Errorf("LockHW %d answered %q, the lock is %q", i, o, owner)
		}
	}
}

func testUsage(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := baseTime(t, s)
	ev := func(tenant string, at time.Duration, lease, event string) domain.UsageEvent {
		return domain.UsageEvent{Tenant: tenant, At: base.Add(at), LicenseID: "L1", Item: "Feature", User: "alice",
			Client: "app", HW: "hw1", HWName: "Build server 1", LeaseID: lease, Event: event, Duration: 15*time.Minute + 3}
	}
	e1 := ev("acme", 0, "a", domain.EventGrant)
	e2 := ev("acme", time.Second, "b", domain.EventDeny)
	e2.Code, e2.LeaseID, e2.Duration = domain.CodeQuotaExceeded, "", 0
	e3 := ev("acme", 2*time.Second, "a", domain.EventRelease)
	e3.Overage = true
	e4 := ev("other", time.Second, "z", domain.EventGrant)
	e5 := ev("acme", time.Second, "c", domain.EventRenew)
	update(t, s, func(tx store.Tx) error {
		if err := tx.AppendUsage(ctx, nil); err != nil {
			return err
		}
		return tx.AppendUsage(ctx, []domain.UsageEvent{e1, e2, e3, e4})
	})
	update(t, s, func(tx store.Tx) error { return tx.AppendUsage(ctx, []domain.UsageEvent{e5}) })

	list := func(tenant string, from, to time.Time) []domain.UsageEvent {
		return read(t, s, func(tx store.Tx) ([]domain.UsageEvent, error) { return tx.ListUsage(ctx, tenant, from, to) })
	}
	var zero time.Time
	for _, c := range []struct {
		name     string
		from, to time.Time
		want     []domain.UsageEvent
	}{
		{"[now, now+2s)", base, base.Add(2 * time.Second), []domain.UsageEvent{e1, e2, e5}},
		{"unbounded", zero, zero, []domain.UsageEvent{e1, e2, e5, e3}},
		{"[now+1s, )", base.Add(time.Second), zero, []domain.UsageEvent{e2, e5, e3}},
		{"[, now+1s)", zero, base.Add(time.Second), []domain.UsageEvent{e1}},
		{"[now+3s, )", base.Add(3 * time.Second), zero, nil},
	} {
		got := list("acme", c.from, c.to)
		if len(got) == 0 && len(c.want) == 0 {
			continue
		}
		same(t, "ListUsage "+c.name, got, c.want)
	}
	same(t, "ListUsage of another tenant", list("other", zero, zero), []domain.UsageEvent{e4})
}

func testHeartbeat(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := baseTime(t, s)
	last := func(except string) time.Time {
		return read(t, s, func(tx store.Tx) (time.Time, error) { return tx.LastHeartbeat(ctx, except) })
	}
	if got := last(""); !got.IsZero() {
		t.Errorf("LastHeartbeat with no beats = %v, want zero", got)
	}
	beat := func(p string, at time.Time) {
		update(t, s, func(tx store.Tx) error { return tx.Heartbeat(ctx, p, at) })
	}
	beat("p1", base)
	if got := last("p1"); !got.IsZero() {
		t.Errorf("LastHeartbeat except the only process = %v, want zero", got)
	}
	beat("p2", base.Add(2*time.Second))
	beat("p1", base.Add(5*time.Second))
	sameTime(t, "LastHeartbeat except p1", last("p1"), base.Add(2*time.Second))
	sameTime(t, "LastHeartbeat except p2", last("p2"), base.Add(5*time.Second))
	sameTime(t, "LastHeartbeat", last(""), base.Add(5*time.Second))
}
