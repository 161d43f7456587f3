package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

// proxyTo serves the gateway's proxy in front of upstream, admitting every request as
// alice.
func proxyTo(t *testing.T, upstream http.Handler, timeout time.Duration) (gateway *httptest.Server, up *httptest.Server) {
	t.Helper()
	up = httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL + "/base")
	rp := newProxy(u, timeout, slog.New(slog.DiscardHandler))
	gateway = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := CleanPath(r.URL.EscapedPath())
		if err != nil {
			http.Error(w, "unclean", http.StatusBadRequest)
			return
		}
		a := &admission{path: p, usedBearer: true, clientAddr: netip.MustParseAddr("192.0.2.1"), proto: "http",
			identity: Identity{Tenant: "acme", User: "alice", Session: "s1", Scopes: []string{"all"}, License: "lic-1"}}
		rp.ServeHTTP(w, r.WithContext(withAdmission(r.Context(), a)))
	}))
	t.Cleanup(gateway.Close)
	return gateway, up
}

func TestProxyHeadersAndPath(t *testing.T) {
	seen := make(chan *http.Request, 1)
	gw, _ := proxyTo(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Clone(r.Context())
		w.Header().Set("X-Upstream", "yes")
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, "body")
	}), time.Second)
	req, _ := http.NewRequest(http.MethodGet, gw.URL+"/a%20b/c?q=1", nil)
	req.Header.Set("Authorization", "Bearer secret-token")
	req.Header.Set("X-Leasehold-User", "mallory")
	req.Header.Set("X_Leasehold_Tenant", "other")
	req.Header.Set("X-Forwarded-For", "10.9.9.9")
	req.Header.Set("Connection", "X-Leasehold-User, X-Leasehold-Session")
	req.Header.Set("Cookie", "lh_gw_reports=gw-secret; theme=dark")
	req.Header.Set("X-Custom", "kept")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot || string(body) != "body" || resp.Header.Get("X-Upstream") != "yes" {
		t.Fatalf("response: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	r := <-seen
	if r.URL.Path != "/base/a b/c" || r.URL.RawQuery != "q=1" {
		t.Errorf("upstream path %q query %q", r.URL.Path, r.URL.RawQuery)
	}
	for k, v := range map[string]string{
		"X-Leasehold-User": "alice", "X-Leasehold-Tenant": "acme", "X-Leasehold-Session": "s1", "X-Leasehold-Scopes": "all",
		"X-Leasehold-License": "lic-1", "X-Forwarded-For": "192.0.2.1", "X-Forwarded-Proto": "http",
		"Authorization": "", "Cookie": "theme=dark", "X-Custom": "kept",
	} {
		if got := r.Header.Get(k); got != v {
			t.Errorf("upstream %s = %q, want %q", k, got, v)
		}
	}
	if len(r.Header.Values("X-Leasehold-User")) != 1 || r.Header.Get("X_Leasehold_Tenant") != "" {
		t.Errorf("client-sent identity headers reached the upstream: %v", r.Header)
	}
	if r.Header.Get("X-Forwarded-Host") == "" {
		t.Error("no X-Forwarded-Host")
	}
}

// Accept-Encoding is the client's: the proxy neither asks the upstream for gzip on its own
// nor unpacks what the upstream compressed for a client that asked.
func TestProxyAcceptEncodingIsTheClients(t *testing.T) {
	gz := []byte{0x1f, 0x8b, 'n', 'o', 't', '-', 'r', 'e', 'a', 'l'}
	gw, _ := proxyTo(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept-Encoding") == "gzip" {
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(gz)
			return
		}
		_, _ = io.WriteString(w, "accept-encoding="+r.Header.Get("Accept-Encoding"))
	}), time.Second)
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	for _, tc := range []struct{ accept, want, encoding string }{
		{"", "accept-encoding=", ""},
		{"gzip", string(gz), "gzip"},
	} {
		req, _ := http.NewRequest(http.MethodGet, gw.URL+"/x", nil)
		if tc.accept != "" {
			req.Header.Set("Accept-Encoding", tc.accept)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != tc.want || resp.Header.Get("Content-Encoding") != tc.encoding {
			t.Errorf("Accept-Encoding %q: body %q, Content-Encoding %q", tc.accept, body, resp.Header.Get("Content-Encoding"))
		}
	}
}

