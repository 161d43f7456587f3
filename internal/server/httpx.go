package server

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// Bounds on what a client may send. Headers are bounded by http.Server.MaxHeaderBytes.
const (
	maxFormBody = 64 << 10 // forms and JSON bodies of every route but document upload
)

// apiError is the one JSON error shape of the non-OAuth routes.
type apiError struct {
	Error   string `json:"error"`
	Message string `json:"message,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, apiError{Error: code, Message: message})
}

// oauthError is RFC 6749 §5.2.
type oauthError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
	LicenseError     string `json:"license_error,omitempty"`
}

func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="leasehold"`)
	}
	writeJSON(w, status, oauthError{Error: code, ErrorDescription: description})
}

// readBody reads a bounded request body; too large a body is a 413.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	if r.Body == nil {
		return nil, true
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "request_too_large", "request body is too large")
		} else {
			writeError(w, http.StatusBadRequest, "invalid_request", "request body could not be read")
		}
		return nil, false
	}
	return b, true
}

// parseForm reads an application/x-www-form-urlencoded body (bounded) merged over the
// query string, the way OAuth2 endpoints take their parameters.
func parseForm(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	form := url.Values{}
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if ct == "application/x-www-form-urlencoded" {
			body, ok := readBody(w, r, maxFormBody)
			if !ok {
				return nil, false
			}
			parsed, err := url.ParseQuery(string(body))
			if err != nil {
				writeError(w, http.StatusBadRequest, "invalid_request", "malformed form body")
				return nil, false
			}
			form = parsed
		}
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "malformed query string")
		return nil, false
	}
	for k, vs := range q {
		if _, inBody := form[k]; !inBody {
			form[k] = vs
		}
	}
	return form, true
}

// bearerToken returns the token of an `Authorization: Bearer` header ("" when none).
func bearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}
