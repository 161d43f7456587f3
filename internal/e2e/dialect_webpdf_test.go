package e2e

import (
	"net/http"
	"sort"
	"strings"
	"testing"
)

// TestDialectWebPDF replays the webPDF seed's curl requests against the default tenant
// (wp): the login with Basic admin:admin answers expiresIn, token and an empty
// refreshToken; the token reaches the session's document storage; the GET logout with the
// Bearer token ends the session and deletes its documents; a refresh token asked for at
// login extends the session, rotating both tokens.
func TestDialectWebPDF(t *testing.T) {
	ts := start(t, dialectConfig)
	base := ts.URL + "/webPDF/rest"

	// curl -X POST -i -H 'Accept: application/json' -H 'Authorization: Basic YWRtaW46YWRtaW4=' http://localhost:8080/webPDF/rest/authentication/user/login
	r := do(t, http.MethodPost, base+"/authentication/user/login", map[string]string{
		"Accept": "application/json", "Authorization": "Basic YWRtaW46YWRtaW4=",
	}, "")
	dlWant(t, "login", r, http.StatusOK)
	m := r.json(t)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if strings.Join(keys, ",") != "expiresIn,refreshToken,token" {
		t.Fatalf("login answer: %s", r.Body)
	}
	if m["expiresIn"] != float64(3599) || m["refreshToken"] != "" || m["token"] == "" {
		t.Fatalf("login answer: %s", r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	token := m["token"].(string)

	// The session's document storage, with that token.
	dlWant(t, "put", do(t, http.MethodPut, ts.URL+"/session/documents/input.pdf", sessBearer(token), "%PDF-1.7"), http.StatusOK)
	if l := sessWant(t, "list", get(t, ts.URL+"/session/documents", token), http.StatusOK); len(l["documents"].([]any)) != 1 {
		t.Fatalf("documents: %v", l)
	}
	if n := sessDocDirs(t, ts); n != 1 {
		t.Fatalf("%d document directories, want 1", n)
	}

	// curl -X GET -i -H 'Accept: application/json' -H 'Authorization: Bearer …' http://localhost:8080/webPDF/rest/authentication/user/logout
	r = do(t, http.MethodGet, base+"/authentication/user/logout", map[string]string{
		"Accept": "application/json", "Authorization": "Bearer " + token,
	}, "")
	dlWant(t, "logout", r, http.StatusOK)
	dlWant(t, "token after logout", get(t, ts.URL+"/session/documents", token), http.StatusUnauthorized)
	if n := sessDocDirs(t, ts); n != 0 {
		t.Fatalf("%d document directories after logout, want 0", n)
	}
	dlWant(t, "logout again", get(t, base+"/authentication/user/logout", token), http.StatusUnauthorized)
	dlWant(t, "logout without a token", get(t, base+"/authentication/user/logout", ""), http.StatusUnauthorized)

	// A refresh token, asked for at login (webPDF's JSON, or refresh=true).
	r = do(t, http.MethodPost, base+"/authentication/user/login", map[string]string{
		"Accept": "application/json", "Authorization": "Basic YWRtaW46YWRtaW4=", "Content-Type": "application/json",
	}, `{"createRefreshToken": true}`)
	tok1, ref1, _ := sessGrant(t, r)
	if ref1 == "" {
		t.Fatalf("createRefreshToken issued no refresh token: %s", r.Body)
	}
	r = do(t, http.MethodPost, base+"/authentication/user/login?refresh=true", map[string]string{"Authorization": "Basic YWRtaW46YWRtaW4="}, "")
	if _, ref, _ := sessGrant(t, r); ref == "" {
		t.Fatalf("refresh=true issued no refresh token: %s", r.Body)
	}
	r = do(t, http.MethodPost, base+"/authentication/user/login", map[string]string{
		"Authorization": "Basic YWRtaW46YWRtaW4=", "Content-Type": "application/json",
	}, `{"createRefreshToken": false}`)
	if _, ref, _ := sessGrant(t, r); ref != "" {
		t.Fatalf("createRefreshToken false issued a refresh token: %s", r.Body)
	}

	// The refresh, with the refresh token as Bearer: new tokens; from then on only those.
	r = do(t, http.MethodPost, base+"/authentication/user/refresh", map[string]string{"Accept": "application/json", "Authorization": "Bearer " + ref1}, "")
	tok2, ref2, _ := sessGrant(t, r)
	if tok2 == tok1 || ref2 == "" || ref2 == ref1 {
		t.Fatalf("refresh did not rotate: %s", r.Body)
	}
	if e := r.json(t)["expiresIn"]; e != float64(3599) {
		t.Fatalf("expiresIn after refresh: %v", e)
	}
	dlWant(t, "old token", get(t, ts.URL+"/session/documents", tok1), http.StatusUnauthorized)
	dlWant(t, "new token", get(t, ts.URL+"/session/documents", tok2), http.StatusOK)
	r = do(t, http.MethodPost, base+"/authentication/user/refresh", map[string]string{"Authorization": "Bearer " + ref2}, "")
	tok3, _, _ := sessGrant(t, r)
	dlWant(t, "third token", get(t, ts.URL+"/session/documents", tok3), http.StatusOK)
	dlWant(t, "logout of the refreshed session", get(t, base+"/authentication/user/logout", tok3), http.StatusOK)

	dlWant(t, "wrong password", do(t, http.MethodPost, base+"/authentication/user/login",
		map[string]string{"Authorization": "Basic YWRtaW46d3Jvbmc="}, ""), http.StatusUnauthorized)
	dlWant(t, "malformed JSON", do(t, http.MethodPost, base+"/authentication/user/login",
		map[string]string{"Authorization": "Basic YWRtaW46YWRtaW4=", "Content-Type": "application/json"}, `{"createRefreshToken": `), http.StatusBadRequest)
}
