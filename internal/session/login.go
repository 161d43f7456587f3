package session

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/documents"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
	"github.com/leasehold/leasehold/internal/secret"
	"github.com/leasehold/leasehold/internal/store"
	"github.com/leasehold/leasehold/internal/throttle"
)

// ErrBadCredentials is every refused password login: unknown user, wrong password or a
// disabled user get the same answer, so that it does not tell which names exist.
var ErrBadCredentials = errors.New("invalid username or password")

// ThrottledError refuses a login attempt made too soon after repeated failures for the
// same user from the same address, or from the same address (HTTP 429 with Retry-After).
type ThrottledError struct {
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many login attempts (failed or still in progress) for this user or address; retry in %d s", throttle.RetrySeconds(e.RetryAfter))
}

// RetryAfterSeconds is RetryAfter rounded up to whole seconds (at least 1), for the
// Retry-After header.
func (e *ThrottledError) RetryAfterSeconds() int { return throttle.RetrySeconds(e.RetryAfter) }

// SessionLimitError refuses a login when the user already has max_sessions_per_user live
// sessions.
type SessionLimitError struct {
	User  string
	Limit int
}

func (e *SessionLimitError) Error() string {
	return fmt.Sprintf("user %s already has %d live sessions (the limit); log out of one first", e.User, e.Limit)
}

// CheckPassword verifies a user's password. It costs the same whether or not the user
// exists, refuses disabled users, and throttles repeated failures per (user, client address)
// and per address (ThrottledError) before spending anything on a hash.
func (m *Manager) CheckPassword(ctx context.Context, tenant, username, password string, addr netip.Addr) (*domain.User, error) {
	snap, err := m.cat.Get(ctx, tenant)
	if err != nil {
		return nil, err
	}
	userKey, addrKey := passwordThrottleKeys(tenant, username, addr)
	if wait := m.guard.Attempt(time.Now(), userKey, addrKey); wait > 0 {
		return nil, &ThrottledError{RetryAfter: wait}
	}
	u := snap.Users[username]
	ok := false
	if u == nil || u.PasswordHash == "" || len(username) > 256 {
		secret.DummyVerify(password)
	} else {
		ok, err = secret.Verify(password, u.PasswordHash)
		if err != nil {
			ok = false // a broken stored hash never matches; the admin API validates them
		}
	}
	if !ok || !u.Enabled {
		return nil, ErrBadCredentials
	}
	m.guard.Succeed(userKey, addrKey)
	return u, nil
}

// AuthenticateCookie resolves the value of an `lh_session` (or `.DWPLATFORMAUTH`) cookie:
// an opaque token of kind cookie bound to the session. tenant is the tenant the request
// names explicitly ("" when none).
func (m *Manager) AuthenticateCookie(ctx context.Context, tenant, value string, addr netip.Addr) (*Principal, error) {
	return m.authenticateToken(ctx, tenant, value, domain.TokenCookie, addr)
}

// gatewayCookieData binds a gateway cookie token to its gateway.
type gatewayCookieData struct {
	Gateway string `json:"gateway"`
}

// AuthenticateGatewayCookie resolves the value of a gateway's lh_gw_{name} cookie. The
// token is valid only at the gateway that set it: a cookie carried to another gateway (or
// to the server's own routes, which read only cookie tokens) authenticates nothing.
func (m *Manager) AuthenticateGatewayCookie(ctx context.Context, tenant, gateway, value string, addr netip.Addr) (*Principal, error) {
	p, err := m.authenticateToken(ctx, tenant, value, domain.TokenGatewayCookie, addr)
	if err != nil {
		return nil, err
	}
	var d gatewayCookieData
	if decodeData(p.Token.Data, &d) != nil || d.Gateway != gateway {
		return nil, ErrInvalidToken
	}
	return p, nil
}

