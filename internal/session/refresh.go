package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// Refresh rotates a refresh token (RFC 6749 §6, RFC 9700 §4.14.2), in one store
// transaction:
//
//   - a live refresh token yields a new access and refresh token in the same family; the
//     presented refresh token and the access token issued with it die; the session's
//     deadline slides to now + refresh_token_ttl and its seat lease is extended with it;
//   - within refresh_grace of its rotation, the previous refresh token may be presented again
//     (a lost response): it yields a fresh pair, and the pair it displaced dies;
//   - any other rotated refresh token of a live family is a replay: the family is revoked,
//     and a session left without live tokens ends (its seat lingers).
//
// clientID is the authenticated OAuth2 client, "" for tokens of the session API: a token
// refreshes only for the client it was issued to. Every refusal is ErrInvalidGrant (wrapped
// with the reason); a refused seat renewal is a *SeatError.
func (m *Manager) Refresh(ctx context.Context, tenant, refreshToken, clientID string, addr netip.Addr) (*Grant, error) {
	return m.RefreshScopes(ctx, tenant, refreshToken, clientID, nil, addr)
}

// RefreshScopes is Refresh where the new access token may carry fewer scopes than were
// granted (RFC 6749 §6 `scope`); the new refresh token keeps the granted ones. nil: all.
func (m *Manager) RefreshScopes(ctx context.Context, tenant, refreshToken, clientID string, scopes []string, addr netip.Addr) (*Grant, error) {
	if refreshToken == "" || len(refreshToken) > 512 {
		return nil, invalidGrant("the refresh token is missing or malformed")
	}
	snap, err := m.cat.Get(ctx, tenant)
	if err != nil {
		return nil, err
	}
	hash := m.tokens.Hash(refreshToken)
	var g *Grant
	var replayed bool
	var ended string
	for attempt := 1; ; attempt++ {
		err = m.update(ctx, func(tx store.Tx) error {
			g, replayed, ended = nil, false, ""
			// Concurrent retries of one refresh token run one after the other: otherwise one
			// could read the rotation record while another displaces its successor, and take
			// a grace retry for a replay (PostgreSQL, READ COMMITTED).
			if err := tx.LockKey(ctx, "refresh:"+hash); err != nil {
				return err
			}
			t, err := tx.GetToken(ctx, hash)
			if errors.Is(err, domain.ErrNotFound) {
				g, replayed, ended, err = m.refreshRotated(ctx, tx, snap, tenant, hash, clientID, scopes, addr)
				return err
			} else if err != nil {
				return err
			}
			now := tx.Now()
			if t.Kind != domain.TokenRefresh || t.Tenant != tenant || !now.Before(t.ExpiresAt) {
				return invalidGrant("unknown, expired or revoked refresh token")
			}
			if t.ClientID != clientID {
				return invalidGrant("the refresh token was issued to another client")
			}
			s, err := m.refreshableSession(ctx, tx, snap, t)
			if err != nil {
				return err
			}
			if ok, err := tx.DeleteToken(ctx, hash); err != nil {
				return err
			} else if !ok {
				return errRaced
			}
			if err := killAccess(ctx, tx, t); err != nil {
				return err
			}
			var newHash string
			g, newHash, err = m.rotate(ctx, tx, snap, s, t, scopes, addr)
			if err != nil {
				return err
			}
			// The rotated token's record: when, and by what, it was replaced.
			marker := *t
			marker.Hash = rotatedKey(hash)
			marker.ExpiresAt = s.ExpiresAt
			marker.Data, err = jsonData(refreshData{RotatedAt: now, Successor: newHash})
			if err != nil {
				return err
			}
			return tx.InsertToken(ctx, &marker)
		})
		if errors.Is(err, errRaced) && attempt < raceAttempts {
			continue
		}
		if errors.Is(err, errRaced) {
			err = invalidGrant("the refresh token was used concurrently")
		}
		if err == nil && ended != "" {
			m.ended(tenant, ended)
		}
		if err == nil && replayed {
			err = invalidGrant("the refresh token was already used; its token family has been revoked")
		}
		if err != nil {
			return nil, err
		}
		return g, nil
	}
}

