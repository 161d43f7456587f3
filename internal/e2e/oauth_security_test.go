package e2e

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// TestOAuthAuthorizeRefusals: an unknown client or an unregistered redirect URI is shown to
// the user and never redirected; every other error goes back to the client's redirect URI.
func TestOAuthAuthorizeRefusals(t *testing.T) {
	ts := start(t, oauthConfig)
	b := oaNewBrowser(t)
	challenge := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())
	page := func(name string, params map[string]string) {
		t.Helper()
		path := "/t/tx/oauth2/authorize"
		if params["tenant"] != "" {
			path = "/oauth2/authorize"
		}
		r := b.get(oaAuthorizeURL(ts.URL, path, params))
		if r.Status != http.StatusBadRequest || r.Header.Get("Location") != "" ||
			!strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") || strings.Contains(r.Body, "<form") {
			t.Fatalf("%s: want an error page, got %d %v %s", name, r.Status, r.Header, r.Body)
		}
		if !strings.Contains(r.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Fatalf("%s: CSP %q", name, r.Header.Get("Content-Security-Policy"))
		}
	}
	page("unknown client", map[string]string{"client_id": "nobody", "redirect_uri": oaWebRedirect})
	page("no client", map[string]string{"redirect_uri": oaWebRedirect})
	page("unregistered redirect_uri", map[string]string{"client_id": "web-app", "redirect_uri": "https://evil.example/cb",
		"code_challenge": challenge, "code_challenge_method": "S256"})
	page("redirect_uri prefix", map[string]string{"client_id": "web-app", "redirect_uri": oaWebRedirect + "/x",
		"code_challenge": challenge, "code_challenge_method": "S256"})
	page("redirect_uri without its query", map[string]string{"client_id": "web-app", "redirect_uri": "http://127.0.0.1:9999/other",
		"code_challenge": challenge, "code_challenge_method": "S256"})
	page("redirect_uri omitted with two registered", map[string]string{"client_id": "web-app",
		"code_challenge": challenge, "code_challenge_method": "S256"})
	page("client of another tenant", map[string]string{"client_id": "tf-app", "redirect_uri": oaTFRedirect, "tenant": "ty"})

	back := func(name string, params map[string]string, code string) {
		t.Helper()
		params["client_id"], params["state"] = "web-app", "st"
		if _, ok := params["redirect_uri"]; !ok {
			params["redirect_uri"] = oaWebRedirect
		}
		loc := oaRedirectOf(t, b.get(oaAuthorizeURL(ts.URL, "/t/tx/oauth2/authorize", params)))
		q := loc.Query()
		if q.Get("error") != code || q.Get("state") != "st" || q.Get("code") != "" || q.Get("iss") != ts.URL+"/t/tx" {
			t.Fatalf("%s: want error %s, got %s", name, code, loc)
		}
	}
	back("public client without PKCE", map[string]string{}, "invalid_request")
	back("plain PKCE", map[string]string{"code_challenge": challenge, "code_challenge_method": "plain"}, "invalid_request")
	back("PKCE method defaulting to plain", map[string]string{"code_challenge": challenge}, "invalid_request")
	back("malformed challenge", map[string]string{"code_challenge": "short", "code_challenge_method": "S256"}, "invalid_request")
	back("implicit grant", map[string]string{"response_type": "token", "code_challenge": challenge, "code_challenge_method": "S256"}, "unsupported_response_type")
	back("unknown scope", map[string]string{"scope": "admin", "code_challenge": challenge, "code_challenge_method": "S256"}, "invalid_scope")
	back("prompt=none, not logged in", map[string]string{"prompt": "none", "code_challenge": challenge, "code_challenge_method": "S256"}, "login_required")

	// A registered redirect URI with a query keeps it.
	verifier := oauth2.GenerateVerifier()
	loc := b.login(ts.URL, oaAuthorizeURL(ts.URL, "/t/tx/oauth2/authorize", map[string]string{
		"client_id": "web-app", "redirect_uri": "http://127.0.0.1:9999/other?keep=1", "scope": "Therefore_Read",
		"code_challenge": oauth2.S256ChallengeFromVerifier(verifier), "code_challenge_method": "S256",
	}), "alice", "alice-pw")
	if loc.Path != "/other" || loc.Query().Get("keep") != "1" || loc.Query().Get("code") == "" {
		t.Fatalf("redirect: %s", loc)
	}
}

