// Package session opens, authenticates, extends and ends sessions. A session that carries a
// licensed scope holds a lease on its tenant's session item, taken through the engine in the
// same store transaction that creates the session: a session never lives without its seat.
package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
	"github.com/leasehold/leasehold/internal/store"
	"github.com/leasehold/leasehold/internal/throttle"
	"github.com/leasehold/leasehold/internal/tokenhash"
)

// Errors callers map to HTTP answers.
var (
	ErrInvalidToken  = errors.New("invalid or expired token")
	ErrInvalidScope  = errors.New("invalid scope")
	ErrTenantUnknown = errors.New("unknown tenant")
)

// SeatError is a licensed grant refused for want of a seat (or of a license): the engine's
// answer, which callers map to their protocol's error.
type SeatError = engine.SeatError

// Manager is the session service.
type Manager struct {
	st  store.Store
	cat *catalog.Cache
	eng *engine.Engine
	// guard throttles failed password logins (login.go).
	guard throttle.Limiter
	// onEnd, when set, runs after a transaction that ended sessions has committed (to
	// delete their documents); see SetEndHook.
	onEnd func(tenant, sessionID string)
	// auth caches resolved access and cookie tokens (authcache.go).
	auth *authCache
	// tokens gives every token its stored form (one key for the whole store).
	tokens *tokenhash.Hasher
}

// HashToken is the stored form of a token: what the store keeps in its place.
func (m *Manager) HashToken(plain string) string { return m.tokens.Hash(plain) }

func NewManager(st store.Store, cat *catalog.Cache, eng *engine.Engine) *Manager {
	return &Manager{st: st, cat: cat, eng: eng, auth: newAuthCache(), tokens: tokenhash.New(st.TokenKey())}
}

// Principal is an authenticated request's identity.
type Principal struct {
	Tenant  string
	Session *domain.Session
	Token   *domain.Token
	Caller  engine.Caller
}

// Grant is what a token endpoint answers.
type Grant struct {
	AccessToken  string
	RefreshToken string
	ExpiresIn    int
	Scopes       []string
	Session      *domain.Session
}

// Licensed reports whether scopes include one that takes a seat.
func Licensed(p domain.SessionPolicy, scopes []string) bool {
	for _, s := range scopes {
		if s != "offline_access" && !slices.Contains(p.FreeScopes, s) {
			return true
		}
	}
	return false
}

