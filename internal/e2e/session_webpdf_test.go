package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSessionWebPDFScenario follows the webPDF seed: login by Basic (the seed's curl) with
// expiresIn, no refresh token unless asked, rotation when asked (old tokens die), document
// storage private to the session and gone at logout.
func TestSessionWebPDFScenario(t *testing.T) {
	ts := start(t, sessionConfig)
	base := ts.URL

	// The seed's request: POST with Basic admin:admin and nothing else.
	r := do(t, http.MethodPost, base+"/session/login", map[string]string{
		"Accept": "application/json", "Authorization": "Basic YWRtaW46YWRtaW4=",
	}, "")
	tok, refresh, cookies := sessGrant(t, r)
	if refresh != "" {
		t.Fatalf("a refresh token was issued without being asked: %s", r.Body)
	}
	if exp := r.json(t)["expiresIn"].(float64); exp < 3500 || exp > 3599 {
		t.Fatalf("expiresIn = %v, want about 3599", exp)
	}
	if !strings.Contains(r.Header.Get("Cache-Control"), "no-store") {
		t.Fatalf("login answer may be cached: %q", r.Header.Get("Cache-Control"))
	}
	sc := cookies["lh_session"]
	if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Path != "/" || sc.MaxAge != 175200*3600 || sc.Secure {
		t.Fatalf("lh_session cookie: %+v", sc)
	}
	if d := cookies["lh_device"]; d == nil || d.Value == "" {
		t.Fatalf("no lh_device cookie for a login without a device: %v", cookies)
	}
	// The token works on the API: it consumes under the session's identity.
	if got := authzJSON(t, base, tok, "AppFeature-XYZ&hw=h1"); got["AppFeature-XYZ"] != true {
		t.Fatalf("authz with the session token: %v", got)
	}

	// Refresh without having asked: there is no refresh token to use.
	sessWant(t, "refresh of nothing", do(t, http.MethodPost, base+"/session/refresh",
		map[string]string{"Content-Type": "application/json"}, `{"refreshToken":""}`), http.StatusBadRequest)

	// Documents: upload, list, read back.
	sessWant(t, "put", do(t, http.MethodPut, base+"/session/documents/report.pdf", sessBearer(tok), "%PDF-1.7 hello"), http.StatusOK)
	list := sessWant(t, "list", get(t, base+"/session/documents", tok), http.StatusOK)
	docs, _ := list["documents"].([]any)
	if len(docs) != 1 {
		t.Fatalf("documents: %v", list)
	}
	d := docs[0].(map[string]any)
	if d["name"] != "report.pdf" || d["size"] != float64(len("%PDF-1.7 hello")) || d["modified"] == nil {
		t.Fatalf("document entry: %v", d)
	}
	got := get(t, base+"/session/documents/report.pdf", tok)
	if got.Status != http.StatusOK || got.Body != "%PDF-1.7 hello" || got.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("read back: %d %q %v", got.Status, got.Body, got.Header)
	}
	// The cookie reaches the same storage (a browser-facing route).
	if r := do(t, http.MethodGet, base+"/session/documents/report.pdf", sessCookieHeader(sc), ""); r.Status != http.StatusOK {
		t.Fatalf("read with the cookie: %d %s", r.Status, r.Body)
	}

	// Another session (same user, even) sees nothing of it.
	other, _, _ := sessGrant(t, sessLogin(t, base, "alice", "alice-pw", nil, nil))
	if l := sessWant(t, "other list", get(t, base+"/session/documents", other), http.StatusOK); len(l["documents"].([]any)) != 0 {
		t.Fatalf("another session sees documents: %v", l)
	}
	sessWant(t, "other read", get(t, base+"/session/documents/report.pdf", other), http.StatusNotFound)
	sessWant(t, "other delete", do(t, http.MethodDelete, base+"/session/documents/report.pdf", sessBearer(other), ""), http.StatusNotFound)

	// Bad names and the quota (1 KiB per session).
	for _, name := range []string{"..", ".hidden", "a%2Fb", "a%5Cb", strings.Repeat("x", 201)} {
		if r := do(t, http.MethodPut, base+"/session/documents/"+name, sessBearer(tok), "x"); r.Status != http.StatusBadRequest && r.Status != http.StatusNotFound {
			t.Fatalf("name %q: %d %s", name, r.Status, r.Body)
		}
	}
	sessWant(t, "over quota", do(t, http.MethodPut, base+"/session/documents/big.bin", sessBearer(tok), strings.Repeat("x", 1100)), http.StatusRequestEntityTooLarge)
	sessWant(t, "fits", do(t, http.MethodPut, base+"/session/documents/fit.bin", sessBearer(tok), strings.Repeat("x", 1000)), http.StatusOK)
	sessWant(t, "quota counts all documents", do(t, http.MethodPut, base+"/session/documents/more.bin", sessBearer(tok), strings.Repeat("x", 100)), http.StatusRequestEntityTooLarge)
	sessWant(t, "delete", do(t, http.MethodDelete, base+"/session/documents/fit.bin", sessBearer(tok), ""), http.StatusOK)
	sessWant(t, "deleted", get(t, base+"/session/documents/fit.bin", tok), http.StatusNotFound)
	if n := sessDocDirs(t, ts); n != 1 {
		t.Fatalf("%d document directories, want 1", n)
	}

	// Logout by GET with the Bearer token (the seed's curl): the token dies, the documents go.
	if m := sessWant(t, "logout", get(t, base+"/session/logout", tok), http.StatusOK); m["ok"] != true {
		t.Fatalf("logout answer: %v", m)
	}
	sessWant(t, "token after logout", get(t, base+"/session/documents", tok), http.StatusUnauthorized)
	sessWant(t, "cookie after logout", do(t, http.MethodGet, base+"/session/documents", sessCookieHeader(sc), ""), http.StatusUnauthorized)
	if n := sessDocDirs(t, ts); n != 0 {
		t.Fatalf("%d document directories after logout, want 0", n)
	}

	// Refresh when asked (query refresh=true, as webPDF): rotation, the old tokens die.
	r = do(t, http.MethodPost, base+"/session/login?refresh=true", map[string]string{"Authorization": "Basic YWRtaW46YWRtaW4="}, "")
	tok1, ref1, _ := sessGrant(t, r)
	if ref1 == "" {
		t.Fatalf("no refresh token with refresh=true: %s", r.Body)
	}
	r = do(t, http.MethodPost, base+"/session/refresh", map[string]string{"Content-Type": "application/json"}, `{"refreshToken":"`+ref1+`"}`)
	tok2, ref2, _ := sessGrant(t, r)
	if ref2 == "" || ref2 == ref1 || tok2 == tok1 {
		t.Fatalf("refresh did not rotate: %s", r.Body)
	}
	sessWant(t, "old access token", get(t, base+"/session/documents", tok1), http.StatusUnauthorized)
	sessWant(t, "new access token", get(t, base+"/session/documents", tok2), http.StatusOK)
	// The old refresh token is dead; presenting it revokes the family, new pair included.
	sessWant(t, "old refresh token", do(t, http.MethodPost, base+"/session/refresh",
		map[string]string{"Content-Type": "application/json"}, `{"refreshToken":"`+ref1+`"}`), http.StatusUnauthorized)
	sessWant(t, "family revoked", get(t, base+"/session/documents", tok2), http.StatusUnauthorized)

	// A JSON login with "refresh": true and a form login with refresh=true work the same.
	_, ref, _ := sessGrant(t, sessLogin(t, base, "alice", "alice-pw", nil, map[string]any{"refresh": true}))
	if ref == "" {
		t.Fatal("JSON refresh:true issued no refresh token")
	}
	r = postForm(t, base+"/session/login", map[string][]string{"username": {"alice"}, "password": {"alice-pw"}, "refresh": {"true"}}, nil)
	if _, ref, _ := sessGrant(t, r); ref == "" {
		t.Fatal("form refresh=true issued no refresh token")
	}
	// curl -d '{...}' labels JSON as a form: it is still read as JSON.
	sessGrant(t, do(t, http.MethodPost, base+"/session/login", map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
		`{"username":"alice","password":"alice-pw"}`))
	sessWant(t, "malformed JSON", do(t, http.MethodPost, base+"/session/login", map[string]string{"Content-Type": "application/json"}, `{"username":`), http.StatusBadRequest)
	sessWant(t, "bad device", sessLogin(t, base, "alice", "alice-pw", nil, map[string]any{"device": "a b;c"}), http.StatusBadRequest)
	sessWant(t, "wrong password", sessLogin(t, base, "alice", "nope", nil, nil), http.StatusUnauthorized)
	sessWant(t, "unknown user", sessLogin(t, base, "nobody", "nope", nil, nil), http.StatusUnauthorized)
}

