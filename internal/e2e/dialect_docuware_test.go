package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The seed's example body for /Organizations/LoginToken, as the seed prints it.
const dwSeedLoginTokenBody = `{
  "TargetProducts":["PlatformService"], 
  "Usage":"Multi",

  "Lifetime":"1.00:00:00"
}`

// TestDialectDocuWare replays the DocuWare seed against tenant dw (one seat on [user, hw],
// a 2 s linger, idle_timeout 1 s): Logon sets .DWPLATFORMAUTH and DWPLATFORMBROWSERID; the
// cookie keeps the session and its one license past idle_timeout; a login token made
// before LogOff lets TokenLogOn reuse the lingering seat, while another user's Logon
// within the linger gets the seed's 401.
func TestDialectDocuWare(t *testing.T) {
	ts := start(t, dialectConfig)
	base := ts.URL + "/t/dw/DocuWare/Platform"
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
	licenses := ts.URL + "/t/dw/entitlements/licenses"
	const noSeat = "None of the registered licenses are available for client "

	// Logon (the application's cookie container keeps the cookies).
	app := dlJar(t)
	logon := url.Values{"UserName": {"alice"}, "Password": {"alice-pw"}, "Organization": {"Peters Engineering"}}
	r := dlDo(t, app, http.MethodPost, base+"/Account/Logon", form, logon.Encode())
	dlWant(t, "logon", r, http.StatusOK)
	cookies := sessCookies(r)
	auth, browser := cookies[".DWPLATFORMAUTH"], cookies["DWPLATFORMBROWSERID"]
	if auth == nil || browser == nil || auth.Value == "" || browser.Value == "" {
		t.Fatalf("logon cookies: %v", r.Header["Set-Cookie"])
	}
	if !auth.HttpOnly || auth.MaxAge != 175200*3600 || auth.Path != "/t/dw/" {
		t.Fatalf(".DWPLATFORMAUTH: %+v (want HttpOnly, 20 years, the tenant's path)", auth)
	}
	if m := r.json(t); m["UserName"] != "alice" || m["Organization"] != "Peters Engineering" {
		t.Fatalf("logon answer: %s", r.Body)
	}
	if _, ok := cookies["lh_session"]; ok {
		t.Fatal("a DocuWare logon set the session API's cookie")
	}

	// The cookie keeps working, past idle_timeout, holding one seat.
	dlWant(t, "cookie use", dlDo(t, app, http.MethodGet, licenses, nil, ""), http.StatusOK)
	time.Sleep(1500 * time.Millisecond)
	dlWant(t, "cookie use past idle_timeout", dlDo(t, app, http.MethodGet, licenses, nil, ""), http.StatusOK)
	leases := adminLeases(t, ts.URL, "dw")
	if len(leases) != 1 || leases[0].(map[string]any)["hw"] != browser.Value {
		t.Fatalf("leases: %v", leases)
	}
	if exp, _ := time.Parse(time.RFC3339, leases[0].(map[string]any)["expires_at"].(string)); time.Until(exp) < 19*365*24*time.Hour {
		t.Fatalf("the seat is held until %v, not for the cookie's 20 years", exp)
	}
	// The cookie is worth nothing to a tenant without the docuware dialect.
	dlWant(t, "cookie at another tenant", do(t, http.MethodGet, ts.URL+"/t/wp/entitlements/licenses",
		sessCookieHeader(auth), ""), http.StatusUnauthorized)

	// The organization must be the user's.
	logon.Set("Organization", "Other Corp")
	dlWant(t, "logon into another organization", dlDo(t, nil, http.MethodPost, base+"/Account/Logon", form, logon.Encode()), http.StatusUnauthorized)
	logon.Set("Password", "wrong")
	logon.Del("Organization")
	dlWant(t, "wrong password", dlDo(t, nil, http.MethodPost, base+"/Account/Logon", form, logon.Encode()), http.StatusUnauthorized)

	// A login token, made with the seed's body before the log off.
	r = dlDo(t, app, http.MethodPost, base+"/Organizations/LoginToken",
		map[string]string{"Content-Type": "application/json", "Accept": "application/json"}, dwSeedLoginTokenBody)
	dlWant(t, "login token", r, http.StatusOK)
	var token string
	if err := json.Unmarshal([]byte(r.Body), &token); err != nil || token == "" {
		t.Fatalf("the login token is not a JSON string: %s", r.Body)
	}

	// LogOff: the cookie dies (the container drops it; replayed, it is refused).
	r = dlDo(t, app, http.MethodPost, base+"/Account/LogOff", nil, "")
	dlWant(t, "logoff", r, http.StatusOK)
	if c := sessCookies(r)[".DWPLATFORMAUTH"]; c == nil || c.MaxAge >= 0 {
		t.Fatalf("logoff did not drop the cookie: %v", r.Header["Set-Cookie"])
	}
	dlWant(t, "cookie after logoff", do(t, http.MethodGet, licenses, sessCookieHeader(auth), ""), http.StatusUnauthorized)
	dlWant(t, "logoff again", do(t, http.MethodPost, base+"/Account/LogOff", sessCookieHeader(auth), ""), http.StatusUnauthorized)

	// Another logon within two minutes (here, the 2 s linger), no free license: the seed's 401.
	r = dlDo(t, nil, http.MethodPost, base+"/Account/Logon", form, url.Values{"UserName": {"bob"}, "Password": {"bob-pw"}}.Encode())
	dlWant(t, "bob during the linger", r, http.StatusUnauthorized)
	if r.Body != noSeat+"bob" || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("bob during the linger: %q (%s)", r.Body, r.Header.Get("Content-Type"))
	}

	// TokenLogOn with the token, from another application: it reuses alice's seat.
	other := dlJar(t)
	r = dlDo(t, other, http.MethodPost, base+"/Account/TokenLogOn", map[string]string{"Content-Type": "application/json"}, `{"Token": "`+token+`"}`)
	dlWant(t, "token logon", r, http.StatusOK)
	if c := sessCookies(r)[".DWPLATFORMAUTH"]; c == nil || c.Value == auth.Value {
		t.Fatalf("token logon cookies: %v", r.Header["Set-Cookie"])
	}
	leases = adminLeases(t, ts.URL, "dw")
	if len(leases) != 1 || leases[0].(map[string]any)["hw"] != browser.Value || leases[0].(map[string]any)["user"] != "alice" {
		t.Fatalf("the token logon did not reuse alice's seat: %v", leases)
	}
	// Past the linger the seat is still alice's, and her new cookie works past idle_timeout.
	time.Sleep(2500 * time.Millisecond)
	r = dlDo(t, nil, http.MethodPost, base+"/Account/Logon", form, url.Values{"UserName": {"bob"}, "Password": {"bob-pw"}}.Encode())
	if r.Status != http.StatusUnauthorized || r.Body != noSeat+"bob" {
		t.Fatalf("bob while the token session holds the seat: %d %q", r.Status, r.Body)
	}
	dlWant(t, "token session's cookie", dlDo(t, other, http.MethodGet, licenses, nil, ""), http.StatusOK)

	// The form shape of TokenLogOn; a Multi token never puts a second device on the seat.
	r = dlDo(t, nil, http.MethodPost, base+"/Account/TokenLogOn", form, url.Values{"Token": {token}}.Encode())
	if r.Status != http.StatusUnauthorized || r.Body != noSeat+"alice" {
		t.Fatalf("second device on the token: %d %q", r.Status, r.Body)
	}
	dlWant(t, "unknown token", dlDo(t, nil, http.MethodPost, base+"/Account/TokenLogOn", form, "Token=nope"), http.StatusUnauthorized)

	// The session's own log off frees the seat after the linger: bob gets it (naming the
	// tenant by tenant= this time, and the organization in another case).
	dlWant(t, "token session logoff", dlDo(t, other, http.MethodPost, base+"/Account/LogOff", nil, ""), http.StatusOK)
	time.Sleep(2500 * time.Millisecond)
	r = dlDo(t, nil, http.MethodPost, ts.URL+"/DocuWare/Platform/Account/Logon?tenant=dw", form,
		url.Values{"UserName": {"bob"}, "Password": {"bob-pw"}, "Organization": {"peters engineering"}}.Encode())
	dlWant(t, "bob after the linger", r, http.StatusOK)
	if c := sessCookies(r)[".DWPLATFORMAUTH"]; c == nil || c.Path != "/" {
		t.Fatalf("bob's cookie: %v", r.Header["Set-Cookie"])
	}
}
