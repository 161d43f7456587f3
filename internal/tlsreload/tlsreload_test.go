package tlsreload

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/tlsreload/tlstest"
)

// A replaced pair is served once it loads; a half-written one (a certificate that does not
// parse) keeps the previous certificate in service.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	tlstest.WriteCert(t, certFile, keyFile, 1)
	r, err := New(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	serial := func() int64 {
		t.Helper()
		r.mu.Lock()
		r.checked = time.Time{} // the next handshake looks at the files: no second of waiting
		r.mu.Unlock()
		c, err := r.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.SerialNumber.Int64()
	}
	if s := serial(); s != 1 {
		t.Fatalf("serial %d, want 1", s)
	}
	// Distinct modification times, as a real replacement a second later would have.
	touch := func(at time.Time) {
		for _, f := range []string{certFile, keyFile} {
			if err := os.Chtimes(f, at, at); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\nhalf"), 0o600); err != nil {
		t.Fatal(err)
	}
	touch(time.Now().Add(time.Minute))
	if s := serial(); s != 1 {
		t.Fatalf("half-written pair: serial %d, want the old 1", s)
	}
	tlstest.WriteCert(t, certFile, keyFile, 2)
	touch(time.Now().Add(2 * time.Minute))
	if s := serial(); s != 2 {
		t.Fatalf("replaced pair: serial %d, want 2", s)
	}
	if _, err := New(filepath.Join(dir, "none.pem"), keyFile); err == nil {
		t.Fatal("a missing certificate loaded")
	}
}
