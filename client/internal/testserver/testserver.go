// Package testserver runs a real Leasehold server for the client module's tests: the
// binary built from ../cmd/leasehold (the server module at the repository root), started
// as a subprocess on a loopback port with a temporary SQLite store, so that a test can
// kill it with SIGKILL and start it again on the same store.
package testserver

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Bin is the server binary built by Main.
var Bin string

// Main is a test package's TestMain: it builds the server binary from root (the
// repository root, relative to the package's directory), runs the tests, stops the shared
// server and fails when goroutines are left behind.
func Main(m *testing.M, root string) {
	os.Exit(run(m, root))
}

func run(m *testing.M, root string) int {
	dir, err := os.MkdirTemp("", "leasehold-client-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	Bin = filepath.Join(dir, "leasehold")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", Bin, "./cmd/leasehold")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the server: %v\n%s", err, out)
		return 1
	}
	code := m.Run()
	stopShared()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left after the tests:", err)
			return 1
		}
	}
	return code
}

// Config is the servers' configuration: short leases (6 s, renewed at half; DurableFeature
// 20 s, renewed after 4 s, for a server restart to fit in), a 4 s access token, no linger (so that a closed client's seats are free at once). All
// client-credentials tokens of one OAuth2 client share one session on the server, so each
// test that checks sessions uses a client of its own.
const Config = `
listen: "{{LISTEN}}"
public_url: "{{URL}}"
store: "sqlite://{{DIR}}/leasehold.db"
admin_token: test-admin
documents: "{{DIR}}/documents"
tenants:
  - name: acme
    default: true
    dialects: [docuware, webpdf, therefore, jim2]
    session:
      item: PlatformService
      access_token_ttl: 4s
      refresh_token_ttl: 60s
      free_scopes: [view, Therefore_Read]
    organizations: [{id: org-1, name: Acme Ltd}]
    users:
      - {username: alice, password: alice-pw, organization: org-1}
      - {username: bob, password: bob-pw, organization: org-1}
    clients:
      - {client_id: app, client_secret: s3cret, user: alice, grant_types: [client_credentials, refresh_token], scopes: [all, view], refresh_with_client_credentials: true}
      - {client_id: renew-app, client_secret: s3cret, user: alice, grant_types: [client_credentials, refresh_token], scopes: [all, view], refresh_with_client_credentials: true}
      - {client_id: two-app, client_secret: s3cret, user: alice, grant_types: [client_credentials, refresh_token], scopes: [all, view], refresh_with_client_credentials: true}
      - {client_id: refuse-app, client_secret: s3cret, user: alice, grant_types: [client_credentials, refresh_token], scopes: [all, view], refresh_with_client_credentials: true}
      - {client_id: taken-app, client_secret: s3cret, user: alice, grant_types: [client_credentials, refresh_token], scopes: [all, view], refresh_with_client_credentials: true}
      - {client_id: race-app, client_secret: s3cret, user: alice, grant_types: [client_credentials, refresh_token], scopes: [all, view], refresh_with_client_credentials: true}
      - {client_id: end-cc-app, client_secret: s3cret, user: alice, grant_types: [client_credentials, refresh_token], scopes: [all, view], refresh_with_client_credentials: true}
      - {client_id: end-app, client_secret: s3cret, user: alice, grant_types: [client_credentials, refresh_token], scopes: [all, view], refresh_with_client_credentials: true}
      - {client_id: cli-app, client_secret: s3cret, user: alice, grant_types: [client_credentials, refresh_token], scopes: [all, view], refresh_with_client_credentials: true}
      - {client_id: jim-app, client_secret: s3cret, user: alice, grant_types: [client_credentials, refresh_token], scopes: [all, view], refresh_with_client_credentials: true}
      - {client_id: example-app, client_secret: s3cret, user: alice, grant_types: [client_credentials, refresh_token], scopes: [all, view], refresh_with_client_credentials: true}
      - {client_id: viewer, client_secret: s3cret, user: bob, grant_types: [client_credentials, refresh_token], scopes: [view], refresh_with_client_credentials: true}
      - {client_id: bob-app, client_secret: s3cret, user: bob, grant_types: [client_credentials, refresh_token], scopes: [all, view], refresh_with_client_credentials: true}
      - {client_id: bob-taken, client_secret: s3cret, user: bob, grant_types: [client_credentials, refresh_token], scopes: [all, view], refresh_with_client_credentials: true}
      - {client_id: plain-app, client_secret: s3cret, user: alice, grant_types: [client_credentials], scopes: [all]}
      - client_id: web-app
        redirect_uris: ["http://127.0.0.1:{{TFPORT}}/callback"]
        grant_types: [authorization_code, refresh_token]
        scopes: [Therefore_User, Therefore_Read, offline_access]
    products:
      - {name: PlatformService, items: [AppFeature-XYZ, AppFeature-ABC]}
      - {name: Reports, items: [ReportDesigner]}
      - {name: Charts, items: [ChartDesigner]}
      - {name: Durable, items: [DurableFeature]}
    models:
      - {name: floating, anchors: [user, hw], sessions_per_seat: 10, lease_chaining: true, chain_grace: 10s, online_lease: 6s, offline_lease: 1h, refresh_ratio: 0.5, linger: 0s}
      - {name: long, anchors: [user, hw], sessions_per_seat: 10, lease_chaining: true, chain_grace: 10s, online_lease: 20s, refresh_ratio: 0.2, linger: 0s}
      - {name: single, anchors: [hw], sessions_per_seat: 10, lease_chaining: true, online_lease: 6s, refresh_ratio: 0.5, linger: 0s}
    licenses:
      - {id: lic-platform, product: PlatformService, model: floating, seats: 20, owner: {organization: org-1}}
      - {id: lic-reports, product: Reports, model: single, seats: 1, owner: {organization: org-1}}
      - {id: lic-charts, product: Charts, model: single, seats: 1, owner: {organization: org-1}}
      - {id: lic-durable, product: Durable, model: long, seats: 5, owner: {organization: org-1}}
`