// TestOAuthLoginPage: the login page's anti-CSRF token and framing defences, and the
// refusals of its form.
func TestOAuthLoginPage(t *testing.T) {
	ts := start(t, oauthConfig)
	verifier := oauth2.GenerateVerifier()
	authURL := oaAuthorizeURL(ts.URL, "/t/tx/oauth2/authorize", map[string]string{
		"client_id": "web-app", "redirect_uri": oaWebRedirect, "scope": "Therefore_User", "state": "st",
		"code_challenge": oauth2.S256ChallengeFromVerifier(verifier), "code_challenge_method": "S256",
	})
	b := oaNewBrowser(t)
	r := b.get(authURL)
	form := oaParseLoginForm(t, r)
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src") {
		t.Fatalf("CSP: %q", csp)
	}
	if r.Header.Get("X-Frame-Options") != "DENY" || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("headers: %v", r.Header)
	}
	if strings.Contains(strings.ToLower(r.Body), "<script") {
		t.Fatal("the login page has a script")
	}
	if form.Action != "/t/tx/oauth2/authorize" {
		t.Fatalf("form action %q", form.Action)
	}
	var csrfCookie *http.Cookie
	for _, c := range b.client.Jar.Cookies(oaURL(t, ts.URL+"/t/tx/")) {
		if c.Name == "lh_csrf" {
			csrfCookie = c
		}
	}
	if csrfCookie == nil || csrfCookie.Value != form.Fields.Get("csrf") {
		t.Fatalf("csrf cookie %v, form token %q", csrfCookie, form.Fields.Get("csrf"))
	}

	refused := func(name string, br *oaBrowser, fields url.Values, header map[string]string, status int, message string) {
		t.Helper()
		r := br.post(ts.URL+form.Action, fields, header)
		if r.Status != status || r.Header.Get("Location") != "" || !strings.Contains(r.Body, message) {
			t.Fatalf("%s: want %d with %q, got %d %v %s", name, status, message, r.Status, r.Header, r.Body)
		}
		if !strings.Contains(r.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Fatalf("%s: CSP missing", name)
		}
	}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for key, vs := range form.Fields {
			f[key] = vs
		}
		f.Set("username", "alice")
		f.Set("password", "alice-pw")
		f.Set(k, v)
		return f
	}
	forged := strings.Repeat("A", 43)
	refused("forged csrf", b, with("csrf", forged), nil, http.StatusForbidden, "did not come from this page")
	refused("no csrf", b, with("csrf", ""), nil, http.StatusForbidden, "did not come from this page")
	// Another oaBrowser (no csrf cookie) cannot replay this page's token.
	refused("token without its cookie", oaNewBrowser(t), with("csrf", form.Fields.Get("csrf")), nil, http.StatusForbidden, "did not come from this page")
	refused("cross-site post", b, with("csrf", form.Fields.Get("csrf")), map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden, "another site")
	refused("wrong password", b, with("password", "nope"), nil, http.StatusUnauthorized, "Invalid username or password")
	refused("unknown user", b, with("username", "mallory"), nil, http.StatusUnauthorized, "Invalid username or password")
	refused("tampered redirect_uri", b, with("redirect_uri", "https://evil.example/"), nil, http.StatusBadRequest, "not registered")

	// The genuine form works, and sets the login cookie under the tenant's path.
	r = b.post(ts.URL+form.Action, with("csrf", form.Fields.Get("csrf")), nil)
	loc := oaRedirectOf(t, r)
	if loc.Query().Get("code") == "" || loc.Query().Get("state") != "st" {
		t.Fatalf("redirect: %s", loc)
	}
	var session *http.Cookie
	for _, c := range r.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "lh_session=") {
			session = &http.Cookie{}
			if !strings.Contains(c, "HttpOnly") || !strings.Contains(c, "SameSite=Lax") || !strings.Contains(c, "Path=/t/tx/") {
				t.Fatalf("login cookie: %s", c)
			}
		}
	}
	if session == nil {
		t.Fatalf("no login cookie: %v", r.Header)
	}
}

func oaURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestOAuthCodeRules: PKCE, redirect URI and client binding of codes; a reused code revokes
// what it issued.
func TestOAuthCodeRules(t *testing.T) {
	ts := start(t, oauthConfig)
	me := ts.URL + "/t/tx/entitlements/licenses"
	tokenURL := ts.URL + "/t/tx/oauth2/token"
	b := oaNewBrowser(t)
	pkceCode := func(verifier string) string {
		t.Helper()
		loc := b.authorize(ts.URL, oaAuthorizeURL(ts.URL, "/t/tx/oauth2/authorize", map[string]string{
			"client_id": "web-app", "redirect_uri": oaWebRedirect, "scope": "Therefore_User",
			"code_challenge": oauth2.S256ChallengeFromVerifier(verifier), "code_challenge_method": "S256",
		}), "alice", "alice-pw")
		return loc.Query().Get("code")
	}
	redeem := func(code string, extra url.Values) response {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {"web-app"}, "redirect_uri": {oaWebRedirect}}
		for k, v := range extra {
			form[k] = v
		}
		return postForm(t, tokenURL, form, nil)
	}

	verifier := oauth2.GenerateVerifier()
	code := pkceCode(verifier)
	oaWantError(t, redeem(code, nil), http.StatusBadRequest, "invalid_grant")
	oaWantError(t, redeem(code, url.Values{"code_verifier": {oauth2.GenerateVerifier()}}), http.StatusBadRequest, "invalid_grant")
	oaWantError(t, redeem(code, url.Values{"code_verifier": {"short"}}), http.StatusBadRequest, "invalid_grant")
	oaWantError(t, redeem(code, url.Values{"code_verifier": {verifier}, "redirect_uri": {"http://127.0.0.1:9999/other?keep=1"}}), http.StatusBadRequest, "invalid_grant")
	// Another client cannot redeem it.
	oaWantError(t, postForm(t, tokenURL, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {oaWebRedirect}, "code_verifier": {verifier}}, map[string]string{"Authorization": oaBasic("tf-app", "tf-secret")}),
		http.StatusBadRequest, "invalid_grant")
	// The failed attempts did not spend the code: the right verifier still works.
	access, _, _ := oaTokens(t, redeem(code, url.Values{"code_verifier": {verifier}}))
	if s := oaStatus(t, me, access); s != http.StatusOK {
		t.Fatalf("token: %d", s)
	}
	if n := len(adminLeases(t, ts.URL, "tx")); n != 1 {
		t.Fatalf("%d leases", n)
	}
	// Reuse: refused, and what the code issued is revoked (the session ends, its seat lingers).
	m := oaWantError(t, redeem(code, url.Values{"code_verifier": {verifier}}), http.StatusBadRequest, "invalid_grant")
	if !strings.Contains(m["error_description"].(string), "already used") {
		t.Fatalf("reuse: %v", m)
	}
	if s := oaStatus(t, me, access); s != http.StatusUnauthorized {
		t.Fatalf("token of a reused code: %d", s)
	}
	if n := len(adminLeases(t, ts.URL, "tx")); n != 0 {
		t.Fatalf("the revoked session still holds %d leases", n)
	}
	// A third presentation is just unknown.
	oaWantError(t, redeem(code, url.Values{"code_verifier": {verifier}}), http.StatusBadRequest, "invalid_grant")

	// A verifier without a challenge is refused (a confidential client, which may skip PKCE).
	code = oaCode(t, nil, ts.URL, "tx", "bob", "bob-pw", "Therefore_Read")
	oaWantError(t, postForm(t, tokenURL, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {oaTFRedirect}, "code_verifier": {oauth2.GenerateVerifier()}}, map[string]string{"Authorization": oaBasic("tf-app", "tf-secret")}),
		http.StatusBadRequest, "invalid_grant")
	// Missing and wrong redirect_uri (it was given in the authorization request).
	oaWantError(t, postForm(t, tokenURL, url.Values{"grant_type": {"authorization_code"}, "code": {code}},
		map[string]string{"Authorization": oaBasic("tf-app", "tf-secret")}), http.StatusBadRequest, "invalid_grant")
	oaTokens(t, oaExchange(t, ts.URL, "tx", code))

	// A public client cannot authenticate with a secret, and a confidential one needs its own.
	oaWantError(t, postForm(t, tokenURL, url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {"web-app"}, "client_secret": {"guess"}}, nil),
		http.StatusUnauthorized, "invalid_client")
	oaWantError(t, postForm(t, tokenURL, url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {"tf-app"}}, nil),
		http.StatusUnauthorized, "invalid_client")
	oaWantError(t, postForm(t, tokenURL, url.Values{"grant_type": {"authorization_code"}, "client_id": {"web-app"}}, nil),
		http.StatusBadRequest, "invalid_request")
	oaWantError(t, postForm(t, tokenURL, url.Values{"grant_type": {"password"}, "client_id": {"web-app"}}, nil),
		http.StatusBadRequest, "unauthorized_client")
}

