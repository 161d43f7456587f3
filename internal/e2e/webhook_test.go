package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientwebhook "github.com/leasehold/leasehold/client/webhook"
)

const hookSecret = "whsec-e2e-secret"

// webhookConfig: a 2-seat license whose leases last 3 s and do not linger, valid for one
// more hour (inside the webhook's 2 h expiring_notice); tenant short's sessions end after
// 2 s unused.
const webhookConfig = `
listen: "{{LISTEN}}"
public_url: "{{URL}}"
store: "{{STORE}}"
admin_token: test-admin
documents: "{{DIR}}/documents"
tenants:
  - name: acme
    default: true
    organizations: [{id: org-1}]
    users: [{username: alice, password: alice-pw, organization: org-1}]
    clients: [{client_id: app, client_secret: s3cret, user: alice}]
    products: [{name: PlatformService, items: [AppFeature-XYZ]}]
    models: [{name: m, anchors: [hw], online_lease: 3s, linger: 0s}]
    licenses:
      - {id: lic-2, product: PlatformService, model: m, seats: 2, owner: {organization: org-1}, valid_until: "{{VALID_UNTIL}}"}
    webhooks:
      - {id: hook, url: "{{HOOK}}", secret: ` + hookSecret + `, expiring_notice: 2h}
  - name: short
    session: {idle_timeout: 2s, access_token_ttl: 2s}
    users: [{username: bob, password: bob-pw}]
    clients: [{client_id: app, client_secret: s3cret, user: bob}]
    webhooks:
      - {id: hook, url: "{{HOOK}}", secret: ` + hookSecret + `, events: [session.started, session.ended]}
`

// delivery is what the test receiver got.
type delivery struct {
	ID, Type, Tenant string
	Data             map[string]any
	Header           http.Header
}

// receiver is a webhook endpoint that verifies every signature with the Go client's
// Verify, and answers with fail's status while fail returns one (else 204).
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	got      []delivery
	attempts map[string]int
	fail     func(id string, attempt int) int
	bad      []string
}

func newReceiver(t *testing.T, ln net.Listener) *receiver {
	t.Helper()
	rc := &receiver{attempts: map[string]int{}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		var env struct {
			ID, Type, Tenant, Created string
			Data                      map[string]any
		}
		if err := clientwebhook.Verify(hookSecret, r.Header.Get("Leasehold-Signature"), body, 0); err != nil {
			rc.bad = append(rc.bad, "signature: "+err.Error())
		}
		if err := json.Unmarshal(body, &env); err != nil || env.ID == "" || r.Header.Get("Leasehold-Event-Id") != env.ID ||
			r.Header.Get("Content-Type") != "application/json" || r.Method != http.MethodPost {
			rc.bad = append(rc.bad, fmt.Sprintf("bad delivery %s %v %s", r.Method, r.Header, body))
		}
		if _, err := time.Parse(time.RFC3339, env.Created); err != nil {
			rc.bad = append(rc.bad, "created: "+env.Created)
		}
		rc.attempts[env.ID]++
		if rc.fail != nil {
			if code := rc.fail(env.ID, rc.attempts[env.ID]); code != 0 {
				w.WriteHeader(code)
				return
			}
		}
		rc.got = append(rc.got, delivery{ID: env.ID, Type: env.Type, Tenant: env.Tenant, Data: env.Data, Header: r.Header.Clone()})
		w.WriteHeader(http.StatusNoContent)
	})
	if ln == nil {
		rc.Server = httptest.NewServer(h)
	} else {
		rc.Server = httptest.NewUnstartedServer(h)
		rc.Server.Listener.Close()
		rc.Server.Listener = ln
		rc.Server.Start()
	}
	t.Cleanup(rc.Close)
	return rc
}

// events returns the deliveries of type typ (all with ""), of tenant (any with "").
func (rc *receiver) events(tenant, typ string) []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []delivery
	for _, d := range rc.got {
		if (typ == "" || d.Type == typ) && (tenant == "" || d.Tenant == tenant) {
			out = append(out, d)
		}
	}
	return out
}

