package engine

import (
	"context"
	"sort"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

type licenseRef struct{ tenant, license string }

func sortedRefs(m map[licenseRef]bool) []licenseRef {
	refs := make([]licenseRef, 0, len(m))
	for r := range m {
		refs = append(refs, r)
	}
	// Locks taken in one order everywhere cannot deadlock.
	sort.Slice(refs, func(i, j int) bool {
		if refs[i].tenant != refs[j].tenant {
			return refs[i].tenant < refs[j].tenant
		}
		return refs[i].license < refs[j].license
	})
	return refs
}

// Sweep removes up to Options.SweepBatch expired leases and reaps the expired seats of up to
// as many licenses, one transaction per license, and returns how many rows it removed.
// Nothing depends on it for correctness (an expired lease or seat counts for nothing
// whether swept or not); it keeps the tables small and writes the "expire" usage events.
// When nothing expired it costs one read transaction of two indexed queries.
func (e *Engine) Sweep(ctx context.Context) (int, error) {
	var leases []domain.Lease
	var expiredSeats [][2]string
	err := e.st.View(ctx, func(tx store.Tx) error {
		now := tx.Now()
		var err error
		if leases, err = tx.ExpiredLeases(ctx, now, e.opts.SweepBatch); err != nil {
			return err
		}
		expiredSeats, err = tx.LicensesWithExpiredSeats(ctx, now, e.opts.SweepBatch)
		return err
	})
	if err != nil || (len(leases) == 0 && len(expiredSeats) == 0) {
		return 0, err
	}
	byLicense := map[licenseRef][]domain.Lease{}
	refs := map[licenseRef]bool{}
	for _, l := range leases {
		r := licenseRef{l.Tenant, l.LicenseID}
		byLicense[r] = append(byLicense[r], l)
		refs[r] = true
	}
	for _, s := range expiredSeats {
		refs[licenseRef{s[0], s[1]}] = true
	}

	total := 0
	for _, r := range sortedRefs(refs) {
		var expired, reaped int
		err := e.st.Update(ctx, func(tx store.Tx) error {
			expired, reaped = 0, 0
			st, err := tx.LockLicense(ctx, r.tenant, r.license)
			if err != nil {
				return err
			}
			now := tx.Now()
			var events []Event
			for _, l := range byLicense[r] {
				// Locked: a renewal under the lease lock alone may be extending it right now.
				cur, err := lockLease(ctx, tx, l.Tenant, l.LicenseID, l.SeatKey, l.SessionKey)
				if err != nil {
					return err
				}
				if cur == nil || cur.Root != l.Root || cur.Live(now) {
					continue // released, replaced or renewed since the listing
				}
				if err := e.expireTx(ctx, tx, cur, now); err != nil {
					return err
				}
				events = append(events, endEvent(cur, domain.EventExpire))
				expired++
			}
			if err := e.report(ctx, tx, events...); err != nil {
				return err
			}
			if reaped, err = tx.ReapSeats(ctx, r.tenant, r.license, now); err != nil {
				return err
			}
			if reaped == 0 {
				return nil
			}
			st.SeatsHeld = max(0, st.SeatsHeld-reaped)
			return tx.SaveLicenseState(ctx, st)
		})
		if err != nil {
			return total, err
		}
		total += expired + reaped
		if reaped > 0 {
			e.q.wake(r.tenant, r.license)
		}
	}
	return total, nil
}

// Run beats for process and sweeps every `every` (at most Options.HeartbeatPeriod, which
// Start's judgement of "no server ran" relies on) until ctx ends. process must name this run
// of the server uniquely (host, pid and start time, say): Start looks at the beats of other
// processes, and a restarted server is another process.
func (e *Engine) Run(ctx context.Context, process string, every time.Duration) {
	if every <= 0 || every > e.opts.HeartbeatPeriod {
		every = e.opts.HeartbeatPeriod
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		err := e.st.Update(ctx, func(tx store.Tx) error { return tx.Heartbeat(ctx, process, tx.Now()) })
		if err != nil && ctx.Err() == nil {
			e.log.Error("heartbeat", "process", process, "err", err)
		}
		// A mass expiry is worked off a bounded batch at a time, a few batches per beat.
		for range 10 {
			n, err := e.Sweep(ctx)
			if err != nil {
				if ctx.Err() == nil {
					e.log.Error("sweep", "err", err)
				}
				break
			}
			if n < e.opts.SweepBatch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Start beats for process and applies restart grace; call it before serving. When no other
// process beat for more than two heartbeat periods, no server ran in between, and leases
// that expired meanwhile did so only because nobody could renew them: their seats (held
// until a time in that gap) are held lingering for the model's restart_grace from now, so
// that only their own anchor key can take them back meanwhile. Those seats were counted
// already, so this never over-grants.
func (e *Engine) Start(ctx context.Context, process string) error {
	_, err := e.start(ctx, process)
	return err
}

// start is Start, reporting how many seats it extended.
func (e *Engine) start(ctx context.Context, process string) (int, error) {
	var last, now time.Time
	err := e.st.Update(ctx, func(tx store.Tx) error {
		now = tx.Now()
		var err error
		if last, err = tx.LastHeartbeat(ctx, process); err != nil {
			return err
		}
		return tx.Heartbeat(ctx, process, now)
	})
	if err != nil || last.IsZero() || now.Sub(last) <= 2*e.opts.HeartbeatPeriod {
		return 0, err
	}
	e.log.Info("no server ran since the last heartbeat: applying restart grace", "since", last, "gap", now.Sub(last))

	total := 0
	// Every seat handled leaves the window (last, now], so the batches end.
	for range 10000 {
		var seats []domain.Seat
		err := e.st.View(ctx, func(tx store.Tx) error {
			var err error
			seats, err = tx.SeatsExpiredBetween(ctx, last, now, e.opts.SweepBatch)
			return err
		})
		if err != nil {
			return total, err
		}
		if len(seats) == 0 {
			break
		}
		byLicense := map[licenseRef][]domain.Seat{}
		refs := map[licenseRef]bool{}
		for _, s := range seats {
			r := licenseRef{s.Tenant, s.LicenseID}
			byLicense[r] = append(byLicense[r], s)
			refs[r] = true
		}
		for _, r := range sortedRefs(refs) {
			grace := e.restartGrace(ctx, r)
			var n int
			err := e.st.Update(ctx, func(tx store.Tx) error {
				n = 0
				st, err := tx.LockLicense(ctx, r.tenant, r.license)
				if err != nil {
					return err
				}
				txNow := tx.Now()
				dirty := false
				for _, s := range byLicense[r] {
					seat, err := getSeat(ctx, tx, s.Tenant, s.LicenseID, s.Key)
					if err != nil {
						return err
					}
					if seat == nil || !seat.HeldUntil.After(last) || seat.HeldUntil.After(now) {
						continue
					}
					if grace <= 0 {
						// No grace: the seat is as free as it was; remove it so the
						// window empties.
						if ok, err := tx.DeleteSeat(ctx, seat.Tenant, seat.LicenseID, seat.Key); err != nil {
							return err
						} else if ok {
							st.SeatsHeld = max(0, st.SeatsHeld-1)
							dirty = true
						}
						continue
					}
					seat.HeldUntil, seat.Lingering = txNow.Add(grace), true
					if err := tx.PutSeat(ctx, seat); err != nil {
						return err
					}
					n++
				}
				if dirty {
					return tx.SaveLicenseState(ctx, st)
				}
				return nil
			})
			if err != nil {
				return total, err
			}
			total += n
		}
		if len(seats) < e.opts.SweepBatch {
			break
		}
	}
	return total, nil
}

func (e *Engine) restartGrace(ctx context.Context, r licenseRef) time.Duration {
	snap, err := e.cat.Get(ctx, r.tenant)
	if err != nil {
		return domain.DefaultLicenseModel().RestartGrace.D()
	}
	if lic := snap.Licenses[r.license]; lic != nil {
		return e.compiledFor(r.tenant, snap).model(lic).m.RestartGrace.D()
	}
	return domain.DefaultLicenseModel().RestartGrace.D()
}
