package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/app"
	"github.com/leasehold/leasehold/internal/config"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
	"github.com/leasehold/leasehold/internal/store/postgres/pgtest"
	"github.com/leasehold/leasehold/internal/ui"
)

const testYAML = `listen: 127.0.0.1:0
public_url: {{URL}}
store: {{STORE}}
{{ADMIN}}
documents: {{DIR}}/documents
tenants:
  - name: acme
    default: true
    session: {item: Suite}
    users:
      - {username: alice, password: alice-pw}
    clients:
      - client_id: app
        client_secret: app-secret
        user: alice
        grant_types: [client_credentials]
        scopes: [all]
    products:
      - {name: Suite, items: [Feature]}
    models:
      - name: floating
        anchors: [user, hw]
        sessions_per_seat: 3
        online_lease: 15m
        offline_lease: 24h
        linger: 1m
    licenses:
      - {id: lic-1, product: Suite, model: floating, seats: 5, owner: {user: alice}}
  - name: empty
`

const adminToken = "test-admin-token-0123456789"

type server struct {
	URL string
	App *app.App
}

func start(t testing.TB, admin bool) *server {
	t.Helper()
	return startOn(t, admin, "")
}

// startOn starts a server on the store storeDSN ("" for a fresh SQLite file).
func startOn(t testing.TB, admin bool, storeDSN string) *server {
	t.Helper()
	dir := t.TempDir()
	if storeDSN == "" {
		storeDSN = "sqlite://" + filepath.Join(dir, "lh.db")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	adminLine := ""
	if admin {
		adminLine = "admin_token: " + adminToken
	}
	y := strings.NewReplacer("{{URL}}", base, "{{STORE}}", storeDSN, "{{DIR}}", dir,
		"{{ADMIN}}", adminLine).Replace(testYAML)
	cfg, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
		a.Close()
	})
	return &server{URL: base, App: a}
}

// browser is an HTTP client that keeps cookies and does not follow redirects, so that
// tests see each answer.
func browser(t testing.TB) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t testing.TB, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func post(t testing.TB, c *http.Client, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t testing.TB, body string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf field in:\n%s", body)
	}
	return m[1]
}

