package engine

import (
	"context"
	"sync"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
)

// queue holds the requests of this process waiting for a seat, one line per (tenant, item).
// The store decides every grant; the queue only decides who in this process asks next, so
// that waiters are served first come first served: a waiter may try only while no earlier
// waiter of its line wants one of the same licenses.
type queue struct {
	mu    sync.Mutex
	lines map[lineKey][]*waiter
}

type lineKey struct{ tenant, item string }

type waiter struct {
	key  lineKey
	lics map[string]bool
	wake chan struct{}
}

func newQueue() *queue { return &queue{lines: map[lineKey][]*waiter{}} }

func (q *queue) join(tenant, item string, lics []string) *waiter {
	w := &waiter{key: lineKey{tenant, item}, lics: map[string]bool{}, wake: make(chan struct{}, 1)}
	for _, id := range lics {
		w.lics[id] = true
	}
	q.mu.Lock()
	q.lines[w.key] = append(q.lines[w.key], w)
	q.mu.Unlock()
	return w
}

func (q *queue) leave(w *waiter) {
	q.mu.Lock()
	defer q.mu.Unlock()
	line := q.lines[w.key]
	for i, x := range line {
		if x == w {
			line = append(line[:i:i], line[i+1:]...)
			break
		}
	}
	if len(line) == 0 {
		delete(q.lines, w.key)
		return
	}
	q.lines[w.key] = line
	// Whoever it was blocking may try now.
	for i, x := range line {
		if eligibleAt(line, i) {
			signal(x)
		}
	}
}

func (q *queue) eligible(w *waiter) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	line := q.lines[w.key]
	for i, x := range line {
		if x == w {
			return eligibleAt(line, i)
		}
	}
	return false
}

func eligibleAt(line []*waiter, i int) bool {
	for _, earlier := range line[:i] {
		for id := range line[i].lics {
			if earlier.lics[id] {
				return false
			}
		}
	}
	return true
}

// wake tells the first eligible waiter of each line of tenant that wants licenseID that a
// seat of it may have freed.
func (q *queue) wake(tenant, licenseID string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for k, line := range q.lines {
		if k.tenant != tenant {
			continue
		}
		for i, w := range line {
			if w.lics[licenseID] {
				if eligibleAt(line, i) {
					signal(w)
				}
				break
			}
		}
	}
}

func signal(w *waiter) {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// MaxQueue caps a request's wait for a seat (queue=): a longer one is cut to it. A waiting
// request holds a connection open, and the proxies in front of a server rarely keep one
// open longer without an answer.
const MaxQueue = 5 * time.Minute

// Drain ends every wait for a seat at once, now and later, each with the refusal its wait
// would have ended with: a server shutting down answers its queued clients instead of
// dropping them, and new waits do not start.
func (e *Engine) Drain() { e.drainOnce.Do(func() { close(e.drained) }) }

// WaitForSeat queues a request that was refused with licenseQuotaExceeded (last) for up to
// req.Queue (at most MaxQueue; until Drain), first come first served among the waiters of this process for the same tenant
// and item. try makes one attempt (one transaction); it is called when a seat of a candidate
// license was freed by this process, and every Options.QueuePoll for seats freed by other
// processes or by expiry. WaitForSeat returns the first answer that is not
// licenseQuotaExceeded, or last when the wait is over.
//
// try runs with a context that is not cancelled with ctx, so an attempt either commits
// whole or not at all. When ctx is done after a grant, the grant is returned with a nil
// error: the caller must check ctx.Err() and undo it (Consume releases it without linger;
// session code ends the session it created). When ctx ends while waiting, its error is
// returned.
func (e *Engine) WaitForSeat(ctx context.Context, req Request, item ItemRequest, last Result, try func(context.Context) (Result, error)) (Result, error) {
	snap, err := e.cat.Get(ctx, req.Tenant)
	if err != nil {
		return Result{}, err
	}
	var ids []string
	for _, l := range candidates(snap, &req, item) {
		ids = append(ids, l.ID)
	}
	w := e.q.join(req.Tenant, item.Name, ids)
	defer e.q.leave(w)

	deadline := time.NewTimer(min(req.Queue, MaxQueue))
	defer deadline.Stop()
	poll := time.NewTicker(e.opts.QueuePoll)
	defer poll.Stop()
	for {
		over := false // the wait's time is up, or the server is shutting down
		select {
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-deadline.C:
			over = true
		case <-e.drained:
			over = true
		case <-w.wake:
		case <-poll.C:
		}
		if over {
			// The last attempt committed already: its refusal is reported now.
			if ev, ok := resultEvent(&req, last); ok {
				e.deliver([]Event{ev})
			}
			return last, nil
		}
		if !e.q.eligible(w) {
			continue
		}
		res, err := try(context.WithoutCancel(ctx))
		if err != nil {
			return Result{}, err
		}
		if res.Err == nil || res.Err.Code != domain.CodeQuotaExceeded {
			return res, nil // reported by its transaction
		}
		last = res
	}
}
