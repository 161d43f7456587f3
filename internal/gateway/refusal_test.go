package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/leasehold/leasehold/internal/domain"
)

// The license refusal of SPEC section 8: 403 license_unavailable with license_error,
// message and retry_after, Retry-After when known; a page for a browser.
func TestLicenseRefusalBody(t *testing.T) {
	g := &gateway{tenant: "acme"}
	ref := &refusal{status: 403, code: "license_unavailable", msg: `Access to "X" denied`, licenseErr: domain.CodeQuotaExceeded, retryAfter: 42}
	w := httptest.NewRecorder()
	g.refuse(w, httptest.NewRequest("GET", "/api/x", nil), ref, true)
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if w.Code != 403 || w.Header().Get("Retry-After") != "42" || body["error"] != "license_unavailable" ||
		body["license_error"] != "licenseQuotaExceeded" || body["retry_after"] != 42.0 || body["message"] != `Access to "X" denied` {
		t.Fatalf("%d %v %v", w.Code, w.Header(), body)
	}

	ref.retryAfter = 0
	w = httptest.NewRecorder()
	g.refuse(w, httptest.NewRequest("GET", "/api/x", nil), ref, true)
	if w.Header().Get("Retry-After") != "" || strings.Contains(w.Body.String(), "retry_after") {
		t.Fatalf("unknown wait: %v %s", w.Header(), w.Body)
	}

	r := httptest.NewRequest("GET", "/api/x", nil)
	r.Header.Set("Accept", "text/html")
	w = httptest.NewRecorder()
	g.refuse(w, r, ref, true)
	if w.Code != 403 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") || !strings.Contains(w.Body.String(), "denied") {
		t.Fatalf("browser: %d %v", w.Code, w.Header())
	}

	// No credential: 401 with the tenant's realm, or the login page for a browser.
	nocred := &refusal{status: http.StatusUnauthorized, code: "unauthorized", msg: "m", challenge: true, login: true}
	w = httptest.NewRecorder()
	g.refuse(w, httptest.NewRequest("POST", "/api/x", nil), nocred, true)
	if w.Code != 401 || w.Header().Get("WWW-Authenticate") != `Bearer realm="acme"` {
		t.Fatalf("api: %d %v", w.Code, w.Header())
	}
	w = httptest.NewRecorder()
	g.refuse(w, r, nocred, true)
	if w.Code != 302 || w.Header().Get("Location") != "/.leasehold/login?return_to=%2Fapi%2Fx" {
		t.Fatalf("browser: %d %v", w.Code, w.Header())
	}
}
