package engine

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/leasehold/leasehold/internal/domain"
)

func (a *attempt) grant(lic *domain.License, cm *compiledModel, st *domain.LicenseState, seatKey, sessKey string) (outcome, error) {
	m, r, now := cm.m, a.req, a.now
	ctx, tx := a.ctx, a.tx

	if m.HWLock {
		if r.HW == "" {
			return a.fail(stepHWLock, domain.CodeAnchorMissing, "license model %s locks licenses to hardware: hw is required", m.Name), nil
		}
		owner, err := tx.GetHWLock(ctx, a.tenant, m.Name, r.HW)
		if err != nil {
			return outcome{}, err
		}
		if owner != "" && owner != lic.ID {
			return a.fail(stepHWLock, domain.CodeAnchorLocked, "hw %s is locked to another license of model %s", r.HW, m.Name), nil
		}
	}

	// A session's seat draws on no counter: the session, not a client, decides its length.
	counted := r.SessionID == ""
	var draw int64
	if counted {
		if m.CountRequired && !r.CountGiven {
			return a.fail(stepUseCount, domain.CodeMissingArguments, "license model %s requires consumeCount", m.Name), nil
		}
		draw = 1
		if r.CountGiven {
			draw = r.ConsumeCount
		}
		if m.MaxUseCount > 0 && st.UseCount+draw > m.MaxUseCount {
			return a.fail(stepUseCount, domain.CodeMaxUseCount, "use count %d + %d exceeds %d", st.UseCount, draw, m.MaxUseCount), nil
		}
	}

	d := a.leaseLength(lic, m)
	var reserve time.Duration
	if counted && m.MaxUseTime > 0 {
		left := m.MaxUseTime.D() - st.UseTime
		if left <= 0 {
			return a.fail(stepUseTime, domain.CodeMaxUseTime, "the license's use time of %s is spent", m.MaxUseTime.D()), nil
		}
		d = min(d, left)
		reserve = d
	}

	if m.ConsumptionLimit > 0 {
		n, err := tx.CountLiveLeasesByHolder(ctx, a.tenant, lic.ID, r.Caller.User, "", now)
		if err != nil {
			return outcome{}, err
		}
		if n >= m.ConsumptionLimit {
			return a.fail(stepConsumptionLimit, domain.CodeConsumptionLimit, "%q holds %d leases on license %s (limit %d)", r.Caller.User, n, lic.ID, m.ConsumptionLimit), nil
		}
	}

	seat, err := getSeat(ctx, tx, a.tenant, lic.ID, seatKey)
	if err != nil {
		return outcome{}, err
	}
	if seat != nil && !seat.HeldUntil.After(now) {
		// Our own seat, expired: it counts for nothing, so taking it is taking a new seat.
		if !a.dry {
			if _, err := tx.DeleteSeat(ctx, a.tenant, lic.ID, seatKey); err != nil {
				return outcome{}, err
			}
		}
		st.SeatsHeld = max(0, st.SeatsHeld-1)
		seat = nil
	}
	overage := false
	held, limit := 0, 0 // of a new seat (Result.seatsHeld)
	if seat != nil {
		if m.SessionsPerSeat > 0 {
			n, err := tx.CountLiveLeasesOnSeat(ctx, a.tenant, lic.ID, seatKey, now)
			if err != nil {
				return outcome{}, err
			}
			if n >= m.SessionsPerSeat {
				return a.fail(stepSessions, domain.CodeMaxSessions, "the seat holds %d sessions (limit %d)", n, m.SessionsPerSeat), nil
			}
		}
		overage = seat.Overage
	} else {
		limit = seatCap(lic, m)
		// Reserved users not holding a seat keep one free each.
		need := 0
		if len(lic.Reservations) > 0 && !contains(lic.Reservations, r.Caller.User) {
			holding, err := tx.UsersHoldingSeats(ctx, a.tenant, lic.ID, lic.Reservations, now)
			if err != nil {
				return outcome{}, err
			}
			seen := map[string]bool{}
			for _, u := range lic.Reservations {
				if !seen[u] && !holding[u] {
					need++
				}
				seen[u] = true
			}
		}
		held = st.SeatsHeld
		if held+need >= lic.Seats {
			// The counter includes expired rows: make it exact before refusing or flagging.
			if a.dry {
				if held, err = tx.CountLiveSeats(ctx, a.tenant, lic.ID, now); err != nil {
					return outcome{}, err
				}
			} else {
				n, err := tx.ReapSeats(ctx, a.tenant, lic.ID, now)
				if err != nil {
					return outcome{}, err
				}
				st.SeatsHeld = max(0, st.SeatsHeld-n)
				held = st.SeatsHeld
			}
		}
		if held+need >= limit {
			tech := fmt.Sprintf("all %d seats of license %s are held", limit, lic.ID)
			if need > 0 {
				tech = fmt.Sprintf("%d of %d seats of license %s are held and %d are reserved", held, limit, lic.ID, need)
			}
			return a.fail(stepSeats, domain.CodeQuotaExceeded, "%s", tech), nil
		}
		overage = held+1 > lic.Seats
	}

	if a.dry {
		return outcome{res: Result{License: lic}}, nil
	}

	if m.HWLock {
		owner, err := tx.LockHW(ctx, a.tenant, m.Name, r.HW, lic.ID)
		if err != nil {
			return outcome{}, err
		}
		if owner != lic.ID {
			return a.fail(stepHWLock, domain.CodeAnchorLocked, "hw %s is locked to another license of model %s", r.HW, m.Name), nil
		}
	}

	exp := ms(now.Add(d))
	// No query for the seat's other leases: a seat's HeldUntil already covers every live
	// lease on it (the seat invariant), and a missing or expired seat has none.
	if seat == nil {
		seat = &domain.Seat{Tenant: a.tenant, LicenseID: lic.ID, Key: seatKey, User: r.Caller.User, Overage: overage}
		st.SeatsHeld++
		held = st.SeatsHeld
	}
	// A reclaimed lingering seat keeps at least its linger: it was counted until then anyway.
	seat.HeldUntil = maxTime(exp, seat.HeldUntil)
	seat.Lingering = false
	if err := tx.PutSeat(ctx, seat); err != nil {
		return outcome{}, err
	}
	st.UseCount += draw
	st.UseTime += reserve

	// Time-ordered (UUIDv7): a new lease's key lands at the end of the leases table, on a
	// page the last commit already wrote, rather than on a random one.
	id := uuid.Must(uuid.NewV7()).String()
	lease := &domain.Lease{
		ID: id, Root: id, Tenant: a.tenant, LicenseID: lic.ID, Item: a.item.Name,
		SeatKey: seatKey, SessionKey: sessKey,
		User: r.Caller.User, Client: r.Caller.Client,
		HW: r.HW, HWName: r.HWName, Process: r.Process, ProcessName: r.ProcessName, Version: r.Version,
		Mode: a.mode(), IssuedAt: now, RenewedAt: now, ExpiresAt: exp, RefreshAt: refreshAt(m, now, exp),
		Overage: overage, UseTimeReserved: reserve, SessionID: r.SessionID, ChainKey: domain.NewChainKey(),
	}
	if err := tx.InsertLease(ctx, lease); err != nil {
		return outcome{}, err
	}
	if err := tx.AppendUsage(ctx, []domain.UsageEvent{usage(lease, now, domain.EventGrant, d)}); err != nil {
		return outcome{}, err
	}
	return outcome{res: Result{Lease: lease, License: lic, seatsHeld: held, seatCap: limit}}, nil
}
