package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// coreConfig is a tenant without a session item: tokens hold no seat, so the seats
// counted are exactly the /authz consumptions.
const coreConfig = `
listen: "{{LISTEN}}"
public_url: "{{URL}}"
store: "{{STORE}}"
admin_token: test-admin
documents: "{{DIR}}/documents"
tenants:
  - name: acme
    default: true
    organizations: [{id: org-1, name: Acme Ltd}]
    users: [{username: alice, password: alice-pw, organization: org-1}]
    clients:
      - {client_id: app, client_secret: s3cret, user: alice, scopes: [all, view]}
      - {client_id: viewer, client_secret: s3cret, user: alice, scopes: [view]}
    products: [{name: PlatformService, items: [AppFeature-XYZ, AppFeature-ABC]}]
    models:
      - {name: floating, anchors: [user, hw], sessions_per_seat: 3, lease_chaining: true, chain_grace: 10s, online_lease: 15m, linger: 2s}
      - {name: counted, anchors: [hw], max_use_count: 3, online_lease: 2s}
    licenses:
      - id: 870f46a4-1faa-4847-955b-14ee5f74f3fe
        product: PlatformService
        model: floating
        seats: 10
        owner: {organization: org-1}
        valid_from: 2026-01-01T00:00:00Z
        valid_until: 2035-01-01T00:00:00Z
        properties: {lang: "en,es", country: us}
  - name: other
    organizations: [{id: org-2}]
    users: [{username: carol, password: carol-pw, organization: org-2}]
    clients: [{client_id: app, client_secret: other-secret, user: carol}]
    products: [{name: PlatformService, items: [AppFeature-XYZ]}]
    models: [{name: floating}]
    licenses: [{id: lic-other, product: PlatformService, model: floating, seats: 1, owner: {organization: org-2}}]
`

const seedHW = "T29qb1RoYWU3aWV6MENoYWlkaWUyZXRoMWphMmFoQmUK"

func authzJSON(t *testing.T, base, token, query string) map[string]any {
	t.Helper()
	r := get(t, base+"/authz/.json?"+query, token)
	if r.Status != http.StatusOK {
		t.Fatalf("authz %s: %d %s", query, r.Status, r.Body)
	}
	return r.json(t)
}

// TestSeedExamples replays the 10Duke seed's three example requests.
func TestSeedExamples(t *testing.T) {
	ts := start(t, coreConfig)
	tok := ccToken(t, ts.URL, "app", "s3cret", "")

	// Consume AppFeature-XYZ with hw, in the seed's .jwt form.
	r := get(t, ts.URL+"/authz/.jwt?AppFeature-XYZ&hw="+seedHW, tok)
	if r.Status != 200 || strings.Count(r.Body, ".") != 2 {
		t.Fatalf("consume: %d %s", r.Status, r.Body)
	}
	claims := verifyJWT(t, ts.URL, r.Body)
	if claims["AppFeature-XYZ"] != true || claims["hw"] != seedHW || claims["lic"] != "870f46a4-1faa-4847-955b-14ee5f74f3fe" {
		t.Fatalf("claims: %v", claims)
	}
	for _, k := range []string{"exp", "iss", "sub", "jti", "iat", "lic", "ibb", "ibe", "rfr", "licenseProperties"} {
		if _, ok := claims[k]; !ok {
			t.Errorf("claim %s missing: %v", k, claims)
		}
	}
	if claims["iss"] != ts.URL+"/t/acme" || claims["sub"] != "alice" {
		t.Errorf("iss/sub: %v %v", claims["iss"], claims["sub"])
	}
	xyz := claims["jti"].(string)

	// Renew it with leaseId.
	r = get(t, ts.URL+"/authz/.jwt?AppFeature-XYZ&hw="+seedHW+"&leaseId="+xyz, tok)
	renewed := verifyJWT(t, ts.URL, r.Body)
	if renewed["AppFeature-XYZ"] != true || renewed["jti"] == xyz {
		t.Fatalf("renewal: %v", renewed)
	}
	xyz = renewed["jti"].(string)

	// A second item, then renew both in one request (the seed's third example).
	abc := authzJSON(t, ts.URL, tok, "AppFeature-ABC&hw="+seedHW)["jti"].(string)
	r = get(t, ts.URL+"/authz/.jwt?AppFeature-XYZ=;leaseId="+xyz+"&AppFeature-ABC=;leaseId="+abc+"&hw="+seedHW, tok)
	parts := strings.Split(r.Body, "&")
	if len(parts) != 2 {
		t.Fatalf("two items want two JWTs: %s", r.Body)
	}
	a, b := verifyJWT(t, ts.URL, parts[0]), verifyJWT(t, ts.URL, parts[1])
	if a["AppFeature-XYZ"] != true || b["AppFeature-ABC"] != true || a["jti"] == xyz || b["jti"] == abc {
		t.Fatalf("multi renewal: %v / %v", a, b)
	}

	// A stale lease id is refused and leaves the current lease renewable.
	m := authzJSON(t, ts.URL, tok, "AppFeature-XYZ&hw="+seedHW+"&leaseId=d04551aa-7c0a-47a6-aa85-ed345e591ea9")
	if m["AppFeature-XYZ_errorCode"] != "leaseIdNotMatching" {
		t.Fatalf("stale lease id: %v", m)
	}
	if m := authzJSON(t, ts.URL, tok, "AppFeature-XYZ&hw="+seedHW+"&leaseId="+a["jti"].(string)); m["AppFeature-XYZ"] != true {
		t.Fatalf("current lease no longer renewable: %v", m)
	}

	// Text format: true/false per item joined by '&'.
	r = get(t, ts.URL+"/authz/?AppFeature-XYZ&NoSuchItem&hw=other&doConsume=false", tok)
	if r.Body != "true&false" || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("text: %q %s", r.Body, r.Header.Get("Content-Type"))
	}
}

