package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// populate writes one of every kind of row for tenant.
func populate(t *testing.T, s store.Store, tenant string, base time.Time) {
	t.Helper()
	ctx := t.Context()
	update(t, s, func(tx store.Tx) error { return writeAll(ctx, tx, tenant, base) })
}

func writeAll(ctx context.Context, tx store.Tx, tenant string, base time.Time) error {
	l := fullLease(tenant, tenant+"-lease", base)
	renewed := l
	renewed.ID, renewed.PrevID, renewed.PrevUntil = tenant+"-lease-2", l.ID, base.Add(time.Second)
	steps := []func() error{
		func() error {
			return tx.PutObject(ctx, obj("", domain.KindTenant, tenant, fmt.Sprintf(`{"name":%q}`, tenant), "", base))
		},
		func() error {
			return tx.PutObject(ctx, obj(tenant, domain.KindUser, "alice", `{"username":"alice"}`, "", base))
		},
		func() error {
			return tx.PutObject(ctx, obj(tenant, domain.KindLicense, "L1", `{"id":"L1","model":"m"}`, "", base))
		},
		func() error {
			_, err := tx.InsertSigningKey(ctx, store.SigningKey{Tenant: tenant, KID: "k", Algorithm: "RS256", Private: []byte("p"), CreatedAt: base}, false)
			return err
		},
		func() error {
			st, err := tx.LockLicense(ctx, tenant, "L1")
			if err != nil {
				return err
			}
			st.SeatsHeld, st.UseCount = 1, 5
			return tx.SaveLicenseState(ctx, st)
		},
		func() error {
			return tx.PutSeat(ctx, &domain.Seat{Tenant: tenant, LicenseID: "L1", Key: "seat-1", User: "alice", HeldUntil: base.Add(time.Hour)})
		},
		func() error { return tx.InsertLease(ctx, &l) },
		func() error { return tx.UpdateLease(ctx, &renewed) },
		func() error { _, err := tx.LockHW(ctx, tenant, "m", "hw-1", "L1"); return err },
		func() error {
			return tx.AppendUsage(ctx, []domain.UsageEvent{{Tenant: tenant, At: base, LicenseID: "L1", Item: "Feature", Event: domain.EventGrant}})
		},
		func() error {
			return tx.InsertSession(ctx, &domain.Session{ID: tenant + "-s", Tenant: tenant, Kind: domain.SessionPassword, User: "alice",
				CreatedAt: base, LastUsedAt: base, ExpiresAt: base.Add(time.Hour)})
		},
		func() error {
			return tx.InsertToken(ctx, &domain.Token{Hash: tenant + "-tok", Tenant: tenant, Kind: domain.TokenRefresh,
				SessionID: tenant + "-s", FamilyID: "f", User: "alice", CreatedAt: base, ExpiresAt: base.Add(time.Hour)})
		},
	}
	for i, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("write step %d: %w", i, err)
		}
	}
	return nil
}

// present reports, for each kind of row populate writes, whether tenant has it.
func present(t *testing.T, s store.Store, tenant string) map[string]bool {
	t.Helper()
	ctx := t.Context()
	got := map[string]bool{}
	view(t, s, func(tx store.Tx) error {
		_, err := tx.GetObject(ctx, "", domain.KindTenant, tenant)
		got["tenant object"] = err == nil
		objs, err := tx.ListObjects(ctx, tenant, domain.KindUser)
		if err != nil {
			return err
		}
		got["users"] = len(objs) > 0
		objs, err = tx.ListObjects(ctx, tenant, domain.KindLicense)
		if err != nil {
			return err
		}
		got["licenses"] = len(objs) > 0
		keys, err := tx.ListSigningKeys(ctx, tenant)
		if err != nil {
			return err
		}
		got["signing keys"] = len(keys) > 0
		st, err := tx.GetLicenseState(ctx, tenant, "L1")
		if err != nil {
			return err
		}
		got["license state"] = st.SeatsHeld != 0 || st.UseCount != 0
		_, err = tx.GetSeat(ctx, tenant, "L1", "seat-1")
		got["seat"] = err == nil
		_, err = tx.FindLease(ctx, tenant, tenant+"-lease")
		got["lease root id"] = err == nil
		_, err = tx.FindLease(ctx, tenant, tenant+"-lease-2")
		got["lease chain id"] = err == nil
		owner, err := tx.GetHWLock(ctx, tenant, "m", "hw-1")
		if err != nil {
			return err
		}
		got["hw lock"] = owner != ""
		usage, err := tx.ListUsage(ctx, tenant, time.Time{}, time.Time{})
		if err != nil {
			return err
		}
		got["usage"] = len(usage) > 0
		_, err = tx.GetSession(ctx, tenant, tenant+"-s")
		got["session"] = err == nil
		_, err = tx.GetToken(ctx, tenant+"-tok")
		got["token"] = err == nil
		return nil
	})
	return got
}

