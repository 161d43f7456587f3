// Package config reads and validates Leasehold's configuration file (docs/CONFIG.md).
//
// The file is YAML (JSON is valid YAML). It is converted to JSON and decoded with the
// object types of package domain, refusing unknown fields, so that the file, the admin API
// and the stored objects share one shape and one set of defaults. Every problem is reported
// as one line naming the field path and the reason:
//
//	config: tenants[acme].models[floating].refresh_ratio: must be in (0, 1]
//
// List entries are named by their name or id when it is present and unique in the list,
// else by their index. Load and Parse never write anything.
package config

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/leasehold/leasehold/internal/domain"
)

// Defaults of the top-level settings.
const (
	DefaultListen    = "127.0.0.1:8080"
	DefaultStore     = "sqlite://./leasehold-data/leasehold.db"
	DefaultDocuments = "./leasehold-data/documents"
	DefaultAlgorithm = "RS256"
	// DefaultShutdownTimeout leaves the requests in flight at a SIGTERM time to finish,
	// inside the 10 s a container runtime waits before its SIGKILL.
	DefaultShutdownTimeout = 8 * time.Second
)

// AdminTokenEnv, when set and not empty, provides (or replaces) admin_token.
const AdminTokenEnv = "LEASEHOLD_ADMIN_TOKEN"

// MinAdminTokenLen is the shortest admin token `leasehold serve` accepts (unless told it
// runs a demo): the token guards every tenant, and a short one falls to guessing.
const MinAdminTokenLen = 24

// AdminTokenTooShort reports whether the configured plain admin token is shorter than
// MinAdminTokenLen (a hash is never too short: what it hashes is not known).
func (c *Config) AdminTokenTooShort() bool {
	return c.AdminToken != "" && len(c.AdminToken) < MinAdminTokenLen
}

// MaxFileSize bounds the configuration file Load reads.
const MaxFileSize = 32 << 20

// Config is a validated configuration file with its defaults applied.
type Config struct {
	Listen string
	// PublicURL has no trailing slash. When the file does not set it, it is derived from
	// Listen and PublicURLDefaulted is true (a server listening on port 0 should replace it
	// with the address it actually bound).
	PublicURL          string
	PublicURLDefaulted bool
	TrustedProxies     []netip.Prefix
	Store              string
	GeoIPDatabase      string
	AdminToken         string
	// AdminTokenHash is an argon2id or bcrypt PHC string of an admin token, for a file that
	// should hold no secret. With AdminToken also set, either token is accepted (a change
	// of token without a moment when neither works).
	AdminTokenHash string
	// MetricsToken is the Bearer token /metrics asks for (the admin token works too).
	MetricsToken string
	// AdminListen, when set, is the only listener of the admin API and /metrics.
	AdminListen string
	// TLS, when set, makes the main listener serve HTTPS (and HTTP/2) with this
	// certificate, re-read when its files change.
	TLS TLS
	// LogFormat is json (default) or text: every line serve writes, request log, startup
	// and errors alike, in one format on one stream (stderr).
	LogFormat string
	Signing   Signing
	Documents string
	// ShutdownTimeout bounds the wait for in-flight requests at shutdown; 0: no bound.
	ShutdownTimeout time.Duration
	Tenants         []Tenant
}

// TLS names a PEM certificate (chain) and its key: the same mapping as a gateway's tls.
type TLS = domain.TLS

// Signing chooses the algorithm of tenant signing keys.
type Signing struct {
	Algorithm string `json:"algorithm"`
}

// Tenant is one entry of the tenants section: the tenant itself and its objects, each
// decoded with its defaults and kept with its definition as written in the file.
type Tenant struct {
	Spec domain.Tenant
	// Raw is the tenant's own definition (its fields other than the object lists).
	Raw json.RawMessage

	Organizations []Entry[domain.Organization]
	Users         []Entry[domain.User]
	Clients       []Entry[domain.Client]
	Products      []Entry[domain.Product]
	Models        []Entry[domain.LicenseModel]
	Licenses      []Entry[domain.License]
	Gateways      []Entry[domain.Gateway]
	Webhooks      []Entry[domain.Webhook]
}

// Name is the tenant's name.
func (t *Tenant) Name() string { return t.Spec.Name }

// Entry is one object definition: the decoded object and its definition as written in the
// file (converted to JSON, keys sorted), which package apply hashes to tell whether the
// file changed it. Raw may be nil for an object that does not come from a file.
type Entry[T any] struct {
	Spec T
	Raw  json.RawMessage
}

// fileConfig is the top level of the file as written.
type fileConfig struct {
	Listen         string   `json:"listen"`
	PublicURL      string   `json:"public_url"`
	TrustedProxies []string `json:"trusted_proxies"`
	Store          string   `json:"store"`
	GeoIPDatabase  string   `json:"geoip_database"`
	AdminToken     string   `json:"admin_token"`
	AdminTokenHash string   `json:"admin_token_hash"`
	MetricsToken   string   `json:"metrics_token"`
	AdminListen    string   `json:"admin_listen"`
	LogFormat      string   `json:"log_format"`
	TLS            TLS      `json:"tls"`
	Signing        Signing  `json:"signing"`
	Documents      string   `json:"documents"`
	// A pointer: an explicit 0s (no bound) differs from no value (the default).
	ShutdownTimeout *domain.Duration  `json:"shutdown_timeout"`
	Tenants         []json.RawMessage `json:"tenants"`
}

