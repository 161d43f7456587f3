package e2e

import (
	"bytes"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/secret"
)

// securityConfig: one tenant whose 1-seat license is held through the session item, a
// confidential authorization-code client with a licensed and a free (read-only) scope,
// and a client_credentials client that acts as alice.
const securityConfig = `
listen: "{{LISTEN}}"
public_url: "{{URL}}"
store: "{{STORE}}"
admin_token: test-admin
trusted_proxies: [127.0.0.1/32]
documents: "{{DIR}}/documents"
tenants:
  - name: sec
    default: true
    dialects: [docuware]
    session: {item: PlatformService, free_scopes: [Therefore_Read, view]}
    organizations: [{id: org-s}]
    users: [{username: alice, password: alice-pw, organization: org-s}]
    clients:
      - client_id: tf-app
        client_secret: tf-secret
        redirect_uris: [https://oauth2testclient.example/]
        grant_types: [authorization_code, refresh_token]
        scopes: [Therefore_User, Therefore_Read, offline_access]
      - client_id: cc-alice
        client_secret: cc-secret
        user: alice
        grant_types: [client_credentials]
        scopes: [all, view]
    products: [{name: PlatformService, items: [AppFeature-XYZ]}]
    models: [{name: seat, anchors: [user, hw], linger: 0s}]
    licenses: [{id: lic-s, product: PlatformService, model: seat, seats: 1, owner: {organization: org-s}}]
`

func mintLoginToken(t *testing.T, base string, auth map[string]string) response {
	t.Helper()
	return do(t, http.MethodPost, base+"/session/login-token",
		sessMerge(auth, map[string]string{"Content-Type": "application/json"}), `{"Usage":"Multi"}`)
}

// TestSecurityLoginTokenFromReadOnlyToken: a login token made with a read-only
// third-party token (scope Therefore_Read, which /authz refuses) opens a session with no
// more than that scope: no seat, still refused by /authz, and its cookie is not taken by
// /oauth2/authorize as the user's own sign-in.
func TestSecurityLoginTokenFromReadOnlyToken(t *testing.T) {
	ts := start(t, securityConfig)
	base := ts.URL
	access, _, body := oaTokens(t, oaExchange(t, base, "sec", oaCode(t, nil, base, "sec", "alice", "alice-pw", "Therefore_Read")))
	if body["scope"] != "Therefore_Read" {
		t.Fatalf("scope: %v", body)
	}
	if m := get(t, base+"/authz/.json?AppFeature-XYZ", access).json(t); m["AppFeature-XYZ_errorKey"] != "notAuthorized" {
		t.Fatalf("read-only token at /authz: %v", m)
	}
	tok, _ := sessWant(t, "mint", mintLoginToken(t, base, sessBearer(access)), http.StatusOK)["token"].(string)
	if tok == "" {
		t.Fatal("no login token")
	}
	r := do(t, http.MethodPost, base+"/session/token-login", map[string]string{"Content-Type": "application/json"}, `{"token":"`+tok+`"}`)
	session, _, cookies := sessGrant(t, r)
	if m := get(t, base+"/authz/.json?AppFeature-XYZ", session).json(t); m["AppFeature-XYZ_errorKey"] != "notAuthorized" {
		t.Fatalf("the token-login session is licensed: %v", m)
	}
	if n := len(adminLeases(t, base, "sec")); n != 0 {
		t.Fatalf("the read-only token's login token took a seat: %d leases", n)
	}
	// Its cookie does not sign alice in at the authorization endpoint.
	b := oaNewBrowser(t)
	u, _ := url.Parse(base)
	b.client.Jar.SetCookies(u, []*http.Cookie{cookies["lh_session"]})
	page := b.get(oaAuthorizeURL(base, "/oauth2/authorize?tenant=sec", map[string]string{
		"client_id": "tf-app", "redirect_uri": oaTFRedirect, "scope": "Therefore_User", "state": "s1",
	}))
	if page.Status == http.StatusSeeOther || !strings.Contains(page.Body, "password") {
		t.Fatalf("authorize took the token-login cookie as alice's sign-in: %d %s", page.Status, page.Header.Get("Location"))
	}
}

