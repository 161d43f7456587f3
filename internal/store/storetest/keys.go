package storetest

import (
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/store"
)

func listKeys(t *testing.T, s store.Store, tenant string) []store.SigningKey {
	t.Helper()
	return read(t, s, func(tx store.Tx) ([]store.SigningKey, error) { return tx.ListSigningKeys(t.Context(), tenant) })
}

func kids(keys []store.SigningKey) []string {
	out := []string{}
	for _, k := range keys {
		out = append(out, k.KID)
	}
	return out
}

func testSigningKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := baseTime(t, s)
	if keys := listKeys(t, s, "acme"); len(keys) != 0 {
		t.Fatalf("ListSigningKeys of a new tenant = %v", kids(keys))
	}
	key := func(kid string, created time.Duration) store.SigningKey {
		return store.SigningKey{Tenant: "acme", KID: kid, Algorithm: "RS256",
			Private: []byte("private-" + kid + "\x00\xff"), CreatedAt: base.Add(created)}
	}
	insert := func(k store.SigningKey, ifNone bool) bool {
		return write(t, s, func(tx store.Tx) (bool, error) { return tx.InsertSigningKey(ctx, k, ifNone) })
	}
	k1, k2, k3, k4 := key("k1", 0), key("k2", time.Minute), key("k3", 2*time.Minute), key("k4", -time.Hour)
	if !insert(k1, true) {
		t.Error("InsertSigningKey(ifNone) with no key = false")
	}
	if insert(k2, true) {
		t.Error("InsertSigningKey(ifNone) with an active key = true")
	}
	same(t, "keys", listKeys(t, s, "acme"), []store.SigningKey{k1})
	if !insert(k2, false) {
		t.Error("InsertSigningKey = false")
	}
	same(t, "keys, newest first", listKeys(t, s, "acme"), []store.SigningKey{k2, k1})

	err := s.Update(ctx, func(tx store.Tx) error {
		_, err := tx.InsertSigningKey(ctx, k1, false)
		return err
	})
	wantConflict(t, "InsertSigningKey of an existing kid", err)

	retire := func(kid string, at, until time.Time) error {
		return s.Update(ctx, func(tx store.Tx) error { return tx.RetireSigningKey(ctx, "acme", kid, at, until) })
	}
	at, until := base.Add(3*time.Minute), base.Add(23*time.Minute)
	if err := retire("k1", at, until); err != nil {
		t.Fatalf("RetireSigningKey: %v", err)
	}
	k1.RetiredAt, k1.PublishUntil = &at, &until
	at2, until2 := base.Add(4*time.Minute), base.Add(24*time.Minute)
	insert(k3, false)
	if err := retire("k2", at2, until2); err != nil {
		t.Fatalf("RetireSigningKey: %v", err)
	}
	k2.RetiredAt, k2.PublishUntil = &at2, &until2
	insert(k4, false)
	same(t, "keys: active first, then retired, newest first", listKeys(t, s, "acme"), []store.SigningKey{k3, k4, k2, k1})
	wantNotFound(t, "RetireSigningKey of a missing key", retire("nope", at, until))

	if insert(key("k5", time.Hour), true) {
		t.Error("InsertSigningKey(ifNone) with two active keys = true")
	}
	if err := retire("k3", at2, until2); err != nil {
		t.Fatal(err)
	}
	if err := retire("k4", at2, until2); err != nil {
		t.Fatal(err)
	}
	k5 := key("k5", time.Hour)
	if !insert(k5, true) {
		t.Error("InsertSigningKey(ifNone) with only retired keys = false")
	}
	if got, want := kids(listKeys(t, s, "acme")), []string{"k5", "k3", "k2", "k1", "k4"}; !reflect.DeepEqual(got, want) {
		t.Errorf("keys = %v, want %v", got, want)
	}

	update(t, s, func(tx store.Tx) error { return tx.DeleteSigningKey(ctx, "acme", "k1") })
	if got, want := kids(listKeys(t, s, "acme")), []string{"k5", "k3", "k2", "k4"}; !reflect.DeepEqual(got, want) {
		t.Errorf("keys after delete = %v, want %v", got, want)
	}
	if keys := listKeys(t, s, "other"); len(keys) != 0 {
		t.Errorf("ListSigningKeys of another tenant = %v", kids(keys))
	}
	// The same kid in another tenant is another key.
	other := key("k5", 0)
	other.Tenant = "other"
	if !insert(other, true) {
		t.Error("InsertSigningKey(ifNone) in another tenant = false")
	}
}

func testSigningKeyRace(t *testing.T, s store.Store) {
	const n = 32
	base := baseTime(t, s)
	won := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k := store.SigningKey{Tenant: "acme", KID: fmt.Sprintf("kid-%02d", i), Algorithm: "ES256",
				Private: []byte{byte(i)}, CreatedAt: base}
			err := s.Update(t.Context(), func(tx store.Tx) error {
				var err error
				won[i], err = tx.InsertSigningKey(t.Context(), k, true)
				return err
			})
			if err != nil {
				t.Errorf("InsertSigningKey %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	var winners []string
	for i, w := range won {
		if w {
			winners = append(winners, fmt.Sprintf("kid-%02d", i))
		}
	}
	keys := listKeys(t, s, "acme")
	if len(winners) != 1 || len(keys) != 1 || keys[0].KID != winners[0] {
		t.Errorf("racing InsertSigningKey(ifNone): winners %v, stored keys %v; want one and the same", winners, kids(keys))
	}
}