// Load reads and validates the file at path. LEASEHOLD_ADMIN_TOKEN, when set, provides
// admin_token. Unlike Parse it also checks that the files the configuration names
// (geoip_database, jwks_file) exist. It reads and never writes.
func Load(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, Errors{{Reason: oneLine(err.Error())}}
	}
	cfg, err := parse(data, os.Getenv(AdminTokenEnv))
	if err != nil {
		return nil, err
	}
	if err := cfg.checkFiles(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Parse decodes and validates a configuration file's content. It touches neither the
// environment nor the filesystem.
func Parse(data []byte) (*Config, error) {
	return parse(data, "")
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: larger than %d MiB", path, MaxFileSize>>20)
	}
	return data, nil
}

func parse(data []byte, envAdminToken string) (*Config, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, Errors{{Reason: oneLine(strings.TrimPrefix(err.Error(), "error converting YAML to JSON: "))}}
	}
	var errs errorList
	var fc fileConfig
	if !isNull(js) {
		if err := domain.DecodeStrict(js, &fc); err != nil {
			return nil, Errors{decodeError(reflect.TypeFor[fileConfig](), js, "", err)}
		}
	}
	tenants := decodeTenants(fc.Tenants, &errs)
	if err := errs.err(); err != nil {
		// Objects that did not decode would make every reference to them look wrong too.
		return nil, err
	}

	cfg := &Config{
		Listen:         fc.Listen,
		PublicURL:      fc.PublicURL,
		Store:          fc.Store,
		GeoIPDatabase:  fc.GeoIPDatabase,
		AdminToken:     fc.AdminToken,
		AdminTokenHash: fc.AdminTokenHash,
		MetricsToken:   fc.MetricsToken,
		AdminListen:    fc.AdminListen,
		LogFormat:      fc.LogFormat,
		TLS:            fc.TLS,
		Signing:        fc.Signing,
		Documents:      fc.Documents,
		Tenants:        tenants,
	}
	cfg.ShutdownTimeout = DefaultShutdownTimeout
	if fc.ShutdownTimeout != nil {
		cfg.ShutdownTimeout = fc.ShutdownTimeout.D()
	}
	if envAdminToken != "" {
		cfg.AdminToken = envAdminToken
	}
	cfg.applyDefaults()
	v := validator{errs: &errs, geoip: cfg.GeoIPDatabase != ""}
	v.top(cfg, fc, envAdminToken != "")
	v.tenants(cfg.Tenants)
	v.gatewayListens(cfg.Listen, cfg.Tenants)
	if err := errs.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (c *Config) applyDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Store == "" {
		c.Store = DefaultStore
	}
	if c.Documents == "" {
		c.Documents = DefaultDocuments
	}
	if c.LogFormat == "" {
		c.LogFormat = "json"
	}
	if c.Signing.Algorithm == "" {
		c.Signing.Algorithm = DefaultAlgorithm
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.PublicURL == "" {
		c.PublicURLDefaulted = true
		host, port, err := net.SplitHostPort(c.Listen)
		if err == nil {
			// A wildcard address is where the server listens, not where clients reach it.
			if ip, err := netip.ParseAddr(host); host == "" || err == nil && ip.IsUnspecified() {
				host = "localhost"
			}
			scheme := "http://"
			if c.TLS.CertFile != "" {
				scheme = "https://"
			}
			c.PublicURL = scheme + net.JoinHostPort(host, port)
		}
	}
}

func (c *Config) checkFiles() error {
	var errs errorList
	checkFile := func(path, file string) {
		st, err := os.Stat(file)
		switch {
		case err != nil:
			errs.add(path, "%v", err)
		case !st.Mode().IsRegular():
			errs.add(path, "%s is not a regular file", file)
		}
	}
	if c.GeoIPDatabase != "" {
		checkFile("geoip_database", c.GeoIPDatabase)
	}
	if c.TLS.CertFile != "" {
		checkFile("tls.cert_file", c.TLS.CertFile)
		checkFile("tls.key_file", c.TLS.KeyFile)
	}
	names := make([]string, len(c.Tenants))
	for i, t := range c.Tenants {
		names[i] = t.Spec.Name
	}
	tlabels := labels(names)
	for ti, t := range c.Tenants {
		for i, iss := range t.Spec.TrustedIssuers {
			if iss.JWKSFile != "" {
				checkFile(fmt.Sprintf("tenants[%s].trusted_issuers[%d].jwks_file", tlabels[ti], i), iss.JWKSFile)
			}
		}
		for _, g := range t.Gateways {
			if g.Spec.TLS.CertFile != "" {
				checkFile(fmt.Sprintf("tenants[%s].gateways[%s].tls.cert_file", tlabels[ti], g.Spec.Name), g.Spec.TLS.CertFile)
				checkFile(fmt.Sprintf("tenants[%s].gateways[%s].tls.key_file", tlabels[ti], g.Spec.Name), g.Spec.TLS.KeyFile)
			}
		}
	}
	return errs.err()
}
