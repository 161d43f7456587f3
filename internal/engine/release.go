package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// Release is the 10Duke release: each id (any id of a lease's chain) is released in its own
// transaction and its seat starts lingering. An unknown id, an expired lease, a lease of
// another user (or client), and a session's seat lease all answer noConsumptionFoundById and
// are never touched; a model with allow_release false answers releaseNotAllowed.
func (e *Engine) Release(ctx context.Context, tenant string, caller Caller, ids []string) ([]ReleaseResult, error) {
	snap, err := e.cat.Get(ctx, tenant)
	if err != nil {
		return nil, err
	}
	comp := e.compiledFor(tenant, snap)
	out := make([]ReleaseResult, 0, len(ids))
	for _, id := range ids {
		var rr ReleaseResult
		var freed *domain.Lease
		err := e.st.Update(ctx, func(tx store.Tx) error {
			rr, freed = ReleaseResult{ID: id}, nil
			l, err := findLease(ctx, tx, tenant, id)
			if err != nil {
				return err
			}
			if l == nil || l.User != caller.User || l.SessionID != "" || !l.Live(tx.Now()) {
				rr.Err = releaseError(domain.CodeNoConsumptionFoundByID, id, "no live consumption of the caller has this lease id")
				return nil
			}
			if !leaseModel(comp, snap, l).AllowRelease {
				rr.Err = releaseError(domain.CodeReleaseNotAllowed, id, "the license model does not allow releasing leases")
				return nil
			}
			ok, err := e.ReleaseTx(ctx, tx, snap, l, true)
			if err != nil {
				return err
			}
			if !ok {
				rr.Err = releaseError(domain.CodeNoConsumptionFoundByID, id, "no live consumption of the caller has this lease id")
				return nil
			}
			freed = l
			return nil
		})
		if err != nil {
			return nil, err
		}
		if freed != nil {
			e.q.wake(tenant, freed.LicenseID)
		}
		out = append(out, rr)
	}
	return out, nil
}

func releaseError(code domain.ErrorCode, id, technical string) *domain.LicenseError {
	return &domain.LicenseError{Code: code, Message: fmt.Sprintf("Release of lease %q failed", id), Technical: technical}
}

func leaseModel(comp *compiled, snap *catalog.Snapshot, l *domain.Lease) *domain.LicenseModel {
	if snap == nil {
		return defaultModel.m
	}
	if lic := snap.Licenses[l.LicenseID]; lic != nil {
		return comp.model(lic).m
	}
	return defaultModel.m
}

// ReleaseTx ends lease l (found by its root, so a stale copy is fine) inside tx, and
// reports whether it was there to end. With linger, a live lease that was the last of its
// seat leaves the seat lingering for the model's linger (usage event "release"); without,
// the seat is freed at once (event "end": sessions ended by an administrator, abandoned
// grants). Unused reserved use time is refunded either way.
//
// A waiter of this process is woken before tx commits; its attempt then waits on the
// license lock, so it sees the seat free once tx has committed.
func (e *Engine) ReleaseTx(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, l *domain.Lease, linger bool) (bool, error) {
	st, err := tx.LockLicense(ctx, l.Tenant, l.LicenseID)
	if err != nil {
		return false, err
	}
	cur, err := findLease(ctx, tx, l.Tenant, l.Root)
	if err != nil || cur == nil {
		return false, err
	}
	now := tx.Now()
	live := cur.Live(now)
	if _, err := tx.DeleteLease(ctx, cur.Tenant, cur.Root); err != nil {
		return false, err
	}
	var refund time.Duration
	if live && cur.UseTimeReserved > 0 {
		refund = min(cur.ExpiresAt.Sub(now), cur.UseTimeReserved)
		st.UseTime = max(0, st.UseTime-refund)
	}
	seat, err := getSeat(ctx, tx, cur.Tenant, cur.LicenseID, cur.SeatKey)
	if err != nil {
		return false, err
	}
	if seat != nil {
		latest, err := tx.LatestLiveExpiryOnSeat(ctx, cur.Tenant, cur.LicenseID, cur.SeatKey, cur.Root, now)
		if err != nil {
			return false, err
		}
		var comp *compiled
		if snap != nil {
			comp = e.compiledFor(cur.Tenant, snap)
		}
		lingerFor := leaseModel(comp, snap, cur).Linger.D()
		keep := true
		switch {
		case !latest.IsZero():
			seat.HeldUntil, seat.Lingering = latest, false
		case live && linger && lingerFor > 0:
			seat.HeldUntil, seat.Lingering = ms(now.Add(lingerFor)), true
		case linger && seat.Lingering && seat.HeldUntil.After(now):
			// Already lingering (restart grace): an expired lease's release changes nothing.
		default:
			// An expired lease freed its seat when it expired; re-holding it now could
			// take a seat that has been given to someone else since.
			keep = false
		}
		if keep {
			err = tx.PutSeat(ctx, seat)
		} else {
			var deleted bool
			if deleted, err = tx.DeleteSeat(ctx, seat.Tenant, seat.LicenseID, seat.Key); deleted {
				st.SeatsHeld = max(0, st.SeatsHeld-1)
			}
		}
		if err != nil {
			return false, err
		}
	}
	if err := tx.SaveLicenseState(ctx, st); err != nil {
		return false, err
	}
	event := domain.EventEnd
	if linger {
		event = domain.EventRelease
	}
	if err := tx.AppendUsage(ctx, []domain.UsageEvent{usage(cur, now, event, refund)}); err != nil {
		return false, err
	}
	if err := e.report(ctx, tx, endEvent(cur, event)); err != nil {
		return false, err
	}
	e.q.wake(cur.Tenant, cur.LicenseID)
	return true, nil
}

