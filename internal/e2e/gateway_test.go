package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/tlsreload/tlstest"
	"github.com/leasehold/leasehold/internal/ui"
)

// gatewayConfig: tenant gw with one seat (anchored on the user alone, no linger) and a
// gateway "web" in front of {{UPSTREAM}} on {{GW}}.
const gatewayConfig = `
listen: "{{LISTEN}}"
public_url: "{{URL}}"
store: "{{STORE}}"
admin_token: test-admin
documents: "{{DIR}}/documents"
tenants:
  - name: gw
    session: {item: PlatformService, idle_timeout: 1h}
    organizations: [{id: org-g}]
    users:
      - {username: alice, password: alice-pw, organization: org-g}
      - {username: bob, password: bob-pw, organization: org-g}
    clients:
      - {client_id: viewer, client_secret: viewer-secret, user: alice, scopes: [view]}
    products: [{name: PlatformService, items: [Reports]}]
    models: [{name: seat, anchors: [user], sessions_per_seat: 2, linger: 0s}]
    licenses: [{id: lic-g, product: PlatformService, model: seat, seats: 1, owner: {organization: org-g}}]
    gateways:
      - name: web
        listen: "{{GW}}"
        upstream: "{{UPSTREAM}}/base"
        timeout: 5s
        routes:
          - {path: /health, access: public}
          - {path: /api/, access: seat}
          - {path: /read/, methods: [GET, HEAD], access: session}
          - {path: /admin/, access: seat, scopes: [admin]}
          - {path: /reports/, access: seat, item: Reports}
`

// echoUpstream answers every request with what it received, as JSON.
func echoUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	up := httptest.NewServer(echoHandler())
	t.Cleanup(up.Close)
	return up
}

func echoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/stream") {
			// A stream that lasts until the client (the gateway) goes away.
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: hello\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(20 * time.Second):
			}
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"method": r.Method, "path": r.URL.Path, "query": r.URL.RawQuery, "header": r.Header, "body": string(body),
		})
	})
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// tlsNoRedirect is noRedirect for https URLs: it trusts the tests' self-signed certificates
// and speaks HTTP/2 when the server offers it.
var tlsNoRedirect = &http.Client{Timeout: 30 * time.Second, CheckRedirect: noRedirect.CheckRedirect,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}}

func gwDo(t *testing.T, method, u string, header map[string]string, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	c := noRedirect
	if req.URL.Scheme == "https" {
		c = tlsNoRedirect
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

// waitUp waits for a listener to accept (the manager starts it in the background).
func waitUp(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", addr)
}

func startGateway(t *testing.T) (ts *testServer, gw string, up *httptest.Server) {
	t.Helper()
	return startGatewayAt(t, "")
}

// startGatewayAt is startGateway on the store dsn ("": a fresh SQLite store).
func startGatewayAt(t *testing.T, dsn string) (ts *testServer, gw string, up *httptest.Server) {
	t.Helper()
	up = echoUpstream(t)
	gw = freeAddr(t)
	cfg := strings.NewReplacer("{{GW}}", gw, "{{UPSTREAM}}", up.URL).Replace(gatewayConfig)
	if dsn == "" {
		ts = start(t, cfg)
	} else {
		ts = startAt(t, cfg, t.TempDir(), dsn)
	}
	waitUp(t, gw)
	return ts, "http://" + gw, up
}

// upstreamSaw decodes the echo upstream's answer.
func upstreamSaw(t *testing.T, r response) (path string, h http.Header) {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("not proxied: %d %s", r.Status, r.Body)
	}
	var m struct {
		Path   string      `json:"path"`
		Header http.Header `json:"header"`
	}
	if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
		t.Fatalf("not the upstream's answer: %s", r.Body)
	}
	return m.Path, m.Header
}

// gwLogin signs in through the gateway's login page (CSRF double submit) and returns the
// gateway's session cookie header. Over https the cookies are the __Host- ones.
func gwLogin(t *testing.T, gw, user, password string) (response, string) {
	t.Helper()
	prefix := ""
	if strings.HasPrefix(gw, "https://") {
		prefix = "__Host-"
	}
	page := gwDo(t, "GET", gw+"/.leasehold/login?return_to=/api/x%3Fa=1", nil, "")
	if page.Status != 200 {
		t.Fatalf("login page: %d %s", page.Status, page.Body)
	}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page.Body)
	if csrf == nil {
		t.Fatalf("no csrf field: %s", page.Body)
	}
	csrfCookie := sessCookies(page)[prefix+"lh_csrf"]
	if csrfCookie == nil {
		t.Fatalf("no csrf cookie: %v", page.Header)
	}
	form := url.Values{"csrf": {csrf[1]}, "username": {user}, "password": {password}, "return_to": {"/api/x?a=1"}}
	r := gwDo(t, "POST", gw+"/.leasehold/login", map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "Cookie": prefix + "lh_csrf=" + csrfCookie.Value, "Origin": gw,
	}, form.Encode())
	c := sessCookies(r)[prefix+"lh_gw_web"]
	if c == nil {
		return r, ""
	}
	return r, c.Name + "=" + c.Value
}

