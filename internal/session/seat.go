package session

import (
	"context"
	"net/netip"
	"time"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
	"github.com/leasehold/leasehold/internal/store"
)

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