// issueCookie creates the cookie token of a session. It lives as long as the cookie may
// (cookie_max_age, capped by max_lifetime); the session's own deadline still rules.
func (m *Manager) issueCookie(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, s *domain.Session, gateway string, now time.Time) (string, error) {
	plain, hash := m.tokens.New()
	kind, data := domain.TokenCookie, []byte(nil)
	if gateway != "" {
		kind = domain.TokenGatewayCookie
		var err error
		if data, err = jsonData(gatewayCookieData{Gateway: gateway}); err != nil {
			return "", err
		}
	}
	exp := now.Add(snap.Tenant.Session.CookieMaxAge.D())
	if !s.HardExpiry.IsZero() && s.HardExpiry.Before(exp) {
		exp = s.HardExpiry
	}
	err := tx.InsertToken(ctx, &domain.Token{
		Hash: hash, Tenant: s.Tenant, Kind: kind, SessionID: s.ID, FamilyID: NewID(),
		User: s.User, Scopes: s.Scopes, CreatedAt: now, ExpiresAt: exp, Data: data,
	})
	return plain, err
}

// LoginOptions shape a session opened by a password or a login token.
type LoginOptions struct {
	// Device is the caller's device id (its lh_device or DWPLATFORMBROWSERID cookie, or the
	// device parameter); "" gives the login a new one. It anchors `hw`.
	Device string
	// Refresh asks for a refresh token: the session then lives while its refresh token is
	// valid (sliding refresh_token_ttl) instead of sliding on use (idle_timeout).
	Refresh bool
	// Scopes of the session; nil is ["all"], a licensed session. A session whose scopes are
	// all free (or empty) holds no seat.
	Scopes []string
	// ClientIP is the caller's address, for models with ip_ranges or countries.
	ClientIP netip.Addr
	// NoIdle sets the session's deadline policy: it ignores idle_timeout and lives
	// cookie_max_age past its last use (or until a logoff, or max_lifetime), holding its seat
	// all along, as DocuWare's 20-year cookie sessions do.
	NoIdle bool
	// Queue is how long to wait for a seat, first come first served, when none is free
	// (queue=, as on /authz); 0: refuse at once.
	Queue time.Duration
	// Gateway, when set, makes the session's cookie that gateway's (valid nowhere else).
	Gateway string
}

// LoginGrant is what a session login answers: the token pair, the cookie value and the
// device id to set as the lh_device cookie.
type LoginGrant struct {
	*Grant
	Cookie       string
	Device       string
	NewDevice    bool // Device was made for this login (the caller sent none)
	CookieMaxAge time.Duration
}

// Login opens a password session for a user CheckPassword accepted, with its seat, an
// access token (and a refresh token when asked) and a cookie token, in one transaction.
func (m *Manager) Login(ctx context.Context, tenant string, u *domain.User, o LoginOptions) (*LoginGrant, error) {
	return m.openLogin(ctx, tenant, u.Username, domain.SessionPassword, o, nil)
}

// openLogin opens a session for user. before, when set, runs first in the transaction
// (a login token is checked and spent there) and may name a seat to reclaim: the seat of
// the session that made the token, which the engine lets the new session take over while
// it is reclaimable.
func (m *Manager) openLogin(ctx context.Context, tenant, user, kind string, o LoginOptions,
	before func(tx store.Tx, snap *catalog.Snapshot, now time.Time) (*engine.Reclaim, error)) (*LoginGrant, error) {
	snap, err := m.cat.Get(ctx, tenant)
	if err != nil {
		return nil, err
	}
	policy := snap.Tenant.Session
	device, newDevice := o.Device, o.Device == ""
	if newDevice {
		device = NewID()
	}
	scopes := o.Scopes
	if scopes == nil {
		scopes = []string{"all"}
	}
	var lg *LoginGrant
	open := func(ctx context.Context) error {
		return m.update(ctx, func(tx store.Tx) error {
			lg = nil
			now := tx.Now()
			var rc *engine.Reclaim
			if before != nil {
				var err error
				if rc, err = before(tx, snap, now); err != nil {
					return err
				}
			}
			if err := m.checkSessionLimit(ctx, tx, snap, user, now); err != nil {
				return err
			}
			s := &domain.Session{
				ID: NewID(), Tenant: tenant, Kind: kind, User: user, Device: device,
				Scopes: scopes, CreatedAt: now, LastUsedAt: now, Refreshable: o.Refresh, NoIdle: o.NoIdle,
			}
			if policy.MaxLifetime > 0 {
				s.HardExpiry = now.Add(policy.MaxLifetime.D())
			}
			s.ExpiresAt = deadline(policy, s, o.Refresh, now)
			if err := m.takeSeat(ctx, tx, snap, s, o.ClientIP, rc); err != nil {
				return err
			}
			if err := tx.InsertSession(ctx, s); err != nil {
				return err
			}
			g, err := m.issue(ctx, tx, snap, s, "", scopes, o.Refresh, now)
			if err != nil {
				return err
			}
			cookie, err := m.issueCookie(ctx, tx, snap, s, o.Gateway, now)
			if err != nil {
				return err
			}
			lg = &LoginGrant{Grant: g, Cookie: cookie, Device: device, NewDevice: newDevice, CookieMaxAge: policy.CookieMaxAge.D()}
			return nil
		})
	}
	seat := func() (engine.SessionSeat, bool) {
		return engine.SessionSeat{Tenant: tenant, Caller: CallerFor(snap, &domain.Session{User: user, Scopes: scopes}),
			Device: device, ClientIP: o.ClientIP}, true
	}
	if err := m.openQueued(ctx, tenant, o.Queue, open, seat, func() string { return lg.Session.ID }); err != nil {
		return nil, err
	}
	return lg, nil
}