func TestGatewayAdmission(t *testing.T) {
	ts, gw, _ := startGateway(t)

	// Public: proxied with no credential; the client's identity headers and forwarding
	// headers are removed, an Authorization the gateway did not use (Basic) passes.
	r := gwDo(t, "GET", gw+"/health?x=1", map[string]string{
		"X-Leasehold-User": "mallory", "X_Leasehold_Tenant": "evil", "X-Forwarded-For": "6.6.6.6",
		"Authorization": "Basic YTpi", "Cookie": "theirs=1; lh_session=secret",
	}, "")
	path, h := upstreamSaw(t, r)
	if path != "/base/health" || h.Get("X-Leasehold-User") != "" || h.Get("X-Leasehold-Tenant") != "gw" ||
		h.Get("X-Forwarded-For") != "127.0.0.1" || h.Get("Authorization") != "Basic YTpi" || h.Get("Cookie") != "theirs=1" {
		t.Fatalf("public: path %s headers %v", path, h)
	}

	// No credential: an API client gets 401 with the tenant's realm, a browser the login page.
	r = gwDo(t, "GET", gw+"/api/x", nil, "")
	if r.Status != 401 || r.Header.Get("WWW-Authenticate") != `Bearer realm="gw"` || !strings.Contains(r.Body, `"error"`) {
		t.Fatalf("no credential: %d %v %s", r.Status, r.Header, r.Body)
	}
	r = gwDo(t, "GET", gw+"/api/x?a=1", map[string]string{"Accept": "text/html,*/*"}, "")
	if r.Status != 302 || r.Header.Get("Location") != "/.leasehold/login?return_to=%2Fapi%2Fx%3Fa%3D1" {
		t.Fatalf("browser: %d %s", r.Status, r.Header.Get("Location"))
	}

	// Matching: unclean paths, no rule, a method no rule takes.
	for _, p := range []string{"/api/a/%2e%2e/b", "/api/a%2Fb", "/api//b", "/api/a%5Cb"} {
		if r := gwDo(t, "GET", gw+p, nil, ""); r.Status != 400 {
			t.Fatalf("%s: %d %s", p, r.Status, r.Body)
		}
	}
	if r := gwDo(t, "GET", gw+"/other", nil, ""); r.Status != 404 {
		t.Fatalf("no rule: %d", r.Status)
	}
	if r := gwDo(t, "POST", gw+"/read/x", nil, ""); r.Status != 405 || r.Header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("method: %d %v", r.Status, r.Header)
	}

	// A Bearer access token of the tenant: proxied as alice with her seat's license; the
	// token is not forwarded, nor any Leasehold cookie.
	tok, _, _ := sessGrant(t, sessLogin(t, ts.URL+"/t/gw", "alice", "alice-pw", nil, nil))
	r = gwDo(t, "PUT", gw+"/api/doc", map[string]string{"Authorization": "Bearer " + tok, "Cookie": "lh_gw_web=x; keep=1; __Host-lh_a=b"}, "data")
	path, h = upstreamSaw(t, r)
	if path != "/base/api/doc" || h.Get("Authorization") != "" || h.Get("Cookie") != "keep=1" || h.Get("X-Leasehold-User") != "alice" ||
		h.Get("X-Leasehold-License") != "lic-g" || h.Get("X-Leasehold-Scopes") != "all" || h.Get("X-Leasehold-Session") == "" {
		t.Fatalf("bearer: %s %v", path, h)
	}
	// An invalid Bearer is final: 401, even for a browser, and the cookie is not tried.
	r = gwDo(t, "GET", gw+"/api/x", map[string]string{"Authorization": "Bearer nope", "Accept": "text/html"}, "")
	if r.Status != 401 || !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("invalid bearer: %d %v", r.Status, r.Header)
	}
	// Scopes: a seat route needing admin; a free-scope session on a seat route.
	if r := gwDo(t, "GET", gw+"/admin/x", map[string]string{"Authorization": "Bearer " + tok}, ""); r.Status != 403 || !strings.Contains(r.Body, "insufficient_scope") {
		t.Fatalf("scope: %d %s", r.Status, r.Body)
	}
	view := ccToken(t, ts.URL+"/t/gw", "viewer", "viewer-secret", "view")
	if r := gwDo(t, "GET", gw+"/api/x", map[string]string{"Authorization": "Bearer " + view}, ""); r.Status != 403 || !strings.Contains(r.Body, "insufficient_scope") {
		t.Fatalf("free scope on a seat route: %d %s", r.Status, r.Body)
	}
	if _, h := upstreamSaw(t, gwDo(t, "GET", gw+"/read/x", map[string]string{"Authorization": "Bearer " + view}, "")); h.Get("X-Leasehold-License") != "" {
		t.Fatalf("session route: %v", h)
	}

	// whoami and forward-auth.
	r = gwDo(t, "GET", gw+"/.leasehold/whoami", map[string]string{"Authorization": "Bearer " + tok}, "")
	if m := r.json(t); r.Status != 200 || m["user"] != "alice" || len(m["seats"].([]any)) != 1 {
		t.Fatalf("whoami: %d %s", r.Status, r.Body)
	}
	r = gwDo(t, "GET", gw+"/.leasehold/auth", map[string]string{"Authorization": "Bearer " + tok, "X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/api/x?y=1"}, "")
	if r.Status != 200 || r.Header.Get("X-Leasehold-User") != "alice" || r.Header.Get("X-Leasehold-License") != "lic-g" {
		t.Fatalf("forward-auth: %d %v", r.Status, r.Header)
	}
	r = gwDo(t, "GET", gw+"/.leasehold/auth", map[string]string{"Accept": "text/html", "X-Original-URI": "/api/x"}, "")
	if r.Status != 401 || r.Header.Get("WWW-Authenticate") == "" || r.Header.Get("Location") != "" {
		t.Fatalf("forward-auth without credential: %d %v", r.Status, r.Header)
	}
	if r := gwDo(t, "GET", gw+"/.leasehold/auth", map[string]string{"X-Forwarded-Method": "DELETE", "X-Forwarded-Uri": "/read/x"}, ""); r.Status != 405 {
		t.Fatalf("forward-auth method: %d", r.Status)
	}

	// Metrics per gateway and route, on the server's /metrics.
	if r := get(t, ts.URL+"/metrics", "test-admin"); !strings.Contains(r.Body, `leasehold_gateway_requests_total{code="200",gateway="web",route="/api/",tenant="gw"}`) ||
		!strings.Contains(r.Body, "leasehold_gateway_upstream_seconds_bucket") {
		t.Fatalf("metrics: %s", r.Body)
	}
}

