package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leasehold/leasehold/internal/tokenhash"
)

// migrationLock is the pg_advisory_xact_lock key that serializes schema migrations among
// processes starting at once on one database (advisory locks are per database).
const migrationLock int64 = 0x6c65617365686f6c // "leasehol"

// migrations are applied in order, each once, recorded in schema_migrations. Never edit one
// that has shipped: append a new one. Every statement is idempotent (IF NOT EXISTS) so that a
// database without advisory locks (CockroachDB) still survives the start-up race.
//
// Times are timestamptz (microsecond precision, stored as UTC instants); durations are
// bigint nanoseconds; a zero Go time is stored as 0001-01-01 (it compares as long past),
// except in the optional columns, where NULL means "none".
var migrations = [][]string{
	1: {
		`CREATE TABLE IF NOT EXISTS objects (
			tenant     text NOT NULL,
			kind       text NOT NULL,
			id         text NOT NULL,
			spec       bytea,
			file_hash  text NOT NULL DEFAULT '',
			updated_at timestamptz NOT NULL,
			PRIMARY KEY (tenant, kind, id)
		)`,
		`CREATE TABLE IF NOT EXISTS catalog_versions (
			tenant  text PRIMARY KEY,
			version bigint NOT NULL
		)`,
		`CREATE TABLE IF NOT EXISTS signing_keys (
			tenant        text NOT NULL,
			kid           text NOT NULL,
			algorithm     text NOT NULL,
			private       bytea,
			created_at    timestamptz NOT NULL,
			retired_at    timestamptz,
			publish_until timestamptz,
			PRIMARY KEY (tenant, kid)
		)`,
		// A tenant's row here is locked by InsertSigningKey(ifNone), so that processes racing
		// to create the tenant's first key take turns and only the first inserts. (A partial
		// unique index on the active key would not do: a rotation inserts the new key while
		// the old one is still active, and the contract allows that.)
		`CREATE TABLE IF NOT EXISTS signing_key_guards (
			tenant text PRIMARY KEY
		)`,

		`CREATE TABLE IF NOT EXISTS license_state (
			tenant     text NOT NULL,
			license_id text NOT NULL,
			seats_held integer NOT NULL DEFAULT 0,
			use_count  bigint NOT NULL DEFAULT 0,
			use_time   bigint NOT NULL DEFAULT 0,
			PRIMARY KEY (tenant, license_id)
		)`,

		`CREATE TABLE IF NOT EXISTS seats (
			tenant     text NOT NULL,
			license_id text NOT NULL,
			seat_key   text NOT NULL,
			user_name  text NOT NULL DEFAULT '',
			held_until timestamptz NOT NULL,
			lingering  boolean NOT NULL DEFAULT false,
			overage    boolean NOT NULL DEFAULT false,
			PRIMARY KEY (tenant, license_id, seat_key)
		)`,
		// ReapSeats, CountLiveSeats.
		`CREATE INDEX IF NOT EXISTS seats_license_held ON seats (tenant, license_id, held_until)`,
		// LicensesWithExpiredSeats, SeatsExpiredBetween (the sweeper, across tenants).
		`CREATE INDEX IF NOT EXISTS seats_held ON seats (held_until)`,
		// UsersHoldingSeats (reservations).
		`CREATE INDEX IF NOT EXISTS seats_license_user ON seats (tenant, license_id, user_name)`,

		`CREATE TABLE IF NOT EXISTS leases (
			tenant            text NOT NULL,
			root              text NOT NULL,
			id                text NOT NULL,
			license_id        text NOT NULL,
			item              text NOT NULL,
			seat_key          text NOT NULL,
			session_key       text NOT NULL,
			user_name         text NOT NULL,
			client            text NOT NULL,
			hw                text NOT NULL,
			hw_name           text NOT NULL,
			process           text NOT NULL,
			process_name      text NOT NULL,
			version           text NOT NULL,
			mode              text NOT NULL,
			issued_at         timestamptz NOT NULL,
			renewed_at        timestamptz NOT NULL,
			expires_at        timestamptz NOT NULL,
			refresh_at        timestamptz NOT NULL,
			prev_id           text NOT NULL,
			prev_until        timestamptz,
			overage           boolean NOT NULL,
			use_time_reserved bigint NOT NULL,
			session_id        text NOT NULL,
			PRIMARY KEY (tenant, root)
		)`,
		// ExpiredLeases (the sweeper).
		`CREATE INDEX IF NOT EXISTS leases_expires ON leases (expires_at)`,
		// GetLeaseBySessionKey: every consumption looks its session key up.
		`CREATE INDEX IF NOT EXISTS leases_session_key ON leases (tenant, license_id, session_key)`,
		// CountLiveLeasesOnSeat, LatestLiveExpiryOnSeat.
		`CREATE INDEX IF NOT EXISTS leases_seat ON leases (tenant, license_id, seat_key)`,
		// CountLiveLeasesByHolder (consumption_limit), ListLeases by user or client.
		`CREATE INDEX IF NOT EXISTS leases_user ON leases (tenant, license_id, user_name)`,
		`CREATE INDEX IF NOT EXISTS leases_client ON leases (tenant, license_id, client)`,

		// Every lease id of a chain (current and earlier) resolves to its lease's root.
		`CREATE TABLE IF NOT EXISTS lease_chain (
			tenant text NOT NULL,
			id     text NOT NULL,
			root   text NOT NULL,
			PRIMARY KEY (tenant, id)
		)`,
		`CREATE INDEX IF NOT EXISTS lease_chain_root ON lease_chain (tenant, root)`,

		`CREATE TABLE IF NOT EXISTS hw_locks (
			tenant     text NOT NULL,
			model      text NOT NULL,
			hw         text NOT NULL,
			license_id text NOT NULL,
			PRIMARY KEY (tenant, model, hw)
		)`,
		`CREATE INDEX IF NOT EXISTS hw_locks_hw ON hw_locks (tenant, hw)`,

		`CREATE TABLE IF NOT EXISTS usage_events (
			seq        bigserial PRIMARY KEY,
			tenant     text NOT NULL,
			at         timestamptz NOT NULL,
			license_id text NOT NULL,
			item       text NOT NULL,
			user_name  text NOT NULL,
			client     text NOT NULL,
			hw         text NOT NULL,
			lease_id   text NOT NULL,
			event      text NOT NULL,
			code       text NOT NULL,
			overage    boolean NOT NULL,
			duration   bigint NOT NULL
		)`,
		`CREATE INDEX IF NOT EXISTS usage_events_tenant_at ON usage_events (tenant, at)`,

		`CREATE TABLE IF NOT EXISTS heartbeats (
			process text PRIMARY KEY,
			at      timestamptz NOT NULL
		)`,

		`CREATE TABLE IF NOT EXISTS sessions (
			tenant        text NOT NULL,
			id            text NOT NULL,
			kind          text NOT NULL,
			user_name     text NOT NULL,
			client        text NOT NULL,
			device        text NOT NULL,
			scopes        text[],
			licensed      boolean NOT NULL,
			refreshable   boolean NOT NULL DEFAULT false,
			lease_license text NOT NULL,
			lease_root    text NOT NULL,
			ext_issuer    text NOT NULL,
			ext_subject   text NOT NULL,
			created_at    timestamptz NOT NULL,
			last_used_at  timestamptz NOT NULL,
			expires_at    timestamptz NOT NULL,
			hard_expiry   timestamptz,
			PRIMARY KEY (tenant, id)
		)`,
		// ExpiredSessions (the sweeper).
		`CREATE INDEX IF NOT EXISTS sessions_expires ON sessions (expires_at)`,
		// ListSessions by user (logout-all, max_sessions_per_user).
		`CREATE INDEX IF NOT EXISTS sessions_user ON sessions (tenant, user_name)`,
		// CountSessionsByLease, ListSessions by license.
		`CREATE INDEX IF NOT EXISTS sessions_lease ON sessions (tenant, lease_root)`,

		`CREATE TABLE IF NOT EXISTS tokens (
			hash       text PRIMARY KEY,
			tenant     text NOT NULL,
			kind       text NOT NULL,
			session_id text NOT NULL,
			family_id  text NOT NULL,
			client_id  text NOT NULL,
			user_name  text NOT NULL,
			scopes     text[],
			created_at timestamptz NOT NULL,
			expires_at timestamptz NOT NULL,
			data       bytea
		)`,
		// DeleteTokens, DeleteSession.
		`CREATE INDEX IF NOT EXISTS tokens_session ON tokens (tenant, session_id, family_id)`,
		// DeleteExpiredTokens (the sweeper).
		`CREATE INDEX IF NOT EXISTS tokens_expires ON tokens (expires_at)`,
		// ListTokens (a user's login tokens).
		`CREATE INDEX IF NOT EXISTS tokens_user ON tokens (tenant, user_name, kind)`,
	},
	// domain.Session.NoIdle (DocuWare cookie sessions ignore idle_timeout).
	2: {
		`ALTER TABLE sessions ADD COLUMN IF NOT EXISTS no_idle boolean NOT NULL DEFAULT false`,
	},
	// One lease per session key, so GetLeaseBySessionKey is a point lookup (the engine
	// deletes an expired lease before granting its session key again). Should an older
	// database hold several, the latest wins, as the ordered lookup used to answer.
	3: {
		`DELETE FROM lease_chain c USING leases l
		WHERE c.tenant = l.tenant AND c.root = l.root AND EXISTS (SELECT 1 FROM leases n
			WHERE n.tenant = l.tenant AND n.license_id = l.license_id AND n.session_key = l.session_key
			AND (n.expires_at > l.expires_at OR (n.expires_at = l.expires_at AND n.root > l.root)))`,
		`DELETE FROM leases l WHERE EXISTS (SELECT 1 FROM leases n
			WHERE n.tenant = l.tenant AND n.license_id = l.license_id AND n.session_key = l.session_key
			AND (n.expires_at > l.expires_at OR (n.expires_at = l.expires_at AND n.root > l.root)))`,
		`DROP INDEX IF EXISTS leases_session_key`,
		// GetLeaseBySessionKey.
		`CREATE UNIQUE INDEX IF NOT EXISTS leases_session ON leases (tenant, license_id, session_key)`,
	},
	// Derived lease ids (domain/chainid.go): a renewal's id names its lease by itself, so it
	// needs no lease_chain row. lease_chain keeps only ids from before, and ids a caller chose.
	4: {
		`ALTER TABLE leases ADD COLUMN IF NOT EXISTS chain_seq bigint NOT NULL DEFAULT 0`,
		`ALTER TABLE leases ADD COLUMN IF NOT EXISTS chain_key bytea NOT NULL DEFAULT ''::bytea`,
	},
	// The hw name (hw=ID;name=NAME) in the usage history, for reports.
	5: {
		`ALTER TABLE usage_events ADD COLUMN IF NOT EXISTS hw_name text NOT NULL DEFAULT ''`,
	},
	// The dashboard (dashboard.go): sign-ins by the hash of their cookie, and usage per
	// license and hour. Lingering seats are few and change state rarely, so a partial
	// index counts them without touching the index on a live seat's writes.
	6: {
		`CREATE TABLE IF NOT EXISTS ui_sessions (
			hash       text PRIMARY KEY,
			created_at timestamptz NOT NULL,
			expires_at timestamptz NOT NULL
		)`,
		// DeleteExpiredUISessions.
		`CREATE INDEX IF NOT EXISTS ui_sessions_expires ON ui_sessions (expires_at)`,
		`CREATE TABLE IF NOT EXISTS usage_hours (
			tenant     text NOT NULL,
			hour       timestamptz NOT NULL,
			license_id text NOT NULL,
			peak_seats integer NOT NULL,
			denials    bigint NOT NULL,
			PRIMARY KEY (tenant, hour, license_id)
		)`,
		// PruneUsageHours.
		`CREATE INDEX IF NOT EXISTS usage_hours_hour ON usage_hours (hour)`,
		// CountLingeringSeats.
		`CREATE INDEX IF NOT EXISTS seats_lingering ON seats (tenant, license_id, held_until) WHERE lingering`,
	},
	// Item leases a session holds besides its seat (gateway seat routes with an item).
	7: {
		`CREATE TABLE IF NOT EXISTS session_leases (
			tenant     text NOT NULL,
			session_id text NOT NULL,
			item       text NOT NULL,
			lease_root text NOT NULL,
			PRIMARY KEY (tenant, session_id, item)
		)`,
	},
	// The key of the stored token hashes (package tokenhash); rekeyTokens fills it and
	// rewrites the unkeyed hashes of earlier versions.
	8: {
		`CREATE TABLE IF NOT EXISTS server_secrets (
			name  text PRIMARY KEY,
			value bytea NOT NULL
		)`,
	},
	// Webhooks (SPEC §9): the outbox and the per-license transition markers.
	9: {
		`CREATE TABLE IF NOT EXISTS webhook_deliveries (
			event_id    text NOT NULL,
			webhook     text NOT NULL,
			tenant      text NOT NULL,
			type        text NOT NULL,
			body        bytea NOT NULL,
			dedup       text NOT NULL,
			created     timestamptz NOT NULL,
			deadline    timestamptz NOT NULL,
			status      text NOT NULL,
			attempts    integer NOT NULL,
			next_try    timestamptz NOT NULL,
			last_status integer NOT NULL,
			last_error  text NOT NULL,
			finished_at timestamptz,
			PRIMARY KEY (event_id, webhook)
		)`,
		// InsertWebhookDeliveries (coalescing).
		`CREATE UNIQUE INDEX IF NOT EXISTS webhook_deliveries_dedup ON webhook_deliveries (tenant, webhook, dedup) WHERE dedup <> ''`,
		// CancelWebhookDeliveries.
		`CREATE INDEX IF NOT EXISTS webhook_deliveries_webhook ON webhook_deliveries (tenant, webhook) WHERE status = 'pending'`,
		// ClaimWebhookDeliveries, CountPendingWebhookDeliveries.
		`CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (next_try) WHERE status = 'pending'`,
		// ListWebhookDeliveries, DeleteTenantData.
		`CREATE INDEX IF NOT EXISTS webhook_deliveries_tenant ON webhook_deliveries (tenant, created)`,
		// PruneWebhookDeliveries.
		`CREATE INDEX IF NOT EXISTS webhook_deliveries_finished ON webhook_deliveries (finished_at) WHERE status <> 'pending'`,
		`CREATE TABLE IF NOT EXISTS webhook_license_state (
			tenant       text NOT NULL,
			license_id   text NOT NULL,
			exhausted    boolean NOT NULL,
			expiring_for timestamptz,
			PRIMARY KEY (tenant, license_id)
		)`,
		// ExhaustedLicenses.
		`CREATE INDEX IF NOT EXISTS webhook_license_exhausted ON webhook_license_state (tenant, license_id) WHERE exhausted`,
	},
}

