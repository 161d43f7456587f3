package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/leasehold/leasehold/internal/tokenhash"
)

// migrations are applied in order, each once; a database records the versions it has in
// schema_migrations. Never edit a released migration: append a new one.
//
// Times are unix milliseconds (INTEGER), durations nanoseconds. Every index serves a query
// of tx.go, named beside it.
var migrations = []string{
	1: `
CREATE TABLE objects (
	tenant     TEXT NOT NULL,
	kind       TEXT NOT NULL,
	id         TEXT NOT NULL,
	spec       BLOB NOT NULL,
	file_hash  TEXT NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (tenant, kind, id)
) WITHOUT ROWID;

CREATE TABLE catalog_versions (
	tenant  TEXT PRIMARY KEY,
	version INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE signing_keys (
	tenant        TEXT NOT NULL,
	kid           TEXT NOT NULL,
	algorithm     TEXT NOT NULL,
	private       BLOB NOT NULL,
	created_at    INTEGER NOT NULL,
	retired_at    INTEGER,
	publish_until INTEGER,
	PRIMARY KEY (tenant, kid)
);

CREATE TABLE license_state (
	tenant     TEXT NOT NULL,
	license_id TEXT NOT NULL,
	seats_held INTEGER NOT NULL,
	use_count  INTEGER NOT NULL,
	use_time   INTEGER NOT NULL,
	PRIMARY KEY (tenant, license_id)
) WITHOUT ROWID;

CREATE TABLE seats (
	tenant     TEXT NOT NULL,
	license_id TEXT NOT NULL,
	seat_key   TEXT NOT NULL,
	user       TEXT NOT NULL,
	held_until INTEGER NOT NULL,
	lingering  INTEGER NOT NULL,
	overage    INTEGER NOT NULL,
	PRIMARY KEY (tenant, license_id, seat_key)
) WITHOUT ROWID;
-- ReapSeats, CountLiveSeats, UsersHoldingSeats
CREATE INDEX seats_license_held ON seats (tenant, license_id, held_until);
-- LicensesWithExpiredSeats, SeatsExpiredBetween
CREATE INDEX seats_held ON seats (held_until);

CREATE TABLE leases (
	tenant            TEXT NOT NULL,
	root              TEXT NOT NULL,
	id                TEXT NOT NULL,
	license_id        TEXT NOT NULL,
	item              TEXT NOT NULL,
	seat_key          TEXT NOT NULL,
	session_key       TEXT NOT NULL,
	user              TEXT NOT NULL,
	client            TEXT NOT NULL,
	hw                TEXT NOT NULL,
	hw_name           TEXT NOT NULL,
	process           TEXT NOT NULL,
	process_name      TEXT NOT NULL,
	version           TEXT NOT NULL,
	mode              TEXT NOT NULL,
	issued_at         INTEGER NOT NULL,
	renewed_at        INTEGER NOT NULL,
	expires_at        INTEGER NOT NULL,
	refresh_at        INTEGER NOT NULL,
	prev_id           TEXT NOT NULL,
	prev_until        INTEGER NOT NULL,
	overage           INTEGER NOT NULL,
	use_time_reserved INTEGER NOT NULL,
	session_id        TEXT NOT NULL,
	PRIMARY KEY (tenant, root)
);
-- ExpiredLeases
CREATE INDEX leases_expires ON leases (expires_at);
-- GetLeaseBySessionKey
CREATE INDEX leases_session_key ON leases (tenant, license_id, session_key, expires_at);
-- CountLiveLeasesOnSeat, LatestLiveExpiryOnSeat
CREATE INDEX leases_seat ON leases (tenant, license_id, seat_key, expires_at);
-- CountLiveLeasesByHolder, ListLeases by user
CREATE INDEX leases_user ON leases (tenant, license_id, user, expires_at);
CREATE INDEX leases_client ON leases (tenant, license_id, client, expires_at);
-- ListLeases
CREATE INDEX leases_tenant_expires ON leases (tenant, expires_at);

-- Every id of a lease chain (the root included) names its lease.
CREATE TABLE lease_ids (
	tenant TEXT NOT NULL,
	id     TEXT NOT NULL,
	root   TEXT NOT NULL,
	PRIMARY KEY (tenant, id),
	FOREIGN KEY (tenant, root) REFERENCES leases (tenant, root) ON DELETE CASCADE
) WITHOUT ROWID;
-- the cascade from DeleteLease
CREATE INDEX lease_ids_root ON lease_ids (tenant, root);

CREATE TABLE hw_locks (
	tenant     TEXT NOT NULL,
	model      TEXT NOT NULL,
	hw         TEXT NOT NULL,
	license_id TEXT NOT NULL,
	PRIMARY KEY (tenant, model, hw)
) WITHOUT ROWID;
-- DeleteHWLocks
CREATE INDEX hw_locks_hw ON hw_locks (tenant, hw);

CREATE TABLE usage (
	seq        INTEGER PRIMARY KEY,
	tenant     TEXT NOT NULL,
	at         INTEGER NOT NULL,
	license_id TEXT NOT NULL,
	item       TEXT NOT NULL,
	user       TEXT NOT NULL,
	client     TEXT NOT NULL,
	hw         TEXT NOT NULL,
	lease_id   TEXT NOT NULL,
	event      TEXT NOT NULL,
	code       TEXT NOT NULL,
	overage    INTEGER NOT NULL,
	duration   INTEGER NOT NULL
);
-- ListUsage (the rowid seq rides along in the index, keeping insertion order on ties)
CREATE INDEX usage_tenant_at ON usage (tenant, at);

CREATE TABLE heartbeats (
	process TEXT PRIMARY KEY,
	at      INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE sessions (
	tenant        TEXT NOT NULL,
	id            TEXT NOT NULL,
	kind          TEXT NOT NULL,
	user          TEXT NOT NULL,
	client        TEXT NOT NULL,
	device        TEXT NOT NULL,
	scopes        TEXT,
	licensed      INTEGER NOT NULL,
	refreshable   INTEGER NOT NULL,
	lease_license TEXT NOT NULL,
	lease_root    TEXT NOT NULL,
	ext_issuer    TEXT NOT NULL,
	ext_subject   TEXT NOT NULL,
	created_at    INTEGER NOT NULL,
	last_used_at  INTEGER NOT NULL,
	expires_at    INTEGER NOT NULL,
	hard_expiry   INTEGER NOT NULL,
	PRIMARY KEY (tenant, id)
);
-- ExpiredSessions
CREATE INDEX sessions_expires ON sessions (expires_at);
-- ListSessions by user
CREATE INDEX sessions_user ON sessions (tenant, user);
-- CountSessionsByLease
CREATE INDEX sessions_lease ON sessions (tenant, lease_root);
-- a trusted external token continues the session of (iss, sub)
CREATE INDEX sessions_ext ON sessions (tenant, ext_issuer, ext_subject) WHERE ext_issuer <> '';

CREATE TABLE tokens (
	hash       TEXT PRIMARY KEY,
	tenant     TEXT NOT NULL,
	kind       TEXT NOT NULL,
	session_id TEXT NOT NULL,
	family_id  TEXT NOT NULL,
	client_id  TEXT NOT NULL,
	user       TEXT NOT NULL,
	scopes     TEXT,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	data       BLOB
);
-- DeleteTokens, DeleteSession
CREATE INDEX tokens_session ON tokens (tenant, session_id, family_id);
-- DeleteExpiredTokens
CREATE INDEX tokens_expires ON tokens (expires_at);
-- ListTokens
CREATE INDEX tokens_user ON tokens (tenant, user, kind);
`,
	// domain.Session.NoIdle (DocuWare cookie sessions ignore idle_timeout).
	2: `ALTER TABLE sessions ADD COLUMN no_idle INTEGER NOT NULL DEFAULT 0;`,
	// One lease per session key, so GetLeaseBySessionKey is a point lookup (the engine
	// deletes an expired lease before granting its session key again). Should an older
	// database hold several, the latest wins, as the ordered lookup used to answer; its
	// chain ids follow by ON DELETE CASCADE.
	3: `
DELETE FROM leases WHERE EXISTS (SELECT 1 FROM leases n
	WHERE n.tenant = leases.tenant AND n.license_id = leases.license_id AND n.session_key = leases.session_key
	AND (n.expires_at > leases.expires_at OR (n.expires_at = leases.expires_at AND n.root > leases.root)));
DROP INDEX leases_session_key;
-- GetLeaseBySessionKey
CREATE UNIQUE INDEX leases_session ON leases (tenant, license_id, session_key);
`,
	// A renewal moves expires_at, and every index holding it is rewritten on each renewal:
	// one random page apiece in the WAL. Only the sweeper needs the column in an index; the
	// other queries filter it on the row among a seat's, holder's or tenant's few leases
	// (PostgreSQL's indexes were already built this way).
	4: `
DROP INDEX leases_seat;
DROP INDEX leases_user;
DROP INDEX leases_client;
DROP INDEX leases_tenant_expires;
-- CountLiveLeasesOnSeat, LatestLiveExpiryOnSeat
CREATE INDEX leases_seat ON leases (tenant, license_id, seat_key);
-- CountLiveLeasesByHolder, ListLeases by user or client
CREATE INDEX leases_user ON leases (tenant, license_id, user);
CREATE INDEX leases_client ON leases (tenant, license_id, client);
`,
	// Derived lease ids (domain/chainid.go): a renewal's id names its lease by itself, so
	// it needs no lease_ids row (a random page per renewal). lease_ids keeps only ids from
	// before, and ids a caller chose.
	5: `
ALTER TABLE leases ADD COLUMN chain_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE leases ADD COLUMN chain_key BLOB NOT NULL DEFAULT x'';
`,
	// The hw name (hw=ID;name=NAME) in the usage history, for reports.
	6: `ALTER TABLE usage ADD COLUMN hw_name TEXT NOT NULL DEFAULT '';`,
	// One index for a seat's leases and a session key's lease: a session key is derived from
	// its seat key, so (seat, session) is as unique as the session key alone, and the seat's
	// leases are a prefix of it. A new lease then writes one random index page, not two
	// (BENCHMARKS.md, fifth round).
	7: `
DROP INDEX leases_session;
DROP INDEX leases_seat;
-- GetLeaseBySessionKey, LockLease; CountLiveLeasesOnSeat, LatestLiveExpiryOnSeat (the prefix)
CREATE UNIQUE INDEX leases_seat_session ON leases (tenant, license_id, seat_key, session_key);
`,
	// The dashboard (dashboard.go): sign-ins by the hash of their cookie, and usage per
	// license and hour. Lingering seats are few and change state rarely, so a partial
	// index counts them without touching the index on a live seat's writes.
	8: `
CREATE TABLE ui_sessions (
	hash       TEXT PRIMARY KEY,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
) WITHOUT ROWID;
-- DeleteExpiredUISessions
CREATE INDEX ui_sessions_expires ON ui_sessions (expires_at);

CREATE TABLE usage_hours (
	tenant     TEXT NOT NULL,
	hour       INTEGER NOT NULL,
	license_id TEXT NOT NULL,
	peak_seats INTEGER NOT NULL,
	denials    INTEGER NOT NULL,
	PRIMARY KEY (tenant, hour, license_id)
) WITHOUT ROWID;
-- PruneUsageHours
CREATE INDEX usage_hours_hour ON usage_hours (hour);

-- CountLingeringSeats
CREATE INDEX seats_lingering ON seats (tenant, license_id, held_until) WHERE lingering = 1;
`,
	// Item leases a session holds besides its seat (gateway seat routes with an item).
	9: `
CREATE TABLE session_leases (
	tenant     TEXT NOT NULL,
	session_id TEXT NOT NULL,
	item       TEXT NOT NULL,
	lease_root TEXT NOT NULL,
	PRIMARY KEY (tenant, session_id, item)
);
`,
	// The key of the stored token hashes (package tokenhash); rekeyTokens fills it and
	// rewrites the unkeyed hashes of earlier versions.
	10: `
CREATE TABLE server_secrets (
	name  TEXT PRIMARY KEY,
	value BLOB NOT NULL
) WITHOUT ROWID;
`,
	// Webhooks (SPEC §9): the outbox and the per-license transition markers. (IF NOT EXISTS:
	// TestTokenKey replays the migrations after 10 on a database that has them.)
	11: `
CREATE TABLE IF NOT EXISTS webhook_deliveries (
	event_id    TEXT NOT NULL,
	webhook     TEXT NOT NULL,
	tenant      TEXT NOT NULL,
	type        TEXT NOT NULL,
	body        BLOB NOT NULL,
	dedup       TEXT NOT NULL,
	created     INTEGER NOT NULL,
	deadline    INTEGER NOT NULL,
	status      TEXT NOT NULL,
	attempts    INTEGER NOT NULL,
	next_try    INTEGER NOT NULL,
	last_status INTEGER NOT NULL,
	last_error  TEXT NOT NULL,
	finished_at INTEGER NOT NULL,
	PRIMARY KEY (event_id, webhook)
);
-- InsertWebhookDeliveries (coalescing), CancelWebhookDeliveries
CREATE UNIQUE INDEX IF NOT EXISTS webhook_deliveries_dedup ON webhook_deliveries (tenant, webhook, dedup) WHERE dedup <> '';
CREATE INDEX IF NOT EXISTS webhook_deliveries_webhook ON webhook_deliveries (tenant, webhook) WHERE status = 'pending';
-- ClaimWebhookDeliveries, CountPendingWebhookDeliveries
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (next_try) WHERE status = 'pending';
-- ListWebhookDeliveries, DeleteTenantData
CREATE INDEX IF NOT EXISTS webhook_deliveries_tenant ON webhook_deliveries (tenant, created);
-- PruneWebhookDeliveries
CREATE INDEX IF NOT EXISTS webhook_deliveries_finished ON webhook_deliveries (finished_at) WHERE status <> 'pending';

CREATE TABLE IF NOT EXISTS webhook_license_state (
	tenant       TEXT NOT NULL,
	license_id   TEXT NOT NULL,
	exhausted    INTEGER NOT NULL,
	expiring_for INTEGER NOT NULL,
	PRIMARY KEY (tenant, license_id)
) WITHOUT ROWID;
-- ExhaustedLicenses
CREATE INDEX IF NOT EXISTS webhook_license_exhausted ON webhook_license_state (tenant, license_id) WHERE exhausted = 1;
`,
}