func TestGatewayLoginContentionLogout(t *testing.T) {
	ts, gw, _ := startGateway(t)

	// The login page: CSRF token, no framing, no script.
	page := gwDo(t, "GET", gw+"/.leasehold/login", nil, "")
	if csp := page.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("csp: %q", csp)
	}
	// A login without the CSRF token, or from another site, is refused.
	form := url.Values{"username": {"alice"}, "password": {"alice-pw"}}
	if r := gwDo(t, "POST", gw+"/.leasehold/login", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, form.Encode()); r.Status != 403 {
		t.Fatalf("no csrf: %d", r.Status)
	}
	if r := gwDo(t, "POST", gw+"/.leasehold/login", map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "cross-site"}, form.Encode()); r.Status != 403 {
		t.Fatalf("cross-site login: %d", r.Status)
	}
	if r, c := gwLogin(t, gw, "alice", "wrong"); r.Status != 401 || c != "" {
		t.Fatalf("bad password: %d", r.Status)
	}

	// Alice signs in: redirected to return_to, with the gateway's own cookie.
	r, alice := gwLogin(t, gw, "alice", "alice-pw")
	if r.Status != 303 || r.Header.Get("Location") != "/api/x?a=1" || alice == "" {
		t.Fatalf("login: %d %v", r.Status, r.Header)
	}
	set := strings.Join(r.Header.Values("Set-Cookie"), "\n")
	if !strings.Contains(set, "lh_gw_web=") || !strings.Contains(set, "HttpOnly") || !strings.Contains(set, "SameSite=Lax") || !strings.Contains(set, "lh_device=") {
		t.Fatalf("cookies: %s", set)
	}
	_, h := upstreamSaw(t, gwDo(t, "GET", gw+"/api/x", map[string]string{"Cookie": alice}, ""))
	if h.Get("X-Leasehold-User") != "alice" || h.Get("Cookie") != "" {
		t.Fatalf("cookie session: %v", h)
	}
	// The gateway cookie is this gateway's alone: the server's own routes do not take it.
	if r := do(t, "GET", ts.URL+"/t/gw/session/documents", map[string]string{"Cookie": "lh_session=" + strings.TrimPrefix(alice, "lh_gw_web=")}, ""); r.Status != 401 {
		t.Fatalf("gateway cookie at the server: %d %s", r.Status, r.Body)
	}
	// Cookie-authenticated state changes must come from the gateway's origin.
	if r := gwDo(t, "POST", gw+"/api/x", map[string]string{"Cookie": alice, "Origin": "http://evil.example"}, ""); r.Status != 403 {
		t.Fatalf("cross-origin POST: %d %s", r.Status, r.Body)
	}
	if _, h := upstreamSaw(t, gwDo(t, "POST", gw+"/api/x", map[string]string{"Cookie": alice, "Origin": gw}, "")); h.Get("X-Leasehold-User") != "alice" {
		t.Fatalf("same-origin POST: %v", h)
	}

	// One seat: bob is refused while alice holds it, as a license refusal.
	r, bob := gwLogin(t, gw, "bob", "bob-pw")
	if r.Status != 403 || bob != "" || !strings.Contains(r.Body, "denied") {
		t.Fatalf("bob while alice holds the seat: %d %s", r.Status, r.Body)
	}
	// Alice's seat is held until her session's deadline (idle_timeout 1h): that is the wait.
	if ra, _ := strconv.Atoi(r.Header.Get("Retry-After")); ra < 3500 || ra > 3600 {
		t.Fatalf("Retry-After: %q", r.Header.Get("Retry-After"))
	}
	leases := adminDo(t, "GET", ts.URL+"/admin/v1/tenants/gw/leases", "")
	if !strings.Contains(leases.Body, `"user":"alice"`) {
		t.Fatalf("alice's seat lease: %s", leases.Body)
	}

	// Logout through the gateway (same origin): the seat is freed (linger 0s) and bob gets it.
	if r := gwDo(t, "POST", gw+"/.leasehold/logout", map[string]string{"Cookie": alice, "Origin": "http://evil.example"}, ""); r.Status != 403 {
		t.Fatalf("cross-origin logout: %d", r.Status)
	}
	if r := gwDo(t, "POST", gw+"/.leasehold/logout", map[string]string{"Cookie": alice, "Origin": gw}, ""); r.Status != 200 {
		t.Fatalf("logout: %d %s", r.Status, r.Body)
	}
	if r := adminDo(t, "GET", ts.URL+"/admin/v1/tenants/gw/leases", ""); strings.Contains(r.Body, `"user":"alice"`) {
		t.Fatalf("alice's lease after logout: %s", r.Body)
	}
	if r := gwDo(t, "GET", gw+"/api/x", map[string]string{"Cookie": alice}, ""); r.Status != 401 {
		t.Fatalf("ended session's cookie: %d", r.Status)
	}
	if r, bob := gwLogin(t, gw, "bob", "bob-pw"); r.Status != 303 || bob == "" {
		t.Fatalf("bob after alice's logout: %d %s", r.Status, r.Body)
	}
}