// refreshRotated handles a refresh token that is no longer live: a retry within the grace
// period (a fresh pair, displacing the one issued by the rotation), or a replay (the family
// is revoked; replayed is true and the caller must commit and then refuse; ended names the
// session that ended with it).
func (m *Manager) refreshRotated(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, tenant, hash, clientID string, scopes []string, addr netip.Addr) (g *Grant, replayed bool, ended string, err error) {
	now := tx.Now()
	mk, err := tx.GetToken(ctx, rotatedKey(hash))
	if errors.Is(err, domain.ErrNotFound) {
		return nil, false, "", invalidGrant("unknown, expired or revoked refresh token")
	} else if err != nil {
		return nil, false, "", err
	}
	if mk.Tenant != tenant || mk.ClientID != clientID || !now.Before(mk.ExpiresAt) {
		return nil, false, "", invalidGrant("unknown, expired or revoked refresh token")
	}
	var rd refreshData
	if err := decodeData(mk.Data, &rd); err != nil {
		return nil, false, "", fmt.Errorf("refresh token data: %w", err)
	}
	grace := snap.Tenant.Session.RefreshGrace.D()
	if grace > 0 && now.Before(rd.RotatedAt.Add(grace)) {
		// Only the immediate predecessor of the live refresh token qualifies: when its
		// successor was itself rotated, presenting it is a replay.
		succ, err := tx.GetToken(ctx, rd.Successor)
		switch {
		case err == nil && succ.Kind == domain.TokenRefresh && now.Before(succ.ExpiresAt):
			s, err := m.refreshableSession(ctx, tx, snap, succ)
			if err != nil {
				return nil, false, "", err
			}
			if ok, err := tx.DeleteToken(ctx, succ.Hash); err != nil {
				return nil, false, "", err
			} else if !ok {
				return nil, false, "", errRaced
			}
			if err := killAccess(ctx, tx, succ); err != nil {
				return nil, false, "", err
			}
			g, newHash, err := m.rotate(ctx, tx, snap, s, mk, scopes, addr)
			if err != nil {
				return nil, false, "", err
			}
			// The grace period still counts from the first rotation.
			if _, err := tx.DeleteToken(ctx, mk.Hash); err != nil {
				return nil, false, "", err
			}
			mk.ExpiresAt = s.ExpiresAt
			if mk.Data, err = jsonData(refreshData{RotatedAt: rd.RotatedAt, Successor: newHash}); err != nil {
				return nil, false, "", err
			}
			return g, false, "", tx.InsertToken(ctx, mk)
		case err != nil && !errors.Is(err, domain.ErrNotFound):
			return nil, false, "", err
		}
	}
	// A replayed refresh token revokes its family (session.ended: revoked).
	ended, err = m.revokeFamilyTx(domain.WithEndReason(ctx, domain.EndRevoked), tx, snap, mk.Tenant, mk.SessionID, mk.FamilyID)
	return nil, true, ended, err
}

// refreshableSession loads the live session of refresh token t and checks that its client
// and user may still use it.
func (m *Manager) refreshableSession(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, t *domain.Token) (*domain.Session, error) {
	s, err := liveSession(ctx, tx, t.Tenant, t.SessionID, tx.Now())
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, invalidGrant("the session of this refresh token has ended")
	}
	if !principalAllowed(snap, t, s) {
		return nil, invalidGrant("the client or user of this refresh token is disabled or removed")
	}
	return s, nil
}

// rotate slides the session (and its seat lease) and issues the new pair in t's family.
func (m *Manager) rotate(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, s *domain.Session, t *domain.Token, scopes []string, addr netip.Addr) (*Grant, string, error) {
	accessScopes := t.Scopes
	if scopes != nil {
		for _, sc := range scopes {
			if !slices.Contains(t.Scopes, sc) {
				return nil, "", fmt.Errorf("%w: %q was not granted", ErrInvalidScope, sc)
			}
		}
		accessScopes = scopes
	}
	now := tx.Now()
	if err := m.touch(ctx, tx, snap, s, addr, true, now); err != nil {
		return nil, "", err
	}
	return m.issuePairHashes(ctx, tx, snap, s, t.FamilyID, t.ClientID, accessScopes, t.Scopes, true, now)
}

// killAccess deletes the access token issued together with refresh token t. Tokens issued by
// issue (no record of their access token) have theirs found by family.
func killAccess(ctx context.Context, tx store.Tx, t *domain.Token) error {
	var rd refreshData
	if len(t.Data) > 0 {
		if err := decodeData(t.Data, &rd); err != nil {
			return fmt.Errorf("refresh token data: %w", err)
		}
	}
	if rd.Access != "" {
		_, err := tx.DeleteToken(ctx, rd.Access)
		return err
	}
	list, err := tx.ListTokens(ctx, t.Tenant, domain.TokenAccess, t.User)
	if err != nil {
		return err
	}
	for _, a := range list {
		if a.SessionID == t.SessionID && a.FamilyID == t.FamilyID {
			if _, err := tx.DeleteToken(ctx, a.Hash); err != nil {
				return err
			}
		}
	}
	return nil
}

// revokeFamilyTx deletes every token of a family; a session left without a live credential
// ends, and its seat lingers. It returns the id of the session it ended ("" when none).
func (m *Manager) revokeFamilyTx(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, tenant, sessionID, family string) (string, error) {
	if _, err := tx.DeleteTokens(ctx, tenant, sessionID, family); err != nil {
		return "", err
	}
	s, err := tx.GetSession(ctx, tenant, sessionID)
	if errors.Is(err, domain.ErrNotFound) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	live, err := hasLiveCredential(ctx, tx, s)
	if err != nil || live {
		return "", err
	}
	return s.ID, m.endTx(ctx, tx, snap, s, true)
}

// hasLiveCredential reports whether a session still has a token that authenticates it (an
// access, refresh or cookie token; login tokens and codes make new sessions instead).
func hasLiveCredential(ctx context.Context, tx store.Tx, s *domain.Session) (bool, error) {
	list, err := tx.ListTokens(ctx, s.Tenant, "", s.User)
	if err != nil {
		return false, err
	}
	now := tx.Now()
	for _, t := range list {
		if t.SessionID != s.ID || isMarker(&t) || !now.Before(t.ExpiresAt) {
			continue
		}
		if t.Kind == domain.TokenAccess || t.Kind == domain.TokenRefresh || t.Kind == domain.TokenCookie || t.Kind == domain.TokenGatewayCookie {
			return true, nil
		}
	}
	return false, nil
}

func isMarker(t *domain.Token) bool {
	return strings.HasPrefix(t.Hash, "rotated:") || strings.HasPrefix(t.Hash, "used:")
}

func jsonData(v any) ([]byte, error) { return json.Marshal(v) }
