package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/store"
)

// webhookBenchConfig: a license with seats to spare; {{HOOKS}} is the webhooks list.
const webhookBenchConfig = `
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
    models: [{name: m, anchors: [hw], online_lease: 10m, linger: 0s}]
    licenses: [{id: lic-big, product: PlatformService, model: m, seats: 100000, owner: {organization: org-1}}]
{{HOOKS}}`

// TestWebhookReceiverNeverSlowsConsumption measures consumptions (a grant and its release)
// per second with no webhook, with one whose receiver refuses connections, and with one
// whose receiver never answers (each attempt waits out its 10 s); the latter two start
// with 2,000 due events, so deliveries are attempted throughout. Rounds alternate
// none/dead/slow so drift hits all alike; the medians are compared (SPEC §9: a dead
// receiver within 10 % of none). Opt-in: LEASEHOLD_BENCH_WEBHOOKS=1 (it takes ~2 min).
// The threshold is checked on medians: on a shared machine single rounds move ±20 %.
func TestWebhookReceiverNeverSlowsConsumption(t *testing.T) {
	if os.Getenv("LEASEHOLD_BENCH_WEBHOOKS") == "" {
		t.Skip("set LEASEHOLD_BENCH_WEBHOOKS=1 to measure")
	}
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(hang)
	dead := "http://" + freePort(t) + "/hook"
	hooks := map[string]string{
		"none": "",
		"dead": "    webhooks: [{id: hook, url: \"" + dead + "\", secret: s}]\n",
		"slow": "    webhooks: [{id: hook, url: \"" + slow.URL + "/hook\", secret: s}]\n",
	}
	const rounds = 5
	const each = 6 * time.Second
	results := map[string][]float64{}
	for round := range rounds {
		for _, name := range []string{"none", "dead", "slow"} {
			ts := start(t, strings.Replace(webhookBenchConfig, "{{HOOKS}}", hooks[name], 1))
			if name != "none" {
				backlog(t, ts)
			}
			rate := consumeRate(t, ts.URL, each)
			results[name] = append(results[name], rate)
			pending := 0
			if name != "none" {
				pending = read(t, ts, func(tx store.Tx) (int, error) { return tx.CountPendingWebhookDeliveries(context.Background()) })
			}
			t.Logf("round %d %-4s %8.0f consumptions/s (pending deliveries after: %d)", round+1, name, rate, pending)
			ts.stop()
		}
	}
	med := func(v []float64) float64 { s := slices.Clone(v); slices.Sort(s); return s[len(s)/2] }
	none := med(results["none"])
	for _, name := range []string{"dead", "slow"} {
		r := med(results[name]) / none
		t.Logf("median %s / none = %.3f", name, r)
		if r < 0.9 {
			t.Errorf("%s receiver: %.1f %% of the throughput without webhooks (want ≥ 90 %%)", name, 100*r)
		}
	}
}

// backlog writes 2,000 due events for webhook hook of acme.
func backlog(t *testing.T, ts *testServer) {
	t.Helper()
	err := ts.App.Store.Update(context.Background(), func(tx store.Tx) error {
		now := tx.Now()
		rows := make([]store.WebhookDelivery, 2000)
		for i := range rows {
			id := fmt.Sprintf("bench-%04d", i)
			rows[i] = store.WebhookDelivery{EventID: id, Tenant: "acme", Webhook: "hook", Type: "lease.denied",
				Body: []byte(`{"id":"` + id + `"}`), Created: now, Deadline: now.Add(time.Hour), NextTry: now}
		}
		_, err := tx.InsertWebhookDeliveries(context.Background(), rows)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func read[T any](t *testing.T, ts *testServer, fn func(tx store.Tx) (T, error)) T {
	t.Helper()
	v, err := store.Read(context.Background(), ts.App.Store, fn)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// consumeRate runs 8 workers, each consuming a new seat and releasing it, for d, and
// returns the completed pairs per second.
func consumeRate(t *testing.T, base string, d time.Duration) float64 {
	t.Helper()
	tok := ccToken(t, base, "app", "s3cret", "")
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	var done, failed atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				call := func(q string) map[string]any {
					req, _ := http.NewRequest(http.MethodGet, base+"/authz/.json?"+q, nil)
					req.Header.Set("Authorization", "Bearer "+tok)
					resp, err := hc.Do(req)
					if err != nil {
						return nil
					}
					defer resp.Body.Close()
					var m map[string]any
					if json.NewDecoder(resp.Body).Decode(&m) != nil {
						return nil
					}
					return m
				}
				m := call(fmt.Sprintf("AppFeature-XYZ&hw=w%d-%d", w, i))
				jti, _ := m["jti"].(string)
				if m["AppFeature-XYZ"] != true || jti == "" {
					failed.Add(1)
					continue
				}
				if r := call("release&" + jti); r[jti+"_released"] != true {
					failed.Add(1)
					continue
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d consumptions failed", f)
	}
	return float64(done.Load()) / d.Seconds()
}