func TestGatewayLifecycleThroughAdminAPI(t *testing.T) {
	ts, _, _ := startGateway(t)
	// An upstream of its own, which counts the connections the gateway keeps open to it.
	var open atomic.Int32
	up := httptest.NewUnstartedServer(echoHandler())
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	up.Start()
	defer up.Close()
	A := ts.URL + "/admin/v1/tenants/gw/gateways"
	addr := freeAddr(t)
	body := `{"name":"late","listen":"` + addr + `","upstream":"` + up.URL + `","routes":[{"path":"/","access":"public"}]}`
	if r := adminDo(t, "POST", A, body); r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	if r := adminDo(t, "POST", A, `{"name":"bad","listen":"x","routes":[]}`); r.Status != 400 || !strings.Contains(r.Body, "gateways[bad].listen") {
		t.Fatalf("invalid gateway: %d %s", r.Status, r.Body)
	}
	started := time.Now()
	waitUp(t, addr)
	if d := time.Since(started); d > time.Second {
		t.Fatalf("started after %v", d)
	}
	if path, _ := upstreamSaw(t, gwDo(t, "GET", "http://"+addr+"/x", nil, "")); path != "/x" {
		t.Fatalf("late gateway: %s", path)
	}
	// Changed on the same address: the listener keeps running with the new routes.
	if r := adminDo(t, "PATCH", A+"/late", `{"routes":[{"path":"/","access":"session"}]}`); r.Status != 200 {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	for deadline := time.Now().Add(time.Second); ; time.Sleep(20 * time.Millisecond) {
		if r := gwDo(t, "GET", "http://"+addr+"/x", nil, ""); r.Status == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the changed routes did not apply within 1 s")
		}
	}
	// The connection kept for the old configuration is closed with it.
	for deadline := time.Now().Add(time.Second); open.Load() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d upstream connections still open after the change", open.Load())
		}
	}

	// Without an upstream: forward-auth and the gateway's pages only.
	fa := freeAddr(t)
	if r := adminDo(t, "POST", A, `{"name":"fa","listen":"`+fa+`","routes":[{"path":"/","access":"seat"}]}`); r.Status != http.StatusCreated {
		t.Fatalf("create fa: %d %s", r.Status, r.Body)
	}
	waitUp(t, fa)
	if r := gwDo(t, "GET", "http://"+fa+"/x", nil, ""); r.Status != 404 {
		t.Fatalf("no upstream, proxied path: %d %s", r.Status, r.Body)
	}
	if r := gwDo(t, "GET", "http://"+fa+"/.leasehold/auth", map[string]string{"X-Forwarded-Uri": "/x"}, ""); r.Status != 401 {
		t.Fatalf("no upstream, forward-auth: %d %s", r.Status, r.Body)
	}
	if r := gwDo(t, "GET", "http://"+fa+"/.leasehold/login", nil, ""); r.Status != 200 {
		t.Fatalf("no upstream, login page: %d", r.Status)
	}

	// A listener that cannot be bound fails /readyz, naming the gateway.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if r := adminDo(t, "POST", A, `{"name":"busy","listen":"`+busy.Addr().String()+`","routes":[{"path":"/","access":"public"}]}`); r.Status != http.StatusCreated {
		t.Fatalf("create busy: %d %s", r.Status, r.Body)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		r := get(t, ts.URL+"/readyz", "")
		if r.Status == 503 && strings.Contains(r.Body, "gw/busy") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz: %d %s", r.Status, r.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := adminDo(t, "DELETE", A+"/busy", ""); r.Status != 200 && r.Status != 204 {
		t.Fatalf("delete busy: %d %s", r.Status, r.Body)
	}

	// Removed: the listener stops, without a restart.
	if r := adminDo(t, "DELETE", A+"/late", ""); r.Status != 200 && r.Status != 204 {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	deadline = time.Now().Add(time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the removed gateway still listens")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r := get(t, ts.URL+"/readyz", ""); r.Status != 200 {
		t.Fatalf("readyz after removal: %d %s", r.Status, r.Body)
	}
}