// TestSecurityLoginTokenNotFromClientCredentials: a client acting as a user cannot make
// that user a login token (it would become the user's interactive cookie), neither on the
// session API nor through DocuWare's LoginToken; a password session of the same user can.
func TestSecurityLoginTokenNotFromClientCredentials(t *testing.T) {
	ts := start(t, securityConfig)
	base := ts.URL
	cc := ccToken(t, base, "cc-alice", "cc-secret", "all")
	if m := sessWant(t, "client_credentials mint", mintLoginToken(t, base, sessBearer(cc)), http.StatusForbidden); m["error"] != "forbidden" {
		t.Fatalf("client_credentials mint: %v", m)
	}
	r := do(t, http.MethodPost, base+"/DocuWare/Platform/Organizations/LoginToken",
		map[string]string{"Authorization": "Bearer " + cc, "Content-Type": "application/json"}, `{"Usage":"Multi"}`)
	if r.Status != http.StatusForbidden {
		t.Fatalf("DocuWare LoginToken with a client_credentials token: %d %s", r.Status, r.Body)
	}
	// Ending the client's session frees the seat (no linger) for alice's own login.
	sessWant(t, "logoff", do(t, http.MethodPost, base+"/oauth2/logoff", sessBearer(cc), ""), http.StatusOK)
	tok, _, _ := sessGrant(t, sessLogin(t, base, "alice", "alice-pw", nil, nil))
	sessWant(t, "password mint", mintLoginToken(t, base, sessBearer(tok)), http.StatusOK)
}

func from(addr string, h ...map[string]string) map[string]string {
	return sessMerge(append(h, map[string]string{"X-Forwarded-For": addr})...)
}

func wantRetryAfter(t *testing.T, what string, r response) {
	t.Helper()
	if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("%s: Retry-After %q", what, r.Header.Get("Retry-After"))
	}
}

// TestSecurityLoginLockoutIsPerAddress: failures for a user from one address throttle that
// user there, never from an address that has not failed (lockout as a weapon).
func TestSecurityLoginLockoutIsPerAddress(t *testing.T) {
	ts := start(t, securityConfig)
	base := ts.URL
	for i := range 5 {
		sessWant(t, "guess "+strconv.Itoa(i), sessLogin(t, base, "alice", "wrong", from("203.0.113.1"), nil), http.StatusUnauthorized)
	}
	r := sessLogin(t, base, "alice", "alice-pw", from("203.0.113.1"), nil)
	sessWant(t, "throttled at the guessing address", r, http.StatusTooManyRequests)
	wantRetryAfter(t, "login", r)
	sessWant(t, "alice from her own address", sessLogin(t, base, "alice", "alice-pw", from("198.51.100.20"), nil), http.StatusOK)
	// DocuWare's Logon shares the rule.
	dw := func(addr, pw string) response {
		return postForm(t, base+"/DocuWare/Platform/Account/Logon", url.Values{"UserName": {"alice"}, "Password": {pw}}, from(addr))
	}
	if r := dw("203.0.113.1", "alice-pw"); r.Status != http.StatusTooManyRequests {
		t.Fatalf("DocuWare Logon from the guessing address: %d", r.Status)
	}
}

// TestSecurityClientSecretThrottled: wrong client secrets are throttled per (client,
// address): after a few, even the right secret waits there; the same client from another
// address, and another client from the guessing address, are not held back.
func TestSecurityClientSecretThrottled(t *testing.T) {
	ts := start(t, securityConfig)
	base := ts.URL
	grant := func(id, secretValue, addr string) response {
		return postForm(t, base+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"view"}},
			from(addr, map[string]string{"Authorization": oaBasic(id, secretValue)}))
	}
	for i := range 5 {
		oaWantError(t, grant("cc-alice", "wrong-"+strconv.Itoa(i), "203.0.113.5"), http.StatusUnauthorized, "invalid_client")
	}
	r := grant("cc-alice", "cc-secret", "203.0.113.5")
	oaWantError(t, r, http.StatusTooManyRequests, "too_many_attempts")
	wantRetryAfter(t, "token", r)
	if r := grant("cc-alice", "cc-secret", "198.51.100.30"); r.Status != http.StatusOK {
		t.Fatalf("the client from another address: %d %s", r.Status, r.Body)
	}
	if r := grant("tf-app", "tf-secret", "203.0.113.5"); r.Status == http.StatusTooManyRequests {
		t.Fatalf("another client from the guessing address: %d %s", r.Status, r.Body)
	}
	// Unknown client ids are refused like a wrong secret.
	oaWantError(t, grant("no-such-client", "x", "203.0.113.6"), http.StatusUnauthorized, "invalid_client")
}