// dataMigrations run in Go right after the migration of the same version, in its
// transaction, for what SQL cannot compute.
var dataMigrations = map[int]func(ctx context.Context, c *sql.Conn) error{
	10: rekeyTokens,
}

// tokenKeyName is server_secrets' row holding the token hash key.
const tokenKeyName = "token_hash"

// rekeyTokens creates the token hash key and rewrites every stored token hash of an earlier
// version into its keyed form, so that tokens issued before the upgrade keep working.
func rekeyTokens(ctx context.Context, c *sql.Conn) error {
	key := tokenhash.NewKey()
	if _, err := c.ExecContext(ctx, "INSERT INTO server_secrets (name, value) VALUES (?, ?)", tokenKeyName, key); err != nil {
		return err
	}
	h := tokenhash.New(key)
	for _, table := range []string{"tokens", "ui_sessions"} {
		rows, err := c.QueryContext(ctx, "SELECT hash FROM "+table)
		if err != nil {
			return err
		}
		var legacy []string
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return err
			}
			legacy = append(legacy, v)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		for _, old := range legacy {
			keyed, err := h.Rekey(old)
			if err != nil {
				continue // matches no token in any version: left for the expiry sweep
			}
			if _, err := c.ExecContext(ctx, "UPDATE "+table+" SET hash = ? WHERE hash = ?", keyed, old); err != nil {
				return err
			}
		}
	}
	return nil
}

