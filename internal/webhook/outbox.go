// Package webhook is Leasehold's webhooks (SPEC §9): an outbox and its delivery.
//
// Events caused by a request are written as outbox rows (store.WebhookDelivery, one per
// subscribed webhook) in the store transaction of the change that caused them: the engine
// hands its decisions to Outbox.ObserveTx before commit, and the session manager's store
// is wrapped (SessionStore) so that a session inserted or deleted writes its event in the
// same transaction. A tenant with no webhook subscribed to an event type writes nothing
// for it, so consumption costs what it did without webhooks.
//
// Events caused by time (a seat freed by expiry or the end of its linger, a license about
// to expire) are written by Outbox.Sweep, under the license lock with a conditional write
// of a per-license marker, so that of several processes exactly one writes each.
//
// lease.denied is written after the answer, off the request's path (best effort), and
// coalesced per (license, user, error code) per minute by a unique key.
//
// Delivery (Deliverer) claims due rows in short transactions (PostgreSQL: FOR UPDATE SKIP
// LOCKED) that move their next try past the attempt, so one process at a time delivers an
// event; a process killed mid-attempt leaves its rows to be claimed again when that time
// comes. Deliveries run on their own goroutines, bounded in number: a slow or dead
// receiver never holds a store transaction nor a request.
package webhook

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
	"github.com/leasehold/leasehold/internal/store"
)

// Outbox writes webhook events to the store.
type Outbox struct {
	st  store.Store
	cat *catalog.Cache
	log *slog.Logger
	met *Metrics

	// denials are refusals waiting to be written (lease.denied), after the answer.
	denials chan engine.Event
	// kick wakes the deliverer when a transaction wrote rows.
	kick chan struct{}
	// idle is set by the sweeper when no tenant has a webhook: then nothing is claimed
	// nor swept (a store without webhooks pays no polling writes).
	idle atomic.Bool

	mu sync.Mutex
	// exhausted holds the licenses believed exhausted (tenant, license): an ended lease
	// checks for license.available in its transaction only for these. The sweeper sets
	// it from the store every tick, so a marker set by another process is seen within one.
	exhausted map[[2]string]bool
	// expiring remembers the license.expiring markers written or found, so that a
	// license inside its notice window is not written again every tick.
	expiring map[expiringKey]bool
}

type expiringKey struct {
	tenant, license, webhook string
	until                    int64
}

// New returns an Outbox; register it with the engine (TxObservers and Observers) and wrap
// the session manager's store with SessionStore.
func New(st store.Store, cat *catalog.Cache, met *Metrics, log *slog.Logger) *Outbox {
	if log == nil {
		log = slog.Default()
	}
	if met == nil {
		met = NewMetrics(nil)
	}
	return &Outbox{
		st: st, cat: cat, log: log, met: met,
		denials:   make(chan engine.Event, 1024),
		kick:      make(chan struct{}, 1),
		exhausted: map[[2]string]bool{}, expiring: map[expiringKey]bool{},
	}
}

// envelope is the body of a delivery (SPEC §9).
type envelope struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Tenant  string `json:"tenant"`
	Created string `json:"created"`
	Data    any    `json:"data"`
}

// subscribed returns the tenant's webhooks that want typ, from the snapshot last loaded
// (never a store read: this runs inside transactions).
func (o *Outbox) subscribed(tenant, typ string) []*domain.Webhook {
	snap := o.cat.Peek(tenant)
	if snap == nil || len(snap.Webhooks) == 0 {
		return nil
	}
	var out []*domain.Webhook
	for _, w := range snap.Webhooks {
		if w.Wants(typ) {
			out = append(out, w)
		}
	}
	return out
}

// write adds one event for every webhook of tenant subscribed to typ, in tx. dedup (may
// be "") coalesces: a webhook gets one row per dedup key.
func (o *Outbox) write(ctx context.Context, tx store.Tx, tenant, typ string, data any, dedup string) error {
	_, err := o.writeTo(ctx, tx, o.subscribed(tenant, typ), tenant, typ, data, dedup)
	return err
}