// TestSecurityAdminTokenThrottled: wrong admin tokens are throttled per address.
func TestSecurityAdminTokenThrottled(t *testing.T) {
	ts := start(t, securityConfig)
	base := ts.URL
	admin := func(tok, addr string) response {
		return do(t, http.MethodGet, base+"/admin/v1/tenants", from(addr, map[string]string{"Authorization": "Bearer " + tok}), "")
	}
	for i := range 10 {
		if r := admin("guess-"+strconv.Itoa(i), "203.0.113.9"); r.Status != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, r.Status)
		}
	}
	r := admin("test-admin", "203.0.113.9")
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("after 10 wrong admin tokens: %d %s", r.Status, r.Body)
	}
	wantRetryAfter(t, "admin", r)
	if r := admin("test-admin", "198.51.100.40"); r.Status != http.StatusOK {
		t.Fatalf("the admin from another address: %d", r.Status)
	}
}

// TestSecurityAdminTokenHash: a configuration may hold the admin token's hash instead.
func TestSecurityAdminTokenHash(t *testing.T) {
	const token = "an-admin-token-of-thirty-two-chars"
	phc, err := secret.Hash(token)
	if err != nil {
		t.Fatal(err)
	}
	ts := start(t, strings.Replace(securityConfig, "admin_token: test-admin", "admin_token_hash: '"+phc+"'", 1))
	for i := range 2 { // the second answer comes from the verification cache
		if r := get(t, ts.URL+"/admin/v1/tenants", token); r.Status != http.StatusOK {
			t.Fatalf("right token (%d): %d %s", i, r.Status, r.Body)
		}
	}
	if r := get(t, ts.URL+"/admin/v1/tenants", "test-admin"); r.Status != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", r.Status)
	}
}

