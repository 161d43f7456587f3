package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestOpenAPIDescribesRealRoutes: every path of /openapi.json is a route the server has
// (an answer other than "no such route"), on a tenant that mounts every dialect; and every
// route the server registers (Server.Routes) is documented, under its method.
func TestOpenAPIDescribesRealRoutes(t *testing.T) {
	cfg := strings.Replace(coreConfig, "    default: true\n", "    default: true\n    dialects: [docuware, webpdf, therefore, jim2]\n", 1)
	ts := start(t, cfg)
	r := get(t, ts.URL+"/openapi.json", "")
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal([]byte(r.Body), &doc); err != nil || doc.OpenAPI != "3.1.0" || len(doc.Paths) < 40 {
		t.Fatalf("openapi.json: %v %.200s", err, r.Body)
	}
	for _, route := range ts.App.Server.Routes() {
		method, path, ok := strings.Cut(route, " ")
		if !ok {
			method, path = "", route
		}
		ops := doc.Paths[path]
		if len(ops) == 0 || method != "" && ops[strings.ToLower(method)] == nil {
			t.Errorf("%s is served but not documented in openapi.json", route)
		}
	}
	fill := strings.NewReplacer("{tenant}", "acme", "{kind}", "users", "{id}", "alice", "{name}", "x", "{hw}", "x", "{token}", "x")
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "delete" && path == "/admin/v1/tenants/{tenant}" {
				method = "get" // deleting the tenant would take the dialect routes checked after it
			}
			u := ts.URL + fill.Replace(path)
			resp := do(t, strings.ToUpper(method), u, map[string]string{"Authorization": "Bearer test-admin"}, "")
			if resp.Status == http.StatusNotFound && strings.Contains(resp.Body, "no such route") ||
				resp.Status == http.StatusMethodNotAllowed && (!strings.Contains(resp.Body, "{") || strings.Contains(resp.Body, "is not served at")) {
				t.Errorf("%s %s is documented but not served: %d %s", method, path, resp.Status, resp.Body)
			}
		}
	}
}

// TestWrongMethod: a path served under other methods answers 405 with Allow and a JSON
// body naming them, also under the /t/{tenant}/ prefix; a path served by no route, and an
// /authz/ format that does not exist, stay 404.
func TestWrongMethod(t *testing.T) {
	ts := start(t, coreConfig)
	for _, c := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/oauth2/token", http.StatusMethodNotAllowed, "POST"},
		{"PUT", "/t/acme/oauth2/token", http.StatusMethodNotAllowed, "POST"},
		{"POST", "/healthz", http.StatusMethodNotAllowed, "GET"},
		{"PATCH", "/session/documents/x", http.StatusMethodNotAllowed, "GET, PUT, DELETE"},
		{"GET", "/no/such/route", http.StatusNotFound, ""},
		{"GET", "/authz/.xml", http.StatusNotFound, ""},
	} {
		r := do(t, c.method, ts.URL+c.path, nil, "")
		if r.Status != c.status || r.Header.Get("Allow") != c.allow || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: %d Allow %q %s; want %d Allow %q", c.method, c.path, r.Status, r.Header.Get("Allow"), r.Body, c.status, c.allow)
		}
	}
}