// checkSessionLimit enforces max_sessions_per_user (free-scope sessions included).
func (m *Manager) checkSessionLimit(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, user string, now time.Time) error {
	limit := snap.Tenant.Session.MaxSessionsPerUser
	if limit <= 0 {
		return nil
	}
	list, err := tx.ListSessions(ctx, snap.Tenant.Name, store.LeaseFilter{User: user})
	if err != nil {
		return err
	}
	live := 0
	for _, s := range list {
		if s.Live(now) {
			live++
		}
	}
	if live >= limit {
		return &SessionLimitError{User: user, Limit: limit}
	}
	return nil
}

// Password logins may fail a few times freely per (user, address) before they wait, and a
// few more per address (many users guessed from one place). A user is never throttled
// across addresses: failures from elsewhere cannot keep them out.
const (
	throttleUserFree = 5
	throttleAddrFree = 20
)

func passwordThrottleKeys(tenant, user string, addr netip.Addr) (userAtAddr, address throttle.Key) {
	if len(user) > 256 {
		user = user[:256]
	}
	a := throttle.Addr(addr)
	userAtAddr = throttle.Key{ID: "u\x00" + tenant + "\x00" + user + "\x00" + a, Free: throttleUserFree}
	if a != "" {
		address = throttle.Key{ID: "a\x00" + a, Free: throttleAddrFree}
	}
	return userAtAddr, address
}

// SetEndHook registers fn to run after a transaction that ended a session has committed
// (logout, logoff, revoke, admin, expiry), e.g. to delete the session's documents. Call it
// before serving.
func (m *Manager) SetEndHook(fn func(tenant, sessionID string)) { m.onEnd = fn }

// ended runs the end hook; call it after the commit that ended the session.
func (m *Manager) ended(tenant, sessionID string) {
	if m.onEnd != nil {
		m.onEnd(tenant, sessionID)
	}
}

// CollectDocuments removes document directories whose session no longer exists: the end
// hook deletes them promptly, this catches what it missed (a crash between the commit and
// the deletion, a write racing with the end).
func (m *Manager) CollectDocuments(ctx context.Context, docs *documents.Store) error {
	owners, err := docs.Owners(10_000)
	if err != nil {
		return err
	}
	for name, o := range owners {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		live := false
		if o.Session != "" {
			err := m.st.View(ctx, func(tx store.Tx) error {
				s, err := tx.GetSession(ctx, o.Tenant, o.Session)
				if errors.Is(err, domain.ErrNotFound) {
					return nil
				} else if err != nil {
					return err
				}
				live = s.CreatedAt.UnixMilli() == o.Created
				return nil
			})
			if err != nil {
				return err
			}
		}
		if !live {
			if err := docs.RemoveDir(name, o); err != nil {
				return err
			}
		}
	}
	return nil
}
