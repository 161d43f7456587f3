package e2e

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// oauthConfig has three tenants:
//   - tx (Therefore): a 1-seat license (anchors user, hw), a public PKCE client and a
//     confidential one, Therefore scopes; Therefore_Read is free;
//   - ty: another tenant with a client of the same name;
//   - tg: like tx, with refresh_grace, for the grace-period tests;
//   - jim (Jim2): client credentials, two clients acting as themselves, a 1-seat license
//     anchored on the user, linger 2 s.
const oauthConfig = `
listen: "{{LISTEN}}"
public_url: "{{URL}}"
store: "{{STORE}}"
admin_token: test-admin
documents: "{{DIR}}/documents"
tenants:
  - name: tx
    default: true
    session: {item: PlatformService, access_token_ttl: 60s, refresh_token_ttl: 30s, idle_timeout: 30s}
    organizations: [{id: org-x}]
    users:
      - {username: alice, password: alice-pw, organization: org-x}
      - {username: bob, password: bob-pw, organization: org-x}
    clients:
      - client_id: web-app
        redirect_uris: [http://127.0.0.1:9999/callback, "http://127.0.0.1:9999/other?keep=1"]
        grant_types: [authorization_code, refresh_token]
        scopes: [Therefore_User, Therefore_Read, offline_access]
      - client_id: tf-app
        client_secret: tf-secret
        redirect_uris: [https://oauth2testclient.example/]
        grant_types: [authorization_code, refresh_token]
        scopes: [Therefore_User, Therefore_Read, offline_access]
      - client_id: rs
        client_secret: rs-secret
        grant_types: [client_credentials]
        scopes: [view]
    products: [{name: PlatformService}]
    models: [{name: seat, anchors: [user, hw], linger: 30s}] # long enough that a loaded machine cannot outwait it
    licenses: [{id: lic-x, product: PlatformService, model: seat, seats: 1, owner: {organization: org-x}}]
  - name: ty
    session: {item: PlatformService}
    organizations: [{id: org-y}]
    users: [{username: alice, password: alice-pw, organization: org-y}]
    clients:
      - client_id: web-app
        redirect_uris: [http://127.0.0.1:9999/callback]
        scopes: [Therefore_User, offline_access]
    products: [{name: PlatformService}]
    models: [{name: seat}]
    licenses: [{id: lic-y, product: PlatformService, model: seat, seats: 5, owner: {organization: org-y}}]
  - name: tg
    session: {item: PlatformService, refresh_grace: 2s}
    organizations: [{id: org-g}]
    users: [{username: alice, password: alice-pw, organization: org-g}]
    clients:
      - client_id: tf-app
        client_secret: tf-secret
        redirect_uris: [https://oauth2testclient.example/]
        grant_types: [authorization_code, refresh_token]
        scopes: [Therefore_User, offline_access]
    products: [{name: PlatformService}]
    models: [{name: seat, anchors: [user], linger: 2s}]
    licenses: [{id: lic-g, product: PlatformService, model: seat, seats: 5, owner: {organization: org-g}}]
  - name: jim
    session: {item: PlatformService}
    organizations: [{id: org-j}]
    clients:
      - {client_id: jim-a, client_secret: a-secret, organization: org-j, scopes: [all, view], refresh_with_client_credentials: true}
      - {client_id: jim-b, client_secret: b-secret, organization: org-j, scopes: [all, view], refresh_with_client_credentials: true}
    products: [{name: PlatformService}]
    models: [{name: seat, anchors: [user], linger: 2s}]
    licenses: [{id: lic-j, product: PlatformService, model: seat, seats: 1, owner: {organization: org-j}}]
`

const (
	oaWebRedirect = "http://127.0.0.1:9999/callback"
	oaTFRedirect  = "https://oauth2testclient.example/"
)

// oaBrowser is a cookie-keeping client that does not follow redirects: the tests read the
// redirect to the client's redirect URI themselves.
type oaBrowser struct {
	t      *testing.T
	client *http.Client
}

func oaNewBrowser(t *testing.T) *oaBrowser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &oaBrowser{t: t, client: &http.Client{
		Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (b *oaBrowser) do(req *http.Request) response {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: string(body)}
}

func (b *oaBrowser) get(u string) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *oaBrowser) post(u string, form url.Values, header map[string]string) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return b.do(req)
}

