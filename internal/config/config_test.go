package config

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
)

func readFull(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseFullExample(t *testing.T) {
	cfg, err := Parse(readFull(t))
	if err != nil {
		t.Fatalf("the SPEC example does not parse:\n%v", err)
	}
	if cfg.Listen != "127.0.0.1:8080" || cfg.PublicURL != "http://127.0.0.1:8080" || cfg.PublicURLDefaulted {
		t.Errorf("listen/public_url: %q %q %v", cfg.Listen, cfg.PublicURL, cfg.PublicURLDefaulted)
	}
	if cfg.Store != "sqlite://./leasehold-data/leasehold.db" || cfg.GeoIPDatabase != "./GeoLite2-Country.mmdb" ||
		cfg.AdminToken != "change-me" || cfg.Signing.Algorithm != "RS256" || cfg.Documents != "./leasehold-data/documents" {
		t.Errorf("top level: %+v", cfg)
	}
	if len(cfg.TrustedProxies) != 0 {
		t.Errorf("trusted_proxies: %v", cfg.TrustedProxies)
	}
	if len(cfg.Tenants) != 1 {
		t.Fatalf("%d tenants", len(cfg.Tenants))
	}
	tn := cfg.Tenants[0]
	if tn.Name() != "acme" || !tn.Spec.Default || !reflect.DeepEqual(tn.Spec.Dialects, []string{"docuware", "webpdf", "therefore", "jim2"}) {
		t.Errorf("tenant: %+v", tn.Spec)
	}
	wantSession := domain.SessionPolicy{
		Item:               "PlatformService",
		AccessTokenTTL:     domain.Duration(1199 * time.Second),
		RefreshTokenTTL:    domain.Duration(20 * time.Minute),
		IdleTimeout:        domain.Duration(20 * time.Minute),
		MaxLifetime:        0,
		MaxSessionsPerUser: 100,
		RefreshGrace:       0,
		CookieMaxAge:       domain.Duration(175200 * time.Hour),
		FreeScopes:         []string{"view", "Therefore_Read"},
		DocumentsQuota:     100 << 20,
	}
	if !reflect.DeepEqual(tn.Spec.Session, wantSession) {
		t.Errorf("session:\n got %+v\nwant %+v", tn.Spec.Session, wantSession)
	}
	wantIss := []domain.TrustedIssuer{{Issuer: "https://idp.example", JWKSURI: "https://idp.example/jwks", Audience: "leasehold", UserClaim: "preferred_username"}}
	if !reflect.DeepEqual(tn.Spec.TrustedIssuers, wantIss) {
		t.Errorf("trusted_issuers: %+v", tn.Spec.TrustedIssuers)
	}
	if len(tn.Organizations) != 1 || tn.Organizations[0].Spec != (domain.Organization{ID: "org-1", Name: "Acme Ltd"}) {
		t.Errorf("organizations: %+v", tn.Organizations)
	}
	if len(tn.Users) != 1 || tn.Users[0].Spec != (domain.User{Username: "alice", Password: "alice-pw", Organization: "org-1", Enabled: true}) {
		t.Errorf("users: %+v", tn.Users)
	}
	if len(tn.Clients) != 2 {
		t.Fatalf("clients: %+v", tn.Clients)
	}
	jim := tn.Clients[0].Spec
	if jim.ClientID != "jim2-app" || jim.ClientSecret != "s3cret" || jim.User != "alice" || !jim.Enabled ||
		!reflect.DeepEqual(jim.GrantTypes, []string{"client_credentials", "refresh_token"}) ||
		!reflect.DeepEqual(jim.Scopes, []string{"all", "view"}) || !jim.RefreshWithClientCredentials {
		t.Errorf("jim2-app: %+v", jim)
	}
	web := tn.Clients[1].Spec
	if web.ClientID != "web-app" || !web.Public() || !reflect.DeepEqual(web.RedirectURIs, []string{"http://127.0.0.1:9999/callback"}) ||
		!reflect.DeepEqual(web.GrantTypes, []string{"authorization_code", "refresh_token"}) {
		t.Errorf("web-app: %+v", web)
	}
	if len(tn.Products) != 1 || !reflect.DeepEqual(tn.Products[0].Spec, domain.Product{Name: "PlatformService", Items: []string{"AppFeature-XYZ", "AppFeature-ABC"}}) {
		t.Errorf("products: %+v", tn.Products)
	}
	wantModel := domain.LicenseModel{
		Name: "floating", Anchors: []string{"user", "hw"}, SessionsPerSeat: 1, LeaseChaining: true,
		ChainGrace: domain.Duration(10 * time.Second), OnlineLease: domain.Duration(15 * time.Minute),
		OfflineLease: domain.Duration(720 * time.Hour), RefreshRatio: 0.8, Linger: domain.Duration(2 * time.Minute),
		RestartGrace: domain.Duration(60 * time.Second), Version: ">=1.0.0 <2.0.0", IPRanges: []string{"127.0.0.0/8"},
		Countries: []string{"US"}, MaxUseCount: 1000, MaxUseTime: domain.Duration(100 * time.Hour), ConsumptionLimit: 3,
		Overage: 1.0, AllowRelease: true,
	}
	if len(tn.Models) != 1 || !reflect.DeepEqual(tn.Models[0].Spec, wantModel) {
		t.Errorf("models:\n got %+v\nwant %+v", tn.Models[0].Spec, wantModel)
	}
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	until := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	wantLicense := domain.License{
		ID: "870f46a4-1faa-4847-955b-14ee5f74f3fe", Product: "PlatformService", Model: "floating", Seats: 2,
		Owner: domain.Owner{Organization: "org-1"}, Entitlement: "ent-1", ValidFrom: &from, ValidUntil: &until,
		Active: true, Properties: map[string]string{"lang": "en,es", "country": "us"},
		Assignments: []string{"alice"}, Reservations: []string{"alice"},
	}
	if len(tn.Licenses) != 1 || !reflect.DeepEqual(tn.Licenses[0].Spec, wantLicense) {
		t.Errorf("licenses:\n got %+v\nwant %+v", tn.Licenses[0].Spec, wantLicense)
	}

	// Raw keeps each definition as written (keys sorted), without the defaults.
	if got := string(tn.Models[0].Raw); !strings.Contains(got, `"linger":"2m"`) || strings.Contains(got, "allow_release") {
		t.Errorf("model raw: %s", got)
	}
	if got := string(tn.Users[0].Raw); got != `{"organization":"org-1","password":"alice-pw","username":"alice"}` {
		t.Errorf("user raw: %s", got)
	}
	var own map[string]any
	if err := json.Unmarshal(tn.Raw, &own); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"users", "models", "licenses", "organizations", "clients", "products"} {
		if _, ok := own[k]; ok {
			t.Errorf("tenant raw holds %s", k)
		}
	}
	if own["name"] != "acme" || own["session"] == nil {
		t.Errorf("tenant raw: %s", tn.Raw)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	geo := filepath.Join(dir, "GeoLite2-Country.mmdb")
	if err := os.WriteFile(geo, []byte("not read by config"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := strings.Replace(string(readFull(t)), "./GeoLite2-Country.mmdb", geo, 1)
	file := filepath.Join(dir, "leasehold.yaml")
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Setenv(AdminTokenEnv, "")
	cfg, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AdminToken != "change-me" || cfg.GeoIPDatabase != geo {
		t.Errorf("%q %q", cfg.AdminToken, cfg.GeoIPDatabase)
	}

	t.Setenv(AdminTokenEnv, "from-env")
	if cfg, err = Load(file); err != nil || cfg.AdminToken != "from-env" {
		t.Errorf("env admin token: %v %v", cfg, err)
	}
	t.Setenv(AdminTokenEnv, "has space")
	if _, err = Load(file); err == nil || err.Error() != "config: LEASEHOLD_ADMIN_TOKEN: must be printable ASCII without spaces" {
		t.Errorf("bad env admin token: %v", err)
	}
	t.Setenv(AdminTokenEnv, "")

	if err := os.Remove(geo); err != nil {
		t.Fatal(err)
	}
	if _, err = Load(file); err == nil || !strings.HasPrefix(err.Error(), "config: geoip_database: ") || strings.Contains(err.Error(), "\n") {
		t.Errorf("missing geoip_database: %v", err)
	}
	if _, err = Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.HasPrefix(err.Error(), "config: open ") {
		t.Errorf("missing file: %v", err)
	}

	// Load writes nothing: the directory holds what the test put there.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("Load left files behind: %v", entries)
	}
}

const minimal = `
tenants:
  - name: acme
    users: [{username: alice}]
    clients:
      - {client_id: svc, client_secret: x}
      - {client_id: spa, redirect_uris: ["https://app.example/cb"]}
    products: [{name: P}]
    models:
      - {name: m}
      - {name: zero, linger: 0s, chain_grace: 0s, restart_grace: 0, online_lease: ~}
    licenses: [{id: L1, product: P, model: m, owner: {user: alice}}]
`

func TestDefaults(t *testing.T) {
	cfg, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != DefaultListen || cfg.PublicURL != "http://127.0.0.1:8080" || !cfg.PublicURLDefaulted ||
		cfg.Store != DefaultStore || cfg.Documents != DefaultDocuments || cfg.Signing.Algorithm != "RS256" ||
		cfg.AdminToken != "" || cfg.GeoIPDatabase != "" || cfg.ShutdownTimeout != DefaultShutdownTimeout {
		t.Errorf("top-level defaults: %+v", cfg)
	}
	tn := cfg.Tenants[0]
	if !reflect.DeepEqual(tn.Spec.Session, domain.DefaultSessionPolicy()) || tn.Spec.Default {
		t.Errorf("session defaults: %+v", tn.Spec.Session)
	}
	if u := tn.Users[0].Spec; !u.Enabled {
		t.Errorf("user: %+v", u)
	}
	svc, spa := tn.Clients[0].Spec, tn.Clients[1].Spec
	if !reflect.DeepEqual(svc.GrantTypes, []string{"client_credentials", "refresh_token"}) || !reflect.DeepEqual(svc.Scopes, []string{"all"}) || !svc.Enabled {
		t.Errorf("confidential client defaults: %+v", svc)
	}
	if !reflect.DeepEqual(spa.GrantTypes, []string{"authorization_code", "refresh_token"}) {
		t.Errorf("public client defaults: %+v", spa)
	}
	m := tn.Models[0].Spec
	want := domain.DefaultLicenseModel()
	want.Name = "m"
	if !reflect.DeepEqual(m, want) || m.Linger != 0 {
		t.Errorf("model defaults:\n got %+v\nwant %+v", m, want)
	}
	z := tn.Models[1].Spec
	if z.Linger != 0 || z.ChainGrace != 0 || z.RestartGrace != 0 {
		t.Errorf("explicit zero durations must stay zero: %+v", z)
	}
	if z.OnlineLease != domain.DefaultLicenseModel().OnlineLease {
		t.Errorf("an empty value is not given: online_lease = %v", z.OnlineLease)
	}
	if l := tn.Licenses[0].Spec; l.Seats != 1 || !l.Active {
		t.Errorf("license defaults: %+v", l)
	}
}

func TestShutdownTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"":                        DefaultShutdownTimeout,
		"shutdown_timeout:\n":     DefaultShutdownTimeout, // an empty value is not given
		"shutdown_timeout: 0s\n":  0,                      // explicit zero: no bound
		"shutdown_timeout: 30s\n": 30 * time.Second,
	} {
		cfg, err := Parse([]byte(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if cfg.ShutdownTimeout != want {
			t.Errorf("%q: %v, want %v", in, cfg.ShutdownTimeout, want)
		}
	}
	if _, err := Parse([]byte("shutdown_timeout: soon\n")); err == nil || !strings.Contains(err.Error(), "shutdown_timeout") {
		t.Errorf("a bad shutdown_timeout: %v", err)
	}
}

func TestPublicURLFromListen(t *testing.T) {
	for listen, want := range map[string]string{
		":9000":        "http://localhost:9000",
		"0.0.0.0:80":   "http://localhost:80",
		"[::1]:8443":   "http://[::1]:8443",
		"example:8080": "http://example:8080",
	} {
		cfg, err := Parse([]byte("listen: " + `"` + listen + `"`))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.PublicURL != want {
			t.Errorf("listen %s: public_url %s, want %s", listen, cfg.PublicURL, want)
		}
	}
	cfg, err := Parse([]byte("public_url: https://lh.example/base/\ntrusted_proxies: [10.1.2.3/8, '::1/128']"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PublicURL != "https://lh.example/base" || cfg.PublicURLDefaulted {
		t.Errorf("public_url %q", cfg.PublicURL)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}; !reflect.DeepEqual(cfg.TrustedProxies, want) {
		t.Errorf("trusted_proxies %v", cfg.TrustedProxies)
	}
	if cfg, err := Parse(nil); err != nil || cfg.Listen != DefaultListen {
		t.Errorf("empty file: %v %v", cfg, err)
	}
}

// base is a valid tenant; cases replace one of its lines.
const base = `
geoip_database: ./geo.mmdb
tenants:
  - name: acme
    session: {item: P}
    organizations: [{id: org-1}]
    users: [{username: alice, organization: org-1}]
    clients: [{client_id: svc, client_secret: x, user: alice}]
    products: [{name: P, items: [I1, I2]}]
    models: [{name: m, countries: [US]}]
    licenses: [{id: L1, product: P, model: m, owner: {user: alice}}]
`

func with(old, new string) string {
	if !strings.Contains(base, old) {
		panic("base has no " + old)
	}
	return strings.Replace(base, old, new, 1)
}

const argonOK = "$argon2id$v=19$m=19456,t=2,p=1$wgxtol6bXZkLnRN20tUlTw$b0Kc5VgrnaFjFPbhky1PAILnTIl5eBaFqqFqDOsyJLg"

func TestValidationErrors(t *testing.T) {
	if _, err := Parse([]byte(base)); err != nil {
		t.Fatalf("base does not parse: %v", err)
	}
	const (
		tenant  = "    session: {item: P}"
		orgs    = "    organizations: [{id: org-1}]"
		users   = "    users: [{username: alice, organization: org-1}]"
		clients = "    clients: [{client_id: svc, client_secret: x, user: alice}]"
		prods   = "    products: [{name: P, items: [I1, I2]}]"
		models  = "    models: [{name: m, countries: [US]}]"
		lics    = "    licenses: [{id: L1, product: P, model: m, owner: {user: alice}}]"
		geo     = "geoip_database: ./geo.mmdb"
	)
	for _, tc := range []struct {
		name, yaml string
		want       string // the whole message, or a prefix when it ends in "…"
	}{
		// Top level.
		{"yaml syntax", "listen: [", "config: yaml: line 1: did not find expected node content"},
		{"duplicate key", "listen: a:1\nlisten: b:2", `config: yaml: unmarshal errors:; line 2: key "listen" already set in map`},
		{"not a mapping", "- a", "config: must be a mapping, not a list"},
		{"unknown top-level", "lisen: x", `config: lisen: unknown field (did you mean "listen"?)`},
		{"listen", "listen: localhost", "config: listen: must be host:port, e.g. 127.0.0.1:8080"},
		{"listen port", "listen: 'a:99999'", "config: listen: must be host:port, e.g. 127.0.0.1:8080"},
		{"public_url", "public_url: ftp://x", `config: public_url: "ftp://x": scheme must be http or https`},
		{"public_url fragment", "public_url: 'http://x/#a'", `config: public_url: "http://x/#a" must not have a fragment`},
		{"trusted_proxies", "trusted_proxies: [10.0.0.1]", `config: trusted_proxies[0]: "10.0.0.1" is not a CIDR such as 10.0.0.0/8`},
		{"store scheme", "store: mysql://x", "config: store: must be sqlite://PATH or postgres://… (postgresql://…)"},
		{"store sqlite path", "store: sqlite://", "config: store: sqlite:// needs a file path, e.g. sqlite://./leasehold-data/leasehold.db"},
		{"signing", "signing: {algorithm: HS256}", `config: signing.algorithm: unknown algorithm "HS256" (use RS256, ES256, EdDSA)`},
		{"signing unknown field", "signing: {alg: RS256}", "config: signing.alg: unknown field…"},
		{"listen type", "listen: [a]", "config: listen: must be a string, not array"},
		{"tenants type", "tenants: {a: 1}", "config: tenants: must be a list, not a mapping"},

		// Tenants.
		{"tenant name pattern", with("name: acme", "name: Acme"), `config: tenants[Acme].name: "Acme" must match [a-z0-9][a-z0-9-]{0,62}`},
		{"tenant name required", with("name: acme", "default: true"), "config: tenants[0].name: required"},
		{"tenant reserved", with("name: acme", "name: oauth2"), `config: tenants[oauth2].name: "oauth2" is a reserved route word`},
		{"tenant reserved fold", with("name: acme", "name: docuware"), `config: tenants[docuware].name: "docuware" is a reserved route word`},
		{"tenant duplicate", base + "  - name: acme\n", `config: tenants[1].name: duplicate tenant "acme"`},
		{"two defaults", with("name: acme", "name: acme\n    default: true") + "  - {name: b, default: true}\n", `config: tenants[b].default: only one tenant can be the default ("acme" already is)`},
		{"tenant not a mapping", base + "  - x\n", "config: tenants[1]: must be a mapping, not a string"},
		{"tenant unknown field", with(tenant, tenant+"\n    sesion: {}"), `config: tenants[acme].sesion: unknown field (did you mean "session"?)`},
		{"dialect", with(tenant, tenant+"\n    dialects: [docuware, sap]"), `config: tenants[acme].dialects[1]: unknown dialect "sap" (use docuware, webpdf, therefore, jim2)`},
		{"session item", with(tenant, "    session: {item: X}"), `config: tenants[acme].session.item: unknown item "X" (not a product nor a product's item)`},
		{"session nested unknown", with(tenant, "    session: {itme: P}"), `config: tenants[acme].session.itme: unknown field (did you mean "item"?)`},
		{"session duration", with(tenant, "    session: {idle_timeout: 20 minutes}"), `config: tenants[acme].session.idle_timeout: invalid duration "20 minutes" (use Go syntax such as 90s, 20m, 720h)`},
		{"session quota", with(tenant, "    session: {documents_quota: 1 TB}"), `config: tenants[acme].session.documents_quota: invalid size "1 TB" (use e.g. 100MiB)`},
		{"access ttl zero", with(tenant, "    session: {access_token_ttl: 0s}"), "config: tenants[acme].session.access_token_ttl: must be more than 0"},
		{"max sessions", with(tenant, "    session: {max_sessions_per_user: 0}"), "config: tenants[acme].session.max_sessions_per_user: must be in 1..1000000"},
		{"free scope", with(tenant, "    session: {free_scopes: ['a b']}"), `config: tenants[acme].session.free_scopes[0]: "a b" is not a valid scope (printable ASCII without spaces, quotes or backslashes)`},
		{"issuer needs jwks", with(tenant, tenant+"\n    trusted_issuers: [{issuer: https://idp}]"), "config: tenants[acme].trusted_issuers[0]: needs jwks_uri or jwks_file"},
		{"issuer required", with(tenant, tenant+"\n    trusted_issuers: [{jwks_file: /k}]"), "config: tenants[acme].trusted_issuers[0].issuer: required"},
		{"issuer jwks_uri", with(tenant, tenant+"\n    trusted_issuers: [{issuer: i, jwks_uri: /jwks}]"), `config: tenants[acme].trusted_issuers[0].jwks_uri: "/jwks" is not an absolute http(s) URL`},
		{"issuer both", with(tenant, tenant+"\n    trusted_issuers: [{issuer: i, jwks_uri: 'https://i/j', jwks_file: /k}]"), "config: tenants[acme].trusted_issuers[0].jwks_file: cannot be given with jwks_uri"},

		// Organizations and users.
		{"org id required", with(orgs, "    organizations: [{id: org-1}, {name: x}]"), "config: tenants[acme].organizations[1].id: required"},
		{"org duplicate", with(orgs, "    organizations: [{id: org-1}, {id: org-1}]"), `config: tenants[acme].organizations[1].id: duplicate organization "org-1"`},
		{"org id type", with(orgs, "    organizations: [{id: 1}]"), "config: tenants[acme].organizations[0].id: must be a string, not number"},
		{"name too long", with(orgs, "    organizations: [{id: org-1, name: "+strings.Repeat("n", 201)+"}]"), "config: tenants[acme].organizations[org-1].name: longer than 200 bytes"},
		{"user org", with(users, "    users: [{username: alice, organization: org-2}]"), `config: tenants[acme].users[alice].organization: unknown organization "org-2"`},
		{"password and hash", with(users, "    users: [{username: alice, password: a, password_hash: '"+argonOK+"'}]"), "config: tenants[acme].users[alice].password: cannot be given with password_hash"},
		{"password hash", with(users, "    users: [{username: alice, password_hash: 'md5:abc'}]"), "config: tenants[acme].users[alice].password_hash: not an argon2id or bcrypt hash"},
		{"password hash cost", with(users, "    users: [{username: alice, password_hash: '$argon2id$v=19$m=2000000,t=2,p=1$wgxtol6bXZkLnRN20tUlTw$b0Kc5VgrnaFjFPbhky1PAILnTIl5eBaFqqFqDOsyJLg'}]"), "config: tenants[acme].users[alice].password_hash: not an argon2id or bcrypt hash: argon2id m must be in 8..262144 KiB"},
		{"user not a mapping", with(users, "    users: [alice]"), "config: tenants[acme].users[0]: must be a mapping, not a string"},
		{"user enabled type", with(users, "    users: [{username: alice, enabled: maybe}]"), "config: tenants[acme].users[alice].enabled: must be true or false, not string"},
		{"username spaces", with(users, "    users: [{username: alice}, {username: ' bob'}]"), `config: tenants[acme].users[" bob"].username: must not begin or end with spaces`},

		// Clients.
		{"client user", with(clients, "    clients: [{client_id: svc, client_secret: x, user: bob}]"), `config: tenants[acme].clients[svc].user: unknown user "bob"`},
		{"client secret and hash", with(clients, "    clients: [{client_id: svc, client_secret: x, client_secret_hash: '"+argonOK+"'}]"), "config: tenants[acme].clients[svc].client_secret: cannot be given with client_secret_hash"},
		{"client secret hash", with(clients, "    clients: [{client_id: svc, client_secret_hash: x}]"), "config: tenants[acme].clients[svc].client_secret_hash: not an argon2id or bcrypt hash"},
		{"public client_credentials", with(clients, "    clients: [{client_id: svc, grant_types: [client_credentials]}]"), "config: tenants[acme].clients[svc].grant_types: client_credentials needs a client_secret or client_secret_hash (this client is public)"},
		{"grant type", with(clients, "    clients: [{client_id: svc, client_secret: x, grant_types: [password]}]"), `config: tenants[acme].clients[svc].grant_types[0]: unknown grant type "password" (use authorization_code, client_credentials, refresh_token)`},
		{"redirect needed", with(clients, "    clients: [{client_id: spa}]"), "config: tenants[acme].clients[spa].redirect_uris: the authorization_code grant needs at least one"},
		{"redirect relative", with(clients, "    clients: [{client_id: spa, redirect_uris: [/cb]}]"), `config: tenants[acme].clients[spa].redirect_uris[0]: "/cb" is not an absolute http(s) URL`},
		{"redirect fragment", with(clients, "    clients: [{client_id: spa, redirect_uris: ['https://a/cb#x']}]"), `config: tenants[acme].clients[spa].redirect_uris[0]: "https://a/cb#x" must not have a fragment`},
		{"redirect scheme", with(clients, "    clients: [{client_id: spa, redirect_uris: ['javascript://a/cb']}]"), `config: tenants[acme].clients[spa].redirect_uris[0]: "javascript://a/cb": scheme must be http or https`},
		{"client scope", with(clients, "    clients: [{client_id: svc, client_secret: x, scopes: [all, 'a\"b']}]"), `config: tenants[acme].clients[svc].scopes[1]: "a\"b" is not a valid scope (printable ASCII without spaces, quotes or backslashes)`},
		{"client duplicate", with(clients, "    clients: [{client_id: svc, client_secret: x}, {client_id: svc, client_secret: z}]"), `config: tenants[acme].clients[1].client_id: duplicate client "svc"`},

		// Products.
		{"item reserved", with(prods, "    products: [{name: P, items: [I1, version]}]"), `config: tenants[acme].products[P].items[1]: "version" is reserved (an /authz parameter or a lease token claim)`},
		{"item chars", with(prods, "    products: [{name: P, items: ['a&b', I1, I2]}]"), `config: tenants[acme].products[P].items[0]: "a&b": an item name cannot contain spaces or any of & = ; # ? % +`},
		{"item duplicate", with(prods, "    products: [{name: P, items: [I1, I1]}]"), `config: tenants[acme].products[P].items[1]: duplicate "I1"`},
		{"product duplicate", with(prods, "    products: [{name: P}, {name: P}]"), `config: tenants[acme].products[1].name: duplicate product "P"`},

		// Models.
		{"anchor", with(models, "    models: [{name: m, anchors: [user, ip]}]"), `config: tenants[acme].models[m].anchors[1]: unknown anchor "ip" (use user, client, hw, process, version)`},
		{"sessions_per_seat", with(models, "    models: [{name: m, sessions_per_seat: 0}]"), "config: tenants[acme].models[m].sessions_per_seat: must be in 1..1000000"},
		{"refresh_ratio zero", with(models, "    models: [{name: m, refresh_ratio: 0}]"), "config: tenants[acme].models[m].refresh_ratio: must be in (0, 1]"},
		{"refresh_ratio big", with(models, "    models: [{name: x}, {name: m, refresh_ratio: 1.5}]"), "config: tenants[acme].models[m].refresh_ratio: must be in (0, 1]"},
		{"overage", with(models, "    models: [{name: m, overage: 0.5}]"), "config: tenants[acme].models[m].overage: must be at least 1 (1.25 allows 25 % over seats) and at most 100"},
		{"online_lease", with(models, "    models: [{name: m, online_lease: 0s}]"), "config: tenants[acme].models[m].online_lease: must be more than 0"},
		{"version", with(models, "    models: [{name: m, version: '>=banana'}]"), `config: tenants[acme].models[m].version: ">=banana" is not a semver constraint such as ">=1.0.0 <2.0.0": …`},
		{"ip_ranges", with(models, "    models: [{name: m, ip_ranges: [10.0.0.0/33]}]"), `config: tenants[acme].models[m].ip_ranges[0]: "10.0.0.0/33" is not a CIDR such as 10.0.0.0/8`},
		{"countries code", with(models, "    models: [{name: m, countries: [USA]}]"), `config: tenants[acme].models[m].countries[0]: "USA" is not a two-letter country code such as US`},
		{"countries need geoip", strings.Replace(base, geo, "", 1), "config: tenants[acme].models[m].countries: needs geoip_database"},
		{"negative use count", with(models, "    models: [{name: m, max_use_count: -1}]"), "config: tenants[acme].models[m].max_use_count: must not be negative (0 = no limit)"},
		{"negative duration", with(models, "    models: [{name: m, linger: -1s}]"), `config: tenants[acme].models[m].linger: invalid duration "-1s": negative`},
		{"model unknown field", with(models, "    models: [{name: m, lingr: 2m}]"), `config: tenants[acme].models[m].lingr: unknown field (did you mean "linger"?)`},
		{"model unknown field, index", with(models, "    models: [{lingr: 2m}]"), `config: tenants[acme].models[0].lingr: unknown field (did you mean "linger"?)`},
		{"model duplicate", with(models, "    models: [{name: m}, {name: m}]"), `config: tenants[acme].models[1].name: duplicate model "m"`},

		// Licenses.
		{"license model", with(lics, "    licenses: [{id: L1, product: P, model: x, owner: {user: alice}}]"), `config: tenants[acme].licenses[L1].model: unknown model "x"`},
		{"license model required", with(lics, "    licenses: [{id: L1, product: P, owner: {user: alice}}]"), "config: tenants[acme].licenses[L1].model: required"},
		{"license product", with(lics, "    licenses: [{id: L1, product: I1, model: m, owner: {user: alice}}]"), `config: tenants[acme].licenses[L1].product: unknown product "I1"`},
		{"license items", with(lics, "    licenses: [{id: L1, items: [I2, I3], model: m, owner: {user: alice}}]"), `config: tenants[acme].licenses[L1].items[1]: unknown item "I3" (not a product nor a product's item)`},
		{"license nothing licensed", with(lics, "    licenses: [{id: L1, model: m, owner: {user: alice}}]"), "config: tenants[acme].licenses[L1].product: a license needs a product or items"},
		{"license seats", with(lics, "    licenses: [{id: L1, product: P, model: m, seats: -1, owner: {user: alice}}]"), "config: tenants[acme].licenses[L1].seats: must be in 0..1000000000"},
		{"license seats type", with(lics, "    licenses: [{id: L1, product: P, model: m, seats: two, owner: {user: alice}}]"), "config: tenants[acme].licenses[L1].seats: must be an integer, not string"},
		{"license owner none", with(lics, "    licenses: [{id: L1, product: P, model: m}]"), "config: tenants[acme].licenses[L1].owner: needs organization or user"},
		{"license owner both", with(lics, "    licenses: [{id: L1, product: P, model: m, owner: {user: alice, organization: org-1}}]"), "config: tenants[acme].licenses[L1].owner: organization and user are exclusive"},
		{"license owner org", with(lics, "    licenses: [{id: L1, product: P, model: m, owner: {organization: org-9}}]"), `config: tenants[acme].licenses[L1].owner.organization: unknown organization "org-9"`},
		{"license owner user", with(lics, "    licenses: [{id: L1, product: P, model: m, owner: {user: bob}}]"), `config: tenants[acme].licenses[L1].owner.user: unknown user "bob"`},
		{"license owner unknown field", with(lics, "    licenses: [{id: L1, product: P, model: m, owner: {usr: alice}}]"), `config: tenants[acme].licenses[L1].owner.usr: unknown field (did you mean "user"?)`},
		{"license assignment", with(lics, "    licenses: [{id: L1, product: P, model: m, owner: {user: alice}, assignments: [alice, carol]}]"), `config: tenants[acme].licenses[L1].assignments[1]: unknown user "carol"`},
		{"license reservation", with(lics, "    licenses: [{id: L1, product: P, model: m, owner: {user: alice}, reservations: [dave]}]"), `config: tenants[acme].licenses[L1].reservations[0]: unknown user "dave"`},
		{"license validity", with(lics, "    licenses: [{id: L1, product: P, model: m, owner: {user: alice}, valid_from: 2030-01-01T00:00:00Z, valid_until: 2026-01-01T00:00:00Z}]"), "config: tenants[acme].licenses[L1].valid_until: must be after valid_from"},
		{"license time", with(lics, "    licenses: [{id: L1, product: P, model: m, owner: {user: alice}, valid_from: 2026-01-01}]"), "config: tenants[acme].licenses[L1].valid_from: must be an RFC 3339 time such as 2026-01-01T00:00:00Z"},
		{"license property bool", with(lics, "    licenses: [{id: L1, product: P, model: m, owner: {user: alice}, properties: {country: no}}]"), "config: tenants[acme].licenses[L1].properties.country: must be a string, not bool (quote it: YAML reads yes, no, on, off, y and n as true or false)"},
		{"license uuid", with(lics, "    licenses: [{id: 870f46a4-1faa-4847-955b-14ee5f74f3fe, product: P, model: x, owner: {user: alice}}]"), `config: tenants[acme].licenses[870f46a4-1faa-4847-955b-14ee5f74f3fe].model: unknown model "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error; want %s", tc.want)
			}
			got := err.Error()
			if strings.Contains(got, "\n") {
				t.Fatalf("more than one line:\n%s", got)
			}
			if prefix, ok := strings.CutSuffix(tc.want, "…"); ok {
				if !strings.HasPrefix(got, prefix) {
					t.Fatalf("\n got %s\nwant %s", got, tc.want)
				}
			} else if got != tc.want {
				t.Fatalf("\n got %s\nwant %s", got, tc.want)
			}
			var errs Errors
			if !errors.As(err, &errs) || len(errs) != 1 {
				t.Errorf("error is %T, not Errors of one", err)
			}
		})
	}
}

func TestSeveralErrorsOneLineEach(t *testing.T) {
	y := with("    models: [{name: m, countries: [US]}]", "    models: [{name: m, refresh_ratio: 2, overage: 0}]")
	_, err := Parse([]byte(y))
	want := "config: tenants[acme].models[m].refresh_ratio: must be in (0, 1]\n" +
		"config: tenants[acme].models[m].overage: must be at least 1 (1.25 allows 25 % over seats) and at most 100"
	if err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
}

func TestErrorListBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("tenants:\n")
	for range 30 {
		b.WriteString("  - {name: BAD}\n")
	}
	_, err := Parse([]byte(b.String()))
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != maxErrors+1 || lines[maxErrors] != "config: 39 more errors not shown" {
		t.Fatalf("%d lines, last %q", len(lines), lines[len(lines)-1])
	}
}

func TestValidateTenant(t *testing.T) {
	cfg, err := Parse(readFull(t))
	if err != nil {
		t.Fatal(err)
	}
	tn := cfg.Tenants[0]
	if err := ValidateTenant(&tn, true); err != nil {
		t.Fatal(err)
	}
	tn.Licenses = append(tn.Licenses, Entry[domain.License]{Spec: domain.License{ID: "L2", Product: "PlatformService", Model: "nope", Owner: domain.Owner{User: "alice"}}})
	if err := ValidateTenant(&tn, true); err == nil || err.Error() != `config: tenants[acme].licenses[L2].model: unknown model "nope"` {
		t.Fatalf("got %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte(minimal))
	f.Add([]byte("tenants: [{name: a, models: [{name: m, linger: x}]}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := Parse(data)
		var errs Errors
		if err != nil && errors.As(err, &errs) {
			for _, e := range errs {
				if strings.ContainsAny(e.Error(), "\n\r") {
					t.Fatalf("multi-line error %q", e.Error())
				}
			}
		}
	})
}
