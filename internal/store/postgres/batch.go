package postgres

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leasehold/leasehold/internal/store"
)

// A batcher runs the Updates that arrive together in one transaction on one connection,
// as the SQLite store's writer does, and commits them with one WAL flush.
//
// Why: a grant holds its license's row lock until its commit is on disk, so grants of one
// license run one flush at a time (about 3 ms each here) however many connections wait;
// and every transaction pays a BEGIN and a COMMIT round trip of its own. In a batch the
// lock is taken once for all the Updates that found it, and BEGIN, COMMIT and the flush
// are shared (BENCHMARKS.md, "PostgreSQL at speed").
//
// What stays as it was: each Update's fn runs alone, in call order, and sees the writes of
// those before it in the batch, as it would see them committed; every caller is answered
// only after the batch's COMMIT. What a batch cannot answer it hands back, to run again in
// a transaction of its own on its caller's goroutine (fns may run more than once:
// store.Store.Update): an Update that fails after writing (there is nothing to roll back to
// but the whole batch; those before it run again in a new batch), and every Update of a
// batch that hit a database error, a panic or a failed COMMIT.
//
// Locks: the Updates of one batch hold their locks together until COMMIT, in no order
// common to all batches, so two batches (of two processes) could each wait for the other.
// From its second Update on, a batch waits at most lockWait for any lock; past that it
// gives up and its Updates run alone, as before batching. The first Update waits as long as
// it takes: the batch holds nothing yet that another could be waiting for. Until a second
// joins it, though, the first is the batch's only caller, so its context still ends its
// statements, as outside a batch: a lock held elsewhere for minutes does not keep a caller
// whose deadline has passed.
type batcher struct {
	s     *Store
	queue chan *request // unbuffered: a request is either taken or its caller is still waiting to send it
	// maxTime ends the gathering of a batch (maxBatchTime; tests lengthen it).
	maxTime   time.Duration
	stop      chan struct{}
	closeOnce sync.Once
	done      chan struct{}
	// batches and updates count what runBatch committed; alone counts the Updates handed
	// back (tests and benchmarks).
	batches, updates, alone atomic.Int64
	workers                 int // batches run at once
}

const (
	// maxBatch bounds the Updates of one transaction, so that a caller waits for at most
	// that many others and the transaction's locks are held for a bounded time.
	maxBatch = 64
	// maxBatchTime ends the gathering of a batch: beyond it the waits of the batch's first
	// callers grow with no flush left to share.
	maxBatchTime = 20 * time.Millisecond
	// lockWait is how long an Update after a batch's first waits for a lock (see batcher).
	lockWait = "50ms"
	// batchWorkers is how many batches a process runs at once unless the connection string
	// says (batch_workers), each on a connection of its own: one batch's Updates wait for
	// each other's round trips, so a single batcher bounds a process's writes by the
	// round-trip latency (renewals: 0.5× of unbatched); 4 was the fastest of 1, 2, 4 and 8
	// for one process, renewals and grants alike. What counts is the batches the database
	// runs at once, from every process: three processes did best with 1 each
	// (BENCHMARKS.md, third round).
	batchWorkers = 4
	// maxBatchWorkers bounds batch_workers.
	maxBatchWorkers = 64
)

type request struct {
	ctx   context.Context // its caller's: see batcher
	fn    func(store.Tx) error
	state atomic.Int32
	err   error
	panic any
	hooks []func()
	// alone: the batch could not answer it; the caller runs it in a transaction of its own,
	// with InsertLease answering at once when plain (a held-back insert of the batch
	// conflicted, and which Update's it was is not known).
	alone, plain bool
	done         chan struct{}
}

const (
	queued int32 = iota
	taken
	abandoned
)

func newBatcher(s *Store, workers int) *batcher {
	b := &batcher{s: s, queue: make(chan *request), maxTime: maxBatchTime, stop: make(chan struct{}), done: make(chan struct{}), workers: workers}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(b.loop)
	}
	go func() { wg.Wait(); close(b.done) }()
	return b
}

func (b *batcher) close() {
	b.closeOnce.Do(func() { close(b.stop) })
	<-b.done
}

// errClosed answers an Update that arrives after Close.
var errClosed = errors.New("postgres: store closed")

// update is Store.Update through the batcher.
func (b *batcher) update(ctx context.Context, fn func(store.Tx) error) error {
	r := &request{ctx: ctx, fn: fn, done: make(chan struct{}, 1)}
	select {
	case b.queue <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.stop:
		return errClosed
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		if r.state.CompareAndSwap(queued, abandoned) {
			return ctx.Err() // the batcher skips it
		}
		// Already running: its outcome is the answer, whatever the context says.
		<-r.done
	}
	if r.panic != nil {
		panic(r.panic)
	}
	if r.alone {
		b.alone.Add(1)
		hooks, err := b.s.run(ctx, false, !r.plain, fn)
		if err == nil {
			runHooks(hooks)
		}
		return err
	}
	if r.err == nil {
		runHooks(r.hooks)
	}
	return r.err
}

