package session

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// Authenticate resolves a bearer access token. tenant is the tenant the request names
// explicitly ("" when none): a token of another tenant is refused.
func (m *Manager) Authenticate(ctx context.Context, tenant, bearer string, addr netip.Addr) (*Principal, error) {
	return m.authenticateToken(ctx, tenant, bearer, domain.TokenAccess, addr)
}

// authenticateToken resolves an opaque token of the given kind (access, cookie).
func (m *Manager) authenticateToken(ctx context.Context, tenant, bearer, kind string, addr netip.Addr) (*Principal, error) {
	if bearer == "" || len(bearer) > 512 {
		return nil, ErrInvalidToken
	}
	hash := m.tokens.Hash(bearer)
	p, stale, err := m.resolveToken(ctx, hash)
	if err != nil {
		return nil, err
	}
	if p.Token.Kind != kind || (tenant != "" && p.Tenant != tenant) {
		return nil, ErrInvalidToken
	}
	snap, err := m.cat.Get(ctx, p.Tenant)
	if err != nil {
		return nil, err
	}
	// A disabled or removed client or user: its live tokens stop working at once.
	if p.Token.ClientID != "" {
		if c := snap.Clients[p.Token.ClientID]; c == nil || !c.Enabled {
			return nil, ErrInvalidToken
		}
	}
	if u := snap.Users[p.Session.User]; u != nil && !u.Enabled {
		return nil, ErrInvalidToken
	} else if u == nil && p.Session.User != p.Session.Client {
		return nil, ErrInvalidToken
	}
	p.Caller = CallerFor(snap, p.Session)
	if stale {
		if err := m.extend(ctx, snap, p, addr); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// resolveToken loads a live token and its live session for an authentication (see lookup),
// as a Principal the caller owns. stale: the session is due for an extension on use.
func (m *Manager) resolveToken(ctx context.Context, hash string) (p *Principal, stale bool, err error) {
	t, s, stale, err := m.lookup(ctx, hash, true)
	if err != nil {
		return nil, false, err
	}
	return &Principal{Tenant: t.Tenant, Session: cloneSession(s), Token: cloneToken(t)}, stale, nil
}

// lookup loads a live token (access, cookie or refresh: the caller checks the kind and the
// tenant, and the catalog, on every request) and its live session: from the cache when it
// may, else from the store, and then caches them. forUse: for an authentication, which the
// cache may not answer once the session is due for an extension. The token and session may
// be the cache's own: read them, never change them. stale (only from the store): the session
// extends on use and is past its refresh point.
func (m *Manager) lookup(ctx context.Context, hash string, forUse bool) (t *domain.Token, s *domain.Session, stale bool, err error) {
	e, err := m.auth.get(hash, forUse, func() (time.Time, error) { return m.st.Now(ctx) })
	if err != nil {
		return nil, nil, false, err
	} else if e != nil {
		return &e.tok, &e.sess, false, nil
	}
	return m.load(ctx, hash)
}

// load is lookup's miss: a read transaction, and its result cached. (Apart, so that what its
// closure captures costs the hits no allocation.)
func (m *Manager) load(ctx context.Context, hash string) (t *domain.Token, s *domain.Session, stale bool, err error) {
	gen := m.auth.generation()
	var now time.Time
	err = m.st.View(ctx, func(tx store.Tx) error {
		t, s, stale = nil, nil, false
		now = tx.Now()
		var err error
		t, s, err = liveToken(ctx, tx, hash, now, domain.TokenAccess, domain.TokenCookie, domain.TokenRefresh, domain.TokenGatewayCookie)
		if err != nil {
			return err
		} else if t == nil {
			return ErrInvalidToken
		}
		stale = extendsOnUse(s) && pastRefresh(s, now)
		return nil
	})
	if err != nil {
		return nil, nil, false, err
	}
	m.auth.put(hash, t, s, gen, now)
	return t, s, stale, nil
}

// extendsOnUse: a session without a refresh token lives while it is used (idle_timeout);
// one with lives while its refresh token is valid, and only a refresh (or a rejoining
// client_credentials grant) extends it.
func extendsOnUse(s *domain.Session) bool { return !s.Refreshable }

// pastRefresh: a session is extended (written) only once past the refresh point of its
// current window, so use does not cost a write per request.
func pastRefresh(s *domain.Session, now time.Time) bool { return now.After(refreshPoint(s)) }

// refreshPoint is the session's rfr: 80 % into the window from its last extension to its
// deadline.
func refreshPoint(s *domain.Session) time.Time {
	return s.LastUsedAt.Add(s.ExpiresAt.Sub(s.LastUsedAt) * 8 / 10)
}

func (m *Manager) extend(ctx context.Context, snap *catalog.Snapshot, p *Principal, addr netip.Addr) error {
	return m.update(ctx, func(tx store.Tx) error {
		now := tx.Now()
		s, err := liveSession(ctx, tx, p.Tenant, p.Session.ID, now)
		if err != nil {
			return err
		}
		if s == nil {
			return ErrInvalidToken
		}
		if !pastRefresh(s, now) {
			p.Session = s
			return nil // another request extended it meanwhile
		}
		if err := m.touch(ctx, tx, snap, s, addr, false, now); err != nil {
			return err
		}
		p.Session = s
		return nil
	})
}

// liveToken reads a token of one of kinds and its session; both must be live at now. It
// answers nil (and no error) for anything else: unknown, expired, another kind, session gone.
func liveToken(ctx context.Context, tx store.Tx, hash string, now time.Time, kinds ...string) (*domain.Token, *domain.Session, error) {
	t, err := tx.GetToken(ctx, hash)
	if errors.Is(err, domain.ErrNotFound) {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, err
	}
	if !slices.Contains(kinds, t.Kind) || !now.Before(t.ExpiresAt) {
		return nil, nil, nil
	}
	s, err := liveSession(ctx, tx, t.Tenant, t.SessionID, now)
	if s == nil || err != nil {
		return nil, nil, err
	}
	return t, s, nil
}

// liveSession reads a session that is live at now: the one place that says so. It answers
// nil (and no error) for a session that has ended, whether its row is gone or its
// deadline has passed and no sweep has removed it yet.
func liveSession(ctx context.Context, tx store.Tx, tenant, id string, now time.Time) (*domain.Session, error) {
	s, err := tx.GetSession(ctx, tenant, id)
	if errors.Is(err, domain.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if !s.Live(now) {
		return nil, nil
	}
	return s, nil
}
