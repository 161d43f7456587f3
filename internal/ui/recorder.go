package ui

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
	"github.com/leasehold/leasehold/internal/store"
)

// UsageRetention is how long hourly usage is kept (SPEC §10: 90 days).
const UsageRetention = 90 * 24 * time.Hour

// Recorder keeps the hourly usage the usage page draws, at a cost the request path does not
// feel: a refusal is one map increment in memory, and every Every the counts are flushed in
// one transaction as `denials = denials + n`; the seats held are sampled per license at the
// same pace and written only when they beat the hour's peak already written (the store
// keeps the max), so a steady license costs no write at all. Several processes add their
// own refusals and merge their samples by max, so they need no coordination.
//
// What it gives up: a peak shorter than Every between two samples is not seen, and a crash
// loses the refusals of the last Every (they are counted, not acknowledged to anyone).
type Recorder struct {
	st    store.Store
	cat   *catalog.Cache
	every time.Duration
	log   *slog.Logger
	now   func() time.Time

	mu      sync.Mutex
	denials map[usageKey]int

	// flushMu serializes flushes (Run's, and a caller's such as a test or a shutdown);
	// written, the peak this process last wrote per key, is only touched under it.
	flushMu sync.Mutex
	written map[usageKey]int
}

type usageKey struct {
	tenant, license string
	hour            time.Time
}

// RecorderOptions configure a Recorder; the zero value is usable.
type RecorderOptions struct {
	Every  time.Duration // flush and sample period (default 5s)
	Logger *slog.Logger
}

// NewRecorder returns a recorder writing to st.
func NewRecorder(st store.Store, cat *catalog.Cache, opts RecorderOptions) *Recorder {
	if opts.Every <= 0 {
		opts.Every = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Recorder{st: st, cat: cat, every: opts.Every, log: opts.Logger, now: time.Now,
		denials: map[usageKey]int{}, written: map[usageKey]int{}}
}

// Denied counts one refused consumption of license ("" when no license was a candidate).
func (r *Recorder) Denied(tenant, license string) {
	k := usageKey{tenant, license, r.now().UTC().Truncate(time.Hour)}
	r.mu.Lock()
	r.denials[k]++
	r.mu.Unlock()
}

// Observe takes the engine's decisions after commit (an engine.Observer) and counts the
// refusals, whatever the route: /authz, logins, client credentials.
func (r *Recorder) Observe(events []engine.Event) {
	for _, ev := range events {
		if ev.Kind == domain.EventDeny {
			r.Denied(ev.Tenant, ev.LicenseID)
		}
	}
}

// Run flushes and samples every Every, and prunes hours older than UsageRetention once
// an hour, until ctx ends; then it flushes what is counted one last time.
func (r *Recorder) Run(ctx context.Context) {
	t := time.NewTicker(r.every)
	defer t.Stop()
	var pruned time.Time
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = r.Flush(final, false)
			cancel()
			return
		case <-t.C:
		}
		if err := r.Flush(ctx, true); err != nil && ctx.Err() == nil {
			r.log.Warn("usage recorder: flush failed", "err", err)
		}
		if now := r.now(); now.Sub(pruned) >= time.Hour {
			if err := r.Prune(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("usage recorder: pruning failed", "err", err)
			} else {
				pruned = now
			}
		}
	}
}

// Flush writes the refusals counted so far and, with sample, the seats held now where
// they beat the hour's peak. On failure the refusals are kept for the next flush.
func (r *Recorder) Flush(ctx context.Context, sample bool) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	pending := r.denials
	r.denials = map[usageKey]int{}
	r.mu.Unlock()
	rows := make([]store.UsageHour, 0, len(pending))
	for k, n := range pending {
		rows = append(rows, store.UsageHour{Tenant: k.tenant, LicenseID: k.license, Hour: k.hour, Denials: n})
	}
	var peaks map[usageKey]int
	if sample {
		var err error
		if peaks, err = r.sample(ctx); err != nil {
			r.requeue(pending)
			return err
		}
		for k, n := range peaks {
			rows = append(rows, store.UsageHour{Tenant: k.tenant, LicenseID: k.license, Hour: k.hour, PeakSeats: n})
		}
	}
	if len(rows) == 0 {
		return nil
	}
	err := r.st.Update(ctx, func(tx store.Tx) error { return tx.AddUsageHours(ctx, rows) })
	if err != nil {
		r.requeue(pending)
		return err
	}
	for k, n := range peaks {
		r.written[k] = n
	}
	return nil
}

func (r *Recorder) requeue(pending map[usageKey]int) {
	r.mu.Lock()
	for k, n := range pending {
		r.denials[k] += n
	}
	r.mu.Unlock()
}

// sample reads the seats held on every license (engine.SeatsUsed: the seat counter less
// the expired rows not reaped yet) and returns those above the peak written this hour.
func (r *Recorder) sample(ctx context.Context) (map[usageKey]int, error) {
	tenants, err := r.cat.Tenants(ctx)
	if err != nil {
		return nil, err
	}
	out := map[usageKey]int{}
	for _, t := range tenants {
		snap, err := r.cat.Get(ctx, t.Name)
		if err != nil {
			continue // deleted since the list was read
		}
		if len(snap.Licenses) == 0 {
			continue
		}
		err = r.st.View(ctx, func(tx store.Tx) error {
			now := tx.Now()
			hour := now.UTC().Truncate(time.Hour)
			for id := range snap.Licenses {
				n, err := engine.SeatsUsed(ctx, tx, t.Name, id, now)
				if err != nil {
					return err
				}
				k := usageKey{t.Name, id, hour}
				if w, ok := r.written[k]; n > 0 && (!ok || n > w) {
					out[k] = n
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	// Keys of past hours will not be written again by this process.
	for k := range r.written {
		if time.Since(k.hour) > 2*time.Hour {
			delete(r.written, k)
		}
	}
	return out, nil
}

// Prune deletes the hours older than UsageRetention.
func (r *Recorder) Prune(ctx context.Context) error {
	return r.st.Update(ctx, func(tx store.Tx) error {
		_, err := tx.PruneUsageHours(ctx, tx.Now().Add(-UsageRetention).Truncate(time.Hour))
		return err
	})
}
