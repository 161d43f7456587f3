package config

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/Masterminds/semver/v3"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/secret"
)

// ReservedTenantNames are route words that cannot name a tenant (compared case-insensitively):
// the jim2 dialect mounts /{tenant}/token at the root, beside these routes.
var ReservedTenantNames = []string{
	"oauth2", "session", "authz", "admin", "ui", "t", "entitlements", "healthz", "readyz",
	"metrics", "openapi.json", "well-known", "DocuWare", "webPDF", "OAuth",
}

// ReservedItemNames cannot name a product or an item: in /authz an item is a bare query key
// beside these parameters, and in a lease token `<item>: true` sits beside these claims.
var ReservedItemNames = []string{
	// /authz parameters
	"doConsume", "consumptionMode", "consumeDuration", "consumeCount", "hw", "process",
	"version", "leaseId", "ownerOrganizationId", "ownerUserId", "entitlementId", "licenseId",
	"release", "queue", "tenant",
	// lease token claims
	"exp", "iss", "sub", "jti", "iat", "ver", "lic", "ibb", "ibe", "rfr", "licenseProperties",
	"aud", "nbf", "overage",
}

// Dialects are the seed request shapes a tenant can mount (README, "If you know …").
var Dialects = []string{"docuware", "webpdf", "therefore", "jim2"}

// GrantTypes are the OAuth2 grants a client can be allowed.
var GrantTypes = []string{"authorization_code", "client_credentials", "refresh_token"}

// Anchors are the request attributes a license model's seat key can be made of.
var Anchors = []string{domain.AnchorUser, domain.AnchorClient, domain.AnchorHW, domain.AnchorProcess, domain.AnchorVersion}

// SigningAlgorithms are the accepted signing.algorithm values.
var SigningAlgorithms = []string{"RS256", "ES256", "EdDSA"}

var tenantNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Bounds: a configuration is read at start and kept in memory by every process.
const (
	maxTenants       = 1000
	maxObjects       = 100000 // per kind and tenant
	maxList          = 1000   // items, scopes, anchors, redirect URIs, ranges…
	maxNameLen       = 200
	maxURLLen        = 2048
	maxTokenLen      = 4096
	maxProperties    = 100
	maxPropertyValue = 1000
	maxSeats         = 1_000_000_000
	maxOverage       = 100
	maxSessions      = 1_000_000
)

type validator struct {
	errs  *errorList
	geoip bool
}

func (v *validator) add(path, format string, args ...any) { v.errs.add(path, format, args...) }