// signIn signs c in and returns the CSRF token of its pages.
func signIn(t testing.TB, s *server, c *http.Client) string {
	t.Helper()
	_, body := get(t, c, s.URL+"/ui/login")
	resp, _ := post(t, c, s.URL+"/ui/login", url.Values{"csrf": {csrfOf(t, body)}, "token": {adminToken}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body = get(t, c, s.URL+"/ui/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("overview after sign-in: %d", resp.StatusCode)
	}
	return csrfOf(t, body)
}

func wantCSP(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	if got := resp.Header.Get("Content-Security-Policy"); got != ui.CSP {
		t.Errorf("%s: Content-Security-Policy = %q, want %q", what, got, ui.CSP)
	}
}

func TestOffWithoutAdminToken(t *testing.T) {
	s := start(t, false)
	c := browser(t)
	for _, p := range []string{"/ui/", "/ui/login", "/ui/t/acme/sessions"} {
		resp, _ := get(t, c, s.URL+p)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s without admin_token: %d, want 403", p, resp.StatusCode)
		}
		wantCSP(t, p, resp)
	}
	resp, _ := post(t, c, s.URL+"/ui/login", url.Values{"token": {""}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST /ui/login without admin_token: %d, want 403", resp.StatusCode)
	}
	// The shared stylesheet stays available to the OAuth2 sign-in page.
	if resp, _ := get(t, c, s.URL+ui.StylesheetPath); resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: %d", ui.StylesheetPath, resp.StatusCode)
	}
}

func TestSignIn(t *testing.T) {
	s := start(t, true)
	c := browser(t)

	resp, _ := get(t, c, s.URL+"/ui/")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login" {
		t.Fatalf("GET /ui/ signed out: %d %q, want a redirect to /ui/login", resp.StatusCode, resp.Header.Get("Location"))
	}
	wantCSP(t, "redirect", resp)
	resp, body := get(t, c, s.URL+"/ui/login")
	wantCSP(t, "/ui/login", resp)
	for _, want := range []string{`<label for="token">Admin token</label>`, `id="token"`, `<button type="submit">Sign in</button>`} {
		if !strings.Contains(body, want) {
			t.Errorf("sign-in page lacks %s", want)
		}
	}
	csrf := csrfOf(t, body)

	resp, _ = post(t, c, s.URL+"/ui/login", url.Values{"token": {adminToken}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign-in without its CSRF token: %d, want 403", resp.StatusCode)
	}
	resp, body = post(t, c, s.URL+"/ui/login", url.Values{"csrf": {csrf}, "token": {"wrong"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Wrong admin token") {
		t.Errorf("wrong token: %d, page says the token is wrong: %v", resp.StatusCode, strings.Contains(body, "Wrong admin token"))
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == ui.CookieName && ck.MaxAge >= 0 {
			t.Errorf("a wrong token set %s", ui.CookieName)
		}
	}

	resp, _ = post(t, c, s.URL+"/ui/login", url.Values{"csrf": {csrf}, "token": {adminToken}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("right token: %d", resp.StatusCode)
	}
	var sess *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == ui.CookieName {
			sess = ck
		}
	}
	if sess == nil {
		t.Fatal("no lh_ui cookie")
	}
	if !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Path != "/ui/" || sess.Secure ||
		sess.MaxAge != int(ui.SessionTTL/time.Second) || ui.SessionTTL != 12*time.Hour {
		t.Errorf("cookie = %+v, want HttpOnly, SameSite=Strict, Path=/ui/, not Secure over plain HTTP, 12 h", sess)
	}
	if strings.Contains(sess.Value, adminToken) || len(sess.Value) < 40 {
		t.Errorf("cookie value %q: want a long random value, never the admin token", sess.Value)
	}
	// Only the value's hash is stored.
	_, err := store.Read(context.Background(), s.App.Store, func(tx store.Tx) (*store.UISession, error) {
		return tx.GetUISession(context.Background(), sess.Value)
	})
	if err != domain.ErrNotFound {
		t.Errorf("the store holds the cookie value itself (err %v)", err)
	}

	pages := []string{"/ui/", "/ui/t/acme/licenses/lic-1", "/ui/t/acme/sessions", "/ui/t/acme/usage", "/ui/t/acme/usage?range=90d"}
	var pageCSRF string
	for _, p := range pages {
		resp, body := get(t, c, s.URL+p)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", p, resp.StatusCode)
		}
		wantCSP(t, p, resp)
		if strings.Contains(body, "style=") || strings.Contains(body, "<script>") || strings.Contains(body, "onclick") {
			t.Errorf("%s has inline style or script, which the CSP refuses", p)
		}
		pageCSRF = csrfOf(t, body)
	}
	if _, body := get(t, c, s.URL+"/ui/"); !strings.Contains(body, "No license.") {
		t.Error("the overview does not say that tenant empty has no license")
	}

	resp, _ = post(t, c, s.URL+"/ui/logout", url.Values{})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout without CSRF: %d, want 403", resp.StatusCode)
	}
	resp, _ = post(t, c, s.URL+"/ui/logout", url.Values{"csrf": {pageCSRF}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("logout: %d", resp.StatusCode)
	}
	// The old cookie no longer works, even if a browser kept it.
	c2 := browser(t)
	u, _ := url.Parse(s.URL + "/ui/")
	c2.Jar.SetCookies(u, []*http.Cookie{{Name: ui.CookieName, Value: sess.Value, Path: "/ui/"}})
	if resp, _ := get(t, c2, s.URL+"/ui/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after logout the old cookie still works: %d", resp.StatusCode)
	}
	// A JSON poll signed out is 401, so the script stops.
	if resp, _ := get(t, c2, s.URL+"/ui/?format=json"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("signed-out poll: %d, want 401", resp.StatusCode)
	}
	// Not under a tenant prefix: the dashboard spans tenants.
	if resp, _ := get(t, c, s.URL+"/t/acme/ui/"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /t/acme/ui/: %d, want 404", resp.StatusCode)
	}
}

// clientToken is a client-credentials access token of the test client.
func clientToken(t testing.TB, s *server) string {
	t.Helper()
	req, _ := http.NewRequest("POST", s.URL+"/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("app", "app-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.AccessToken == "" {
		t.Fatalf("token: %d %v", resp.StatusCode, err)
	}
	return out.AccessToken
}

func consume(t testing.TB, s *server, tok, query string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL+"/authz/.json?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func adminLeases(t testing.TB, s *server) []string {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL+"/admin/v1/tenants/acme/leases", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Leases []struct{ ID, Item string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range out.Leases {
		ids = append(ids, l.ID)
	}
	return ids
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func TestEndLease(t *testing.T) {
	s := start(t, true)
	c := browser(t)
	csrf := signIn(t, s, c)
	tok := clientToken(t, s)
	lease, _ := consume(t, s, tok, "Feature&hw=pc-1")["jti"].(string)
	if lease == "" {
		t.Fatal("no lease granted")
	}
	_, body := get(t, c, s.URL+"/ui/t/acme/licenses/lic-1")
	if !strings.Contains(body, lease) || !strings.Contains(body, "pc-1") {
		t.Fatalf("the license page does not show lease %s on pc-1", lease)
	}
	resp, body := get(t, c, s.URL+"/ui/t/acme/licenses/lic-1?format=json")
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" || !strings.Contains(body, lease) {
		t.Errorf("JSON twin: %s, has the lease: %v", ct, strings.Contains(body, lease))
	}

	end := s.URL + "/ui/t/acme/leases/" + lease + "/end?back=/ui/t/acme/licenses/lic-1"
	if resp, _ := post(t, c, end, url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("End without CSRF: %d, want 403", resp.StatusCode)
	}
	if resp, _ := post(t, c, end, url.Values{"csrf": {"x" + csrf}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("End with a wrong CSRF token: %d, want 403", resp.StatusCode)
	}
	if resp, _ := post(t, browser(t), end, url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("End signed out: %d, want 403", resp.StatusCode)
	}
	if !contains(adminLeases(t, s), lease) {
		t.Fatal("a refused End ended the lease")
	}
	resp, _ = post(t, c, end, url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/ui/t/acme/licenses/lic-1?ended=") {
		t.Fatalf("End: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if contains(adminLeases(t, s), lease) {
		t.Error("the admin API still lists the ended lease")
	}
	// Freed at once, no linger: the seat no longer counts.
	if _, body := get(t, c, s.URL+"/ui/t/acme/licenses/lic-1?format=json"); strings.Contains(body, "pc-1") {
		t.Errorf("the seat of the ended lease is still shown: %s", body)
	}
	// An off-site "back" is ignored.
	lease2, _ := consume(t, s, tok, "Feature&hw=pc-2")["jti"].(string)
	resp, _ = post(t, c, s.URL+"/ui/t/acme/leases/"+lease2+"/end?back=//evil.example/", url.Values{"csrf": {csrf}})
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/ui/") {
		t.Errorf("End redirected off the dashboard: %q", loc)
	}
}

func TestEndCheckoutAfterConfirmation(t *testing.T) {
	s := start(t, true)
	c := browser(t)
	csrf := signIn(t, s, c)
	tok := clientToken(t, s)
	lease, _ := consume(t, s, tok, "Feature&hw=pc-9&consumptionMode=checkout")["jti"].(string)
	if lease == "" {
		t.Fatal("no checkout lease granted")
	}
	end := s.URL + "/ui/t/acme/leases/" + lease + "/end?back=/ui/t/acme/licenses/lic-1"
	resp, body := post(t, c, end, url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="force" value="true"`) || !strings.Contains(body, "offline") {
		t.Fatalf("End of a checkout lease: %d, want a confirmation page with a forced End", resp.StatusCode)
	}
	if !contains(adminLeases(t, s), lease) {
		t.Fatal("asking for a confirmation ended the lease")
	}
	resp, _ = post(t, c, end, url.Values{"csrf": {csrf}, "force": {"true"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirmed End: %d", resp.StatusCode)
	}
	if contains(adminLeases(t, s), lease) {
		t.Error("the confirmed End left the checkout lease")
	}
	if _, body := get(t, c, s.URL+"/ui/t/acme/licenses/lic-1?format=json"); strings.Contains(body, "pc-9") {
		t.Error("a forced End left the checkout seat counting")
	}
}

func TestEndSession(t *testing.T) {
	s := start(t, true)
	c := browser(t)
	csrf := signIn(t, s, c)
	clientToken(t, s) // a client-credentials session holding a seat of Suite
	_, body := get(t, c, s.URL+"/ui/t/acme/sessions?format=json")
	var live struct {
		Tables map[string][]struct {
			Cells []struct{ T string }
			End   string
		}
	}
	if err := json.Unmarshal([]byte(body), &live); err != nil || len(live.Tables["sessions"]) != 1 {
		t.Fatalf("sessions JSON: %v %s", err, body)
	}
	row := live.Tables["sessions"][0]
	if row.Cells[1].T != "alice" || row.Cells[2].T != "app" || row.Cells[7].T != "lic-1" {
		t.Errorf("session row = %+v", row.Cells)
	}
	resp, _ := post(t, c, s.URL+row.End, url.Values{})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("End session without CSRF: %d", resp.StatusCode)
	}
	resp, _ = post(t, c, s.URL+row.End, url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("End session: %d", resp.StatusCode)
	}
	if _, body := get(t, c, s.URL+resp.Header.Get("Location")); !strings.Contains(body, "No live session.") || !strings.Contains(body, "Ended session") {
		t.Error("the sessions page still lists the ended session, or does not say it ended")
	}
	if n := len(adminLeases(t, s)); n != 0 {
		t.Errorf("the session's seat lease survived its session: %d leases", n)
	}
}

func TestUsage(t *testing.T) {
	s := start(t, true)
	c := browser(t)
	signIn(t, s, c)
	tok := clientToken(t, s)
	for i := range 4 {
		consume(t, s, tok, fmt.Sprintf("Feature&hw=pc-%d", i)) // with the session's seat: all 5
	}
	if r := consume(t, s, tok, "Feature&hw=pc-x"); r["Feature_errorCode"] == nil {
		t.Fatalf("want a refusal, got %v", r)
	}
	consume(t, s, tok, "Unknown&hw=pc-x") // noLicenseFound: counted under no license
	if err := s.App.Usage.Flush(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, c, s.URL+"/ui/t/acme/usage")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "<svg") || !strings.Contains(body, `class="deny"`) ||
		!strings.Contains(body, `class="peak"`) || !strings.Contains(body, "(no license)") {
		t.Errorf("usage page: %d, chart with peak and refusals: %v", resp.StatusCode, strings.Contains(body, "<svg"))
	}
	resp, body = get(t, c, s.URL+"/ui/t/acme/usage.csv")
	lines := strings.Split(strings.TrimSpace(body), "\n")
	if resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" || lines[0] != "hour,license,peak_seats,denials" {
		t.Fatalf("CSV: %s\n%s", resp.Header.Get("Content-Type"), body)
	}
	hour := time.Now().UTC().Truncate(time.Hour).Format(time.RFC3339)
	want := map[string]bool{hour + ",,0,1": true, hour + ",lic-1,5,1": true}
	for _, l := range lines[1:] {
		delete(want, l)
	}
	if len(want) != 0 {
		t.Errorf("CSV lacks %v:\n%s", want, body)
	}
	if _, body := get(t, c, s.URL+"/ui/t/acme/usage?range=90d"); !strings.Contains(body, "per day, last 90 days") {
		t.Error("?range=90d does not draw per day")
	}
}

func regexpMust(re string) *regexp.Regexp { return regexp.MustCompile(re) }

func TestSignInThrottled(t *testing.T) {
	s := start(t, true)
	c := browser(t)
	_, body := get(t, c, s.URL+"/ui/login")
	csrf := csrfOf(t, body)
	for i := range 20 {
		resp, _ := post(t, c, s.URL+"/ui/login", url.Values{"csrf": {csrf}, "token": {"guess"}})
		if resp.StatusCode == http.StatusTooManyRequests {
			if resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
			// Even the right token waits: a guesser cannot tell a hit from the wait.
			if resp, _ := post(t, c, s.URL+"/ui/login", url.Values{"csrf": {csrf}, "token": {adminToken}}); resp.StatusCode != http.StatusTooManyRequests {
				t.Errorf("right token while throttled: %d, want 429", resp.StatusCode)
			}
			return
		}
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, resp.StatusCode)
		}
	}
	t.Fatal("20 wrong tokens from one address were never throttled")
}

// TestSecureCookieUnderTLS: over TLS the sign-in cookie is Secure.
func TestSecureCookieUnderTLS(t *testing.T) {
	s := start(t, true)
	ts := httptest.NewTLSServer(s.App.Server.Handler())
	defer ts.Close()
	c := ts.Client()
	c.Jar, _ = cookiejar.New(nil)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	_, body := get(t, c, ts.URL+"/ui/login")
	resp, _ := post(t, c, ts.URL+"/ui/login", url.Values{"csrf": {csrfOf(t, body)}, "token": {adminToken}})
	var found bool
	for _, ck := range resp.Cookies() {
		if ck.Name == ui.CookieName {
			found = true
			if !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
				t.Errorf("cookie under TLS = %+v, want Secure, HttpOnly, SameSite=Strict", ck)
			}
		}
	}
	if !found {
		t.Fatalf("no %s cookie (status %d)", ui.CookieName, resp.StatusCode)
	}
}

// TestRecorderCountsConcurrentDenials: refusals counted from many goroutines while flushes
// run all reach the store, once each.
func TestRecorderCountsConcurrentDenials(t *testing.T) {
	s := start(t, true)
	rec := s.App.Usage
	ctx := context.Background()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			if err := rec.Flush(ctx, true); err != nil {
				t.Error(err)
			}
		}
	}()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 250 {
				rec.Denied("acme", "lic-1")
			}
		}()
	}
	wg.Wait()
	<-done
	if err := rec.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	rows, err := store.Read(ctx, s.App.Store, func(tx store.Tx) ([]store.UsageHour, error) {
		return tx.ListUsageHours(ctx, "acme", time.Now().Add(-2*time.Hour), time.Now().Add(time.Hour))
	})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, r := range rows {
		total += r.Denials
	}
	if total != 2000 {
		t.Errorf("denials stored = %d, want 2000 (%+v)", total, rows)
	}
}

// TestSignInAcrossProcesses: two processes on one PostgreSQL database; a sign-in made on
// one is accepted by the other (it is in the store), and a logout on the other ends it
// for both.
func TestSignInAcrossProcesses(t *testing.T) {
	dsn := pgtest.FreshDatabase(t, "lh_ui_")
	a := startOn(t, true, dsn)
	b := startOn(t, true, dsn)
	c := browser(t)
	csrf := signIn(t, a, c)
	var value string
	ua, _ := url.Parse(a.URL + "/ui/")
	for _, ck := range c.Jar.Cookies(ua) {
		if ck.Name == ui.CookieName {
			value = ck.Value
		}
	}
	cb := browser(t)
	ub, _ := url.Parse(b.URL + "/ui/")
	cb.Jar.SetCookies(ub, []*http.Cookie{{Name: ui.CookieName, Value: value, Path: "/ui/"}})
	resp, body := get(t, cb, b.URL+"/ui/")
	if resp.StatusCode != http.StatusOK || csrfOf(t, body) != csrf {
		t.Fatalf("the other process: %d, same CSRF token: %v", resp.StatusCode, resp.StatusCode == 200 && csrfOf(t, body) == csrf)
	}
	if resp, _ := post(t, cb, b.URL+"/ui/logout", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout on the other process: %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, a.URL+"/ui/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after a logout on b, a still accepts the sign-in: %d", resp.StatusCode)
	}
}
