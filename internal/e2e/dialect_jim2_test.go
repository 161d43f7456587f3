package e2e

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestDialectJim2 replays the Jim2 seed's C# client as HTTP, at the seed's own path
// (/Jim_Test/token, tenant jim-test): HTTP Basic TestClientId:password and the form
// grant_type=client_credentials&scope=view give a token that takes no seat; without a
// scope (all) the token holds the licensed session's one seat while its refresh token's
// 20-minute sliding window lives; logoff releases the seat, which lingers.
func TestDialectJim2(t *testing.T) {
	ts := start(t, dialectConfig)
	tokenURL := ts.URL + "/Jim_Test/token" // WebRequest.Create("http://localhost:80/Jim_Test/token")
	// sEncoded = Convert.ToBase64String(UTF-8 bytes of "TestClientId:password")
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("TestClientId:password"))
	post := func(body string, header map[string]string) response {
		h := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
		for k, v := range header {
			h[k] = v
		}
		return do(t, http.MethodPost, tokenURL, h, body)
	}

	// writer.Write("grant_type=client_credentials"); writer.Write("&scope=view"): read-only,
	// no licence count taken.
	view, _, body := oaTokens(t, post("grant_type=client_credentials&scope=view", map[string]string{"Authorization": basic}))
	if body["token_type"] != "bearer" || body["scope"] != "view" {
		t.Fatalf("view token: %v", body)
	}
	if n := len(adminLeases(t, ts.URL, "jim-test")); n != 0 {
		t.Fatalf("scope view took %d seats", n)
	}
	dlWant(t, "view token", get(t, ts.URL+"/t/jim-test/entitlements/licenses", view), http.StatusOK)

	// No scope: 'all', a full user licence, held while the refresh token is valid.
	full, refresh, body := oaTokens(t, post("grant_type=client_credentials", map[string]string{"Authorization": basic}))
	if body["scope"] != "all" || refresh == "" {
		t.Fatalf("licensed token: %v", body)
	}
	leases := adminLeases(t, ts.URL, "jim-test")
	if len(leases) != 1 {
		t.Fatalf("%d leases, want the licensed session's one", len(leases))
	}
	exp, _ := time.Parse(time.RFC3339, leases[0].(map[string]any)["expires_at"].(string))
	if left := time.Until(exp); left < 19*time.Minute || left > 20*time.Minute+5*time.Second {
		t.Fatalf("the seat is held for %v, not the refresh token's 20 minutes", left)
	}
	in := oaIntrospect(t, ts.URL, "jim-test", "TestClientId", "password", refresh)
	if left := time.Until(time.Unix(int64(in["exp"].(float64)), 0)); in["active"] != true || left < 19*time.Minute || left > 20*time.Minute+5*time.Second {
		t.Fatalf("refresh token: %v", in)
	}
	// Credentials in the body instead (client_id, client_secret): the same session and seat.
	again, _, _ := oaTokens(t, post("grant_type=client_credentials&client_id=TestClientId&client_secret=password", nil))
	if l := adminLeases(t, ts.URL, "jim-test"); len(l) != 1 || l[0].(map[string]any)["id"] != leases[0].(map[string]any)["id"] {
		t.Fatalf("the second token took another seat: %v", l)
	}
	// Requesting a new access token extends the window (Jim2's sliding refresh); the pair
	// it replaces dies.
	full2, refresh2, _ := oaTokens(t, postForm(t, tokenURL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}},
		map[string]string{"Authorization": basic}))
	if refresh2 == "" || refresh2 == refresh {
		t.Fatal("refresh did not rotate")
	}
	dlWant(t, "rotated access token", get(t, ts.URL+"/t/jim-test/entitlements/licenses", full), http.StatusUnauthorized)

	// No licence left for another client, unless it asks for view only.
	other := "Basic " + base64.StdEncoding.EncodeToString([]byte("OtherClientId:other-password"))
	r := post("grant_type=client_credentials", map[string]string{"Authorization": other})
	if m := oaWantError(t, r, http.StatusForbidden, "access_denied"); m["license_error"] != "licenseQuotaExceeded" ||
		m["error_description"] != "None of the registered licenses are available for client OtherClientId" {
		t.Fatalf("other client: %s", r.Body)
	}
	oaTokens(t, post("grant_type=client_credentials&scope=view", map[string]string{"Authorization": other}))

	// Logoff (Bearer) releases the licence: every token of the session dies, the seat
	// lingers for 2 s, then the other client gets it.
	r = do(t, http.MethodPost, ts.URL+"/Jim_Test/logoff", map[string]string{"Authorization": "Bearer " + full2}, "")
	if r.Status != http.StatusOK || r.json(t)["ok"] != true {
		t.Fatalf("logoff: %d %s", r.Status, r.Body)
	}
	for _, tok := range []string{view, full2, again} {
		dlWant(t, "token after logoff", get(t, ts.URL+"/t/jim-test/entitlements/licenses", tok), http.StatusUnauthorized)
	}
	dlWant(t, "logoff again", do(t, http.MethodPost, ts.URL+"/Jim_Test/logoff", map[string]string{"Authorization": "Bearer " + full2}, ""), http.StatusUnauthorized)
	oaWantError(t, post("grant_type=client_credentials", map[string]string{"Authorization": other}), http.StatusForbidden, "access_denied")
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = post("grant_type=client_credentials", map[string]string{"Authorization": other})
		if r.Status == http.StatusOK || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, _, body := oaTokens(t, r); body["scope"] != "all" {
		t.Fatalf("other client after the linger: %v", body)
	}
}