func (v *validator) top(c *Config, fc fileConfig, adminFromEnv bool) {
	if host, port, err := net.SplitHostPort(c.Listen); err != nil || !validPort(port) || strings.ContainsAny(host, " /") {
		v.add("listen", "must be host:port, e.g. 127.0.0.1:8080")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		v.add("tls", "needs both cert_file and key_file")
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		v.add("log_format", "must be json or text, got %q", c.LogFormat)
	}
	if c.AdminListen != "" {
		if host, port, err := net.SplitHostPort(c.AdminListen); err != nil || !validPort(port) || strings.ContainsAny(host, " /") {
			v.add("admin_listen", "must be host:port, e.g. 127.0.0.1:9091")
		} else if c.AdminListen == c.Listen && port != "0" {
			v.add("admin_listen", "must differ from listen (it is a listener of its own)")
		}
	}
	if fc.PublicURL != "" {
		if reason := checkURL(fc.PublicURL); reason != "" {
			v.add("public_url", "%s", reason)
		} else if u, _ := url.Parse(fc.PublicURL); u.RawQuery != "" || u.ForceQuery {
			v.add("public_url", "must not have a query")
		}
	}
	if len(fc.TrustedProxies) > maxList {
		v.add("trusted_proxies", "more than %d entries", maxList)
	} else {
		for i, s := range fc.TrustedProxies {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				v.add(fmt.Sprintf("trusted_proxies[%d]", i), "%q is not a CIDR such as 10.0.0.0/8", s)
				continue
			}
			c.TrustedProxies = append(c.TrustedProxies, p.Masked())
		}
	}
	v.store(c.Store)
	if !slices.Contains(SigningAlgorithms, c.Signing.Algorithm) {
		v.add("signing.algorithm", "unknown algorithm %q (use %s)", c.Signing.Algorithm, strings.Join(SigningAlgorithms, ", "))
	}
	tokenPath := "admin_token"
	if adminFromEnv {
		tokenPath = AdminTokenEnv
	}
	switch {
	case len(c.AdminToken) > maxTokenLen:
		v.add(tokenPath, "longer than %d bytes", maxTokenLen)
	case strings.ContainsFunc(c.AdminToken, func(r rune) bool { return r <= ' ' || r >= 0x7f }):
		// It travels as a Bearer token: printable ASCII only.
		v.add(tokenPath, "must be printable ASCII without spaces")
	}
	switch {
	case len(c.MetricsToken) > maxTokenLen:
		v.add("metrics_token", "longer than %d bytes", maxTokenLen)
	case strings.ContainsFunc(c.MetricsToken, func(r rune) bool { return r <= ' ' || r >= 0x7f }):
		v.add("metrics_token", "must be printable ASCII without spaces")
	}
	if c.AdminTokenHash != "" {
		if err := secret.ValidHash(c.AdminTokenHash); err != nil {
			v.add("admin_token_hash", "%v (make one with `leasehold hash-password`)", err)
		}
	}
	v.filePath("documents", c.Documents)
	v.filePath("geoip_database", c.GeoIPDatabase)
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535 && s == strconv.Itoa(n)
}

func (v *validator) store(s string) {
	const hint = "must be sqlite://PATH or postgres://… (postgresql://…)"
	switch {
	case strings.HasPrefix(s, "sqlite://"):
		path, _, _ := strings.Cut(strings.TrimPrefix(s, "sqlite://"), "?")
		if path == "" {
			v.add("store", "sqlite:// needs a file path, e.g. sqlite://./leasehold-data/leasehold.db")
		}
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		if _, err := url.Parse(s); err != nil {
			// Do not echo the string: it may hold a password.
			v.add("store", "not a valid postgres:// URL")
		}
	default:
		v.add("store", "%s", hint)
	}
}

func (v *validator) filePath(path, s string) {
	if strings.ContainsRune(s, 0) {
		v.add(path, "must not contain NUL")
	} else if len(s) > 4096 {
		v.add(path, "longer than 4096 bytes")
	}
}

// tenants validates the tenants section: each tenant, then what involves several.
func (v *validator) tenants(ts []Tenant) {
	names := make([]string, len(ts))
	for i := range ts {
		names[i] = ts[i].Spec.Name
	}
	tl := labels(names)
	seen := map[string]bool{}
	defaultTenant := ""
	for i := range ts {
		path := "tenants[" + tl[i] + "]"
		t := &ts[i]
		if seen[t.Spec.Name] && t.Spec.Name != "" {
			v.add(path+".name", "duplicate tenant %q", t.Spec.Name)
		}
		seen[t.Spec.Name] = true
		if t.Spec.Default {
			if defaultTenant != "" {
				v.add(path+".default", "only one tenant can be the default (%q already is)", defaultTenant)
			} else {
				defaultTenant = t.Spec.Name
			}
		}
		v.tenant(path, t)
	}
	// Every process serves every tenant's gateways: two cannot share an address.
	listens := map[string]string{}
	for i := range ts {
		for _, g := range ts[i].Gateways {
			if other, ok := listens[g.Spec.Listen]; ok && other != ts[i].Spec.Name && g.Spec.Listen != "" {
				v.add("tenants["+tl[i]+"].gateways["+g.Spec.Name+"].listen", "%s is already a gateway's of tenant %s", g.Spec.Listen, other)
			}
			listens[g.Spec.Listen] = ts[i].Spec.Name
		}
	}
}

