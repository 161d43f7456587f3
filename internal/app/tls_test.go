package app

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/config"
	"github.com/leasehold/leasehold/internal/tlsreload/tlstest"
)

// TestServeTLS: with tls set, the main listener serves HTTPS and HTTP/2, and a certificate
// replaced on disk is served to the next connection without a restart.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	tlstest.WriteCert(t, certFile, keyFile, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	yaml := "listen: " + ln.Addr().String() + "\nadmin_listen: " + adminLn.Addr().String() + "\nstore: sqlite://" + filepath.Join(dir, "l.db") +
		"\ndocuments: " + filepath.Join(dir, "docs") + "\ntls: {cert_file: " + certFile + ", key_file: " + keyFile + "}\n"
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PublicURL != "https://"+ln.Addr().String() {
		t.Fatalf("default public_url with tls: %s", cfg.PublicURL)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := New(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.AdminListener = adminLn
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	var getFrom func(addr string) (int64, string)
	t.Cleanup(func() {
		cancel()
		<-done
		a.Close()
	})
	get := func() (serial int64, proto string) { return getFrom(ln.Addr().String()) }
	getFrom = func(addr string) (serial int64, proto string) {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + addr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.TLS == nil {
			t.Fatalf("healthz over TLS: %d", resp.StatusCode)
		}
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64(), resp.Proto
	}
	serial, proto := get()
	if serial != 1 || proto != "HTTP/2.0" {
		t.Fatalf("first connection: serial %d over %s, want 1 over HTTP/2.0", serial, proto)
	}
	// The admin listener, which the admin token travels to, is HTTPS as well.
	if s, _ := getFrom(adminLn.Addr().String()); s != 1 {
		t.Fatalf("admin listener over TLS: serial %d", s)
	}
	// A renewed certificate (a new mtime) is picked up within a second or so.
	time.Sleep(1100 * time.Millisecond)
	tlstest.WriteCert(t, certFile, keyFile, 2)
	deadline := time.Now().Add(5 * time.Second)
	for serial != 2 && time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
		serial, _ = get()
	}
	if serial != 2 {
		t.Fatalf("the replaced certificate was not served: serial %d", serial)
	}
}
