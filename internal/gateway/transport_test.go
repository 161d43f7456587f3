package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countedUpstream is an upstream that counts the connections it accepted and has closed.
func countedUpstream(t *testing.T, h http.Handler) (up *httptest.Server, opened, closed *atomic.Int32) {
	t.Helper()
	opened, closed = new(atomic.Int32), new(atomic.Int32)
	up = httptest.NewUnstartedServer(h)
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			closed.Add(1)
		}
	}
	up.Start()
	t.Cleanup(up.Close)
	return up, opened, closed
}

func directTo(t *testing.T, up *httptest.Server, timeout time.Duration) *directTransport {
	t.Helper()
	u, _ := url.Parse(up.URL)
	tr := newDirectTransport(http.DefaultTransport.(*http.Transport).Clone(), u.Host, timeout)
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func get(t *testing.T, rt http.RoundTripper, ctx context.Context, method, u string) (*http.Response, error) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, method, u, nil)
	return rt.RoundTrip(req)
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func idleConns(tr *directTransport) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.idle)
}

// Requests one after another share one upstream connection, GET and HEAD alike; a request
// with a body goes through http.Transport.
func TestDirectTransportReusesConnections(t *testing.T) {
	up, opened, _ := countedUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello "+r.Method)
	}))
	tr := directTo(t, up, time.Second)
	for i := 0; i < 10; i++ {
		method := http.MethodGet
		if i%2 == 1 {
			method = http.MethodHead
		}
		resp, err := get(t, tr, context.Background(), method, up.URL+"/")
		if err != nil {
			t.Fatal(err)
		}
		if body := readAll(t, resp); method == http.MethodGet && body != "hello GET" {
			t.Fatalf("body %q", body)
		}
	}
	if n := opened.Load(); n != 1 {
		t.Fatalf("10 requests opened %d upstream connections, want 1", n)
	}
	if idleConns(tr) != 1 {
		t.Fatalf("%d idle connections kept, want 1", idleConns(tr))
	}
	req, _ := http.NewRequest(http.MethodPost, up.URL+"/", strings.NewReader("body"))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); body != "hello POST" {
		t.Fatalf("POST: %q", body)
	}
	if n := opened.Load(); n != 2 || idleConns(tr) != 1 {
		t.Fatalf("POST: %d connections opened, %d idle here: want it on http.Transport's own", n, idleConns(tr))
	}
}

// A kept connection the upstream closed while it was idle costs the next request nothing:
// it goes again on a new connection.
func TestDirectTransportRetriesConnectionClosedWhileIdle(t *testing.T) {
	up, opened, closed := countedUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	tr := directTo(t, up, time.Second)
	resp, err := get(t, tr, context.Background(), http.MethodGet, up.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	// Turning keep-alives off closes the connections idle at that moment; the server may
	// not have marked this one idle yet when the client has read the whole answer, so
	// until it is closed, ask again.
	for deadline := time.Now().Add(5 * time.Second); closed.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the upstream did not close its idle connection")
		}
		up.Config.SetKeepAlivesEnabled(false)
		up.Config.SetKeepAlivesEnabled(true)
	}
	resp, err = get(t, tr, context.Background(), http.MethodGet, up.URL+"/")
	if err != nil {
		t.Fatalf("after the upstream closed the kept connection: %v", err)
	}
	if body := readAll(t, resp); body != "ok" || opened.Load() != 2 {
		t.Fatalf("body %q over %d connections, want ok over 2", body, opened.Load())
	}
}

