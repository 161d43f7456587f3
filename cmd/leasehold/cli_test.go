package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/leasehold/leasehold/internal/app"
	"github.com/leasehold/leasehold/internal/config"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"--help"}, exitOK},
		{[]string{"help"}, exitOK},
		{[]string{"serve", "--help"}, exitOK},
		{[]string{"admin", "get", "--help"}, exitOK}, // help, not a request for the path "--help"
		{[]string{"admin", "licenses", "list", "--help"}, exitOK},
		{[]string{"backup", "--help"}, exitOK},
		{[]string{"completion", "bash"}, exitOK},
		{nil, exitUsage},
		{[]string{"bogus"}, exitUsage},
		{[]string{"serve", "--bogus"}, exitUsage},
		{[]string{"serve", "extra"}, exitUsage},
		{[]string{"admin"}, exitUsage},
		{[]string{"admin", "bogus"}, exitUsage},
		{[]string{"admin", "licenses", "get"}, exitUsage},
		{[]string{"admin", "licenses", "list", "-o", "xml"}, exitUsage},
		{[]string{"admin", "licenses", "list", "-o", "csv"}, exitUsage},
		{[]string{"admin", "usage", "--from", "yesterday"}, exitUsage},
		{[]string{"backup"}, exitUsage},
		{[]string{"hash-password", "pw"}, exitUsage},
		{[]string{"admin", "get", "tenants", "--url", "http://127.0.0.1:1"}, exitFailure},
	} {
		code, _, errb := runCLI(tc.args...)
		if code != tc.code {
			t.Errorf("leasehold %s: exit %d, want %d (%s)", strings.Join(tc.args, " "), code, tc.code, errb)
		}
	}
}

func TestHelpNeverShowsTheToken(t *testing.T) {
	t.Setenv(tokenEnv, "very-secret-token")
	for _, args := range [][]string{{"admin", "--help"}, {"admin", "licenses", "list", "--help"}} {
		_, out, errb := runCLI(args...)
		if strings.Contains(out+errb, "very-secret-token") {
			t.Errorf("leasehold %s prints the admin token", strings.Join(args, " "))
		}
	}
}

func TestServeReadsConfigFromEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("listen: nowhere\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(configEnv, path)
	code, _, errb := runCLI("serve")
	if code != exitUsage || !strings.Contains(errb, "listen") {
		t.Fatalf("serve with %s: exit %d, %q", configEnv, code, errb)
	}
}

// startDemo runs examples/demo.yaml in this process on a free port, with a fresh store.
func startDemo(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../examples/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen, cfg.PublicURL = ln.Addr().String(), "http://"+ln.Addr().String()
	cfg.Store = "sqlite://" + filepath.Join(dir, "leasehold.db")
	cfg.Documents = filepath.Join(dir, "documents")
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
		}
		a.Close()
	})
	return cfg.PublicURL
}

