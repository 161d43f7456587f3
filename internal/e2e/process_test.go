package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// leaseholdBinary builds cmd/leasehold once per test run: these tests run the real
// executable so they can kill it with SIGKILL.
func leaseholdBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "leasehold-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "leasehold")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/leasehold/leasehold/cmd/leasehold").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type process struct {
	URL string
	// Log is the file that holds what the process wrote (stdout and stderr).
	Log string
	cmd *exec.Cmd
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startProcess runs `leasehold serve` on a configuration ({{URL}}, {{LISTEN}}, {{STORE}},
// {{DIR}} replaced) and waits until it answers /readyz.
func startProcess(t *testing.T, yaml, dir, storeDSN, addr string) *process {
	t.Helper()
	url := "http://" + addr
	r := strings.NewReplacer("{{URL}}", url, "{{STORE}}", storeDSN, "{{DIR}}", dir, "{{LISTEN}}", addr)
	cfgPath := filepath.Join(dir, fmt.Sprintf("config-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(cfgPath, []byte(r.Replace(yaml)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(leaseholdBinary(t), "serve", "--config", cfgPath, "--allow-short-admin-token")
	logf, err := os.Create(cfgPath + ".log")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{URL: url, Log: cfgPath + ".log", cmd: cmd}
	t.Cleanup(func() {
		p.kill()
		logf.Close()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(cfgPath + ".log")
			t.Fatalf("server did not become ready: %v\n%s", err, tail(string(b)))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL: no shutdown hook runs, exactly as in a crash.
func (p *process) kill() {
	if p.cmd.Process != nil && p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
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

// TestKill9LosesNothing: leases, lingers and counters acknowledged before a SIGKILL are
// all there after a restart on the same SQLite file.
func TestKill9LosesNothing(t *testing.T) {
	dir := t.TempDir()
	store := "sqlite://" + filepath.Join(dir, "leasehold.db")
	addr := freePort(t)
	cfg := strings.Replace(coreConfig, "{name: counted, anchors: [hw], max_use_count: 3, online_lease: 2s}",
		"{name: counted, anchors: [hw], max_use_count: 21, max_use_time: 100h, online_lease: 10m, linger: 1h}", 1)
	cfg = strings.Replace(cfg, "product: PlatformService\n        model: floating", "product: PlatformService\n        model: counted", 1)
	cfg = strings.Replace(cfg, "seats: 10", "seats: 50", 1)
	p := startProcess(t, cfg, dir, store, addr)
	tok := ccToken(t, p.URL, "app", "s3cret", "")

	// Twenty grants, one release (a lingering seat), then SIGKILL right after the last answer.
	var leases []string
	for i := 0; i < 20; i++ {
		m := authzJSON(t, p.URL, tok, fmt.Sprintf("AppFeature-XYZ&hw=k9-%d", i))
		if m["AppFeature-XYZ"] != true {
			t.Fatalf("grant %d: %v", i, m)
		}
		leases = append(leases, m["jti"].(string))
	}
	if m := authzJSON(t, p.URL, tok, "release&"+leases[0]); m[leases[0]+"_released"] != true {
		t.Fatalf("release: %v", m)
	}
	p.kill()

	p = startProcess(t, cfg, dir, store, addr)
	// Tokens survive too.
	for i, id := range leases[1:] {
		m := authzJSON(t, p.URL, tok, fmt.Sprintf("AppFeature-XYZ&hw=k9-%d&leaseId=%s", i+1, id))
		if m["AppFeature-XYZ"] != true {
			t.Fatalf("lease %d lost across kill -9: %v", i+1, m)
		}
	}
	// The released seat still lingers (1 h): 19 live + 1 lingering.
	r := get(t, p.URL+"/entitlements/licenses", tok)
	if !strings.Contains(r.Body, `"seats_used":20`) {
		t.Fatalf("seats after restart (19 live + 1 lingering expected): %s", r.Body)
	}
	// The lingering seat is reclaimable only by its own anchor.
	if m := authzJSON(t, p.URL, tok, "AppFeature-XYZ&hw=k9-0"); m["AppFeature-XYZ"] != true {
		t.Fatalf("reclaim after restart: %v", m)
	}
	// The use count survived: 21 draws made, the 22nd is refused.
	if m := authzJSON(t, p.URL, tok, "AppFeature-XYZ&hw=k9-new"); m["AppFeature-XYZ_errorCode"] != "maxUseCountExceed" {
		t.Fatalf("use count after restart: %v", m)
	}
}