// TestOAuthRefreshGrace: within refresh_grace the previous refresh token may be presented
// again (a lost response) and displaces the pair its first use issued; an older one, or the
// previous one after the grace, revokes the family.
func TestOAuthRefreshGrace(t *testing.T) {
	ts := start(t, oauthConfig)
	me := ts.URL + "/t/tg/entitlements/licenses"
	refresh := func(tok string) response { return oaRefresh(t, ts.URL, "tg", "tf-app", "tf-secret", tok) }

	a1, r1, _ := oaTokens(t, oaExchange(t, ts.URL, "tg", oaCode(t, nil, ts.URL, "tg", "alice", "alice-pw", "Therefore_User offline_access")))
	a2, r2, _ := oaTokens(t, refresh(r1))
	// The response was "lost": r1 again, within the grace.
	a3, r3, _ := oaTokens(t, refresh(r1))
	if r3 == r2 || a3 == a2 {
		t.Fatal("the retry answered the same pair")
	}
	for _, dead := range []string{a1, a2} {
		if s := oaStatus(t, me, dead); s != http.StatusUnauthorized {
			t.Fatalf("displaced access token: %d", s)
		}
	}
	if s := oaStatus(t, me, a3); s != http.StatusOK {
		t.Fatalf("retry's access token: %d", s)
	}
	// The displaced refresh token is dead (but its death revokes nothing).
	oaWantError(t, refresh(r2), http.StatusBadRequest, "invalid_grant")
	if s := oaStatus(t, me, a3); s != http.StatusOK {
		t.Fatalf("after the displaced token: %d", s)
	}
	// r3 rotates normally; r1 is now two rotations back: a replay, even within the grace.
	a4, r4, _ := oaTokens(t, refresh(r3))
	oaWantError(t, refresh(r1), http.StatusBadRequest, "invalid_grant")
	if s := oaStatus(t, me, a4); s != http.StatusUnauthorized {
		t.Fatalf("family not revoked: %d", s)
	}
	oaWantError(t, refresh(r4), http.StatusBadRequest, "invalid_grant")

	// After the grace, the previous refresh token is a replay too.
	_, r1, _ = oaTokens(t, oaExchange(t, ts.URL, "tg", oaCode(t, nil, ts.URL, "tg", "alice", "alice-pw", "Therefore_User offline_access")))
	a2, _, _ = oaTokens(t, refresh(r1))
	time.Sleep(2200 * time.Millisecond)
	oaWantError(t, refresh(r1), http.StatusBadRequest, "invalid_grant")
	if s := oaStatus(t, me, a2); s != http.StatusUnauthorized {
		t.Fatalf("family not revoked after the grace: %d", s)
	}
}

