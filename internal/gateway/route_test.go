package gateway

import (
	"net/http"
	"slices"
	"testing"

	"github.com/leasehold/leasehold/internal/domain"
)

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"/":                "/",
		"/a/b":             "/a/b",
		"/a%20b/c":         "/a b/c",
		"/health":          "/health",
		"/admin/":          "/admin/",
		"/%41pi":           "/Api",
		"/a/.hidden":       "/a/.hidden",
		"/a/..b":           "/a/..b",
		"/files/x%25y":     "/files/x%y",
		"/x/%2e%2ehidden/": "/x/..hidden/",
	} {
		if got, err := CleanPath(in); err != nil || got != want {
			t.Errorf("CleanPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{
		"", "x", "/a/../admin", "/a/./b", "/..", "/.", "/a//b", "//admin", `/a\b`, "/a%5cb", "/a%5Cb",
		"/a%2fb", "/a%2Fb", "/%2e%2e/admin", "/a/%2e/b", "/a%00b", "/a%0Ab", "/%zz", "/a/.",
	} {
		if got, err := CleanPath(bad); err == nil {
			t.Errorf("CleanPath(%q) = %q, want an error", bad, got)
		}
	}
}

func TestMatch(t *testing.T) {
	routes := []domain.Route{
		{Path: "/health", Access: domain.AccessPublic},
		{Path: "/admin/", Access: domain.AccessSeat, Item: "AppFeature-ABC"},
		{Path: "/", Methods: []string{"GET", "HEAD"}, Access: domain.AccessSession},
		{Path: "/", Access: domain.AccessSeat},
		{Path: "/reports", Methods: []string{"GET"}, Access: domain.AccessSession},
		{Path: "/reports", Methods: []string{"POST"}, Access: domain.AccessSeat},
	}
	for _, c := range []struct {
		path, method string
		want         int // index in routes, -1: none
		allow        []string
	}{
		{"/health", "GET", 0, nil},
		{"/health/x", "POST", 0, nil},
		{"/healthz", "GET", 2, nil}, // not /health: whole segments only
		{"/healthz", "POST", 3, nil},
		{"/admin/", "GET", 1, nil},
		{"/admin", "GET", 1, nil},
		{"/admin/users", "DELETE", 1, nil},
		{"/administrator", "GET", 2, nil},
		{"/", "HEAD", 2, nil},
		{"/x", "PUT", 3, nil},
		{"/reports", "GET", 4, nil},
		{"/reports/2026", "POST", 5, nil},
		{"/reports", "DELETE", -1, []string{"GET", "POST"}},
	} {
		r, allow := Match(routes, c.path, c.method)
		got := -1
		if r != nil {
			for i := range routes {
				if &routes[i] == r {
					got = i
				}
			}
		}
		if got != c.want || !slices.Equal(allow, c.allow) {
			t.Errorf("%s %s: route %d allow %v, want %d %v", c.method, c.path, got, allow, c.want, c.allow)
		}
	}
	if r, allow := Match(routes[:2], "/other", "GET"); r != nil || allow != nil {
		t.Errorf("no rule path matches: %v %v, want a 404", r, allow)
	}
}

func TestReturnTo(t *testing.T) {
	for in, want := range map[string]string{
		"/reports?q=1":           "/reports?q=1",
		"/":                      "/",
		"":                       "/",
		"//evil.example/":        "/",
		`/\evil.example`:         "/",
		"https://evil.example/":  "/",
		"evil":                   "/",
		"/a\\b":                  "/",
		"/a\nb":                  "/",
		"/a\tb":                  "/",
		"/.leasehold/whoami":     "/.leasehold/whoami",
		"/path/with//double?x=y": "/path/with//double?x=y",
	} {
		if got := ReturnTo(in); got != want {
			t.Errorf("ReturnTo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestScrubInbound(t *testing.T) {
	h := http.Header{}
	for _, name := range []string{"X-Leasehold-User", "x-leasehold-tenant", "X_Leasehold_Scopes", "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Keep", "Authorization"} {
		h[name] = []string{"client-sent"}
	}
	scrubInbound(h)
	if len(h) != 2 || h.Get("X-Keep") == "" || h.Get("Authorization") == "" {
		t.Fatalf("after scrub: %v", h)
	}
	setIdentity(h, Identity{Tenant: "acme", User: "alice", Session: "s1", Scopes: []string{"all", "view"}, License: "lic-1"})
	for k, v := range map[string]string{HeaderTenant: "acme", HeaderUser: "alice", HeaderSession: "s1", HeaderScopes: "all view", HeaderLicense: "lic-1"} {
		if h.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
}

func TestStripCredentials(t *testing.T) {
	h := http.Header{}
	h.Set("Authorization", "Bearer tok")
	h.Add("Cookie", "a=1; lh_gw_reports=secret; __Host-lh_gw_x=s2")
	h.Add("Cookie", "lh_session=s3; .DWPLATFORMAUTH=s4; DWPLATFORMBROWSERID=d; b=2")
	stripCredentials(h, true, true)
	if h.Get("Authorization") != "" || h.Get("Cookie") != "a=1; b=2" {
		t.Fatalf("after strip: %v", h)
	}
	// A Basic credential the gateway did not use passes, and DocuWare's cookies are only
	// Leasehold's where the tenant mounts the dialect.
	h = http.Header{}
	h.Set("Authorization", "Basic dTpw")
	h.Set("Cookie", ".DWPLATFORMAUTH=theirs; lh_device=d")
	stripCredentials(h, false, false)
	if h.Get("Authorization") != "Basic dTpw" || h.Get("Cookie") != ".DWPLATFORMAUTH=theirs" {
		t.Fatalf("after strip: %v", h)
	}
	h = http.Header{"Cookie": {"lh_gw_a=1"}}
	stripCredentials(h, false, false)
	if _, ok := h["Cookie"]; ok {
		t.Fatalf("an emptied Cookie header is kept: %v", h)
	}
}
