package e2e

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"
)

// dialectConfig has one tenant per seed system, each mounting its dialect only, and one
// that mounts none:
//   - wp (webPDF, the default tenant, as the seed's curl names none): the seed's admin/admin;
//   - dw (DocuWare): one seat on [user, hw], a 2 s linger, and a 1 s idle_timeout that the
//     DocuWare cookie session must outlive;
//   - ntware1 (Therefore; the seed's tenant=NTWare1): the default session policy
//     (access_token_ttl 1199 s), a confidential client with the seed's redirect URI, one seat;
//   - jim-test (Jim2; the seed's /Jim_Test/token): TestClientId/password, one seat on the
//     user, a 2 s linger;
//   - plain: no dialect.
const dialectConfig = `
listen: "{{LISTEN}}"
public_url: "{{URL}}"
store: "{{STORE}}"
admin_token: test-admin
documents: "{{DIR}}/documents"
tenants:
  - name: wp
    default: true
    dialects: [webpdf]
    session: {item: PlatformService, access_token_ttl: 3599s, refresh_token_ttl: 2h, idle_timeout: 2h}
    organizations: [{id: org-w}]
    users: [{username: admin, password: admin, organization: org-w}]
    products: [{name: PlatformService}]
    models: [{name: floating, anchors: [user, hw], linger: 0s}]
    licenses: [{id: lic-w, product: PlatformService, model: floating, seats: 20, owner: {organization: org-w}}]
  - name: dw
    dialects: [docuware]
    session: {item: PlatformService, idle_timeout: 1s}
    organizations: [{id: org-d, name: Peters Engineering}]
    users:
      - {username: alice, password: alice-pw, organization: org-d}
      - {username: bob, password: bob-pw, organization: org-d}
    products: [{name: PlatformService}]
    models: [{name: seat, anchors: [user, hw], linger: 2s}]
    licenses: [{id: lic-d, product: PlatformService, model: seat, seats: 1, owner: {organization: org-d}}]
  - name: ntware1
    dialects: [therefore]
    organizations: [{id: org-t}]
    users:
      - {username: alice, password: alice-pw, organization: org-t}
      - {username: bob, password: bob-pw, organization: org-t}
    clients:
      - client_id: therefore-app
        client_secret: therefore-secret
        redirect_uris: [https://oauth2testclient.azurewebsites.net/]
        grant_types: [authorization_code, refresh_token]
        scopes: [Therefore_User, Therefore_Read, offline_access]
    session: {item: PlatformService}
    products: [{name: PlatformService}]
    models: [{name: seat, anchors: [user], linger: 2s}]
    licenses: [{id: lic-t, product: PlatformService, model: seat, seats: 1, owner: {organization: org-t}}]
  - name: jim-test
    dialects: [jim2]
    session: {item: PlatformService}
    organizations: [{id: org-j}]
    clients:
      - {client_id: TestClientId, client_secret: password, organization: org-j, scopes: [all, view], refresh_with_client_credentials: true}
      - {client_id: OtherClientId, client_secret: other-password, organization: org-j, scopes: [all, view], refresh_with_client_credentials: true}
    products: [{name: PlatformService}]
    models: [{name: seat, anchors: [user], linger: 2s}]
    licenses: [{id: lic-j, product: PlatformService, model: seat, seats: 1, owner: {organization: org-j}}]
  - name: plain
    organizations: [{id: org-p}]
    users: [{username: alice, password: alice-pw, organization: org-p}]
    clients:
      - {client_id: TestClientId, client_secret: password, organization: org-p, scopes: [all, view]}
    products: [{name: PlatformService}]
    models: [{name: seat}]
    licenses: [{id: lic-p, product: PlatformService, model: seat, seats: 5, owner: {organization: org-p}}]
`

// dlJar is a client with a cookie container (DocuWare's "store the cookie in a cookie
// container"), that does not follow redirects.
func dlJar(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// dlDo sends a request with c (nil: no cookies).
func dlDo(t *testing.T, c *http.Client, method, u string, header map[string]string, body string) response {
	t.Helper()
	if c == nil {
		return do(t, method, u, header, body)
	}
	b := &oaBrowser{t: t, client: c}
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return b.do(req)
}

func dlWant(t *testing.T, what string, r response, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: got %d, want %d: %s", what, r.Status, status, r.Body)
	}
}

