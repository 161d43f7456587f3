package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leasehold/leasehold/internal/store"
)

const webhookColumns = `event_id, webhook, tenant, type, body, dedup, created, deadline, status, attempts, next_try,
	last_status, last_error, finished_at`

func scanWebhookDelivery(r pgx.Rows) (store.WebhookDelivery, error) {
	var d store.WebhookDelivery
	var finished *time.Time
	err := r.Scan(&d.EventID, &d.Webhook, &d.Tenant, &d.Type, &d.Body, &d.Dedup, &d.Created, &d.Deadline, &d.Status,
		&d.Attempts, &d.NextTry, &d.LastStatus, &d.LastError, &finished)
	d.Created, d.Deadline, d.NextTry = d.Created.UTC(), d.Deadline.UTC(), d.NextTry.UTC()
	d.FinishedAt = fromNull(finished)
	if !d.FinishedAt.IsZero() {
		d.FinishedAt = d.FinishedAt.UTC()
	}
	return d, err
}

func (t *tx) InsertWebhookDeliveries(ctx context.Context, rows []store.WebhookDelivery) (int, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	b := &pgx.Batch{}
	for _, d := range rows {
		body := d.Body
		if body == nil {
			body = []byte{}
		}
		b.Queue(`INSERT INTO webhook_deliveries (`+webhookColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, 0, '', NULL) ON CONFLICT DO NOTHING`,
			d.EventID, d.Webhook, d.Tenant, d.Type, body, d.Dedup, ts(d.Created), ts(d.Deadline), ts(d.NextTry))
	}
	added := 0
	err := t.batch(ctx, "insert webhook deliveries", b, func(br pgx.BatchResults) error {
		for range rows {
			tag, err := br.Exec()
			if err != nil {
				return err
			}
			added += int(tag.RowsAffected())
		}
		return nil
	})
	return added, err
}

// ClaimWebhookDeliveries locks the rows it takes with FOR UPDATE SKIP LOCKED, so that two
// processes claiming at once take different rows, and moves their next_try past the
// attempt: until then no process takes them again.
func (t *tx) ClaimWebhookDeliveries(ctx context.Context, now, until time.Time, n int) ([]store.WebhookDelivery, error) {
	if n <= 0 {
		n = 100
	}
	return list(ctx, t, "claim webhook deliveries", `UPDATE webhook_deliveries SET attempts = attempts + 1, next_try = $1
		WHERE (event_id, webhook) IN (SELECT event_id, webhook FROM webhook_deliveries
			WHERE status = 'pending' AND next_try <= $2 ORDER BY next_try LIMIT $3 FOR UPDATE SKIP LOCKED)
		RETURNING `+webhookColumns, []any{ts(until), ts(now), n}, scanWebhookDelivery)
}

func (t *tx) FinishWebhookDelivery(ctx context.Context, d *store.WebhookDelivery) (bool, error) {
	var finished any
	if !d.FinishedAt.IsZero() {
		finished = ts(d.FinishedAt)
	}
	tag, err := t.exec(ctx, "finish webhook delivery", `UPDATE webhook_deliveries SET status = $1, last_status = $2,
		last_error = $3, next_try = $4, finished_at = $5 WHERE event_id = $6 AND webhook = $7`,
		d.Status, d.LastStatus, d.LastError, ts(d.NextTry), finished, d.EventID, d.Webhook)
	return err == nil && tag.RowsAffected() > 0, err
}

func (t *tx) ListWebhookDeliveries(ctx context.Context, tenant string, n int) ([]store.WebhookDelivery, error) {
	q, args := limitTo(`SELECT `+webhookColumns+` FROM webhook_deliveries WHERE tenant = $1
		ORDER BY created DESC, event_id, webhook`, []any{tenant}, n)
	return list(ctx, t, "list webhook deliveries", q, args, scanWebhookDelivery)
}

func (t *tx) RetryWebhookDelivery(ctx context.Context, tenant, eventID string, now, until time.Time) (int, error) {
	tag, err := t.exec(ctx, "retry webhook delivery", `UPDATE webhook_deliveries SET status = 'pending', next_try = $1,
		deadline = $2, finished_at = NULL WHERE tenant = $3 AND event_id = $4`, ts(now), ts(until), tenant, eventID)
	return int(tag.RowsAffected()), err
}

func (t *tx) CancelWebhookDeliveries(ctx context.Context, tenant, webhook string) (int, error) {
	tag, err := t.exec(ctx, "cancel webhook deliveries",
		`DELETE FROM webhook_deliveries WHERE tenant = $1 AND webhook = $2 AND status = 'pending'`, tenant, webhook)
	return int(tag.RowsAffected()), err
}

func (t *tx) PruneWebhookDeliveries(ctx context.Context, before time.Time, n int) (int, error) {
	if n <= 0 {
		n = 1 << 30
	}
	tag, err := t.exec(ctx, "prune webhook deliveries", `DELETE FROM webhook_deliveries WHERE (event_id, webhook) IN
		(SELECT event_id, webhook FROM webhook_deliveries WHERE status <> 'pending' AND finished_at < $1 LIMIT $2)`,
		ts(before), n)
	return int(tag.RowsAffected()), err
}

func (t *tx) CountPendingWebhookDeliveries(ctx context.Context) (int, error) {
	var n int
	err := t.get(ctx, "count pending webhook deliveries", `SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'`, nil, &n)
	return n, err
}

func (t *tx) SetLicenseExhausted(ctx context.Context, tenant, licenseID string, exhausted bool) (bool, error) {
	q := `UPDATE webhook_license_state SET exhausted = false WHERE tenant = $1 AND license_id = $2 AND exhausted`
	if exhausted {
		q = `INSERT INTO webhook_license_state (tenant, license_id, exhausted) VALUES ($1, $2, true)
			ON CONFLICT (tenant, license_id) DO UPDATE SET exhausted = true WHERE NOT webhook_license_state.exhausted`
	}
	tag, err := t.exec(ctx, "set license exhausted", q, tenant, licenseID)
	return err == nil && tag.RowsAffected() > 0, err
}

func (t *tx) ExhaustedLicenses(ctx context.Context, n int) ([][2]string, error) {
	q, args := limitTo(`SELECT tenant, license_id FROM webhook_license_state WHERE exhausted ORDER BY tenant, license_id`, nil, n)
	return list(ctx, t, "exhausted licenses", q, args, func(r pgx.Rows) ([2]string, error) {
		var v [2]string
		err := r.Scan(&v[0], &v[1])
		return v, err
	})
}

func (t *tx) MarkLicenseExpiring(ctx context.Context, tenant, licenseID string, validUntil time.Time) (bool, error) {
	tag, err := t.exec(ctx, "mark license expiring", `INSERT INTO webhook_license_state (tenant, license_id, exhausted, expiring_for)
		VALUES ($1, $2, false, $3) ON CONFLICT (tenant, license_id) DO UPDATE SET expiring_for = $3
		WHERE webhook_license_state.expiring_for IS DISTINCT FROM $3`, tenant, licenseID, ts(validUntil))
	return err == nil && tag.RowsAffected() > 0, err
}