// dataMigrations run in Go right after the migration of the same version, in its
// transaction, for what SQL cannot compute.
var dataMigrations = map[int]func(ctx context.Context, tx pgx.Tx) error{
	8: rekeyTokens,
}

// tokenKeyName is server_secrets' row holding the token hash key.
const tokenKeyName = "token_hash"

// rekeyTokens creates the token hash key and rewrites every stored token hash of an earlier
// version into its keyed form, so that tokens issued before the upgrade keep working. Only
// the process whose key is stored rewrites: on a database without advisory locks another
// process may be migrating at the same time.
func rekeyTokens(ctx context.Context, tx pgx.Tx) error {
	key := tokenhash.NewKey()
	tag, err := tx.Exec(ctx, `INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING`, tokenKeyName, key)
	if err != nil || tag.RowsAffected() == 0 {
		return err
	}
	h := tokenhash.New(key)
	for _, table := range []string{"tokens", "ui_sessions"} {
		rows, err := tx.Query(ctx, `SELECT hash FROM `+table)
		if err != nil {
			return err
		}
		legacy, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		var olds, news []string
		for _, old := range legacy {
			if keyed, err := h.Rekey(old); err == nil { // else it matches no token: left for the expiry sweep
				olds, news = append(olds, old), append(news, keyed)
			}
		}
		if len(olds) == 0 {
			continue
		}
		if _, err := tx.Exec(ctx, `UPDATE `+table+` t SET hash = m.keyed
			FROM unnest($1::text[], $2::text[]) AS m(legacy, keyed) WHERE t.hash = m.legacy`, olds, news); err != nil {
			return err
		}
	}
	return nil
}