// A connection is kept only when its answer was read to the end and the upstream keeps it.
func TestDirectTransportKeepsOnlyFinishedConnections(t *testing.T) {
	up, opened, _ := countedUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		_, _ = io.WriteString(w, strings.Repeat("x", 64<<10))
	}))
	tr := directTo(t, up, time.Second)
	resp, err := get(t, tr, context.Background(), http.MethodGet, up.URL+"/close")
	if err != nil {
		t.Fatal(err)
	}
	if readAll(t, resp); idleConns(tr) != 0 {
		t.Fatal("kept a connection the upstream said it closes")
	}
	resp, err = get(t, tr, context.Background(), http.MethodGet, up.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = resp.Body.Read(make([]byte, 10))
	resp.Body.Close()
	if idleConns(tr) != 0 {
		t.Fatal("kept a connection with an answer half read")
	}
	resp, err = get(t, tr, context.Background(), http.MethodGet, up.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	if readAll(t, resp); idleConns(tr) != 1 || opened.Load() != 3 {
		t.Fatalf("%d kept after a whole answer, %d opened; want 1 and 3", idleConns(tr), opened.Load())
	}
}

// Ending the request's context (the client left, or its session ended) ends the exchange at
// once, waiting for headers or in the body, and the connection is not kept.
func TestDirectTransportCancel(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	up, _, _ := countedUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			_, _ = io.WriteString(w, "first")
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	tr := directTo(t, up, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	if _, err := get(t, tr, ctx, http.MethodGet, up.URL+"/wait"); err == nil {
		t.Fatal("an answer after the context ended")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("waiting for headers ended %v after the context", d)
	}
	ctx, cancel = context.WithCancel(context.Background())
	resp, err := get(t, tr, ctx, http.MethodGet, up.URL+"/stream")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first" {
		t.Fatalf("first bytes %q, %v", buf, err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := resp.Body.Read(buf); err == nil {
		t.Fatal("the body went on after the context ended")
	}
	resp.Body.Close()
	if idleConns(tr) != 0 {
		t.Fatal("kept a connection its context closed")
	}
}

// Informational answers (103 Early Hints) reach the client through the proxy before the
// final one.
func TestDirectTransportPassesInformational(t *testing.T) {
	gw, _ := proxyTo(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		_, _ = io.WriteString(w, "final")
	}), time.Second)
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, http.StatusText(code)+": "+h.Get("Link"))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, gw.URL+"/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); body != "final" || len(hints) != 1 || hints[0] != "Early Hints: </style.css>; rel=preload; as=style" {
		t.Fatalf("body %q, informational %q", body, hints)
	}
}

// Connections unused for idleConnTimeout are closed, the oldest first.
func TestDirectTransportClosesExpiredConnections(t *testing.T) {
	up, _, closed := countedUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	tr := directTo(t, up, time.Second)
	ctx := context.Background()
	a, err := get(t, tr, ctx, http.MethodGet, up.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	b, err := get(t, tr, ctx, http.MethodGet, up.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, a)
	readAll(t, b)
	tr.mu.Lock()
	if len(tr.idle) != 2 || tr.sweep == nil {
		tr.mu.Unlock()
		t.Fatalf("%d idle, sweep armed %v; want 2 and armed", len(tr.idle), tr.sweep != nil)
	}
	tr.idle[0].idleSince = time.Now().Add(-idleConnTimeout - time.Second)
	tr.mu.Unlock()
	tr.closeExpired()
	for deadline := time.Now().Add(5 * time.Second); closed.Load() != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d upstream connections closed, want the expired one", closed.Load())
		}
	}
	if n := idleConns(tr); n != 1 {
		t.Fatalf("%d idle after the sweep, want 1", n)
	}
}

// An upstream whose headers do not end costs the gateway a bounded read, then an error
// (a 502 through the proxy), not memory without end.
func TestDirectTransportBoundsResponseHeaders(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = conn.Read(make([]byte, 4<<10))
		_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nX-Endless: ")
		chunk := []byte(strings.Repeat("a", 64<<10))
		for range 4 * maxResponseHeaderBytes / len(chunk) {
			if _, err := conn.Write(chunk); err != nil {
				return
			}
		}
	}()
	tr := newDirectTransport(http.DefaultTransport.(*http.Transport).Clone(), ln.Addr().String(), time.Minute)
	defer tr.CloseIdleConnections()
	_, err = get(t, tr, context.Background(), http.MethodGet, "http://"+ln.Addr().String()+"/")
	if !errors.Is(err, errHeadersTooLarge) {
		t.Fatalf("endless headers: %v, want errHeadersTooLarge", err)
	}
}
