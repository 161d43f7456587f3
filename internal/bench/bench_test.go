package bench

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	h := NewHistogram()
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	if h.Count() != 1000 {
		t.Fatalf("count %d", h.Count())
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.9, 900 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, time.Millisecond}} {
		got := h.Quantile(c.q)
		if rel := math.Abs(float64(got-c.want)) / float64(c.want); rel > 1.0/subBuckets {
			t.Errorf("p%g = %v, want %v within %.2f%%", c.q*100, got, c.want, 100.0/subBuckets)
		}
	}
	if h.Max() != time.Millisecond {
		t.Errorf("max %v", h.Max())
	}
	if m := h.Mean(); m < 500*time.Microsecond || m > 501*time.Microsecond {
		t.Errorf("mean %v", m)
	}

	// Merging keeps counts and extremes; a value never exceeds the real maximum.
	o := NewHistogram()
	o.Record(3 * time.Second)
	h.Merge(o)
	if h.Count() != 1001 || h.Max() != 3*time.Second || h.Quantile(1) != 3*time.Second {
		t.Errorf("after merge: count %d max %v p100 %v", h.Count(), h.Max(), h.Quantile(1))
	}
	if NewHistogram().Quantile(0.99) != 0 {
		t.Error("empty histogram: want 0")
	}
}

func TestHistogramBuckets(t *testing.T) {
	// Every value falls in a bucket whose upper bound is at least the value and within the
	// relative precision above it.
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 1000, 123456789, 1 << 40, math.MaxInt64} {
		i := bucketOf(v)
		hi := bucketHigh(i)
		if hi < v {
			t.Errorf("bucketHigh(bucketOf(%d)) = %d < value", v, hi)
		}
		if v >= subBuckets && float64(hi-v)/float64(v) > 1.0/subBuckets {
			t.Errorf("value %d: bucket high %d too far", v, hi)
		}
	}
}

func TestClassify(t *testing.T) {
	jwt := func(payload string) string {
		enc := base64.RawURLEncoding.EncodeToString
		return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(payload)) + ".sig"
	}
	for _, c := range []struct {
		status int
		body   string
		want   string
	}{
		{200, `{"Feat":true,"jti":"x"}`, ""},
		{200, `{"Feat_errorCode":"licenseQuotaExceeded","Feat_errorKey":"licenseQuotaExceeded"}`, "license licenseQuotaExceeded"},
		{200, jwt(`{"Feat":true}`) + "&" + jwt(`{"Other_errorCode":"noLicenseFound"}`), "license noLicenseFound"},
		{200, jwt(`{"Feat":true,"jti":"y"}`), ""},
		{401, `{"error":"invalid_token","error_description":"…"}`, "http 401 invalid_token"},
		{503, `oops`, "http 503"},
	} {
		if got := Classify(&Response{Status: c.status, Body: []byte(c.body)}, 200); got != c.want {
			t.Errorf("Classify(%d, %s) = %q, want %q", c.status, c.body, got, c.want)
		}
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:80", "http://127.8.9.10"} {
		if _, err := CheckLoopback(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{"http://10.0.0.1:8080", "http://192.168.1.1", "http://example.com", "ftp://127.0.0.1", "http://127.0.0.1.nip.io"} {
		if _, err := CheckLoopback(u); err == nil {
			t.Errorf("%s: accepted", u)
		}
	}
}

// fakeAuthz answers like /authz. Measured requests (renewals, which name a lease id, and
// consumptions of the consume scenario) fail in a fixed pattern: every seventh gets a 503,
// every third of the others a license refusal. Seeding (first grants) always succeeds.
// It counts renewals that do not name the current lease id.
func fakeAuthz(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n, bad, seq atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth2/token", func(w http.ResponseWriter, r *http.Request) {
		if id, secret, ok := r.BasicAuth(); !ok || id != "c" || secret != "s" {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":"invalid_client"}`)
			return
		}
		fmt.Fprint(w, `{"access_token":"tok","token_type":"bearer"}`)
	})
	mux.HandleFunc("GET /entitlements/licenses", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"licenses":[{"id":"L","items":["P","Feat"],"seats":1000000,"seats_used":3}]}`)
	})
	current := map[string]string{} // hw → current lease id, guarded by the handler's mutex below
	var mu = make(chan struct{}, 1)
	mux.HandleFunc("GET /authz/{format}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":"invalid_token"}`)
			return
		}
		q := r.URL.Query()
		hw, lease := q.Get("hw"), q.Get("leaseId")
		measured := lease != "" || strings.Contains(hw, "-c")
		var i int64
		if measured {
			i = n.Add(1)
		}
		if measured && i%7 == 0 {
			w.WriteHeader(503)
			fmt.Fprint(w, `{"error":"unavailable"}`)
			return
		}
		mu <- struct{}{}
		defer func() { <-mu }()
		if cur, ok := current[hw]; ok && cur != lease {
			bad.Add(1)
		}
		if measured && i%3 == 0 {
			fmt.Fprint(w, `{"Feat_errorCode":"maxConcurrentSessionsExceed","iss":"x"}`)
			return
		}
		id := fmt.Sprintf("lease-%d-%d", i, seq.Add(1))
		current[hw] = id
		body := fmt.Sprintf(`{"exp":1,"Feat":true,"jti":%q}`, id)
		if r.PathValue("format") == ".jwt" {
			body = "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString([]byte(body)) + ".sig"
		}
		fmt.Fprint(w, body)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &bad
}