func (rc *receiver) checkClean(t *testing.T) {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, b := range rc.bad {
		t.Error(b)
	}
}

// waitEvents waits until the receiver holds at least n events of typ from tenant.
func waitEvents(t *testing.T, rc *receiver, tenant, typ string, n int, within time.Duration) []delivery {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := rc.events(tenant, typ)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/%s: %d events after %s, want %d (all: %+v)", tenant, typ, len(got), within, n, rc.events("", ""))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func webhookYAML(hook string) string {
	return strings.NewReplacer("{{HOOK}}", hook,
		"{{VALID_UNTIL}}", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)).Replace(webhookConfig)
}

func TestWebhookEventsSQLite(t *testing.T) {
	rc := newReceiver(t, nil)
	ts := start(t, webhookYAML(rc.URL+"/hook"))
	testWebhookEvents(t, ts.URL, rc)
}

func TestWebhookEventsPostgres(t *testing.T) {
	dsn := freshPostgres(t)
	rc := newReceiver(t, nil)
	ts := startAt(t, webhookYAML(rc.URL+"/hook"), t.TempDir(), dsn)
	testWebhookEvents(t, ts.URL, rc)
}

// testWebhookEvents: each event of SPEC §9 from its trigger, signed, with its data.
func testWebhookEvents(t *testing.T, base string, rc *receiver) {
	admin := map[string]string{"Authorization": "Bearer test-admin"}
	tok := ccToken(t, base, "app", "s3cret", "")
	started := waitEvents(t, rc, "acme", "session.started", 1, 5*time.Second)
	if started[0].Data["client"] != "app" || started[0].Data["user"] != "alice" || started[0].Data["session"] == "" {
		t.Errorf("session.started data: %v", started[0].Data)
	}

	// license.expiring: valid_until is within the notice: once, from the sweeper.
	exp := waitEvents(t, rc, "acme", "license.expiring", 1, 5*time.Second)
	if exp[0].Data["license"] != "lic-2" || exp[0].Data["valid_until"] == "" {
		t.Errorf("license.expiring data: %v", exp[0].Data)
	}

	// Two seats: the second grant exhausts the license, once.
	a := authzJSON(t, base, tok, "AppFeature-XYZ&hw=a")
	if a["AppFeature-XYZ"] != true {
		t.Fatalf("grant a: %v", a)
	}
	if len(rc.events("acme", "license.exhausted")) != 0 {
		t.Fatal("license.exhausted after the first of two seats")
	}
	if b := authzJSON(t, base, tok, "AppFeature-XYZ&hw=b"); b["AppFeature-XYZ"] != true {
		t.Fatalf("grant b: %v", b)
	}
	ex := waitEvents(t, rc, "acme", "license.exhausted", 1, 5*time.Second)
	if ex[0].Data["license"] != "lic-2" || ex[0].Data["seats"] != float64(2) || ex[0].Data["seats_held"] != float64(2) {
		t.Errorf("license.exhausted data: %v", ex[0].Data)
	}
	// Refusals: coalesced per (license, user, code) per minute; a renewal changes nothing.
	for _, hw := range []string{"c", "d", "e"} {
		if m := authzJSON(t, base, tok, "AppFeature-XYZ&hw="+hw); m["AppFeature-XYZ_errorCode"] != "licenseQuotaExceeded" {
			t.Fatalf("hw %s: %v", hw, m)
		}
	}
	den := waitEvents(t, rc, "acme", "lease.denied", 1, 5*time.Second)
	if d := den[0].Data; d["code"] != "licenseQuotaExceeded" || d["license"] != "lic-2" || d["user"] != "alice" ||
		d["client"] != "app" || d["item"] != "AppFeature-XYZ" {
		t.Errorf("lease.denied data: %v", d)
	}

	// A release frees a seat (no linger): license.available, in the release's transaction.
	if m := authzJSON(t, base, tok, "release&"+a["jti"].(string)); m[a["jti"].(string)+"_released"] != true {
		t.Fatalf("release: %v", m)
	}
	waitEvents(t, rc, "acme", "license.available", 1, 5*time.Second)
	// Taken again: a second transition, a second license.exhausted.
	if m := authzJSON(t, base, tok, "AppFeature-XYZ&hw=c"); m["AppFeature-XYZ"] != true {
		t.Fatalf("grant c: %v", m)
	}
	waitEvents(t, rc, "acme", "license.exhausted", 2, 5*time.Second)
	// Both leases expire (3 s): freed by time, license.available from the sweepers.
	waitEvents(t, rc, "acme", "license.available", 2, 10*time.Second)

	// session.ended: revoked (RFC 7009), admin (DELETE), expired (tenant short, 2 s idle).
	r := postForm(t, base+"/oauth2/revoke", url.Values{"token": {tok}, "client_id": {"app"}, "client_secret": {"s3cret"}}, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	ended := waitEvents(t, rc, "acme", "session.ended", 1, 5*time.Second)
	if ended[0].Data["reason"] != "revoked" || ended[0].Data["session"] != started[0].Data["session"] {
		t.Errorf("revoked session.ended: %v (started %v)", ended[0].Data, started[0].Data)
	}
	ccToken(t, base, "app", "s3cret", "")
	list := get(t, base+"/admin/v1/tenants/acme/sessions", "test-admin").json(t)["sessions"].([]any)
	if len(list) != 1 {
		t.Fatalf("sessions: %v", list)
	}
	id := list[0].(map[string]any)["id"].(string)
	if r := do(t, http.MethodDelete, base+"/admin/v1/tenants/acme/sessions/"+id, admin, ""); r.Status != http.StatusOK {
		t.Fatalf("end session: %d %s", r.Status, r.Body)
	}
	ended = waitEvents(t, rc, "acme", "session.ended", 2, 5*time.Second)
	if ended[1].Data["reason"] != "admin" || ended[1].Data["session"] != id {
		t.Errorf("admin session.ended: %v", ended[1].Data)
	}
	short := ccToken(t, base+"/t/short", "app", "s3cret", "")
	_ = short
	ended = waitEvents(t, rc, "short", "session.ended", 1, 10*time.Second)
	if ended[0].Data["reason"] != "expired" || ended[0].Data["user"] != "bob" {
		t.Errorf("expired session.ended: %v", ended[0].Data)
	}

	// Once each: wait past a sweep or two, then count.
	time.Sleep(2 * time.Second)
	for typ, want := range map[string]int{"license.expiring": 1, "license.exhausted": 2, "license.available": 2, "lease.denied": 1, "session.ended": 2} {
		if n := len(rc.events("acme", typ)); n != want {
			t.Errorf("%s: %d events, want %d", typ, n, want)
		}
	}
	seen := map[string]bool{}
	for _, d := range rc.events("", "") {
		if seen[d.ID] {
			t.Errorf("event %s (%s) delivered twice in a run without faults", d.ID, d.Type)
		}
		seen[d.ID] = true
	}
	rc.checkClean(t)

	// Metrics: events by type, deliveries by outcome, the queue depth.
	met := get(t, base+"/metrics", "test-admin")
	for _, want := range []string{
		`leasehold_webhook_events_total{type="license.exhausted"} 2`,
		`leasehold_webhook_events_total{type="lease.denied"} 1`,
		`leasehold_webhook_deliveries_total{outcome="delivered"}`,
		"leasehold_webhook_queue_depth 0",
	} {
		if !strings.Contains(met.Body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// The admin list shows every delivery, delivered.
	dl := get(t, base+"/admin/v1/tenants/acme/webhooks/deliveries", "test-admin")
	var out struct {
		Deliveries []struct {
			EventID, Type, Webhook, URL, Status string
			Attempts                            int
		} `json:"deliveries"`
	}
	if err := json.Unmarshal([]byte(dl.Body), &out); err != nil || dl.Status != http.StatusOK {
		t.Fatalf("deliveries: %d %s", dl.Status, dl.Body)
	}
	if len(out.Deliveries) != len(rc.events("acme", "")) {
		t.Errorf("deliveries list has %d rows, the receiver got %d acme events", len(out.Deliveries), len(rc.events("acme", "")))
	}
	for _, d := range out.Deliveries {
		if d.Status != "delivered" || d.Attempts != 1 || d.Webhook != "hook" || d.URL != rc.URL+"/hook" {
			t.Errorf("delivery row: %+v", d)
		}
	}
}

// TestWebhookRetriesAndAdmin: a receiver failing the first two attempts gets the event on
// the third, backing off 1 s then 2 s; the admin API lists the attempts, retries by hand,
// never shows the secret, and removing a webhook cancels its pending deliveries.
func TestWebhookRetriesAndAdmin(t *testing.T) {
	rc := newReceiver(t, nil)
	times := map[string][]time.Time{}
	rc.fail = func(id string, attempt int) int {
		times[id] = append(times[id], time.Now())
		if attempt <= 2 {
			return http.StatusInternalServerError
		}
		return 0
	}
	ts := start(t, webhookYAML(rc.URL+"/hook"))
	admin := map[string]string{"Authorization": "Bearer test-admin"}
	ccToken(t, ts.URL, "app", "s3cret", "")
	got := waitEvents(t, rc, "acme", "session.started", 1, 15*time.Second)
	rc.mu.Lock()
	if n := rc.attempts[got[0].ID]; n != 3 {
		t.Errorf("attempts = %d, want 3", n)
	}
	first := times[got[0].ID]
	rc.mu.Unlock()
	if len(first) >= 3 {
		if d := first[1].Sub(first[0]); d < 900*time.Millisecond || d > 3*time.Second {
			t.Errorf("first retry after %s, want about 1 s", d)
		}
		if d := first[2].Sub(first[1]); d < 1900*time.Millisecond || d > 4*time.Second {
			t.Errorf("second retry after %s, want about 2 s", d)
		}
	}
	// The outcome is written a moment after the answer (outcomes are written in batches).
	rows := deliveries(t, ts.URL, got[0].ID)
	for end := time.Now().Add(3 * time.Second); len(rows) == 1 && rows[0]["status"] == "pending" && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
		rows = deliveries(t, ts.URL, got[0].ID)
	}
	if len(rows) != 1 || rows[0]["status"] != "delivered" || rows[0]["attempts"] != float64(3) || rows[0]["last_status"] != float64(204) {
		t.Fatalf("delivery row: %v", rows)
	}

	// A manual retry sends it again.
	if r := do(t, http.MethodPost, ts.URL+"/admin/v1/tenants/acme/webhooks/deliveries/"+got[0].ID+"/retry", admin, ""); r.Status != http.StatusOK {
		t.Fatalf("retry: %d %s", r.Status, r.Body)
	}
	waitEvents(t, rc, "acme", "session.started", 2, 5*time.Second)
	if r := do(t, http.MethodPost, ts.URL+"/admin/v1/tenants/acme/webhooks/deliveries/nope/retry", admin, ""); r.Status != http.StatusNotFound {
		t.Errorf("retry of an unknown event: %d", r.Status)
	}

	// Admin reads never return the secret; "(set)" written back keeps it.
	r := get(t, ts.URL+"/admin/v1/tenants/acme/webhooks/hook", "test-admin")
	if r.Status != http.StatusOK || strings.Contains(r.Body, hookSecret) || !strings.Contains(r.Body, `"secret":"(set)"`) {
		t.Fatalf("webhook read: %d %s", r.Status, r.Body)
	}
	if r := do(t, http.MethodPut, ts.URL+"/admin/v1/tenants/acme/webhooks/hook", admin, r.Body); r.Status != http.StatusOK {
		t.Fatalf("PUT back: %d %s", r.Status, r.Body)
	}
	if l := get(t, ts.URL+"/admin/v1/tenants/acme/webhooks", "test-admin"); strings.Contains(l.Body, hookSecret) {
		t.Fatalf("webhook list shows the secret: %s", l.Body)
	}
	// Still signing with the stored secret (the receiver checks every signature).
	sessGrant(t, sessLogin(t, ts.URL, "alice", "alice-pw", nil, nil))
	waitEvents(t, rc, "acme", "session.started", 3, 15*time.Second)
	// A webhook named "deliveries" is refused.
	if r := do(t, http.MethodPost, ts.URL+"/admin/v1/tenants/acme/webhooks", admin,
		`{"id":"deliveries","url":"http://127.0.0.1:1/x","secret":"s"}`); r.Status != http.StatusBadRequest && r.Status != http.StatusUnprocessableEntity {
		t.Errorf("webhook deliveries: %d %s", r.Status, r.Body)
	}

	// A webhook to a dead address keeps its events pending; removing it cancels them.
	dead := "http://" + freePort(t) + "/dead"
	if r := do(t, http.MethodPost, ts.URL+"/admin/v1/tenants/acme/webhooks", admin,
		`{"id":"dead","url":"`+dead+`","secret":"s","events":["session.started"]}`); r.Status != http.StatusCreated {
		t.Fatalf("create webhook: %d %s", r.Status, r.Body)
	}
	sessGrant(t, sessLogin(t, ts.URL, "alice", "alice-pw", nil, nil))
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := 0
		for _, d := range deliveries(t, ts.URL, "") {
			if d["webhook"] == "dead" && d["status"] == "pending" && d["last_error"] != nil {
				n++
			}
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed attempt to the dead webhook: %v", deliveries(t, ts.URL, ""))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := do(t, http.MethodDelete, ts.URL+"/admin/v1/tenants/acme/webhooks/dead", admin, ""); r.Status != http.StatusOK {
		t.Fatalf("delete webhook: %d %s", r.Status, r.Body)
	}
	for _, d := range deliveries(t, ts.URL, "") {
		if d["webhook"] == "dead" {
			t.Errorf("a delivery of the removed webhook is left: %v", d)
		}
	}
	rc.checkClean(t)
}

// deliveries lists acme's deliveries (of one event when id is not "").
func deliveries(t *testing.T, base, id string) []map[string]any {
	t.Helper()
	r := get(t, base+"/admin/v1/tenants/acme/webhooks/deliveries", "test-admin")
	if r.Status != http.StatusOK {
		t.Fatalf("deliveries: %d %s", r.Status, r.Body)
	}
	var out []map[string]any
	for _, d := range r.json(t)["deliveries"].([]any) {
		m := d.(map[string]any)
		if id == "" || m["event_id"] == id {
			out = append(out, m)
		}
	}
	return out
}

// TestWebhookSurvivesKill9: events written before a SIGKILL, while the receiver is down,
// are delivered after the restart.
func TestWebhookSurvivesKill9(t *testing.T) {
	dir := t.TempDir()
	testWebhookSurvivesKill9(t, dir, "sqlite://"+filepath.Join(dir, "leasehold.db"))
}

func TestWebhookSurvivesKill9Postgres(t *testing.T) {
	testWebhookSurvivesKill9(t, t.TempDir(), freshPostgres(t))
}

func testWebhookSurvivesKill9(t *testing.T, dir, store string) {
	hookAddr := freePort(t) // nothing listens yet: every attempt fails
	addr := freePort(t)
	cfg := webhookYAML("http://" + hookAddr + "/hook")
	p := startProcess(t, cfg, dir, store, addr)
	tok := ccToken(t, p.URL, "app", "s3cret", "")
	for _, hw := range []string{"a", "b"} {
		if m := authzJSON(t, p.URL, tok, "AppFeature-XYZ&hw="+hw); m["AppFeature-XYZ"] != true {
			t.Fatalf("grant %s: %v", hw, m)
		}
	}
	p.kill() // right after the answer: the event is in the store, not delivered

	ln, err := net.Listen("tcp", hookAddr)
	if err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t, ln)
	startProcess(t, cfg, dir, store, addr)
	waitEvents(t, rc, "acme", "license.exhausted", 1, 40*time.Second)
	waitEvents(t, rc, "acme", "session.started", 1, 40*time.Second)
	rc.checkClean(t)
}

// TestWebhookTwoProcessesPostgres: two processes on one PostgreSQL database deliver every
// event exactly once in a run without faults.
func TestWebhookTwoProcessesPostgres(t *testing.T) {
	dsn := freshPostgres(t)
	rc := newReceiver(t, nil)
	dir := t.TempDir()
	cfg := webhookYAML(rc.URL + "/hook")
	procs := []*process{startProcess(t, cfg, dir, dsn, freePort(t)), startProcess(t, cfg, dir, dsn, freePort(t))}
	const n = 60
	for i := range n {
		sessGrant(t, sessLogin(t, procs[i%2].URL, "alice", "alice-pw", nil, nil))
	}
	waitEvents(t, rc, "acme", "session.started", n, 20*time.Second)
	time.Sleep(3 * time.Second) // a duplicate would arrive meanwhile
	got := rc.events("acme", "session.started")
	if len(got) != n {
		t.Errorf("%d session.started deliveries, want %d", len(got), n)
	}
	seen := map[string]bool{}
	for _, d := range got {
		if seen[d.ID] {
			t.Errorf("event %s delivered twice", d.ID)
		}
		seen[d.ID] = true
	}
	rc.checkClean(t)
}

// TestWebhookCodeReuseEndsRevoked: a reused authorization code ends the session it opened
// (RFC 9700 §4.5); session.ended says revoked, not logout.
func TestWebhookCodeReuseEndsRevoked(t *testing.T) {
	rc := newReceiver(t, nil)
	ts := start(t, strings.ReplaceAll(`
listen: "{{LISTEN}}"
public_url: "{{URL}}"
store: "{{STORE}}"
admin_token: test-admin
documents: "{{DIR}}/documents"
tenants:
  - name: codes
    default: true
    users: [{username: alice, password: alice-pw}]
    clients:
      - client_id: tf-app
        client_secret: tf-secret
        redirect_uris: [https://oauth2testclient.example/]
        grant_types: [authorization_code]
        scopes: [read]
    webhooks:
      - {id: hook, url: "{{HOOK}}", secret: `+hookSecret+`, events: [session.started, session.ended]}
`, "{{HOOK}}", rc.URL+"/hook"))
	code := oaCode(t, nil, ts.URL, "codes", "alice", "alice-pw", "read")
	if r := oaExchange(t, ts.URL, "codes", code); r.Status != http.StatusOK {
		t.Fatalf("exchange: %d %s", r.Status, r.Body)
	}
	// Two sessions start, in either order: the sign-in page's and the code's (tf-app's).
	var opened any
	for _, ev := range waitEvents(t, rc, "codes", "session.started", 2, 5*time.Second) {
		if ev.Data["client"] == "tf-app" {
			opened = ev.Data["session"]
		}
	}
	oaWantError(t, oaExchange(t, ts.URL, "codes", code), http.StatusBadRequest, "invalid_grant")
	ended := waitEvents(t, rc, "codes", "session.ended", 1, 5*time.Second)
	if ended[0].Data["reason"] != "revoked" || opened == nil || ended[0].Data["session"] != opened {
		t.Fatalf("session.ended after a reused code: %v (the code's session %v)", ended[0].Data, opened)
	}
}