// verifyJWT checks a compact JWS against the tenant's published JWKS with go-jose, a
// stock JOSE library, and returns its claims.
func verifyJWT(t *testing.T, base, compact string) map[string]any {
	t.Helper()
	r := get(t, base+"/.well-known/jwks.json", "")
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(r.Body), &set); err != nil {
		t.Fatalf("jwks: %v %s", err, r.Body)
	}
	jws, err := jose.ParseSignedCompact(compact, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA})
	if err != nil {
		t.Fatalf("parse %q: %v", compact, err)
	}
	kid := jws.Signatures[0].Header.KeyID
	keys := set.Key(kid)
	if len(keys) != 1 {
		t.Fatalf("kid %q not in JWKS %s", kid, r.Body)
	}
	payload, err := jws.Verify(keys[0].Key)
	if err != nil {
		t.Fatalf("signature: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

func TestReleaseAndLinger(t *testing.T) {
	ts := start(t, strings.Replace(coreConfig, "seats: 10", "seats: 1", 1))
	tok := ccToken(t, ts.URL, "app", "s3cret", "")
	lease := authzJSON(t, ts.URL, tok, "AppFeature-XYZ&hw=pc-1")["jti"].(string)

	// The one seat is taken: another machine is refused.
	if m := authzJSON(t, ts.URL, tok, "AppFeature-XYZ&hw=pc-2"); m["AppFeature-XYZ_errorCode"] != "licenseQuotaExceeded" {
		t.Fatalf("second seat: %v", m)
	}
	// Unknown ids are never released; the lease is.
	m := authzJSON(t, ts.URL, tok, "release&"+lease+"&no-such-lease")
	if m[lease+"_released"] != true || m["no-such-lease_errorCode"] != "noConsumptionFoundById" {
		t.Fatalf("release: %v", m)
	}
	// The seat lingers: pc-2 still refused, pc-1 (same anchor key) takes it back.
	if m := authzJSON(t, ts.URL, tok, "AppFeature-XYZ&hw=pc-2"); m["AppFeature-XYZ_errorCode"] != "licenseQuotaExceeded" {
		t.Fatalf("during linger: %v", m)
	}
	again := authzJSON(t, ts.URL, tok, "AppFeature-XYZ&hw=pc-1")
	if again["AppFeature-XYZ"] != true {
		t.Fatalf("reclaim: %v", again)
	}
	authzJSON(t, ts.URL, tok, "release&"+again["jti"].(string))
	// After the 2 s linger, anyone may take it.
	deadline := time.Now().Add(6 * time.Second)
	for {
		m := authzJSON(t, ts.URL, tok, "AppFeature-XYZ&hw=pc-2")
		if m["AppFeature-XYZ"] == true {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("seat never freed after linger: %v", m)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestTokenProblems(t *testing.T) {
	ts := start(t, coreConfig)
	// No token, a bad token: 401 with WWW-Authenticate.
	for _, tok := range []string{"", "not-a-token"} {
		r := get(t, ts.URL+"/authz/.json?AppFeature-XYZ", tok)
		if r.Status != 401 || r.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("token %q: %d %v", tok, r.Status, r.Header)
		}
		r.json(t)
	}
	// A free-scope token may not consume: notAuthorized at HTTP 200.
	view := ccToken(t, ts.URL, "viewer", "s3cret", "view")
	if m := authzJSON(t, ts.URL, view, "AppFeature-XYZ&hw=x"); m["AppFeature-XYZ_errorCode"] != "notAuthorized" {
		t.Fatalf("view scope: %v", m)
	}
	// A token of tenant acme is refused where tenant other is named.
	tok := ccToken(t, ts.URL, "app", "s3cret", "")
	for _, u := range []string{ts.URL + "/t/other/authz/.json?AppFeature-XYZ", ts.URL + "/authz/.json?AppFeature-XYZ&tenant=other"} {
		if r := get(t, u, tok); r.Status != 401 {
			t.Fatalf("%s: %d %s", u, r.Status, r.Body)
		}
	}
	// Tenant other's client authenticates only under its tenant; its license is invisible from acme.
	if r := postForm(t, ts.URL+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"app"}, "client_secret": {"other-secret"}}, nil); r.Status != 401 {
		t.Fatalf("other tenant's secret accepted in acme: %d", r.Status)
	}
	otherTok := ccToken(t, ts.URL+"/t/other", "app", "other-secret", "")
	if m := authzJSON(t, ts.URL+"/t/other", otherTok, "AppFeature-ABC&hw=x"); m["AppFeature-ABC_errorCode"] != "noLicenseFound" {
		t.Fatalf("other tenant sees acme's item: %v", m)
	}
	// Malformed requests are 4xx JSON, never 5xx.
	for _, q := range []string{"%zz", strings.Repeat("a", 20000), "release"} {
		r := get(t, ts.URL+"/authz/.json?"+q, tok)
		if r.Status < 400 || r.Status >= 500 {
			t.Fatalf("query %.20q: %d %s", q, r.Status, r.Body)
		}
		r.json(t)
	}
	// Bad values are BadArgument at HTTP 200.
	if m := authzJSON(t, ts.URL, tok, "AppFeature-XYZ&hw=x&consumeCount=-1"); m["AppFeature-XYZ_errorCode"] != "BadArgument" {
		t.Fatalf("consumeCount=-1: %v", m)
	}
}

func TestUseCountEndToEnd(t *testing.T) {
	cfg := strings.Replace(coreConfig, "product: PlatformService\n        model: floating", "product: PlatformService\n        model: counted", 1)
	ts := start(t, cfg)
	tok := ccToken(t, ts.URL, "app", "s3cret", "")
	for i := 0; i < 3; i++ {
		if m := authzJSON(t, ts.URL, tok, fmt.Sprintf("AppFeature-XYZ&hw=h%d", i)); m["AppFeature-XYZ"] != true {
			t.Fatalf("use %d: %v", i, m)
		}
	}
	if m := authzJSON(t, ts.URL, tok, "AppFeature-XYZ&hw=h9"); m["AppFeature-XYZ_errorCode"] != "maxUseCountExceed" {
		t.Fatalf("fourth use: %v", m)
	}
}

// TestConcurrentConsumptionOverHTTP: 200 clients race for a 10-seat license with distinct
// anchors: exactly 10 win.
func TestConcurrentConsumptionOverHTTP(t *testing.T) {
	ts := start(t, coreConfig)
	tok := ccToken(t, ts.URL, "app", "s3cret", "")
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req, _ := http.NewRequest("GET", fmt.Sprintf("%s/authz/.json?AppFeature-XYZ&hw=race-%d", ts.URL, i), nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var m map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
				t.Error(err)
				return
			}
			code := "granted"
			if m["AppFeature-XYZ"] != true {
				code, _ = m["AppFeature-XYZ_errorCode"].(string)
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	if codes["granted"] != 10 || codes["licenseQuotaExceeded"] != 190 {
		t.Fatalf("outcomes: %v", codes)
	}
	r := get(t, ts.URL+"/entitlements/licenses", tok)
	var ent struct {
		Licenses []struct {
			Seats     int `json:"seats"`
			SeatsUsed int `json:"seats_used"`
		} `json:"licenses"`
	}
	if err := json.Unmarshal([]byte(r.Body), &ent); err != nil || len(ent.Licenses) != 1 || ent.Licenses[0].SeatsUsed != 10 {
		t.Fatalf("entitlements: %s", r.Body)
	}
}
