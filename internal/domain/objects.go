// Package domain holds Leasehold's vocabulary: the configurable objects (tenants, users,
// clients, products, license models, licenses), the runtime state (seats, leases) and the
// license error codes. It knows nothing of HTTP or SQL.
//
// The configurable objects carry the configuration file's field names as JSON tags: the
// YAML file, the admin API and the store's serialized form are the same shape.
package domain

import (
	"bytes"
	"encoding/json"
	"time"
)

// Kind names a configurable object kind, as in the admin API path.
type Kind string

const (
	KindTenant       Kind = "tenants"
	KindOrganization Kind = "organizations"
	KindUser         Kind = "users"
	KindClient       Kind = "clients"
	KindProduct      Kind = "products"
	KindModel        Kind = "models"
	KindLicense      Kind = "licenses"
	KindGateway      Kind = "gateways"
	KindWebhook      Kind = "webhooks"
)

// TenantKinds are the kinds that live inside a tenant, in the order they must be applied
// (a license names a model and a product; a user names an organization; a gateway's route
// names a licensed item).
var TenantKinds = []Kind{KindOrganization, KindUser, KindClient, KindProduct, KindModel, KindLicense, KindGateway, KindWebhook}

// Tenant is an isolated namespace. Its objects are stored separately (by kind).
type Tenant struct {
	Name           string          `json:"name"`
	Default        bool            `json:"default,omitempty"`
	Dialects       []string        `json:"dialects,omitempty"`
	Session        SessionPolicy   `json:"session"`
	TrustedIssuers []TrustedIssuer `json:"trusted_issuers,omitempty"`
}

// SessionPolicy says how a tenant's sessions live and which seat they hold.
type SessionPolicy struct {
	Item               string   `json:"item,omitempty"`
	AccessTokenTTL     Duration `json:"access_token_ttl"`
	RefreshTokenTTL    Duration `json:"refresh_token_ttl"`
	IdleTimeout        Duration `json:"idle_timeout"`
	MaxLifetime        Duration `json:"max_lifetime"`
	MaxSessionsPerUser int      `json:"max_sessions_per_user"`
	RefreshGrace       Duration `json:"refresh_grace"`
	CookieMaxAge       Duration `json:"cookie_max_age"`
	FreeScopes         []string `json:"free_scopes"`
	DocumentsQuota     ByteSize `json:"documents_quota"`
}

func DefaultSessionPolicy() SessionPolicy {
	return SessionPolicy{
		AccessTokenTTL:     Duration(1199 * time.Second),
		RefreshTokenTTL:    Duration(20 * time.Minute),
		IdleTimeout:        Duration(20 * time.Minute),
		MaxSessionsPerUser: 100,
		CookieMaxAge:       Duration(175200 * time.Hour),
		FreeScopes:         []string{"view", "Therefore_Read"},
		DocumentsQuota:     100 << 20,
	}
}

func (p *SessionPolicy) UnmarshalJSON(b []byte) error {
	type plain SessionPolicy
	v := plain(DefaultSessionPolicy())
	if err := DecodeStrict(b, &v); err != nil {
		return err
	}
	*p = SessionPolicy(v)
	return nil
}

func (t *Tenant) UnmarshalJSON(b []byte) error {
	type plain Tenant
	v := plain{Session: DefaultSessionPolicy()}
	if err := DecodeStrict(b, &v); err != nil {
		return err
	}
	*t = Tenant(v)
	return nil
}

// TrustedIssuer is an external OAuth2/OIDC provider whose JWTs are accepted as Bearer tokens.
type TrustedIssuer struct {
	Issuer    string `json:"issuer"`
	JWKSURI   string `json:"jwks_uri,omitempty"`
	JWKSFile  string `json:"jwks_file,omitempty"`
	Audience  string `json:"audience,omitempty"`
	UserClaim string `json:"user_claim,omitempty"`
}

type Organization struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// User is stored with its password hash only; Password exists to be read from a file or
// an admin request and is cleared before anything is stored.
type User struct {
	Username     string `json:"username"`
	Password     string `json:"password,omitempty"`
	PasswordHash string `json:"password_hash,omitempty"`
	Organization string `json:"organization,omitempty"`
	Enabled      bool   `json:"enabled"`
}

func (u *User) UnmarshalJSON(b []byte) error {
	type plain User
	v := plain{Enabled: true}
	if err := DecodeStrict(b, &v); err != nil {
		return err
	}
	*u = User(v)
	return nil
}

// Client is an OAuth2 client. Without a secret (or secret hash) it is public and must use PKCE.
type Client struct {
	ClientID                     string   `json:"client_id"`
	ClientSecret                 string   `json:"client_secret,omitempty"`
	ClientSecretHash             string   `json:"client_secret_hash,omitempty"`
	User                         string   `json:"user,omitempty"`
	Organization                 string   `json:"organization,omitempty"`
	Enabled                      bool     `json:"enabled"`
	RedirectURIs                 []string `json:"redirect_uris,omitempty"`
	GrantTypes                   []string `json:"grant_types,omitempty"`
	Scopes                       []string `json:"scopes,omitempty"`
	RefreshWithClientCredentials bool     `json:"refresh_with_client_credentials,omitempty"`
}

