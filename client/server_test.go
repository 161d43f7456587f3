package client

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

// These tests run a real Leasehold server: the binary built from ../cmd/leasehold, started
// as a subprocess on a loopback port with a temporary SQLite store, so that a test can kill
// it with SIGKILL and start it again on the same store.

var serverBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "leasehold-client-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	serverBin = filepath.Join(dir, "leasehold")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", serverBin, "./cmd/leasehold")
	build.Dir = ".." // the server module, at the repository root
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

// testConfig: short leases (6 s, renewed at half), a 4 s access token, no linger (so that a
// closed client's seats are free at once).
const testConfig = `
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
      - {client_id: bob-app, client_secret: s3cret, user: bob, grant_types: [client_credentials, refresh_token], scopes: [all, view], refresh_with_client_credentials: true}
      - {client_id: plain-app, client_secret: s3cret, user: alice, grant_types: [client_credentials], scopes: [all]}
      - client_id: web-app
        redirect_uris: ["http://127.0.0.1:{{TFPORT}}/callback"]
        grant_types: [authorization_code, refresh_token]
        scopes: [Therefore_User, Therefore_Read, offline_access]
    products:
      - {name: PlatformService, items: [AppFeature-XYZ, AppFeature-ABC]}
      - {name: Reports, items: [ReportDesigner]}
    models:
      - {name: floating, anchors: [user, hw], sessions_per_seat: 10, lease_chaining: true, chain_grace: 10s, online_lease: 6s, offline_lease: 1h, refresh_ratio: 0.5, linger: 0s}
      - {name: single, anchors: [hw], sessions_per_seat: 10, lease_chaining: true, online_lease: 6s, refresh_ratio: 0.5, linger: 0s}
    licenses:
      - {id: lic-platform, product: PlatformService, model: floating, seats: 20, owner: {organization: org-1}}
      - {id: lic-reports, product: Reports, model: single, seats: 1, owner: {organization: org-1}}
`

const adminToken = "test-admin"

type server struct {
	URL    string
	TFPort string // a free port for the therefore test's redirect URI
	dir    string
	addr   string
	cfg    string
	cmd    *exec.Cmd
	log    *os.File
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServer runs a server in a new directory; it is killed when the test ends.
func startServer(t *testing.T) *server {
	t.Helper()
	s := newServer(t, t.TempDir())
	t.Cleanup(s.kill)
	s.start(t)
	return s
}

func newServer(t testing.TB, dir string) *server {
	addr := freeAddr(t)
	_, tf, _ := net.SplitHostPort(freeAddr(t))
	s := &server{URL: "http://" + addr, TFPort: tf, dir: dir, addr: addr}
	r := strings.NewReplacer("{{LISTEN}}", addr, "{{URL}}", s.URL, "{{DIR}}", dir, "{{TFPORT}}", tf)
	s.cfg = filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(s.cfg, []byte(r.Replace(testConfig)), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// start (re)starts the process on the same store and address and waits for /readyz.
func (s *server) start(t testing.TB) {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(serverBin, "serve", "--config", s.cfg)
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

// kill sends SIGKILL, as a crash.
func (s *server) kill() {
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

// The shared server serves the tests that do not stop it; each uses its own devices.
var (
	sharedOnce sync.Once
	shared     *server
	sharedErr  string
)

func sharedServer(t *testing.T) *server {
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
			s := newServer(ft, dir)
			s.start(ft)
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
		shared.kill()
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

type adminLease struct {
	ID      string `json:"id"`
	License string `json:"license"`
	Item    string `json:"item"`
	User    string `json:"user"`
	HW      string `json:"hw"`
	Process string `json:"process"`
	Mode    string `json:"mode"`
	Session string `json:"session"`
}

type adminSession struct {
	ID     string `json:"id"`
	User   string `json:"user"`
	Client string `json:"client"`
	Device string `json:"device"`
}

func (s *server) admin(t *testing.T, method, path string, out any) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+"/admin/v1/tenants/acme"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
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

// leases lists the live leases on the device hw.
func (s *server) leases(t *testing.T, hw string) []adminLease {
	t.Helper()
	var r struct {
		Leases []adminLease `json:"leases"`
	}
	s.admin(t, http.MethodGet, "/leases", &r)
	var out []adminLease
	for _, l := range r.Leases {
		if l.HW == hw {
			out = append(out, l)
		}
	}
	return out
}

// seats counts the distinct seats (license, user, hw) the leases of hw hold.
func seats(ls []adminLease) int {
	m := map[string]bool{}
	for _, l := range ls {
		m[l.License+"|"+l.User+"|"+l.HW] = true
	}
	return len(m)
}

func itemLeases(ls []adminLease, item string) []adminLease {
	var out []adminLease
	for _, l := range ls {
		if l.Item == item {
			out = append(out, l)
		}
	}
	return out
}

func (s *server) sessions(t *testing.T, device string) []adminSession {
	t.Helper()
	var r struct {
		Sessions []adminSession `json:"sessions"`
	}
	s.admin(t, http.MethodGet, "/sessions", &r)
	var out []adminSession
	for _, x := range r.Sessions {
		if x.Device == device {
			out = append(out, x)
		}
	}
	return out
}

// --- events ---

// waitEvent reads l's events until one of kind arrives; an event in forbid fails the test.
func waitEvent(t *testing.T, l *Lease, kind EventKind, timeout time.Duration, forbid ...EventKind) Event {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-l.Events():
			if !ok {
				t.Fatalf("events closed while waiting for %s", kind)
			}
			t.Logf("event: %s", ev)
			if ev.Kind == kind {
				return ev
			}
			for _, f := range forbid {
				if ev.Kind == f {
					t.Fatalf("unexpected event %s while waiting for %s", ev, kind)
				}
			}
		case <-timer.C:
			t.Fatalf("no %s event within %s", kind, timeout)
		}
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
