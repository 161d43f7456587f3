package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/store"
)

// testWebhookOutbox: rows are inserted pending (coalesced by Dedup per webhook), claimed
// when due (an attempt counted, NextTry moved), finished, listed newest first, retried,
// cancelled (pending rows of one webhook only), pruned once finished, and counted; they go
// with their tenant.
func testWebhookOutbox(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := baseTime(t, s)
	row := func(id, webhook, dedup string, created time.Duration) store.WebhookDelivery {
		return store.WebhookDelivery{
			EventID: id, Tenant: "acme", Webhook: webhook, Type: "lease.denied", Body: []byte(`{"id":"` + id + `"}`),
			Dedup: dedup, Created: base.Add(created), Deadline: base.Add(24 * time.Hour), NextTry: base.Add(created),
		}
	}
	added := write(t, s, func(tx store.Tx) (int, error) {
		return tx.InsertWebhookDeliveries(ctx, []store.WebhookDelivery{
			row("e1", "billing", "", -3*time.Second),
			row("e1", "audit", "", -3*time.Second),
			row("e2", "billing", "k", -2*time.Second),
			row("e3", "billing", "k", -time.Second), // coalesced into e2
			row("e3", "audit", "k", -time.Second),   // another webhook: kept
			row("e4", "billing", "", time.Hour),     // not due
		})
	})
	if added != 5 {
		t.Errorf("InsertWebhookDeliveries added %d rows, want 5 (one coalesced)", added)
	}
	if n := read(t, s, func(tx store.Tx) (int, error) { return tx.CountPendingWebhookDeliveries(ctx) }); n != 5 {
		t.Errorf("CountPendingWebhookDeliveries = %d, want 5", n)
	}
	until := base.Add(30 * time.Second)
	claimed := write(t, s, func(tx store.Tx) ([]store.WebhookDelivery, error) {
		return tx.ClaimWebhookDeliveries(ctx, base, until, 3)
	})
	if len(claimed) != 3 {
		t.Fatalf("ClaimWebhookDeliveries took %d rows, want 3", len(claimed))
	}
	for _, d := range claimed {
		if d.Attempts != 1 || !d.NextTry.Equal(until) || d.Status != store.WebhookPending || d.EventID == "e4" {
			t.Errorf("claimed %s/%s: attempts %d, next try %v, status %s", d.EventID, d.Webhook, d.Attempts, d.NextTry, d.Status)
		}
	}
	// Oldest first (the order within one claim is not defined).
	claimedBy := map[string]store.WebhookDelivery{}
	for _, d := range claimed {
		claimedBy[d.EventID+"/"+d.Webhook] = d
	}
	for _, k := range []string{"e1/billing", "e1/audit", "e2/billing"} {
		if _, ok := claimedBy[k]; !ok {
			t.Errorf("the claim missed %s (oldest first): took %v", k, claimedBy)
		}
	}
	if string(claimedBy["e1/billing"].Body) != `{"id":"e1"}` {
		t.Errorf("body = %q", claimedBy["e1/billing"].Body)
	}
	rest := write(t, s, func(tx store.Tx) ([]store.WebhookDelivery, error) {
		return tx.ClaimWebhookDeliveries(ctx, base, until, 10)
	})
	if len(rest) != 1 {
		t.Errorf("second claim took %d rows, want 1 (the claimed ones are not due)", len(rest))
	}

	done := claimedBy["e2/billing"]
	done.Status, done.LastStatus, done.FinishedAt, done.NextTry = store.WebhookDelivered, 204, base, base
	failed := claimedBy["e1/billing"]
	failed.Status, failed.LastStatus, failed.LastError, failed.NextTry = store.WebhookPending, 500, "HTTP 500", base.Add(time.Second)
	update(t, s, func(tx store.Tx) error {
		for _, d := range []*store.WebhookDelivery{&done, &failed} {
			if ok, err := tx.FinishWebhookDelivery(ctx, d); err != nil || !ok {
				return fmt.Errorf("FinishWebhookDelivery %s: %v %v", d.EventID, ok, err)
			}
		}
		return nil
	})
	list := read(t, s, func(tx store.Tx) ([]store.WebhookDelivery, error) { return tx.ListWebhookDeliveries(ctx, "acme", 0) })
	if len(list) != 5 || list[0].EventID != "e4" {
		t.Fatalf("ListWebhookDeliveries: %d rows, first %v", len(list), list)
	}
	byKey := map[string]store.WebhookDelivery{}
	for _, d := range list {
		byKey[d.EventID+"/"+d.Webhook] = d
	}
	got := byKey[done.EventID+"/"+done.Webhook]
	if got.Status != store.WebhookDelivered || got.LastStatus != 204 || !got.FinishedAt.Equal(base) {
		t.Errorf("delivered row: %+v", got)
	}
	got = byKey[failed.EventID+"/"+failed.Webhook]
	if got.Status != store.WebhookPending || got.LastError != "HTTP 500" || got.Attempts != 1 || !got.NextTry.Equal(base.Add(time.Second)) {
		t.Errorf("retried row: %+v", got)
	}
	sameTime(t, "Created", byKey["e1/billing"].Created, base.Add(-3*time.Second))
	if n := read(t, s, func(tx store.Tx) ([]store.WebhookDelivery, error) { return tx.ListWebhookDeliveries(ctx, "acme", 2) }); len(n) != 2 {
		t.Errorf("ListWebhookDeliveries limit 2: %d rows", len(n))
	}

	// A manual retry makes the delivered event pending and due again.
	n := write(t, s, func(tx store.Tx) (int, error) {
		return tx.RetryWebhookDelivery(ctx, "acme", done.EventID, base, base.Add(time.Hour))
	})
	if n != 1 {
		t.Errorf("RetryWebhookDelivery found %d rows, want 1", n)
	}
	if n := write(t, s, func(tx store.Tx) (int, error) {
		return tx.RetryWebhookDelivery(ctx, "other", done.EventID, base, base)
	}); n != 0 {
		t.Errorf("RetryWebhookDelivery of another tenant found %d rows", n)
	}
	again := write(t, s, func(tx store.Tx) ([]store.WebhookDelivery, error) {
		return tx.ClaimWebhookDeliveries(ctx, base, until, 10)
	})
	if len(again) != 1 || again[0].EventID != done.EventID || again[0].Attempts != 2 {
		t.Errorf("after retry, claim took %v", again)
	}

	// Removing webhook audit cancels its pending rows, not billing's.
	if n := write(t, s, func(tx store.Tx) (int, error) { return tx.CancelWebhookDeliveries(ctx, "acme", "audit") }); n != 2 {
		t.Errorf("CancelWebhookDeliveries removed %d rows, want 2", n)
	}
	// Prune: only finished rows before the time go.
	fin := again[0]
	fin.Status, fin.FinishedAt = store.WebhookFailed, base.Add(-time.Minute)
	update(t, s, func(tx store.Tx) error { _, err := tx.FinishWebhookDelivery(ctx, &fin); return err })
	if n := write(t, s, func(tx store.Tx) (int, error) { return tx.PruneWebhookDeliveries(ctx, base, 10) }); n != 1 {
		t.Errorf("PruneWebhookDeliveries removed %d rows, want 1", n)
	}
	if n := read(t, s, func(tx store.Tx) (int, error) { return tx.CountPendingWebhookDeliveries(ctx) }); n != 2 {
		t.Errorf("CountPendingWebhookDeliveries = %d, want 2", n)
	}
	update(t, s, func(tx store.Tx) error { return tx.DeleteTenantData(ctx, "acme") })
	if l := read(t, s, func(tx store.Tx) ([]store.WebhookDelivery, error) { return tx.ListWebhookDeliveries(ctx, "acme", 0) }); len(l) != 0 {
		t.Errorf("DeleteTenantData left %d deliveries", len(l))
	}
}

