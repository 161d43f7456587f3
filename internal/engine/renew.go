package engine

import (
	"time"

	"github.com/leasehold/leasehold/internal/domain"
)

// renew extends the live lease cur of this session key. Every refusal leaves it untouched.
func (a *attempt) renew(lic *domain.License, cm *compiledModel, st *domain.LicenseState, cur *domain.Lease) (outcome, error) {
	m, r, now := cm.m, a.req, a.now
	ctx, tx := a.ctx, a.tx

	// Session seats are renewed by the session code, which is trusted and holds no lease id.
	if m.LeaseChaining && r.SessionID == "" {
		switch {
		case a.leaseID == cur.ID:
		case a.leaseID != "" && a.leaseID == cur.PrevID && now.Before(cur.PrevUntil):
			// A retry of a renewal whose answer was lost: the same answer again.
			res := Result{License: lic, Renewed: true}
			if !a.dry {
				res.Lease = cur
			}
			return outcome{res: res}, nil
		case a.leaseID == "":
			return a.fail(stepAnchors, domain.CodeLeaseIDNotMatching, "license model %s requires the current leaseId to renew", m.Name), nil
		default:
			return a.fail(stepAnchors, domain.CodeLeaseIDNotMatching, "leaseId %s is not the current lease of this session", a.leaseID), nil
		}
	}

	if m.HWLock && cur.HW != "" {
		owner, err := tx.GetHWLock(ctx, a.tenant, m.Name, cur.HW)
		if err != nil {
			return outcome{}, err
		}
		if owner != "" && owner != lic.ID {
			return a.fail(stepHWLock, domain.CodeAnchorLocked, "hw %s is locked to another license of model %s", cur.HW, m.Name), nil
		}
	}

	// A renewal draws use count only when it says so: the lease was paid for when granted.
	counted := r.SessionID == ""
	var draw int64
	if counted && r.CountGiven {
		draw = r.ConsumeCount
	}
	if m.MaxUseCount > 0 && st.UseCount+draw > m.MaxUseCount {
		return a.fail(stepUseCount, domain.CodeMaxUseCount, "use count %d + %d exceeds %d", st.UseCount, draw, m.MaxUseCount), nil
	}

	exp := ms(now.Add(a.leaseLength(lic, m)))
	if (!r.Expiry.IsZero() || cur.SessionID != "") && cur.ExpiresAt.After(exp) {
		// Sessions sharing one lease: it lasts as long as the longest of them, and an
		// /authz renewal of a session's lease never cuts the session short.
		exp = cur.ExpiresAt
	}
	ext := exp.Sub(cur.ExpiresAt)
	if counted && m.MaxUseTime > 0 && ext > 0 {
		left := m.MaxUseTime.D() - st.UseTime
		if left <= 0 {
			return a.fail(stepUseTime, domain.CodeMaxUseTime, "the license's use time of %s is spent", m.MaxUseTime.D()), nil
		}
		if ext > left {
			ext = left
			exp = cur.ExpiresAt.Add(ext)
		}
	}

	if a.dry {
		return outcome{res: Result{License: lic, Renewed: true}}, nil
	}
	if m.HWLock && cur.HW != "" {
		// Re-taken when an administrator reset it meanwhile.
		if _, err := tx.LockHW(ctx, a.tenant, m.Name, cur.HW, lic.ID); err != nil {
			return outcome{}, err
		}
	}

	next := *cur
	if counted && m.MaxUseTime > 0 && ext > 0 {
		st.UseTime += ext
		next.UseTimeReserved += ext
	} else if ext < 0 {
		refund := min(-ext, next.UseTimeReserved)
		st.UseTime = max(0, st.UseTime-refund)
		next.UseTimeReserved -= refund
	}
	st.UseCount += draw
	if r.SessionID == "" && cur.SessionID == "" {
		if len(next.ChainKey) == 0 {
			next.ChainKey = domain.NewChainKey() // a lease from before derived ids
		}
		next.ChainSeq++
		next.ID = domain.ChainedLeaseID(next.Root, next.ChainKey, next.ChainSeq)
		next.PrevID = cur.ID
		next.PrevUntil = ms(now.Add(m.ChainGrace.D()))
	}
	next.RenewedAt = now
	next.ExpiresAt = exp
	next.RefreshAt = refreshAt(m, now, exp)
	next.Mode = a.mode()
	if r.Version != "" {
		next.Version = r.Version
	}
	if r.HWName != "" {
		next.HWName = r.HWName
	}
	if r.ProcessName != "" {
		next.ProcessName = r.ProcessName
	}
	if err := tx.UpdateLease(ctx, &next); err != nil {
		return outcome{}, err
	}

	extended, err := a.extendSeat(cur, exp)
	if err != nil {
		return outcome{}, err
	}
	if !extended {
		seat, err := getSeat(ctx, tx, a.tenant, lic.ID, cur.SeatKey)
		if err != nil {
			return outcome{}, err
		}
		if seat == nil {
			// A live lease always has its seat; rebuild it rather than lose the count.
			seat = &domain.Seat{Tenant: a.tenant, LicenseID: lic.ID, Key: cur.SeatKey, User: cur.User, Overage: cur.Overage}
			st.SeatsHeld++
		}
		if err := a.holdSeat(seat, cur, exp); err != nil {
			return outcome{}, err
		}
	}
	if err := tx.AppendUsage(ctx, []domain.UsageEvent{usage(&next, now, domain.EventRenew, exp.Sub(now))}); err != nil {
		return outcome{}, err
	}
	return outcome{res: Result{Lease: &next, License: lic, Renewed: true}}, nil
}

// extendSeat is holdSeat in one statement when cur is extended: the seat then holds until
// max(HeldUntil, exp), for the reason holdSeat gives. false (nothing written) leaves the
// case to holdSeat: a lease not extended (its seat already covers it, unless it must stop
// lingering), a missing seat, or one that already holds long enough for another lease.
func (a *attempt) extendSeat(cur *domain.Lease, exp time.Time) (bool, error) {
	if !exp.After(cur.ExpiresAt) {
		return false, nil
	}
	return a.tx.ExtendSeat(a.ctx, a.tenant, cur.LicenseID, cur.SeatKey, exp)
}

// holdSeat makes seat (read in this transaction, or new with a zero HeldUntil) hold until
// the latest expiry of its live leases now that cur runs until exp, writing it only when
// that moves it.
//
// A seat's HeldUntil is never before the exp of any of its live leases (every writer keeps
// that), so when the renewal does not shorten cur the seat already covers every other
// lease, and max(HeldUntil, exp) is the answer without looking at them. Only a shortened
// lease (or a seat being rebuilt) needs the latest expiry of the others.
func (a *attempt) holdSeat(seat *domain.Seat, cur *domain.Lease, exp time.Time) error {
	held := seat.HeldUntil
	if seat.HeldUntil.IsZero() || exp.Before(cur.ExpiresAt) {
		latest, err := a.tx.LatestLiveExpiryOnSeat(a.ctx, a.tenant, cur.LicenseID, cur.SeatKey, cur.Root, a.now)
		if err != nil {
			return err
		}
		held = maxTime(exp, latest)
	} else if exp.After(held) {
		held = exp
	}
	if seat.HeldUntil.Equal(held) && !seat.Lingering {
		return nil
	}
	seat.HeldUntil, seat.Lingering = held, false
	return a.tx.PutSeat(a.ctx, seat)
}
