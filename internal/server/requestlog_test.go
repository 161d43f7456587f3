package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/leasehold/leasehold/internal/app"
	"github.com/leasehold/leasehold/internal/config"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Every request writes one line with its method, path (without the query), status,
// duration, client address and the tenant it names; and no token, password or secret of
// the requests, wherever they carried one, reaches the log (SPEC §6).
func TestRequestLog(t *testing.T) {
	dir := t.TempDir()
	yaml := strings.NewReplacer("{{DIR}}", filepath.ToSlash(dir), "{{ALG}}", "EdDSA").Replace(benchConfig)
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	var out lockedBuffer
	a, err := app.New(context.Background(), cfg, slog.New(slog.NewJSONHandler(&out, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	h := a.Server.Handler()
	do := func(method, target, body string, header map[string]string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, target, strings.NewReader(body))
		r.RemoteAddr = "192.0.2.7:5555"
		for k, v := range header {
			r.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	out.b.Reset() // start-up lines

	rec := do("POST", "/oauth2/token", "grant_type=client_credentials&client_id=app&client_secret=app-secret", form)
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &tok) != nil || tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("token: %d %s", rec.Code, rec.Body)
	}
	bearer := map[string]string{"Authorization": "Bearer " + tok.AccessToken}
	type want struct {
		method, path string
		status       int
		// tenant is the credential's tenant, else the one the request names; user and
		// client are the credential's.
		tenant, user, client string
		requestID            string // "": any
	}
	var wants []want
	expect := func(rec *httptest.ResponseRecorder, w want) {
		t.Helper()
		if rec.Code != w.status {
			t.Fatalf("%s %s: %d %s", w.method, w.path, rec.Code, rec.Body)
		}
		if id := rec.Header().Get("X-Request-Id"); id == "" || (w.requestID != "" && id != w.requestID) {
			t.Fatalf("%s %s: X-Request-Id %q, want %q", w.method, w.path, id, w.requestID)
		}
		wants = append(wants, w)
	}
	wants = append(wants, want{method: "POST", path: "/oauth2/token", status: 200, tenant: "bench", client: "app"})
	expect(do("GET", "/authz/.json?AppFeature-XYZ&hw=log-test", "", bearer), want{method: "GET", path: "/authz/.json", status: 200, tenant: "bench", user: "alice", client: "app"})
	expect(do("GET", "/t/bench/authz/.json?AppFeature-XYZ&hw=log-test-2&access_token="+tok.AccessToken, "", map[string]string{"Authorization": bearer["Authorization"], "X-Request-Id": "trace-42"}),
		want{method: "GET", path: "/authz/.json", status: 200, tenant: "bench", user: "alice", client: "app", requestID: "trace-42"})
	expect(do("GET", "/authz/?AppFeature-XYZ&tenant=bench", "", map[string]string{"Authorization": "Bearer not-" + tok.AccessToken}), want{method: "GET", path: "/authz/", status: 401, tenant: "bench"})
	expect(do("POST", "/oauth2/token?tenant=b%65nch", "grant_type=refresh_token&refresh_token="+tok.RefreshToken+"&client_id=app&client_secret=app-secret", form),
		want{method: "POST", path: "/oauth2/token", status: 200, tenant: "bench", client: "app"})
	expect(do("POST", "/session/login", "username=alice&password=alice-pw", form), want{method: "POST", path: "/session/login", status: 200, tenant: "bench", user: "alice"})
	expect(do("POST", "/session/login", `{"username":"alice","password":"wrong-alice-pw"}`, map[string]string{"Content-Type": "application/json"}), want{method: "POST", path: "/session/login", status: 401})
	expect(do("GET", "/healthz?password=alice-pw&client_secret=app-secret", "", map[string]string{"Cookie": "lh_session=" + tok.AccessToken}), want{method: "GET", path: "/healthz", status: 200})
	expect(do("GET", "/t/Not_A_Tenant/healthz", "", nil), want{method: "GET", path: "/t/Not_A_Tenant/healthz", status: 404})
	// A request id that is not a plain token is replaced, not logged as sent.
	expect(do("GET", "/no/such/route", "", map[string]string{"X-Request-Id": "bad id\nforged"}), want{method: "GET", path: "/no/such/route", status: 404})
	// A client-named tenant that is no tenant name is not written as sent.
	expect(do("GET", "/.well-known/jwks.json?tenant="+strings.Repeat("x", 5000)+"%0Aforged=1", "", nil), want{method: "GET", path: "/.well-known/jwks.json", status: 404, tenant: "(invalid)"})

	log := out.String()
	for _, secret := range []string{tok.AccessToken, tok.RefreshToken, "app-secret", "alice-pw"} {
		if strings.Contains(log, secret) {
			t.Errorf("the log holds a secret (%.8s…):\n%s", secret, log)
		}
	}
	var lines []map[string]any
	for line := range strings.Lines(log) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		if m["msg"] == "request" {
			lines = append(lines, m)
		}
	}
	if len(lines) != len(wants) {
		t.Fatalf("%d request lines for %d requests:\n%s", len(lines), len(wants), log)
	}
	for i, w := range wants {
		m := lines[i]
		user, _ := m["user"].(string)
		client, _ := m["client_id"].(string)
		if m["level"] != "INFO" || m["method"] != w.method || m["path"] != w.path || m["status"] != float64(w.status) ||
			m["client"] != "192.0.2.7" || m["tenant"] != w.tenant || user != w.user || client != w.client {
			t.Errorf("line %d: %v, want %+v", i, m, w)
		}
		if id, _ := m["request_id"].(string); id == "" || (w.requestID != "" && id != w.requestID) || strings.ContainsAny(id, " \n") {
			t.Errorf("line %d: request_id %q", i, m["request_id"])
		}
		if d, ok := m["duration_ms"].(float64); !ok || d < 0 {
			t.Errorf("line %d: duration_ms %v", i, m["duration_ms"])
		}
		n := 10 // time, level, msg, method, path, status, duration_ms, client, tenant, request_id
		if w.user != "" {
			n++
		}
		if w.client != "" {
			n++
		}
		if len(m) != n {
			t.Errorf("line %d: fields %v, want time, level, msg, seven and the user and client when known", i, m)
		}
	}
}
