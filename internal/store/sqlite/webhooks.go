package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/leasehold/leasehold/internal/store"
)

const webhookCols = `event_id, webhook, tenant, type, body, dedup, created, deadline, status, attempts, next_try,
	last_status, last_error, finished_at`

func scanWebhookDelivery(s scanner) (store.WebhookDelivery, error) {
	var d store.WebhookDelivery
	var created, deadline, next, finished int64
	err := s.Scan(&d.EventID, &d.Webhook, &d.Tenant, &d.Type, &d.Body, &d.Dedup, &created, &deadline, &d.Status,
		&d.Attempts, &next, &d.LastStatus, &d.LastError, &finished)
	d.Created, d.Deadline, d.NextTry = fromMS(created), fromMS(deadline), fromMS(next)
	if finished != 0 {
		d.FinishedAt = fromMS(finished)
	}
	return d, err
}

func (t *tx) InsertWebhookDeliveries(ctx context.Context, list []store.WebhookDelivery) (int, error) {
	if err := t.writable(ctx); err != nil {
		return 0, err
	}
	added := 0
	for _, d := range list {
		n, err := t.exec(ctx, `INSERT INTO webhook_deliveries (`+webhookCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, 0, '', 0) ON CONFLICT DO NOTHING`,
			d.EventID, d.Webhook, d.Tenant, d.Type, notNil(d.Body), d.Dedup, ms(d.Created), ms(d.Deadline), ms(d.NextTry))
		if err != nil {
			return added, wrap("insert webhook deliveries", err)
		}
		added += int(n)
	}
	return added, nil
}

// ClaimWebhookDeliveries needs no row lock: one process serves a SQLite file, and an
// Update is its only writer until commit.
func (t *tx) ClaimWebhookDeliveries(ctx context.Context, now, until time.Time, n int) ([]store.WebhookDelivery, error) {
	if err := t.writable(ctx); err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, `UPDATE webhook_deliveries SET attempts = attempts + 1, next_try = ?
		WHERE rowid IN (SELECT rowid FROM webhook_deliveries WHERE status = 'pending' AND next_try <= ? ORDER BY next_try LIMIT ?)
		RETURNING `+webhookCols, ms(until), ms(now), limit(n))
	if err != nil {
		return nil, wrap("claim webhook deliveries", err)
	}
	t.wrote = true
	return scanWebhookDeliveries(rows, "claim webhook deliveries")
}

func scanWebhookDeliveries(rows *sql.Rows, op string) ([]store.WebhookDelivery, error) {
	defer rows.Close()
	var out []store.WebhookDelivery
	for rows.Next() {
		d, err := scanWebhookDelivery(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		out = append(out, d)
	}
	return out, wrap(op, rows.Err())
}

func (t *tx) FinishWebhookDelivery(ctx context.Context, d *store.WebhookDelivery) (bool, error) {
	if err := t.writable(ctx); err != nil {
		return false, err
	}
	var finished int64
	if !d.FinishedAt.IsZero() {
		finished = ms(d.FinishedAt)
	}
	n, err := t.exec(ctx, `UPDATE webhook_deliveries SET status = ?, last_status = ?, last_error = ?, next_try = ?, finished_at = ?
		WHERE event_id = ? AND webhook = ?`, d.Status, d.LastStatus, d.LastError, ms(d.NextTry), finished, d.EventID, d.Webhook)
	return n > 0, wrap("finish webhook delivery", err)
}

func (t *tx) ListWebhookDeliveries(ctx context.Context, tenant string, n int) ([]store.WebhookDelivery, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, `SELECT `+webhookCols+` FROM webhook_deliveries WHERE tenant = ?
		ORDER BY created DESC, event_id, webhook LIMIT ?`, tenant, limit(n))
	if err != nil {
		return nil, wrap("list webhook deliveries", err)
	}
	return scanWebhookDeliveries(rows, "list webhook deliveries")
}

func (t *tx) RetryWebhookDelivery(ctx context.Context, tenant, eventID string, now, until time.Time) (int, error) {
	if err := t.writable(ctx); err != nil {
		return 0, err
	}
	n, err := t.exec(ctx, `UPDATE webhook_deliveries SET status = 'pending', next_try = ?, deadline = ?, finished_at = 0
		WHERE tenant = ? AND event_id = ?`, ms(now), ms(until), tenant, eventID)
	return int(n), wrap("retry webhook delivery", err)
}

func (t *tx) CancelWebhookDeliveries(ctx context.Context, tenant, webhook string) (int, error) {
	if err := t.writable(ctx); err != nil {
		return 0, err
	}
	n, err := t.exec(ctx, `DELETE FROM webhook_deliveries WHERE tenant = ? AND webhook = ? AND status = 'pending'`, tenant, webhook)
	return int(n), wrap("cancel webhook deliveries", err)
}

func (t *tx) PruneWebhookDeliveries(ctx context.Context, before time.Time, n int) (int, error) {
	if err := t.writable(ctx); err != nil {
		return 0, err
	}
	c, err := t.exec(ctx, `DELETE FROM webhook_deliveries WHERE rowid IN (SELECT rowid FROM webhook_deliveries
		WHERE status <> 'pending' AND finished_at < ? LIMIT ?)`, ms(before), limit(n))
	return int(c), wrap("prune webhook deliveries", err)
}

func (t *tx) CountPendingWebhookDeliveries(ctx context.Context) (int, error) {
	if err := t.ready(ctx); err != nil {
		return 0, err
	}
	var n int
	err := t.row(ctx, `SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'`).Scan(&n)
	return n, wrap("count pending webhook deliveries", err)
}

func (t *tx) SetLicenseExhausted(ctx context.Context, tenant, licenseID string, exhausted bool) (bool, error) {
	if err := t.writable(ctx); err != nil {
		return false, err
	}
	q := `UPDATE webhook_license_state SET exhausted = 0 WHERE tenant = ? AND license_id = ? AND exhausted = 1`
	if exhausted {
		q = `INSERT INTO webhook_license_state (tenant, license_id, exhausted, expiring_for) VALUES (?, ?, 1, 0)
			ON CONFLICT (tenant, license_id) DO UPDATE SET exhausted = 1 WHERE exhausted = 0`
	}
	n, err := t.exec(ctx, q, tenant, licenseID)
	return n > 0, wrap("set license exhausted", err)
}

func (t *tx) ExhaustedLicenses(ctx context.Context, n int) ([][2]string, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, `SELECT tenant, license_id FROM webhook_license_state WHERE exhausted = 1
		ORDER BY tenant, license_id LIMIT ?`, limit(n))
	if err != nil {
		return nil, wrap("exhausted licenses", err)
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var r [2]string
		if err := rows.Scan(&r[0], &r[1]); err != nil {
			return nil, wrap("exhausted licenses", err)
		}
		out = append(out, r)
	}
	return out, wrap("exhausted licenses", rows.Err())
}

func (t *tx) MarkLicenseExpiring(ctx context.Context, tenant, licenseID string, validUntil time.Time) (bool, error) {
	if err := t.writable(ctx); err != nil {
		return false, err
	}
	n, err := t.exec(ctx, `INSERT INTO webhook_license_state (tenant, license_id, exhausted, expiring_for) VALUES (?, ?, 0, ?)
		ON CONFLICT (tenant, license_id) DO UPDATE SET expiring_for = excluded.expiring_for WHERE expiring_for <> excluded.expiring_for`,
		tenant, licenseID, ms(validUntil))
	return n > 0, wrap("mark license expiring", err)
}
