package e2e

import (
	"net/http"
	"strconv"
	"testing"
)

// TestSessionCrossSite: a cookie-authenticated state change that the browser marks
// cross-site is refused; the same request with a Bearer token is not (a browser never adds
// one by itself). A GET never changes state on the strength of a cookie.
func TestSessionCrossSite(t *testing.T) {
	ts := start(t, sessionConfig)
	base := ts.URL
	tok, _, cookies := sessGrant(t, sessLogin(t, base, "alice", "alice-pw", nil, nil))
	cookie := sessCookieHeader(cookies["lh_session"])
	json := map[string]string{"Content-Type": "application/json"}

	for name, h := range map[string]map[string]string{
		"sec-fetch-site":  {"Sec-Fetch-Site": "cross-site"},
		"foreign origin":  {"Origin": "https://evil.example"},
		"same-site other": {"Sec-Fetch-Site": "same-site"},
	} {
		r := do(t, http.MethodPost, base+"/session/login-token", sessMerge(cookie, json, h), `{}`)
		if m := sessWant(t, name, r, http.StatusForbidden); m["error"] != "cross_site_request" {
			t.Fatalf("%s: %v", name, m)
		}
		sessWant(t, name+" put", do(t, http.MethodPut, base+"/session/documents/x", sessMerge(cookie, h), "x"), http.StatusForbidden)
		sessWant(t, name+" logout", do(t, http.MethodPost, base+"/session/logout", sessMerge(cookie, h), ""), http.StatusForbidden)
		// The same with the Bearer token: fine.
		sessWant(t, name+" bearer", do(t, http.MethodPost, base+"/session/login-token", sessMerge(sessBearer(tok), json, h), `{}`), http.StatusOK)
	}
	// Same-origin requests (as a browser marks them) and non-browser ones pass.
	sessWant(t, "same-origin", do(t, http.MethodPost, base+"/session/login-token", sessMerge(cookie, json, map[string]string{"Sec-Fetch-Site": "same-origin"}), `{}`), http.StatusOK)
	sessWant(t, "own origin", do(t, http.MethodPut, base+"/session/documents/x", sessMerge(cookie, map[string]string{"Origin": base}), "x"), http.StatusOK)
	sessWant(t, "no browser headers", do(t, http.MethodPost, base+"/session/login-token", sessMerge(cookie, json), `{}`), http.StatusOK)
	// Safe reads with the cookie are fine cross-site (SameSite=Lax already keeps the cookie
	// off cross-site subrequests); a GET logout needs a Bearer token.
	sessWant(t, "cross-site read", do(t, http.MethodGet, base+"/session/documents", sessMerge(cookie, map[string]string{"Sec-Fetch-Site": "cross-site"}), ""), http.StatusOK)
	sessWant(t, "GET logout by cookie", do(t, http.MethodGet, base+"/session/logout", cookie, ""), http.StatusMethodNotAllowed)
	// Cookies authenticate only browser-facing routes: /authz wants the token.
	sessWant(t, "authz with the cookie", do(t, http.MethodGet, base+"/authz/.json?AppFeature-XYZ", cookie, ""), http.StatusUnauthorized)
	sessWant(t, "session still alive", do(t, http.MethodGet, base+"/session/documents", cookie, ""), http.StatusOK)
}

// TestSessionLoginThrottled: repeated failures for one user answer 429 with Retry-After,
// even with the right password; other users are unaffected until the address itself has
// failed too often.
func TestSessionLoginThrottled(t *testing.T) {
	ts := start(t, sessionConfig)
	base := ts.URL
	for i := range 5 {
		sessWant(t, "failure "+strconv.Itoa(i), sessLogin(t, base, "carol", "wrong", nil, nil), http.StatusUnauthorized)
	}
	r := sessLogin(t, base, "carol", "carol-pw", nil, nil)
	if m := sessWant(t, "throttled", r, http.StatusTooManyRequests); m["error"] != "too_many_attempts" {
		t.Fatalf("throttled: %v", m)
	}
	if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After: %q", r.Header.Get("Retry-After"))
	}
	sessGrant(t, sessLogin(t, base, "alice", "alice-pw", nil, nil))
	// The address: 20 failures across users, then even a new name is throttled.
	for i := range 15 {
		sessWant(t, "address failure "+strconv.Itoa(i), sessLogin(t, base, "user"+strconv.Itoa(i), "x", nil, nil), http.StatusUnauthorized)
	}
	sessWant(t, "address throttled", sessLogin(t, base, "alice", "alice-pw", nil, nil), http.StatusTooManyRequests)
}
