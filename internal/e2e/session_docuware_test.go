package e2e

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestSessionDocuWareScenario follows the DocuWare seed with one seat anchored on
// [user, hw] and a 2 s linger: a logoff leaves the seat to its owner for the linger; a login
// token made before the logoff reclaims it from any device; a Single token works once.
func TestSessionDocuWareScenario(t *testing.T) {
	ts := start(t, sessionConfig)
	base := ts.URL + "/t/dw"
	const noSeat = "None of the registered licenses are available for client "
	seats := func() int { return len(adminLeases(t, ts.URL, "dw")) }

	// alice logs in from a browser without a device cookie: she gets one, and the seat.
	r := postForm(t, base+"/session/login", url.Values{"username": {"alice"}, "password": {"alice-pw"}}, nil)
	_, _, cookies := sessGrant(t, r)
	session, device := cookies["lh_session"], cookies["lh_device"]
	if session == nil || device == nil || session.Path != "/t/dw/" {
		t.Fatalf("cookies: %v", cookies)
	}
	// The cookie keeps the session (and its one license): no Bearer needed.
	sessWant(t, "cookie use", do(t, http.MethodGet, base+"/entitlements/licenses", sessCookieHeader(session), ""), http.StatusOK)

	// She makes a login token (the seed's body), with the cookie, then logs off.
	r = do(t, http.MethodPost, base+"/session/login-token", sessMerge(sessCookieHeader(session, device),
		map[string]string{"Content-Type": "application/json"}),
		`{"TargetProducts":["PlatformService"],"Usage":"Multi","Lifetime":"1.00:00:00"}`)
	multi, _ := sessWant(t, "login-token", r, http.StatusOK)["token"].(string)
	if multi == "" {
		t.Fatalf("no token: %s", r.Body)
	}
	// The admin API lists it, without its seat key.
	lt := sessWant(t, "admin login tokens", get(t, ts.URL+"/admin/v1/tenants/dw/users/alice/login-tokens", "test-admin"), http.StatusOK)
	if list, _ := lt["login_tokens"].([]any); len(list) != 1 {
		t.Fatalf("admin login tokens: %v", lt)
	} else if det := list[0].(map[string]any)["details"].(map[string]any); det["usage"] != "Multi" || det["seat_key"] != nil {
		t.Fatalf("admin login token details: %v", det)
	}
	sessWant(t, "logoff", do(t, http.MethodPost, base+"/session/logout", sessCookieHeader(session, device), ""), http.StatusOK)
	sessWant(t, "cookie after logoff", do(t, http.MethodGet, base+"/entitlements/licenses", sessCookieHeader(session), ""), http.StatusUnauthorized)

	// The seat lingers: bob is refused with the seed's message.
	m := sessWant(t, "bob during linger", sessLogin(t, base, "bob", "bob-pw", nil, nil), http.StatusUnauthorized)
	if m["error"] != "license_unavailable" || m["message"] != noSeat+"bob" {
		t.Fatalf("bob during linger: %v", m)
	}
	// alice from a new device (no device cookie) is another anchor: refused too.
	m = sessWant(t, "alice, new device", sessLogin(t, base, "alice", "alice-pw", nil, nil), http.StatusUnauthorized)
	if m["message"] != noSeat+"alice" {
		t.Fatalf("alice from a new device: %v", m)
	}

	// The login token reclaims the lingering seat, from yet another device.
	r = do(t, http.MethodPost, base+"/session/token-login", map[string]string{"Content-Type": "application/json"}, `{"token":"`+multi+`"}`)
	tok2, _, c2 := sessGrant(t, r)
	if n := seats(); n != 1 {
		t.Fatalf("%d leases after the token login, want the one reclaimed seat", n)
	}
	if c2["lh_device"] == nil || c2["lh_device"].Value == device.Value {
		t.Fatalf("the token login's device cookie: %v", c2["lh_device"])
	}
	// The reclaimed session is held: a Multi token cannot put a second device on the seat.
	m = sessWant(t, "multi token while held", do(t, http.MethodPost, base+"/session/token-login",
		map[string]string{"Content-Type": "application/json"}, `{"token":"`+multi+`"}`), http.StatusUnauthorized)
	if m["message"] != noSeat+"alice" {
		t.Fatalf("second device on the token: %v", m)
	}
	// The reclaiming session keeps working past touches (its renewals find its seat).
	sessWant(t, "reclaimed session in use", get(t, base+"/entitlements/licenses", tok2), http.StatusOK)

	// A Single token (form body) works once.
	r = do(t, http.MethodPost, base+"/session/login-token", sessMerge(sessBearer(tok2), map[string]string{"Content-Type": "application/json"}),
		`{"TargetProducts":["PlatformService"],"Usage":"Single","Lifetime":"00:05:00"}`)
	single, _ := sessWant(t, "single token", r, http.StatusOK)["token"].(string)
	sessWant(t, "logoff 2", do(t, http.MethodPost, base+"/session/logout", sessBearer(tok2), ""), http.StatusOK)
	r = postForm(t, base+"/session/token-login", url.Values{"token": {single}}, nil)
	tok3, _, _ := sessGrant(t, r)
	sessWant(t, "logoff 3", do(t, http.MethodPost, base+"/session/logout", sessBearer(tok3), ""), http.StatusOK)
	m = sessWant(t, "single token again", postForm(t, base+"/session/token-login", url.Values{"token": {single}}, nil), http.StatusUnauthorized)
	if m["error"] != "invalid_token" {
		t.Fatalf("single token again: %v", m)
	}
	// The Multi token still works (the seat lingers again) and its session logs off.
	tok4, _, _ := sessGrant(t, do(t, http.MethodPost, base+"/session/token-login",
		map[string]string{"Content-Type": "application/json"}, `{"Token":"`+multi+`"}`))
	sessWant(t, "logoff 4", do(t, http.MethodPost, base+"/session/logout", sessBearer(tok4), ""), http.StatusOK)

	// Bad tokens and bodies.
	sessWant(t, "unknown token", postForm(t, base+"/session/token-login", url.Values{"token": {"nope"}}, nil), http.StatusUnauthorized)
	sessWant(t, "bad lifetime", do(t, http.MethodPost, base+"/session/login-token", sessMerge(sessBearer(tok4), map[string]string{"Content-Type": "application/json"}),
		`{"Usage":"Multi","Lifetime":"forever"}`), http.StatusUnauthorized) // tok4's session has ended

	// After the linger with no reclaim, bob gets the seat.
	time.Sleep(2500 * time.Millisecond)
	sessGrant(t, sessLogin(t, base, "bob", "bob-pw", nil, nil))
	if n := seats(); n != 1 {
		t.Fatalf("%d leases, want bob's one", n)
	}
}

