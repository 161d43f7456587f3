// Package session opens, authenticates, extends and ends sessions. A session that carries a
// licensed scope holds a lease on its tenant's session item, taken through the engine in the
// same store transaction that creates the session: a session never lives without its seat.
package session

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
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

// clientSessionID is deterministic so that concurrent first grants of one client collide
// in the store (the loser rejoins) instead of opening two sessions and burning two seats.
func clientSessionID(tenant, client string) string {
	sum := sha256.Sum256([]byte("client_credentials\x00" + tenant + "\x00" + client))
	return "cc-" + hex.EncodeToString(sum[:16])
}

// lockSession makes a client_credentials grant and the end of the client's session run one
// after the other where Updates run side by side (Tx.LockKey: PostgreSQL, READ
// COMMITTED). Otherwise a grant that read the live session could add its tokens after the
// end deleted the session's tokens; and since the client's session id is always the same
// (clientSessionID), the client's next session would bring those tokens back to life. With
// the lock, the end deletes every token a grant committed before it, and a grant after it
// reads no session and opens a new one.
func lockSession(ctx context.Context, tx store.Tx, id string) error {
	return tx.LockKey(ctx, "session:"+id)
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

// ClientCredentials opens (or rejoins) the client's session and issues a new token family.
// A rejoin before the session's refresh point that changes nothing of the session only
// inserts the new tokens (rejoinsAsIs); otherwise it extends the session and renews its seat.
func (m *Manager) ClientCredentials(ctx context.Context, tenant string, client *domain.Client, scopes []string, device string, addr netip.Addr) (*Grant, error) {
	return m.ClientCredentialsQueued(ctx, tenant, client, scopes, device, addr, 0)
}

// ClientCredentialsQueued is ClientCredentials that waits up to queue for a seat, first
// come first served, when none is free (queue= on the token endpoint).
func (m *Manager) ClientCredentialsQueued(ctx context.Context, tenant string, client *domain.Client, scopes []string, device string, addr netip.Addr, queue time.Duration) (*Grant, error) {
	snap, err := m.cat.Get(ctx, tenant)
	if err != nil {
		return nil, err
	}
	policy := snap.Tenant.Session
	withRefresh := client.RefreshWithClientCredentials
	id := clientSessionID(tenant, client.ClientID)
	if device == "" {
		device = NewID() // a login without a device id gets one (SPEC §4): it anchors `hw`
	}
	var g *Grant
	open := func(ctx context.Context) error {
		for attempt := 0; ; attempt++ {
			err := m.updateAdding(ctx, func(tx store.Tx, onlyAdded *bool) error {
				g = nil
				if err := lockSession(ctx, tx, id); err != nil {
					return err
				}
				now := tx.Now()
				s, err := tx.GetSession(ctx, tenant, id)
				switch {
				case err == nil && now.Before(s.ExpiresAt) && rejoinsAsIs(policy, s, scopes, withRefresh, now):
					// Use before the refresh point: the session and its seat lease stay as they
					// are (SPEC §1: written only once past rfr), and the new tokens end by the
					// session's current deadline at the latest (issue caps them).
					*onlyAdded = true
				case err == nil && now.Before(s.ExpiresAt):
					// Rejoin: the same session (and seat), a new token family. Scopes follow the
					// latest grant, but a free-scope session cannot become licensed without a seat.
					// (takeSeat reads the new scopes; the seat's hw is the session's device, as
					// touch renews it.)
					s.Scopes = scopes
					if Licensed(policy, scopes) && !s.Licensed {
						if err := m.takeSeat(ctx, tx, snap, s, addr, nil); err != nil {
							return err
						}
					}
					if err := m.touch(ctx, tx, snap, s, addr, withRefresh, now); err != nil {
						return err
					}
				case err == nil:
					if err := m.endTx(ctx, tx, snap, s, false); err != nil {
						return err
					}
					fallthrough
				case errors.Is(err, domain.ErrNotFound):
					s = &domain.Session{
						ID: id, Tenant: tenant, Kind: domain.SessionClientCredentials,
						User: ClientUser(client), Client: client.ClientID, Device: device,
						Scopes: scopes, CreatedAt: now, LastUsedAt: now, Refreshable: withRefresh,
					}
					if policy.MaxLifetime > 0 {
						s.HardExpiry = now.Add(policy.MaxLifetime.D())
					}
					s.ExpiresAt = deadline(policy, s, withRefresh, now)
					if Licensed(policy, scopes) {
						if err := m.takeSeat(ctx, tx, snap, s, addr, nil); err != nil {
							return err
						}
					}
					if err := tx.InsertSession(ctx, s); err != nil {
						return err
					}
				default:
					return err
				}
				g, err = m.issue(ctx, tx, snap, s, client.ClientID, scopes, withRefresh, now)
				return err
			})
			if errors.Is(err, domain.ErrConflict) && attempt < 3 {
				continue // another grant created the session first: rejoin it
			}
			return err
		}
	}
	if queue <= 0 {
		if err := open(ctx); err != nil {
			return nil, err
		}
		return g, nil
	}
	qctx := engine.WithQueuedSeat(ctx)
	seat := engine.SessionSeat{Tenant: tenant, SessionID: id,
		Caller: CallerFor(snap, &domain.Session{User: ClientUser(client), Client: client.ClientID, Scopes: scopes}),
		Device: device, ClientIP: addr}
	if err := m.eng.WaitSessionSeat(qctx, seat, queue, open(qctx), open); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		// The client went away while it waited: it holds no seat.
		_, _ = m.End(context.WithoutCancel(ctx), tenant, id, false)
		return nil, ctx.Err()
	}
	return g, nil
}

