package session

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
	"github.com/leasehold/leasehold/internal/store"
)

// CodeTTL is the lifetime of an authorization code (RFC 6749 §4.1.2 recommends at most 10
// minutes; SPEC §4 asks for at most 60 s).
const CodeTTL = 60 * time.Second

// ScopeOffline is the scope that asks for a refresh token. It never takes a seat.
const ScopeOffline = "offline_access"

// OAuth2 grant errors, mapped to RFC 6749 §5.2 codes by the HTTP front. They are wrapped
// with a reason meant for the client's developer.
var (
	// ErrInvalidGrant: the code or refresh token is unknown, expired, used, revoked, bound
	// to another client or redirect URI, or its PKCE verifier does not match.
	ErrInvalidGrant = errors.New("invalid_grant")
	// ErrForeignToken: a revocation request for a token issued to another client.
	ErrForeignToken = errors.New("the token was not issued to this client")
)

func invalidGrant(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidGrant, fmt.Sprintf(format, args...))
}

// errRaced means another transaction consumed the same code or refresh token between our
// read and our delete (PostgreSQL runs READ COMMITTED): the attempt is run again, and then
// sees the token as used.
var errRaced = errors.New("token consumed concurrently")

// raceAttempts bounds how often an attempt that lost such a race is repeated. Every lost
// race means another transaction committed, so n clients racing on one token need at most
// n attempts.
const raceAttempts = 10

// Used codes and rotated refresh tokens are kept under a derived key, never under their own
// hash: a live record is deleted exactly once, so a successful DeleteToken claims it even
// under READ COMMITTED. The prefixes cannot collide with HashToken (hex only).
func usedCodeKey(hash string) string { return "used:" + hash }
func rotatedKey(hash string) string  { return "rotated:" + hash }

// S256 is the PKCE S256 transform of a code_verifier (RFC 7636 §4.2).
func S256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func decodeData(b []byte, v any) error { return json.Unmarshal(b, v) }

// codeData is an authorization code's Data.
type codeData struct {
	RedirectURI string `json:"redirect_uri"`
	// RedirectGiven: the authorization request named redirect_uri (RFC 6749 §4.1.3 then
	// requires the same value at the token endpoint).
	RedirectGiven   bool   `json:"redirect_given,omitempty"`
	Challenge       string `json:"code_challenge,omitempty"`
	ChallengeMethod string `json:"code_challenge_method,omitempty"`
	Device          string `json:"device,omitempty"`
	// Session is set on a used code's record: the session it opened.
	Session string `json:"session,omitempty"`
}

// CodeRequest is a completed authorization request: who logged in and what the client asked.
type CodeRequest struct {
	ClientID      string
	RedirectURI   string
	RedirectGiven bool
	// Challenge is the PKCE code_challenge (S256 only; "" when the client sent none).
	Challenge string
	Scopes    []string
	User      string
	// Device is the browser's device id: the seat's `hw` when the code is exchanged.
	Device string
}

// IssueCode stores a single-use authorization code and returns it. The code takes no seat:
// the seat is taken when it is exchanged.
func (m *Manager) IssueCode(ctx context.Context, tenant string, req CodeRequest) (string, error) {
	data := codeData{RedirectURI: req.RedirectURI, RedirectGiven: req.RedirectGiven, Device: req.Device}
	if req.Challenge != "" {
		data.Challenge, data.ChallengeMethod = req.Challenge, "S256"
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return "", err
	}
	code, hash := m.tokens.New()
	err = m.update(ctx, func(tx store.Tx) error {
		now := tx.Now()
		return tx.InsertToken(ctx, &domain.Token{
			Hash: hash, Tenant: tenant, Kind: domain.TokenCode, ClientID: req.ClientID, User: req.User,
			Scopes: req.Scopes, CreatedAt: now, ExpiresAt: now.Add(CodeTTL), Data: raw,
		})
	})
	if err != nil {
		return "", err
	}
	return code, nil
}

