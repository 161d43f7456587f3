package engine

import (
	"context"
	"errors"
	"time"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// The checks of one candidate license, in the order SPEC 3.1 fixes. A candidate refused at
// step s passed s checks; when no candidate grants, the refusal of the one that got furthest
// is reported (the first in license id order among equals).
const (
	stepActive = iota
	stepValidity
	stepVersion
	stepIP
	stepCountry
	stepAssignment
	stepReservation
	stepAnchors
	stepHWLock
	stepUseCount
	stepUseTime
	stepConsumptionLimit
	stepSessions
	stepSeats
)

// Consume decides every item of req, in request order, each in its own transaction. The
// error is only for store failures (and for ctx ending while a queued request waited);
// refusals are Results with Err set.
//
// With req.Queue > 0, ctx must be the client's request context (r.Context() in HTTP): when
// it ends after a queued request was granted, the grants of this request are released
// without linger and ctx's error is returned, so a client that went away holds no seat.
func (e *Engine) Consume(ctx context.Context, req Request) ([]Result, error) {
	snap, err := e.cat.Get(ctx, req.Tenant)
	if err != nil {
		return nil, err
	}
	out := make([]Result, 0, len(req.Items))
	for _, item := range req.Items {
		r, err := e.consumeItem(ctx, snap, &req, item)
		if err == nil && req.Queue > 0 && ctx.Err() != nil {
			out = append(out, r)
			err = ctx.Err()
		}
		if err != nil {
			if req.Queue > 0 && ctx.Err() != nil {
				e.abandon(ctx, req.Tenant, out)
			}
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (e *Engine) consumeItem(ctx context.Context, snap *catalog.Snapshot, req *Request, item ItemRequest) (Result, error) {
	if !req.DoConsume {
		var res Result
		err := e.st.View(ctx, func(tx store.Tx) error {
			var err error
			res, err = e.decide(ctx, tx, snap, req, item, true, false)
			return err
		})
		return res, err
	}
	res, err := e.consumeOnce(ctx, snap, req, item)
	if err != nil {
		return Result{}, err
	}
	if req.Queue > 0 && res.Err != nil && res.Err.Code == domain.CodeQuotaExceeded {
		return e.WaitForSeat(ctx, *req, item, res, func(ctx context.Context) (Result, error) {
			snap, err := e.cat.Get(ctx, req.Tenant)
			if err != nil {
				return Result{}, err
			}
			return e.consumeOnce(ctx, snap, req, item)
		})
	}
	return res, nil
}

func (e *Engine) consumeOnce(ctx context.Context, snap *catalog.Snapshot, req *Request, item ItemRequest) (Result, error) {
	var res Result
	// The first try may renew under the lease's lock alone; when that turns out to need
	// the license lock it rolls back (errSlowPath) and the decision runs again under it.
	for _, fast := range []bool{true, false} {
		err := e.st.Update(ctx, func(tx store.Tx) error {
			var err error
			res, err = e.decide(ctx, tx, snap, req, item, !req.DoConsume, fast)
			return err
		})
		if !errors.Is(err, errSlowPath) {
			return res, err
		}
	}
	return Result{}, errors.New("engine: a renewal asked for the license lock while holding it")
}

// errSlowPath rolls back a renewal tried under its lease lock alone that needs the
// license lock after all (a counter or the seat count would change).
var errSlowPath = errors.New("engine: renewal needs the license lock")

// abandon releases, without linger, the leases this request created (not the ones it
// renewed: their holder still has the previous token).
func (e *Engine) abandon(ctx context.Context, tenant string, results []Result) {
	ctx = context.WithoutCancel(ctx)
	snap, err := e.cat.Get(ctx, tenant)
	if err != nil {
		e.log.Error("releasing the grants of an abandoned request", "tenant", tenant, "err", err)
		return
	}
	for _, r := range results {
		if r.Lease == nil || r.Renewed {
			continue
		}
		l := r.Lease
		err := e.st.Update(ctx, func(tx store.Tx) error {
			_, err := e.ReleaseTx(ctx, tx, snap, l, false)
			return err
		})
		if err != nil {
			e.log.Error("releasing the grant of an abandoned request", "tenant", tenant, "lease", l.ID, "err", err)
			continue
		}
		e.q.wake(tenant, l.LicenseID)
	}
}

// ConsumeTx decides one item inside tx, so that a caller can take a seat in the same
// transaction that creates what holds it (a session: see TakeSessionSeat). It writes
// nothing when the answer is a refusal other than the housekeeping of expired rows. The
// result is reported to the observers once tx commits. The error is only for store
// failures.
func (e *Engine) ConsumeTx(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, req Request, item ItemRequest) (Result, error) {
	// The caller's transaction cannot be rolled back and run again, so it always takes the
	// license lock.
	return e.decide(ctx, tx, snap, &req, item, !req.DoConsume, false)
}

// attempt is one decision: one item of one request, inside one transaction.
type attempt struct {
	ctx     context.Context
	tx      store.Tx
	e       *Engine
	req     *Request
	item    ItemRequest
	tenant  string
	now     time.Time
	dry     bool // check only: a View, nothing written
	leaseID string
	comp    *compiled
	pinned  *domain.Lease // a session's own lease, named by Request.LeaseID
	// fast allows renewing a live lease under its own row lock instead of the license's
	// (see tryFast); renewOn is the license where a live lease of the request was seen.
	fast    bool
	renewOn string
	// seen holds what decide found under each session key it looked up (a lease, or none),
	// kept when tx is Serial: no other writer can change it before this attempt's
	// lockLease of that key, which then takes it instead of reading it again. A new seat
	// thus reads its session key once, not twice.
	seen []seenLease
}

// seenLease is what a session key of a license held when decide looked: Lease nil for none.
type seenLease struct {
	licenseID, seatKey, sessKey string
	lease                       *domain.Lease
}

// outcome of trying one candidate license.
type outcome struct {
	res   Result
	err   *domain.LicenseError
	step  int
	final bool // a refused renewal: no other candidate may be tried
}