// TestSessionLoginTokenRules: lifetime parsing and bounds, expiry, and revocation when the
// user's password changes.
func TestSessionLoginTokenRules(t *testing.T) {
	ts := start(t, sessionConfig)
	base := ts.URL + "/t/wp"
	tok, _, _ := sessGrant(t, sessLogin(t, base, "alice", "alice-pw", nil, nil))
	mk := func(body string) response {
		return do(t, http.MethodPost, base+"/session/login-token", sessMerge(sessBearer(tok), map[string]string{"Content-Type": "application/json"}), body)
	}
	for _, bad := range []string{`{"Lifetime":"forever"}`, `{"Lifetime":"400.00:00:00"}`, `{"Lifetime":"00:00:00"}`, `{"Lifetime":"-1:00:00"}`, `{"Usage":"Twice"}`, `{`} {
		sessWant(t, "bad body "+bad, mk(bad), http.StatusBadRequest)
	}
	short, _ := sessWant(t, "1 s token", mk(`{"Usage":"Multi","Lifetime":"00:00:01"}`), http.StatusOK)["token"].(string)
	long, _ := sessWant(t, "default token", mk(``), http.StatusOK)["token"].(string)
	time.Sleep(1200 * time.Millisecond)
	sessWant(t, "expired token", postForm(t, base+"/session/token-login", url.Values{"token": {short}}, nil), http.StatusUnauthorized)
	sessGrant(t, postForm(t, base+"/session/token-login", url.Values{"token": {long}}, nil))

	// A password change (admin API) revokes the user's login tokens.
	r := do(t, http.MethodPatch, ts.URL+"/admin/v1/tenants/wp/users/alice", sessMerge(sessBearer("test-admin"),
		map[string]string{"Content-Type": "application/json"}), `{"password":"new-pw"}`)
	sessWant(t, "password change", r, http.StatusOK)
	sessWant(t, "token after password change", postForm(t, base+"/session/token-login", url.Values{"token": {long}}, nil), http.StatusUnauthorized)
	// Another change that leaves the password alone keeps new tokens.
	tok, _, _ = sessGrant(t, sessLogin(t, base, "alice", "new-pw", nil, nil))
	keep, _ := sessWant(t, "token", do(t, http.MethodPost, base+"/session/login-token", sessBearer(tok), ""), http.StatusOK)["token"].(string)
	sessWant(t, "unrelated change", do(t, http.MethodPatch, ts.URL+"/admin/v1/tenants/wp/users/alice", sessMerge(sessBearer("test-admin"),
		map[string]string{"Content-Type": "application/json"}), `{"enabled":true}`), http.StatusOK)
	sessGrant(t, postForm(t, base+"/session/token-login", url.Values{"token": {keep}}, nil))
}