// TestDialectsMountedPerTenant: a dialect's routes answer only for tenants that list it
// (404 JSON elsewhere, however the tenant is named), and Jim2's tenant-rooted routes
// never shadow another route.
func TestDialectsMountedPerTenant(t *testing.T) {
	ts := start(t, dialectConfig)
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	basicAdmin := map[string]string{"Authorization": "Basic YWRtaW46YWRtaW4="}
	dwLogon := "UserName=alice&Password=alice-pw"
	for _, c := range []struct {
		what, method, path string
		header             map[string]string
		body               string
	}{
		// DocuWare's routes, on tenants without docuware (wp is the default tenant).
		{"docuware logon, default tenant", "POST", "/DocuWare/Platform/Account/Logon", form, dwLogon},
		{"docuware logon, /t/plain/", "POST", "/t/plain/DocuWare/Platform/Account/Logon", form, dwLogon},
		{"docuware logon, tenant=plain", "POST", "/DocuWare/Platform/Account/Logon?tenant=plain", form, dwLogon},
		{"docuware token logon", "POST", "/t/plain/DocuWare/Platform/Account/TokenLogOn", form, "Token=x"},
		{"docuware logoff", "POST", "/t/plain/DocuWare/Platform/Account/LogOff", nil, ""},
		{"docuware login token", "POST", "/t/plain/DocuWare/Platform/Organizations/LoginToken", nil, "{}"},
		// webPDF's, on a tenant without webpdf.
		{"webpdf login", "POST", "/t/plain/webPDF/rest/authentication/user/login", basicAdmin, ""},
		{"webpdf logout", "GET", "/t/plain/webPDF/rest/authentication/user/logout", map[string]string{"Authorization": "Bearer x"}, ""},
		{"webpdf refresh", "POST", "/webPDF/rest/authentication/user/refresh?tenant=plain", map[string]string{"Authorization": "Bearer x"}, ""},
		// Therefore's.
		{"therefore authorize", "GET", "/OAuth/Authorize?tenant=plain&client_id=TestClientId&response_type=code", nil, ""},
		{"therefore token", "POST", "/OAuth/Token?tenant=Plain", form, "grant_type=client_credentials&client_id=TestClientId&client_secret=password"},
		{"therefore token, default tenant", "POST", "/OAuth/Token", form, "grant_type=client_credentials"},
		// Jim2's, on a tenant without jim2, on an unknown one, and on a route word.
		{"jim2 token", "POST", "/plain/token", form, "grant_type=client_credentials&client_id=TestClientId&client_secret=password"},
		{"jim2 logoff", "POST", "/plain/logoff", map[string]string{"Authorization": "Bearer x"}, ""},
		{"jim2 token, unknown tenant", "POST", "/nosuch/token", form, "grant_type=client_credentials"},
		{"jim2 token, route word", "POST", "/session/token", form, "grant_type=client_credentials"},
		{"jim2 token, other tenant's prefix", "POST", "/t/plain/jim-test/token", form, "grant_type=client_credentials"},
	} {
		r := do(t, c.method, ts.URL+c.path, c.header, c.body)
		if r.Status != http.StatusNotFound || r.json(t)["error"] == nil {
			t.Errorf("%s: got %d %s, want a 404 JSON error", c.what, r.Status, r.Body)
		}
	}

	// The routes that share Jim2's shape still answer as themselves.
	r := postForm(t, ts.URL+"/oauth2/token?tenant=plain", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {"TestClientId"}, "client_secret": {"password"},
	}, nil)
	dlWant(t, "/oauth2/token beside /{tenant}/token", r, http.StatusOK)
	// Jim2's routes under the tenant's own prefix, and with the method they do not take.
	tok, _, _ := oaTokens(t, postForm(t, ts.URL+"/t/jim-test/jim-test/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"view"}},
		map[string]string{"Authorization": oaBasic("TestClientId", "password")}))
	if tok == "" {
		t.Fatal("no token under /t/jim-test/")
	}
	// A method the route does not take: 405 with Allow on a tenant that mounts jim2, a 404
	// where the path is not a route at all.
	r = get(t, ts.URL+"/jim-test/token", "")
	dlWant(t, "GET /jim-test/token", r, http.StatusMethodNotAllowed)
	if r.Header.Get("Allow") != "POST" {
		t.Errorf("GET /jim-test/token: Allow %q, want POST", r.Header.Get("Allow"))
	}
	dlWant(t, "GET /plain/token", get(t, ts.URL+"/plain/token", ""), http.StatusNotFound)
	dlWant(t, "GET /nosuch/token", get(t, ts.URL+"/nosuch/token", ""), http.StatusNotFound)
}