// loadTokenKey reads the token hash key written by migration 8.
func loadTokenKey(ctx context.Context, pool *pgxpool.Pool) ([]byte, error) {
	var key []byte
	if err := pool.QueryRow(ctx, `SELECT value FROM server_secrets WHERE name = $1`, tokenKeyName).Scan(&key); err != nil {
		return nil, fmt.Errorf("postgres: token hash key: %w", err)
	}
	if len(key) != tokenhash.KeySize {
		return nil, fmt.Errorf("postgres: token hash key: %d bytes, want %d", len(key), tokenhash.KeySize)
	}
	return key, nil
}

// migrate brings the schema up to date in one transaction under an advisory lock: processes
// that start together queue on the lock, and each later one finds the work done. A database
// without advisory locks (older CockroachDB, YugabyteDB) migrates without one: the statements
// are idempotent, and a conflict between concurrent schema changes (a serialization
// failure there) runs the migration again.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		if err = migrateOnce(ctx, pool); !isRetryable(err) {
			return err
		}
	}
	return err
}

func migrateOnce(ctx context.Context, pool *pgxpool.Pool) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit

	if _, err := tx.Exec(ctx, `SAVEPOINT migration_lock`); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || (pe.Code != "0A000" && pe.Code != "42883") { // feature_not_supported, undefined_function
			return fmt.Errorf("postgres: migrate: lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT migration_lock`); err != nil {
			return fmt.Errorf("postgres: migrate: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	var current int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	latest := len(migrations) - 1
	if current > latest {
		return fmt.Errorf("postgres: database schema version %d is newer than this program's (%d): upgrade leasehold", current, latest)
	}
	for v := current + 1; v <= latest; v++ {
		for _, stmt := range migrations[v] {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("postgres: migration %d: %w", v, err)
			}
		}
		if data := dataMigrations[v]; data != nil {
			if err := data(ctx, tx); err != nil {
				return fmt.Errorf("postgres: migration %d: %w", v, err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1) ON CONFLICT DO NOTHING`, v); err != nil {
			return fmt.Errorf("postgres: migration %d: %w", v, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	return nil
}
