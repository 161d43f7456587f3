package domain

import "time"

// Session kinds: how the session was opened.
const (
	SessionPassword          = "password"
	SessionClientCredentials = "client_credentials"
	SessionAuthorizationCode = "authorization_code"
	SessionLoginToken        = "login_token"
	SessionExternal          = "external"
)

// Session is an authenticated login. A licensed session holds a lease (LeaseLicense,
// LeaseRoot) on the tenant's session item for as long as it lives.
type Session struct {
	ID       string
	Tenant   string
	Kind     string
	User     string
	Client   string
	Device   string
	Scopes   []string
	Licensed bool
	// Refreshable sessions hold refresh tokens: they live while a refresh token is valid
	// (sliding on refresh) instead of sliding on use.
	Refreshable bool
	// NoIdle sessions ignore idle_timeout: without a refresh token they live cookie_max_age
	// past their last use, as every session does under idle_timeout: 0 (DocuWare's cookie
	// logons keep their seat until a logoff).
	NoIdle bool
	// LeaseLicense/LeaseRoot name the seat lease when Licensed and a session item exists.
	LeaseLicense string
	LeaseRoot    string
	// ExtIssuer/ExtSubject identify a session opened by a trusted external token.
	ExtIssuer  string
	ExtSubject string

	CreatedAt  time.Time
	LastUsedAt time.Time
	// ExpiresAt is the session's current deadline: end of its refresh window, idle deadline
	// or max lifetime, whichever comes first. HardExpiry is the max_lifetime cap (zero: none).
	ExpiresAt  time.Time
	HardExpiry time.Time
}

// Live reports whether the session is in force at time now (a row past its deadline may
// wait for the sweep).
func (s *Session) Live(now time.Time) bool { return now.Before(s.ExpiresAt) }

// Token kinds.
const (
	TokenAccess  = "access"
	TokenRefresh = "refresh"
	TokenCode    = "code"
	TokenLogin   = "login"
	TokenCookie  = "cookie"
	// TokenGatewayCookie is a gateway's own session cookie (lh_gw_{name}); Data names the
	// gateway, the only place it is valid.
	TokenGatewayCookie = "gateway_cookie"
)

// Token is an opaque bearer credential. Only Hash (an HMAC of the random token) is stored.
type Token struct {
	Hash      string
	Tenant    string
	Kind      string
	SessionID string
	FamilyID  string
	ClientID  string
	User      string
	Scopes    []string
	CreatedAt time.Time
	ExpiresAt time.Time
	// Data carries kind-specific JSON (an authorization code's redirect URI and PKCE
	// challenge; a login token's usage, products and seat key).
	Data []byte
}