type gwLease struct {
	ID        string    `json:"id"`
	License   string    `json:"license"`
	Item      string    `json:"item"`
	User      string    `json:"user"`
	Session   string    `json:"session"`
	ExpiresAt time.Time `json:"expires_at"`
}

func gwLeases(t *testing.T, ts *testServer, tenant string) []gwLease {
	t.Helper()
	r := adminDo(t, "GET", ts.URL+"/admin/v1/tenants/"+tenant+"/leases", "")
	var list struct {
		Leases []gwLease `json:"leases"`
	}
	if err := json.Unmarshal([]byte(r.Body), &list); err != nil || r.Status != 200 {
		t.Fatalf("leases: %d %s", r.Status, r.Body)
	}
	return list.Leases
}

func itemLeases(list []gwLease, item string) []gwLease {
	var out []gwLease
	for _, l := range list {
		if l.Item == item {
			out = append(out, l)
		}
	}
	return out
}

// TestGatewayItemLease: a seat route with an item takes the item's lease on the session's
// first request under it, keeps one lease (not one per request) that runs to the session's
// deadline, loses only that lease to an administrator (and takes it again), and releases it
// at logout.
func TestGatewayItemLease(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testGatewayItemLease(t, "") })
	t.Run("postgres", func(t *testing.T) { testGatewayItemLease(t, freshPostgres(t)) })
}

