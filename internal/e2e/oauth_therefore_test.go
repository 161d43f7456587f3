package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestOAuthThereforeScenario is the Therefore seed: a multi-tenant authorization-code grant
// (client_secret_basic, `?tenant=`), offline_access refresh oaTokens, a free read-only scope,
// tenant isolation, and a client that disabling shuts out at once.
func TestOAuthThereforeScenario(t *testing.T) {
	ts := start(t, oauthConfig)
	me := ts.URL + "/entitlements/licenses?tenant=tx"

	// With offline_access: a refresh token, and the seat (the license has one, anchored on
	// user and device: alice keeps her oaBrowser, and with it her lh_device cookie).
	alice := oaNewBrowser(t)
	access, refresh, body := oaTokens(t, oaExchange(t, ts.URL, "tx", oaCode(t, alice, ts.URL, "tx", "alice", "alice-pw", "Therefore_User offline_access")))
	if refresh == "" || body["token_type"] != "bearer" || body["scope"] != "Therefore_User offline_access" {
		t.Fatalf("grant: %v", body)
	}
	if n, ok := body["expires_in"].(float64); !ok || n <= 0 || n > 60 {
		t.Fatalf("expires_in: %v", body["expires_in"])
	}
	if s := oaStatus(t, me, access); s != http.StatusOK {
		t.Fatalf("access token: %d", s)
	}
	in := oaIntrospect(t, ts.URL, "tx", "rs", "rs-secret", access)
	if in["seat"] != true || in["username"] != "alice" || in["client_id"] != "tf-app" {
		t.Fatalf("introspect: %v", in)
	}

	// Refresh rotates: the new pair works, the old access and refresh oaTokens are dead.
	access2, refresh2, _ := oaTokens(t, oaRefresh(t, ts.URL, "tx", "tf-app", "tf-secret", refresh))
	if refresh2 == "" || refresh2 == refresh || access2 == access {
		t.Fatal("refresh did not rotate")
	}
	if s := oaStatus(t, me, access); s != http.StatusUnauthorized {
		t.Fatalf("rotated access token: %d", s)
	}
	if s := oaStatus(t, me, access2); s != http.StatusOK {
		t.Fatalf("new access token: %d", s)
	}
	// Presenting the rotated refresh token again (no refresh_grace) is a replay: the whole
	// family is revoked, so the new pair dies too, and with it the session and its seat
	// (which lingers).
	m := oaWantError(t, oaRefresh(t, ts.URL, "tx", "tf-app", "tf-secret", refresh), http.StatusBadRequest, "invalid_grant")
	if !strings.Contains(m["error_description"].(string), "revoked") {
		t.Fatalf("replay: %v", m)
	}
	if s := oaStatus(t, me, access2); s != http.StatusUnauthorized {
		t.Fatalf("access token of a revoked family: %d", s)
	}
	oaWantError(t, oaRefresh(t, ts.URL, "tx", "tf-app", "tf-secret", refresh2), http.StatusBadRequest, "invalid_grant")
	if n := len(adminLeases(t, ts.URL, "tx")); n != 0 {
		t.Fatalf("the revoked session still holds %d leases", n)
	}

	// Without offline_access: no refresh token. (alice's oaBrowser is still logged in, and the
	// lingering seat is hers: same user, same device.)
	_, refresh, body = oaTokens(t, oaExchange(t, ts.URL, "tx", oaCode(t, alice, ts.URL, "tx", "alice", "alice-pw", "Therefore_User")))
	if refresh != "" || body["scope"] != "Therefore_User" {
		t.Fatalf("no offline_access: %v", body)
	}

	// Therefore_Read holds no seat: bob gets a token though alice holds the only seat...
	readAccess, _, _ := oaTokens(t, oaExchange(t, ts.URL, "tx", oaCode(t, nil, ts.URL, "tx", "bob", "bob-pw", "Therefore_Read")))
	if in := oaIntrospect(t, ts.URL, "tx", "rs", "rs-secret", readAccess); in["active"] != true || in["seat"] != false {
		t.Fatalf("Therefore_Read: %v", in)
	}
	// ...while bob's licensed grant is refused for want of one.
	r := oaExchange(t, ts.URL, "tx", oaCode(t, nil, ts.URL, "tx", "bob", "bob-pw", "Therefore_User"))
	if m := oaWantError(t, r, http.StatusForbidden, "access_denied"); m["license_error"] != "licenseQuotaExceeded" ||
		m["error_description"] != "None of the registered licenses are available for client bob" {
		t.Fatalf("bob: %s", r.Body)
	}

	// A token of tenant tx is refused in tenant ty: by path prefix and by tenant=.
	if s := oaStatus(t, ts.URL+"/t/ty/entitlements/licenses", readAccess); s != http.StatusUnauthorized {
		t.Fatalf("tx token at /t/ty/: %d", s)
	}
	if s := oaStatus(t, ts.URL+"/t/ty/authz/.json?PlatformService", readAccess); s != http.StatusUnauthorized {
		t.Fatalf("tx token at /t/ty/authz/: %d", s)
	}
	if s := oaStatus(t, ts.URL+"/entitlements/licenses?tenant=ty", readAccess); s != http.StatusUnauthorized {
		t.Fatalf("tx token with tenant=ty: %d", s)
	}
	if s := oaStatus(t, ts.URL+"/authz/.json?PlatformService&tenant=ty", readAccess); s != http.StatusUnauthorized {
		t.Fatalf("tx token at /authz/ with tenant=ty: %d", s)
	}
	// ty's client of the same name cannot redeem tx's code either.
	code := oaCode(t, nil, ts.URL, "tx", "alice", "alice-pw", "Therefore_Read")
	oaWantError(t, postForm(t, ts.URL+"/t/ty/oauth2/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {oaTFRedirect}, "client_id": {"web-app"},
	}, nil), http.StatusBadRequest, "invalid_grant")

	// Disabling the client: its live oaTokens stop working at the next request, its grants fail.
	access, _, _ = oaTokens(t, oaExchange(t, ts.URL, "tx", code))
	_, refresh, _ = oaTokens(t, oaExchange(t, ts.URL, "tx", oaCode(t, nil, ts.URL, "tx", "bob", "bob-pw", "Therefore_Read offline_access")))
	if s := oaStatus(t, me, access); s != http.StatusOK {
		t.Fatalf("before disabling: %d", s)
	}
	r = do(t, http.MethodPatch, ts.URL+"/admin/v1/tenants/tx/clients/tf-app",
		map[string]string{"Authorization": "Bearer test-admin", "Content-Type": "application/json"}, `{"enabled": false}`)
	if r.Status != http.StatusOK {
		t.Fatalf("disable: %d %s", r.Status, r.Body)
	}
	if s := oaStatus(t, me, access); s != http.StatusUnauthorized {
		t.Fatalf("disabled client's token: %d", s)
	}
	if in := oaIntrospect(t, ts.URL, "tx", "rs", "rs-secret", access); len(in) != 1 || in["active"] != false {
		t.Fatalf("disabled client's token introspected: %v", in)
	}
	oaWantError(t, oaRefresh(t, ts.URL, "tx", "tf-app", "tf-secret", refresh), http.StatusUnauthorized, "invalid_client")
	// The authorization endpoint no longer knows it: an error page, no redirect.
	b := oaNewBrowser(t)
	r = b.get(oaAuthorizeURL(ts.URL, "/t/tx/oauth2/authorize", map[string]string{"client_id": "tf-app", "redirect_uri": oaTFRedirect}))
	if r.Status != http.StatusBadRequest || r.Header.Get("Location") != "" {
		t.Fatalf("authorize for a disabled client: %d %v", r.Status, r.Header)
	}
}
