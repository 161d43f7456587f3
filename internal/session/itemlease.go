package session

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// ItemLease is a lease a session holds on an item besides its seat (a gateway's seat route
// with an item). It lives and ends with the session: extended in the transaction that
// extends the session, released when the session ends.
type ItemLease struct {
	Item      string
	License   string
	Root      string
	ExpiresAt time.Time
}

// HoldItem makes p's session hold a lease on item: the one it holds when that is still
// live, else a new one from the engine (a *SeatError when no seat is free). The session
// must be licensed; ErrInvalidToken when it has ended.
func (m *Manager) HoldItem(ctx context.Context, p *Principal, item string, addr netip.Addr) (ItemLease, error) {
	snap, err := m.cat.Get(ctx, p.Tenant)
	if err != nil {
		return ItemLease{}, err
	}
	var out ItemLease
	// Not m.update: this adds a lease and changes no token or session, so the
	// authentication cache stays true.
	err = m.st.Update(ctx, func(tx store.Tx) error {
		out = ItemLease{}
		now := tx.Now()
		s, err := liveSession(ctx, tx, p.Tenant, p.Session.ID, now)
		if err != nil {
			return err
		}
		if s == nil {
			return ErrInvalidToken
		}
		held, err := tx.ListSessionLeases(ctx, s.Tenant, s.ID)
		if err != nil {
			return err
		}
		for _, h := range held {
			if h.Item != item {
				continue
			}
			l, err := tx.FindLease(ctx, s.Tenant, h.LeaseRoot)
			if err != nil && !errors.Is(err, domain.ErrNotFound) {
				return err
			}
			if err == nil && l.Live(now) && l.SessionID == s.ID {
				out = ItemLease{Item: item, License: l.LicenseID, Root: l.Root, ExpiresAt: l.ExpiresAt}
				return nil
			}
		}
		// None, or an administrator ended it: taken again, if a seat is free.
		out, err = m.takeItem(ctx, tx, snap, s, item, "", addr)
		return err
	})
	m.eng.ReportSeatRefusal(ctx, err)
	return out, err
}

// takeItem takes (leaseID "") or extends the session's lease on item, and records it.
func (m *Manager) takeItem(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, s *domain.Session, item, leaseID string, addr netip.Addr) (ItemLease, error) {
	seat := seatOf(snap, s, addr)
	seat.LeaseID = leaseID
	g, err := m.eng.SessionItemLease(ctx, tx, snap, seat, item)
	if err != nil {
		return ItemLease{}, err
	}
	if g.Lease == nil {
		return ItemLease{Item: item}, nil
	}
	if err := tx.PutSessionLease(ctx, store.SessionLease{Tenant: s.Tenant, SessionID: s.ID, Item: item, LeaseRoot: g.Lease.Root}); err != nil {
		return ItemLease{}, err
	}
	return ItemLease{Item: item, License: g.Lease.LicenseID, Root: g.Lease.Root, ExpiresAt: g.Lease.ExpiresAt}, nil
}

// ItemLeases lists the item leases p's session holds (live ones only).
func (m *Manager) ItemLeases(ctx context.Context, p *Principal) ([]ItemLease, error) {
	var out []ItemLease
	err := m.st.View(ctx, func(tx store.Tx) error {
		out = nil
		now := tx.Now()
		held, err := tx.ListSessionLeases(ctx, p.Tenant, p.Session.ID)
		if err != nil {
			return err
		}
		for _, h := range held {
			l, err := tx.FindLease(ctx, p.Tenant, h.LeaseRoot)
			if errors.Is(err, domain.ErrNotFound) {
				continue
			} else if err != nil {
				return err
			}
			if l.Live(now) {
				out = append(out, ItemLease{Item: h.Item, License: l.LicenseID, Root: l.Root, ExpiresAt: l.ExpiresAt})
			}
		}
		return nil
	})
	return out, err
}

// extendItems moves the session's item leases to its new deadline in the transaction that
// extends it. An item lease the engine cannot renew (an administrator ended it and no seat
// is free) is dropped, never the session: the next request under its route asks again.
func (m *Manager) extendItems(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, s *domain.Session, addr netip.Addr) error {
	held, err := tx.ListSessionLeases(ctx, s.Tenant, s.ID)
	if err != nil || len(held) == 0 {
		return err
	}
	for _, h := range held {
		_, err := m.takeItem(ctx, tx, snap, s, h.Item, h.LeaseRoot, addr)
		var seat *SeatError
		if errors.As(err, &seat) {
			err = tx.DeleteSessionLease(ctx, s.Tenant, s.ID, h.Item)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// endItems releases the session's item leases as its seat is released (linger: a logout).
func (m *Manager) endItems(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, s *domain.Session, linger bool) error {
	held, err := tx.ListSessionLeases(ctx, s.Tenant, s.ID)
	if err != nil {
		return err
	}
	for _, h := range held {
		if err := m.eng.EndSessionSeat(ctx, tx, snap, s.Tenant, h.LeaseRoot, linger); err != nil {
			return err
		}
	}
	return nil
}

// SeatFreesAt is, for a refusal for want of a seat, the earliest moment one may free (zero
// when it is not known): what a client is told to wait (Retry-After).
func (m *Manager) SeatFreesAt(ctx context.Context, se *SeatError) (time.Time, error) {
	snap, err := m.cat.Get(ctx, se.Tenant)
	if err != nil {
		return time.Time{}, err
	}
	caller := CallerFor(snap, &domain.Session{User: se.User})
	caller.Licensed = true
	return m.eng.SeatFreesAt(ctx, snap, se, caller)
}

// NextUse is when an open request of session s (a stream, an upgraded connection) next
// counts as use (its refresh point); ok is false for a session that does not extend on use
// (a refresh token extends it instead).
func NextUse(s *domain.Session) (at time.Time, ok bool) {
	if !extendsOnUse(s) {
		return time.Time{}, false
	}
	return refreshPoint(s), true
}

// Use counts an open request of p's session as use at the session's refresh point: the
// session (and its seat and item leases) is extended as a new request's authentication
// would extend it, and p.Session updated. ErrInvalidToken when the session has ended.
func (m *Manager) Use(ctx context.Context, p *Principal, addr netip.Addr) error {
	snap, err := m.cat.Get(ctx, p.Tenant)
	if err != nil {
		return err
	}
	return m.extend(ctx, snap, p, addr)
}
