package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestDialectTherefore replays the Therefore seed: the authorization URL of its example
// (tenant NTWare1, scope "Therefore_User offline_access") through the login page, the token
// request with HTTP Basic client authentication, and the refresh request; both answer
// {"access_token","token_type":"bearer","expires_in":1199,"refresh_token"}.
func TestDialectTherefore(t *testing.T) {
	ts := start(t, dialectConfig)
	const redirect = "https://oauth2testclient.azurewebsites.net/"
	basic := map[string]string{"Authorization": oaBasic("therefore-app", "therefore-secret")}

	// https://oauth.thereforeonline.com/OAuth/Authorize?tenant=<tenant_name>&client_id=<client_id>&redirect_uri=https%3A%2F%2Foauth2testclient.azurewebsites.net%2F&state=HrjWnIN_kte4ZheGPJWTBQ&scope=Therefore_User%20offline_access&response_type=code
	authURL := ts.URL + "/OAuth/Authorize?tenant=NTWare1&client_id=therefore-app&redirect_uri=https%3A%2F%2Foauth2testclient.azurewebsites.net%2F&state=HrjWnIN_kte4ZheGPJWTBQ&scope=Therefore_User%20offline_access&response_type=code"
	alice := oaNewBrowser(t)
	page := alice.get(authURL)
	loginForm := oaParseLoginForm(t, page)
	if !strings.HasPrefix(loginForm.Action, "/OAuth/Authorize?") {
		t.Fatalf("the login form posts to %q, not back to /OAuth/Authorize", loginForm.Action)
	}
	loginForm.Fields.Set("username", "alice")
	loginForm.Fields.Set("password", "alice-pw")
	loc := oaRedirectOf(t, alice.post(ts.URL+loginForm.Action, loginForm.Fields, nil))
	code := loc.Query().Get("code")
	if !strings.HasPrefix(loc.String(), redirect+"?") || code == "" || loc.Query().Get("state") != "HrjWnIN_kte4ZheGPJWTBQ" {
		t.Fatalf("redirect: %s", loc)
	}

	// POST https://oauth.thereforeonline.com/OAuth/Token?tenant=NTWare1  Authorization: Basic clientid:clientsecret
	// Body: code=<auth_code>&redirect_uri=<redirect_uri>&grant_type=authorization_code
	want := func(what string, r response) (access, refresh string) {
		t.Helper()
		access, refresh, body := oaTokens(t, r)
		if refresh == "" || body["token_type"] != "bearer" || body["expires_in"] != float64(1199) {
			t.Fatalf("%s: %s", what, r.Body)
		}
		return access, refresh
	}
	r := do(t, http.MethodPost, ts.URL+"/OAuth/Token?tenant=NTWare1", map[string]string{
		"Authorization": basic["Authorization"], "Content-Type": "application/x-www-form-urlencoded",
	}, "code="+url.QueryEscape(code)+"&redirect_uri="+url.QueryEscape(redirect)+"&grant_type=authorization_code")
	access, refresh := want("token", r)
	// The Bearer token works on the tenant's API, and holds its seat.
	dlWant(t, "access token", get(t, ts.URL+"/t/ntware1/entitlements/licenses", access), http.StatusOK)
	if n := len(adminLeases(t, ts.URL, "ntware1")); n != 1 {
		t.Fatalf("%d leases, want alice's one", n)
	}

	// Body: refresh_token=<refresh_token>&grant_type=refresh_token
	r = do(t, http.MethodPost, ts.URL+"/OAuth/Token?tenant=NTWare1", map[string]string{
		"Authorization": basic["Authorization"], "Content-Type": "application/x-www-form-urlencoded",
	}, "refresh_token="+url.QueryEscape(refresh)+"&grant_type=refresh_token")
	access2, refresh2 := want("refresh", r)
	if access2 == access || refresh2 == refresh {
		t.Fatal("refresh did not rotate")
	}
	dlWant(t, "old access token", get(t, ts.URL+"/t/ntware1/entitlements/licenses", access), http.StatusUnauthorized)
	dlWant(t, "new access token", get(t, ts.URL+"/t/ntware1/entitlements/licenses", access2), http.StatusOK)

	// Therefore_Read is read-only and takes no seat: bob gets it while alice holds the only
	// one, and is refused Therefore_User.
	code = dlThereforeCode(t, ts.URL, "bob", "bob-pw", "Therefore_Read")
	readTok, _, body := oaTokens(t, postForm(t, ts.URL+"/OAuth/Token?tenant=ntware1",
		url.Values{"code": {code}, "redirect_uri": {redirect}, "grant_type": {"authorization_code"}}, basic))
	if body["scope"] != "Therefore_Read" || body["expires_in"] != float64(1199) {
		t.Fatalf("Therefore_Read: %v", body)
	}
	dlWant(t, "read token", get(t, ts.URL+"/t/ntware1/entitlements/licenses", readTok), http.StatusOK)
	code = dlThereforeCode(t, ts.URL, "bob", "bob-pw", "Therefore_User")
	r = postForm(t, ts.URL+"/OAuth/Token?tenant=ntware1", url.Values{"code": {code}, "redirect_uri": {redirect}, "grant_type": {"authorization_code"}}, basic)
	if m := oaWantError(t, r, http.StatusForbidden, "access_denied"); m["license_error"] != "licenseQuotaExceeded" {
		t.Fatalf("bob's Therefore_User: %s", r.Body)
	}

	// The client must be registered in the tenant, and authenticate.
	r = oaNewBrowser(t).get(strings.Replace(authURL, "client_id=therefore-app", "client_id=unknown-app", 1))
	if r.Status != http.StatusBadRequest || r.Header.Get("Location") != "" {
		t.Fatalf("authorize for an unknown client: %d %v", r.Status, r.Header)
	}
	oaWantError(t, postForm(t, ts.URL+"/OAuth/Token?tenant=NTWare1", url.Values{"refresh_token": {refresh2}, "grant_type": {"refresh_token"}},
		map[string]string{"Authorization": oaBasic("therefore-app", "wrong")}), http.StatusUnauthorized, "invalid_client")
}

// dlThereforeCode signs user in (a new browser) at Therefore's authorization endpoint and returns
// the code.
func dlThereforeCode(t *testing.T, base, user, password, scope string) string {
	t.Helper()
	loc := oaNewBrowser(t).login(base, oaAuthorizeURL(base, "/OAuth/Authorize?tenant=NTWare1", map[string]string{
		"client_id": "therefore-app", "redirect_uri": "https://oauth2testclient.azurewebsites.net/", "scope": scope, "state": "s",
	}), user, password)
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("redirect: %s", loc)
	}
	return code
}