// The nouns and verbs against a real server: tables by default, JSON and YAML on request,
// the default tenant found by itself, the environment read.
func TestAdminCommands(t *testing.T) {
	url := startDemo(t)
	t.Setenv(urlEnv, url)
	t.Setenv(tokenEnv, "demo-admin-token-not-for-production")
	const lic = "870f46a4-1faa-4847-955b-14ee5f74f3fe"

	mustRun := func(args ...string) string {
		t.Helper()
		code, out, errb := runCLI(args...)
		if code != exitOK {
			t.Fatalf("leasehold %s: exit %d: %s", strings.Join(args, " "), code, errb)
		}
		return out
	}

	out := mustRun("admin", "licenses", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[0], "SEATS") || !strings.HasPrefix(lines[1], lic) {
		t.Fatalf("licenses table:\n%s", out)
	}

	var got map[string]any
	if err := json.Unmarshal([]byte(mustRun("admin", "licenses", "get", lic, "-o", "json")), &got); err != nil || got["seats"] != float64(20) {
		t.Fatalf("licenses get -o json: %v %v", got, err)
	}
	if out := mustRun("admin", "users", "list", "-o", "yaml"); !strings.Contains(out, "username: alice") {
		t.Fatalf("users list -o yaml:\n%s", out)
	}

	mustRun("admin", "clients", "disable", "demo-app")
	if out := mustRun("admin", "clients", "get", "demo-app", "-o", "json"); !strings.Contains(out, `"enabled": false`) {
		t.Fatalf("after disable:\n%s", out)
	}
	mustRun("admin", "clients", "enable", "demo-app")
	mustRun("admin", "licenses", "patch", lic, `{"seats": 7}`)
	if out := mustRun("admin", "--tenant", "acme", "licenses", "get", lic); !strings.Contains(out, "seats") || !strings.Contains(out, "7") {
		t.Fatalf("after patch:\n%s", out)
	}

	if out := mustRun("admin", "sessions", "list"); !strings.Contains(out, "(no sessions)") {
		t.Fatalf("sessions on a fresh server:\n%s", out)
	}
	if out := mustRun("admin", "usage", "-o", "csv", "--from", "2026-01-01T00:00:00Z"); !strings.HasPrefix(out, "at,event,license,") {
		t.Fatalf("usage -o csv:\n%s", out)
	}
	// apply --dry-run lists what the file would change and writes nothing; apply writes it.
	demo, err := os.ReadFile("../../examples/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	changed := filepath.Join(t.TempDir(), "changed.yaml")
	if err := os.WriteFile(changed, []byte(strings.Replace(string(demo), "    users:\n", "    users:\n      - {username: dora, password: dora-pw-123}\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := mustRun("admin", "apply", "--dry-run", changed); !strings.Contains(out, "+ acme/users/dora") || !strings.Contains(out, "dry run") {
		t.Fatalf("apply --dry-run:\n%s", out)
	}
	if code, _, _ := runCLI("admin", "users", "get", "dora"); code != exitFailure {
		t.Fatal("apply --dry-run wrote the user")
	}
	if out := mustRun("admin", "apply", changed); !strings.Contains(out, "+ acme/users/dora") || !strings.Contains(out, "1 created") {
		t.Fatalf("apply:\n%s", out)
	}
	mustRun("admin", "users", "get", "dora")
	var rep map[string]any
	if err := json.Unmarshal([]byte(mustRun("admin", "apply", changed, "-o", "json")), &rep); err != nil || rep["report"].(map[string]any)["unchanged"] == nil {
		t.Fatalf("apply -o json: snake_case report expected: %v %v", rep, err)
	}
	// The raw verbs print the server's JSON as it is.
	if out := mustRun("admin", "get", "tenants/acme/models"); !json.Valid([]byte(out)) || !strings.Contains(out, `"floating"`) {
		t.Fatalf("raw get:\n%s", out)
	}

	code, _, errb := runCLI("admin", "licenses", "get", "nope")
	if code != exitFailure || !strings.Contains(errb, "404") {
		t.Fatalf("a missing license: exit %d %q", code, errb)
	}
	code, _, errb = runCLI("admin", "licenses", "list", "--token", "wrong")
	if code != exitFailure || !strings.Contains(errb, "401") {
		t.Fatalf("a wrong token: exit %d %q", code, errb)
	}
}

// Shell completion offers the server's ids.
func TestCompletionOffersIDs(t *testing.T) {
	t.Setenv(urlEnv, startDemo(t))
	t.Setenv(tokenEnv, "demo-admin-token-not-for-production")
	for args, want := range map[string]string{
		"admin licenses get ":     "870f46a4-1faa-4847-955b-14ee5f74f3fe",
		"admin clients disable ":  "demo-app",
		"admin users logout-all ": "alice",
		"admin models patch ":     "floating",
	} {
		code, out, errb := runCLI(append([]string{cobra.ShellCompRequestCmd}, append(strings.Fields(args), "")...)...)
		if code != exitOK || !strings.Contains(out, want+"\n") {
			t.Errorf("completing %q: exit %d, %q %q; want %s offered", args, code, out, errb, want)
		}
	}
}