// ClientScopes resolves the requested scope string against what the client may ask for.
// Without a request the client gets `all` when it has it, else all its scopes.
func ClientScopes(c *domain.Client, requested string) ([]string, error) {
	fields := strings.Fields(requested)
	if len(fields) == 0 {
		if slices.Contains(c.Scopes, "all") {
			return []string{"all"}, nil
		}
		var out []string
		for _, s := range c.Scopes {
			if s != "offline_access" {
				out = append(out, s)
			}
		}
		return out, nil
	}
	var out []string
	for _, s := range fields {
		if !slices.Contains(c.Scopes, s) {
			return nil, fmt.Errorf("%w: %q is not allowed for this client", ErrInvalidScope, s)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// ClientUser is the user a client's tokens act as: its configured user, else its own id.
func ClientUser(c *domain.Client) string {
	if c.User != "" {
		return c.User
	}
	return c.ClientID
}

// CallerFor builds the engine's view of a session's identity.
func CallerFor(snap *catalog.Snapshot, s *domain.Session) engine.Caller {
	c := engine.Caller{User: s.User, Client: s.Client, Licensed: Licensed(snap.Tenant.Session, s.Scopes)}
	if u := snap.Users[s.User]; u != nil {
		c.Organization = u.Organization
	} else if cl := snap.Clients[s.Client]; cl != nil {
		c.Organization = cl.Organization
	}
	return c
}

// deadline is when a session ends if nothing extends it.
func deadline(p domain.SessionPolicy, s *domain.Session, hasRefresh bool, now time.Time) time.Time {
	var d time.Time
	switch {
	case hasRefresh && p.RefreshTokenTTL > 0:
		d = now.Add(p.RefreshTokenTTL.D())
	case p.IdleTimeout > 0 && !s.NoIdle:
		d = now.Add(p.IdleTimeout.D())
	default:
		// "Never" still needs a finite lease expiry: the cookie lifetime is the longest
		// any client can hold a session.
		d = now.Add(p.CookieMaxAge.D())
	}
	if !s.HardExpiry.IsZero() && s.HardExpiry.Before(d) {
		d = s.HardExpiry
	}
	return d
}

// issue creates a new token family for the session: an access token and, when asked, a
// refresh token.
func (m *Manager) issue(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, s *domain.Session, client string, scopes []string, withRefresh bool, now time.Time) (*Grant, error) {
	policy := snap.Tenant.Session
	family := NewID()
	access, accessHash := m.tokens.New()
	exp := now.Add(policy.AccessTokenTTL.D())
	if exp.After(s.ExpiresAt) {
		exp = s.ExpiresAt
	}
	if err := tx.InsertToken(ctx, &domain.Token{
		Hash: accessHash, Tenant: s.Tenant, Kind: domain.TokenAccess, SessionID: s.ID, FamilyID: family,
		ClientID: client, User: s.User, Scopes: scopes, CreatedAt: now, ExpiresAt: exp,
	}); err != nil {
		return nil, err
	}
	g := &Grant{AccessToken: access, ExpiresIn: int(exp.Sub(now).Round(time.Second) / time.Second), Scopes: scopes, Session: s}
	if withRefresh {
		refresh, refreshHash := m.tokens.New()
		if err := tx.InsertToken(ctx, &domain.Token{
			Hash: refreshHash, Tenant: s.Tenant, Kind: domain.TokenRefresh, SessionID: s.ID, FamilyID: family,
			ClientID: client, User: s.User, Scopes: scopes, CreatedAt: now, ExpiresAt: s.ExpiresAt,
		}); err != nil {
			return nil, err
		}
		g.RefreshToken = refresh
	}
	return g, nil
}

// End ends a session now. With linger its seat lingers (logoff); without, it is freed.
func (m *Manager) End(ctx context.Context, tenant, id string, linger bool) (bool, error) {
	snap, err := m.cat.Get(ctx, tenant)
	if err != nil {
		return false, err
	}
	var ended bool
	err = m.update(ctx, func(tx store.Tx) error {
		ended = false
		s, err := tx.GetSession(ctx, tenant, id)
		if errors.Is(err, domain.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		ended = true
		return m.endTx(ctx, tx, snap, s, linger)
	})
	if err == nil && ended {
		m.ended(tenant, id)
	}
	return ended, err
}

// EndLease ends a lease for the admin API. A session's seat lease ends with the sessions
// that hold it, since a session never lives without its seat (SPEC §1): they end, and the
// seat is freed at once. Any other lease is the engine's EndLease (freed at once, except a
// live checkout without force). Found is false when id names no lease.
func (m *Manager) EndLease(ctx context.Context, tenant, id string, force bool) (engine.EndResult, error) {
	snap, err := m.cat.Get(ctx, tenant)
	if err != nil {
		return engine.EndResult{}, err
	}
	var res engine.EndResult
	var ended []string
	err = m.update(ctx, func(tx store.Tx) error {
		res, ended = engine.EndResult{}, nil
		l, err := tx.FindLease(ctx, tenant, id)
		if errors.Is(err, domain.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		if l.SessionID == "" {
			res, err = m.eng.EndLeaseTx(ctx, tx, snap, l, force)
			return err
		}
		res = engine.EndResult{Found: true, Freed: true}
		ended, err = m.endSessionsOfLease(ctx, tx, snap, l)
		return err
	})
	if err != nil {
		return engine.EndResult{}, err
	}
	for _, id := range ended {
		m.ended(tenant, id)
	}
	return res, nil
}

// EndByLease is EndLease for a session's seat lease only: isSession is false, and nothing
// is done, when the id names no lease or a lease of no session.
func (m *Manager) EndByLease(ctx context.Context, tenant, leaseID string) (isSession bool, err error) {
	snap, err := m.cat.Get(ctx, tenant)
	if err != nil {
		return false, err
	}
	var ended []string
	err = m.update(ctx, func(tx store.Tx) error {
		isSession, ended = false, nil
		l, err := tx.FindLease(ctx, tenant, leaseID)
		if errors.Is(err, domain.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		if l.SessionID == "" {
			return nil
		}
		isSession = true
		ended, err = m.endSessionsOfLease(ctx, tx, snap, l)
		return err
	})
	if err != nil {
		return false, err
	}
	for _, id := range ended {
		m.ended(tenant, id)
	}
	return isSession, nil
}

// endSessionsOfLease ends, without linger, every session holding seat lease l, and so the
// lease; it returns the ids of the sessions ended.
func (m *Manager) endSessionsOfLease(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, l *domain.Lease) ([]string, error) {
	list, err := tx.ListSessions(ctx, l.Tenant, store.LeaseFilter{LeaseRoot: l.Root})
	if err != nil {
		return nil, err
	}
	var ended []string
	for i := range list {
		if err := m.endTx(ctx, tx, snap, &list[i], false); err != nil {
			return nil, err
		}
		ended = append(ended, list[i].ID)
	}
	if len(list) == 0 {
		// A seat lease whose sessions are gone already: the engine frees it all the same.
		err = m.eng.EndSessionSeat(ctx, tx, snap, l.Tenant, l.Root, false)
	}
	return ended, err
}

// endTx deletes the session and its tokens, and has the engine end its seat (which it
// keeps while another live session shares the lease).
func (m *Manager) endTx(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, s *domain.Session, linger bool) error {
	if s.Kind == domain.SessionClientCredentials {
		if err := lockSession(ctx, tx, s.ID); err != nil {
			return err
		}
	}
	if err := m.endItems(ctx, tx, snap, s, linger); err != nil {
		return err
	}
	if _, err := tx.DeleteSession(ctx, s.Tenant, s.ID); err != nil {
		return err
	}
	return m.eng.EndSessionSeat(ctx, tx, snap, s.Tenant, s.LeaseRoot, linger)
}

// Sweep ends (without linger: their leases expire with them) up to limit expired sessions.
func (m *Manager) Sweep(ctx context.Context, limit int) (int, error) {
	var expired []domain.Session
	err := m.st.View(ctx, func(tx store.Tx) error {
		var err error
		expired, err = tx.ExpiredSessions(ctx, tx.Now(), limit)
		return err
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range expired {
		deleted := false
		err := m.update(ctx, func(tx store.Tx) error {
			deleted = false
			cur, err := tx.GetSession(ctx, s.Tenant, s.ID)
			if errors.Is(err, domain.ErrNotFound) || (err == nil && tx.Now().Before(cur.ExpiresAt)) {
				return nil // gone or extended meanwhile
			} else if err != nil {
				return err
			}
			deleted, err = tx.DeleteSession(ctx, s.Tenant, s.ID)
			return err
		})
		if err != nil {
			return n, err
		}
		if deleted {
			m.ended(s.Tenant, s.ID)
		}
		n++
	}
	if err := m.update(ctx, func(tx store.Tx) error {
		_, err := tx.DeleteExpiredTokens(ctx, tx.Now(), limit)
		return err
	}); err != nil {
		return n, err
	}
	return n, nil
}

// EndAll ends every session of a user; their seats linger, as at a logout.
func (m *Manager) EndAll(ctx context.Context, tenant, user string) (int, error) {
	var list []domain.Session
	err := m.st.View(ctx, func(tx store.Tx) error {
		var err error
		list, err = tx.ListSessions(ctx, tenant, store.LeaseFilter{User: user})
		return err
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range list {
		ended, err := m.End(ctx, tenant, s.ID, true)
		if err != nil {
			return n, err
		}
		if ended {
			n++
		}
	}
	return n, nil
}