// AdminToken is the servers' admin token.
const AdminToken = "test-admin"

// Server is a running (or killed) server process.
type Server struct {
	URL    string
	TFPort string // a free port for the therefore test's redirect URI
	dir    string
	addr   string
	cfg    string
	cmd    *exec.Cmd
	log    *os.File
}

// FreeAddr is a free loopback address.
func FreeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Start runs a server of its own in a new directory; it is killed when the test ends.
func Start(t *testing.T) *Server {
	t.Helper()
	s := NewServer(t, t.TempDir())
	t.Cleanup(s.Kill)
	s.Start(t)
	return s
}

// NewServer prepares a server in dir without starting it.
func NewServer(t testing.TB, dir string) *Server {
	addr := FreeAddr(t)
	_, tf, _ := net.SplitHostPort(FreeAddr(t))
	s := &Server{URL: "http://" + addr, TFPort: tf, dir: dir, addr: addr}
	r := strings.NewReplacer("{{LISTEN}}", addr, "{{URL}}", s.URL, "{{DIR}}", dir, "{{TFPORT}}", tf)
	s.cfg = filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(s.cfg, []byte(r.Replace(Config)), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// Start (re)starts the process on the same store and address and waits for /readyz.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(Bin, "serve", "--config", s.cfg, "--allow-short-admin-token")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	s.cmd, s.log = cmd, logf
	hc := &http.Client{Timeout: time.Second}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := hc.Get(s.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
			t.Fatalf("server did not become ready: %v\n%s", err, tail(string(b)))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill sends SIGKILL, as a crash.
func (s *Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil && s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		_ = s.cmd.Wait()
	}
	if s.log != nil {
		s.log.Close()
		s.log = nil
	}
}

func tail(s string) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

var (
	sharedOnce sync.Once
	shared     *Server
	sharedErr  string
)

// Shared is a server shared by the tests of the package that do not stop it; each test
// uses its own device ids.
func Shared(t *testing.T) *Server {
	t.Helper()
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "leasehold-client-shared-")
		if err != nil {
			sharedErr = err.Error()
			return
		}
		ft := &fatalRecorder{}
		func() {
			defer func() { _ = recover() }()
			s := NewServer(ft, dir)
			s.Start(ft)
			shared = s
		}()
		if ft.msg != "" {
			sharedErr = ft.msg
		}
	})
	if shared == nil {
		t.Fatalf("shared server: %s", sharedErr)
	}
	return shared
}

func stopShared() {
	if shared != nil {
		shared.Kill()
		os.RemoveAll(shared.dir)
	}
}

// fatalRecorder is a testing.TB for starting the shared server outside any one test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	panic(f.msg)
}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f.msg)
}

// --- admin API ---

// Lease is a lease as the admin API lists it.
type Lease struct {
	ID      string `json:"id"`
	License string `json:"license"`
	Item    string `json:"item"`
	User    string `json:"user"`
	HW      string `json:"hw"`
	Process string `json:"process"`
	Mode    string `json:"mode"`
	Session string `json:"session"`
}

// Session is a session as the admin API lists it.
type Session struct {
	ID     string `json:"id"`
	User   string `json:"user"`
	Client string `json:"client"`
	Device string `json:"device"`
	Seat   bool   `json:"seat"`
}

// Admin calls the admin API under /admin/v1/tenants/acme and decodes the answer into out.
func (s *Server) Admin(t *testing.T, method, path string, out any) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+"/admin/v1/tenants/acme"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+AdminToken)
	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("admin %s %s: %d %s", method, path, resp.StatusCode, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("admin %s: %v: %s", path, err, body)
		}
	}
}

// Leases lists the live leases on the device hw.
func (s *Server) Leases(t *testing.T, hw string) []Lease {
	t.Helper()
	var r struct {
		Leases []Lease `json:"leases"`
	}
	s.Admin(t, http.MethodGet, "/leases", &r)
	var out []Lease
	for _, l := range r.Leases {
		if l.HW == hw {
			out = append(out, l)
		}
	}
	return out
}

// Seats counts the distinct seats (license, user, hw) the leases of hw hold.
func Seats(ls []Lease) int {
	m := map[string]bool{}
	for _, l := range ls {
		m[l.License+"|"+l.User+"|"+l.HW] = true
	}
	return len(m)
}

// ItemLeases are the leases of ls on item.
func ItemLeases(ls []Lease, item string) []Lease {
	var out []Lease
	for _, l := range ls {
		if l.Item == item {
			out = append(out, l)
		}
	}
	return out
}

// Sessions lists the live sessions of device.
func (s *Server) Sessions(t *testing.T, device string) []Session {
	t.Helper()
	var r struct {
		Sessions []Session `json:"sessions"`
	}
	s.Admin(t, http.MethodGet, "/sessions", &r)
	var out []Session
	for _, x := range r.Sessions {
		if x.Device == device {
			out = append(out, x)
		}
	}
	return out
}

// Ctx is a context for one test (at most 60 s), cancelled when the test ends.
func Ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
