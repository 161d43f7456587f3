// Package e2e boots the real server (the same assembly `leasehold serve` runs) on a
// loopback port and talks to it over real HTTP.
package e2e

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/app"
	"github.com/leasehold/leasehold/internal/config"
)

type testServer struct {
	URL string
	// AdminURL is the admin listener's base URL when the configuration has
	// admin_listen: "{{ADMIN_LISTEN}}".
	AdminURL string
	App      *app.App
	Dir      string
	cancel   context.CancelFunc
	done     chan error
}

// start boots a server from a YAML configuration in which {{URL}}, {{STORE}} and {{DIR}}
// are replaced by the server's base URL, a fresh SQLite store and a scratch directory.
func start(t *testing.T, yaml string) *testServer {
	t.Helper()
	dir := t.TempDir()
	return startAt(t, yaml, dir, "sqlite://"+filepath.Join(dir, "leasehold.db"))
}

func startAt(t *testing.T, yaml, dir, storeDSN string) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	var adminLn net.Listener
	adminAddr := ""
	if strings.Contains(yaml, "{{ADMIN_LISTEN}}") {
		if adminLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		adminAddr = adminLn.Addr().String()
	}
	r := strings.NewReplacer("{{URL}}", base, "{{STORE}}", storeDSN, "{{DIR}}", dir, "{{LISTEN}}", ln.Addr().String(), "{{ADMIN_LISTEN}}", adminAddr)
	cfg, err := config.Parse([]byte(r.Replace(yaml)))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	level := slog.LevelWarn
	if os.Getenv("LEASEHOLD_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("app: %v", err)
	}
	a.AdminListener = adminLn
	ts := &testServer{URL: base, App: a, Dir: dir, cancel: cancel, done: make(chan error, 1)}
	if adminLn != nil {
		ts.AdminURL = "http://" + adminAddr
	}
	go func() { ts.done <- a.Serve(ctx, ln) }()
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) stop() {
	if ts.cancel == nil {
		return
	}
	ts.cancel()
	select {
	case <-ts.done:
	case <-time.After(15 * time.Second):
	}
	ts.App.Close()
	ts.cancel = nil
}

var client = &http.Client{Timeout: 30 * time.Second}

type response struct {
	Status int
	Header http.Header
	Body   string
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
		t.Fatalf("not a JSON object (status %d): %s", r.Status, r.Body)
	}
	return m
}

func do(t *testing.T, method, u string, header map[string]string, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

func get(t *testing.T, u, token string) response {
	t.Helper()
	h := map[string]string{}
	if token != "" {
		h["Authorization"] = "Bearer " + token
	}
	return do(t, http.MethodGet, u, h, "")
}

func postForm(t *testing.T, u string, form url.Values, header map[string]string) response {
	t.Helper()
	h := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	for k, v := range header {
		h[k] = v
	}
	return do(t, http.MethodPost, u, h, form.Encode())
}

// ccToken runs a client_credentials grant (client_secret_post) and returns the access token.
func ccToken(t *testing.T, base, clientID, secret, scope string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}}
	if scope != "" {
		form.Set("scope", scope)
	}
	r := postForm(t, base+"/oauth2/token", form, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("token: %d %s", r.Status, r.Body)
	}
	tok, _ := r.json(t)["access_token"].(string)
	if tok == "" {
		t.Fatalf("token: no access_token in %s", r.Body)
	}
	return tok
}
