package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/leasehold/leasehold/internal/secret"
	"github.com/leasehold/leasehold/internal/throttle"
)

// Failed admin tokens from one address: a few are free (a mistyped token), then each
// further failure doubles the wait. Guessing a 24-character token stays out of reach.
const throttleAdminFree = 10

// requireAdmin checks the admin Bearer token in constant time (or against its hash, cached
// after the first match like a client secret). Without a configured token the admin API
// is off. Failures are throttled per client address.
func (s *Server) requireAdmin(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.AdminToken == "" && s.opts.AdminTokenHash == "" {
			writeError(w, http.StatusForbidden, "admin_disabled", "the admin API is off: set admin_token (or admin_token_hash) or LEASEHOLD_ADMIN_TOKEN")
			return
		}
		key := throttle.Key{ID: "admin\x00" + throttle.Addr(clientAddr(r, s.opts.TrustedProxies)), Free: throttleAdminFree}
		if wait := s.guesses.Wait(time.Now(), key); wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(throttle.RetrySeconds(wait)))
			writeError(w, http.StatusTooManyRequests, "too_many_attempts",
				"too many failed admin tokens from this address; retry in "+strconv.Itoa(throttle.RetrySeconds(wait))+" s")
			return
		}
		if !s.adminTokenValid(bearerToken(r)) {
			s.guesses.Fail(time.Now(), key)
			w.Header().Set("WWW-Authenticate", `Bearer realm="leasehold-admin"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "a valid admin Bearer token is required")
			return
		}
		h(w, r)
	})
}

// requireMetricsToken guards /metrics, which names every tenant's licenses and their use:
// it takes metrics_token or the admin token as a Bearer token, throttled like the admin
// token. With neither configured it is off.
func (s *Server) requireMetricsToken(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.MetricsToken == "" && s.opts.AdminToken == "" && s.opts.AdminTokenHash == "" {
			writeError(w, http.StatusForbidden, "metrics_disabled", "/metrics is off: set metrics_token (or admin_token) and scrape with it as a Bearer token")
			return
		}
		key := throttle.Key{ID: "admin\x00" + throttle.Addr(clientAddr(r, s.opts.TrustedProxies)), Free: throttleAdminFree}
		if wait := s.guesses.Wait(time.Now(), key); wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(throttle.RetrySeconds(wait)))
			writeError(w, http.StatusTooManyRequests, "too_many_attempts", "too many failed tokens from this address")
			return
		}
		tok := bearerToken(r)
		metricsOK := s.opts.MetricsToken != "" && secret.Equal(tok, s.opts.MetricsToken)
		if !metricsOK && !((s.opts.AdminToken != "" || s.opts.AdminTokenHash != "") && s.adminTokenValid(tok)) {
			s.guesses.Fail(time.Now(), key)
			w.Header().Set("WWW-Authenticate", `Bearer realm="leasehold-metrics"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "a metrics_token (or admin) Bearer token is required")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// adminTokenValid: the plain admin token, or the token admin_token_hash hashes (either,
// when both are configured: a change of token needs no moment when neither works).
func (s *Server) adminTokenValid(tok string) bool {
	if s.opts.AdminToken != "" && secret.Equal(tok, s.opts.AdminToken) {
		return true
	}
	if s.opts.AdminTokenHash == "" || tok == "" || len(tok) > secret.MaxSecretLen {
		return false
	}
	// The cache's "tenant" is empty, which no tenant name is: no client shares the entry.
	ok, err := s.secrets.Verify("", "admin", tok, s.opts.AdminTokenHash)
	return err == nil && ok
}