func wantPresent(t *testing.T, what string, got map[string]bool, want bool) {
	t.Helper()
	for k, v := range got {
		if v != want {
			t.Errorf("%s: %s present = %v, want %v", what, k, v, want)
		}
	}
}

func testDeleteTenantData(t *testing.T, s store.Store) {
	base := baseTime(t, s)
	populate(t, s, "doomed", base)
	populate(t, s, "kept", base)
	wantPresent(t, "before delete", present(t, s, "doomed"), true)
	before := catalogVersion(t, s, "doomed")
	update(t, s, func(tx store.Tx) error { return tx.DeleteTenantData(t.Context(), "doomed") })
	wantPresent(t, "deleted tenant", present(t, s, "doomed"), false)
	wantPresent(t, "other tenant", present(t, s, "kept"), true)
	if after := catalogVersion(t, s, "doomed"); after <= before {
		t.Errorf("catalog version after DeleteTenantData: %d -> %d, want it to grow", before, after)
	}
	// The tenant can be created again from nothing.
	populate(t, s, "doomed", base)
	wantPresent(t, "recreated tenant", present(t, s, "doomed"), true)
}

func testAtomicity(t *testing.T, s store.Store) {
	base := baseTime(t, s)
	populate(t, s, "kept", base)
	v := catalogVersion(t, s, "acme")
	err := s.Update(t.Context(), func(tx store.Tx) error {
		if err := writeAll(t.Context(), tx, "acme", base); err != nil {
			return err
		}
		if err := tx.Heartbeat(t.Context(), "p-failed", base); err != nil {
			return err
		}
		// A write to existing rows is undone too.
		if _, err := tx.DeleteSession(t.Context(), "kept", "kept-s"); err != nil {
			return err
		}
		if _, err := tx.DeleteLease(t.Context(), "kept", "kept-lease"); err != nil {
			return err
		}
		return fmt.Errorf("wrapped: %w", errBoom)
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update = %v, want the fn's error", err)
	}
	wantPresent(t, "after a failed Update", present(t, s, "acme"), false)
	wantPresent(t, "rows a failed Update deleted", present(t, s, "kept"), true)
	if got := catalogVersion(t, s, "acme"); got != v {
		t.Errorf("catalog version after a failed Update = %d, want %d", got, v)
	}
	if hb := read(t, s, func(tx store.Tx) (time.Time, error) { return tx.LastHeartbeat(t.Context(), "") }); !hb.IsZero() {
		t.Errorf("heartbeat of a failed Update = %v, want none", hb)
	}
	// The store still works, and the same writes can now succeed.
	populate(t, s, "acme", base)
	wantPresent(t, "after a good Update", present(t, s, "acme"), true)
}

// testAtomicityConcurrent runs failing and succeeding Updates at once (a group-committing
// backend batches them): each keeps exactly its own outcome.
func testAtomicityConcurrent(t *testing.T, s store.Store) {
	const n = 64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			err := s.Update(t.Context(), func(tx store.Tx) error {
				seat := &domain.Seat{Tenant: "acme", LicenseID: "L1", Key: fmt.Sprintf("k%02d", i), HeldUntil: tx.Now().Add(time.Hour)}
				if err := tx.PutSeat(t.Context(), seat); err != nil {
					return err
				}
				if i%2 == 0 {
					return errBoom
				}
				return nil
			})
			if i%2 == 0 && !errors.Is(err, errBoom) {
				t.Errorf("failing Update %d = %v, want its own error", i, err)
			}
			if i%2 == 1 && err != nil {
				t.Errorf("Update %d = %v", i, err)
			}
			if i%2 == 1 && err == nil {
				// Visible as soon as Update returns.
				if _, err := getSeat(t, s, "acme", "L1", fmt.Sprintf("k%02d", i)); err != nil {
					t.Errorf("seat of Update %d right after it returned: %v", i, err)
				}
			}
		})
	}
	wg.Wait()
	for i := range n {
		_, err := getSeat(t, s, "acme", "L1", fmt.Sprintf("k%02d", i))
		if i%2 == 1 && err != nil {
			t.Errorf("seat of successful Update %d: %v", i, err)
		}
		if i%2 == 0 && !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("seat of failed Update %d: err = %v, want ErrNotFound", i, err)
		}
	}
}