func (b *batcher) loop() {
	for {
		select {
		case r := <-b.queue:
			b.runBatch(r)
		case <-b.stop:
			return
		}
	}
}

// next takes a waiting request, if any, letting the goroutines that are runnable (requests
// on their way) run once first: alone on the machine the yield returns at once.
func (b *batcher) next() *request {
	for _, yield := range []bool{false, true} {
		if yield {
			runtime.Gosched()
		}
		for {
			select {
			case r := <-b.queue:
				if r.state.CompareAndSwap(queued, taken) {
					return r
				}
				continue // abandoned by its caller
			default:
			}
			break
		}
	}
	return nil
}

// runBatch runs first and the requests that arrive meanwhile in one transaction, then
// answers them all.
func (b *batcher) runBatch(first *request) {
	if !first.state.CompareAndSwap(queued, taken) {
		return
	}
	for again := []*request{first}; len(again) > 0; {
		again = b.runOnce(again)
	}
}

// runOnce runs the requests of seed, then those that arrive meanwhile, in one transaction,
// and answers them; except when one of them failed after writing, the one request whose
// own doing broke the batch: it is handed back, and runOnce returns those before it
// (unanswered) to run again in a new batch, rather than hand them back too.
func (b *batcher) runOnce(seed []*request) (again []*request) {
	batch := seed
	defer func() {
		for _, r := range batch {
			r.done <- struct{}{}
		}
	}()
	var t *tx
	handBack := func() {
		plain := t != nil && errors.Is(t.dbErr, errHeldBackConflict)
		for _, r := range batch {
			if r.panic == nil {
				r.alone, r.plain, r.err, r.hooks = true, plain, nil, nil
			}
		}
	}
	s := b.s
	// The batch's statements serve several callers: none of their contexts may end them.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Until a second Update joins, the batch serves one caller only (see batcher).
	unbind := func() bool { return true }
	if len(seed) == 1 {
		unbind = context.AfterFunc(seed[0].ctx, cancel)
	}
	defer unbind()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		handBack()
		return nil
	}
	defer conn.Release()
	t, err = s.begin(ctx, conn, false)
	if err != nil {
		handBack()
		return nil
	}
	t.stmtCtx, t.holdInserts = ctx, true
	start, batchNow := time.Now(), t.now
	for i := 0; ; i++ {
		r := batch[i]
		if i > 0 {
			t.nextUpdate(s.updateNow(batchNow))
			if i == 1 {
				// Rides with the second Update's first statement.
				_ = t.write(ctx, "lock wait", `SELECT set_config('lock_timeout', '`+lockWait+`', true)`)
			}
		}
		switch b.runOne(t, r) {
		case ranOK:
		case wroteAndFailed:
			s.rollback(conn)
			again, batch = batch[:i:i], batch[i:]
			handBack()
			return again
		default:
			s.rollback(conn)
			handBack()
			return nil
		}
		if i+1 < len(batch) {
			continue // a request of seed
		}
		if i == 0 && !unbind() {
			// Its caller gave up while it ran: the batch's statements may have been cut
			// short, so it commits nothing, and the caller is told its context's end.
			s.rollback(conn)
			handBack()
			return nil
		}
		if len(batch) >= maxBatch || time.Since(start) > b.maxTime {
			break
		}
		r = b.next()
		if r == nil {
			break
		}
		batch = append(batch, r)
	}
	if err := t.commit(ctx); err != nil {
		s.rollback(conn)
		handBack()
		return nil
	}
	b.batches.Add(1)
	b.updates.Add(int64(len(batch)))
	return nil
}

// How runOne went.
type ranAs int

const (
	ranOK          ranAs = iota
	wroteAndFailed       // fn returned an error after writing: nothing to roll back to
	broke                // a database error or a panic
)

// runOne runs r's fn in the batch's transaction; unless ranOK the batch cannot answer it
// (see batcher) and must be rolled back.
func (b *batcher) runOne(t *tx, r *request) (how ranAs) {
	writes := t.writes
	defer func() {
		if p := recover(); p != nil {
			r.panic, how = p, broke
		}
	}()
	err := r.fn(t)
	if err != nil {
		t.sendHeldInserts(t.stmtCtx) // see attempt
	}
	switch {
	case t.dbErr != nil:
		return broke
	case err != nil && t.writes > writes:
		return wroteAndFailed
	}
	r.err, r.hooks = err, t.hooks
	return ranOK
}

// updateNow is the clock of a batch's later Update: the store's reading of the database's
// clock (never ahead of it), and never before the batch's own BEGIN.
func (s *Store) updateNow(batchNow time.Time) time.Time {
	if s.clock != nil {
		return s.clock().UTC().Add(s.offset)
	}
	if now, ok := s.sampledNow(); ok && now.After(batchNow) {
		return now
	}
	return batchNow
}

// BatchStats reports how many batches committed, holding how many Updates, and how many
// Updates a batch handed back to run alone.
func (s *Store) BatchStats() (batches, updates, alone int64) {
	if s.batches == nil {
		return 0, 0, 0
	}
	return s.batches.batches.Load(), s.batches.updates.Load(), s.batches.alone.Load()
}