// ValidateTenant checks one tenant and its objects as Parse does (geoip says whether a
// GeoIP database is configured). The admin API can run it on a tenant with a changed object.
func ValidateTenant(t *Tenant, geoip bool) error {
	var errs errorList
	v := validator{errs: &errs, geoip: geoip}
	label := t.Spec.Name
	if !plainLabel(label) {
		label = strconv.Quote(label)
	}
	v.tenant("tenants["+label+"]", t)
	return errs.err()
}

type tenantIndex struct {
	orgs, users, products, items, models map[string]bool
}

func (v *validator) tenant(path string, t *Tenant) {
	name := t.Spec.Name
	switch {
	case name == "":
		v.add(path+".name", "required")
	case !tenantNameRE.MatchString(name):
		v.add(path+".name", "%q must match [a-z0-9][a-z0-9-]{0,62}", name)
	case slices.ContainsFunc(ReservedTenantNames, func(r string) bool { return strings.EqualFold(r, name) }):
		v.add(path+".name", "%q is a reserved route word", name)
	}
	v.stringSet(path+".dialects", t.Spec.Dialects, func(p, d string) {
		if !slices.Contains(Dialects, d) {
			v.add(p, "unknown dialect %q (use %s)", d, strings.Join(Dialects, ", "))
		}
	})

	idx := tenantIndex{
		orgs: map[string]bool{}, users: map[string]bool{}, products: map[string]bool{},
		items: map[string]bool{}, models: map[string]bool{},
	}
	for _, o := range t.Organizations {
		idx.orgs[o.Spec.ID] = true
	}
	for _, u := range t.Users {
		idx.users[u.Spec.Username] = true
	}
	for _, p := range t.Products {
		idx.products[p.Spec.Name] = true
		idx.items[p.Spec.Name] = true
		for _, it := range p.Spec.Items {
			idx.items[it] = true
		}
	}
	for _, m := range t.Models {
		idx.models[m.Spec.Name] = true
	}

	v.session(path+".session", &t.Spec.Session, &idx)
	v.trustedIssuers(path+".trusted_issuers", t.Spec.TrustedIssuers)

	eachObject(v, path, "organizations", "organization", t.Organizations,
		func(o *domain.Organization) (string, string) { return "id", o.ID },
		func(p string, o *domain.Organization) { v.name(p+".name", o.Name, false) })
	eachObject(v, path, "users", "user", t.Users,
		func(u *domain.User) (string, string) { return "username", u.Username },
		func(p string, u *domain.User) { v.user(p, u, &idx) })
	eachObject(v, path, "clients", "client", t.Clients,
		func(c *domain.Client) (string, string) { return "client_id", c.ClientID },
		func(p string, c *domain.Client) { v.client(p, c, &idx) })
	eachObject(v, path, "products", "product", t.Products,
		func(p *domain.Product) (string, string) { return "name", p.Name },
		func(p string, pr *domain.Product) {
			v.itemName(p+".name", pr.Name)
			v.stringSet(p+".items", pr.Items, v.itemName)
		})
	eachObject(v, path, "models", "model", t.Models,
		func(m *domain.LicenseModel) (string, string) { return "name", m.Name },
		func(p string, m *domain.LicenseModel) { v.model(p, m) })
	eachObject(v, path, "licenses", "license", t.Licenses,
		func(l *domain.License) (string, string) { return "id", l.ID },
		func(p string, l *domain.License) { v.license(p, l, &idx) })

	licensed := map[string]bool{}
	for _, l := range t.Licenses {
		if l.Spec.Product != "" {
			licensed[l.Spec.Product] = true
			for _, p := range t.Products {
				if p.Spec.Name == l.Spec.Product {
					for _, it := range p.Spec.Items {
						licensed[it] = true
					}
				}
			}
		}
		for _, it := range l.Spec.Items {
			licensed[it] = true
		}
	}
	listens := map[string]string{}
	eachObject(v, path, "gateways", "gateway", t.Gateways,
		func(g *domain.Gateway) (string, string) { return "name", g.Name },
		func(p string, g *domain.Gateway) {
			v.gateway(p, g, licensed)
			if other, ok := listens[g.Listen]; ok && g.Listen != "" {
				v.add(p+".listen", "%s is already gateway %s's", g.Listen, other)
			}
			listens[g.Listen] = g.Name
		})
	eachObject(v, path, "webhooks", "webhook", t.Webhooks,
		func(w *domain.Webhook) (string, string) { return "id", w.ID },
		func(p string, w *domain.Webhook) { v.webhook(p, w) })
}

