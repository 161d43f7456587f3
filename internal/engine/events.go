package engine

import (
	"context"
	"errors"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// Event is one thing the engine decided: a grant or renewal, a refusal, or the end of a
// lease. It is reported only once the transaction that decided it has committed, so a
// subscriber never sees what was rolled back (a session whose login failed later in the
// same transaction, a retried attempt).
type Event struct {
	// Kind is domain.EventGrant (a grant or renewal: see Renewal), domain.EventDeny, or how
	// a lease ended: domain.EventRelease (by its holder: the seat lingers), domain.EventEnd
	// (without linger: an administrator, a session's end, an abandoned grant) or
	// domain.EventExpire (the sweeper).
	Kind      string
	Tenant    string
	LicenseID string // for a refusal, the license whose error is reported ("" when none was a candidate)
	Item      string
	// Lease is the lease granted, renewed or ended (nil for a refusal). It is the engine's
	// copy: read it, never change it.
	Lease   *domain.Lease
	Renewal bool             // a grant that extends (or, within chain_grace, repeats) a lease
	Overage bool             // a grant on a seat beyond the license's seats
	Code    domain.ErrorCode // a refusal's license error
	// User and Client made the refused request (a refusal only: a grant's are the lease's).
	User, Client string
	// SeatsHeld and SeatCap, for a grant that took a new seat (else 0): the license's seat
	// counter after it, an upper bound of the seats held (it may count expired rows), and
	// floor(seats × overage).
	SeatsHeld, SeatCap int
}

// Observer receives what the engine decided, after commit. Observe is called on the
// goroutine that ran the transaction, once per engine operation in it (a transaction that
// ended one session and opened another delivers two slices, in order); the slice is the
// observer's to keep. Implementations must be cheap and safe for concurrent use.
type Observer interface {
	Observe(events []Event)
}

// TxObserver receives what the engine decided inside the transaction that decided it,
// before commit, so that what it writes in tx (an outbox row) commits or rolls back with
// the decision. An error fails the transaction. ObserveTx may run more than once for one
// decision (a store may run a transaction again); it must not keep the slice.
type TxObserver interface {
	ObserveTx(ctx context.Context, tx store.Tx, events []Event) error
}

// report hands events to the TxObservers in tx, and has them delivered to the Observers
// once tx has committed (store.Tx.AfterCommit): never for a transaction that rolls back or
// an attempt the store runs again.
func (e *Engine) report(ctx context.Context, tx store.Tx, events ...Event) error {
	if len(events) == 0 {
		return nil
	}
	for _, o := range e.opts.TxObservers {
		if err := o.ObserveTx(ctx, tx, events); err != nil {
			return err
		}
	}
	if len(e.observers) == 0 {
		return nil
	}
	tx.AfterCommit(func() { e.deliver(events) })
	return nil
}

func (e *Engine) deliver(events []Event) {
	for _, o := range e.observers {
		o.Observe(events)
	}
}

// ReportSeatRefusal reports the refusal err carries when it is a *SeatError that rolled
// its transaction back (a login refused for want of a seat): nothing was written, so
// AfterCommit dropped the refusal, but a refusal happened and is counted like any other.
// Call it once, after the Update that returned err. An attempt of a queued opening
// (WithQueuedSeat) refused for want of a seat is not reported: WaitSessionSeat reports the
// answer its wait ends with, as for a queued consumption.
func (e *Engine) ReportSeatRefusal(ctx context.Context, err error) {
	var se *SeatError
	if !errors.As(err, &se) || se.Err == nil || len(e.observers) == 0 {
		return
	}
	if queuedSeat(ctx) && se.Err.Code == domain.CodeQuotaExceeded {
		return
	}
	e.deliver([]Event{{Kind: domain.EventDeny, Tenant: se.Tenant, LicenseID: se.License, Item: se.Item, Code: se.Err.Code, User: se.User}})
}

// resultEvent is the event of a consumption's answer; ok is false for a check (no lease).
func resultEvent(req *Request, r Result) (Event, bool) {
	switch {
	case r.Err != nil:
		return Event{Kind: domain.EventDeny, Tenant: req.Tenant, LicenseID: r.RefusedOn, Item: r.Item, Code: r.Err.Code,
			User: req.Caller.User, Client: req.Caller.Client}, true
	case r.Lease != nil && r.License != nil:
		return Event{
			Kind: domain.EventGrant, Tenant: req.Tenant, LicenseID: r.License.ID, Item: r.Item,
			Lease: r.Lease, Renewal: r.Renewed, Overage: r.Lease.Overage, SeatsHeld: r.seatsHeld, SeatCap: r.seatCap,
		}, true
	}
	return Event{}, false
}

// endEvent is the event of lease l ending (kind: release, end or expire).
func endEvent(l *domain.Lease, kind string) Event {
	return Event{Kind: kind, Tenant: l.Tenant, LicenseID: l.LicenseID, Item: l.Item, Lease: l}
}

// metricsObserver feeds Options.Metrics from the events.
type metricsObserver struct{ m Metrics }

func (o metricsObserver) Observe(events []Event) {
	for _, ev := range events {
		switch ev.Kind {
		case domain.EventGrant:
			o.m.OnGrant(ev.Tenant, ev.LicenseID, ev.Item, ev.Renewal, ev.Overage)
		case domain.EventDeny:
			o.m.OnDeny(ev.Tenant, ev.Item, ev.Code)
		default:
			o.m.OnRelease(ev.Tenant, ev.LicenseID, ev.Kind)
		}
	}
}

// SeatCap is the most seats license lic of model m may hold: floor(seats × overage).
func SeatCap(lic *domain.License, m *domain.LicenseModel) int { return seatCap(lic, m) }
