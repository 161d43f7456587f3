package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// objectsConfig's PASSWORD is replaced by each test.
const objectsConfig = `
listen: "{{LISTEN}}"
public_url: "{{URL}}"
store: "{{STORE}}"
admin_token: test-admin
documents: "{{DIR}}/documents"
tenants:
  - name: pw
    default: true
    session: {item: PlatformService}
    organizations: [{id: org-1}]
    users: [{username: alice, password: PASSWORD, organization: org-1}]
    clients: [{client_id: app, client_secret: app-secret, user: alice}]
    products: [{name: PlatformService}]
    models: [{name: floating, anchors: [user]}]
    licenses: [{id: lic-1, product: PlatformService, model: floating, seats: 5, owner: {organization: org-1}}]
`

// eachStore runs fn on a fresh SQLite store and, with LEASEHOLD_TEST_POSTGRES, on a fresh
// PostgreSQL database: dir and dsn are for startAt.
func eachStore(t *testing.T, fn func(t *testing.T, dir, dsn string)) {
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		fn(t, dir, "sqlite://"+filepath.Join(dir, "leasehold.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := freshPostgres(t)
		fn(t, t.TempDir(), dsn)
	})
}

// TestPasswordChangeEveryPath: a login token made before a password change fails after it,
// whichever way the password changed: the configuration file on start, `admin apply`
// (POST /admin/v1/apply), the admin API's PUT and PATCH. A restart with the file unchanged
// changes no password and keeps the tokens.
func TestPasswordChangeEveryPath(t *testing.T) {
	eachStore(t, func(t *testing.T, dir, dsn string) {
		file := func(pw string) string { return strings.Replace(objectsConfig, "PASSWORD", pw, 1) }
		ts := startAt(t, file("pw-1"), dir, dsn)
		password := "pw-1"

		loginToken := func() string {
			t.Helper()
			tok, _, _ := sessGrant(t, sessLogin(t, ts.URL, "alice", password, nil, nil))
			r := do(t, http.MethodPost, ts.URL+"/session/login-token", sessMerge(sessBearer(tok), map[string]string{"Content-Type": "application/json"}),
				`{"Usage":"Multi"}`)
			lt, _ := sessWant(t, "login-token", r, http.StatusOK)["token"].(string)
			// It works before the change (Multi: it works again after this).
			sessGrant(t, postForm(t, ts.URL+"/session/token-login", url.Values{"token": {lt}}, nil))
			return lt
		}
		tokenLogin := func(lt string) int {
			return postForm(t, ts.URL+"/session/token-login", url.Values{"token": {lt}}, nil).Status
		}
		admin := func(method, path, body string) {
			t.Helper()
			if r := adminDo(t, method, ts.URL+"/admin/v1"+path, body); r.Status != http.StatusOK {
				t.Fatalf("%s %s: %d %s", method, path, r.Status, r.Body)
			}
		}
		restart := func(pw string) {
			t.Helper()
			ts.stop()
			ts = startAt(t, file(pw), dir, dsn)
		}

		steps := []struct {
			what   string
			change func()
			revoke bool
		}{
			{"restart, file unchanged", func() { restart("pw-1") }, false},
			{"restart, file's password changed", func() { restart("pw-2"); password = "pw-2" }, true},
			{"admin apply, password changed", func() {
				admin(http.MethodPost, "/apply", "tenants:"+strings.SplitN(file("pw-3"), "tenants:", 2)[1])
				password = "pw-3"
			}, true},
			{"admin PUT with a new password", func() {
				admin(http.MethodPut, "/tenants/pw/users/alice", `{"username":"alice","password":"pw-4","organization":"org-1"}`)
				password = "pw-4"
			}, true},
			{"admin PATCH of another field", func() { admin(http.MethodPatch, "/tenants/pw/users/alice", `{"enabled":true}`) }, false},
			{"admin PATCH of the password", func() {
				admin(http.MethodPatch, "/tenants/pw/users/alice", `{"password":"pw-5"}`)
				password = "pw-5"
			}, true},
			// The admin's password survives a restart with the file unchanged (SPEC §2).
			{"restart, file unchanged since pw-3", func() { restart("pw-3") }, false},
		}
		for _, s := range steps {
			lt := loginToken()
			s.change()
			want := http.StatusOK
			if s.revoke {
				want = http.StatusUnauthorized
			}
			if got := tokenLogin(lt); got != want {
				t.Fatalf("%s: token-login with a token made before = %d, want %d", s.what, got, want)
			}
		}
		sessGrant(t, sessLogin(t, ts.URL, "alice", "pw-5", nil, nil))
	})
}