// writeTo adds one event for each of hooks, in tx, and returns how many rows it added
// (fewer than hooks when coalesced).
func (o *Outbox) writeTo(ctx context.Context, tx store.Tx, hooks []*domain.Webhook, tenant, typ string, data any, dedup string) (int, error) {
	if len(hooks) == 0 {
		return 0, nil
	}
	now := tx.Now().UTC()
	id := uuid.Must(uuid.NewV7()).String()
	body, err := json.Marshal(envelope{ID: id, Type: typ, Tenant: tenant, Created: now.Format(time.RFC3339), Data: data})
	if err != nil {
		return 0, err
	}
	rows := make([]store.WebhookDelivery, 0, len(hooks))
	for _, w := range hooks {
		rows = append(rows, store.WebhookDelivery{
			EventID: id, Tenant: tenant, Webhook: w.ID, Type: typ, Body: body, Dedup: dedup,
			Created: now, Deadline: now.Add(w.RetryFor.D()), NextTry: now,
		})
	}
	n, err := tx.InsertWebhookDeliveries(ctx, rows)
	if err != nil {
		return 0, err
	}
	if n > 0 {
		tx.AfterCommit(func() {
			o.met.event(typ)
			o.idle.Store(false)
			o.wake()
		})
	}
	return n, nil
}

func (o *Outbox) wake() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// LicenseData is the data of license.exhausted and license.available.
type LicenseData struct {
	License   string `json:"license"`
	Seats     int    `json:"seats"`      // the license's seats
	Capacity  int    `json:"capacity"`   // floor(seats × overage): the most it may hold
	SeatsHeld int    `json:"seats_held"` // held now, lingering included
}

// ObserveTx implements engine.TxObserver: a grant that took the last seat under the
// capacity writes license.exhausted, and an ended lease on a license marked exhausted that
// freed a seat writes license.available, in the decision's transaction (which holds the
// license lock, so the count is exact and the marker changes once).
func (o *Outbox) ObserveTx(ctx context.Context, tx store.Tx, events []engine.Event) error {
	for i := range events {
		ev := &events[i]
		switch ev.Kind {
		case domain.EventGrant:
			// The counter may include expired rows: below the capacity it proves nothing is
			// exhausted; at it, the seats are counted.
			if ev.SeatCap == 0 || ev.SeatsHeld < ev.SeatCap {
				continue
			}
			if err := o.checkExhausted(ctx, tx, ev.Tenant, ev.LicenseID); err != nil {
				return err
			}
		case domain.EventEnd, domain.EventExpire, domain.EventRelease:
			// A released lease's seat may linger (then the count has not moved, and the
			// sweeper sees the end of the linger). Only a license marked exhausted is
			// counted, so a release costs nothing more otherwise.
			if !o.believedExhausted(ev.Tenant, ev.LicenseID) {
				continue
			}
			if _, err := o.checkAvailable(ctx, tx, ev.Tenant, ev.LicenseID); err != nil {
				return err
			}
		}
	}
	return nil
}

func (o *Outbox) believedExhausted(tenant, license string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.exhausted[[2]string{tenant, license}]
}

func (o *Outbox) believe(tenant, license string, exhausted bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if exhausted {
		o.exhausted[[2]string{tenant, license}] = true
	} else {
		delete(o.exhausted, [2]string{tenant, license})
	}
}

// capacity returns the license, its capacity and whether a webhook of its tenant wants
// license.exhausted or license.available.
func (o *Outbox) capacity(tenant, licenseID string) (*domain.License, int, bool) {
	snap := o.cat.Peek(tenant)
	if snap == nil {
		return nil, 0, false
	}
	lic := snap.Licenses[licenseID]
	if lic == nil {
		return nil, 0, false
	}
	m := snap.Models[lic.Model]
	if m == nil {
		return nil, 0, false
	}
	wanted := len(o.subscribed(tenant, domain.EventLicenseExhausted)) > 0 || len(o.subscribed(tenant, domain.EventLicenseAvailable)) > 0
	return lic, engine.SeatCap(lic, m), wanted
}

