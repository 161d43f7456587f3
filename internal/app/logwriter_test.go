package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/config"
)

// recordingWriter keeps each Write call apart, to see how the LogWriter cuts its output.
type recordingWriter struct {
	mu     sync.Mutex
	writes [][]byte
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, bytes.Clone(p))
	return len(p), nil
}

func (w *recordingWriter) snapshot() (writes int, all string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for _, p := range w.writes {
		b.Write(p)
	}
	return len(w.writes), b.String()
}

func TestLogWriterBuffersUntilTimer(t *testing.T) {
	rw := &recordingWriter{}
	const every = 100 * time.Millisecond
	lw := NewLogWriter(rw, every)
	defer lw.Close()
	start := time.Now()
	for i := range 100 {
		fmt.Fprintf(lw, "line %d\n", i)
	}
	if n, _ := rw.snapshot(); n != 0 && time.Since(start) < every {
		t.Fatalf("%d writes before the timer, want none", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, all := rw.snapshot()
		if strings.Count(all, "\n") == 100 {
			if n > 2 { // one, unless this machine was slow enough for the timer to fire mid-loop
				t.Fatalf("%d writes for 100 lines", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the timer never flushed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The timer is armed again by the next line.
	fmt.Fprintln(lw, "later")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, all := rw.snapshot(); strings.HasSuffix(all, "later\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a line written after a flush was never flushed")
		}
	}
}

// Under concurrent writers filling the buffer many times over, every write(2) holds whole
// lines, each writer's lines arrive in order, and Close delivers the rest.
func TestLogWriterKeepsLinesWhole(t *testing.T) {
	rw := &recordingWriter{}
	lw := NewLogWriter(rw, time.Hour) // only a full buffer or Close may write
	const writers, lines = 8, 3000
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range lines {
				// Lengths vary, so that lines straddle the buffer's end; one is larger than
				// the buffer and must be written alone, whole.
				pad := strings.Repeat("x", (i*37+g)%300)
				if i == lines/2 && g == 0 {
					pad = strings.Repeat("y", logBufferSize+10)
				}
				fmt.Fprintf(lw, "%d %d %s\n", g, i, pad)
			}
		})
	}
	wg.Wait()
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(lw, "after close")
	n, all := rw.snapshot()
	if n < 10 || n > writers*lines/10 {
		t.Fatalf("%d writes for %d lines", n, writers*lines)
	}
	rw.mu.Lock()
	for _, p := range rw.writes {
		if len(p) == 0 || p[len(p)-1] != '\n' {
			t.Fatalf("a write ends inside a line: …%q", p[max(0, len(p)-20):])
		}
	}
	rw.mu.Unlock()
	next := make([]int, writers)
	got := strings.Split(strings.TrimSuffix(all, "\n"), "\n")
	if got[len(got)-1] != "after close" {
		t.Fatalf("last line %q, want the one written after Close", got[len(got)-1])
	}
	for _, line := range got[:len(got)-1] {
		var g, i int
		var pad string
		if _, err := fmt.Sscanf(line, "%d %d %s", &g, &i, &pad); err != nil && !strings.HasSuffix(line, " ") {
			t.Fatalf("garbled line %q: %v", line[:min(len(line), 40)], err)
		}
		if i != next[g] {
			t.Fatalf("writer %d: line %d after line %d", g, i, next[g]-1)
		}
		next[g]++
	}
	for g, n := range next {
		if n != lines {
			t.Fatalf("writer %d: %d lines of %d", g, n, lines)
		}
	}
}

// The composition of `leasehold serve`: requests logged through a LogWriter whose timer
// never fires are all in the log, whole, once the server has shut down and the writer is
// closed (as serve's deferred Close does).
func TestServeShutdownFlushesRequestLog(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse([]byte(`
listen: 127.0.0.1:0
public_url: http://127.0.0.1:8080
store: sqlite://` + filepath.ToSlash(filepath.Join(dir, "leasehold.db")) + `
documents: ` + filepath.ToSlash(filepath.Join(dir, "documents")) + `
tenants:
  - name: acme
    default: true
`))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	lw := NewLogWriter(&out, time.Hour)
	a, err := New(context.Background(), cfg, slog.New(slog.NewJSONHandler(lw, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()
	const requests = 200
	for i := range requests {
		resp, err := http.Get(fmt.Sprintf("http://%s/healthz?n=%d", ln.Addr(), i))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(out.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a whole JSON line: %q", line)
		}
		if rec["msg"] == "request" && rec["path"] == "/healthz" && rec["status"] == float64(200) {
			n++
		}
	}
	if n != requests {
		t.Fatalf("%d request lines logged, want %d", n, requests)
	}
}
