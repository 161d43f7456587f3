package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

var tenantQueries = []string{
	"", "tenant=acme", "a=1&tenant=acme&tenant=other", "tenant=", "tenant", "xtenant=acme&tenantx=b",
	"ten%61nt=acme", "tenant=ac%6De", "tenant=a+b", "tenant=%zz&tenant=ok", "ten%zznt=x&tenant=y",
	"tenant=acme;x=1&tenant=b", "a;b&tenant=c", "&&tenant=acme&&", "=&tenant=%41", "%74enant=first&tenant=second",
	"AppFeature-XYZ&hw=T29q%2Bb&leaseId=6f1c", "tenant=%E2%80%A8", "tenant==x", "tenant=a=b",
	strings.Repeat("a&", 1200) + "tenant=far", strings.Repeat("a&", 10001) + "tenant=over-the-limit",
}

// queryTenant must agree with the URL's own parsing, which it replaces.
func TestQueryTenant(t *testing.T) {
	for _, q := range tenantQueries {
		want, _ := url.ParseQuery(q)
		if got := queryTenant(q); got != want.Get("tenant") {
			t.Errorf("%.40q: got %q, want %q", q, got, want.Get("tenant"))
		}
	}
}

func FuzzQueryTenant(f *testing.F) {
	for _, q := range tenantQueries {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		want, _ := url.ParseQuery(q)
		if got := queryTenant(q); got != want.Get("tenant") {
			t.Fatalf("%q: got %q, want %q", q, got, want.Get("tenant"))
		}
	})
}

func newTestServer() (*Server, *bytes.Buffer) {
	var log bytes.Buffer
	return New(Options{Logger: slog.New(slog.NewJSONHandler(&log, nil))}, Deps{}), &log
}

// healthz answers from bytes made once: the same as writeJSON would write.
func TestHealthzBody(t *testing.T) {
	s, _ := newTestServer()
	got := httptest.NewRecorder()
	s.Handler().ServeHTTP(got, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	want := httptest.NewRecorder()
	writeJSON(want, http.StatusOK, map[string]any{"ok": true})
	if got.Code != want.Code || got.Body.String() != want.Body.String() ||
		got.Header().Get("Content-Type") != want.Header().Get("Content-Type") ||
		got.Header().Get("Cache-Control") != want.Header().Get("Cache-Control") {
		t.Fatalf("got %d %v %q, want %d %v %q", got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
	}
}

// latencyCounts reads the latency histogram's counts, as a scrape shows them.
func latencyCounts(t *testing.T, m *Metrics) map[string]string {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.latency)
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	counts := map[string]string{}
	for line := range strings.Lines(rec.Body.String()) {
		if labels, ok := strings.CutPrefix(line, "leasehold_http_request_duration_seconds_count"); ok {
			labels = strings.TrimSpace(labels)
			i := strings.LastIndexByte(labels, ' ')
			counts[labels[:i]] = labels[i+1:]
		}
	}
	return counts
}

// The latency histogram's children are cached per route and status: each request is
// still counted under its own labels.
func TestRequestLatencyMetric(t *testing.T) {
	s, _ := newTestServer()
	h := s.Handler()
	for range 3 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/healthz", nil))
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/t/acme/healthz", nil))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/t/Bad/healthz", nil))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/openapi.json", nil))
	want := map[string]string{
		`{code="200",method="GET",route="/healthz"}`:      "4",
		`{code="200",method="GET",route="/openapi.json"}`: "1",
		`{code="404",method="GET",route="unmatched"}`:     "1",
		`{code="405",method="POST",route="/"}`:            "1", // the catch-all: POST where only GET is served
	}
	if got := latencyCounts(t, s.metrics); !maps.Equal(got, want) {
		t.Errorf("counts %v, want %v", got, want)
	}
}

// The log line of a request is built without the runtime.Callers walk and with typed
// attributes; it stays what Logger.Info would have written.
func TestRequestLogLineShape(t *testing.T) {
	s, log := newTestServer()
	r := httptest.NewRequest(http.MethodGet, "/t/acme/healthz?tenant=other", nil)
	r.RemoteAddr = "[::ffff:198.51.100.4]:999"
	s.Handler().ServeHTTP(httptest.NewRecorder(), r)
	line := log.String()
	for _, want := range []string{`"level":"INFO","msg":"request","method":"GET","path":"/healthz","status":200,"duration_ms":`,
		`,"client":"198.51.100.4","tenant":"acme","request_id":"`} {
		if !strings.Contains(line, want) {
			t.Errorf("line %s lacks %s", line, want)
		}
	}
	if strings.Count(line, "\n") != 1 || strings.Contains(line, "source") {
		t.Errorf("line %q", line)
	}
}

// A request the server failed (5xx) logs at ERROR; one the client got wrong (4xx) at INFO.
func TestRequestLogLevels(t *testing.T) {
	s, log := newTestServer()
	r := httptest.NewRequest(http.MethodGet, "/authz/", nil)
	for _, status := range []int{404, 503} {
		s.logRequest(r, &statusRecorder{status: status, requestID: "x"}, time.Millisecond, netip.MustParseAddr("192.0.2.1"))
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"level":"INFO"`) || !strings.Contains(lines[1], `"level":"ERROR"`) {
		t.Fatalf("levels: %q", lines)
	}
}

// A store that cannot be reached answers 503 (retry); a plain bug answers 500, which a
// retry would not fix.
func TestInternalErrorStatus(t *testing.T) {
	s, _ := newTestServer()
	for err, want := range map[error]int{
		errors.New("unexpected state"):                    http.StatusInternalServerError,
		fmt.Errorf("begin: %w", context.DeadlineExceeded): http.StatusServiceUnavailable,
	} {
		rec := httptest.NewRecorder()
		s.internalError(rec, httptest.NewRequest(http.MethodGet, "/authz/", nil), err)
		if rec.Code != want {
			t.Errorf("%v: %d, want %d", err, rec.Code, want)
		}
	}
}