// checkExhausted writes license.exhausted when the license holds its capacity and its
// marker was not set. The caller holds the license lock.
func (o *Outbox) checkExhausted(ctx context.Context, tx store.Tx, tenant, licenseID string) error {
	lic, limit, wanted := o.capacity(tenant, licenseID)
	if !wanted {
		return nil
	}
	held, err := tx.CountLiveSeats(ctx, tenant, licenseID, tx.Now())
	if err != nil || held < limit {
		return err
	}
	changed, err := tx.SetLicenseExhausted(ctx, tenant, licenseID, true)
	if err != nil || !changed {
		return err
	}
	tx.AfterCommit(func() { o.believe(tenant, licenseID, true) })
	return o.write(ctx, tx, tenant, domain.EventLicenseExhausted,
		LicenseData{License: licenseID, Seats: lic.Seats, Capacity: limit, SeatsHeld: held}, "")
}

// checkAvailable writes license.available when the license holds fewer seats than its
// capacity and its marker was set; it reports whether it did. The caller holds the
// license lock.
func (o *Outbox) checkAvailable(ctx context.Context, tx store.Tx, tenant, licenseID string) (bool, error) {
	lic, limit, _ := o.capacity(tenant, licenseID)
	held := 0
	if lic != nil {
		var err error
		if held, err = tx.CountLiveSeats(ctx, tenant, licenseID, tx.Now()); err != nil || held >= limit {
			return false, err
		}
	}
	// A license removed (or its tenant's snapshot unknown) clears the marker silently.
	changed, err := tx.SetLicenseExhausted(ctx, tenant, licenseID, false)
	if err != nil || !changed {
		return false, err
	}
	tx.AfterCommit(func() { o.believe(tenant, licenseID, false) })
	if lic == nil {
		return false, nil
	}
	return true, o.write(ctx, tx, tenant, domain.EventLicenseAvailable,
		LicenseData{License: licenseID, Seats: lic.Seats, Capacity: limit, SeatsHeld: held}, "")
}

// DeniedData is the data of lease.denied.
type DeniedData struct {
	Item    string `json:"item"`
	License string `json:"license,omitempty"` // "" when no license was a candidate
	User    string `json:"user,omitempty"`
	Client  string `json:"client,omitempty"`
	Code    string `json:"code"`
}

// Observe implements engine.Observer: refusals are queued for WriteDenials, after the
// answer. A full queue drops them (best effort, SPEC §9); a tenant without a webhook
// wanting lease.denied queues nothing.
func (o *Outbox) Observe(events []engine.Event) {
	for _, ev := range events {
		if ev.Kind != domain.EventDeny || len(o.subscribed(ev.Tenant, domain.EventLeaseDenied)) == 0 {
			continue
		}
		select {
		case o.denials <- ev:
		default:
			o.met.droppedDenial()
		}
	}
}

// writeDenial writes one lease.denied, coalesced per (license, user, code) per minute of
// the store's clock, and returns that clock's time.
func (o *Outbox) writeDenial(ctx context.Context, ev engine.Event) (time.Time, error) {
	var now time.Time
	err := o.st.Update(ctx, func(tx store.Tx) error {
		now = tx.Now()
		key, _ := json.Marshal([]any{"denied", ev.LicenseID, ev.User, string(ev.Code), now.Unix() / 60})
		return o.write(ctx, tx, ev.Tenant, domain.EventLeaseDenied, DeniedData{
			Item: ev.Item, License: ev.LicenseID, User: ev.User, Client: ev.Client, Code: string(ev.Code),
		}, string(key))
	})
	return now, err
}

// SessionData is the data of session.started and session.ended.
type SessionData struct {
	Session string `json:"session"`
	User    string `json:"user,omitempty"`
	Client  string `json:"client,omitempty"`
	Reason  string `json:"reason,omitempty"` // session.ended only
}

// ExpiringData is the data of license.expiring.
type ExpiringData struct {
	License    string `json:"license"`
	ValidUntil string `json:"valid_until"`
}
