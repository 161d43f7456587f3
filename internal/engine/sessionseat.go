package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// A session's seat: a lease on its tenant's session item (session.item) that lives as long
// as the session does. The session code owns the session's lifecycle (when it opens, is
// used, ends) and calls these in its own transaction, so that a session never lives
// without its seat; every seat rule (which seat, how long, reclaiming a lingering seat,
// when the seat is released) is decided here.

// SessionSeat describes a session to the engine.
type SessionSeat struct {
	Tenant    string
	SessionID string
	Caller    Caller
	Device    string    // the hw anchor
	Expiry    time.Time // the session's deadline: the lease runs exactly until then
	ClientIP  netip.Addr
	// LeaseID names the session's lease (any id of its chain), "" when it holds none.
	// ExtendSessionSeat extends that lease whatever the anchors say now, so a session that
	// reclaimed another device's seat keeps it.
	LeaseID string
	// Reclaim names a lingering seat the session may take over instead of one of its own
	// anchors (TakeSessionSeat of a login-token login); nil for none.
	Reclaim *Reclaim
}

// Reclaim is the seat of the session that made a login token.
type Reclaim struct {
	License string
	SeatKey string
	Device  string // that seat's hw anchor, which the new session takes over
}

// SessionGrant is what the session must record of its seat.
type SessionGrant struct {
	// Lease is the session's lease; nil when the tenant has no session item (no seat).
	Lease *domain.Lease
	// Device is the hw anchor the session keeps: its own, or the reclaimed seat's.
	Device string
	// Expiry is the session's deadline: the one asked for, or earlier when the license
	// ends first (a session never outlives its seat).
	Expiry time.Time
}

// SeatError is a session's seat refused for want of a seat (or of a license).
type SeatError struct {
	User string
	Err  *domain.LicenseError
	// Tenant, Item and License (the license whose error it is, "" when none) say where it
	// was refused, for ReportSeatRefusal.
	Tenant, Item, License string
}

func (e *SeatError) Error() string {
	return fmt.Sprintf("None of the registered licenses are available for client %s", e.User)
}

// TakeSessionSeat takes the seat of a new (or newly licensed) session inside tx. With
// s.Reclaim it takes over that seat while it is still reclaimable (reclaimable: the same
// user, lingering or held by no live lease); otherwise it takes a seat from the session's
// own anchors, like a fresh login, so a login token never lets two devices share one seat.
// A refusal is a *SeatError.
func (e *Engine) TakeSessionSeat(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, s SessionSeat) (SessionGrant, error) {
	req := sessionRequest(s)
	if rc := s.Reclaim; rc != nil && snap.Tenant.Session.Item != "" && snap.Licenses[rc.License] != nil {
		// Locked first: whether the seat is reclaimable must not change before the
		// decision takes it.
		if _, err := tx.LockLicense(ctx, s.Tenant, rc.License); err != nil {
			return SessionGrant{}, err
		}
		ok, err := reclaimable(ctx, tx, s.Tenant, rc.License, rc.SeatKey, s.Caller.User, tx.Now())
		if err != nil {
			return SessionGrant{}, err
		}
		if ok {
			// The session takes over the seat's hw anchor, so that the seat's keys stay
			// the ones its lease was made with.
			req.HW = rc.Device
			req.ReclaimLicense, req.ReclaimSeat = rc.License, rc.SeatKey
		}
	}
	return e.sessionLease(ctx, tx, snap, s, req, snap.Tenant.Session.Item)
}

// ExtendSessionSeat moves the seat lease of a session being used (s.LeaseID) to the
// session's new deadline s.Expiry; a lease that ended meanwhile is taken again as
// TakeSessionSeat would. A refusal is a *SeatError.
func (e *Engine) ExtendSessionSeat(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, s SessionSeat) (SessionGrant, error) {
	req := sessionRequest(s)
	req.LeaseID = s.LeaseID
	return e.sessionLease(ctx, tx, snap, s, req, snap.Tenant.Session.Item)
}

// SessionItemLease takes (s.LeaseID "") or extends (s.LeaseID: the lease the session holds
// on item) a lease on item that belongs to the session as its seat does (a gateway's seat
// route with an item, SPEC section 8): it runs until the session's deadline s.Expiry, lies
// on the same seat key as the session's other leases on that license (so it counts toward
// sessions_per_seat), and ends with the session (EndSessionSeat). An extension of a lease
// that ended meanwhile takes it again if a seat is free. A refusal is a *SeatError; the
// grant's Expiry may come before s.Expiry when the license ends first.
func (e *Engine) SessionItemLease(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, s SessionSeat, item string) (SessionGrant, error) {
	req := sessionRequest(s)
	req.LeaseID = s.LeaseID
	return e.sessionLease(ctx, tx, snap, s, req, item)
}

func sessionRequest(s SessionSeat) Request {
	return Request{
		Tenant: s.Tenant, Caller: s.Caller, DoConsume: true, Mode: domain.ModeCache,
		HW: s.Device, SessionID: s.SessionID, Expiry: s.Expiry, ClientIP: s.ClientIP,
	}
}

