package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func adminDo(t *testing.T, method, u, body string) response {
	t.Helper()
	return do(t, method, u, map[string]string{"Authorization": "Bearer test-admin", "Content-Type": "application/json"}, body)
}

// TestAdminAPI walks the admin API of SPEC §6 against a live server.
func TestAdminAPI(t *testing.T) {
	cfg := strings.Replace(coreConfig, "seats: 10", "seats: 1", 1)
	cfg = strings.Replace(cfg, "{name: counted, anchors: [hw], max_use_count: 3, online_lease: 2s}",
		"{name: counted, anchors: [hw], max_use_count: 3, online_lease: 2s}\n      - {name: trial, anchors: [hw], hw_lock: true}", 1)
	ts := start(t, cfg)
	A := ts.URL + "/admin/v1"

	if r := do(t, "GET", A+"/tenants", nil, ""); r.Status != http.StatusUnauthorized {
		t.Fatalf("no admin token: %d", r.Status)
	}
	if r := adminDo(t, "GET", A+"/tenants", ""); r.Status != 200 || !strings.Contains(r.Body, `"acme"`) {
		t.Fatalf("tenants: %d %s", r.Status, r.Body)
	}

	// Create a client: its secret is hashed and never shown.
	r := adminDo(t, "POST", A+"/tenants/acme/clients", `{"client_id":"ops","client_secret":"ops-secret","user":"alice"}`)
	if r.Status != http.StatusCreated || strings.Contains(r.Body, "ops-secret") {
		t.Fatalf("create client: %d %s", r.Status, r.Body)
	}
	if r := adminDo(t, "POST", A+"/tenants/acme/clients", `{"client_id":"ops","client_secret":"x"}`); r.Status != http.StatusConflict {
		t.Fatalf("duplicate client: %d", r.Status)
	}
	if r := adminDo(t, "GET", A+"/tenants/acme/clients", ""); strings.Contains(r.Body, "$argon2id") || strings.Contains(r.Body, "s3cret") {
		t.Fatalf("secrets listed: %s", r.Body)
	}
	opsTok := ccToken(t, ts.URL, "ops", "ops-secret", "")

	// A dangling reference is refused with the field named; an object in use cannot go.
	if r := adminDo(t, "POST", A+"/tenants/acme/licenses", `{"id":"l2","product":"PlatformService","model":"nope","owner":{"user":"alice"}}`); r.Status != 400 || !strings.Contains(r.Body, "model") {
		t.Fatalf("bad reference: %d %s", r.Status, r.Body)
	}
	if r := adminDo(t, "DELETE", A+"/tenants/acme/models/floating", ""); r.Status != http.StatusConflict {
		t.Fatalf("delete a model in use: %d %s", r.Status, r.Body)
	}

	// Leases: listed, and ended at once without linger.
	lease := authzJSON(t, ts.URL, opsTok, "AppFeature-XYZ&hw=a1;name=build-01")["jti"].(string)
	if m := authzJSON(t, ts.URL, opsTok, "AppFeature-XYZ&hw=a2"); m["AppFeature-XYZ_errorCode"] != "licenseQuotaExceeded" {
		t.Fatalf("1 seat: %v", m)
	}
	if r := adminDo(t, "GET", A+"/tenants/acme/leases?user=alice", ""); !strings.Contains(r.Body, lease) || !strings.Contains(r.Body, `"hw_name":"build-01"`) {
		t.Fatalf("leases: %s", r.Body)
	}
	if r := adminDo(t, "DELETE", A+"/tenants/acme/leases/"+lease, ""); r.Status != 200 || !strings.Contains(r.Body, `"freed":true`) {
		t.Fatalf("end lease: %d %s", r.Status, r.Body)
	}
	if m := authzJSON(t, ts.URL, opsTok, "AppFeature-XYZ&hw=a2"); m["AppFeature-XYZ"] != true {
		t.Fatalf("seat not freed at once: %v", m)
	}

	// PATCH changes only the fields given: more seats, the rest intact.
	r = adminDo(t, "PATCH", A+"/tenants/acme/licenses/870f46a4-1faa-4847-955b-14ee5f74f3fe", `{"seats": 3}`)
	if r.Status != 200 || !strings.Contains(r.Body, `"seats":3`) || !strings.Contains(r.Body, `"lang":"en,es"`) {
		t.Fatalf("patch license: %d %s", r.Status, r.Body)
	}
	if m := authzJSON(t, ts.URL, opsTok, "AppFeature-XYZ&hw=a3"); m["AppFeature-XYZ"] != true {
		t.Fatalf("after raising seats: %v", m)
	}

	// Sessions: listed, ended; the ended session's token is dead.
	var sess struct {
		Sessions []struct {
			ID     string `json:"id"`
			Client string `json:"client"`
		} `json:"sessions"`
	}
	r = adminDo(t, "GET", A+"/tenants/acme/sessions?client=ops", "")
	if err := json.Unmarshal([]byte(r.Body), &sess); err != nil || len(sess.Sessions) != 1 {
		t.Fatalf("sessions: %v %s", err, r.Body)
	}
	if r := adminDo(t, "DELETE", A+"/tenants/acme/sessions/"+sess.Sessions[0].ID, ""); r.Status != 200 {
		t.Fatalf("end session: %d", r.Status)
	}
	if r := get(t, ts.URL+"/entitlements/licenses", opsTok); r.Status != http.StatusUnauthorized {
		t.Fatalf("token of an ended session: %d", r.Status)
	}

	// Usage history, JSON and CSV.
	if r := adminDo(t, "GET", A+"/usage?tenant=acme", ""); !strings.Contains(r.Body, `"event":"grant"`) || !strings.Contains(r.Body, lease) ||
		!strings.Contains(r.Body, `"hw":"a1","hw_name":"build-01"`) {
		t.Fatalf("usage json: %s", r.Body)
	}
	if r := adminDo(t, "GET", A+"/usage?tenant=acme&format=csv", ""); !strings.HasPrefix(r.Body, "at,event,license,item,user,client,hw,hw_name,lease,") ||
		!strings.Contains(r.Body, ",end,") || !strings.Contains(r.Body, ",a1,build-01,") {
		t.Fatalf("usage csv: %s", r.Body)
	}
	if r := adminDo(t, "GET", A+"/usage?tenant=acme&from=yesterday", ""); r.Status != 400 {
		t.Fatalf("bad from: %d", r.Status)
	}

	// Key rotation: the retired key stays published (the first key is made on first use).
	get(t, ts.URL+"/.well-known/jwks.json", "")
	if r := adminDo(t, "POST", A+"/tenants/acme/keys/rotate", ""); r.Status != 200 {
		t.Fatalf("rotate: %d %s", r.Status, r.Body)
	}
	var jwks struct{ Keys []json.RawMessage }
	if err := json.Unmarshal([]byte(get(t, ts.URL+"/.well-known/jwks.json", "").Body), &jwks); err != nil || len(jwks.Keys) != 2 {
		t.Fatalf("jwks after rotation: %v %d keys", err, len(jwks.Keys))
	}

	// Disabling a client kills its grants at once.
	if r := adminDo(t, "PATCH", A+"/tenants/acme/clients/ops", `{"enabled": false}`); r.Status != 200 {
		t.Fatalf("disable: %d %s", r.Status, r.Body)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"ops"}, "client_secret": {"ops-secret"}}
	if r := postForm(t, ts.URL+"/oauth2/token", form, nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("disabled client's grant: %d", r.Status)
	}

	// hw lock reset: a trial hw locked to one license may consume another after a reset.
	for _, body := range []string{`{"name":"TrialFeature"}`} {
		if r := adminDo(t, "POST", A+"/tenants/acme/products", body); r.Status != http.StatusCreated {
			t.Fatalf("product: %d %s", r.Status, r.Body)
		}
	}
	if r := adminDo(t, "POST", A+"/tenants/acme/licenses", `{"id":"t1","items":["TrialFeature"],"model":"trial","owner":{"user":"alice"}}`); r.Status != http.StatusCreated {
		t.Fatalf("trial license: %d %s", r.Status, r.Body)
	}
	r = adminDo(t, "POST", A+"/tenants/acme/licenses", `{"id":"t2","items":["TrialFeature"],"model":"trial","owner":{"user":"alice"},"seats":5}`)
	if r.Status != http.StatusCreated {
		t.Fatalf("trial license: %d %s", r.Status, r.Body)
	}
	tok := ccToken(t, ts.URL, "app", "s3cret", "")
	if m := authzJSON(t, ts.URL, tok, "TrialFeature&hw=box&licenseId=t1"); m["TrialFeature"] != true {
		t.Fatalf("trial t1: %v", m)
	}
	if m := authzJSON(t, ts.URL, tok, "TrialFeature&hw=box&licenseId=t2"); m["TrialFeature_errorCode"] != "anchorLockedToAnotherLicense" {
		t.Fatalf("trial t2 before reset: %v", m)
	}
	if r := adminDo(t, "DELETE", A+"/tenants/acme/locks/box", ""); r.Status != 200 {
		t.Fatalf("reset lock: %d", r.Status)
	}
	if m := authzJSON(t, ts.URL, tok, "TrialFeature&hw=box&licenseId=t2"); m["TrialFeature"] != true {
		t.Fatalf("trial t2 after reset: %v", m)
	}

	// logout-all ends a user's sessions.
	if r := adminDo(t, "POST", A+"/tenants/acme/users/alice/logout-all", ""); r.Status != 200 || !strings.Contains(r.Body, `"sessions_ended"`) {
		t.Fatalf("logout-all: %d %s", r.Status, r.Body)
	}
	if r := get(t, ts.URL+"/entitlements/licenses", tok); r.Status != http.StatusUnauthorized {
		t.Fatalf("token after logout-all: %d", r.Status)
	}
}