// TestSecurityLoginCSRF: a login form posted from another site is refused (it would sign
// the victim in to the attacker's account) on the session API and DocuWare's Logon and
// TokenLogOn; the same login from the same site, or from an API client, is not.
func TestSecurityLoginCSRF(t *testing.T) {
	ts := start(t, securityConfig)
	base := ts.URL
	form := url.Values{"username": {"alice"}, "password": {"alice-pw"}}
	dwForm := url.Values{"UserName": {"alice"}, "Password": {"alice-pw"}}
	for name, h := range map[string]map[string]string{
		"sec-fetch-site": {"Sec-Fetch-Site": "cross-site"},
		"foreign origin": {"Origin": "https://evil.example"},
	} {
		for path, f := range map[string]url.Values{
			"/session/login": form, "/DocuWare/Platform/Account/Logon": dwForm,
			"/session/token-login": {"token": {"x"}}, "/DocuWare/Platform/Account/TokenLogOn": {"Token": {"x"}},
		} {
			r := postForm(t, base+path, f, h)
			if m := sessWant(t, name+" "+path, r, http.StatusForbidden); m["error"] != "cross_site_request" {
				t.Fatalf("%s %s: %v", name, path, m)
			}
			if len(r.Header.Values("Set-Cookie")) != 0 {
				t.Fatalf("%s %s set cookies: %v", name, path, r.Header.Values("Set-Cookie"))
			}
		}
	}
	tok, _ := sessWant(t, "same-origin form", postForm(t, base+"/session/login", form, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": base}), http.StatusOK)["token"].(string)
	sessWant(t, "logout", do(t, http.MethodPost, base+"/session/logout", sessBearer(tok), ""), http.StatusOK)
	sessWant(t, "API client", sessLogin(t, base, "alice", "alice-pw", nil, nil), http.StatusOK)
}

// TestSecurityMetricsProtected: /metrics (every tenant's licenses and their use) answers
// only to metrics_token or the admin token.
func TestSecurityMetricsProtected(t *testing.T) {
	ts := start(t, strings.Replace(securityConfig, "admin_token: test-admin", "admin_token: test-admin\nmetrics_token: scrape-me", 1))
	if r := get(t, ts.URL+"/metrics", ""); r.Status != http.StatusUnauthorized || strings.Contains(r.Body, "lic-s") {
		t.Fatalf("anonymous /metrics: %d", r.Status)
	}
	if r := get(t, ts.URL+"/metrics", "not-it"); r.Status != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", r.Status)
	}
	for _, tok := range []string{"scrape-me", "test-admin"} {
		if r := get(t, ts.URL+"/metrics", tok); r.Status != http.StatusOK || !strings.Contains(r.Body, "leasehold_") {
			t.Fatalf("/metrics with %s: %d", tok, r.Status)
		}
	}
	// Without either token configured, /metrics is off.
	off := start(t, strings.Replace(securityConfig, "admin_token: test-admin\n", "", 1))
	if r := get(t, off.URL+"/metrics", "test-admin"); r.Status != http.StatusForbidden {
		t.Fatalf("/metrics with no token configured: %d", r.Status)
	}
}

// isolationConfig: two tenants with the same user, client and item names, different
// secrets and licenses.
const isolationConfig = `
listen: "{{LISTEN}}"
public_url: "{{URL}}"
store: "{{STORE}}"
admin_token: test-admin
documents: "{{DIR}}/documents"
tenants:
  - name: ta
    default: true
    dialects: [docuware, webpdf]
    session: {item: PlatformService}
    organizations: [{id: org-a}]
    users: [{username: alice, password: alice-pw, organization: org-a}]
    clients: [{client_id: app, client_secret: a-secret, organization: org-a, grant_types: [client_credentials, refresh_token], refresh_with_client_credentials: true}]
    products: [{name: PlatformService, items: [AppFeature-XYZ]}]
    models: [{name: seat}]
    licenses: [{id: lic-a, product: PlatformService, model: seat, seats: 5, owner: {organization: org-a}}]
  - name: tb
    dialects: [docuware, webpdf]
    session: {item: PlatformService}
    organizations: [{id: org-b}]
    users: [{username: alice, password: b-alice-pw, organization: org-b}]
    clients: [{client_id: app, client_secret: b-secret, organization: org-b, grant_types: [client_credentials, refresh_token], refresh_with_client_credentials: true}]
    products: [{name: PlatformService, items: [AppFeature-XYZ]}]
    models: [{name: seat}]
    licenses: [{id: lic-b, product: PlatformService, model: seat, seats: 5, owner: {organization: org-b}}]
`

// TestSecurityTenantIsolation: a credential of one tenant is worth nothing in another, on
// every route family that takes one, and nothing of one tenant shows in another.
func TestSecurityTenantIsolation(t *testing.T) {
	ts := start(t, isolationConfig)
	base := ts.URL
	tok, refresh, cookies := sessGrant(t, sessLogin(t, base, "alice", "alice-pw", nil, map[string]any{"refresh": true}))
	cookie := sessCookieHeader(cookies["lh_session"])
	ccA := ccToken(t, base, "app", "a-secret", "")
	json := map[string]string{"Content-Type": "application/json"}

	for name, r := range map[string]response{
		"authz under /t/tb":         get(t, base+"/t/tb/authz/.json?AppFeature-XYZ", tok),
		"authz with tenant=tb":      get(t, base+"/authz/.json?AppFeature-XYZ&tenant=tb", tok),
		"cc token under /t/tb":      get(t, base+"/t/tb/authz/.json?AppFeature-XYZ", ccA),
		"entitlements under /t/tb":  get(t, base+"/t/tb/entitlements/licenses", tok),
		"documents under /t/tb":     get(t, base+"/t/tb/session/documents", tok),
		"cookie under /t/tb":        do(t, http.MethodGet, base+"/t/tb/session/documents", cookie, ""),
		"logoff under /t/tb":        do(t, http.MethodPost, base+"/t/tb/oauth2/logoff", sessBearer(tok), ""),
		"login token under /t/tb":   do(t, http.MethodPost, base+"/t/tb/session/login-token", sessMerge(sessBearer(tok), json), `{}`),
		"webPDF logout under /t/tb": get(t, base+"/t/tb/webPDF/rest/authentication/user/logout", tok),
	} {
		if r.Status != http.StatusUnauthorized {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	// tb's client cannot use ta's refresh token, nor revoke or introspect ta's tokens.
	oaWantError(t, postForm(t, base+"/t/tb/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}},
		map[string]string{"Authorization": oaBasic("app", "b-secret")}), http.StatusBadRequest, "invalid_grant")
	if m := oaIntrospect(t, base, "tb", "app", "b-secret", tok); m["active"] != false {
		t.Errorf("tb introspects ta's token: %v", m)
	}
	postForm(t, base+"/t/tb/oauth2/revoke", url.Values{"token": {refresh}}, map[string]string{"Authorization": oaBasic("app", "b-secret")})
	if r := get(t, base+"/session/documents", tok); r.Status != http.StatusOK {
		t.Errorf("tb's revoke of ta's refresh token ended the session: %d", r.Status)
	}
	sessWant(t, "session refresh under /t/tb", do(t, http.MethodPost, base+"/t/tb/session/refresh", json, `{"refreshToken":"`+refresh+`"}`), http.StatusUnauthorized)
	// The same client id with the other tenant's secret is refused.
	oaWantError(t, postForm(t, base+"/t/tb/oauth2/token", url.Values{"grant_type": {"client_credentials"}},
		map[string]string{"Authorization": oaBasic("app", "a-secret")}), http.StatusUnauthorized, "invalid_client")
	// Only the tenant's own licenses and sessions show.
	if r := get(t, base+"/entitlements/licenses", tok); !strings.Contains(r.Body, "lic-a") || strings.Contains(r.Body, "lic-b") {
		t.Errorf("entitlements: %s", r.Body)
	}
	if r := get(t, base+"/admin/v1/tenants/tb/sessions", "test-admin"); r.Status != http.StatusOK || strings.Contains(r.Body, "alice") {
		t.Errorf("tb's sessions show ta's: %s", r.Body)
	}
	if t.Failed() {
		return
	}
	// And ta's credentials all still work at home.
	sessWant(t, "ta authz", get(t, base+"/authz/.json?AppFeature-XYZ", tok), http.StatusOK)
}

// TestSecurityTokenKindsNotInterchangeable: each kind of credential works only where it is
// meant to: a refresh token, cookie or login token is no Bearer access token, and an access
// token is no refresh or login token.
func TestSecurityTokenKindsNotInterchangeable(t *testing.T) {
	ts := start(t, isolationConfig)
	base := ts.URL
	json := map[string]string{"Content-Type": "application/json"}
	tok, refresh, cookies := sessGrant(t, sessLogin(t, base, "alice", "alice-pw", nil, map[string]any{"refresh": true}))
	lt, _ := sessWant(t, "login token", do(t, http.MethodPost, base+"/session/login-token", sessMerge(sessBearer(tok), json), `{}`), http.StatusOK)["token"].(string)
	for name, bearer := range map[string]string{
		"refresh token": refresh, "cookie": cookies["lh_session"].Value, "login token": lt,
	} {
		if r := get(t, base+"/authz/.json?AppFeature-XYZ", bearer); r.Status != http.StatusUnauthorized {
			t.Errorf("%s as a Bearer token: %d", name, r.Status)
		}
	}
	sessWant(t, "access token as a refresh token", do(t, http.MethodPost, base+"/session/refresh", json, `{"refreshToken":"`+tok+`"}`), http.StatusUnauthorized)
	sessWant(t, "access token as a login token", do(t, http.MethodPost, base+"/session/token-login", json, `{"token":"`+tok+`"}`), http.StatusUnauthorized)
	sessWant(t, "refresh token as a login token", do(t, http.MethodPost, base+"/session/token-login", json, `{"token":"`+refresh+`"}`), http.StatusUnauthorized)
	cc := ccToken(t, base, "app", "a-secret", "")
	oaWantError(t, postForm(t, base+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {cc}},
		map[string]string{"Authorization": oaBasic("app", "a-secret")}), http.StatusBadRequest, "invalid_grant")
	sessWant(t, "the access token still works", get(t, base+"/authz/.json?AppFeature-XYZ", tok), http.StatusOK)
}

// TestSecuritySecretsAtRest: no password, client secret or token a client holds is kept in
// the store as it was sent (only hashes are), in the database file or its WAL.
func TestSecuritySecretsAtRest(t *testing.T) {
	ts := start(t, isolationConfig)
	base := ts.URL
	tok, refresh, cookies := sessGrant(t, sessLogin(t, base, "alice", "alice-pw", nil, map[string]any{"refresh": true}))
	lt, _ := sessWant(t, "login token", do(t, http.MethodPost, base+"/session/login-token",
		sessMerge(sessBearer(tok), map[string]string{"Content-Type": "application/json"}), `{}`), http.StatusOK)["token"].(string)
	cc := ccToken(t, base, "app", "a-secret", "")
	var stored []byte
	for _, name := range []string{"leasehold.db", "leasehold.db-wal"} {
		b, err := os.ReadFile(filepath.Join(ts.Dir, name))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		stored = append(stored, b...)
	}
	if len(stored) == 0 {
		t.Fatal("found no store files: the test would prove nothing")
	}
	for name, plain := range map[string]string{
		"password": "alice-pw", "client secret": "a-secret", "access token": tok, "refresh token": refresh,
		"cookie": cookies["lh_session"].Value, "login token": lt, "client_credentials token": cc,
	} {
		if bytes.Contains(stored, []byte(plain)) {
			t.Errorf("the store holds the %s as sent", name)
		}
	}
	// The hashes are there, so the files read were the right ones.
	if !bytes.Contains(stored, []byte("$argon2id$")) {
		t.Fatal("no password hash in the files read: wrong files?")
	}
}

// TestSecurityReenabledClientRevivesNothing: disabling a client kills its tokens for good;
// enabling it again does not bring them back.
func TestSecurityReenabledClientRevivesNothing(t *testing.T) {
	ts := start(t, securityConfig)
	base := ts.URL
	cc := ccToken(t, base, "cc-alice", "cc-secret", "view")
	access, refresh, _ := oaTokens(t, oaExchange(t, base, "sec", oaCode(t, nil, base, "sec", "alice", "alice-pw", "Therefore_Read offline_access")))
	patch := func(client, body string) {
		t.Helper()
		r := do(t, http.MethodPatch, base+"/admin/v1/tenants/sec/clients/"+client,
			map[string]string{"Authorization": "Bearer test-admin", "Content-Type": "application/json"}, body)
		if r.Status != http.StatusOK {
			t.Fatalf("PATCH %s %s: %d %s", client, body, r.Status, r.Body)
		}
	}
	for _, c := range []string{"cc-alice", "tf-app"} {
		patch(c, `{"enabled": false}`)
	}
	time.Sleep(300 * time.Millisecond) // the catalog cache's refresh
	for _, c := range []string{"cc-alice", "tf-app"} {
		patch(c, `{"enabled": true}`)
	}
	time.Sleep(300 * time.Millisecond)
	for name, tok := range map[string]string{"client_credentials token": cc, "authorization-code token": access} {
		if r := get(t, base+"/entitlements/licenses", tok); r.Status != http.StatusUnauthorized {
			t.Errorf("%s after disable and enable: %d", name, r.Status)
		}
	}
	oaWantError(t, postForm(t, base+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}},
		map[string]string{"Authorization": oaBasic("tf-app", "tf-secret")}), http.StatusBadRequest, "invalid_grant")
	// The client itself works again.
	if r := get(t, base+"/entitlements/licenses", ccToken(t, base, "cc-alice", "cc-secret", "view")); r.Status != http.StatusOK {
		t.Fatalf("a new grant after enabling: %d", r.Status)
	}
}