// loadTokenKey reads the token hash key written by migration 10.
func loadTokenKey(ctx context.Context, c *sql.Conn) ([]byte, error) {
	var key []byte
	if err := c.QueryRowContext(ctx, "SELECT value FROM server_secrets WHERE name = ?", tokenKeyName).Scan(&key); err != nil {
		return nil, fmt.Errorf("sqlite: token hash key: %w", err)
	}
	if len(key) != tokenhash.KeySize {
		return nil, fmt.Errorf("sqlite: token hash key: %d bytes, want %d", len(key), tokenhash.KeySize)
	}
	return key, nil
}

// migrate brings the schema up to date. BEGIN IMMEDIATE makes it safe when several
// processes open one file at once (each applies a version only if no one has yet).
func migrate(ctx context.Context, c *sql.Conn, now time.Time) (err error) {
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	defer func() {
		if err != nil {
			_, _ = c.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	if _, err := c.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	var current int
	if err := c.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	latest := len(migrations) - 1
	if current > latest {
		return fmt.Errorf("sqlite: the database schema is version %d, newer than this program's %d: use a newer leasehold", current, latest)
	}
	for v := current + 1; v <= latest; v++ {
		if _, err := c.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("sqlite: migration %d: %w", v, err)
		}
		if data := dataMigrations[v]; data != nil {
			if err := data(ctx, c); err != nil {
				return fmt.Errorf("sqlite: migration %d: %w", v, err)
			}
		}
		if _, err := c.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", v, now.UnixMilli()); err != nil {
			return fmt.Errorf("sqlite: migration %d: %w", v, err)
		}
	}
	if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	return nil
}