// TestConcurrentAdminPatches: PATCHes of different fields of one object, sent at once,
// all take effect (each is a compare-and-swap on the object as stored).
func TestConcurrentAdminPatches(t *testing.T) {
	eachStore(t, func(t *testing.T, dir, dsn string) {
		ts := startAt(t, strings.Replace(objectsConfig, "PASSWORD", "pw", 1), dir, dsn)
		A := ts.URL + "/admin/v1/tenants/pw"
		patch := func(path string, bodies ...string) {
			t.Helper()
			res := make([]response, len(bodies))
			var wg sync.WaitGroup
			for i, b := range bodies {
				wg.Go(func() { res[i] = adminDo(t, http.MethodPatch, A+path, b) })
			}
			wg.Wait()
			for i, r := range res {
				if r.Status != http.StatusOK {
					t.Fatalf("PATCH %s %s: %d %s", path, bodies[i], r.Status, r.Body)
				}
			}
		}
		for round := range 4 {
			enabled := round%2 == 1
			scope := fmt.Sprintf("round-%d", round)
			patch("/clients/app", fmt.Sprintf(`{"enabled":%v}`, enabled), fmt.Sprintf(`{"scopes":["all","%s"]}`, scope))
			r := adminDo(t, http.MethodGet, A+"/clients/app", "").json(t)
			if r["enabled"] != enabled || fmt.Sprint(r["scopes"]) != fmt.Sprintf("[all %s]", scope) {
				t.Fatalf("round %d: client %v, want enabled %v and scope %s", round, r, enabled, scope)
			}
		}
		var bodies []string
		for i := range 8 {
			bodies = append(bodies, fmt.Sprintf(`{"properties":{"p%d":"v"}}`, i))
		}
		patch("/licenses/lic-1", bodies...)
		props, _ := adminDo(t, http.MethodGet, A+"/licenses/lic-1", "").json(t)["properties"].(map[string]any)
		if len(props) != len(bodies) {
			t.Fatalf("license properties after %d concurrent PATCHes: %v", len(bodies), props)
		}
	})
}

// TestAdminObjectRefusals: each refused change has its status and error code.
func TestAdminObjectRefusals(t *testing.T) {
	ts := start(t, strings.Replace(objectsConfig, "PASSWORD", "pw", 1))
	A := ts.URL + "/admin/v1/tenants"
	cases := []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"PATCH", "/pw/users/nobody", `{"enabled":false}`, http.StatusNotFound, "not_found"},
		{"PATCH", "/nope/users/alice", `{"enabled":false}`, http.StatusNotFound, "not_found"},
		{"POST", "/pw/users", `{"username":"alice","password":"x"}`, http.StatusConflict, "conflict"},
		{"PUT", "/pw/organizations/org-1", `{"id":"org-2"}`, http.StatusBadRequest, "invalid_request"},
		{"PATCH", "/pw/users/alice", `"x"`, http.StatusBadRequest, "invalid_request"},
		{"PATCH", "/pw/users/alice", `{"colour":"red"}`, http.StatusBadRequest, "invalid_object"},
		{"POST", "/pw/licenses", `{"id":"l2","product":"PlatformService","model":"nope","owner":{"user":"alice"}}`, http.StatusBadRequest, "invalid_object"},
		{"DELETE", "/pw/models/floating", ``, http.StatusConflict, "in_use"},
		{"DELETE", "/pw/models/gone", ``, http.StatusNotFound, "not_found"},
		{"POST", "", `{"name":"pw"}`, http.StatusConflict, "conflict"},
		{"POST", "", `{"name":"second","default":true}`, http.StatusConflict, "conflict"},
		{"PATCH", "/pw", `{"name":"renamed"}`, http.StatusBadRequest, "invalid_request"},
		{"POST", "", `{"name":"Bad Name"}`, http.StatusBadRequest, "invalid_object"},
	}
	for _, c := range cases {
		r := adminDo(t, c.method, A+c.path, c.body)
		if r.Status != c.status || r.json(t)["error"] != c.code {
			t.Errorf("%s %s %s: %d %s, want %d %s", c.method, c.path, c.body, r.Status, r.Body, c.status, c.code)
		}
	}
}
