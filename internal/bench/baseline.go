package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// baselineBody is about the size of a small API answer (`{"ok":true}` of /healthz).
var baselineBody = []byte(`{"ok":true}`)

// BaselineHandler answers every request with the same small JSON body: the cost of
// net/http itself, which every Leasehold route pays too.
func BaselineHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(baselineBody)
	})
}

// BaselineReady is the line a baseline server prints once it listens, followed by its URL.
const BaselineReady = "baseline listening on "

// ServeBaseline serves BaselineHandler on ln, with the http.Server settings of `leasehold
// serve`, until ctx ends.
func ServeBaseline(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           BaselineHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// StartBaseline runs `exe args…` (a baseline server: `leasehold bench baseline-server
// --listen 127.0.0.1:0`), waits for its BaselineReady line and returns its URL and a stop
// function that ends the process. It is a process of its own, like the server under test,
// so both are measured across the same process boundary.
func StartBaseline(ctx context.Context, exe string, args ...string) (string, func(), error) {
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("starting the baseline server: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), BaselineReady); ok {
				lines <- strings.TrimSpace(rest)
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case u := <-lines:
		if _, err := CheckLoopback(u); err != nil {
			stop()
			return "", nil, err
		}
		return u, stop, nil
	case <-time.After(10 * time.Second):
		stop()
		return "", nil, errors.New("the baseline server did not start within 10s")
	case <-ctx.Done():
		stop()
		return "", nil, ctx.Err()
	}
}
