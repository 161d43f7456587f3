package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// A session seat on a model with ip_ranges is checked against the caller's address when it
// is taken and again when use extends it (the renewal runs through the same engine checks).
func TestSessionSeatKeepsClientAddress(t *testing.T) {
	cfg := `
listen: "{{LISTEN}}"
public_url: "{{URL}}"
store: "{{STORE}}"
documents: "{{DIR}}/documents"
tenants:
  - name: acme
    default: true
    session: {item: PlatformService, idle_timeout: 4s}
    organizations: [{id: org-1}]
    users: [{username: alice, password: alice-pw, organization: org-1}]
    clients: [{client_id: app, client_secret: s3cret, user: alice}]
    products: [{name: PlatformService}]
    models: [{name: lan, anchors: [user], ip_ranges: [RANGE]}]
    licenses: [{id: lic-1, product: PlatformService, model: lan, seats: 1, owner: {organization: org-1}}]
`
	ts := start(t, strings.Replace(cfg, "RANGE", "127.0.0.0/8", 1))
	tok := ccToken(t, ts.URL, "app", "s3cret", "")
	// Past 80 % of the 4 s idle window a use extends the session and renews its seat
	// (0.6 s of margin either side for a loaded machine).
	time.Sleep(3400 * time.Millisecond)
	if r := get(t, ts.URL+"/entitlements/licenses", tok); r.Status != http.StatusOK {
		t.Fatalf("use after the refresh point: %d %s", r.Status, r.Body)
	}
	// The extension was written: a second access token of the session (client credentials
	// rejoin) outlives the first session deadline.
	tok2 := ccToken(t, ts.URL, "app", "s3cret", "")
	time.Sleep(1000 * time.Millisecond)
	if r := get(t, ts.URL+"/entitlements/licenses", tok2); r.Status != http.StatusOK {
		t.Fatalf("after the first deadline: %d %s", r.Status, r.Body)
	}

	other := start(t, strings.Replace(cfg, "RANGE", "10.0.0.0/8", 1))
	r := postForm(t, other.URL+"/oauth2/token", map[string][]string{"grant_type": {"client_credentials"}, "client_id": {"app"}, "client_secret": {"s3cret"}}, nil)
	if r.Status != http.StatusForbidden || r.json(t)["license_error"] != "clientIpAddressBlocked" {
		t.Fatalf("outside the allowed range: %d %s", r.Status, r.Body)
	}
}