// gatewayListens refuses a gateway on the server's own address: one of the two could never
// listen.
func (v *validator) gatewayListens(listen string, ts []Tenant) {
	names := make([]string, len(ts))
	for i := range ts {
		names[i] = ts[i].Spec.Name
	}
	tl := labels(names)
	for i := range ts {
		for _, g := range ts[i].Gateways {
			if g.Spec.Listen != "" && g.Spec.Listen == listen {
				v.add("tenants["+tl[i]+"].gateways["+g.Spec.Name+"].listen", "%s is the server's own listen address", listen)
			}
		}
	}
}

var gatewayNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// httpMethods are the methods a gateway route may name.
var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}

// gateway checks a gateway (SPEC section 8). licensed holds the items some license of the
// tenant covers: a seat rule's item must be one, or no request could ever be admitted.
func (v *validator) gateway(path string, g *domain.Gateway, licensed map[string]bool) {
	if g.Name != "" && !gatewayNameRE.MatchString(g.Name) {
		v.add(path+".name", "%q must match [a-z0-9][a-z0-9-]{0,62} (metrics and cookies carry it)", g.Name)
	}
	if host, port, err := net.SplitHostPort(g.Listen); err != nil || !validPort(port) || port == "0" || strings.ContainsAny(host, " /") {
		v.add(path+".listen", "must be host:port, e.g. 127.0.0.1:9090")
	}
	if g.PublicURL != "" {
		if reason := checkURL(g.PublicURL); reason != "" {
			v.add(path+".public_url", "%s", reason)
		} else if u, _ := url.Parse(g.PublicURL); (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery {
			v.add(path+".public_url", "must be an origin (scheme, host and port), without path or query")
		}
	}
	if g.Upstream != "" {
		if reason := checkURL(g.Upstream); reason != "" {
			v.add(path+".upstream", "%s", reason)
		} else if u, _ := url.Parse(g.Upstream); u.RawQuery != "" || u.ForceQuery {
			v.add(path+".upstream", "must not have a query")
		}
	}
	if g.Timeout <= 0 {
		v.add(path+".timeout", "must be more than 0")
	}
	if (g.TLS.CertFile == "") != (g.TLS.KeyFile == "") {
		v.add(path+".tls", "needs both cert_file and key_file")
	}
	switch {
	case len(g.Routes) == 0:
		v.add(path+".routes", "required: at least one route")
	case len(g.Routes) > maxList:
		v.add(path+".routes", "more than %d entries", maxList)
	}
	for i := range g.Routes {
		r := &g.Routes[i]
		p := fmt.Sprintf("%s.routes[%d]", path, i)
		switch {
		case r.Path == "" || r.Path[0] != '/':
			v.add(p+".path", "%q must start with /", r.Path)
		case len(r.Path) > maxURLLen:
			v.add(p+".path", "longer than %d bytes", maxURLLen)
		case strings.HasPrefix(r.Path+"/", "/.leasehold/"):
			v.add(p+".path", "%q is under /.leasehold/, the gateway's own pages", r.Path)
		default:
			if c, err := cleanRulePath(r.Path); err != nil || c != r.Path {
				v.add(p+".path", "%q is not a clean path (no . or .. segment, //, \\, %%-escape or control character)", r.Path)
			}
		}
		v.stringSet(p+".methods", r.Methods, func(mp, m string) {
			if !slices.Contains(httpMethods, m) {
				v.add(mp, "unknown method %q (use %s)", m, strings.Join(httpMethods, ", "))
			}
		})
		switch r.Access {
		case domain.AccessPublic, domain.AccessSession:
			if r.Item != "" {
				v.add(p+".item", "only a seat route takes an item")
			}
		case domain.AccessSeat:
			if r.Item != "" && !licensed[r.Item] {
				v.add(p+".item", "%q is not an item any license of the tenant covers", r.Item)
			}
		case "":
			v.add(p+".access", "required: public, session or seat")
		default:
			v.add(p+".access", "unknown access %q (use public, session or seat)", r.Access)
		}
		if r.Access == domain.AccessPublic && len(r.Scopes) > 0 {
			v.add(p+".scopes", "a public route checks no scopes")
		}
		v.stringSet(p+".scopes", r.Scopes, v.scope)
	}
}

// cleanRulePath is what a request path must be for a rule to guard it: no dot segments,
// empty segments (but a final /), backslashes, escapes or control characters.
func cleanRulePath(p string) (string, error) {
	if strings.ContainsAny(p, "\\%?#") || strings.ContainsFunc(p, unicode.IsControl) {
		return "", fmt.Errorf("unclean")
	}
	inner := strings.TrimSuffix(p[1:], "/")
	if p == "/" {
		return p, nil
	}
	for _, seg := range strings.Split(inner, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("unclean")
		}
	}
	return p, nil
}

