package session

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/secret"
	"github.com/leasehold/leasehold/internal/store"
)

// ErrBadCredentials is every refused password login: unknown user, wrong password or a
// disabled user get the same answer, so that it does not tell which names exist.
var ErrBadCredentials = errors.New("invalid username or password")

// ThrottledError refuses a login attempt made too soon after repeated failures for the
// same user or from the same address (HTTP 429 with Retry-After).
type ThrottledError struct {
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed logins; retry in %d s", retrySeconds(e.RetryAfter))
}

// RetryAfterSeconds is RetryAfter rounded up to whole seconds (at least 1), for the
// Retry-After header.
func (e *ThrottledError) RetryAfterSeconds() int { return retrySeconds(e.RetryAfter) }

func retrySeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

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
// exists, refuses disabled users, and throttles repeated failures per user and per client
// address (ThrottledError) before spending anything on a hash.
func (m *Manager) CheckPassword(ctx context.Context, tenant, username, password string, addr netip.Addr) (*domain.User, error) {
	snap, err := m.cat.Get(ctx, tenant)
	if err != nil {
		return nil, err
	}
	userKey, addrKey := throttleUserKey(tenant, username), throttleAddrKey(addr)
	if wait := m.guard.wait(time.Now(), userKey, addrKey); wait > 0 {
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
		m.guard.fail(time.Now(), userKey, addrKey)
		return nil, ErrBadCredentials
	}
	m.guard.succeed(userKey)
	return u, nil
}

// AuthenticateCookie resolves the value of an `lh_session` (or `.DWPLATFORMAUTH`) cookie:
// an opaque token of kind cookie bound to the session. tenant is the tenant the request
// names explicitly ("" when none).
func (m *Manager) AuthenticateCookie(ctx context.Context, tenant, value string) (*Principal, error) {
	return m.authenticateToken(ctx, tenant, value, domain.TokenCookie)
}

// issueCookie creates the cookie token of a session. It lives as long as the cookie may
// (cookie_max_age, capped by max_lifetime); the session's own deadline still rules.
func (m *Manager) issueCookie(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, s *domain.Session, now time.Time) (string, error) {
	plain, hash := NewToken()
	exp := now.Add(snap.Tenant.Session.CookieMaxAge.D())
	if !s.HardExpiry.IsZero() && s.HardExpiry.Before(exp) {
		exp = s.HardExpiry
	}
	err := tx.InsertToken(ctx, &domain.Token{
		Hash: hash, Tenant: s.Tenant, Kind: domain.TokenCookie, SessionID: s.ID, FamilyID: NewID(),
		User: s.User, Scopes: s.Scopes, CreatedAt: now, ExpiresAt: exp,
	})
	return plain, err
}

// Throttling of failed logins. Each key (a user of a tenant, a client address) may fail a
// few times freely; after that every further failure doubles the wait before the next
// attempt, up to throttleMaxWait. A key forgets its failures throttleWindow after the last
// one. The table is bounded: when full, forgotten keys are dropped first, then arbitrary
// ones (an attacker flooding it from many addresses gains at most a fresh start for some
// keys, never unbounded memory).
const (
	throttleUserFree = 5
	throttleAddrFree = 20
	throttleBaseWait = time.Second
	throttleMaxWait  = 15 * time.Minute
	throttleWindow   = 15 * time.Minute
	throttleMaxKeys  = 100_000
)

type loginGuard struct {
	mu      sync.Mutex
	entries map[string]*failures
}

type failures struct {
	n     int
	last  time.Time
	until time.Time
}

func throttleUserKey(tenant, user string) string {
	if len(user) > 256 {
		user = user[:256]
	}
	return "u\x00" + tenant + "\x00" + user
}

// throttleAddrKey groups IPv6 clients by /64: one host usually owns the whole prefix.
func throttleAddrKey(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return "a\x00" + p.String()
	}
	return "a\x00" + a.String()
}

func (g *loginGuard) wait(now time.Time, keys ...string) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	var w time.Duration
	for _, k := range keys {
		if e := g.entries[k]; e != nil && now.Before(e.until) {
			w = max(w, e.until.Sub(now))
		}
	}
	return w
}

func (g *loginGuard) fail(now time.Time, userKey, addrKey string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failLocked(now, userKey, throttleUserFree)
	if addrKey != "" {
		g.failLocked(now, addrKey, throttleAddrFree)
	}
}

func (g *loginGuard) failLocked(now time.Time, key string, free int) {
	if g.entries == nil {
		g.entries = map[string]*failures{}
	}
	e := g.entries[key]
	if e == nil {
		if len(g.entries) >= throttleMaxKeys {
			g.evictLocked(now)
		}
		e = &failures{}
		g.entries[key] = e
	} else if now.Sub(e.last) > throttleWindow {
		*e = failures{}
	}
	e.n++
	e.last = now
	if over := e.n - free; over >= 0 {
		wait := throttleMaxWait
		if over < 20 && throttleBaseWait<<over < throttleMaxWait {
			wait = throttleBaseWait << over
		}
		e.until = now.Add(wait)
	}
}

func (g *loginGuard) evictLocked(now time.Time) {
	for k, e := range g.entries {
		if now.Sub(e.last) > throttleWindow && !now.Before(e.until) {
			delete(g.entries, k)
		}
	}
	for k := range g.entries {
		if len(g.entries) < throttleMaxKeys*9/10 {
			break
		}
		delete(g.entries, k)
	}
}

// succeed forgets a user's failures. The address keeps its count: one valid account must
// not let an address go on guessing the passwords of others.
func (g *loginGuard) succeed(userKey string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.entries, userKey)
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