// TestSecurityFreeScopeGrantAfterLicensed: a client's free-scope grant is never refused,
// even after a licensed grant made its session hold a seat (view, all, view); the free-scope
// token still cannot consume.
func TestSecurityFreeScopeGrantAfterLicensed(t *testing.T) {
	ts := start(t, securityConfig)
	base := ts.URL
	grant := func(scope string) response {
		return postForm(t, base+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {scope}},
			map[string]string{"Authorization": oaBasic("cc-alice", "cc-secret")})
	}
	var view string
	for i, scope := range []string{"view", "all", "view"} {
		r := grant(scope)
		if r.Status != http.StatusOK {
			t.Fatalf("grant %d (%s): %d %s", i, scope, r.Status, r.Body)
		}
		view, _, _ = oaTokens(t, r)
	}
	if m := get(t, base+"/authz/.json?AppFeature-XYZ&hw=h1", view).json(t); m["AppFeature-XYZ_errorKey"] != "notAuthorized" {
		t.Fatalf("a view token consumed: %v", m)
	}
}

// TestSecurityQueueOnLoginAndToken: queue= on /session/login and on the token endpoint waits
// for a seat to free, as on /authz, instead of refusing at once.
func TestSecurityQueueOnLoginAndToken(t *testing.T) {
	ts := start(t, securityConfig)
	base := ts.URL
	holder := func() string {
		tok, _, _ := sessGrant(t, sessLogin(t, base, "alice", "alice-pw", nil, map[string]any{"device": "first"}))
		return tok
	}
	// Without queue: refused at once.
	first := holder()
	sessWant(t, "no queue", sessLogin(t, base, "alice", "alice-pw", nil, map[string]any{"device": "second"}), http.StatusUnauthorized)
	type answer struct {
		r    response
		took time.Duration
	}
	wait := func(f func() response) chan answer {
		ch := make(chan answer, 1)
		go func() {
			t0 := time.Now()
			r := f()
			ch <- answer{r, time.Since(t0)}
		}()
		return ch
	}
	logoutSoon := func(tok string) {
		time.Sleep(400 * time.Millisecond)
		sessWant(t, "logout", do(t, http.MethodPost, base+"/session/logout", sessBearer(tok), ""), http.StatusOK)
	}
	ch := wait(func() response {
		return sessLogin(t, base, "alice", "alice-pw", nil, map[string]any{"device": "second", "queue": 5000})
	})
	logoutSoon(first)
	a := <-ch
	second, _, _ := sessGrant(t, a.r)
	if a.took < 300*time.Millisecond || a.took > 4*time.Second {
		t.Fatalf("queued login answered after %v", a.took)
	}
	// The token endpoint too (form parameter queue).
	ch = wait(func() response {
		return postForm(t, base+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"all"}, "queue": {"5000"}},
			map[string]string{"Authorization": oaBasic("cc-alice", "cc-secret")})
	})
	logoutSoon(second)
	a = <-ch
	if a.r.Status != http.StatusOK || a.took < 300*time.Millisecond {
		t.Fatalf("queued client_credentials grant: %d after %v: %s", a.r.Status, a.took, a.r.Body)
	}
	// And an authorization code's exchange: the code stays unused while it waits.
	client, _, _ := oaTokens(t, a.r)
	code := oaCode(t, nil, base, "sec", "alice", "alice-pw", "Therefore_User")
	exchange := func(queue string) response {
		return postForm(t, base+"/oauth2/token?tenant=sec", url.Values{
			"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {oaTFRedirect}, "queue": {queue},
		}, map[string]string{"Authorization": oaBasic("tf-app", "tf-secret")})
	}
	if r := exchange("0"); r.Status != http.StatusForbidden || !strings.Contains(r.Body, "licenseQuotaExceeded") {
		t.Fatalf("code exchange without a free seat: %d %s", r.Status, r.Body)
	}
	ch = wait(func() response { return exchange("5000") })
	logoutSoon(client)
	a = <-ch
	if a.r.Status != http.StatusOK || a.took < 300*time.Millisecond {
		t.Fatalf("queued code exchange: %d after %v: %s", a.r.Status, a.took, a.r.Body)
	}
	// A bad value is a 400.
	sessWant(t, "bad queue", sessLogin(t, base, "alice", "alice-pw", nil, map[string]any{"queue": -1}), http.StatusBadRequest)
}