// rejoinsAsIs reports whether a client_credentials grant may rejoin the live session s
// without writing it: the session is before its refresh point, so extending it (and renewing
// its seat lease) can wait for a later use, and the grant changes nothing the session row
// holds (its scopes, whether it takes a seat, its deadline policy). The session's deadline
// then stays where it is: it does not move before rfr, whatever uses the session. And the
// grant's access token must still get its whole access_token_ttl (expires_in is what the
// README and the client expect) unless max_lifetime caps it anyway: otherwise the session is
// extended, as before.
func rejoinsAsIs(policy domain.SessionPolicy, s *domain.Session, scopes []string, withRefresh bool, now time.Time) bool {
	fullToken := !now.Add(policy.AccessTokenTTL.D()).After(s.ExpiresAt) ||
		(!s.HardExpiry.IsZero() && !s.ExpiresAt.Before(s.HardExpiry))
	return fullToken && !pastRefresh(s, now) && s.Refreshable == withRefresh && slices.Equal(s.Scopes, scopes) &&
		(s.Licensed || !Licensed(policy, scopes))
}

// takeSeat takes the seat of session s when its scopes make it licensed; rc, a login
// token's seat, is the engine's to grant or not.
func (m *Manager) takeSeat(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, s *domain.Session, addr netip.Addr, rc *engine.Reclaim) error {
	s.Licensed = Licensed(snap.Tenant.Session, s.Scopes)
	if !s.Licensed {
		return nil
	}
	seat := seatOf(snap, s, addr)
	seat.Reclaim = rc
	g, err := m.eng.TakeSessionSeat(ctx, tx, snap, seat)
	if err != nil {
		return err
	}
	recordSeat(s, g)
	return nil
}

// extendSeat moves the seat lease of a licensed session to its new deadline (s.ExpiresAt),
// which the engine may bring forward to the license's end.
// Its item leases follow it (extendItems), to the deadline the seat leaves.
func (m *Manager) extendSeat(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, s *domain.Session, addr netip.Addr) error {
	if !s.Licensed {
		return nil
	}
	if s.LeaseRoot != "" {
		seat := seatOf(snap, s, addr)
		seat.LeaseID = s.LeaseRoot
		g, err := m.eng.ExtendSessionSeat(ctx, tx, snap, seat)
		if err != nil {
			return err
		}
		recordSeat(s, g)
	}
	return m.extendItems(ctx, tx, snap, s, addr)
}

// seatOf describes session s to the engine. The seat is the session's, whatever the scopes
// of its latest grant: a licensed session that a client rejoins with a free scope keeps and
// renews its seat (its earlier tokens still use it), and the free-scope grant is never
// refused for it (SPEC §1).
func seatOf(snap *catalog.Snapshot, s *domain.Session, addr netip.Addr) engine.SessionSeat {
	caller := CallerFor(snap, s)
	caller.Licensed = s.Licensed
	return engine.SessionSeat{
		Tenant: s.Tenant, SessionID: s.ID, Caller: caller, Device: s.Device,
		Expiry: s.ExpiresAt, ClientIP: addr,
	}
}

// recordSeat keeps what the engine decided for the session: its lease, its hw anchor (a
// reclaimed seat's, so that the seat's keys stay those its lease was made with) and a
// deadline no later than the license's end.
func recordSeat(s *domain.Session, g engine.SessionGrant) {
	s.Device = g.Device
	if g.Lease != nil {
		s.LeaseLicense, s.LeaseRoot = g.Lease.LicenseID, g.Lease.Root
	}
	s.ExpiresAt = g.Expiry
}

// touch extends a session that is being used, and its seat lease with it.
func (m *Manager) touch(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, s *domain.Session, addr netip.Addr, hasRefresh bool, now time.Time) error {
	s.LastUsedAt = now
	s.ExpiresAt = deadline(snap.Tenant.Session, s, hasRefresh, now)
	if err := m.extendSeat(ctx, tx, snap, s, addr); err != nil {
		return err
	}
	return tx.UpdateSession(ctx, s)
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
		s, err := tx.GetSession(ctx, p.Tenant, p.Session.ID)
		if errors.Is(err, domain.ErrNotFound) {
			return ErrInvalidToken
		} else if err != nil {
			return err
		}
		if !now.Before(s.ExpiresAt) {
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
	s, err := tx.GetSession(ctx, t.Tenant, t.SessionID)
	if errors.Is(err, domain.ErrNotFound) {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, err
	}
	if !now.Before(s.ExpiresAt) {
		return nil, nil, nil
	}
	return t, s, nil
}
