package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

func sameObject(t *testing.T, what string, got *store.Object, want store.Object) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: nil object", what)
		return
	}
	if got.Tenant != want.Tenant || got.Kind != want.Kind || got.ID != want.ID || got.FileHash != want.FileHash {
		t.Errorf("%s: got %s/%s/%s hash %q, want %s/%s/%s hash %q", what,
			got.Tenant, got.Kind, got.ID, got.FileHash, want.Tenant, want.Kind, want.ID, want.FileHash)
	}
	sameTime(t, what+" UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	// A backend may store Spec as JSON (PostgreSQL jsonb reformats it): compare values.
	var g, w any
	if err := json.Unmarshal(got.Spec, &g); err != nil {
		t.Errorf("%s: spec %q: %v", what, got.Spec, err)
	}
	if err := json.Unmarshal(want.Spec, &w); err != nil {
		t.Fatalf("%s: bad test spec: %v", what, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s: spec %s, want %s", what, got.Spec, want.Spec)
	}
}

func obj(tenant string, kind domain.Kind, id, spec, hash string, at time.Time) store.Object {
	return store.Object{Tenant: tenant, Kind: kind, ID: id, Spec: json.RawMessage(spec), FileHash: hash, UpdatedAt: at}
}

func putObjects(t *testing.T, s store.Store, objs ...store.Object) {
	t.Helper()
	update(t, s, func(tx store.Tx) error {
		for _, o := range objs {
			if err := tx.PutObject(t.Context(), o); err != nil {
				return err
			}
		}
		return nil
	})
}

func getObject(t *testing.T, s store.Store, tenant string, kind domain.Kind, id string) (*store.Object, error) {
	t.Helper()
	var o *store.Object
	err := readErr(t, s, func(tx store.Tx) error {
		var err error
		o, err = tx.GetObject(t.Context(), tenant, kind, id)
		return err
	})
	return o, err
}

func listIDs(t *testing.T, s store.Store, tenant string, kind domain.Kind) []string {
	t.Helper()
	objs := read(t, s, func(tx store.Tx) ([]store.Object, error) { return tx.ListObjects(t.Context(), tenant, kind) })
	ids := []string{}
	for _, o := range objs {
		if o.Tenant != tenant || o.Kind != kind {
			t.Errorf("ListObjects(%q, %s) returned %s/%s/%s", tenant, kind, o.Tenant, o.Kind, o.ID)
		}
		ids = append(ids, o.ID)
	}
	return ids
}

func testObjects(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := baseTime(t, s)

	_, err := getObject(t, s, "acme", domain.KindUser, "alice")
	wantNotFound(t, "GetObject of a missing object", err)

	tenant := obj("", domain.KindTenant, "acme", `{"name":"acme","default":true}`, "h-tenant", base)
	alice := obj("acme", domain.KindUser, "alice", `{"username":"alice","enabled":true}`, "h1", base.Add(time.Second))
	bob := obj("acme", domain.KindUser, "bob", `{"username":"bob","enabled":false}`, "", base.Add(2*time.Second))
	otherAlice := obj("other", domain.KindUser, "alice", `{"username":"alice","organization":"o"}`, "h9", base)
	putObjects(t, s, tenant, bob, alice, otherAlice)

	got, err := getObject(t, s, "", domain.KindTenant, "acme")
	if err != nil {
		t.Fatalf("GetObject tenant: %v", err)
	}
	sameObject(t, "tenant object", got, tenant)
	got, err = getObject(t, s, "acme", domain.KindUser, "alice")
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	sameObject(t, "alice", got, alice)
	got, err = getObject(t, s, "other", domain.KindUser, "alice")
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	sameObject(t, "other tenant's alice", got, otherAlice)
	_, err = getObject(t, s, "acme", domain.KindClient, "alice")
	wantNotFound(t, "GetObject of another kind", err)

	// Replace: every field follows the new definition.
	alice2 := obj("acme", domain.KindUser, "alice", `{"username":"alice","enabled":false,"organization":"org-1"}`, "", base.Add(time.Minute))
	putObjects(t, s, alice2)
	got, _ = getObject(t, s, "acme", domain.KindUser, "alice")
	sameObject(t, "replaced alice", got, alice2)

	// Zero UpdatedAt is stamped with the transaction's clock.
	var stamped time.Time
	update(t, s, func(tx store.Tx) error {
		stamped = tx.Now()
		return tx.PutObject(ctx, obj("acme", domain.KindProduct, "P", `{"name":"P"}`, "", time.Time{}))
	})
	got, err = getObject(t, s, "acme", domain.KindProduct, "P")
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	if d := got.UpdatedAt.Sub(stamped); d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("UpdatedAt of an object put without one = %v, want tx.Now() %v", got.UpdatedAt, stamped)
	}

	putObjects(t, s,
		obj("acme", domain.KindUser, "carol", `{"username":"carol"}`, "", base),
		obj("acme", domain.KindUser, "aaron", `{"username":"aaron"}`, "", base))
	if ids := listIDs(t, s, "acme", domain.KindUser); !reflect.DeepEqual(ids, []string{"aaron", "alice", "bob", "carol"}) {
		t.Errorf("ListObjects users = %v, want ordered by id [aaron alice bob carol]", ids)
	}
	if ids := listIDs(t, s, "acme", domain.KindLicense); len(ids) != 0 {
		t.Errorf("ListObjects licenses = %v, want none", ids)
	}
	if ids := listIDs(t, s, "", domain.KindTenant); !reflect.DeepEqual(ids, []string{"acme"}) {
		t.Errorf("ListObjects tenants = %v, want [acme]", ids)
	}
	if ids := listIDs(t, s, "other", domain.KindUser); !reflect.DeepEqual(ids, []string{"alice"}) {
		t.Errorf("ListObjects other users = %v, want [alice]", ids)
	}

	deleted := write(t, s, func(tx store.Tx) (bool, error) { return tx.DeleteObject(ctx, "acme", domain.KindUser, "bob") })
	if !deleted {
		t.Errorf("DeleteObject of an existing object = false")
	}
	deleted = write(t, s, func(tx store.Tx) (bool, error) { return tx.DeleteObject(ctx, "acme", domain.KindUser, "bob") })
	if deleted {
		t.Errorf("DeleteObject of a deleted object = true")
	}
	_, err = getObject(t, s, "acme", domain.KindUser, "bob")
	wantNotFound(t, "GetObject after delete", err)
	if ids := listIDs(t, s, "acme", domain.KindUser); !reflect.DeepEqual(ids, []string{"aaron", "alice", "carol"}) {
		t.Errorf("ListObjects after delete = %v", ids)
	}
}

