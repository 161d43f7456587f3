package server_test

// Benchmarks of whole requests through the server's handler (routing, logging, metrics,
// authentication, engine, SQLite store, rendering), without the network: what one request
// costs the server, to set beside what the load generator measures over loopback. The
// JWT renewal runs with each signing algorithm, so their costs can be compared.
//
//	go test -run '^$' -bench . -benchmem ./internal/server/
//	go test -run '^$' -bench 'Handler/renew-json' -cpuprofile cpu.out -memprofile mem.out ./internal/server/

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/leasehold/leasehold/internal/app"
	"github.com/leasehold/leasehold/internal/config"
)

// benchConfig is examples/bench.yaml in small: a chained model, an unchained one, the session
// item, and a client allowed client_credentials.
const benchConfig = `
listen: 127.0.0.1:0
public_url: http://127.0.0.1:8080
store: sqlite://{{DIR}}/leasehold.db
documents: {{DIR}}/documents
signing: {algorithm: {{ALG}}}
tenants:
  - name: bench
    default: true
    session: {item: PlatformService, access_token_ttl: 2h, refresh_token_ttl: 4h, idle_timeout: 2h, free_scopes: [view]}
    organizations: [{id: org-1, name: Bench}]
    users: [{username: alice, password: alice-pw, organization: org-1}]
    clients:
      - {client_id: app, client_secret: app-secret, user: alice, grant_types: [client_credentials, refresh_token], scopes: [all, view], refresh_with_client_credentials: true}
    products:
      - {name: PlatformService, items: [SessionSeat]}
      - {name: Chained, items: [AppFeature-XYZ]}
      - {name: Plain, items: [AppFeature-ABC]}
    models:
      - {name: chained, anchors: [user, hw], lease_chaining: true, linger: 2m}
      - {name: plain, anchors: [user, hw], linger: 0s}
      - {name: sessions, anchors: [user, hw], online_lease: 2h, linger: 0s}
    licenses:
      - {id: lic-session, product: PlatformService, model: sessions, seats: 1000000, owner: {organization: org-1}}
      - {id: lic-chained, product: Chained, model: chained, seats: 100000000, owner: {organization: org-1}}
      - {id: lic-plain, product: Plain, model: plain, seats: 100000000, owner: {organization: org-1}}
`

type benchServer struct {
	h     http.Handler
	token string
}

func newBenchServer(b *testing.B, alg string) *benchServer {
	b.Helper()
	dir := b.TempDir()
	yaml := strings.NewReplacer("{{DIR}}", filepath.ToSlash(dir), "{{ALG}}", alg).Replace(benchConfig)
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		b.Fatal(err)
	}
	// Request logs are written, as in production, but to nowhere.
	a, err := app.New(context.Background(), cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	s := &benchServer{h: a.Server.Handler()}
	rec := s.do(b, s.tokenRequest())
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &tok) != nil || tok.AccessToken == "" {
		b.Fatalf("token: %d %s", rec.Code, rec.Body)
	}
	s.token = tok.AccessToken
	return s
}

func (s *benchServer) tokenRequest() *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.SetBasicAuth("app", "app-secret")
	r.RemoteAddr = "127.0.0.1:40000"
	return r
}

func (s *benchServer) authz(target string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.Header.Set("Authorization", "Bearer "+s.token)
	r.RemoteAddr = "127.0.0.1:40000"
	return r
}

func (s *benchServer) do(b *testing.B, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, r)
	if rec.Code != http.StatusOK {
		b.Fatalf("%s %s: %d %s", r.Method, r.URL, rec.Code, rec.Body)
	}
	return rec
}

// jti reads the lease id of a .json or .jwt answer and fails on a license error.
func jti(b *testing.B, body []byte) string {
	if parts := strings.Split(string(body), "."); len(parts) == 3 && strings.HasPrefix(parts[0], "ey") {
		dec, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			b.Fatal(err)
		}
		body = dec
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		b.Fatalf("%v: %s", err, body)
	}
	id, _ := m["jti"].(string)
	if id == "" {
		b.Fatalf("no lease: %s", body)
	}
	return id
}

var benchHWSeq atomic.Int64

func nextHW() string { return "hw-" + strconv.FormatInt(benchHWSeq.Add(1), 10) }

// parallel runs fn from 64 goroutines, as the load generator's default 64 connections.
func parallel(b *testing.B, fn func(pb *testing.PB)) {
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ResetTimer() // setup (hashing the configured secrets) is not the request's cost
	b.RunParallel(fn)
}

func BenchmarkHandler(b *testing.B) {
	b.Run("healthz", func(b *testing.B) {
		s := newBenchServer(b, "RS256")
		b.ReportAllocs()
		for b.Loop() {
			s.do(b, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		}
	})
	b.Run("check", func(b *testing.B) {
		s := newBenchServer(b, "RS256")
		b.ReportAllocs()
		for b.Loop() {
			s.do(b, s.authz("/authz/.json?AppFeature-XYZ&hw=check&doConsume=false"))
		}
	})
	b.Run("new-seat", func(b *testing.B) {
		s := newBenchServer(b, "RS256")
		b.ReportAllocs()
		parallel(b, func(pb *testing.PB) {
			for pb.Next() {
				jti(b, s.do(b, s.authz("/authz/.json?AppFeature-ABC&hw="+nextHW())).Body.Bytes())
			}
		})
	})
	renew := func(b *testing.B, s *benchServer, format string) {
		b.ReportAllocs()
		parallel(b, func(pb *testing.PB) {
			hw := nextHW()
			id := jti(b, s.do(b, s.authz("/authz/.json?AppFeature-XYZ&hw="+hw)).Body.Bytes())
			for pb.Next() {
				id = jti(b, s.do(b, s.authz("/authz/"+format+"?AppFeature-XYZ&hw="+hw+"&leaseId="+id)).Body.Bytes())
			}
		})
	}
	b.Run("renew-json", func(b *testing.B) { renew(b, newBenchServer(b, "RS256"), ".json") })
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		b.Run("renew-jwt-"+alg, func(b *testing.B) { renew(b, newBenchServer(b, alg), ".jwt") })
	}
	b.Run("consume-release", func(b *testing.B) {
		s := newBenchServer(b, "RS256")
		b.ReportAllocs()
		parallel(b, func(pb *testing.PB) {
			hw := nextHW()
			for pb.Next() {
				id := jti(b, s.do(b, s.authz("/authz/.json?AppFeature-ABC&hw="+hw)).Body.Bytes())
				s.do(b, s.authz("/authz/.json?release&"+id))
			}
		})
	})
	b.Run("token", func(b *testing.B) {
		s := newBenchServer(b, "RS256")
		b.ReportAllocs()
		parallel(b, func(pb *testing.PB) {
			for pb.Next() {
				s.do(b, s.tokenRequest())
			}
		})
	})
}
