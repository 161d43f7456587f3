package apply

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/config"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/secret"
	"github.com/leasehold/leasehold/internal/store"
	"github.com/leasehold/leasehold/internal/store/sqlite"
)

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "leasehold.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func fullExample(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../config/testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func parse(t *testing.T, y string) []config.Tenant {
	t.Helper()
	cfg, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg.Tenants
}

func apply(t *testing.T, st store.Store, y string) Report {
	t.Helper()
	rep, err := Apply(context.Background(), st, parse(t, y), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// dump reads every object of tenant acme (and the tenant itself).
func dump(t *testing.T, st store.Store) map[string]store.Object {
	t.Helper()
	out := map[string]store.Object{}
	err := st.View(context.Background(), func(tx store.Tx) error {
		clear(out)
		if o, err := tx.GetObject(context.Background(), "", domain.KindTenant, "acme"); err == nil {
			out["tenants/acme"] = *o
		} else if !errors.Is(err, domain.ErrNotFound) {
			return err
		}
		for _, kind := range domain.TenantKinds {
			list, err := tx.ListObjects(context.Background(), "acme", kind)
			if err != nil {
				return err
			}
			for _, o := range list {
				out[string(kind)+"/"+o.ID] = o
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func catalogVersion(t *testing.T, st store.Store) int64 {
	t.Helper()
	var v int64
	err := st.View(context.Background(), func(tx store.Tx) (err error) {
		v, err = tx.CatalogVersion(context.Background(), "acme")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func spec[T any](t *testing.T, objs map[string]store.Object, k string) T {
	t.Helper()
	o, ok := objs[k]
	if !ok {
		t.Fatalf("no object %s", k)
	}
	var v T
	if err := json.Unmarshal(o.Spec, &v); err != nil {
		t.Fatalf("%s: %v", k, err)
	}
	return v
}

func verify(t *testing.T, plain, phc string) bool {
	t.Helper()
	ok, err := secret.Verify(plain, phc)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return ok
}

func TestApplyTwiceChangesNothing(t *testing.T) {
	st := openStore(t)
	y := fullExample(t)

	rep := apply(t, st, y)
	if rep.Created != 8 || rep.Updated != 0 || rep.Unchanged != 0 || len(rep.Changes) != 8 {
		t.Fatalf("first apply: %+v", rep)
	}
	wantOrder := []string{
		"created tenant acme", "created acme/organizations/org-1", "created acme/users/alice",
		"created acme/clients/jim2-app", "created acme/clients/web-app", "created acme/products/PlatformService",
		"created acme/models/floating", "created acme/licenses/870f46a4-1faa-4847-955b-14ee5f74f3fe",
	}
	for i, ch := range rep.Changes {
		if ch.String() != wantOrder[i] {
			t.Errorf("change %d: %s, want %s", i, ch, wantOrder[i])
		}
	}

	first := dump(t, st)
	for k, o := range first {
		for _, plain := range []string{"alice-pw", "s3cret"} {
			if strings.Contains(string(o.Spec), plain) || strings.Contains(o.FileHash, plain) {
				t.Errorf("%s holds the plaintext %q", k, plain)
			}
		}
	}
	alice := spec[domain.User](t, first, "users/alice")
	if alice.Password != "" || !strings.HasPrefix(alice.PasswordHash, "$argon2id$") || !verify(t, "alice-pw", alice.PasswordHash) {
		t.Errorf("alice: %+v", alice)
	}
	if strings.Contains(string(first["users/alice"].Spec), `"password"`) {
		t.Errorf("stored user has a password field: %s", first["users/alice"].Spec)
	}
	jim := spec[domain.Client](t, first, "clients/jim2-app")
	if jim.ClientSecret != "" || !verify(t, "s3cret", jim.ClientSecretHash) || jim.Public() {
		t.Errorf("jim2-app: %+v", jim)
	}
	if web := spec[domain.Client](t, first, "clients/web-app"); !web.Public() {
		t.Errorf("web-app: %+v", web)
	}
	if m := spec[domain.LicenseModel](t, first, "models/floating"); m.Linger.D() != 2*time.Minute || !m.AllowRelease {
		t.Errorf("model: %+v", m)
	}

	// What was stored is what the rest of the server reads.
	snap, err := catalog.New(st).Get(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if snap.Tenant.Session.Item != "PlatformService" || len(snap.LicensesFor("AppFeature-XYZ")) != 1 || snap.Users["alice"] == nil {
		t.Errorf("catalog: %+v", snap)
	}

	version := catalogVersion(t, st)
	rep = apply(t, st, y)
	if rep.Created != 0 || rep.Updated != 0 || rep.Unchanged != 8 || len(rep.Changes) != 0 {
		t.Fatalf("second apply: %+v", rep)
	}
	if second := dump(t, st); !reflect.DeepEqual(first, second) {
		t.Errorf("second apply changed the store:\n%v\n%v", first, second)
	}
	if v := catalogVersion(t, st); v != version {
		t.Errorf("catalog version moved from %d to %d", version, v)
	}
}

func TestOnlyTheChangedObjectUpdates(t *testing.T) {
	st := openStore(t)
	y := fullExample(t)
	apply(t, st, y)
	before := dump(t, st)

	changed := strings.Replace(y, "linger: 2m", "linger: 0s", 1)
	rep := apply(t, st, changed)
	if rep.Updated != 1 || rep.Created != 0 || rep.Unchanged != 7 ||
		len(rep.Changes) != 1 || rep.Changes[0] != (Change{Tenant: "acme", Kind: domain.KindModel, ID: "floating", Action: Updated}) {
		t.Fatalf("report: %+v", rep)
	}
	after := dump(t, st)
	for k := range before {
		if k == "models/floating" {
			continue
		}
		if !reflect.DeepEqual(before[k], after[k]) {
			t.Errorf("%s changed", k)
		}
	}
	if m := spec[domain.LicenseModel](t, after, "models/floating"); m.Linger != 0 {
		t.Errorf("linger: %v", m.Linger)
	}
}

// adminWrite changes an object as the admin API does: FileHash is kept.
func adminWrite[T any](t *testing.T, st store.Store, kind domain.Kind, id string, change func(*T)) {
	t.Helper()
	ctx := context.Background()
	err := st.Update(ctx, func(tx store.Tx) error {
		o, err := tx.GetObject(ctx, "acme", kind, id)
		if err != nil {
			return err
		}
		var v T
		if err := json.Unmarshal(o.Spec, &v); err != nil {
			return err
		}
		change(&v)
		if o.Spec, err = json.Marshal(v); err != nil {
			return err
		}
		return tx.PutObject(ctx, *o)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAdminChangeSurvivesReapply(t *testing.T) {
	st := openStore(t)
	y := fullExample(t)
	apply(t, st, y)

	adminPHC, _ := secret.Hash("set-by-admin")
	adminWrite(t, st, domain.KindModel, "floating", func(m *domain.LicenseModel) { m.Linger = domain.Duration(5 * time.Minute) })
	adminWrite(t, st, domain.KindUser, "alice", func(u *domain.User) { u.PasswordHash = adminPHC })
	adminWrite(t, st, domain.KindClient, "jim2-app", func(c *domain.Client) { c.Enabled = false })
	before := dump(t, st)

	rep := apply(t, st, y)
	if rep.Unchanged != 8 || len(rep.Changes) != 0 {
		t.Fatalf("re-apply of an unchanged file: %+v", rep)
	}
	after := dump(t, st)
	if !reflect.DeepEqual(before, after) {
		t.Error("re-apply of an unchanged file reverted admin changes")
	}
	if m := spec[domain.LicenseModel](t, after, "models/floating"); m.Linger.D() != 5*time.Minute {
		t.Errorf("admin linger reverted: %v", m.Linger)
	}
	if u := spec[domain.User](t, after, "users/alice"); u.PasswordHash != adminPHC {
		t.Error("admin password reverted")
	}

	// Once the file changes an object, the file's definition wins for that object.
	y = strings.Replace(y, "linger: 2m", "linger: 3m", 1)
	rep = apply(t, st, y)
	if rep.Updated != 1 {
		t.Fatalf("report: %+v", rep)
	}
	after = dump(t, st)
	if m := spec[domain.LicenseModel](t, after, "models/floating"); m.Linger.D() != 3*time.Minute {
		t.Errorf("file linger not applied: %v", m.Linger)
	}
	if c := spec[domain.Client](t, after, "clients/jim2-app"); c.Enabled {
		t.Error("an unrelated admin change was reverted")
	}

	rep = apply(t, st, strings.Replace(y, "password: alice-pw", "password: alice-pw, enabled: false", 1))
	if rep.Updated != 1 {
		t.Fatalf("report: %+v", rep)
	}
	u := spec[domain.User](t, dump(t, st), "users/alice")
	if u.Enabled || !verify(t, "alice-pw", u.PasswordHash) {
		t.Errorf("file user not applied: %+v", u)
	}
}

func TestSecretChanges(t *testing.T) {
	st := openStore(t)
	y := fullExample(t)
	apply(t, st, y)
	first := dump(t, st)
	oldHash := spec[domain.User](t, first, "users/alice").PasswordHash

	// A new password in the file: re-hashed, nothing else touched.
	y = strings.Replace(y, "password: alice-pw", "password: new-pw", 1)
	rep := apply(t, st, y)
	if rep.Updated != 1 || rep.Changes[0].ID != "alice" {
		t.Fatalf("report: %+v", rep)
	}
	objs := dump(t, st)
	u := spec[domain.User](t, objs, "users/alice")
	if u.PasswordHash == oldHash || !verify(t, "new-pw", u.PasswordHash) || verify(t, "alice-pw", u.PasswordHash) {
		t.Errorf("password change not applied: %+v", u)
	}
	if objs["users/alice"].FileHash[:64] != first["users/alice"].FileHash[:64] {
		t.Error("the definition hash covers the plaintext")
	}
	if rep := apply(t, st, y); rep.Unchanged != 8 {
		t.Fatalf("re-apply: %+v", rep)
	}

	// Another field changes but not the password: the stored hash is kept as it is.
	y = strings.Replace(y, "organization: org-1}]", "organization: org-1, enabled: true}]", 1)
	if rep := apply(t, st, y); rep.Updated != 1 {
		t.Fatalf("report: %+v", rep)
	}
	if again := spec[domain.User](t, dump(t, st), "users/alice"); again.PasswordHash != u.PasswordHash {
		t.Error("an unchanged password was re-hashed")
	}

	// A client secret change.
	y = strings.Replace(y, "client_secret: s3cret", "client_secret: n3w", 1)
	if rep := apply(t, st, y); rep.Updated != 1 || rep.Changes[0].ID != "jim2-app" {
		t.Fatalf("report: %+v", rep)
	}
	if c := spec[domain.Client](t, dump(t, st), "clients/jim2-app"); !verify(t, "n3w", c.ClientSecretHash) {
		t.Error("client secret change not applied")
	}

	// From a plaintext password to a hash in the file, and to no password at all.
	phc, _ := secret.Hash("hashed-pw")
	y2 := strings.Replace(y, "password: new-pw", "password_hash: '"+phc+"'", 1)
	if rep := apply(t, st, y2); rep.Updated != 1 {
		t.Fatalf("report: %+v", rep)
	}
	objs = dump(t, st)
	if u := spec[domain.User](t, objs, "users/alice"); u.PasswordHash != phc || len(objs["users/alice"].FileHash) != 64 {
		t.Errorf("password_hash not applied: %+v %q", u, objs["users/alice"].FileHash)
	}
	y3 := strings.Replace(y, "password: new-pw, ", "", 1)
	if rep := apply(t, st, y3); rep.Updated != 1 {
		t.Fatalf("report: %+v", rep)
	}
	if u := spec[domain.User](t, dump(t, st), "users/alice"); u.PasswordHash != "" {
		t.Errorf("removed password still stored: %+v", u)
	}
	// And back to the plaintext: hashed again.
	if rep := apply(t, st, y); rep.Updated != 1 {
		t.Fatalf("report: %+v", rep)
	}
	if u := spec[domain.User](t, dump(t, st), "users/alice"); !verify(t, "new-pw", u.PasswordHash) {
		t.Errorf("password not restored: %+v", u)
	}
}

func TestObjectsNotInTheFileAreLeftAlone(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	// Objects written through the admin API (FileHash "") before the file names them.
	err := st.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutObject(ctx, store.Object{Tenant: "acme", Kind: domain.KindModel, ID: "admin-model", Spec: json.RawMessage(`{"name":"admin-model"}`)}); err != nil {
			return err
		}
		return tx.PutObject(ctx, store.Object{Tenant: "acme", Kind: domain.KindOrganization, ID: "org-1", Spec: json.RawMessage(`{"id":"org-1","name":"Old name"}`)})
	})
	if err != nil {
		t.Fatal(err)
	}
	rep := apply(t, st, fullExample(t))
	if rep.Created != 7 || rep.Updated != 1 {
		t.Fatalf("report: %+v", rep)
	}
	objs := dump(t, st)
	if _, ok := objs["models/admin-model"]; !ok {
		t.Error("an object not in the file was removed")
	}
	if o := spec[domain.Organization](t, objs, "organizations/org-1"); o.Name != "Acme Ltd" {
		t.Errorf("an object never applied from the file takes the file's definition: %+v", o)
	}
}

func TestDryRun(t *testing.T) {
	st := openStore(t)
	rep, err := Apply(context.Background(), st, parse(t, fullExample(t)), Options{DryRun: true})
	if err != nil || rep.Created != 8 {
		t.Fatalf("dry run: %+v %v", rep, err)
	}
	if objs := dump(t, st); len(objs) != 0 {
		t.Fatalf("dry run wrote %d objects", len(objs))
	}
}

func TestConcurrentApply(t *testing.T) {
	st := openStore(t)
	tenants := parse(t, fullExample(t))
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
	)
	for range 4 {
		wg.Go(func() {
			rep, err := Apply(context.Background(), st, tenants, Options{})
			if err != nil {
				t.Error(err)
				return
			}
			if rep.Created+rep.Updated+rep.Unchanged != 8 {
				t.Errorf("report: %+v", rep)
			}
			mu.Lock()
			created += rep.Created
			mu.Unlock()
		})
	}
	wg.Wait()
	if created != 8 {
		t.Errorf("%d objects reported created, want each of the 8 once", created)
	}
	objs := dump(t, st)
	if len(objs) != 8 {
		t.Fatalf("%d objects", len(objs))
	}
	if u := spec[domain.User](t, objs, "users/alice"); !verify(t, "alice-pw", u.PasswordHash) {
		t.Error("password")
	}
	if rep := apply(t, st, fullExample(t)); rep.Unchanged != 8 {
		t.Errorf("after the race: %+v", rep)
	}
}

func TestSeveralTenants(t *testing.T) {
	st := openStore(t)
	y := `
tenants:
  - name: acme
    products: [{name: P}]
  - name: beta
    products: [{name: P}]
`
	rep := apply(t, st, y)
	if rep.Created != 4 {
		t.Fatalf("report: %+v", rep)
	}
	if objs := dump(t, st); len(objs) != 2 {
		t.Errorf("acme: %v", objs)
	}
	// A tenant's definition change updates the tenant object only.
	rep = apply(t, st, strings.Replace(y, "name: beta", "name: beta\n    dialects: [jim2]", 1))
	if rep.Updated != 1 || rep.Changes[0] != (Change{Tenant: "beta", Kind: domain.KindTenant, ID: "beta", Action: Updated}) {
		t.Fatalf("report: %+v", rep)
	}
}
