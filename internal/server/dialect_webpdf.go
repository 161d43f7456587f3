package server

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
)

// The webpdf dialect: webPDF's authentication resource, over the session API. A login is
// /session/login (HTTP Basic; {"expiresIn","token","refreshToken"}, the refresh token only
// when asked), a refresh is /session/refresh with the refresh token as Bearer, a logout
// ends the session and deletes its documents. The token reaches the session's document
// storage at /session/documents.
func init() {
	const base = "/webPDF/rest/authentication/user"
	registerDialect(&dialect{
		name: "webpdf",
		routes: []dialectRoute{
			{pattern: "POST " + base + "/login", auth: dialectEntry, serve: (*Server).webpdfLogin},
			{pattern: "GET " + base + "/logout", auth: dialectBearer, serve: (*Server).webpdfLogout},
			// /session/refresh takes the refresh token as Bearer, as webPDF sends it.
			{pattern: "POST " + base + "/refresh", auth: dialectEntry, serve: alias((*Server).sessionRefresh)},
		},
	})
}

// webpdfLogin translates webPDF's way of asking for a refresh token, a JSON body
// {"createRefreshToken": true}, into the session API's refresh=true, and logs in.
func (s *Server) webpdfLogin(w http.ResponseWriter, r *http.Request, _ *dialectCall) {
	body, ok := readBody(w, r, maxFormBody)
	if !ok {
		return
	}
	r = r.WithContext(r.Context()) // a copy: the body and query are handed on rewritten
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	jsonCT := ct == "" || ct == "application/json" || ct == "application/x-www-form-urlencoded" // as readSessionBody
	if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 && trimmed[0] == '{' && jsonCT {
		var j webPDFLoginRequest
		if err := json.Unmarshal(trimmed, &j); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", "malformed JSON body: "+jsonReason(err))
			return
		}
		if j.CreateRefreshToken != nil {
			q := r.URL.Query()
			q.Set("refresh", strconv.FormatBool(bool(*j.CreateRefreshToken)))
			u := *r.URL
			u.RawQuery = q.Encode()
			r.URL = &u
		}
	}
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	s.sessionLogin(w, r)
}

// webpdfLogout is GET .../logout with the Bearer token: the session ends and its documents
// are deleted; its seat lingers.
func (s *Server) webpdfLogout(w http.ResponseWriter, r *http.Request, c *dialectCall) {
	s.logoutSession(w, r, c.Principal, false, sessionCookie)
}