func testGatewayItemLease(t *testing.T, dsn string) {
	ts, gw, _ := startGatewayAt(t, dsn)
	tok, _, _ := sessGrant(t, sessLogin(t, ts.URL+"/t/gw", "alice", "alice-pw", nil, nil))
	bearer := map[string]string{"Authorization": "Bearer " + tok}
	if got := itemLeases(gwLeases(t, ts, "gw"), "Reports"); len(got) != 0 {
		t.Fatalf("an item lease before any request: %v", got)
	}
	for range 3 {
		if _, h := upstreamSaw(t, gwDo(t, "GET", gw+"/reports/q", bearer, "")); h.Get("X-Leasehold-License") != "lic-g" {
			t.Fatalf("item route: %v", h)
		}
	}
	// Admitting a session that holds the lease asks the engine nothing: no grant, no renewal.
	grants := func() string {
		r := get(t, ts.URL+"/metrics", "test-admin")
		m := regexp.MustCompile(`(?m)^leasehold_license_grants_total\{tenant="gw"\} (\S+)$`).FindStringSubmatch(r.Body)
		if m == nil {
			t.Fatalf("no grants metric: %s", r.Body)
		}
		return m[1]
	}
	before := grants()
	for range 5 {
		upstreamSaw(t, gwDo(t, "GET", gw+"/reports/q", bearer, ""))
	}
	if after := grants(); after != before {
		t.Fatalf("grants moved from %s to %s: an engine call per request", before, after)
	}
	got := itemLeases(gwLeases(t, ts, "gw"), "Reports")
	if len(got) != 1 || got[0].User != "alice" || got[0].Session == "" {
		t.Fatalf("one item lease for the session: %+v", got)
	}
	// The session's deadline (idle_timeout 1h), not the model's online_lease (15 min).
	if until := time.Until(got[0].ExpiresAt); until < 50*time.Minute {
		t.Fatalf("item lease runs %v, not to the session's deadline", until)
	}
	r := gwDo(t, "GET", gw+"/.leasehold/whoami", bearer, "")
	if !strings.Contains(r.Body, `"item":"Reports"`) {
		t.Fatalf("whoami: %s", r.Body)
	}

	// An administrator ends the item lease: only it ends; the next request takes it again.
	if r := adminDo(t, "DELETE", ts.URL+"/admin/v1/tenants/gw/leases/"+got[0].ID, ""); r.Status != 200 {
		t.Fatalf("end item lease: %d %s", r.Status, r.Body)
	}
	if n := len(itemLeases(gwLeases(t, ts, "gw"), "Reports")); n != 0 {
		t.Fatalf("item lease after the admin ended it: %d", n)
	}
	if _, h := upstreamSaw(t, gwDo(t, "GET", gw+"/api/x", bearer, "")); h.Get("X-Leasehold-User") != "alice" {
		t.Fatalf("session after its item lease ended: %v", h)
	}
	upstreamSaw(t, gwDo(t, "GET", gw+"/reports/q", bearer, ""))
	again := itemLeases(gwLeases(t, ts, "gw"), "Reports")
	if len(again) != 1 || again[0].ID == got[0].ID {
		t.Fatalf("item lease taken again: %+v (was %s)", again, got[0].ID)
	}

	// Logout through the gateway releases the seat and the item lease (linger 0s).
	if r := gwDo(t, "POST", gw+"/.leasehold/logout", bearer, ""); r.Status != 200 {
		t.Fatalf("logout: %d %s", r.Status, r.Body)
	}
	if left := gwLeases(t, ts, "gw"); len(left) != 0 {
		t.Fatalf("leases after logout: %+v", left)
	}
	if r := gwDo(t, "GET", gw+"/reports/q", bearer, ""); r.Status != 401 {
		t.Fatalf("after logout: %d", r.Status)
	}
}

// TestGatewayUseExtendsSession: each admitted request is use of its session, so an
// idle-timeout session lives while requests come through the gateway, and ends once they stop.
func TestGatewayUseExtendsSession(t *testing.T) {
	up := echoUpstream(t)
	gwAddr := freeAddr(t)
	cfg := strings.NewReplacer("{{GW}}", gwAddr, "{{UPSTREAM}}", up.URL, "idle_timeout: 1h", "idle_timeout: 2s").Replace(gatewayConfig)
	ts := start(t, cfg)
	waitUp(t, gwAddr)
	gw := "http://" + gwAddr
	// The gateway's cookie (an access token would expire at the session's first deadline).
	_, cookie := gwLogin(t, gw, "alice", "alice-pw")
	bearer := map[string]string{"Cookie": cookie}
	for end := time.Now().Add(3500 * time.Millisecond); time.Now().Before(end); time.Sleep(400 * time.Millisecond) {
		upstreamSaw(t, gwDo(t, "GET", gw+"/reports/x", bearer, ""))
	}
	// An open request is use too: a stream keeps the session alive past its idle timeout.
	stream, stop := openStreamCtx(t, gw+"/api/stream", bearer)
	time.Sleep(3500 * time.Millisecond)
	select {
	case <-stream:
		t.Fatal("the stream was closed")
	default:
	}
	stop()
	<-stream
	upstreamSaw(t, gwDo(t, "GET", gw+"/read/x", bearer, ""))

	time.Sleep(2500 * time.Millisecond)
	if r := gwDo(t, "GET", gw+"/read/x", bearer, ""); r.Status != 401 {
		t.Fatalf("idle session: %d", r.Status)
	}
	if left := itemLeases(gwLeases(t, ts, "gw"), "Reports"); len(left) != 0 {
		t.Fatalf("item lease of an expired session: %+v", left)
	}
}

