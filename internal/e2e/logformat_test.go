package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const logFormatConfig = `
listen: "{{LISTEN}}"
public_url: "{{URL}}"
store: "{{STORE}}"
admin_token: test-admin
documents: "{{DIR}}/documents"
tenants:
  - name: acme
    users: [{username: alice, password: alice-pw}]
`

// TestServeLogsOneFormat: everything `leasehold serve` writes (startup lines, the request
// log) is a JSON line on one stream by default, and logfmt with log_format: text.
func TestServeLogsOneFormat(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			cfg := logFormatConfig
			if format == "text" {
				cfg += "log_format: text\n"
			}
			p := startProcess(t, cfg, dir, "sqlite://"+filepath.Join(dir, "leasehold.db"), freePort(t))
			get(t, p.URL+"/healthz", "")
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := p.waitExit(t, 20*time.Second); code != 0 {
				t.Fatalf("exit %d", code)
			}
			data, err := os.ReadFile(p.Log)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			var sawListening, sawRequest bool
			for _, l := range lines {
				if format == "json" {
					var m map[string]any
					if err := json.Unmarshal([]byte(l), &m); err != nil {
						t.Fatalf("not a JSON line: %q", l)
					}
					sawListening = sawListening || m["msg"] == "listening"
					sawRequest = sawRequest || m["msg"] == "request"
					continue
				}
				if !strings.HasPrefix(l, "time=") || !strings.Contains(l, " level=") {
					t.Fatalf("not a text (logfmt) line: %q", l)
				}
				sawListening = sawListening || strings.Contains(l, "msg=listening")
				sawRequest = sawRequest || strings.Contains(l, "msg=request")
			}
			if !sawListening || !sawRequest {
				t.Fatalf("no listening or request line in:\n%s", data)
			}
		})
	}
}
