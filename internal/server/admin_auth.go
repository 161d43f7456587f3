package server

import (
	"net/http"
	"strconv"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/throttle"
)

// requireAdmin checks the admin Bearer token (admintoken.Guard: the plain token in constant
// time or its hash, wrong tokens throttled per client address). Without a configured token
// the admin API is off.
func (s *Server) requireAdmin(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.opts.Admin.Configured() {
			writeError(w, http.StatusForbidden, "admin_disabled", "the admin API is off: set admin_token (or admin_token_hash) or LEASEHOLD_ADMIN_TOKEN")
			return
		}
		if !s.checkAdminToken(w, r, "leasehold-admin", "a valid admin Bearer token is required") {
			return
		}
		// A session the admin API ends was ended by an administrator (session.ended).
		h(w, r.WithContext(domain.WithEndReason(r.Context(), domain.EndAdmin)))
	})
}

// requireMetricsToken guards /metrics, which names every tenant's licenses and their use:
// it takes metrics_token or the admin token as a Bearer token, throttled like the admin
// token. With neither configured it is off.
func (s *Server) requireMetricsToken(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.MetricsToken == "" && !s.opts.Admin.Configured() {
			writeError(w, http.StatusForbidden, "metrics_disabled", "/metrics is off: set metrics_token (or admin_token) and scrape with it as a Bearer token")
			return
		}
		if !s.checkAdminToken(w, r, "leasehold-metrics", "a metrics_token (or admin) Bearer token is required", s.opts.MetricsToken) {
			return
		}
		h.ServeHTTP(w, r)
	})
}

// checkAdminToken answers 429 or 401 itself when the request's Bearer token is neither the
// admin token nor one of also.
func (s *Server) checkAdminToken(w http.ResponseWriter, r *http.Request, realm, why string, also ...string) bool {
	ok, retry := s.opts.Admin.Check(bearerToken(r), s.addrOf(r), also...)
	switch {
	case ok:
		return true
	case retry > 0:
		w.Header().Set("Retry-After", strconv.Itoa(throttle.RetrySeconds(retry)))
		writeError(w, http.StatusTooManyRequests, "too_many_attempts",
			"too many wrong tokens from this address; retry in "+strconv.Itoa(throttle.RetrySeconds(retry))+" s")
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", why)
	}
	return false
}
