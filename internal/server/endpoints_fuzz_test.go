package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/leasehold/leasehold/internal/app"
	"github.com/leasehold/leasehold/internal/config"
)

// FuzzLoginEndpoints drives the real handlers (the assembly `leasehold serve` runs, on a
// SQLite store) with fuzzed login requests on every route that reads credentials from a
// body: the session API, the webPDF and DocuWare dialects and the OAuth2 token endpoint.
// Properties: never a 5xx; every 4xx carries a JSON body with an "error"; a 200 only for a
// request that carries the credential the route checks (the password, the client secret,
// the login token, the refresh token, or the session's access token or cookie).

const fuzzConfig = `
public_url: "http://127.0.0.1"
store: "{{STORE}}"
documents: "{{DIR}}/documents"
tenants:
  - name: acme
    default: true
    dialects: [docuware, webpdf]
    organizations: [{id: org-1, name: Acme}]
    users: [{username: alice, password: alice-pw, organization: org-1}]
    clients: [{client_id: app, client_secret: s3cret, user: alice}]
    products: [{name: PlatformService}]
    models: [{name: m}]
    licenses: [{id: lic-1, product: PlatformService, model: m, seats: 5, owner: {organization: org-1}}]
`

type loginRoute struct {
	path   string
	secret func(*fuzzEnv) []string // what a 200 requires the request to carry (any of)
}

type fuzzEnv struct {
	h                                   http.Handler
	access, cookie, refresh, loginToken string
}

var loginRoutes = []loginRoute{
	{"/session/login", password},
	{"/session/token-login", func(e *fuzzEnv) []string { return []string{e.loginToken} }},
	{"/session/refresh", func(e *fuzzEnv) []string { return []string{e.refresh} }},
	{"/session/login-token", sessionCred},
	{"/webPDF/rest/authentication/user/login", password},
	{"/webPDF/rest/authentication/user/refresh", func(e *fuzzEnv) []string { return []string{e.refresh} }},
	{"/DocuWare/Platform/Account/Logon", password},
	{"/DocuWare/Platform/Account/TokenLogOn", func(e *fuzzEnv) []string { return []string{e.loginToken} }},
	{"/DocuWare/Platform/Organizations/LoginToken", sessionCred},
	{"/oauth2/token", func(*fuzzEnv) []string { return []string{"s3cret"} }},
}

func password(*fuzzEnv) []string      { return []string{"alice-pw"} }
func sessionCred(e *fuzzEnv) []string { return []string{e.access, e.cookie} }

func newFuzzEnv(f *testing.F) *fuzzEnv {
	dir := f.TempDir()
	r := strings.NewReplacer("{{STORE}}", "sqlite://"+filepath.Join(dir, "leasehold.db"), "{{DIR}}", dir)
	cfg, err := config.Parse([]byte(r.Replace(fuzzConfig)))
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	a, err := app.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = a.Close() })
	e := &fuzzEnv{h: a.Server.Handler()}
	rec := e.serve("/session/login", "application/json", `{"username":"alice","password":"alice-pw","refresh":true}`, "", "", "")
	var g struct{ Token, RefreshToken string }
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &g) != nil || g.Token == "" || g.RefreshToken == "" {
		f.Fatalf("login: %d %s", rec.Code, rec.Body)
	}
	e.access = g.Token
	for _, c := range rec.Result().Cookies() {
		if c.Name == "lh_session" {
			e.cookie = c.Value
		}
	}
	rec = e.serve("/session/login-token", "application/json", `{"Usage":"Multi","Lifetime":"1.00:00:00"}`, "", "Bearer "+e.access, "")
	var lt struct{ Token string }
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &lt) != nil || lt.Token == "" || e.cookie == "" {
		f.Fatalf("login token: %d %s (cookie %q)", rec.Code, rec.Body, e.cookie)
	}
	e.loginToken = lt.Token
	// A session of its own for the refresh token: a refresh that rotates it, then a replay
	// of it (which revokes its family) leave the session above alive.
	rec = e.serve("/session/login", "", "", "refresh=true", "Basic "+base64.StdEncoding.EncodeToString([]byte("alice:alice-pw")), "")
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &g) != nil || g.RefreshToken == "" {
		f.Fatalf("second login: %d %s", rec.Code, rec.Body)
	}
	e.refresh = g.RefreshToken
	return e
}