// sessionLease takes or extends a lease of session s on item: its seat (the tenant's
// session item) or an item lease. No item: the tenant's sessions hold no seat.
func (e *Engine) sessionLease(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, s SessionSeat, req Request, item string) (SessionGrant, error) {
	if item == "" {
		return SessionGrant{Device: s.Device, Expiry: s.Expiry}, nil
	}
	res, err := e.ConsumeTx(ctx, tx, snap, req, ItemRequest{Name: item})
	if err != nil {
		return SessionGrant{}, err
	}
	if res.Err != nil {
		return SessionGrant{}, &SeatError{User: s.Caller.User, Err: res.Err, Tenant: s.Tenant, Item: item, License: res.RefusedOn}
	}
	g := SessionGrant{Lease: res.Lease, Device: req.HW, Expiry: s.Expiry}
	if res.Lease.ExpiresAt.Before(g.Expiry) {
		g.Expiry = res.Lease.ExpiresAt // the license ends first: so does the session
	}
	return g, nil
}

// EndSessionSeat releases the seat lease leaseID (a root) of a session that tx has just
// deleted, unless another session still shares it; and likewise an item lease of the
// session (SessionItemLease), which no other session shares. With linger (a logoff) the seat
// lingers for the model's linger; without (an administrator, an expired or replaced
// session) it is freed at once.
func (e *Engine) EndSessionSeat(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, tenant, leaseID string, linger bool) error {
	if leaseID == "" {
		return nil
	}
	n, err := tx.CountSessionsByLease(ctx, tenant, leaseID)
	if err != nil || n > 0 {
		return err
	}
	l, err := findLease(ctx, tx, tenant, leaseID)
	if err != nil || l == nil {
		return err
	}
	_, err = e.ReleaseTx(ctx, tx, snap, l, linger)
	return err
}

// reclaimable reports whether user may take over seat key on a license through a login
// token: the seat is still held, by user, and either lingers or holds no live lease
// (restart grace, an ended checkout). It is the one statement of that rule: the login's
// choice of anchors (TakeSessionSeat) and the decision (tryLocked) both ask it.
func reclaimable(ctx context.Context, tx store.Tx, tenant, licenseID, key, user string, now time.Time) (bool, error) {
	seat, err := getSeat(ctx, tx, tenant, licenseID, key)
	if err != nil || seat == nil || !seat.HeldUntil.After(now) || seat.User != user {
		return false, err
	}
	if seat.Lingering {
		return true, nil
	}
	n, err := tx.CountLiveLeasesOnSeat(ctx, tenant, licenseID, key, now)
	return n == 0, err
}

type queuedSeatKey struct{}

// WithQueuedSeat marks the attempts of a session opening that waits for a seat
// (WaitSessionSeat): their refusals for want of a seat are reported once, when the wait
// ends, not at every attempt.
func WithQueuedSeat(ctx context.Context) context.Context {
	return context.WithValue(ctx, queuedSeatKey{}, true)
}

func queuedSeat(ctx context.Context) bool {
	q, _ := ctx.Value(queuedSeatKey{}).(bool)
	return q
}

// WaitSessionSeat is queue= for a session's seat (POST /session/login, client credentials):
// when err (the first attempt's answer) is a refusal for want of a seat, open (the whole
// opening transaction, with ctx marked WithQueuedSeat) runs again whenever a seat of a
// candidate license may have freed, first come first served with every other waiter of
// the item in this process, for up to queue (at most MaxQueue). It returns the first
// answer that is not that refusal, or err's refusal when the wait ends.
//
// When ctx ends after open succeeded, nil is returned and the caller must undo what open
// did (end the session it opened), as a client that went away holds no seat.
func (e *Engine) WaitSessionSeat(ctx context.Context, seat SessionSeat, queue time.Duration, err error, open func(context.Context) error) error {
	var se *SeatError
	if queue <= 0 || !errors.As(err, &se) || se.Err == nil || se.Err.Code != domain.CodeQuotaExceeded {
		return err
	}
	snap, cerr := e.cat.Get(ctx, seat.Tenant)
	if cerr != nil {
		return cerr
	}
	item := ItemRequest{Name: snap.Tenant.Session.Item}
	req := sessionRequest(seat)
	req.Queue = queue
	last := err
	res, werr := e.WaitForSeat(ctx, req, item, Result{Item: item.Name, Err: se.Err}, func(tctx context.Context) (Result, error) {
		err := open(WithQueuedSeat(tctx))
		var se *SeatError
		switch {
		case errors.As(err, &se) && se.Err != nil:
			last = err
			return Result{Item: item.Name, Err: se.Err}, nil
		case err != nil:
			return Result{}, err
		}
		last = nil
		return Result{Item: item.Name}, nil
	})
	if werr != nil {
		return werr
	}
	if res.Err != nil {
		return last
	}
	return nil
}

// SeatFreesAt is the earliest moment a seat may free for a refusal for want of one
// (licenseQuotaExceeded): the soonest end of a held or lingering seat on the licenses the
// caller could use for item. Zero when it is not known (another refusal, no seat held).
func (e *Engine) SeatFreesAt(ctx context.Context, snap *catalog.Snapshot, se *SeatError, caller Caller) (time.Time, error) {
	if se == nil || se.Err == nil || se.Err.Code != domain.CodeQuotaExceeded {
		return time.Time{}, nil
	}
	lics := candidates(snap, &Request{Tenant: se.Tenant, Caller: caller}, ItemRequest{Name: se.Item})
	var at time.Time
	err := e.st.View(ctx, func(tx store.Tx) error {
		at = time.Time{}
		for _, l := range lics {
			t, err := tx.EarliestSeatRelease(ctx, se.Tenant, l.ID, tx.Now())
			if err != nil {
				return err
			}
			if !t.IsZero() && (at.IsZero() || t.Before(at)) {
				at = t
			}
		}
		return nil
	})
	return at, err
}
