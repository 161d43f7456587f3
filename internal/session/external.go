package session

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/netip"
	"time"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// TokenExternal is the kind of the (never stored) token of a principal authenticated by a
// trusted external JWT.
const TokenExternal = "external"

// ExternalIdentity is a verified token of a trusted external issuer.
type ExternalIdentity struct {
	Issuer   string
	Subject  string
	User     string    // the local user the token acts as (user_claim, else sub)
	Expiry   time.Time // the token's exp: the session's deadline while it is the newest
	IssuedAt time.Time // the token's iat (zero when it has none)
}

// extLogoutKind marks an (iss, sub) logged out: tokens issued before the logout may not
// open its session again (the seed: a logout invalidates the token). The record lives
// until the last of those tokens has expired.
const extLogoutKind = "ext_logout"

func extLogoutKey(tenant, issuer, subject string) string {
	sum := sha256.Sum256([]byte("ext-logout\x00" + tenant + "\x00" + issuer + "\x00" + subject))
	return "extlogout:" + hex.EncodeToString(sum[:])
}

// loggedOut reports whether id is a token from before a logout of its (iss, sub).
func loggedOut(ctx context.Context, tx store.Tx, tenant string, id ExternalIdentity) (bool, error) {
	mk, err := tx.GetToken(ctx, extLogoutKey(tenant, id.Issuer, id.Subject))
	if errors.Is(err, domain.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if mk.Kind != extLogoutKind || mk.Tenant != tenant || !tx.Now().Before(mk.ExpiresAt) {
		return false, nil
	}
	if !id.IssuedAt.IsZero() {
		// iat has whole seconds: a token of the logout's own second counts as before it.
		return !id.IssuedAt.After(mk.CreatedAt.Truncate(time.Second)), nil
	}
	return !id.Expiry.After(mk.ExpiresAt), nil
}

// externalSessionID is deterministic so that every token of one (iss, sub) continues one
// session, and concurrent first requests collide in the store instead of taking two seats.
func externalSessionID(tenant, issuer, subject string) string {
	sum := sha256.Sum256([]byte("external\x00" + tenant + "\x00" + issuer + "\x00" + subject))
	return "ext-" + hex.EncodeToString(sum[:16])
}

// External opens or continues the session of a verified external token's (iss, sub). Each
// newer token (a later exp) extends the session, and its seat, to that exp. The local user
// must exist and be enabled (else ErrInvalidToken).
func (m *Manager) External(ctx context.Context, tenant string, id ExternalIdentity, addr netip.Addr) (*Principal, error) {
	snap, err := m.cat.Get(ctx, tenant)
	if err != nil {
		return nil, err
	}
	if u := snap.Users[id.User]; u == nil || !u.Enabled {
		return nil, ErrInvalidToken
	}
	sid := externalSessionID(tenant, id.Issuer, id.Subject)
	// Most requests present a token the session already runs on: a read suffices.
	var s *domain.Session
	err = m.st.View(ctx, func(tx store.Tx) error {
		s = nil
		if out, err := loggedOut(ctx, tx, tenant, id); err != nil || out {
			return errors.Join(err, loggedOutErr(out))
		}
		cur, err := tx.GetSession(ctx, tenant, sid)
		if errors.Is(err, domain.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		// At max_lifetime there is nothing left to extend.
		capped := !cur.HardExpiry.IsZero() && !cur.ExpiresAt.Before(cur.HardExpiry)
		if tx.Now().Before(cur.ExpiresAt) && cur.User == id.User && (!id.Expiry.After(cur.ExpiresAt) || capped) {
			s = cur
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var ended *domain.Session
	for attempt := 0; s == nil; attempt++ {
		err = m.update(ctx, func(tx store.Tx) error {
			s, ended = nil, nil
			now := tx.Now()
			if !id.Expiry.After(now) {
				return ErrInvalidToken
			}
			if out, err := loggedOut(ctx, tx, tenant, id); err != nil || out {
				return errors.Join(err, loggedOutErr(out))
			}
			cur, err := tx.GetSession(ctx, tenant, sid)
			switch {
			case err == nil && now.Before(cur.ExpiresAt) && cur.User == id.User:
				if id.Expiry.After(cur.ExpiresAt) {
					if err := m.extendExternal(ctx, tx, snap, cur, id.Expiry, addr, now); err != nil {
						return err
					}
				}
				s = cur
				return nil
			case err == nil:
				// Expired, or the issuer now maps the subject to another user: a new session.
				if err := m.endTx(domain.WithEndReason(ctx, domain.EndExpired), tx, snap, cur, false); err != nil {
					return err
				}
				ended = cur
			case !errors.Is(err, domain.ErrNotFound):
				return err
			}
			ns := &domain.Session{
				// The device (the hw anchor) is the session's own id: a later session of
				// the same (iss, sub) takes back its lingering seat.
				ID: sid, Tenant: tenant, Kind: domain.SessionExternal, User: id.User, Device: sid,
				Scopes: []string{"all"}, ExtIssuer: id.Issuer, ExtSubject: id.Subject,
				CreatedAt: now, LastUsedAt: now, ExpiresAt: id.Expiry,
			}
			if p := snap.Tenant.Session; p.MaxLifetime > 0 {
				ns.HardExpiry = now.Add(p.MaxLifetime.D())
				if ns.HardExpiry.Before(ns.ExpiresAt) {
					ns.ExpiresAt = ns.HardExpiry
				}
			}
			if err := m.checkSessionLimit(ctx, tx, snap, id.User, now); err != nil {
				return err
			}
			if err := m.takeSeat(ctx, tx, snap, ns, addr, nil); err != nil {
				return err
			}
			if err := tx.InsertSession(ctx, ns); err != nil {
				return err
			}
			s = ns
			return nil
		})
		if errors.Is(err, domain.ErrConflict) && attempt < 3 {
			s = nil
			continue // a concurrent request opened it first: continue that one
		}
		if err != nil {
			return nil, err
		}
	}
	if ended != nil {
		m.ended(tenant, ended.ID)
	}
	exp := id.Expiry
	if s.ExpiresAt.Before(exp) {
		exp = s.ExpiresAt
	}
	return &Principal{
		Tenant:  tenant,
		Session: s,
		Token: &domain.Token{
			Tenant: tenant, Kind: TokenExternal, SessionID: s.ID, User: s.User, Scopes: s.Scopes,
			CreatedAt: s.LastUsedAt, ExpiresAt: exp,
		},
		Caller: CallerFor(snap, s),
	}, nil
}

// extendExternal moves an external session's deadline (and its seat lease) to exp.
func (m *Manager) extendExternal(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, s *domain.Session, exp time.Time, addr netip.Addr, now time.Time) error {
	s.LastUsedAt = now
	s.ExpiresAt = exp
	if !s.HardExpiry.IsZero() && s.HardExpiry.Before(exp) {
		s.ExpiresAt = s.HardExpiry
	}
	if err := m.extendSeat(ctx, tx, snap, s, addr); err != nil {
		return err
	}
	return tx.UpdateSession(ctx, s)
}

func loggedOutErr(out bool) error {
	if out {
		return ErrInvalidToken
	}
	return nil
}

// Logout ends the caller's session now; its seat lingers. For a session of a trusted
// external token it also records the logout, so that tokens issued before it cannot open
// the session again.
func (m *Manager) Logout(ctx context.Context, p *Principal) error {
	snap, err := m.cat.Get(ctx, p.Tenant)
	if err != nil {
		return err
	}
	ended := false
	err = m.update(ctx, func(tx store.Tx) error {
		ended = false
		s, err := tx.GetSession(ctx, p.Tenant, p.Session.ID)
		if errors.Is(err, domain.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		if s.Kind == domain.SessionExternal {
			key := extLogoutKey(s.Tenant, s.ExtIssuer, s.ExtSubject)
			until := s.ExpiresAt
			if p.Token != nil && p.Token.ExpiresAt.After(until) {
				until = p.Token.ExpiresAt
			}
			// Tokens are accepted a little past exp (clock leeway): so is the record kept.
			until = until.Add(time.Minute)
			if old, err := tx.GetToken(ctx, key); err == nil && old.ExpiresAt.After(until) {
				until = old.ExpiresAt
			}
			if _, err := tx.DeleteToken(ctx, key); err != nil {
				return err
			}
			if err := tx.InsertToken(ctx, &domain.Token{
				Hash: key, Tenant: s.Tenant, Kind: extLogoutKind, User: s.User,
				CreatedAt: tx.Now(), ExpiresAt: until,
			}); err != nil {
				return err
			}
		}
		ended = true
		return m.endTx(ctx, tx, snap, s, true)
	})
	if err == nil && ended {
		m.ended(p.Tenant, p.Session.ID)
	}
	return err
}
