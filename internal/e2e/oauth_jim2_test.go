package e2e

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestOAuthJim2Scenario is the Jim2 seed: client credentials hold a licensed session (and
// its one seat) while the refresh token lives; asking again rejoins it; scope view takes no
// seat; logoff releases the seat, which lingers.
func TestOAuthJim2Scenario(t *testing.T) {
	ts := start(t, oauthConfig)
	tokenURL := ts.URL + "/oauth2/token?tenant=jim"
	cc := func(id, secret, scope string) response {
		form := url.Values{"grant_type": {"client_credentials"}}
		if scope != "" {
			form.Set("scope", scope)
		}
		return postForm(t, tokenURL, form, map[string]string{"Authorization": oaBasic(id, secret)})
	}

	// Client A: a token, a refresh token (refresh_with_client_credentials) and the seat.
	a1, aRefresh, body := oaTokens(t, cc("jim-a", "a-secret", ""))
	if aRefresh == "" || body["token_type"] != "bearer" || body["scope"] != "all" {
		t.Fatalf("A: %v", body)
	}
	in := oaIntrospect(t, ts.URL, "tx", "rs", "rs-secret", a1)
	if in["active"] != false {
		t.Fatalf("a token of tenant jim introspected in tenant x: %v", in)
	}
	leases := adminLeases(t, ts.URL, "jim")
	if len(leases) != 1 {
		t.Fatalf("A holds %d leases", len(leases))
	}
	seat := leases[0].(map[string]any)["id"]

	// A asks again (client_secret_post this time): the same session and seat.
	a2, _, _ := oaTokens(t, postForm(t, tokenURL, url.Values{
		"grant_type": {"client_credentials"}, "client_id": {"jim-a"}, "client_secret": {"a-secret"},
	}, nil))
	leases = adminLeases(t, ts.URL, "jim")
	if len(leases) != 1 || leases[0].(map[string]any)["id"] != seat {
		t.Fatalf("A's second token took another seat: %v", leases)
	}
	for _, tok := range []string{a1, a2} {
		if s := oaStatus(t, ts.URL+"/t/jim/entitlements/licenses", tok); s != http.StatusOK {
			t.Fatalf("A's token refused: %d", s)
		}
	}

	// Client B: no seat left.
	r := cc("jim-b", "b-secret", "")
	m := oaWantError(t, r, http.StatusForbidden, "access_denied")
	if m["license_error"] != "licenseQuotaExceeded" ||
		m["error_description"] != "None of the registered licenses are available for client jim-b" {
		t.Fatalf("B: %s", r.Body)
	}
	// B with scope view: a token, no seat.
	b1, _, body := oaTokens(t, cc("jim-b", "b-secret", "view"))
	if body["scope"] != "view" {
		t.Fatalf("B view: %v", body)
	}
	if in := oaIntrospect(t, ts.URL, "jim", "jim-a", "a-secret", b1); in["active"] != true || in["seat"] != false {
		t.Fatalf("B's view token: %v", in)
	}
	if in := oaIntrospect(t, ts.URL, "jim", "jim-a", "a-secret", a2); in["active"] != true || in["seat"] != true || in["client_id"] != "jim-a" {
		t.Fatalf("A's token: %v", in)
	}

	// Jim2's sliding window: a refresh keeps A's session (and seat).
	a3, aRefresh2, _ := oaTokens(t, oaRefresh(t, ts.URL, "jim", "jim-a", "a-secret", aRefresh))
	if aRefresh2 == "" || aRefresh2 == aRefresh {
		t.Fatal("refresh did not rotate the refresh token")
	}

	// A logs off: the session ends, the seat lingers (B is still refused)...
	r = do(t, http.MethodPost, ts.URL+"/oauth2/logoff", map[string]string{"Authorization": "Bearer " + a3}, "")
	if r.Status != http.StatusOK || r.json(t)["ok"] != true {
		t.Fatalf("logoff: %d %s", r.Status, r.Body)
	}
	for _, tok := range []string{a1, a2, a3} {
		if s := oaStatus(t, ts.URL+"/t/jim/entitlements/licenses", tok); s != http.StatusUnauthorized {
			t.Fatalf("A's token survived the logoff: %d", s)
		}
	}
	oaWantError(t, oaRefresh(t, ts.URL, "jim", "jim-a", "a-secret", aRefresh2), http.StatusBadRequest, "invalid_grant")
	r = cc("jim-b", "b-secret", "")
	if m := oaWantError(t, r, http.StatusForbidden, "access_denied"); m["license_error"] != "licenseQuotaExceeded" {
		t.Fatalf("B during the linger: %s", r.Body)
	}

	// ...until the linger (2 s) has passed.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = cc("jim-b", "b-secret", "")
		if r.Status == http.StatusOK || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	b2, _, body := oaTokens(t, r)
	if body["scope"] != "all" {
		t.Fatalf("B: %v", body)
	}
	if in := oaIntrospect(t, ts.URL, "jim", "jim-b", "b-secret", b2); in["seat"] != true {
		t.Fatalf("B's licensed token holds no seat: %v", in)
	}
	// B's earlier view token belongs to the same (rejoined) session and still works.
	if s := oaStatus(t, ts.URL+"/t/jim/entitlements/licenses", b1); s != http.StatusOK {
		t.Fatalf("B's view token: %d", s)
	}
}
