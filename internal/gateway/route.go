// Package gateway puts Leasehold in front of an HTTP API (SPEC section 8): each gateway's
// listener admits or refuses every request by the tenant's sessions and licenses, and
// proxies what it admits. This file matches requests to routes.
package gateway

import (
	"errors"
	"net/url"
	"slices"
	"strings"

	"github.com/leasehold/leasehold/internal/domain"
)

// ReservedPrefix holds the gateway's own pages; it is never proxied.
const ReservedPrefix = "/.leasehold/"

// ErrUncleanPath refuses a path that could mean two things to the gateway and the upstream.
var ErrUncleanPath = errors.New("the path has a . or .. segment, an empty segment, a backslash or an encoded / or \\")

// CleanPath decodes a request's escaped path once and refuses what could be read two ways
// (a rule would then guard one path and the upstream serve another): `.` and `..`
// segments, `//`, `\`, and an encoded `/` or `\`. The result is what rules match and what
// is proxied.
func CleanPath(escaped string) (string, error) {
	if escaped == "" || escaped[0] != '/' {
		return "", ErrUncleanPath
	}
	lower := strings.ToLower(escaped)
	if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") || strings.Contains(escaped, `\`) {
		return "", ErrUncleanPath
	}
	p, err := url.PathUnescape(escaped)
	if err != nil {
		return "", ErrUncleanPath
	}
	if strings.Contains(p, `\`) || strings.Contains(p, "//") || strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", ErrUncleanPath
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "." || seg == ".." {
			return "", ErrUncleanPath
		}
	}
	return p, nil
}

// Matches reports whether a rule path covers path, by whole segments: `/health` covers
// `/health` and `/health/x`, not `/healthz`; `/api/` covers `/api/` and below (and `/api`).
func Matches(rule, path string) bool {
	if rule == "/" {
		return true
	}
	if strings.HasSuffix(rule, "/") {
		return path == strings.TrimSuffix(rule, "/") || strings.HasPrefix(path, rule)
	}
	return path == rule || strings.HasPrefix(path, rule+"/")
}

// Match finds the route of a request: the longest matching rule path wins; among the
// routes with that path, the first whose methods include the method (none: any). When the
// path matches but no route takes the method, allow lists the methods that would (→ 405);
// when no rule path matches, route and allow are both nil (→ 404).
func Match(routes []domain.Route, path, method string) (route *domain.Route, allow []string) {
	best := -1
	for i := range routes {
		r := &routes[i]
		if Matches(r.Path, path) && (best < 0 || len(r.Path) > len(routes[best].Path)) {
			best = i
		}
	}
	if best < 0 {
		return nil, nil
	}
	longest := routes[best].Path
	for i := range routes {
		r := &routes[i]
		if r.Path != longest {
			continue
		}
		if len(r.Methods) == 0 || slices.Contains(r.Methods, method) {
			return r, nil
		}
		for _, m := range r.Methods {
			if !slices.Contains(allow, m) {
				allow = append(allow, m)
			}
		}
	}
	return nil, allow
}

// ReturnTo is where a login may send the browser back to: a path on this gateway (it starts
// with `/`, its second character is neither `/` nor `\`, and it holds no `\` or control
// character), with its query kept; anything else is `/`. No open redirect.
func ReturnTo(v string) string {
	if v == "" || v[0] != '/' || len(v) > 2048 {
		return "/"
	}
	if len(v) > 1 && (v[1] == '/' || v[1] == '\\') {
		return "/"
	}
	if strings.ContainsFunc(v, func(r rune) bool { return r == '\\' || r < 0x20 || r == 0x7f }) {
		return "/"
	}
	return v
}