func TestRunCountsAndClassifies(t *testing.T) {
	for _, scenario := range []string{"renew", "jwt-renew"} {
		t.Run(scenario, func(t *testing.T) {
			srv, bad := fakeAuthz(t)
			res, err := Run(context.Background(), Config{
				URL: srv.URL, ClientID: "c", ClientSecret: "s", Scenario: scenario, Item: "Feat",
				Connections: 4, Requests: 300, Duration: 20 * time.Second, Anchors: 8,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Ops != 300 || res.Requests != 300 {
				t.Fatalf("ops %d requests %d, want 300 each", res.Ops, res.Requests)
			}
			if res.OK+res.ErrorCount() != res.Requests {
				t.Errorf("ok %d + errors %d != requests %d", res.OK, res.ErrorCount(), res.Requests)
			}
			// 300 measured requests: 42 get a 503 (every 7th), 86 a license refusal (every
			// 3rd of the others).
			lic, unavail := res.Errors["license maxConcurrentSessionsExceed"], res.Errors["http 503 unavailable"]
			if lic != 86 || unavail != 42 {
				t.Errorf("errors %v: want ~1/3 license refusals and ~1/7 503s of 300", res.Errors)
			}
			if len(res.Errors) != 2 {
				t.Errorf("error kinds %v", res.Errors)
			}
			if bad.Load() != 0 {
				t.Errorf("%d renewals named a stale lease id", bad.Load())
			}
			l := res.Latency
			if !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
				t.Errorf("percentiles out of order: %+v", l)
			}
			if res.RequestsPerSec <= 0 || res.Seconds <= 0 {
				t.Errorf("throughput %v over %vs", res.RequestsPerSec, res.Seconds)
			}
		})
	}
}

func TestRunStopsAtDuration(t *testing.T) {
	srv := httptest.NewServer(BaselineHandler())
	t.Cleanup(srv.Close)
	start := time.Now()
	res, err := Run(context.Background(), Config{URL: srv.URL, Scenario: "baseline", Connections: 8, Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("ran %v for a 300ms run", el)
	}
	if res.Requests == 0 || res.OK != res.Requests || res.Errors != nil {
		t.Errorf("requests %d ok %d errors %v", res.Requests, res.OK, res.Errors)
	}
}

func TestTransportErrorsAndSkips(t *testing.T) {
	// A server that closes every connection without answering: transport errors.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj, _ := w.(http.Hijacker)
		c, _, _ := hj.Hijack()
		c.Close()
	}))
	t.Cleanup(srv.Close)
	res, err := Run(context.Background(), Config{URL: srv.URL, Scenario: "healthz", Connections: 2, Requests: 20})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 0 || res.ErrorCount() != 20 {
		t.Fatalf("ok %d errors %v", res.OK, res.Errors)
	}
	for k := range res.Errors {
		if !strings.HasPrefix(k, "transport ") {
			t.Errorf("kind %q", k)
		}
	}

	// Routes a server lacks are skipped with a reason, not failed.
	srv2, _ := fakeAuthz(t)
	for _, sc := range []string{"introspect", "session-login"} {
		res, err := Run(context.Background(), Config{URL: srv2.URL, ClientID: "c", ClientSecret: "s", Username: "u", Password: "p", Scenario: sc, Connections: 2, Requests: 5})
		if err != nil {
			t.Fatalf("%s: %v", sc, err)
		}
		if !strings.Contains(res.Skipped, "404") {
			t.Errorf("%s: skipped %q", sc, res.Skipped)
		}
	}

	if _, err := Run(context.Background(), Config{URL: "http://10.1.2.3:80", Scenario: "healthz"}); err == nil {
		t.Error("a non-loopback target was accepted")
	}
}

func TestCompareRatios(t *testing.T) {
	base := httptest.NewServer(BaselineHandler())
	t.Cleanup(base.Close)
	srv, _ := fakeAuthz(t)
	cmp, err := Compare(context.Background(), Config{
		URL: srv.URL, ClientID: "c", ClientSecret: "s", Item: "Feat", Connections: 2, Requests: 50,
	}, base.URL, []string{"baseline", "consume", "introspect"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(cmp.Baselines) != 2 || len(cmp.Rows) != 2 {
		t.Fatalf("baselines %d rows %d", len(cmp.Baselines), len(cmp.Rows))
	}
	c := cmp.Rows[0]
	if c.Scenario != "consume" || c.Ratio <= 0 || c.Met == nil || *c.Met {
		t.Errorf("consume row %+v: want a ratio and the target missed (it has errors)", c)
	}
	if cmp.Rows[1].Skipped == "" || cmp.Rows[1].Met != nil {
		t.Errorf("introspect row %+v: want skipped", cmp.Rows[1])
	}
	var b strings.Builder
	WriteComparison(&b, cmp)
	for _, want := range []string{"consume", "ratio", "introspect", "skipped"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("comparison text lacks %q:\n%s", want, b.String())
		}
	}
}
