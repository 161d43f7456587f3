package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// Delivery parameters (SPEC §9).
const (
	// AttemptTimeout bounds one attempt: no answer within it is a failure.
	AttemptTimeout = 10 * time.Second
	// claimFor is how long a claimed row is left to its process: past it, another process
	// (or this one, restarted) takes it again. Longer than an attempt.
	claimFor = 30 * time.Second
	// firstRetry doubles after each failure, up to maxRetry.
	firstRetry = time.Second
	maxRetry   = time.Hour
	// concurrency bounds the deliveries in flight per process.
	concurrency = 16
	// pollEvery is how often the store is checked for due rows when nothing woke the loop
	// (rows written by another process, retries coming due).
	pollEvery = 500 * time.Millisecond
	// claimEvery is the least time between two claims, and flushEvery how long outcomes
	// are gathered before they are written in one transaction: a receiver that fails at
	// once (connection refused) then costs the store at most 1/claimEvery + 1/flushEvery
	// write transactions a second, whatever the backlog, so it never starves consumption
	// of the writer (SQLite has one).
	claimEvery = 100 * time.Millisecond
	flushEvery = 100 * time.Millisecond
	maxErrLen  = 300
)

// Backoff is the wait after the n-th failed attempt (n >= 1): 1 s doubling, capped at 1 h.
func Backoff(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	if n > 13 { // 2^12 s > 1 h
		return maxRetry
	}
	return min(firstRetry<<(n-1), maxRetry)
}

// Sign returns the Leasehold-Signature header of body at t under secret.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// client posts deliveries: an attempt's timeout, and redirects returned as answers (a
// 3xx is not 2xx: retried), never followed.
var client = &http.Client{
	Timeout: AttemptTimeout,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
	Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConnsPerHost: concurrency,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: AttemptTimeout,
	},
}

// Run writes the queued refusals, sweeps every second, and delivers due events until ctx
// ends; attempts in flight then are cut off and left to be claimed again.
func (o *Outbox) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { o.runDenials(ctx) })
	wg.Go(func() { o.runSweeper(ctx) })
	o.runDelivery(ctx)
	wg.Wait()
}

func (o *Outbox) runDenials(ctx context.Context) {
	// quiet holds, per coalescing key, when the store's minute of its last write ends (on
	// this process's clock): until then a refusal with the key is already told, so a storm
	// of refusals costs one write per key and minute, not one per refusal. The store's
	// unique key is what makes it one across processes.
	quiet := map[[4]string]time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-o.denials:
			k := [4]string{ev.Tenant, ev.LicenseID, ev.User, string(ev.Code)}
			if time.Now().Before(quiet[k]) {
				continue
			}
			if len(quiet) > 10000 {
				quiet = map[[4]string]time.Time{}
			}
			storeNow, err := o.writeDenial(ctx, ev)
			if err != nil {
				if ctx.Err() == nil {
					o.log.Warn("webhook: writing lease.denied failed", "tenant", ev.Tenant, "err", err)
				}
				continue
			}
			quiet[k] = time.Now().Add(storeNow.Truncate(time.Minute).Add(time.Minute).Sub(storeNow))
		}
	}
}

func (o *Outbox) runSweeper(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for n := 0; ; n++ {
		if err := o.Sweep(ctx); err != nil && ctx.Err() == nil {
			o.log.Warn("webhook sweep failed", "err", err)
		}
		if n%60 == 0 {
			if err := o.prune(ctx); err != nil && ctx.Err() == nil {
				o.log.Warn("webhook prune failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (o *Outbox) runDelivery(ctx context.Context) {
	sem := make(chan struct{}, concurrency)
	outcomes := make(chan outcome, concurrency)
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		o.runFlusher(outcomes)
	}()
	var inflight sync.WaitGroup
	defer func() {
		inflight.Wait()
		close(outcomes)
		<-flushed
	}()
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		last := time.Now()
		o.claimAndDeliver(ctx, sem, &inflight, outcomes)
		select {
		case <-ctx.Done():
			return
		case <-o.kick:
		case <-t.C:
		}
		if wait := claimEvery - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}
}

// claimAndDeliver claims as many due rows as there are free delivery slots, and starts
// their attempts.
func (o *Outbox) claimAndDeliver(ctx context.Context, sem chan struct{}, inflight *sync.WaitGroup, outcomes chan<- outcome) {
	free := cap(sem) - len(sem)
	if free == 0 || ctx.Err() != nil || o.idle.Load() {
		return
	}
	var rows []store.WebhookDelivery
	err := o.st.Update(ctx, func(tx store.Tx) error {
		var err error
		rows, err = tx.ClaimWebhookDeliveries(ctx, tx.Now(), tx.Now().Add(claimFor), free)
		return err
	})
	if err != nil {
		if ctx.Err() == nil {
			o.log.Warn("webhook: claiming deliveries failed", "err", err)
		}
		return
	}
	for _, d := range rows {
		sem <- struct{}{}
		inflight.Go(func() {
			defer func() { <-sem; o.wake() }()
			if oc, ok := o.attempt(ctx, d); ok {
				outcomes <- oc
			}
		})
	}
}

// outcome is an attempt's result, to be written.
type outcome struct {
	d       store.WebhookDelivery
	status  int
	err     error
	removed bool
}

// runFlusher writes outcomes in batches, one transaction per flushEvery, until outcomes
// is closed (then what is left is written).
func (o *Outbox) runFlusher(outcomes <-chan outcome) {
	var batch []outcome
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case oc, ok := <-outcomes:
			if !ok {
				o.flush(batch)
				return
			}
			batch = append(batch, oc)
		case <-t.C:
			o.flush(batch)
			batch = batch[:0]
		}
	}
}

