// Package tlsreload serves TLS from certificate files that may be replaced while the server
// runs: the main listener, the admin listener and the gateways' listeners share it.
package tlsreload

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// Reloader serves a certificate from files that an operator (or certbot, or a
// Kubernetes secret mount) replaces in place: it looks at their modification times at most
// once a second, on a handshake, and loads the pair again when either changed. A pair that
// does not load keeps the previous certificate in service.
type Reloader struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]time.Time
	checked time.Time
}

// New loads the pair; an error names what failed (a missing file, a key that does not match).
func New(certFile, keyFile string) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Reloader) modTimes() ([2]time.Time, error) {
	var t [2]time.Time
	for i, f := range []string{r.certFile, r.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return t, err
		}
		t[i] = st.ModTime()
	}
	return t, nil
}

func (r *Reloader) load() error {
	stamp, err := r.modTimes()
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	r.cert, r.stamp = &cert, stamp
	return nil
}

// GetCertificate is tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= time.Second {
		r.checked = now
		if stamp, err := r.modTimes(); err == nil && stamp != r.stamp {
			_ = r.load() // a half-written pair fails to load: the old one serves until it does
		}
	}
	return r.cert, nil
}

// Config is a server configuration serving r's certificate. http.Server.ServeTLS adds h2 to
// its NextProtos, so a server given it speaks HTTP/2 as well.
func (r *Reloader) Config() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
}