func testCanceledContext(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := s.Update(ctx, func(tx store.Tx) error {
		return tx.PutSeat(ctx, &domain.Seat{Tenant: "acme", LicenseID: "L1", Key: "k", HeldUntil: tx.Now().Add(time.Hour)})
	})
	if err == nil {
		t.Error("Update with a canceled context = nil")
	}
	_, err = getSeat(t, s, "acme", "L1", "k")
	wantNotFound(t, "seat written under a canceled context", err)
	if err := s.View(ctx, func(tx store.Tx) error {
		_, err := tx.GetSeat(ctx, "acme", "L1", "k")
		return err
	}); err == nil {
		t.Error("View with a canceled context = nil")
	}
}

func testViewRejectsWrites(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := baseTime(t, s)
	// Each write runs in a View of its own: a failed statement may spoil the rest of a
	// transaction on some backends.
	writes := map[string]func(tx store.Tx) error{
		"PutObject": func(tx store.Tx) error {
			return tx.PutObject(ctx, obj("acme", domain.KindUser, "alice", `{"username":"alice"}`, "", base))
		},
		"InsertSigningKey": func(tx store.Tx) error {
			_, err := tx.InsertSigningKey(ctx, store.SigningKey{Tenant: "acme", KID: "k", Algorithm: "RS256", CreatedAt: base}, true)
			return err
		},
		"LockLicense": func(tx store.Tx) error { _, err := tx.LockLicense(ctx, "acme", "L1"); return err },
		"SaveLicenseState": func(tx store.Tx) error {
			return tx.SaveLicenseState(ctx, &domain.LicenseState{Tenant: "acme", LicenseID: "L1", SeatsHeld: 1})
		},
		"PutSeat": func(tx store.Tx) error {
			return tx.PutSeat(ctx, &domain.Seat{Tenant: "acme", LicenseID: "L1", Key: "seat-1", HeldUntil: base.Add(time.Hour)})
		},
		"InsertLease": func(tx store.Tx) error { l := fullLease("acme", "acme-lease", base); return tx.InsertLease(ctx, &l) },
		"LockLease": func(tx store.Tx) error {
			l := fullLease("kept", "kept-lease", base)
			_, err := tx.LockLease(ctx, "kept", "L1", l.SeatKey, l.SessionKey)
			return err
		},
		"LockHW": func(tx store.Tx) error { _, err := tx.LockHW(ctx, "acme", "m", "hw-1", "L1"); return err },
		"AppendUsage": func(tx store.Tx) error {
			return tx.AppendUsage(ctx, []domain.UsageEvent{{Tenant: "acme", At: base, Event: domain.EventGrant}})
		},
		"Heartbeat": func(tx store.Tx) error { return tx.Heartbeat(ctx, "p", base) },
		"InsertSession": func(tx store.Tx) error {
			return tx.InsertSession(ctx, &domain.Session{ID: "acme-s", Tenant: "acme", CreatedAt: base, ExpiresAt: base})
		},
		"InsertToken": func(tx store.Tx) error {
			return tx.InsertToken(ctx, &domain.Token{Hash: "acme-tok", Tenant: "acme", CreatedAt: base, ExpiresAt: base})
		},
		"DeleteTenantData": func(tx store.Tx) error { return tx.DeleteTenantData(ctx, "kept") },
		"DeleteLease":      func(tx store.Tx) error { _, err := tx.DeleteLease(ctx, "kept", "kept-lease"); return err },
		"DeleteSession":    func(tx store.Tx) error { _, err := tx.DeleteSession(ctx, "kept", "kept-s"); return err },
		"ReapSeats":        func(tx store.Tx) error { _, err := tx.ReapSeats(ctx, "kept", "L1", base.Add(2*time.Hour)); return err },
	}
	populate(t, s, "kept", base)
	for name, w := range writes {
		var werr error
		_ = s.View(ctx, func(tx store.Tx) error {
			werr = w(tx)
			return nil
		})
		if werr == nil {
			t.Errorf("%s in a View succeeded", name)
		}
	}
	wantPresent(t, "after writes in Views", present(t, s, "acme"), false)
	wantPresent(t, "rows Views tried to delete", present(t, s, "kept"), true)
	if hb := read(t, s, func(tx store.Tx) (time.Time, error) { return tx.LastHeartbeat(ctx, "") }); !hb.IsZero() {
		t.Errorf("heartbeat written in a View: %v", hb)
	}
	if st := licenseState(t, s, "acme", "L1"); st.SeatsHeld != 0 {
		t.Errorf("license state written in a View: %+v", st)
	}
}