// TestGatewayTrustedIssuer: a trusted issuer's JWT is a Bearer credential at the gateway
// (the session of its sub), never forwarded; a bad one is a 401, the cookie then untried.
func TestGatewayTrustedIssuer(t *testing.T) {
	dir := t.TempDir()
	idp := newRSAIssuer(t, "https://idp.example", "k1")
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), jwksOf(t, idp), 0o600); err != nil {
		t.Fatal(err)
	}
	up := echoUpstream(t)
	gwAddr := freeAddr(t)
	cfg := strings.NewReplacer("{{GW}}", gwAddr, "{{UPSTREAM}}", up.URL,
		"    session: {item: PlatformService, idle_timeout: 1h}",
		"    session: {item: PlatformService, idle_timeout: 1h}\n    trusted_issuers: [{issuer: \"https://idp.example\", jwks_file: \"{{DIR}}/jwks.json\", audience: leasehold}]",
	).Replace(gatewayConfig)
	startAt(t, cfg, dir, "sqlite://"+filepath.Join(dir, "leasehold.db"))
	waitUp(t, gwAddr)
	gw := "http://" + gwAddr

	jwt := idp.token(t, "alice", nil)
	_, h := upstreamSaw(t, gwDo(t, "GET", gw+"/api/x", map[string]string{"Authorization": "Bearer " + jwt}, ""))
	if h.Get("X-Leasehold-User") != "alice" || h.Get("X-Leasehold-License") != "lic-g" || h.Get("Authorization") != "" {
		t.Fatalf("trusted JWT: %v", h)
	}
	_, cookie := gwLogin(t, gw, "alice", "alice-pw") // the same seat (sessions_per_seat 2)
	if cookie == "" {
		t.Fatal("no gateway cookie")
	}
	upstreamSaw(t, gwDo(t, "GET", gw+"/read/x", map[string]string{"Cookie": cookie}, ""))
	bad := idp.token(t, "alice", map[string]any{"aud": "someone-else"})
	r := gwDo(t, "GET", gw+"/read/x", map[string]string{"Authorization": "Bearer " + bad, "Cookie": cookie}, "")
	if r.Status != 401 || !strings.Contains(r.Header.Get("WWW-Authenticate"), `realm="gw"`) {
		t.Fatalf("bad JWT: %d %v", r.Status, r.Header)
	}
}

// openStream starts a streamed request through the gateway and returns a channel closed
// when the stream ends.
func openStream(t *testing.T, u string, header map[string]string) <-chan struct{} {
	t.Helper()
	done, _ := openStreamCtx(t, u, header)
	return done
}

// openStreamCtx is openStream with a function that ends the stream from the client side.
func openStreamCtx(t *testing.T, u string, header map[string]string) (<-chan struct{}, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	buf := make([]byte, 64)
	if n, err := resp.Body.Read(buf); err != nil || !strings.Contains(string(buf[:n]), "hello") {
		t.Fatalf("stream start: %q %v", buf[:n], err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
	}()
	return done, cancel
}

func closedWithin(t *testing.T, what string, done <-chan struct{}, d time.Duration) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: the open request was not closed within %v", what, d)
	}
}

// TestGatewayClosesOpenRequests: a request still open (a stream) is closed within 1 s of its
// item lease's end (an administrator) or of its session's end (a logout).
func TestGatewayClosesOpenRequests(t *testing.T) {
	ts, gw, _ := startGateway(t)
	tok, _, _ := sessGrant(t, sessLogin(t, ts.URL+"/t/gw", "alice", "alice-pw", nil, nil))
	bearer := map[string]string{"Authorization": "Bearer " + tok}

	item := openStream(t, gw+"/reports/stream", bearer)
	seat := openStream(t, gw+"/api/stream", bearer)
	leases := itemLeases(gwLeases(t, ts, "gw"), "Reports")
	if len(leases) != 1 {
		t.Fatalf("item leases: %+v", leases)
	}
	if r := adminDo(t, "DELETE", ts.URL+"/admin/v1/tenants/gw/leases/"+leases[0].ID, ""); r.Status != 200 {
		t.Fatalf("end item lease: %d %s", r.Status, r.Body)
	}
	closedWithin(t, "item lease ended", item, time.Second)
	select {
	case <-seat:
		t.Fatal("a request under another route was closed with the item lease")
	case <-time.After(200 * time.Millisecond):
	}
	if r := gwDo(t, "POST", gw+"/.leasehold/logout", bearer, ""); r.Status != 200 {
		t.Fatalf("logout: %d", r.Status)
	}
	closedWithin(t, "session ended", seat, time.Second)
}

