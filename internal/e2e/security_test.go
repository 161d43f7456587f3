package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// securityConfig: one tenant whose 1-seat license is held through the session item, a
// confidential authorization-code client with a licensed and a free (read-only) scope,
// and a client_credentials client that acts as alice.
const securityConfig = `
listen: "{{LISTEN}}"
public_url: "{{URL}}"
store: "{{STORE}}"
admin_token: test-admin
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
