package gateway

import (
	"net/http"
	"strings"
)

// Identity is who an admitted request acts as; the gateway tells the upstream in
// X-Leasehold-* headers.
type Identity struct {
	Tenant, User, Session string
	Scopes                []string
	// License is the license id of the seat the route used ("" for public and session
	// routes).
	License string
}

// Identity headers set on every proxied request (and on a forward-auth answer).
const (
	HeaderTenant  = "X-Leasehold-Tenant"
	HeaderUser    = "X-Leasehold-User"
	HeaderSession = "X-Leasehold-Session"
	HeaderScopes  = "X-Leasehold-Scopes"
	HeaderLicense = "X-Leasehold-License"
)

// scrubInbound removes from a client's request every header the upstream must be able to
// trust as the gateway's: X-Leasehold-* (case-insensitive, with `_` read as `-`, since
// some servers fold one into the other), Forwarded and X-Forwarded-*.
func scrubInbound(h http.Header) {
	for name := range h {
		n := strings.ReplaceAll(strings.ToLower(name), "_", "-")
		if strings.HasPrefix(n, "x-leasehold-") || n == "forwarded" || strings.HasPrefix(n, "x-forwarded-") {
			delete(h, name)
		}
	}
}

// setIdentity writes id's headers (after scrubInbound, so none of them is the client's).
// The names are canonical already: assigned directly, they are not canonicalized again at
// every request.
func setIdentity(h http.Header, id Identity) {
	h[HeaderTenant] = []string{id.Tenant}
	if id.User != "" {
		h[HeaderUser] = []string{id.User}
	}
	if id.Session != "" {
		h[HeaderSession] = []string{id.Session}
	}
	if len(id.Scopes) > 0 {
		h[HeaderScopes] = []string{strings.Join(id.Scopes, " ")}
	}
	if id.License != "" {
		h[HeaderLicense] = []string{id.License}
	}
}

// leaseholdCookie reports whether a cookie is one of Leasehold's credentials, which never
// reach the upstream: lh_*, __Host-lh_*, and DocuWare's where the tenant mounts it.
func leaseholdCookie(name string, docuware bool) bool {
	if strings.HasPrefix(name, "lh_") || strings.HasPrefix(name, "__Host-lh_") {
		return true
	}
	return docuware && (name == ".DWPLATFORMAUTH" || name == "DWPLATFORMBROWSERID")
}

// stripCredentials removes what authenticated the request at the gateway before it is
// proxied: the Bearer token the gateway used (an Authorization it did not use, such as
// Basic on a public route, passes), and every Leasehold cookie (other cookies pass, in
// their order).
func stripCredentials(h http.Header, usedBearer, docuware bool) {
	if usedBearer {
		h.Del("Authorization")
	}
	lines := h.Values("Cookie")
	if len(lines) == 0 {
		return
	}
	var kept []string
	for _, line := range lines {
		for part := range strings.SplitSeq(line, ";") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			name, _, _ := strings.Cut(part, "=")
			if !leaseholdCookie(name, docuware) {
				kept = append(kept, part)
			}
		}
	}
	h.Del("Cookie")
	if len(kept) > 0 {
		h.Set("Cookie", strings.Join(kept, "; "))
	}
}