// TestSecurityAdminListen: with admin_listen the admin API and /metrics are served on that
// listener only; the public one answers 404 for them.
func TestSecurityAdminListen(t *testing.T) {
	ts := start(t, strings.Replace(securityConfig, "admin_token: test-admin\n", "admin_token: test-admin\nadmin_listen: \"{{ADMIN_LISTEN}}\"\n", 1))
	if ts.AdminURL == "" {
		t.Fatal("no admin listener")
	}
	for _, path := range []string{"/admin/v1/tenants", "/metrics"} {
		if r := get(t, ts.URL+path, "test-admin"); r.Status != http.StatusNotFound {
			t.Errorf("public listener %s: %d, want 404", path, r.Status)
		}
		if r := get(t, ts.AdminURL+path, "test-admin"); r.Status != http.StatusOK {
			t.Errorf("admin listener %s: %d", path, r.Status)
		}
	}
	if r := get(t, ts.AdminURL+"/admin/v1/tenants", "wrong"); r.Status != http.StatusUnauthorized {
		t.Errorf("admin listener, wrong token: %d", r.Status)
	}
	// The public API stays on the public listener only.
	if r := sessLogin(t, ts.AdminURL, "alice", "alice-pw", nil, nil); r.Status != http.StatusNotFound {
		t.Errorf("login on the admin listener: %d", r.Status)
	}
	sessWant(t, "login", sessLogin(t, ts.URL, "alice", "alice-pw", nil, nil), http.StatusOK)
}

