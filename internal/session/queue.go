package session

import (
	"context"
	"time"

	"github.com/leasehold/leasehold/internal/engine"
)

// openQueued runs open, a session's whole opening transaction (its seat included). With
// queue > 0 it is queue= for that seat (engine.WaitSessionSeat): a refusal for want of a
// seat runs open again whenever one may have freed, first come first served, for up to
// queue. seat describes the seat waited for, asked once the first attempt has run (false:
// that attempt never reached a seat, so there is nothing to wait for). A client that went
// away while it waited holds no seat: the session open made (opened) ends.
func (m *Manager) openQueued(ctx context.Context, tenant string, queue time.Duration,
	open func(context.Context) error, seat func() (engine.SessionSeat, bool), opened func() string) error {
	if queue <= 0 {
		return open(ctx)
	}
	qctx := engine.WithQueuedSeat(ctx)
	err := open(qctx)
	s, ok := seat()
	if !ok {
		return err
	}
	if err := m.eng.WaitSessionSeat(qctx, s, queue, err, open); err != nil {
		return err
	}
	if ctx.Err() != nil {
		_, _ = m.End(context.WithoutCancel(ctx), tenant, opened(), false)
		return ctx.Err()
	}
	return nil
}