// flush records the outcomes in one transaction.
func (o *Outbox) flush(batch []outcome) {
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := o.st.Update(ctx, func(tx store.Tx) error {
		now := tx.Now()
		counts := map[string]int{}
		for _, oc := range batch {
			r, res := finish(oc, now)
			counts[res]++
			if _, err := tx.FinishWebhookDelivery(ctx, &r); err != nil {
				return err
			}
		}
		tx.AfterCommit(func() {
			for res, n := range counts {
				o.met.deliveries.WithLabelValues(res).Add(float64(n))
			}
		})
		return nil
	})
	if err != nil {
		// The rows stay claimed until their claim ends, then are attempted again.
		o.log.Warn("webhook: recording deliveries failed", "deliveries", len(batch), "err", err)
	}
}

// finish is the row as an attempt leaves it at now, and the attempt's outcome label.
func finish(oc outcome, now time.Time) (store.WebhookDelivery, string) {
	r := oc.d
	r.LastStatus, r.LastError = oc.status, ""
	switch {
	case oc.removed:
		r.Status, r.FinishedAt, r.NextTry, r.LastError = store.WebhookFailed, now, now, "webhook removed"
		return r, "removed"
	case oc.err == nil:
		r.Status, r.FinishedAt, r.NextTry = store.WebhookDelivered, now, now
		return r, "delivered"
	}
	r.LastError = truncate(oc.err.Error())
	r.Status, r.NextTry = store.WebhookPending, now.Add(Backoff(r.Attempts))
	if r.NextTry.After(r.Deadline) {
		r.Status, r.FinishedAt, r.NextTry = store.WebhookFailed, now, now
		return r, "failed"
	}
	return r, "retry"
}

// attempt makes one attempt of d; ok is false when there is nothing to record (shutting
// down: the row is claimed again once its claim ends).
func (o *Outbox) attempt(ctx context.Context, d store.WebhookDelivery) (outcome, bool) {
	oc := outcome{d: d}
	snap, err := o.cat.Get(ctx, d.Tenant)
	if err != nil && !errors.Is(err, domain.ErrNotFound) {
		if ctx.Err() == nil {
			o.log.Warn("webhook: reading the catalog failed", "tenant", d.Tenant, "err", err)
		}
		return oc, false
	}
	var w *domain.Webhook
	if snap != nil {
		w = snap.Webhooks[d.Webhook]
	}
	switch {
	case w == nil:
		oc.removed = true
	default:
		secret := w.Secret
		if w.SecretEnv != "" {
			secret = os.Getenv(w.SecretEnv)
		}
		if secret == "" {
			oc.err = fmt.Errorf("secret_env %s is not set in this process's environment", w.SecretEnv)
		} else {
			oc.status, oc.err = post(ctx, w.URL, secret, &d)
		}
	}
	return oc, ctx.Err() == nil
}

// post makes one attempt: the answer's status, and an error unless it is 2xx.
func post(ctx context.Context, url, secret string, d *store.WebhookDelivery) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(d.Body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Leasehold-Webhook/1")
	req.Header.Set("Leasehold-Event-Id", d.EventID)
	req.Header.Set("Leasehold-Signature", Sign(secret, time.Now(), d.Body))
	resp, err := client.Do(req)
	if err != nil {
		var ue interface{ Timeout() bool }
		if errors.As(err, &ue) && ue.Timeout() {
			return 0, fmt.Errorf("no answer within %s", AttemptTimeout)
		}
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

func truncate(s string) string {
	if len(s) <= maxErrLen {
		return s
	}
	return s[:maxErrLen] + "…"
}