// TestOAuthRevoke is RFC 7009.
func TestOAuthRevoke(t *testing.T) {
	ts := start(t, oauthConfig)
	me := ts.URL + "/t/tx/entitlements/licenses"
	revoke := func(id, secret, token, hint string) response {
		form := url.Values{"token": {token}}
		if hint != "" {
			form.Set("token_type_hint", hint)
		}
		return postForm(t, ts.URL+"/t/tx/oauth2/revoke", form, map[string]string{"Authorization": oaBasic(id, secret)})
	}
	ok := func(r response) {
		t.Helper()
		if r.Status != http.StatusOK || r.json(t)["ok"] != true {
			t.Fatalf("revoke: %d %s", r.Status, r.Body)
		}
	}
	alice := oaNewBrowser(t)
	access, refresh, _ := oaTokens(t, oaExchange(t, ts.URL, "tx", oaCode(t, alice, ts.URL, "tx", "alice", "alice-pw", "Therefore_User offline_access")))

	// Revoking the access token kills that token only.
	ok(revoke("tf-app", "tf-secret", access, "access_token"))
	if s := oaStatus(t, me, access); s != http.StatusUnauthorized {
		t.Fatalf("revoked access token: %d", s)
	}
	access, refresh, _ = oaTokens(t, oaRefresh(t, ts.URL, "tx", "tf-app", "tf-secret", refresh))
	if s := oaStatus(t, me, access); s != http.StatusOK {
		t.Fatalf("session after revoking an access token: %d", s)
	}

	// Another client may not revoke it; unknown oaTokens are fine; the request is checked.
	oaWantError(t, revoke("rs", "rs-secret", refresh, ""), http.StatusBadRequest, "unauthorized_client")
	ok(revoke("tf-app", "tf-secret", "no-such-token", ""))
	oaWantError(t, revoke("tf-app", "wrong", refresh, ""), http.StatusUnauthorized, "invalid_client")
	oaWantError(t, revoke("tf-app", "tf-secret", "", ""), http.StatusBadRequest, "invalid_request")

	// Revoking the refresh token (with a wrong hint: only a hint) ends the session; its
	// seat lingers: bob is refused, alice's own device may take it back.
	ok(revoke("tf-app", "tf-secret", refresh, "access_token"))
	if s := oaStatus(t, me, access); s != http.StatusUnauthorized {
		t.Fatalf("session survived the revocation: %d", s)
	}
	oaWantError(t, oaRefresh(t, ts.URL, "tx", "tf-app", "tf-secret", refresh), http.StatusBadRequest, "invalid_grant")
	r := oaExchange(t, ts.URL, "tx", oaCode(t, nil, ts.URL, "tx", "bob", "bob-pw", "Therefore_User"))
	if m := oaWantError(t, r, http.StatusForbidden, "access_denied"); m["license_error"] != "licenseQuotaExceeded" {
		t.Fatalf("bob during the linger: %s", r.Body)
	}
	oaTokens(t, oaExchange(t, ts.URL, "tx", oaCode(t, alice, ts.URL, "tx", "alice", "alice-pw", "Therefore_User")))
	ok(revoke("tf-app", "tf-secret", refresh, "")) // already revoked: still 200

	// A public client revokes its own oaTokens with its client_id.
	verifier := oauth2.GenerateVerifier()
	loc := alice.authorize(ts.URL, oaAuthorizeURL(ts.URL, "/t/tx/oauth2/authorize", map[string]string{
		"client_id": "web-app", "redirect_uri": oaWebRedirect, "scope": "Therefore_Read offline_access",
		"code_challenge": oauth2.S256ChallengeFromVerifier(verifier), "code_challenge_method": "S256",
	}), "alice", "alice-pw")
	_, pubRefresh, _ := oaTokens(t, postForm(t, ts.URL+"/t/tx/oauth2/token", url.Values{"grant_type": {"authorization_code"},
		"code": {loc.Query().Get("code")}, "client_id": {"web-app"}, "redirect_uri": {oaWebRedirect}, "code_verifier": {verifier}}, nil))
	ok(postForm(t, ts.URL+"/t/tx/oauth2/revoke", url.Values{"token": {pubRefresh}, "client_id": {"web-app"}}, nil))
	oaWantError(t, postForm(t, ts.URL+"/t/tx/oauth2/token", url.Values{"grant_type": {"refresh_token"},
		"refresh_token": {pubRefresh}, "client_id": {"web-app"}}, nil), http.StatusBadRequest, "invalid_grant")
}