func (e *fuzzEnv) serve(path, contentType, body, query, authorization, cookie string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.URL.RawQuery = query
	for k, v := range map[string]string{"Content-Type": contentType, "Authorization": authorization, "Cookie": cookie} {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

// carried is everything a credential could be read from: the raw parts, their URL and
// JSON decodings, and HTTP Basic's two halves (also URL-decoded, as client_secret_basic).
func carried(contentType, body, query, authorization, cookie string) string {
	parts := []string{body, query, authorization, cookie}
	for _, s := range []string{body, query} {
		if u, err := url.QueryUnescape(s); err == nil {
			parts = append(parts, u)
		}
		if v, err := url.ParseQuery(s); err == nil {
			for _, vs := range v {
				parts = append(parts, vs...)
			}
		}
	}
	var j any
	if json.Unmarshal([]byte(body), &j) == nil {
		parts = append(parts, jsonStrings(j)...)
	}
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	req.Header.Set("Authorization", authorization)
	if u, p, ok := req.BasicAuth(); ok {
		parts = append(parts, u, p)
		if uu, err := url.QueryUnescape(p); err == nil {
			parts = append(parts, uu)
		}
	}
	if b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(authorization, "Basic ")); err == nil {
		parts = append(parts, string(b))
	}
	return strings.Join(parts, "\x00")
}

func jsonStrings(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, jsonStrings(e)...)
		}
		return out
	case map[string]any:
		var out []string
		for k, e := range x {
			out = append(out, k)
			out = append(out, jsonStrings(e)...)
		}
		return out
	}
	return nil
}

func FuzzLoginEndpoints(f *testing.F) {
	e := newFuzzEnv(f)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:alice-pw"))
	add := func(route int, contentType, body, query, authorization, cookie string) {
		f.Add(uint8(route), contentType, body, query, authorization, cookie)
	}
	// The seeds' own request shapes, right and wrong.
	add(0, "application/json", `{"username":"alice","password":"alice-pw"}`, "", "", "")
	add(0, "application/x-www-form-urlencoded", "username=alice&password=wrong", "refresh=true", "", "")
	add(0, "", "", "refresh=maybe", basic, "")
	add(1, "application/json", `{"token":"`+e.loginToken+`"}`, "", "", "")
	add(1, "application/x-www-form-urlencoded", "token=nope", "", "", "")
	add(2, "application/json", `{"refreshToken":"not-it"}`, "", "", "")
	add(2, "", "", "", "Bearer a.b.c", "")
	add(3, "application/json", `{"TargetProducts":["PlatformService"],"Usage":"Multi","Lifetime":"1.00:00:00"}`, "", "Bearer "+e.access, "")
	add(3, "application/json", `{"Usage":"Twice","Lifetime":"213869"}`, "", "", "lh_session="+e.cookie)
	add(4, "application/json", `{"createRefreshToken": true}`, "", basic, "")
	add(4, "application/json", `{"createRefreshToken": "yes"}`, "", basic, "")
	add(5, "", "", "", "Bearer nope", "")
	add(5, "", "", "", "Bearer "+e.refresh, "")
	add(2, "application/json", `{"refreshToken":"`+e.refresh+`"}`, "", "", "")
	add(6, "application/x-www-form-urlencoded", "UserName=alice&Password=alice-pw&Organization=Acme", "", "", "")
	add(6, "application/json", `{"UserName":"alice","Password":"x","Organization":"Other"}`, "", "", "DWPLATFORMBROWSERID=a;b")
	add(7, "application/json", `{"Token":"`+e.loginToken+`"}`, "", "", "")
	add(7, "application/x-www-form-urlencoded", "Token=", "", "", "")
	add(8, "application/json", `{"TargetProducts":[],"Usage":"Single","Lifetime":"00:05:00"}`, "", "", ".DWPLATFORMAUTH="+e.cookie)
	add(9, "application/x-www-form-urlencoded", "grant_type=client_credentials&client_id=app&client_secret=s3cret", "", "", "")
	add(9, "application/x-www-form-urlencoded", "grant_type=client_credentials", "", "Basic "+base64.StdEncoding.EncodeToString([]byte("app:s3%63ret")), "")
	add(9, "application/x-www-form-urlencoded", "grant_type=client_credentials&client_secret=x", "", "Basic "+base64.StdEncoding.EncodeToString([]byte("app:%zz")), "")
	add(0, "application/json", strings.Repeat(" ", 70<<10)+"{}", "tenant=nope", "", "")
	f.Fuzz(func(t *testing.T, route uint8, contentType, body, query, authorization, cookie string) {
		for _, v := range []string{contentType, authorization, cookie} {
			if strings.ContainsAny(v, "\r\n\x00") {
				return
			}
		}
		lr := loginRoutes[int(route)%len(loginRoutes)]
		rec := e.serve(lr.path, contentType, body, query, authorization, cookie)
		switch {
		case rec.Code >= 500:
			t.Fatalf("%s: %d %s", lr.path, rec.Code, rec.Body)
		case rec.Code >= 400:
			var m map[string]any
			if json.Unmarshal(rec.Body.Bytes(), &m) != nil || m["error"] == nil || m["error"] == "" {
				t.Fatalf("%s: %d with body %q", lr.path, rec.Code, rec.Body)
			}
		case rec.Code == http.StatusOK:
			have := carried(contentType, body, query, authorization, cookie)
			ok := false
			for _, s := range lr.secret(e) {
				ok = ok || (s != "" && strings.Contains(have, s))
			}
			if !ok {
				t.Fatalf("%s: 200 %s without the credential", lr.path, rec.Body)
			}
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%s: 200 with body %q", lr.path, rec.Body)
			}
		default:
			t.Fatalf("%s: %d %s", lr.path, rec.Code, rec.Body)
		}
	})
}
