package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sessionConfig has three tenants for the session API:
//   - wp (webPDF): the seed's admin/admin user, roomy seats, a 1 KiB document quota;
//   - short: sessions that expire after 2 s unused (document deletion at expiry);
//   - dw (DocuWare): one seat anchored on [user, hw], linger 2 s, sessions that never idle out.
const sessionConfig = `
listen: "{{LISTEN}}"
public_url: "{{URL}}"
store: "{{STORE}}"
admin_token: test-admin
documents: "{{DIR}}/documents"
tenants:
  - name: wp
    default: true
    session: {item: PlatformService, access_token_ttl: 3599s, refresh_token_ttl: 2h, idle_timeout: 2h, documents_quota: 1KiB, max_sessions_per_user: 5}
    organizations: [{id: org-w}]
    users:
      - {username: admin, password: admin, organization: org-w}
      - {username: alice, password: alice-pw, organization: org-w}
      - {username: carol, password: carol-pw, organization: org-w}
    products: [{name: PlatformService, items: [AppFeature-XYZ]}]
    models: [{name: floating, anchors: [user, hw], sessions_per_seat: 5, linger: 0s}]
    licenses: [{id: lic-w, product: PlatformService, model: floating, seats: 20, owner: {organization: org-w}}]
  - name: short
    session: {item: PlatformService, access_token_ttl: 2s, idle_timeout: 2s}
    organizations: [{id: org-s}]
    users: [{username: alice, password: alice-pw, organization: org-s}]
    products: [{name: PlatformService}]
    models: [{name: floating, anchors: [user, hw]}]
    licenses: [{id: lic-s, product: PlatformService, model: floating, seats: 5, owner: {organization: org-s}}]
  - name: dw
    session: {item: PlatformService, idle_timeout: 0s}
    organizations: [{id: org-d}]
    users:
      - {username: alice, password: alice-pw, organization: org-d}
      - {username: bob, password: bob-pw, organization: org-d}
    products: [{name: PlatformService}]
    models: [{name: seat, anchors: [user, hw], linger: 2s}]
    licenses: [{id: lic-d, product: PlatformService, model: seat, seats: 1, owner: {organization: org-d}}]
`

// sessCookies returns the cookies a response sets, by name.
func sessCookies(r response) map[string]*http.Cookie {
	out := map[string]*http.Cookie{}
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		out[c.Name] = c
	}
	return out
}

// sessLogin posts to /session/login (JSON unless header says otherwise) and returns the
// response.
func sessLogin(t *testing.T, base, user, password string, header map[string]string, extra map[string]any) response {
	t.Helper()
	body := map[string]any{"username": user, "password": password}
	for k, v := range extra {
		body[k] = v
	}
	raw, _ := json.Marshal(body)
	h := map[string]string{"Content-Type": "application/json"}
	for k, v := range header {
		h[k] = v
	}
	return do(t, http.MethodPost, base+"/session/login", h, string(raw))
}

// sessGrant checks a 200 session grant and returns its token, refresh token and cookies.
func sessGrant(t *testing.T, r response) (token, refresh string, cookies map[string]*http.Cookie) {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("session grant: %d %s", r.Status, r.Body)
	}
	m := r.json(t)
	token, _ = m["token"].(string)
	refresh, _ = m["refreshToken"].(string)
	if token == "" {
		t.Fatalf("no token in %s", r.Body)
	}
	if _, ok := m["expiresIn"].(float64); !ok {
		t.Fatalf("no expiresIn in %s", r.Body)
	}
	if _, ok := m["refreshToken"]; !ok {
		t.Fatalf("no refreshToken field in %s", r.Body)
	}
	return token, refresh, sessCookies(r)
}

func sessBearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

func sessCookieHeader(cs ...*http.Cookie) map[string]string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return map[string]string{"Cookie": strings.Join(parts, "; ")}
}

func sessMerge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// sessDocDirs counts the session directories of the document storage.
func sessDocDirs(t *testing.T, ts *testServer) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(ts.Dir, "documents"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if e.IsDir() {
			n++
		}
	}
	return n
}

func sessWant(t *testing.T, what string, r response, status int) map[string]any {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: got %d, want %d: %s", what, r.Status, status, r.Body)
	}
	var m map[string]any
	_ = json.Unmarshal([]byte(r.Body), &m)
	return m
}