// TestOAuthIntrospect is RFC 7662 with Leasehold's members.
func TestOAuthIntrospect(t *testing.T) {
	ts := start(t, oauthConfig)
	access, refresh, _ := oaTokens(t, oaExchange(t, ts.URL, "tx", oaCode(t, nil, ts.URL, "tx", "alice", "alice-pw", "Therefore_User offline_access")))
	before := time.Now().Unix()
	in := oaIntrospect(t, ts.URL, "tx", "rs", "rs-secret", access)
	for k, want := range map[string]any{
		"active": true, "scope": "Therefore_User offline_access", "client_id": "tf-app", "username": "alice",
		"sub": "alice", "tenant": "tx", "seat": true, "token_type": "access_token", "iss": ts.URL + "/t/tx",
	} {
		if in[k] != want {
			t.Fatalf("%s = %v, want %v (%v)", k, in[k], want, in)
		}
	}
	if exp, _ := in["exp"].(float64); int64(exp) < before || int64(exp) > before+61 {
		t.Fatalf("exp %v", in["exp"])
	}
	sid, _ := in["session_id"].(string)
	if sid == "" {
		t.Fatalf("session_id: %v", in)
	}
	in = oaIntrospect(t, ts.URL, "tx", "tf-app", "tf-secret", refresh)
	if in["active"] != true || in["token_type"] != "refresh_token" || in["session_id"] != sid {
		t.Fatalf("refresh token: %v", in)
	}
	// Inactive: exactly {"active": false}, for unknown oaTokens and for another tenant's.
	if in := oaIntrospect(t, ts.URL, "tx", "rs", "rs-secret", "nope"); !reflect.DeepEqual(in, map[string]any{"active": false}) {
		t.Fatalf("unknown token: %v", in)
	}
	if in := oaIntrospect(t, ts.URL, "jim", "jim-a", "a-secret", access); !reflect.DeepEqual(in, map[string]any{"active": false}) {
		t.Fatalf("another tenant's token: %v", in)
	}
	// Client authentication is required, and a public client cannot give it.
	oaWantError(t, postForm(t, ts.URL+"/t/tx/oauth2/introspect", url.Values{"token": {access}}, nil), http.StatusUnauthorized, "invalid_client")
	oaWantError(t, postForm(t, ts.URL+"/t/tx/oauth2/introspect", url.Values{"token": {access}, "client_id": {"web-app"}}, nil),
		http.StatusUnauthorized, "invalid_client")
	oaWantError(t, postForm(t, ts.URL+"/t/tx/oauth2/introspect", url.Values{}, map[string]string{"Authorization": oaBasic("rs", "rs-secret")}),
		http.StatusBadRequest, "invalid_request")
	// Logoff: inactive.
	if r := do(t, http.MethodPost, ts.URL+"/oauth2/logoff", map[string]string{"Authorization": "Bearer " + access}, ""); r.Status != http.StatusOK {
		t.Fatalf("logoff: %d %s", r.Status, r.Body)
	}
	if in := oaIntrospect(t, ts.URL, "tx", "rs", "rs-secret", refresh); in["active"] != false {
		t.Fatalf("after logoff: %v", in)
	}
}

// TestOAuthMetadata is RFC 8414 (and the OpenID configuration alias).
func TestOAuthMetadata(t *testing.T) {
	ts := start(t, oauthConfig)
	doc := func(u string) map[string]any {
		t.Helper()
		r := get(t, u, "")
		if r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", u, r.Status, r.Body)
		}
		return r.json(t)
	}
	m := doc(ts.URL + "/t/tg/.well-known/oauth-authorization-server")
	iss := ts.URL + "/t/tg"
	for k, want := range map[string]string{
		"issuer": iss, "authorization_endpoint": iss + "/oauth2/authorize", "token_endpoint": iss + "/oauth2/token",
		"revocation_endpoint": iss + "/oauth2/revoke", "introspection_endpoint": iss + "/oauth2/introspect",
		"jwks_uri": iss + "/.well-known/jwks.json",
	} {
		if m[k] != want {
			t.Fatalf("%s = %v, want %s", k, m[k], want)
		}
	}
	if !reflect.DeepEqual(m["code_challenge_methods_supported"], []any{"S256"}) ||
		!reflect.DeepEqual(m["grant_types_supported"], []any{"authorization_code", "client_credentials", "refresh_token"}) ||
		!reflect.DeepEqual(m["response_types_supported"], []any{"code"}) {
		t.Fatalf("metadata: %v", m)
	}
	for _, u := range []string{
		ts.URL + "/t/tg/.well-known/openid-configuration",
		ts.URL + "/.well-known/oauth-authorization-server?tenant=tg",
		ts.URL + "/.well-known/openid-configuration?tenant=tg",
		ts.URL + "/.well-known/oauth-authorization-server/t/tg",
	} {
		if other := doc(u); !reflect.DeepEqual(other, m) {
			t.Fatalf("%s differs: %v", u, other)
		}
	}
	// Without a tenant: the default one (tx). The endpoints it names really work.
	if d := doc(ts.URL + "/.well-known/openid-configuration"); d["issuer"] != ts.URL+"/t/tx" {
		t.Fatalf("default tenant: %v", d)
	}
	if r := get(t, m["jwks_uri"].(string), ""); r.Status != http.StatusOK {
		t.Fatalf("jwks_uri: %d", r.Status)
	}
	if r := get(t, ts.URL+"/.well-known/oauth-authorization-server/t/nope", ""); r.Status != http.StatusNotFound {
		t.Fatalf("unknown tenant: %d", r.Status)
	}
}