func testClock(t *testing.T, s store.Store) {
	ctx := t.Context()
	check := func(what string, run func(context.Context, func(store.Tx) error) error) {
		var a, b time.Time
		if err := run(ctx, func(tx store.Tx) error {
			a = tx.Now()
			time.Sleep(20 * time.Millisecond)
			b = tx.Now()
			return nil
		}); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !a.Equal(b) {
			t.Errorf("%s: tx.Now moved within one transaction: %v then %v", what, a, b)
		}
		if a.IsZero() || a.Location() != time.UTC {
			t.Errorf("%s: tx.Now = %v, want a UTC time", what, a)
		}
	}
	check("Update", s.Update)
	check("View", s.View)

	n1, err := s.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	n2, err := s.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !n2.After(n1) {
		t.Errorf("store Now did not advance: %v then %v", n1, n2)
	}
	if n1.Location() != time.UTC {
		t.Errorf("store Now = %v, want UTC", n1)
	}
	txNow := read(t, s, func(tx store.Tx) (time.Time, error) { return tx.Now(), nil })
	if txNow.Before(n2) {
		t.Errorf("a later transaction's Now %v is before the store's Now %v", txNow, n2)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// raceSeats runs n Updates at once, each of which takes a seat on license L1 keyed by
// key(i) unless the key already holds one or the cap is reached; it returns how many took one.
func raceSeats(t *testing.T, s store.Store, n, limit int, key func(i int) string) int {
	t.Helper()
	ctx := t.Context()
	granted := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			err := s.Update(ctx, func(tx store.Tx) error {
				granted[i] = false // fn may run more than once
				st, err := tx.LockLicense(ctx, "acme", "L1")
				if err != nil {
					return err
				}
				_, err = tx.GetSeat(ctx, "acme", "L1", key(i))
				switch {
				case err == nil:
					return nil // the key holds a seat already
				case !errors.Is(err, domain.ErrNotFound):
					return err
				}
				if st.SeatsHeld >= limit {
					return nil
				}
				seat := &domain.Seat{Tenant: "acme", LicenseID: "L1", Key: key(i), User: fmt.Sprint(i), HeldUntil: tx.Now().Add(time.Hour)}
				if err := tx.PutSeat(ctx, seat); err != nil {
					return err
				}
				st.SeatsHeld++
				if err := tx.SaveLicenseState(ctx, st); err != nil {
					return err
				}
				granted[i] = true
				return nil
			})
			if err != nil {
				t.Errorf("Update %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	n = 0
	for _, g := range granted {
		if g {
			n++
		}
	}
	return n
}

func checkSeats(t *testing.T, s store.Store, granted, want int) {
	t.Helper()
	now := baseTime(t, s)
	live := read(t, s, func(tx store.Tx) (int, error) { return tx.CountLiveSeats(t.Context(), "acme", "L1", now) })
	st := licenseState(t, s, "acme", "L1")
	if granted != want || live != want || st.SeatsHeld != want {
		t.Errorf("after the race: %d granted, %d seat rows, SeatsHeld %d; want %d of each", granted, live, st.SeatsHeld, want)
	}
}

func testSeatRaceDistinctKeys(t *testing.T, s store.Store) {
	granted := raceSeats(t, s, 200, 10, func(i int) string { return fmt.Sprintf("key-%03d", i) })
	checkSeats(t, s, granted, 10)
}

func testSeatRaceSameKeys(t *testing.T, s store.Store) {
	// 200 racers on 3 keys: one seat per key, and never over the cap of 10.
	granted := raceSeats(t, s, 200, 10, func(i int) string { return fmt.Sprintf("key-%d", i%3) })
	checkSeats(t, s, granted, 3)
	// And on a single key with a cap of 1 on a fresh license state.
	update(t, s, func(tx store.Tx) error { return tx.DeleteTenantData(t.Context(), "acme") })
	granted = raceSeats(t, s, 200, 1, func(int) string { return "only" })
	checkSeats(t, s, granted, 1)
}