// eachObject checks the id of every object of a list (present, a valid name, unique) and
// then the object itself.
func eachObject[T any](v *validator, tenantPath, key, what string, list []Entry[T], id func(*T) (string, string), check func(string, *T)) {
	ids := make([]string, len(list))
	for i := range list {
		_, ids[i] = id(&list[i].Spec)
	}
	ls := labels(ids)
	seen := make(map[string]bool, len(list))
	for i := range list {
		path := fmt.Sprintf("%s.%s[%s]", tenantPath, key, ls[i])
		field, value := id(&list[i].Spec)
		v.name(path+"."+field, value, true)
		if value != "" && seen[value] {
			v.add(path+"."+field, "duplicate %s %q", what, value)
		}
		seen[value] = true
		check(path, &list[i].Spec)
	}
}

// name checks an identifier or a display name.
func (v *validator) name(path, s string, required bool) {
	switch {
	case s == "":
		if required {
			v.add(path, "required")
		}
	case len(s) > maxNameLen:
		v.add(path, "longer than %d bytes", maxNameLen)
	case !utf8.ValidString(s):
		v.add(path, "not valid UTF-8")
	case strings.ContainsFunc(s, unicode.IsControl):
		v.add(path, "must not contain control characters")
	case strings.TrimSpace(s) != s:
		v.add(path, "must not begin or end with spaces")
	}
}

// itemName checks a product or item name: it travels as a bare /authz query key and as a
// lease token claim name.
func (v *validator) itemName(path, s string) {
	n := len(v.errs.errs)
	v.name(path, s, true)
	if len(v.errs.errs) != n || s == "" {
		return
	}
	if strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || strings.ContainsRune("&=;#?%+", r) }) {
		v.add(path, "%q: an item name cannot contain spaces or any of & = ; # ? %% +", s)
	} else if slices.Contains(ReservedItemNames, s) {
		v.add(path, "%q is reserved (an /authz parameter or a lease token claim)", s)
	}
}

// stringSet checks a list of strings: bounded, no duplicates, each through check.
func (v *validator) stringSet(path string, list []string, check func(path, s string)) {
	v.stringSetN(path, list, maxList, check)
}

