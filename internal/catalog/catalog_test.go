package catalog

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
	"github.com/leasehold/leasehold/internal/store/sqlite"
)

func TestSnapshotAndUnknownTenants(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	err = st.Update(ctx, func(tx store.Tx) error {
		for _, o := range []store.Object{
			{Kind: domain.KindTenant, ID: "acme", Spec: []byte(`{"name":"acme","default":true}`)},
			{Tenant: "acme", Kind: domain.KindProduct, ID: "P", Spec: []byte(`{"name":"P","items":["X"]}`)},
			{Tenant: "acme", Kind: domain.KindModel, ID: "m", Spec: []byte(`{"name":"m"}`)},
			{Tenant: "acme", Kind: domain.KindLicense, ID: "b", Spec: []byte(`{"id":"b","product":"P","model":"m","owner":{"user":"u"}}`)},
			{Tenant: "acme", Kind: domain.KindLicense, ID: "a", Spec: []byte(`{"id":"a","items":["X"],"model":"m","owner":{"user":"u"}}`)},
		} {
			if err := tx.PutObject(ctx, o); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c := New(st)
	snap, err := c.Get(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	// Licenses covering an item, in license id order; a product license covers its items.
	if got := snap.LicensesFor("X"); len(got) != 2 || got[0].ID != "a" || got[1].ID != "b" {
		t.Fatalf("LicensesFor(X) = %v", got)
	}
	if def, _ := c.DefaultTenant(ctx); def != "acme" {
		t.Fatalf("default tenant %q", def)
	}
	for i := 0; i < 100; i++ {
		if _, err := c.Get(ctx, fmt.Sprintf("nope-%d", i)); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("unknown tenant: %v", err)
		}
	}
	c.mu.Lock()
	n := len(c.tenants)
	c.mu.Unlock()
	if n != 1 {
		t.Fatalf("unknown tenant names are remembered: %d entries", n)
	}
}