// TestSecurityErrorsNameNoGoType: a body of the wrong shape is refused with the field and
// the kind of value it takes, never a Go type name.
func TestSecurityErrorsNameNoGoType(t *testing.T) {
	ts := start(t, securityConfig)
	base := ts.URL
	admin := map[string]string{"Authorization": "Bearer test-admin", "Content-Type": "application/json"}
	for name, r := range map[string]response{
		"login":         do(t, http.MethodPost, base+"/session/login", map[string]string{"Content-Type": "application/json"}, `{"username":3}`),
		"login array":   do(t, http.MethodPost, base+"/session/login", map[string]string{"Content-Type": "application/json"}, `[1]`),
		"admin create":  do(t, http.MethodPost, base+"/admin/v1/tenants/sec/licenses", admin, `{"id":"x","seats":"many"}`),
		"admin patch":   do(t, http.MethodPatch, base+"/admin/v1/tenants/sec/licenses/lic-s", admin, `{"seats":"many"}`),
		"tenant create": do(t, http.MethodPost, base+"/admin/v1/tenants", admin, `{"name":7}`),
	} {
		if r.Status < 400 || r.Status >= 500 || strings.Contains(r.Body, "Go ") || strings.Contains(r.Body, "struct") {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	r := do(t, http.MethodPatch, base+"/admin/v1/tenants/sec/licenses/lic-s", admin, `{"seats":"many"}`)
	if !strings.Contains(r.Body, "seats must be an integer") {
		t.Errorf("the refusal does not say what seats takes: %s", r.Body)
	}
}

// TestSecurityAdminGuessesShared: the admin API and the dashboard's sign-in check the admin
// token through one guard, so wrong guesses at one count at the other.
func TestSecurityAdminGuessesShared(t *testing.T) {
	ts := start(t, securityConfig)
	const addr = "203.0.113.77"
	for i := range 10 {
		if r := do(t, http.MethodGet, ts.URL+"/admin/v1/tenants", from(addr, sessBearer("guess-"+strconv.Itoa(i))), ""); r.Status != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, r.Status)
		}
	}
	page := do(t, http.MethodGet, ts.URL+"/ui/login", from(addr), "")
	var csrf string
	for _, c := range sessCookies(page) {
		if c.Name == "lh_ui_login" {
			csrf = c.Value
		}
	}
	if csrf == "" {
		t.Fatalf("no sign-in cookie: %v", page.Header.Values("Set-Cookie"))
	}
	r := postForm(t, ts.URL+"/ui/login", url.Values{"csrf": {csrf}, "token": {"test-admin"}},
		from(addr, map[string]string{"Cookie": "lh_ui_login=" + csrf}))
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("the dashboard's sign-in after 10 wrong admin API tokens from the address: %d", r.Status)
	}
}