// testWebhookClaimRace: claims running at once never take one row twice.
func testWebhookClaimRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := baseTime(t, s)
	var rows []store.WebhookDelivery
	for i := range 40 {
		rows = append(rows, store.WebhookDelivery{EventID: fmt.Sprintf("e%02d", i), Tenant: "acme", Webhook: "w", Type: "x",
			Body: []byte("{}"), Created: base, Deadline: base.Add(time.Hour), NextTry: base.Add(-time.Second)})
	}
	update(t, s, func(tx store.Tx) error { _, err := tx.InsertWebhookDeliveries(ctx, rows); return err })
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for {
				var got []store.WebhookDelivery
				err := s.Update(ctx, func(tx store.Tx) error {
					var err error
					got, err = tx.ClaimWebhookDeliveries(ctx, tx.Now(), tx.Now().Add(time.Hour), 3)
					return err
				})
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, d := range got {
					seen[d.EventID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(seen) != 40 {
		t.Errorf("claimed %d distinct rows, want 40", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("row %s claimed %d times", id, n)
		}
	}
}

// testWebhookLicenseMarkers: the exhausted marker reports only transitions; the expiring
// marker once per valid_until.
func testWebhookLicenseMarkers(t *testing.T, s store.Store) {
	ctx := t.Context()
	set := func(v bool) bool {
		return write(t, s, func(tx store.Tx) (bool, error) { return tx.SetLicenseExhausted(ctx, "acme", "L", v) })
	}
	if set(false) {
		t.Error("clearing a marker never set reported a change")
	}
	if !set(true) || set(true) {
		t.Error("setting the marker: want one change")
	}
	l := read(t, s, func(tx store.Tx) ([][2]string, error) { return tx.ExhaustedLicenses(ctx, 10) })
	if len(l) != 1 || l[0] != [2]string{"acme", "L"} {
		t.Errorf("ExhaustedLicenses = %v", l)
	}
	if !set(false) || set(false) {
		t.Error("clearing the marker: want one change")
	}
	if l := read(t, s, func(tx store.Tx) ([][2]string, error) { return tx.ExhaustedLicenses(ctx, 10) }); len(l) != 0 {
		t.Errorf("ExhaustedLicenses after clearing = %v", l)
	}
	base := baseTime(t, s)
	mark := func(at time.Time) bool {
		return write(t, s, func(tx store.Tx) (bool, error) { return tx.MarkLicenseExpiring(ctx, "acme", "L", at) })
	}
	if !mark(base) || mark(base) {
		t.Error("MarkLicenseExpiring: want true once for one valid_until")
	}
	if !mark(base.Add(time.Hour)) {
		t.Error("MarkLicenseExpiring of a new valid_until: want true")
	}
	if !set(true) {
		t.Error("exhausted marker on a row made by MarkLicenseExpiring: want a change")
	}
}