func (c *Client) UnmarshalJSON(b []byte) error {
	type plain Client
	v := plain{Enabled: true}
	if err := DecodeStrict(b, &v); err != nil {
		return err
	}
	*c = Client(v)
	if len(c.Scopes) == 0 {
		c.Scopes = []string{"all"}
	}
	if len(c.GrantTypes) == 0 {
		if c.Public() {
			c.GrantTypes = []string{"authorization_code", "refresh_token"}
		} else {
			c.GrantTypes = []string{"client_credentials", "refresh_token"}
		}
	}
	return nil
}

// Public reports whether the client has no secret (and so must use PKCE).
func (c *Client) Public() bool { return c.ClientSecret == "" && c.ClientSecretHash == "" }

// Product is a top-level licensed item; Items are the features aggregated under it.
type Product struct {
	Name  string   `json:"name"`
	Items []string `json:"items,omitempty"`
}

// Anchor names a request attribute that makes up a seat key.
const (
	AnchorUser    = "user"
	AnchorClient  = "client"
	AnchorHW      = "hw"
	AnchorProcess = "process"
	AnchorVersion = "version"
)

// LicenseModel is the set of constraints applied when a license is consumed.
type LicenseModel struct {
	Name                string   `json:"name"`
	Anchors             []string `json:"anchors"`
	SessionsPerSeat     int      `json:"sessions_per_seat"`
	LeaseChaining       bool     `json:"lease_chaining"`
	ChainGrace          Duration `json:"chain_grace"`
	OnlineLease         Duration `json:"online_lease"`
	OfflineLease        Duration `json:"offline_lease"`
	RefreshRatio        float64  `json:"refresh_ratio"`
	Linger              Duration `json:"linger"`
	RestartGrace        Duration `json:"restart_grace"`
	Version             string   `json:"version,omitempty"`
	IPRanges            []string `json:"ip_ranges,omitempty"`
	Countries           []string `json:"countries,omitempty"`
	HWLock              bool     `json:"hw_lock"`
	MaxUseCount         int64    `json:"max_use_count"`
	MaxUseTime          Duration `json:"max_use_time"`
	ConsumptionLimit    int      `json:"consumption_limit"`
	NamedSeats          bool     `json:"named_seats"`
	ReservationRequired bool     `json:"reservation_required"`
	CountRequired       bool     `json:"count_required"`
	Overage             float64  `json:"overage"`
	// AllowRelease false makes /authz release answer releaseNotAllowed (leases then only expire).
	AllowRelease bool `json:"allow_release"`
}

func DefaultLicenseModel() LicenseModel {
	return LicenseModel{
		Anchors:         []string{AnchorUser},
		SessionsPerSeat: 1,
		ChainGrace:      Duration(10 * time.Second),
		OnlineLease:     Duration(15 * time.Minute),
		OfflineLease:    Duration(720 * time.Hour),
		RefreshRatio:    0.8,
		RestartGrace:    Duration(60 * time.Second),
		Overage:         1.0,
		AllowRelease:    true,
	}
}

func (m *LicenseModel) UnmarshalJSON(b []byte) error {
	type plain LicenseModel
	v := plain(DefaultLicenseModel())
	if err := DecodeStrict(b, &v); err != nil {
		return err
	}
	*m = LicenseModel(v)
	return nil
}

// Owner is the organization or the user a license belongs to (exactly one is set).
type Owner struct {
	Organization string `json:"organization,omitempty"`
	User         string `json:"user,omitempty"`
}

// License grants seats of a product (or of some items) under a model.
type License struct {
	ID           string            `json:"id"`
	Product      string            `json:"product,omitempty"`
	Items        []string          `json:"items,omitempty"`
	Model        string            `json:"model"`
	Seats        int               `json:"seats"`
	Owner        Owner             `json:"owner"`
	Entitlement  string            `json:"entitlement,omitempty"`
	ValidFrom    *time.Time        `json:"valid_from,omitempty"`
	ValidUntil   *time.Time        `json:"valid_until,omitempty"`
	Active       bool              `json:"active"`
	Properties   map[string]string `json:"properties,omitempty"`
	Assignments  []string          `json:"assignments,omitempty"`
	Reservations []string          `json:"reservations,omitempty"`
}

func (l *License) UnmarshalJSON(b []byte) error {
	type plain License
	v := plain{Seats: 1, Active: true}
	if err := DecodeStrict(b, &v); err != nil {
		return err
	}
	*l = License(v)
	return nil
}

// DecodeStrict decodes JSON refusing unknown fields, so a misspelt config key is an error
// rather than a silently ignored setting.
func DecodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