// TestAdminEndSessionLease: DELETE of a session's seat lease ends the session too (a session
// never lives without its seat), and the seat is free at once, without linger.
func TestAdminEndSessionLease(t *testing.T) {
	ts := start(t, sessionConfig)
	base := ts.URL + "/t/dw"
	token, _, _ := sessGrant(t, sessLogin(t, base, "alice", "alice-pw", nil, nil))
	if r := sessLogin(t, base, "bob", "bob-pw", nil, nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("second login on a 1-seat license: %d %s", r.Status, r.Body)
	}
	var list struct {
		Leases []struct {
			ID string `json:"id"`
		} `json:"leases"`
	}
	r := adminDo(t, "GET", ts.URL+"/admin/v1/tenants/dw/leases", "")
	if err := json.Unmarshal([]byte(r.Body), &list); err != nil || len(list.Leases) != 1 {
		t.Fatalf("leases: %v %s", err, r.Body)
	}
	if r := adminDo(t, "DELETE", ts.URL+"/admin/v1/tenants/dw/leases/"+list.Leases[0].ID, ""); r.Status != 200 || !strings.Contains(r.Body, `"freed":true`) {
		t.Fatalf("end the session's lease: %d %s", r.Status, r.Body)
	}
	if r := get(t, base+"/entitlements/licenses", token); r.Status != http.StatusUnauthorized {
		t.Fatalf("the session outlived its seat lease: %d", r.Status)
	}
	sessGrant(t, sessLogin(t, base, "bob", "bob-pw", nil, nil)) // the seat is free, no linger
}