// TestGatewayPagesShareTheDashboardLook: the gateway's pages link the dashboard's
// stylesheet, served by the gateway's own listener, and their CSP allows it.
func TestGatewayPagesShareTheDashboardLook(t *testing.T) {
	_, gw, _ := startGateway(t)
	r := gwDo(t, http.MethodGet, gw+"/.leasehold/login", nil, "")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `href="/.leasehold/style.css"`) ||
		!strings.Contains(r.Header.Get("Content-Security-Policy"), "style-src 'self'") ||
		!strings.Contains(r.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("login page: %d %q %s", r.Status, r.Header.Get("Content-Security-Policy"), r.Body)
	}
	css := gwDo(t, http.MethodGet, gw+"/.leasehold/style.css", nil, "")
	if css.Status != http.StatusOK || !strings.HasPrefix(css.Header.Get("Content-Type"), "text/css") || css.Body != string(ui.Stylesheet()) {
		t.Fatalf("stylesheet: %d %q", css.Status, css.Header.Get("Content-Type"))
	}
}

// TestGatewayTLS: a gateway with tls serves HTTPS and HTTP/2 on its own listener; its
// public_url defaults to https, so its cookies are Secure and __Host- prefixed; the upstream
// is told X-Forwarded-Proto https; and a certificate replaced on disk is served to the next
// connection without a restart.
func TestGatewayTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	tlstest.WriteCert(t, certFile, keyFile, 1)
	up := echoUpstream(t)
	addr := freeAddr(t)
	cfg := strings.NewReplacer("{{GW}}", addr, "{{UPSTREAM}}", up.URL,
		"        timeout: 5s\n", "        timeout: 5s\n        tls: {cert_file: \""+certFile+"\", key_file: \""+keyFile+"\"}\n").Replace(gatewayConfig)
	ts := start(t, cfg)
	waitUp(t, addr)
	gw := "https://" + addr

	// served reports the certificate serial and protocol a new connection gets.
	served := func() (int64, string) {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(gw + "/health")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.TLS == nil {
			t.Fatal("no TLS")
		}
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64(), resp.Proto
	}
	if serial, proto := served(); serial != 1 || proto != "HTTP/2.0" {
		t.Fatalf("gateway over TLS: serial %d over %s, want 1 over HTTP/2.0", serial, proto)
	}
	// Plain HTTP is not served on the TLS listener.
	if r := gwDo(t, "GET", "http://"+addr+"/health", nil, ""); r.Status != http.StatusBadRequest {
		t.Fatalf("plain HTTP on the TLS listener: %d", r.Status)
	}

	r, alice := gwLogin(t, gw, "alice", "alice-pw")
	if r.Status != http.StatusSeeOther || alice == "" {
		t.Fatalf("login over TLS: %d %v", r.Status, r.Header)
	}
	// lh_device keeps its name (the device id anchors the user's seat wherever it is read).
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if !c.Secure || !c.HttpOnly || (c.Name != "lh_device" && !strings.HasPrefix(c.Name, "__Host-")) {
			t.Errorf("cookie %s over TLS: Secure %v, HttpOnly %v", c.Name, c.Secure, c.HttpOnly)
		}
	}
	_, h := upstreamSaw(t, gwDo(t, "GET", gw+"/api/x", map[string]string{"Cookie": alice, "Origin": gw}, ""))
	if h.Get("X-Leasehold-User") != "alice" || h.Get("X-Forwarded-Proto") != "https" || h.Get("Cookie") != "" {
		t.Fatalf("proxied over TLS: %v", h)
	}

	// A renewed certificate (a new mtime) is picked up within a second or so.
	time.Sleep(1100 * time.Millisecond)
	tlstest.WriteCert(t, certFile, keyFile, 2)
	serial := int64(1)
	for deadline := time.Now().Add(5 * time.Second); serial != 2 && time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		serial, _ = served()
	}
	if serial != 2 {
		t.Fatalf("the replaced certificate was not served: serial %d", serial)
	}

	// tls removed: the listener is started again, serving plain HTTP, within a second.
	if r := adminDo(t, "PATCH", ts.URL+"/admin/v1/tenants/gw/gateways/web", `{"tls":null}`); r.Status != 200 {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/health", nil)
			if resp, err := noRedirect.Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the gateway did not serve plain HTTP after its tls was removed")
		}
	}

	// A pair this process cannot load fails /readyz, naming the gateway but not the files.
	missing := filepath.Join(dir, "missing.pem")
	if r := adminDo(t, "PATCH", ts.URL+"/admin/v1/tenants/gw/gateways/web", `{"tls":{"cert_file":"`+missing+`","key_file":"`+missing+`"}}`); r.Status != 200 {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r := get(t, ts.URL+"/readyz", "")
		if r.Status == 503 && strings.Contains(r.Body, "gw/web") {
			if strings.Contains(r.Body, "missing.pem") {
				t.Fatalf("readyz, which anyone may read, names the certificate's files: %s", r.Body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz with an unloadable pair: %d %s", r.Status, r.Body)
		}
	}
}