func catalogVersion(t *testing.T, s store.Store, tenant string) int64 {
	t.Helper()
	return read(t, s, func(tx store.Tx) (int64, error) { return tx.CatalogVersion(t.Context(), tenant) })
}

func testCatalogVersion(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := baseTime(t, s)
	if v := catalogVersion(t, s, "acme"); v != 0 {
		t.Errorf("CatalogVersion of a new tenant = %d, want 0", v)
	}
	step := func(what string, fn func(tx store.Tx) error) {
		t.Helper()
		before := catalogVersion(t, s, "acme")
		update(t, s, fn)
		if after := catalogVersion(t, s, "acme"); after <= before {
			t.Errorf("%s: catalog version %d -> %d, want it to grow", what, before, after)
		}
	}
	step("put tenant object", func(tx store.Tx) error {
		return tx.PutObject(ctx, obj("", domain.KindTenant, "acme", `{"name":"acme"}`, "", base))
	})
	step("put user", func(tx store.Tx) error {
		return tx.PutObject(ctx, obj("acme", domain.KindUser, "alice", `{"username":"alice"}`, "", base))
	})
	step("replace user", func(tx store.Tx) error {
		return tx.PutObject(ctx, obj("acme", domain.KindUser, "alice", `{"username":"alice","enabled":false}`, "", base))
	})
	step("put license", func(tx store.Tx) error {
		return tx.PutObject(ctx, obj("acme", domain.KindLicense, "L1", `{"id":"L1"}`, "", base))
	})
	step("delete user", func(tx store.Tx) error {
		_, err := tx.DeleteObject(ctx, "acme", domain.KindUser, "alice")
		return err
	})
	// The version moves within the writing transaction too.
	var before, after int64
	update(t, s, func(tx store.Tx) error {
		var err error
		if before, err = tx.CatalogVersion(ctx, "acme"); err != nil {
			return err
		}
		if err = tx.PutObject(ctx, obj("acme", domain.KindUser, "bob", `{"username":"bob"}`, "", base)); err != nil {
			return err
		}
		after, err = tx.CatalogVersion(ctx, "acme")
		return err
	})
	if after <= before {
		t.Errorf("catalog version within the writing tx: %d -> %d, want it to grow", before, after)
	}
	step("delete tenant data", func(tx store.Tx) error { return tx.DeleteTenantData(ctx, "acme") })
	// A failed write leaves the version alone.
	v := catalogVersion(t, s, "acme")
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutObject(ctx, obj("acme", domain.KindUser, "x", `{"username":"x"}`, "", base)); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Errorf("Update = %v, want the fn's error", err)
	}
	if got := catalogVersion(t, s, "acme"); got != v {
		t.Errorf("catalog version after a failed Update = %d, want %d", got, v)
	}
}

// testCatalogLock: read-modify-writes of one object that each take LockCatalog first all
// survive, however many race (without the lock, READ COMMITTED loses most of them).
func testCatalogLock(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 12
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			errs <- s.Update(ctx, func(tx store.Tx) error {
				v, err := tx.LockCatalog(ctx, "acme")
				if err != nil {
					return err
				}
				count := 0
				o, err := tx.GetObject(ctx, "acme", domain.KindOrganization, "counter")
				switch {
				case err == nil:
					if err := json.Unmarshal(o.Spec, &count); err != nil {
						return err
					}
				case !errors.Is(err, domain.ErrNotFound):
					return err
				}
				// Each write bumps the version once: it counts the writes before this one.
				if v != int64(count) {
					return fmt.Errorf("LockCatalog = version %d with %d writes committed", v, count)
				}
				// Give a rival the time to read the same count, were it not locked out.
				time.Sleep(2 * time.Millisecond)
				spec, _ := json.Marshal(count + 1)
				return tx.PutObject(ctx, store.Object{Tenant: "acme", Kind: domain.KindOrganization, ID: "counter", Spec: spec})
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
	}
	o, err := getObject(t, s, "acme", domain.KindOrganization, "counter")
	if err != nil {
		t.Fatal(err)
	}
	if string(o.Spec) != strconv.Itoa(n) {
		t.Errorf("counter = %s after %d locked increments", o.Spec, n)
	}
	if v := catalogVersion(t, s, "acme"); v != n {
		t.Errorf("catalog version = %d after %d writes, want %d", v, n, n)
	}
	// A tenant that was only locked has no version yet.
	update(t, s, func(tx store.Tx) error { _, err := tx.LockCatalog(ctx, "other"); return err })
	if v := catalogVersion(t, s, "other"); v != 0 {
		t.Errorf("catalog version of a tenant only locked = %d, want 0", v)
	}
}
