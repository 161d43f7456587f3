package server

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/leasehold/leasehold/internal/documents"
	"github.com/leasehold/leasehold/internal/session"
)

// The session's document storage (webPDF): files kept between calls, private to the
// session, deleted when it ends.

// documentBox authenticates the request and opens its session's storage.
func (s *Server) documentBox(w http.ResponseWriter, r *http.Request) (*session.Principal, *documents.Box, bool) {
	p, _, ok := s.authenticateBrowser(w, r)
	if !ok {
		return nil, nil, false
	}
	if s.deps.Documents == nil {
		writeError(w, http.StatusNotFound, "not_found", "document storage is not configured")
		return nil, nil, false
	}
	return p, s.deps.Documents.Session(p.Tenant, p.Session.ID, p.Session.CreatedAt), true
}

func (s *Server) documentError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, documents.ErrBadName):
		writeError(w, http.StatusBadRequest, "invalid_name", err.Error())
	case errors.Is(err, documents.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no such document")
	case errors.Is(err, documents.ErrQuota):
		writeError(w, http.StatusRequestEntityTooLarge, "quota_exceeded", "the session's documents would exceed its quota (documents_quota)")
	case errors.Is(err, documents.ErrTooMany):
		writeError(w, http.StatusRequestEntityTooLarge, "quota_exceeded", err.Error())
	default:
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "quota_exceeded", "the session's documents would exceed its quota (documents_quota)")
			return
		}
		if r.Context().Err() != nil {
			return
		}
		s.internalError(w, r, err)
	}
}

// documentPut is PUT /session/documents/{name}: the raw body is the document.
func (s *Server) documentPut(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := documents.ValidName(name); err != nil {
		s.documentError(w, r, err)
		return
	}
	p, box, ok := s.documentBox(w, r)
	if !ok {
		return
	}
	snap, err := s.deps.Catalog.Get(r.Context(), p.Tenant)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	quota := int64(snap.Tenant.Session.DocumentsQuota)
	if quota > 0 && r.ContentLength > quota {
		s.documentError(w, r, documents.ErrQuota) // refused before a byte is read
		return
	}
	var body = r.Body
	if body == nil {
		body = http.NoBody
	}
	info, err := box.Put(name, body, quota)
	if err != nil {
		s.documentError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

// documentGet is GET /session/documents/{name}. The document is always a download: it
// must never render as a page of this origin.
func (s *Server) documentGet(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := documents.ValidName(name); err != nil {
		s.documentError(w, r, err)
		return
	}
	_, box, ok := s.documentBox(w, r)
	if !ok {
		return
	}
	f, info, err := box.Open(name)
	if err != nil {
		s.documentError(w, r, err)
		return
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Content-Disposition", "attachment; filename*=UTF-8''"+url.PathEscape(name))
	h.Set("Cache-Control", "private, no-store")
	http.ServeContent(w, r, "", info.Modified, f)
}

// documentList is GET /session/documents.
func (s *Server) documentList(w http.ResponseWriter, r *http.Request) {
	_, box, ok := s.documentBox(w, r)
	if !ok {
		return
	}
	list, err := box.List()
	if err != nil {
		s.documentError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, documentList{Documents: list})
}

// documentDelete is DELETE /session/documents/{name}.
func (s *Server) documentDelete(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := documents.ValidName(name); err != nil {
		s.documentError(w, r, err)
		return
	}
	_, box, ok := s.documentBox(w, r)
	if !ok {
		return
	}
	if err := box.Delete(name); err != nil {
		s.documentError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, okBody{OK: true})
}