// TestSessionDocumentsGoneAtExpiry: a session that expires (2 s unused) loses its documents
// to the sweeper.
func TestSessionDocumentsGoneAtExpiry(t *testing.T) {
	ts := start(t, sessionConfig)
	tok, _, _ := sessGrant(t, sessLogin(t, ts.URL+"/t/short", "alice", "alice-pw", nil, nil))
	sessWant(t, "put", do(t, http.MethodPut, ts.URL+"/t/short/session/documents/a.txt", sessBearer(tok), "hello"), http.StatusOK)
	if n := sessDocDirs(t, ts); n != 1 {
		t.Fatalf("%d document directories, want 1", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for sessDocDirs(t, ts) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the expired session's documents are still there")
		}
		time.Sleep(200 * time.Millisecond)
	}
	sessWant(t, "expired token", get(t, ts.URL+"/t/short/session/documents", tok), http.StatusUnauthorized)
}

// TestSessionLogoutAllAndLimits: logout-all ends every session of the user;
// max_sessions_per_user is enforced; tenant-prefixed cookies carry the prefix as Path.
func TestSessionLogoutAllAndLimits(t *testing.T) {
	ts := start(t, sessionConfig)
	base := ts.URL + "/t/wp"
	var toks []string
	for range 5 {
		r := sessLogin(t, base, "alice", "alice-pw", nil, nil)
		tok, _, cookies := sessGrant(t, r)
		if c := cookies["lh_session"]; c == nil || c.Path != "/t/wp/" {
			t.Fatalf("cookie under a tenant prefix: %+v", c)
		}
		toks = append(toks, tok)
	}
	m := sessWant(t, "sixth session", sessLogin(t, base, "alice", "alice-pw", nil, nil), http.StatusForbidden)
	if m["error"] != "too_many_sessions" {
		t.Fatalf("sixth session: %v", m)
	}
	m = sessWant(t, "logout-all", do(t, http.MethodPost, base+"/session/logout-all", sessBearer(toks[0]), ""), http.StatusOK)
	if m["ok"] != true || m["sessions_ended"] != float64(5) {
		t.Fatalf("logout-all: %v", m)
	}
	for _, tok := range toks {
		sessWant(t, "after logout-all", get(t, base+"/session/documents", tok), http.StatusUnauthorized)
	}
	sessGrant(t, sessLogin(t, base, "alice", "alice-pw", nil, nil))
	// A token of tenant wp named under another tenant is refused.
	tok, _, _ := sessGrant(t, sessLogin(t, base, "admin", "admin", nil, nil))
	sessWant(t, "other tenant", get(t, ts.URL+"/t/dw/session/documents", tok), http.StatusUnauthorized)
}