// A request body is streamed: the upstream reads its start while the client still writes.
func TestProxyStreamsRequestBody(t *testing.T) {
	firstRead := make(chan struct{})
	total := make(chan int64, 1)
	gw, _ := proxyTo(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 1)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			t.Error(err)
		}
		close(firstRead)
		n, _ := io.Copy(io.Discard, r.Body)
		total <- n + 1
	}), time.Second)
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write(bytes.Repeat([]byte("x"), 64<<10))
		select {
		case <-firstRead:
		case <-time.After(5 * time.Second):
			pw.CloseWithError(fmt.Errorf("the upstream never saw the start of the body: buffered"))
			return
		}
		chunk := bytes.Repeat([]byte("y"), 1<<20)
		for range 32 {
			_, _ = pw.Write(chunk)
		}
		pw.Close()
	}()
	resp, err := http.Post(gw.URL+"/upload", "application/octet-stream", pr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := <-total; n != 64<<10+32<<20 {
		t.Fatalf("upstream got %d bytes", n)
	}
}

// A streamed response (server-sent events) reaches the client as it is written.
func TestProxyFlushesEvents(t *testing.T) {
	release := make(chan struct{})
	gw, _ := proxyTo(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-release
		_, _ = io.WriteString(w, "data: two\n\n")
	}), time.Second)
	defer close(release)
	resp, err := http.Get(gw.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(resp.Body).ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		if l != "data: one\n" {
			t.Fatalf("first line %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first event was held back")
	}
}

// An upgraded connection (WebSocket) passes both ways.
func TestProxyUpgrade(t *testing.T) {
	gw, _ := proxyTo(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "no upgrade", http.StatusBadRequest)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = rw.Flush()
		msg, _ := rw.ReadString('\n')
		_, _ = rw.WriteString("echo " + msg)
		_ = rw.Flush()
	}), time.Second)
	conn, err := net.Dial("tcp", strings.TrimPrefix(gw.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	fmt.Fprintf(conn, "hello\n")
	if got, _ := br.ReadString('\n'); got != "echo hello\n" {
		t.Fatalf("through the upgraded connection: %q", got)
	}
}

func TestProxyHeadAndTrailers(t *testing.T) {
	gw, _ := proxyTo(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		w.Header().Set("X-Method", r.Method)
		_, _ = io.WriteString(w, "payload")
		w.Header().Set("X-Checksum", "abc")
	}), time.Second)
	resp, err := http.Head(gw.URL + "/h")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Method") != "HEAD" {
		t.Fatalf("HEAD: %d %v", resp.StatusCode, resp.Header)
	}
	resp, err = http.Get(gw.URL + "/t")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "payload" || resp.Trailer.Get("X-Checksum") != "abc" {
		t.Fatalf("trailers: %q %v", body, resp.Trailer)
	}
}

func TestProxyUpstreamFailures(t *testing.T) {
	gw, _ := proxyTo(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(500 * time.Millisecond)
	}), 100*time.Millisecond)
	resp, err := http.Get(gw.URL + "/slow")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("slow upstream: %d, want 504", resp.StatusCode)
	}
	gw2, up := proxyTo(t, http.NotFoundHandler(), time.Second)
	up.Close()
	resp, err = http.Get(gw2.URL + "/gone")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("upstream down: %d, want 502 JSON", resp.StatusCode)
	}
}

// An answer whose headers pass the bound is a 502 on both of the proxy's transports: the
// direct one (a GET) and http.Transport (a POST, which has a body).
func TestProxyBoundsResponseHeaders(t *testing.T) {
	big := strings.Repeat("a", maxResponseHeaderBytes+1)
	gw, _ := proxyTo(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Big", big)
	}), time.Minute)
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		req, _ := http.NewRequest(method, gw.URL+"/big", strings.NewReader("body"))
		if method == http.MethodGet {
			req.Body, req.ContentLength = nil, 0
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("%s with %d bytes of headers: %d, want 502", method, len(big), resp.StatusCode)
		}
	}
}

// BenchmarkProxyGET is an admitted GET through the proxy to a trivial upstream, client and
// upstream in the same process: direct is the gateway's transport, net/http the
// http.Transport it falls back to for everything else.
func BenchmarkProxyGET(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	for _, variant := range []string{"direct", "net/http"} {
		b.Run(variant, func(b *testing.B) {
			rp := newProxy(u, time.Minute, slog.New(slog.DiscardHandler))
			if variant == "net/http" {
				rp.Transport = rp.Transport.(*directTransport).next
			}
			a := &admission{path: "/", proto: "http", identity: Identity{Tenant: "acme", User: "alice", Session: "s1"}}
			gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rp.ServeHTTP(w, r.WithContext(withAdmission(r.Context(), a)))
			}))
			defer gw.Close()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			defer client.CloseIdleConnections()
			b.SetParallelism(16)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Get(gw.URL + "/")
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		})
	}
}
