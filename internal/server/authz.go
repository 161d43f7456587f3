package server

import (
	"errors"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/leasehold/leasehold/internal/engine"
	"github.com/leasehold/leasehold/internal/server/authz/wire"
)

// authz serves the 10Duke license consumption API: /authz/[.jwt|.json|.txt], GET or POST.
func (s *Server) authz(w http.ResponseWriter, r *http.Request) {
	format, ok := wire.ParseFormat(strings.TrimPrefix(r.URL.Path, "/authz/"))
	if !ok {
		s.notFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET or POST")
		return
	}
	p, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	var body string
	if r.Method == http.MethodPost {
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "" && ct != "application/x-www-form-urlencoded" {
			writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send a form (application/x-www-form-urlencoded) or use GET")
			return
		}
		b, ok := readBody(w, r, wire.MaxQueryLen+1)
		if !ok {
			return
		}
		body = string(b)
	}
	parsed, err := wire.ParseConsumeRaw(r.URL.RawQuery, body)
	if err != nil {
		var pe *wire.ParseError
		if errors.As(err, &pe) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(pe.Status())
			_, _ = w.Write(pe.Body())
			return
		}
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if parsed.Tenant != "" && parsed.Tenant != p.Tenant {
		w.Header().Set("WWW-Authenticate", `Bearer realm="leasehold", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "invalid_token", "the access token belongs to another tenant")
		return
	}

	meta := wire.Meta{Issuer: s.issuer(p.Tenant), Subject: p.Caller.User, IssuedAt: time.Now()}
	var sign wire.SignFunc
	if format == wire.JWT {
		signer, err := s.deps.Keys.Signer(r.Context(), p.Tenant)
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		sign = signer.Sign
	}

	var out []byte
	if parsed.Release {
		results, err := s.deps.Engine.Release(r.Context(), p.Tenant, p.Caller, parsed.ReleaseIDs)
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		out, err = wire.RenderRelease(format, meta, results, sign)
		if err != nil {
			s.internalError(w, r, err)
			return
		}
	} else {
		req := parsed.EngineRequest()
		req.Tenant = p.Tenant
		req.Caller = p.Caller
		req.ClientIP = s.addrOf(r)
		var results []engine.Result
		if len(req.Items) > 0 {
			// The request's context: a queued request whose client went away gives back
			// what it was granted (the engine releases it).
			results, err = s.deps.Engine.Consume(r.Context(), req)
			if err != nil {
				s.internalError(w, r, err)
				return
			}
		}
		merged, err := parsed.Merge(results)
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		out, err = wire.RenderConsume(format, meta, merged, sign)
		if err != nil {
			s.internalError(w, r, err)
			return
		}
	}
	w.Header().Set("Content-Type", format.ContentType())
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(out)
}

// issuer is a tenant's issuer: {public_url}/t/{tenant}.
func (s *Server) issuer(tenant string) string {
	return s.opts.PublicURL + "/t/" + tenant
}