// ValidVerifier reports whether s has the RFC 7636 §4.1 form of a code_verifier (it also
// fits a code_challenge: 43 to 128 unreserved characters).
func ValidVerifier(s string) bool {
	if len(s) < 43 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// CodeExchange is a token request of grant_type=authorization_code.
type CodeExchange struct {
	Code        string
	RedirectURI string
	Verifier    string // PKCE code_verifier
	ClientIP    netip.Addr
	// Queue is how long to wait for a seat, first come first served, when none is free
	// (queue= on the token endpoint). The code stays unused while it waits.
	Queue time.Duration
}

// ExchangeCode redeems an authorization code for client (already authenticated by the
// caller): it opens the user's session, taking its seat in the same transaction, and issues
// an access token, plus a refresh token when offline_access was granted. A code works
// once: presenting it again ends the session it opened.
func (m *Manager) ExchangeCode(ctx context.Context, tenant string, client *domain.Client, x CodeExchange) (*Grant, error) {
	code, redirectURI, verifier := x.Code, x.RedirectURI, x.Verifier
	if code == "" || len(code) > 512 {
		return nil, invalidGrant("the authorization code is missing or malformed")
	}
	snap, err := m.cat.Get(ctx, tenant)
	if err != nil {
		return nil, err
	}
	policy := snap.Tenant.Session
	hash := m.tokens.Hash(code)
	var g *Grant
	var reused bool
	var ended string
	var opened *domain.Session // the session the code opens: its seat is the one queued for
	exchange := func(ctx context.Context) error {
		for attempt := 1; ; attempt++ {
			err := m.update(ctx, func(tx store.Tx) error {
				g, reused, ended = nil, false, ""
				now := tx.Now()
				t, err := tx.GetToken(ctx, hash)
				if errors.Is(err, domain.ErrNotFound) {
					used, sid, err := m.revokeCodeSession(ctx, tx, snap, tenant, hash)
					reused, ended = used, sid
					if err != nil || used {
						return err
					}
					return invalidGrant("unknown or expired authorization code")
				} else if err != nil {
					return err
				}
				if t.Kind != domain.TokenCode || t.Tenant != tenant || !now.Before(t.ExpiresAt) {
					return invalidGrant("unknown or expired authorization code")
				}
				if t.ClientID != client.ClientID {
					return invalidGrant("the authorization code was issued to another client")
				}
				var data codeData
				if err := decodeData(t.Data, &data); err != nil {
					return fmt.Errorf("code data: %w", err)
				}
				if (data.RedirectGiven || redirectURI != "") && redirectURI != data.RedirectURI {
					return invalidGrant("redirect_uri does not match the one of the authorization request")
				}
				if err := checkPKCE(client, data, verifier); err != nil {
					return err
				}
				if u := snap.Users[t.User]; u == nil || !u.Enabled {
					return invalidGrant("the user is unknown or disabled")
				}
				if ok, err := tx.DeleteToken(ctx, hash); err != nil {
					return err
				} else if !ok {
					return errRaced
				}

				withRefresh := slices.Contains(t.Scopes, ScopeOffline)
				s := &domain.Session{
					ID: NewID(), Tenant: tenant, Kind: domain.SessionAuthorizationCode,
					User: t.User, Client: client.ClientID, Device: data.Device, Scopes: t.Scopes,
					CreatedAt: now, LastUsedAt: now, Refreshable: withRefresh,
				}
				if s.Device == "" {
					s.Device = NewID()
				}
				if policy.MaxLifetime > 0 {
					s.HardExpiry = now.Add(policy.MaxLifetime.D())
				}
				s.ExpiresAt = deadline(policy, s, withRefresh, now)
				if err := m.checkSessionLimit(ctx, tx, snap, s.User, now); err != nil {
					return err
				}
				opened = s
				if err := m.takeSeat(ctx, tx, snap, s, x.ClientIP, nil); err != nil {
					return err
				}
				if err := tx.InsertSession(ctx, s); err != nil {
					return err
				}
				g, err = m.issuePair(ctx, tx, snap, s, NewID(), client.ClientID, t.Scopes, withRefresh, now)
				if err != nil {
					return err
				}
				// Remember the code as used for its remaining life, so that a replay can be
				// detected and can end what it opened.
				data.Session = s.ID
				raw, err := json.Marshal(data)
				if err != nil {
					return err
				}
				return tx.InsertToken(ctx, &domain.Token{
					Hash: usedCodeKey(hash), Tenant: tenant, Kind: domain.TokenCode, ClientID: t.ClientID, User: t.User,
					Scopes: t.Scopes, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, Data: raw,
				})
			})
			if errors.Is(err, errRaced) && attempt < raceAttempts {
				continue
			}
			if errors.Is(err, errRaced) {
				err = invalidGrant("the authorization code was used concurrently")
			}
			if err == nil && ended != "" {
				m.ended(tenant, ended)
			}
			if err == nil && reused {
				err = invalidGrant("the authorization code was already used; the tokens it issued are revoked")
			}
			return err
		}
	}
	// The code names the user and device: the seat is known once the first attempt read it.
	seat := func() (engine.SessionSeat, bool) {
		if opened == nil {
			return engine.SessionSeat{}, false
		}
		return engine.SessionSeat{Tenant: tenant, Caller: CallerFor(snap, opened), Device: opened.Device, ClientIP: x.ClientIP}, true
	}
	if err := m.openQueued(ctx, tenant, x.Queue, exchange, seat, func() string { return g.Session.ID }); err != nil {
		return nil, err
	}
	return g, nil
}

// revokeCodeSession handles a code that is no longer live: when it was used (and is still
// within its lifetime), the session it opened ends (RFC 6749 §4.1.2, RFC 9700 §4.5). It
// returns whether the code was a used one, and the id of the session it ended.
func (m *Manager) revokeCodeSession(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, tenant, hash string) (bool, string, error) {
	mk, err := tx.GetToken(ctx, usedCodeKey(hash))
	if errors.Is(err, domain.ErrNotFound) {
		return false, "", nil
	} else if err != nil {
		return false, "", err
	}
	if mk.Tenant != tenant || !tx.Now().Before(mk.ExpiresAt) {
		return false, "", nil
	}
	var data codeData
	if err := decodeData(mk.Data, &data); err != nil {
		return false, "", fmt.Errorf("code data: %w", err)
	}
	ended := ""
	if data.Session != "" {
		s, err := tx.GetSession(ctx, tenant, data.Session)
		if err == nil {
			if err := m.endTx(domain.WithEndReason(ctx, domain.EndRevoked), tx, snap, s, true); err != nil {
				return false, "", err
			}
			ended = s.ID
		} else if !errors.Is(err, domain.ErrNotFound) {
			return false, "", err
		}
	}
	_, err = tx.DeleteToken(ctx, mk.Hash)
	return true, ended, err
}

// checkPKCE verifies the code_verifier (RFC 7636 §4.6). A verifier without a challenge is
// refused: it would let a downgraded flow look protected.
func checkPKCE(client *domain.Client, data codeData, verifier string) error {
	if data.Challenge == "" {
		if verifier != "" {
			return invalidGrant("code_verifier sent, but the authorization request had no code_challenge")
		}
		if client.Public() {
			return invalidGrant("a public client must use PKCE")
		}
		return nil
	}
	if verifier == "" {
		return invalidGrant("code_verifier is required")
	}
	if !ValidVerifier(verifier) {
		return invalidGrant("code_verifier must be 43 to 128 unreserved characters")
	}
	if subtle.ConstantTimeCompare([]byte(S256(verifier)), []byte(data.Challenge)) != 1 {
		return invalidGrant("code_verifier does not match the code_challenge")
	}
	return nil
}

// refreshData is a refresh token's Data. A live refresh token names the access token issued
// with it (which dies when it is rotated); a rotated one's record (under rotatedKey) says
// when it was rotated and which refresh token replaced it.
type refreshData struct {
	Access    string    `json:"access,omitempty"`
	RotatedAt time.Time `json:"rotated_at,omitzero"`
	Successor string    `json:"successor,omitempty"`
}

// issuePair issues an access token and, with withRefresh, a refresh token, both in family.
// Unlike issue it records the access token in the refresh token, so rotation can kill it.
func (m *Manager) issuePair(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, s *domain.Session, family, client string, scopes []string, withRefresh bool, now time.Time) (*Grant, error) {
	g, _, err := m.issuePairHashes(ctx, tx, snap, s, family, client, scopes, scopes, withRefresh, now)
	return g, err
}

// issuePairHashes is issuePair with the access token's scopes apart from the refresh token's
// (a refresh request may narrow the access token's scope, RFC 6749 §6); it also returns the
// refresh token's hash.
func (m *Manager) issuePairHashes(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, s *domain.Session, family, client string, accessScopes, refreshScopes []string, withRefresh bool, now time.Time) (*Grant, string, error) {
	policy := snap.Tenant.Session
	access, accessHash := m.tokens.New()
	exp := now.Add(policy.AccessTokenTTL.D())
	if exp.After(s.ExpiresAt) {
		exp = s.ExpiresAt
	}
	if err := tx.InsertToken(ctx, &domain.Token{
		Hash: accessHash, Tenant: s.Tenant, Kind: domain.TokenAccess, SessionID: s.ID, FamilyID: family,
		ClientID: client, User: s.User, Scopes: accessScopes, CreatedAt: now, ExpiresAt: exp,
	}); err != nil {
		return nil, "", err
	}
	g := &Grant{AccessToken: access, ExpiresIn: int(exp.Sub(now).Round(time.Second) / time.Second), Scopes: accessScopes, Session: s}
	if !withRefresh {
		return g, "", nil
	}
	raw, err := json.Marshal(refreshData{Access: accessHash})
	if err != nil {
		return nil, "", err
	}
	refresh, refreshHash := m.tokens.New()
	if err := tx.InsertToken(ctx, &domain.Token{
		Hash: refreshHash, Tenant: s.Tenant, Kind: domain.TokenRefresh, SessionID: s.ID, FamilyID: family,
		ClientID: client, User: s.User, Scopes: refreshScopes, CreatedAt: now, ExpiresAt: s.ExpiresAt, Data: raw,
	}); err != nil {
		return nil, "", err
	}
	g.RefreshToken = refresh
	return g, refreshHash, nil
}

// Revoke implements RFC 7009 for clientID: revoking a refresh token ends its session (the
// seat lingers, as at a logoff); revoking an access token kills that token (and ends the
// session when it was its last credential). An unknown,
// expired or already rotated token is not an error. A token of another client is
// ErrForeignToken.
func (m *Manager) Revoke(ctx context.Context, tenant, token, clientID string) error {
	if token == "" || len(token) > 512 {
		return nil
	}
	snap, err := m.cat.Get(ctx, tenant)
	if err != nil {
		return err
	}
	hash := m.tokens.Hash(token)
	var ended string
	err = m.update(ctx, func(tx store.Tx) error {
		ended = ""
		t, err := tx.GetToken(ctx, hash)
		if errors.Is(err, domain.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		if t.Tenant != tenant || (t.Kind != domain.TokenAccess && t.Kind != domain.TokenRefresh) {
			return nil // not an OAuth2 token of this tenant: as unknown
		}
		if t.ClientID != clientID {
			return ErrForeignToken
		}
		if _, err := tx.DeleteToken(ctx, hash); err != nil {
			return err
		}
		s, err := tx.GetSession(ctx, tenant, t.SessionID)
		if errors.Is(err, domain.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		if t.Kind == domain.TokenAccess {
			// A session left without any credential could never be used again, yet would
			// hold its seat until its idle timeout: it ends, as at a logoff.
			if live, err := hasLiveCredential(ctx, tx, s); err != nil || live {
				return err
			}
		}
		ended = s.ID
		return m.endTx(ctx, tx, snap, s, true)
	})
	if err == nil && ended != "" {
		m.ended(tenant, ended)
	}
	return err
}

// Introspection is RFC 7662's answer about a token.
type Introspection struct {
	Active    bool
	Kind      string // domain.TokenAccess or domain.TokenRefresh
	Scopes    []string
	ClientID  string
	User      string
	Tenant    string
	SessionID string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// Seat: the token's session holds a seat lease.
	Seat bool
}

// Introspect describes an access or refresh token of tenant. Resource servers may call it
// on every request, so it is answered like an authentication: from the token cache when it
// may (no store transaction; on PostgreSQL one store-clock read), else by one read-only
// transaction (two point reads), and the cached catalog in either case. The cache forgets
// everything at each session write of this process, and its entries live ≤ 1 s, the time
// other processes are given to see a revocation; the token's and session's expiries are
// checked against the store clock on every hit. Anything not live, or of another tenant,
// is inactive.
func (m *Manager) Introspect(ctx context.Context, tenant, token string) (*Introspection, error) {
	if token == "" || len(token) > 512 {
		return &Introspection{}, nil
	}
	t, s, _, err := m.lookup(ctx, m.tokens.Hash(token), false)
	if errors.Is(err, ErrInvalidToken) {
		return &Introspection{}, nil
	} else if err != nil {
		return nil, err
	}
	if (t.Kind != domain.TokenAccess && t.Kind != domain.TokenRefresh) || t.Tenant != tenant {
		return &Introspection{}, nil
	}
	snap, err := m.cat.Get(ctx, tenant)
	if err != nil {
		return nil, err
	}
	if !principalAllowed(snap, t, s) {
		return &Introspection{}, nil
	}
	return &Introspection{
		Active: true, Kind: t.Kind, Scopes: slices.Clone(t.Scopes), ClientID: t.ClientID, User: s.User, Tenant: t.Tenant,
		SessionID: s.ID, IssuedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, Seat: s.Licensed && s.LeaseRoot != "",
	}, nil
}

// principalAllowed applies the catalog to a token: a disabled or removed client or user
// makes its tokens worthless at once (as Authenticate does).
func principalAllowed(snap *catalog.Snapshot, t *domain.Token, s *domain.Session) bool {
	if t.ClientID != "" {
		if c := snap.Clients[t.ClientID]; c == nil || !c.Enabled {
			return false
		}
	}
	if u := snap.Users[s.User]; u != nil {
		return u.Enabled
	}
	return s.User == s.Client // a client acting as itself
}

// BrowserLogin opens the session behind the authorization endpoint's login page for a user
// CheckPassword accepted: a cookie session with no scope, so it holds no seat (the seat is
// taken when a code is exchanged), and no access token. device "" gets a new device id.
// The grant carries the cookie and device values; its Grant is nil.
func (m *Manager) BrowserLogin(ctx context.Context, tenant string, u *domain.User, device string) (*LoginGrant, error) {
	snap, err := m.cat.Get(ctx, tenant)
	if err != nil {
		return nil, err
	}
	policy := snap.Tenant.Session
	lg := &LoginGrant{Device: device, NewDevice: device == "", CookieMaxAge: policy.CookieMaxAge.D()}
	if lg.NewDevice {
		lg.Device = NewID()
	}
	err = m.update(ctx, func(tx store.Tx) error {
		now := tx.Now()
		if err := m.checkSessionLimit(ctx, tx, snap, u.Username, now); err != nil {
			return err
		}
		s := &domain.Session{
			ID: NewID(), Tenant: tenant, Kind: domain.SessionPassword, User: u.Username, Device: lg.Device,
			Scopes: []string{}, CreatedAt: now, LastUsedAt: now,
		}
		if policy.MaxLifetime > 0 {
			s.HardExpiry = now.Add(policy.MaxLifetime.D())
		}
		s.ExpiresAt = deadline(policy, s, false, now)
		if err := tx.InsertSession(ctx, s); err != nil {
			return err
		}
		var err error
		lg.Cookie, err = m.issueCookie(ctx, tx, snap, s, "", now)
		return err
	})
	if err != nil {
		return nil, err
	}
	return lg, nil
}