var (
	oaFormActionRE = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
	oaHiddenRE     = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// oaLoginForm is the login page's form: where it posts and its hidden fields (csrf included).
type oaLoginForm struct {
	Action string
	Fields url.Values
}

func oaParseLoginForm(t *testing.T, page response) oaLoginForm {
	t.Helper()
	if page.Status != http.StatusOK || !strings.Contains(page.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("login page: %d %s %s", page.Status, page.Header.Get("Content-Type"), page.Body)
	}
	m := oaFormActionRE.FindStringSubmatch(page.Body)
	if m == nil {
		t.Fatalf("login page has no form: %s", page.Body)
	}
	f := oaLoginForm{Action: html.UnescapeString(m[1]), Fields: url.Values{}}
	for _, h := range oaHiddenRE.FindAllStringSubmatch(page.Body, -1) {
		f.Fields.Set(html.UnescapeString(h[1]), html.UnescapeString(h[2]))
	}
	if f.Fields.Get("csrf") == "" {
		t.Fatalf("login page has no csrf token: %s", page.Body)
	}
	return f
}

// login opens authURL in the oaBrowser, signs in on the login page and returns the redirect
// to the client (the Location of the 303).
func (b *oaBrowser) login(base, authURL, user, password string) *url.URL {
	b.t.Helper()
	form := oaParseLoginForm(b.t, b.get(authURL))
	form.Fields.Set("username", user)
	form.Fields.Set("password", password)
	r := b.post(base+form.Action, form.Fields, nil)
	return oaRedirectOf(b.t, r)
}

func oaRedirectOf(t *testing.T, r response) *url.URL {
	t.Helper()
	if r.Status != http.StatusSeeOther {
		t.Fatalf("want a 303 to the client, got %d: %s", r.Status, r.Body)
	}
	u, err := url.Parse(r.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// oaAuthorizeURL builds an authorization request URL.
func oaAuthorizeURL(base, path string, params map[string]string) string {
	q := url.Values{"response_type": {"code"}}
	for k, v := range params {
		q.Set(k, v)
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return base + path + sep + q.Encode()
}

// oaCode signs user in with oaBrowser b (nil: a new one) for tenant's confidential tf-app
// client and returns an authorization code (no PKCE: a confidential client may omit it).
// A oaBrowser that is still logged in skips the login page.
func oaCode(t *testing.T, b *oaBrowser, base, tenant, user, password, scope string) string {
	t.Helper()
	if b == nil {
		b = oaNewBrowser(t)
	}
	loc := b.authorize(base, oaAuthorizeURL(base, "/oauth2/authorize?tenant="+tenant, map[string]string{
		"client_id": "tf-app", "redirect_uri": oaTFRedirect, "scope": scope, "state": "s1",
	}), user, password)
	code := loc.Query().Get("code")
	if code == "" || loc.Query().Get("state") != "s1" {
		t.Fatalf("redirect: %s", loc)
	}
	return code
}

// authorize is login, except that a oaBrowser still logged in is redirected at once.
func (b *oaBrowser) authorize(base, authURL, user, password string) *url.URL {
	b.t.Helper()
	r := b.get(authURL)
	if r.Status == http.StatusSeeOther {
		return oaRedirectOf(b.t, r)
	}
	form := oaParseLoginForm(b.t, r)
	form.Fields.Set("username", user)
	form.Fields.Set("password", password)
	return oaRedirectOf(b.t, b.post(base+form.Action, form.Fields, nil))
}

// oaExchange redeems a code for tf-app (client_secret_basic, as the Therefore seed).
func oaExchange(t *testing.T, base, tenant, code string) response {
	t.Helper()
	return postForm(t, base+"/oauth2/token?tenant="+tenant, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {oaTFRedirect},
	}, map[string]string{"Authorization": oaBasic("tf-app", "tf-secret")})
}

func oaRefresh(t *testing.T, base, tenant, clientID, secret, refresh string) response {
	t.Helper()
	return postForm(t, base+"/oauth2/token?tenant="+tenant, url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {refresh},
	}, map[string]string{"Authorization": oaBasic(clientID, secret)})
}

func oaBasic(id, secret string) string {
	req, _ := http.NewRequest(http.MethodGet, "http://x", nil)
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	return req.Header.Get("Authorization")
}

// oaTokens reads a successful token response.
func oaTokens(t *testing.T, r response) (access, refresh string, body map[string]any) {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("token: %d %s", r.Status, r.Body)
	}
	body = r.json(t)
	access, _ = body["access_token"].(string)
	refresh, _ = body["refresh_token"].(string)
	if access == "" {
		t.Fatalf("token: no access_token: %s", r.Body)
	}
	return access, refresh, body
}

// oaStatus reports the status of an authenticated request made with token.
func oaStatus(t *testing.T, u, token string) int {
	t.Helper()
	return get(t, u, token).Status
}

func oaWantError(t *testing.T, r response, status int, code string) map[string]any {
	t.Helper()
	if r.Status != status {
		t.Fatalf("want %d %s, got %d: %s", status, code, r.Status, r.Body)
	}
	m := r.json(t)
	if m["error"] != code {
		t.Fatalf("want error %s, got %s", code, r.Body)
	}
	return m
}

func oaIntrospect(t *testing.T, base, tenant, clientID, secret, token string) map[string]any {
	t.Helper()
	r := postForm(t, base+"/oauth2/introspect?tenant="+tenant, url.Values{"token": {token}},
		map[string]string{"Authorization": oaBasic(clientID, secret)})
	if r.Status != http.StatusOK {
		t.Fatalf("introspect: %d %s", r.Status, r.Body)
	}
	return r.json(t)
}

func adminLeases(t *testing.T, base, tenant string) []any {
	t.Helper()
	r := get(t, base+"/admin/v1/tenants/"+tenant+"/leases", "test-admin")
	if r.Status != http.StatusOK {
		t.Fatalf("admin leases: %d %s", r.Status, r.Body)
	}
	list, _ := r.json(t)["leases"].([]any)
	return list
}
