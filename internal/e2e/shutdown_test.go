package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/engine"
)

// shutdownConfig: one seat, so a second consumer queues; a long shutdown_timeout, so that
// what answers the queued request is the drain, not the timeout.
func shutdownConfig(timeout string) string {
	cfg := strings.Replace(coreConfig, "seats: 10", "seats: 1", 1)
	return strings.Replace(cfg, "admin_token: test-admin\n", "admin_token: test-admin\nshutdown_timeout: "+timeout+"\n", 1)
}

// slowUpload starts a document upload whose body arrives only when finish is called: a
// request in flight for as long as the test wants.
func slowUpload(t *testing.T, base, token string) (finish func(), result <-chan response) {
	t.Helper()
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPut, base+"/session/documents/slow.txt", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	ch := make(chan response, 1)
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			ch <- response{Status: -1, Body: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		ch <- response{Status: resp.StatusCode, Body: string(b)}
	}()
	if _, err := pw.Write([]byte("first half, ")); err != nil {
		t.Fatal(err)
	}
	return func() {
		_, _ = pw.Write([]byte("second half"))
		pw.Close()
	}, ch
}

func sessionToken(t *testing.T, base string) string {
	t.Helper()
	r := postForm(t, base+"/session/login", url.Values{"username": {"alice"}, "password": {"alice-pw"}}, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("login: %d %s", r.Status, r.Body)
	}
	tok, _ := r.json(t)["token"].(string)
	return tok
}

// waitExit waits for the process and returns its exit code.
func (p *process) waitExit(t *testing.T, within time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		if err != nil {
			t.Fatalf("wait: %v", err)
		}
		return 0
	case <-time.After(within):
		t.Fatalf("the process did not exit within %v of SIGTERM", within)
		return -1
	}
}

// logLines returns the process's log lines (the file startProcess writes beside the
// configuration).
func logLines(t *testing.T, dir string) []map[string]any {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "config-*.yaml.log"))
	if len(files) != 1 {
		t.Fatalf("log files: %v", files)
	}
	f, err := os.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			lines = append(lines, m)
		}
	}
	return lines
}

func indexOfMsg(lines []map[string]any, msg string) int {
	for i, l := range lines {
		if l["msg"] == msg {
			return i
		}
	}
	return -1
}

// TestSIGTERMDrains runs the real binary: on SIGTERM a request waiting in queue= gets its
// normal refusal at once, a request in flight finishes, the process exits 0, and the log
// says when shutdown began and ended.
func TestSIGTERMDrains(t *testing.T) {
	dir := t.TempDir()
	p := startProcess(t, shutdownConfig("30s"), dir, "sqlite://"+filepath.Join(dir, "leasehold.db"), freePort(t))
	tok := ccToken(t, p.URL, "app", "s3cret", "")
	if m := authzJSON(t, p.URL, tok, "AppFeature-XYZ&hw=holder"); m["AppFeature-XYZ"] != true {
		t.Fatalf("the one seat: %v", m)
	}

	finishUpload, uploaded := slowUpload(t, p.URL, sessionToken(t, p.URL))
	queued := make(chan response, 1)
	go func() {
		// Not get: t.Fatal may not run outside the test's goroutine.
		req, _ := http.NewRequest(http.MethodGet, p.URL+"/authz/.json?AppFeature-XYZ&hw=waiter&queue=60000", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			queued <- response{Status: -1, Body: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		queued <- response{Status: resp.StatusCode, Body: string(b)}
	}()
	time.Sleep(500 * time.Millisecond) // both requests reach the server
	select {
	case r := <-queued:
		t.Fatalf("the queued request was answered before the shutdown: %d %s", r.Status, r.Body)
	default:
	}

	signalled := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-queued:
		if d := time.Since(signalled); d > 3*time.Second {
			t.Errorf("the queued request was answered %v after SIGTERM", d)
		}
		if r.Status != http.StatusOK || r.json(t)["AppFeature-XYZ_errorCode"] != "licenseQuotaExceeded" {
			t.Fatalf("the queued request: %d %s, want its normal refusal", r.Status, r.Body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the queued request got no answer after SIGTERM")
	}

	// The upload is still in flight: the process waits for it.
	time.Sleep(300 * time.Millisecond)
	if p.cmd.ProcessState != nil {
		t.Fatal("the process exited with a request in flight")
	}
	finishUpload()
	if r := <-uploaded; r.Status/100 != 2 {
		t.Fatalf("the upload in flight at SIGTERM: %d %s", r.Status, r.Body)
	}
	if code := p.waitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("exit status %d after a clean drain, want 0", code)
	}

	lines := logLines(t, dir)
	began, ended := indexOfMsg(lines, "shutdown started"), indexOfMsg(lines, "shutdown complete")
	if began < 0 || ended < began {
		t.Fatalf("log lines for the start (%d) and end (%d) of shutdown missing or out of order", began, ended)
	}
	if lines[began]["shutdown_timeout"] != "30s" {
		t.Errorf("shutdown started line: %v", lines[began])
	}
}

// A request that outlives shutdown_timeout is cut off, and the exit status says so.
func TestSIGTERMTimeout(t *testing.T) {
	dir := t.TempDir()
	p := startProcess(t, shutdownConfig("1s"), dir, "sqlite://"+filepath.Join(dir, "leasehold.db"), freePort(t))
	finishUpload, uploaded := slowUpload(t, p.URL, sessionToken(t, p.URL))
	time.Sleep(300 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.waitExit(t, 10*time.Second); code != 1 {
		t.Fatalf("exit status %d after cutting a request off, want 1", code)
	}
	// The client notices once it tries to send the rest.
	finishUpload()
	select {
	case r := <-uploaded:
		if r.Status/100 == 2 {
			t.Fatalf("the cut-off upload succeeded: %d %s", r.Status, r.Body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cut-off upload is still waiting")
	}
	if indexOfMsg(logLines(t, dir), "shutdown incomplete") < 0 {
		t.Fatal("no log line for the incomplete shutdown")
	}
}

// The README states queue='s cap as the engine applies it.
func TestREADMEStatesMaxQueue(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("`queue=` is capped at %d ms", engine.MaxQueue.Milliseconds()); !strings.Contains(string(b), want) {
		t.Fatalf("README.md does not say %q", want)
	}
}