func (v *validator) stringSetN(path string, list []string, limit int, check func(path, s string)) {
	if len(list) > limit {
		v.add(path, "more than %d entries", limit)
		return
	}
	seen := make(map[string]bool, len(list))
	for i, s := range list {
		p := fmt.Sprintf("%s[%d]", path, i)
		if seen[s] {
			v.add(p, "duplicate %q", s)
			continue
		}
		seen[s] = true
		if check != nil {
			check(p, s)
		}
	}
}

func (v *validator) scope(path, s string) {
	// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
	switch {
	case s == "":
		v.add(path, "empty scope")
	case len(s) > maxNameLen:
		v.add(path, "longer than %d bytes", maxNameLen)
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x21 || r > 0x7e || r == '"' || r == '\\' }):
		v.add(path, "%q is not a valid scope (printable ASCII without spaces, quotes or backslashes)", s)
	}
}

func (v *validator) session(path string, s *domain.SessionPolicy, idx *tenantIndex) {
	if s.Item != "" && !idx.items[s.Item] {
		v.add(path+".item", "unknown item %q (not a product nor a product's item)", s.Item)
	}
	if s.AccessTokenTTL <= 0 {
		v.add(path+".access_token_ttl", "must be more than 0")
	}
	if s.RefreshTokenTTL <= 0 {
		v.add(path+".refresh_token_ttl", "must be more than 0")
	}
	v.durations(path, map[string]domain.Duration{"access_token_ttl": s.AccessTokenTTL, "refresh_token_ttl": s.RefreshTokenTTL,
		"idle_timeout": s.IdleTimeout, "max_lifetime": s.MaxLifetime, "refresh_grace": s.RefreshGrace, "cookie_max_age": s.CookieMaxAge})
	if s.MaxSessionsPerUser < 1 || s.MaxSessionsPerUser > maxSessions {
		v.add(path+".max_sessions_per_user", "must be in 1..%d", maxSessions)
	}
	v.stringSet(path+".free_scopes", s.FreeScopes, v.scope)
}

// durations refuses a negative duration. The decoder refuses a negative value, but a bare
// number of seconds too large for a time.Duration (over 292 years, e.g. `linger: 1e10`)
// wraps to one on conversion; a wrapped value would make a lease, linger or token end
// before it began.
func (v *validator) durations(path string, ds map[string]domain.Duration) {
	for _, k := range sortedKeys(ds) {
		if ds[k] < 0 {
			v.add(path+"."+k, "out of range (at most 292 years)")
		}
	}
}

func (v *validator) trustedIssuers(path string, list []domain.TrustedIssuer) {
	if len(list) > maxList {
		v.add(path, "more than %d entries", maxList)
		return
	}
	seen := map[string]bool{}
	for i, ti := range list {
		p := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case ti.Issuer == "":
			v.add(p+".issuer", "required")
		case len(ti.Issuer) > maxURLLen:
			v.add(p+".issuer", "longer than %d bytes", maxURLLen)
		case seen[ti.Issuer]:
			v.add(p+".issuer", "duplicate issuer %q", ti.Issuer)
		}
		seen[ti.Issuer] = true
		switch {
		case ti.JWKSURI == "" && ti.JWKSFile == "":
			v.add(p, "needs jwks_uri or jwks_file")
		case ti.JWKSURI != "" && ti.JWKSFile != "":
			v.add(p+".jwks_file", "cannot be given with jwks_uri")
		case ti.JWKSURI != "":
			if reason := checkURL(ti.JWKSURI); reason != "" {
				v.add(p+".jwks_uri", "%s", reason)
			}
		default:
			v.filePath(p+".jwks_file", ti.JWKSFile)
		}
		if len(ti.Audience) > maxURLLen {
			v.add(p+".audience", "longer than %d bytes", maxURLLen)
		}
		v.name(p+".user_claim", ti.UserClaim, false)
	}
}

