package objects_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/apply"
	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/config"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/objects"
	"github.com/leasehold/leasehold/internal/secret"
	"github.com/leasehold/leasehold/internal/store"
	"github.com/leasehold/leasehold/internal/store/postgres"
	"github.com/leasehold/leasehold/internal/store/postgres/pgtest"
	"github.com/leasehold/leasehold/internal/store/sqlite"
)

const tenantFile = `
tenants:
  - name: acme
    default: true
    organizations: [{id: org-1}]
    users:
      - {username: alice, password: alice-pw, organization: org-1}
      - {username: bob, password: bob-pw, organization: org-1}
    clients:
      - {client_id: app, client_secret: app-secret, user: alice, scopes: [all]}
    products: [{name: PlatformService, items: [AppFeature-XYZ]}]
    models: [{name: floating, anchors: [user]}]
    licenses: [{id: lic-1, product: PlatformService, model: floating, seats: 2, owner: {organization: org-1}}]
  - name: other
    organizations: [{id: org-2}]
`

// backends runs fn on SQLite and, when LEASEHOLD_TEST_POSTGRES is set, on PostgreSQL.
func backends(t *testing.T, fn func(t *testing.T, st store.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		st, err := sqlite.Open(filepath.Join(t.TempDir(), "leasehold.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fn(t, st)
	})
	t.Run("postgres", func(t *testing.T) {
		st, err := postgres.Open(context.Background(), pgtest.FreshDatabase(t, "leasehold_objects_"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fn(t, st)
	})
}

func applyFile(t *testing.T, st store.Store, file string) apply.Report {
	t.Helper()
	cfg, err := config.Parse([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := apply.Apply(context.Background(), st, cfg.Tenants, apply.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func get[T any](t *testing.T, st store.Store, kind domain.Kind, id string) T {
	t.Helper()
	var v T
	err := st.View(context.Background(), func(tx store.Tx) error {
		o, err := tx.GetObject(context.Background(), "acme", kind, id)
		if err != nil {
			return err
		}
		return json.Unmarshal(o.Spec, &v)
	})
	if err != nil {
		t.Fatalf("%s %s: %v", kind, id, err)
	}
	return v
}

// makeLoginToken stores a login token of user, as POST /session/login-token does.
func makeLoginToken(t *testing.T, st store.Store, user string) string {
	t.Helper()
	hash := fmt.Sprintf("lt-%s-%d", user, time.Now().UnixNano())
	err := st.Update(context.Background(), func(tx store.Tx) error {
		return tx.InsertToken(context.Background(), &domain.Token{Hash: hash, Tenant: "acme", Kind: domain.TokenLogin, User: user,
			CreatedAt: tx.Now(), ExpiresAt: tx.Now().Add(time.Hour), Data: []byte(`{}`)})
	})
	if err != nil {
		t.Fatal(err)
	}
	return hash
}

func tokenLives(t *testing.T, st store.Store, hash string) bool {
	t.Helper()
	err := st.View(context.Background(), func(tx store.Tx) error {
		_, err := tx.GetToken(context.Background(), hash)
		return err
	})
	if err != nil && !errors.Is(err, domain.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// TestPasswordChangeRevokesLoginTokens: whichever path changes a user's password (a file
// applied on start or by `admin apply`, which both run apply.Apply; the admin API's PUT or
// PATCH), the user's login tokens go in the same transaction; a change that leaves the
// password alone, or a file re-applied unchanged, keeps them.
func TestPasswordChangeRevokesLoginTokens(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		w := objects.NewWriter(st, nil, false)
		applyFile(t, st, tenantFile)

		steps := []struct {
			what   string
			change func(t *testing.T)
			revoke bool
		}{
			{"file re-applied unchanged", func(t *testing.T) { applyFile(t, st, tenantFile) }, false},
			{"file changes another field", func(t *testing.T) {
				applyFile(t, st, strings.Replace(tenantFile, "password: alice-pw, organization", "password: alice-pw, enabled: true, organization", 1))
			}, false},
			{"file changes the password", func(t *testing.T) {
				applyFile(t, st, strings.Replace(tenantFile, "password: alice-pw", "password: file-pw", 1))
			}, true},
			{"PATCH of another field", func(t *testing.T) {
				if _, _, err := w.Write(ctx, objects.Patch, "acme", domain.KindUser, "alice", []byte(`{"enabled":true}`)); err != nil {
					t.Fatal(err)
				}
			}, false},
			{"PATCH of the password", func(t *testing.T) {
				if _, _, err := w.Write(ctx, objects.Patch, "acme", domain.KindUser, "alice", []byte(`{"password":"patched-pw"}`)); err != nil {
					t.Fatal(err)
				}
			}, true},
			{"PUT with a new password", func(t *testing.T) {
				body := `{"username":"alice","password":"put-pw","organization":"org-1"}`
				if _, _, err := w.Write(ctx, objects.Replace, "acme", domain.KindUser, "alice", []byte(body)); err != nil {
					t.Fatal(err)
				}
			}, true},
			// The file's password verifies against the hash it last applied, yet the stored
			// one is the admin's: re-applying a changed file puts the file's back.
			{"file changes alice again, password as last applied", func(t *testing.T) {
				applyFile(t, st, strings.Replace(tenantFile, "password: alice-pw, organization", "password: file-pw, enabled: true, organization", 1))
			}, true},
			{"user removed", func(t *testing.T) {
				if err := w.Delete(ctx, "acme", domain.KindUser, "bob"); err != nil {
					t.Fatal(err)
				}
			}, false},
		}
		for _, s := range steps {
			alice, bob := makeLoginToken(t, st, "alice"), makeLoginToken(t, st, "bob")
			s.change(t)
			if got := tokenLives(t, st, alice); got == s.revoke {
				t.Errorf("%s: alice's login token lives = %v, want %v", s.what, got, !s.revoke)
			}
			if wantBob := s.what != "user removed"; tokenLives(t, st, bob) != wantBob {
				t.Errorf("%s: bob's login token lives = %v, want %v", s.what, !wantBob, wantBob)
			}
		}
		if u := get[domain.User](t, st, domain.KindUser, "alice"); !verify(t, "file-pw", u.PasswordHash) {
			t.Error("alice's password is not the file's")
		}
	})
}

func verify(t *testing.T, plain, phc string) bool {
	t.Helper()
	ok, err := secret.Verify(plain, phc)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestConcurrentPatches: PATCHes of different fields of one object, made at once, all
// survive: each merges into the object as stored when it holds the tenant's catalog.
func TestConcurrentPatches(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		w := objects.NewWriter(st, nil, false)
		applyFile(t, st, tenantFile)

		const rounds = 5
		for round := range rounds {
			enabled := round%2 == 1
			scopes := []string{"all", fmt.Sprintf("round-%d", round)}
			patches := []string{
				fmt.Sprintf(`{"enabled":%v}`, enabled),
				fmt.Sprintf(`{"scopes":["%s","%s"]}`, scopes[0], scopes[1]),
			}
			run(t, len(patches), func(i int) error {
				_, _, err := w.Write(ctx, objects.Patch, "acme", domain.KindClient, "app", []byte(patches[i]))
				return err
			})
			c := get[domain.Client](t, st, domain.KindClient, "app")
			if c.Enabled != enabled || strings.Join(c.Scopes, " ") != strings.Join(scopes, " ") {
				t.Fatalf("round %d: client enabled %v scopes %v, want %v %v", round, c.Enabled, c.Scopes, enabled, scopes)
			}
		}

		// Many at once: one property each.
		const n = 16
		run(t, n, func(i int) error {
			body := fmt.Sprintf(`{"properties":{"p%d":"v%d"}}`, i, i)
			_, _, err := w.Write(ctx, objects.Patch, "acme", domain.KindLicense, "lic-1", []byte(body))
			return err
		})
		l := get[domain.License](t, st, domain.KindLicense, "lic-1")
		for i := range n {
			if l.Properties[fmt.Sprintf("p%d", i)] != fmt.Sprintf("v%d", i) {
				t.Errorf("property p%d lost: %v", i, l.Properties)
			}
		}
		if l.Seats != 2 {
			t.Errorf("seats = %d, want the file's 2", l.Seats)
		}
	})
}

// TestFileValidatedWithAdminObjects: a file is validated with the objects only the admin
// API made, and a refused tenant is left as it was.
func TestFileValidatedWithAdminObjects(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "leasehold.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	applyFile(t, st, tenantFile)
	license := `{"id":"lic-x","items":["AppFeature-XYZ"],"model":"floating","owner":{"user":"alice"}}`
	if _, _, err := objects.NewWriter(st, nil, false).Write(ctx, objects.Create, "acme", domain.KindLicense, "", []byte(license)); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(strings.Replace(tenantFile, "items: [AppFeature-XYZ]", "items: [AppFeature-ABC]", 1)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = apply.Apply(ctx, st, cfg.Tenants, apply.Options{})
	if err == nil || !strings.Contains(err.Error(), `unknown item "AppFeature-XYZ"`) {
		t.Fatalf("a file dropping an item an admin-made license names: %v", err)
	}
	if p := get[domain.Product](t, st, domain.KindProduct, "PlatformService"); strings.Join(p.Items, ",") != "AppFeature-XYZ" {
		t.Errorf("the refused file was written: %v", p.Items)
	}
}

// TestStaleSnapshot: a cached snapshot stands for the stored tenant only while nothing has
// been written since it was taken; otherwise validation reads the tenant in the
// transaction, and sees what the snapshot does not.
func TestStaleSnapshot(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		applyFile(t, st, strings.Replace(tenantFile, "models: [{name: floating, anchors: [user]}]",
			"models: [{name: floating, anchors: [user]}, {name: spare, anchors: [user]}]", 1))
		cat := catalog.New(st)
		cached := objects.NewWriter(st, cat, false)
		if _, err := cat.Get(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		// Another process removes the model; this one's snapshot still holds it.
		if err := objects.NewWriter(st, nil, false).Delete(ctx, "acme", domain.KindModel, "spare"); err != nil {
			t.Fatal(err)
		}
		license := `{"id":"lic-2","product":"PlatformService","model":"spare","owner":{"organization":"org-1"}}`
		_, _, err := cached.Write(ctx, objects.Create, "acme", domain.KindLicense, "", []byte(license))
		if e, ok := errors.AsType[*objects.Error](err); !ok || e.Refusal != objects.Invalid || !strings.Contains(e.Msg, "spare") {
			t.Fatalf("a license naming a model removed since the snapshot: %v", err)
		}
		// With a current snapshot, a valid change passes, and an invalid one is refused.
		cat.Invalidate("acme")
		if _, _, err := cached.Write(ctx, objects.Create, "acme", domain.KindLicense, "", []byte(strings.Replace(license, "spare", "floating", 1))); err != nil {
			t.Fatal(err)
		}
		cat.Invalidate("acme")
		_, _, err = cached.Write(ctx, objects.Patch, "acme", domain.KindLicense, "lic-2", []byte(`{"model":"spare"}`))
		if e, ok := errors.AsType[*objects.Error](err); !ok || e.Refusal != objects.Invalid {
			t.Fatalf("a license patched to name a missing model: %v", err)
		}
	})
}

// run calls fn(0..n-1) on n goroutines released together.
func run(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// TestRefusals: each refused change says why, and leaves the store as it was.
func TestRefusals(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "leasehold.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	w := objects.NewWriter(st, nil, false)
	applyFile(t, st, tenantFile)
	version := func() int64 {
		var v int64
		_ = st.View(ctx, func(tx store.Tx) (err error) { v, err = tx.CatalogVersion(ctx, "acme"); return err })
		return v
	}

	write := func(op objects.Op, kind domain.Kind, id, body string) func() error {
		return func() error { _, _, err := w.Write(ctx, op, "acme", kind, id, []byte(body)); return err }
	}
	cases := []struct {
		what    string
		do      func() error
		refusal objects.Refusal
		msg     string
	}{
		{"no such tenant", func() error {
			_, _, err := w.Write(ctx, objects.Create, "nope", domain.KindOrganization, "", []byte(`{"id":"o"}`))
			return err
		}, objects.NotFound, "no such tenant: nope"},
		{"patch of a missing object", write(objects.Patch, domain.KindUser, "zed", `{"enabled":false}`), objects.NotFound, "no such users: zed"},
		{"create of an existing object", write(objects.Create, domain.KindUser, "", `{"username":"alice","password":"x"}`), objects.Conflict, "users alice exists"},
		{"renaming", write(objects.Replace, domain.KindOrganization, "org-1", `{"id":"org-9"}`), objects.BadRequest, "the body names another object than the path"},
		{"patch that is no object", write(objects.Patch, domain.KindUser, "alice", `[1]`), objects.BadRequest, "a PATCH body is a JSON object"},
		{"unknown field", write(objects.Patch, domain.KindUser, "alice", `{"colour":"red"}`), objects.Invalid, "users: "},
		{"password and hash", write(objects.Patch, domain.KindUser, "alice", `{"password":"a","password_hash":"$argon2id$x"}`), objects.Invalid, "give password or password_hash, not both"},
		{"dangling reference", write(objects.Create, domain.KindLicense, "", `{"id":"l2","product":"PlatformService","model":"nope","owner":{"user":"alice"}}`), objects.Invalid, "model"},
		{"removal of a model in use", func() error { return w.Delete(ctx, "acme", domain.KindModel, "floating") }, objects.InUse, "floating"},
		{"removal of a missing object", func() error { return w.Delete(ctx, "acme", domain.KindModel, "gone") }, objects.NotFound, "no such models: gone"},
		{"second default tenant", func() error {
			_, err := w.WriteTenant(ctx, objects.Patch, "other", []byte(`{"default":true}`))
			return err
		}, objects.Conflict, "tenant acme is already the default"},
		{"renamed tenant", func() error {
			_, err := w.WriteTenant(ctx, objects.Replace, "other", []byte(`{"name":"renamed"}`))
			return err
		}, objects.BadRequest, "a tenant cannot be renamed"},
		{"tenant exists", func() error {
			_, err := w.WriteTenant(ctx, objects.Create, "", []byte(`{"name":"other"}`))
			return err
		}, objects.Conflict, "tenant other exists"},
	}
	for _, c := range cases {
		before := version()
		err := c.do()
		e, ok := errors.AsType[*objects.Error](err)
		if !ok || e.Refusal != c.refusal || !strings.Contains(e.Msg, c.msg) {
			t.Errorf("%s: %v, want refusal %d with %q", c.what, err, c.refusal, c.msg)
		}
		if after := version(); after != before {
			t.Errorf("%s: the catalog version moved (%d -> %d): something was written", c.what, before, after)
		}
	}
}