// EndResult is the answer of EndLease.
type EndResult struct {
	Found bool
	// Freed is true when the seat was freed at once. It is false for a live checkout lease
	// ended without force: its signed token stays valid offline, so its seat keeps counting
	// until CountsUntil (the lease's exp), although the lease itself can no longer be renewed.
	Freed       bool
	CountsUntil time.Time
}

// EndLease ends a lease for the admin API: the seat is freed at once, without linger,
// except for a live checkout lease without force (see EndResult). A session's seat lease
// (Lease.SessionID set) should be ended by ending its sessions, which releases it
// (session.Manager.EndLease does both).
func (e *Engine) EndLease(ctx context.Context, tenant, id string, force bool) (EndResult, error) {
	snap, err := e.cat.Get(ctx, tenant)
	if err != nil {
		return EndResult{}, err
	}
	var res EndResult
	var licenseID string
	err = e.st.Update(ctx, func(tx store.Tx) error {
		res, licenseID = EndResult{}, ""
		l, err := findLease(ctx, tx, tenant, id)
		if err != nil || l == nil {
			return err
		}
		licenseID = l.LicenseID
		res, err = e.EndLeaseTx(ctx, tx, snap, l, force)
		return err
	})
	if err != nil {
		return EndResult{}, err
	}
	if res.Freed {
		e.q.wake(tenant, licenseID)
	}
	return res, nil
}

// EndLeaseTx is EndLease of lease l inside tx.
func (e *Engine) EndLeaseTx(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, l *domain.Lease, force bool) (EndResult, error) {
	if l.Mode == domain.ModeCheckout && !force && l.Live(tx.Now()) {
		ok, until, err := e.endCheckoutTx(ctx, tx, l)
		return EndResult{Found: ok, CountsUntil: until}, err
	}
	ok, err := e.ReleaseTx(ctx, tx, snap, l, false)
	return EndResult{Found: ok, Freed: ok}, err
}

// endCheckoutTx removes a live checkout lease but keeps its seat held (lingering, so only
// its own anchor key may use it) until the lease's exp.
func (e *Engine) endCheckoutTx(ctx context.Context, tx store.Tx, l *domain.Lease) (bool, time.Time, error) {
	st, err := tx.LockLicense(ctx, l.Tenant, l.LicenseID)
	if err != nil {
		return false, time.Time{}, err
	}
	cur, err := findLease(ctx, tx, l.Tenant, l.Root)
	if err != nil || cur == nil {
		return false, time.Time{}, err
	}
	now := tx.Now()
	if _, err := tx.DeleteLease(ctx, cur.Tenant, cur.Root); err != nil {
		return false, time.Time{}, err
	}
	// The seat (locked) before its leases' expiries: a renewal under its lease lock alone
	// that extended the seat has then committed, and its expiry is seen.
	seat, err := getSeat(ctx, tx, cur.Tenant, cur.LicenseID, cur.SeatKey)
	if err != nil {
		return false, time.Time{}, err
	}
	latest, err := tx.LatestLiveExpiryOnSeat(ctx, cur.Tenant, cur.LicenseID, cur.SeatKey, cur.Root, now)
	if err != nil {
		return false, time.Time{}, err
	}
	if seat == nil {
		seat = &domain.Seat{Tenant: cur.Tenant, LicenseID: cur.LicenseID, Key: cur.SeatKey, User: cur.User, Overage: cur.Overage}
		st.SeatsHeld++
		if err := tx.SaveLicenseState(ctx, st); err != nil {
			return false, time.Time{}, err
		}
	}
	seat.HeldUntil = maxTime(cur.ExpiresAt, latest)
	seat.Lingering = latest.IsZero()
	if err := tx.PutSeat(ctx, seat); err != nil {
		return false, time.Time{}, err
	}
	if err := tx.AppendUsage(ctx, []domain.UsageEvent{usage(cur, now, domain.EventEnd, 0)}); err != nil {
		return false, time.Time{}, err
	}
	if err := e.report(ctx, tx, endEvent(cur, domain.EventEnd)); err != nil {
		return false, time.Time{}, err
	}
	return true, cur.ExpiresAt, nil
}

// expireTx removes a lease whose exp has passed. Its seat is left to ReapSeats: it expired
// with its last lease (HeldUntil is never before a live lease's exp). The caller reports
// it (endEvent), so that a sweep reports its transaction's expiries together.
func (e *Engine) expireTx(ctx context.Context, tx store.Tx, l *domain.Lease, now time.Time) error {
	if _, err := tx.DeleteLease(ctx, l.Tenant, l.Root); err != nil {
		return err
	}
	return tx.AppendUsage(ctx, []domain.UsageEvent{usage(l, now, domain.EventExpire, 0)})
}