func (v *validator) secret(path, plain, plainKey, hash, hashKey string) {
	if plain != "" && hash != "" {
		v.add(path+"."+plainKey, "cannot be given with %s", hashKey)
		return
	}
	if len(plain) > secret.MaxSecretLen {
		v.add(path+"."+plainKey, "longer than %d bytes", secret.MaxSecretLen)
	}
	if hash != "" {
		if err := secret.ValidHash(hash); err != nil {
			v.add(path+"."+hashKey, "%v", err)
		}
	}
}

func (v *validator) user(path string, u *domain.User, idx *tenantIndex) {
	v.secret(path, u.Password, "password", u.PasswordHash, "password_hash")
	if u.Organization != "" && !idx.orgs[u.Organization] {
		v.add(path+".organization", "unknown organization %q", u.Organization)
	}
}

func (v *validator) client(path string, c *domain.Client, idx *tenantIndex) {
	v.secret(path, c.ClientSecret, "client_secret", c.ClientSecretHash, "client_secret_hash")
	if c.User != "" && !idx.users[c.User] {
		v.add(path+".user", "unknown user %q", c.User)
	}
	if c.Organization != "" && !idx.orgs[c.Organization] {
		v.add(path+".organization", "unknown organization %q", c.Organization)
	}
	v.stringSet(path+".redirect_uris", c.RedirectURIs, func(p, s string) {
		if reason := checkURL(s); reason != "" {
			v.add(p, "%s", reason)
		}
	})
	v.stringSet(path+".grant_types", c.GrantTypes, func(p, g string) {
		if !slices.Contains(GrantTypes, g) {
			v.add(p, "unknown grant type %q (use %s)", g, strings.Join(GrantTypes, ", "))
		}
	})
	if c.Public() && slices.Contains(c.GrantTypes, "client_credentials") {
		v.add(path+".grant_types", "client_credentials needs a client_secret or client_secret_hash (this client is public)")
	}
	if slices.Contains(c.GrantTypes, "authorization_code") && len(c.RedirectURIs) == 0 {
		v.add(path+".redirect_uris", "the authorization_code grant needs at least one")
	}
	v.stringSet(path+".scopes", c.Scopes, v.scope)
}

func (v *validator) model(path string, m *domain.LicenseModel) {
	v.stringSet(path+".anchors", m.Anchors, func(p, a string) {
		if !slices.Contains(Anchors, a) {
			v.add(p, "unknown anchor %q (use %s)", a, strings.Join(Anchors, ", "))
		}
	})
	if m.SessionsPerSeat < 1 || m.SessionsPerSeat > maxSessions {
		v.add(path+".sessions_per_seat", "must be in 1..%d", maxSessions)
	}
	if !(m.RefreshRatio > 0 && m.RefreshRatio <= 1) {
		v.add(path+".refresh_ratio", "must be in (0, 1]")
	}
	if !(m.Overage >= 1 && m.Overage <= maxOverage) || math.IsNaN(m.Overage) {
		v.add(path+".overage", "must be at least 1 (1.25 allows 25 %% over seats) and at most %d", maxOverage)
	}
	if m.OnlineLease <= 0 {
		v.add(path+".online_lease", "must be more than 0")
	}
	v.durations(path, map[string]domain.Duration{"chain_grace": m.ChainGrace, "online_lease": m.OnlineLease,
		"offline_lease": m.OfflineLease, "linger": m.Linger, "restart_grace": m.RestartGrace, "max_use_time": m.MaxUseTime})
	if m.MaxUseCount < 0 {
		v.add(path+".max_use_count", "must not be negative (0 = no limit)")
	}
	if m.ConsumptionLimit < 0 {
		v.add(path+".consumption_limit", "must not be negative (0 = no limit)")
	}
	if m.Version != "" {
		if len(m.Version) > maxNameLen {
			v.add(path+".version", "longer than %d bytes", maxNameLen)
		} else if _, err := semver.NewConstraint(m.Version); err != nil {
			v.add(path+".version", "%q is not a semver constraint such as \">=1.0.0 <2.0.0\": %v", m.Version, err)
		}
	}
	v.stringSet(path+".ip_ranges", m.IPRanges, func(p, s string) {
		if _, err := netip.ParsePrefix(s); err != nil {
			v.add(p, "%q is not a CIDR such as 10.0.0.0/8", s)
		}
	})
	v.stringSet(path+".countries", m.Countries, func(p, s string) {
		if len(s) != 2 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z' {
			v.add(p, "%q is not a two-letter country code such as US", s)
		}
	})
	if len(m.Countries) > 0 && !v.geoip {
		v.add(path+".countries", "needs geoip_database")
	}
}

