package webhook

import (
	"context"
	"time"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// Retention is how long delivered and failed deliveries are kept (for the admin list)
// before they are pruned.
const Retention = 7 * 24 * time.Hour

// sweepBatch bounds the licenses and rows one sweep handles.
const sweepBatch = 1000

// Sweep writes the events caused by time: license.available for an exhausted license
// whose seats were freed by expiry or the end of a linger, and license.expiring once a
// license enters a webhook's expiring_notice. Each is written under a conditional write
// of its marker, so that of several processes sweeping at once one writes it. Run it
// every second (SPEC §9: within 5 s of the moment).
func (o *Outbox) Sweep(ctx context.Context) error {
	snaps, err := o.snapshots(ctx)
	if err != nil {
		return err
	}
	// No tenant has a webhook: no row is pending (removing a webhook, or its tenant,
	// removes its pending rows) and no event can be written.
	o.idle.Store(len(snaps) == 0)
	if len(snaps) == 0 {
		return nil
	}
	if err := o.sweepAvailable(ctx); err != nil {
		return err
	}
	return o.sweepExpiring(ctx, snaps)
}

// snapshots loads (and so keeps fresh for Peek) the snapshot of every tenant, and returns
// those that have webhooks.
func (o *Outbox) snapshots(ctx context.Context) ([]*catalog.Snapshot, error) {
	tenants, err := o.cat.Tenants(ctx)
	if err != nil {
		return nil, err
	}
	var out []*catalog.Snapshot
	for _, t := range tenants {
		snap, err := o.cat.Get(ctx, t.Name)
		if err != nil {
			continue // removed meanwhile
		}
		if len(snap.Webhooks) > 0 {
			out = append(out, snap)
		}
	}
	return out, nil
}

func (o *Outbox) sweepAvailable(ctx context.Context) error {
	list, err := store.Read(ctx, o.st, func(tx store.Tx) ([][2]string, error) { return tx.ExhaustedLicenses(ctx, sweepBatch) })
	if err != nil {
		return err
	}
	set := make(map[[2]string]bool, len(list))
	for _, r := range list {
		set[r] = true
	}
	o.mu.Lock()
	o.exhausted = set
	o.mu.Unlock()
	for _, r := range list {
		tenant, license := r[0], r[1]
		lic, limit, _ := o.capacity(tenant, license)
		if lic != nil {
			// Read first: a license that stays exhausted costs no write, nor its lock.
			held, err := store.Read(ctx, o.st, func(tx store.Tx) (int, error) {
				return tx.CountLiveSeats(ctx, tenant, license, tx.Now())
			})
			if err != nil {
				return err
			}
			if held >= limit {
				continue
			}
		}
		err := o.st.Update(ctx, func(tx store.Tx) error {
			// The license lock orders this with every grant: a seat taken meanwhile is counted.
			if _, err := tx.LockLicense(ctx, tenant, license); err != nil {
				return err
			}
			_, err := o.checkAvailable(ctx, tx, tenant, license)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (o *Outbox) sweepExpiring(ctx context.Context, snaps []*catalog.Snapshot) error {
	now, err := o.st.Now(ctx)
	if err != nil {
		return err
	}
	for _, snap := range snaps {
		for _, w := range snap.Webhooks {
			if !w.Wants(domain.EventLicenseExpiring) {
				continue
			}
			for _, lic := range snap.Licenses {
				if lic.ValidUntil == nil || now.Before(lic.ValidUntil.Add(-w.ExpiringNotice.D())) || !now.Before(*lic.ValidUntil) {
					continue
				}
				if err := o.expiringOnce(ctx, snap.Tenant.Name, w, lic); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// expiringOnce writes license.expiring for webhook w unless its marker says it was for
// this valid_until. The marker is keyed by license and webhook: webhooks have notices of
// their own.
func (o *Outbox) expiringOnce(ctx context.Context, tenant string, w *domain.Webhook, lic *domain.License) error {
	until := lic.ValidUntil.UTC()
	key := expiringKey{tenant, lic.ID, w.ID, until.UnixMilli()}
	o.mu.Lock()
	done := o.expiring[key]
	o.mu.Unlock()
	if done {
		return nil
	}
	err := o.st.Update(ctx, func(tx store.Tx) error {
		// A webhook id has no "/": the key names one (license, webhook) pair.
		changed, err := tx.MarkLicenseExpiring(ctx, tenant, lic.ID+"/"+w.ID, until)
		if err != nil || !changed {
			return err
		}
		_, err = o.writeTo(ctx, tx, []*domain.Webhook{w}, tenant, domain.EventLicenseExpiring,
			ExpiringData{License: lic.ID, ValidUntil: until.Format(time.RFC3339)}, "")
		return err
	})
	if err == nil {
		o.mu.Lock()
		o.expiring[key] = true
		o.mu.Unlock()
	}
	return err
}

// prune deletes finished deliveries older than Retention.
func (o *Outbox) prune(ctx context.Context) error {
	return o.st.Update(ctx, func(tx store.Tx) error {
		_, err := tx.PruneWebhookDeliveries(ctx, tx.Now().Add(-Retention), sweepBatch)
		return err
	})
}
