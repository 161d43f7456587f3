package engine

import (
	"context"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// Entitlement is a license the caller may consume, with the seats held on it now.
type Entitlement struct {
	License *domain.License
	Items   []string // every item the license covers: its product, the product's items, its own items
	// SeatsUsed counts seats held now, live or lingering, once per seat key; expired ones never count.
	SeatsUsed int
}

// Entitlements lists, in license id order, the licenses of the caller's user or
// organization.
func (e *Engine) Entitlements(ctx context.Context, tenant string, caller Caller) ([]Entitlement, error) {
	snap, err := e.cat.Get(ctx, tenant)
	if err != nil {
		return nil, err
	}
	var out []Entitlement
	for _, id := range sortedKeys(snap.Licenses) {
		lic := snap.Licenses[id]
		if visible(lic, caller) {
			out = append(out, Entitlement{License: lic, Items: snap.Items(lic)})
		}
	}
	if len(out) == 0 {
		return out, nil
	}
	err = e.st.View(ctx, func(tx store.Tx) error {
		now := tx.Now()
		for i := range out {
			n, err := SeatsUsed(ctx, tx, tenant, out[i].License.ID, now)
			if err != nil {
				return err
			}
			out[i].SeatsUsed = n
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SeatsUsed counts the license's seats held at now, live or lingering: its seat counter
// (license_state.seats_held, every seat row, kept exact by each write of a seat row under
// the license lock) less the expired rows no sweep has reaped yet. That reads the few
// expired rows where counting the live ones read them all: a license with 100,000 seats
// held made each entitlements call and metrics scrape walk 100,000 index entries.
func SeatsUsed(ctx context.Context, tx store.Tx, tenant, licenseID string, now time.Time) (int, error) {
	st, err := tx.GetLicenseState(ctx, tenant, licenseID)
	if err != nil {
		return 0, err
	}
	expired, err := tx.CountExpiredSeats(ctx, tenant, licenseID, now)
	if err != nil {
		return 0, err
	}
	return max(0, st.SeatsHeld-expired), nil
}
