package session

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
	"github.com/leasehold/leasehold/internal/store"
)

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
				case err == nil && s.Live(now) && rejoinsAsIs(policy, s, scopes, withRefresh, now):
					// Use before the refresh point: the session and its seat lease stay as they
					// are (SPEC §1: written only once past rfr), and the new tokens end by the
					// session's current deadline at the latest (issue caps them).
					*onlyAdded = true
				case err == nil && s.Live(now):
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
					if err := m.endTx(domain.WithEndReason(ctx, domain.EndExpired), tx, snap, s, false); err != nil {
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
	seat := func() (engine.SessionSeat, bool) {
		return engine.SessionSeat{Tenant: tenant, SessionID: id,
			Caller: CallerFor(snap, &domain.Session{User: ClientUser(client), Client: client.ClientID, Scopes: scopes}),
			Device: device, ClientIP: addr}, true
	}
	if err := m.openQueued(ctx, tenant, queue, open, seat, func() string { return id }); err != nil {
		return nil, err
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