func (v *validator) license(path string, l *domain.License, idx *tenantIndex) {
	if l.Product == "" && len(l.Items) == 0 {
		v.add(path+".product", "a license needs a product or items")
	}
	if l.Product != "" && !idx.products[l.Product] {
		v.add(path+".product", "unknown product %q", l.Product)
	}
	v.stringSet(path+".items", l.Items, func(p, it string) {
		if !idx.items[it] {
			v.add(p, "unknown item %q (not a product nor a product's item)", it)
		}
	})
	switch {
	case l.Model == "":
		v.add(path+".model", "required")
	case !idx.models[l.Model]:
		v.add(path+".model", "unknown model %q", l.Model)
	}
	if l.Seats < 0 || l.Seats > maxSeats {
		v.add(path+".seats", "must be in 0..%d", maxSeats)
	}
	switch o := l.Owner; {
	case o.Organization == "" && o.User == "":
		v.add(path+".owner", "needs organization or user")
	case o.Organization != "" && o.User != "":
		v.add(path+".owner", "organization and user are exclusive")
	case o.Organization != "" && !idx.orgs[o.Organization]:
		v.add(path+".owner.organization", "unknown organization %q", o.Organization)
	case o.User != "" && !idx.users[o.User]:
		v.add(path+".owner.user", "unknown user %q", o.User)
	}
	v.name(path+".entitlement", l.Entitlement, false)
	if l.ValidFrom != nil && l.ValidUntil != nil && !l.ValidUntil.After(*l.ValidFrom) {
		v.add(path+".valid_until", "must be after valid_from")
	}
	if len(l.Properties) > maxProperties {
		v.add(path+".properties", "more than %d entries", maxProperties)
	} else {
		for _, k := range sortedKeys(l.Properties) {
			v.name(join(path+".properties", k), k, true)
			if val := l.Properties[k]; len(val) > maxPropertyValue {
				v.add(join(path+".properties", k), "longer than %d bytes", maxPropertyValue)
			} else if !utf8.ValidString(val) {
				v.add(join(path+".properties", k), "not valid UTF-8")
			}
		}
	}
	isUser := func(p, u string) {
		if !idx.users[u] {
			v.add(p, "unknown user %q", u)
		}
	}
	// Named seats go with users, so they are bounded like users.
	v.stringSetN(path+".assignments", l.Assignments, maxObjects, isUser)
	v.stringSetN(path+".reservations", l.Reservations, maxObjects, isUser)
}

// checkURL checks an absolute http(s) URL without fragment or user information. It returns
// the reason it is not, or "".
func checkURL(s string) string {
	if len(s) > maxURLLen {
		return fmt.Sprintf("longer than %d bytes", maxURLLen)
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "":
		return fmt.Sprintf("%q is not an absolute http(s) URL", s)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("%q: scheme must be http or https", s)
	case u.Fragment != "" || strings.Contains(s, "#"):
		return fmt.Sprintf("%q must not have a fragment", s)
	case u.User != nil:
		return fmt.Sprintf("%q must not hold user information", s)
	}
	return ""
}
