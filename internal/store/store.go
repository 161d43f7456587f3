// Package store defines Leasehold's one storage interface. Every backend (SQLite, the
// embedded default, and PostgreSQL) implements it and passes the conformance suite in
// package storetest.
//
// Seat accounting is made atomic here, not in Go memory: the engine runs its decision inside
// Update, after LockLicense has serialized every writer of that license (a row lock on
// PostgreSQL, the single writer on SQLite). Because only the store sees every server
// process, nothing outside a transaction may be trusted for a seat decision.
package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
)

// Store is a transactional backend.
type Store interface {
	// Update runs fn in a read-write transaction and commits it; fn's result is durable when
	// Update returns nil. fn may run more than once (a backend may retry on a serialization
	// conflict), so it must reset any result it captures at its start and have no side
	// effects outside tx: what must happen once it committed is registered with
	// Tx.AfterCommit. If fn returns an error nothing it wrote is kept.
	Update(ctx context.Context, fn func(tx Tx) error) error
	// View runs fn in a read-only transaction (write methods fail).
	View(ctx context.Context, fn func(tx Tx) error) error
	// Now is the store's clock: every process of a cluster agrees on it.
	Now(ctx context.Context) (time.Time, error)
	Ping(ctx context.Context) error
	Close() error
	// TokenKey is the key of the stored token hashes (package tokenhash): created with the
	// database, the same for every process on it, never changed.
	TokenKey() []byte
}

// Object is a configurable object in its serialized (config-file) form.
type Object struct {
	Tenant string // "" for tenants themselves
	Kind   domain.Kind
	ID     string
	Spec   json.RawMessage
	// FileHash is the hash of the definition last applied from a configuration file ("" when
	// the object was last written through the admin API). A restart re-applies an object only
	// when its file definition changed.
	FileHash  string
	UpdatedAt time.Time
}

// SessionLease records that a session holds lease LeaseRoot on Item.
type SessionLease struct {
	Tenant, SessionID, Item, LeaseRoot string
}

// LeaseFilter narrows ListLeases and ListSessions (admin API).
type LeaseFilter struct {
	LicenseID string
	User      string
	Client    string
	LeaseRoot string // ListSessions only: the sessions sharing this seat lease
	Limit     int
}

// SigningKey is a tenant's JWT signing key. Private is the key in the format of package keys.
type SigningKey struct {
	Tenant    string
	KID       string
	Algorithm string
	Private   []byte
	CreatedAt time.Time
	// RetiredAt is set when a rotation replaced the key; it stays published until
	// PublishUntil (the expiry of the last token it signed).
	RetiredAt    *time.Time
	PublishUntil *time.Time
}

// Tx is one transaction. Its clock (Now) is fixed when the transaction starts.
//
// The capabilities that differ between backends are methods of every Tx, not optional
// interfaces found by type assertion: a backend that lacked one (a LockKey that is
// missing on PostgreSQL) would otherwise turn a lock into a silent no-op. Where a
// backend needs no work for one, its method says why it does nothing.
type Tx interface {
	Now() time.Time

	// AfterCommit registers fn to run once after this transaction has committed: on the
	// goroutine that called Update (or View), after the commit and before Update returns,
	// in the order registered. fn never runs when the transaction rolls back, nor for an
	// attempt the backend discarded and ran again (PostgreSQL re-runs fn on 40001/40P01,
	// SQLite replays a group commit): what such an attempt registered is dropped with it,
	// so fn sees only what was made durable. A View runs its hooks when fn returns nil.
	// fn must not panic; it may use the store (the transaction is over).
	AfterCommit(fn func())

	// Serial reports whether this transaction excludes every other writer from its first
	// statement to its commit (an Update on SQLite's single writer; false in a View and on
	// PostgreSQL). There a row read is as good as locked: the engine reuses a lease it read
	// by session key instead of reading it again through LockLease.
	Serial() bool

	// LockKey holds a lock on an arbitrary key until the transaction ends, so that Updates
	// about one thing that has no row to lock yet (a refresh token and its rotation
	// record, a client's session) run one after the other where Updates may run side by
	// side (PostgreSQL: a transaction-scoped advisory lock, taken with the Update's next
	// statement at the latest, so before anything it reads next). On a Serial store it
	// does nothing: no other Update can run before this one commits.
	LockKey(ctx context.Context, key string) error

	// Catalog: configurable objects. Every write bumps the tenant's catalog version so that
	// caches in every process can tell they are stale.
	GetObject(ctx context.Context, tenant string, kind domain.Kind, id string) (*Object, error) // domain.ErrNotFound
	ListObjects(ctx context.Context, tenant string, kind domain.Kind) ([]Object, error)         // ordered by id
	PutObject(ctx context.Context, obj Object) error
	DeleteObject(ctx context.Context, tenant string, kind domain.Kind, id string) (bool, error)
	// DeleteTenantData removes every object and all runtime state of a tenant.
	DeleteTenantData(ctx context.Context, tenant string) error
	CatalogVersion(ctx context.Context, tenant string) (int64, error)
	// LockCatalog holds the tenant's objects (the tenant's own definition included) against
	// every other transaction that locks them, until this one ends; what it reads of them
	// afterwards is then current until commit. A change validated against the stored
	// objects takes it first, so that two writers never validate against the same state
	// and both write (PostgreSQL: a row lock; SQLite's single writer needs none). Update only.
	// It returns the tenant's catalog version, which stays current until this transaction
	// writes: a snapshot of that version is the tenant as stored.
	LockCatalog(ctx context.Context, tenant string) (int64, error)

	// Signing keys.
	ListSigningKeys(ctx context.Context, tenant string) ([]SigningKey, error) // active first, then retired, newest first
	// InsertSigningKey adds a key; with ifNone it inserts only when the tenant has no active
	// key and reports whether it did (several processes may race to create the first key).
	InsertSigningKey(ctx context.Context, key SigningKey, ifNone bool) (bool, error)
	RetireSigningKey(ctx context.Context, tenant, kid string, at, publishUntil time.Time) error
	DeleteSigningKey(ctx context.Context, tenant, kid string) error

	// License state. LockLicense creates the row when missing and holds it for the rest of
	// the transaction: it serializes all seat decisions on one license.
	LockLicense(ctx context.Context, tenant, licenseID string) (*domain.LicenseState, error)
	SaveLicenseState(ctx context.Context, st *domain.LicenseState) error
	GetLicenseState(ctx context.Context, tenant, licenseID string) (*domain.LicenseState, error) // without lock; zero state when missing

	// Seats. In an Update that has taken LockLicense or LockLease, GetSeat also row-locks
	// the seat until the transaction ends (PostgreSQL; SQLite's single writer needs none),
	// so that a renewal under a lease lock and a decision under the license lock take turns
	// on the seat they share.
	GetSeat(ctx context.Context, tenant, licenseID, key string) (*domain.Seat, error) // domain.ErrNotFound
	PutSeat(ctx context.Context, seat *domain.Seat) error                             // insert or replace
	DeleteSeat(ctx context.Context, tenant, licenseID, key string) (bool, error)
	// ExtendSeat extends a seat in one statement, which a renewal uses instead of GetSeat
	// and PutSeat: it sets HeldUntil to max(HeldUntil, until) and clears Lingering when
	// HeldUntil is before until or the seat lingers, and reports whether it wrote. false
	// means that the seat is missing or already holds until then (not lingering): read it
	// to tell which. Like GetSeat, it row-locks the seat it writes.
	ExtendSeat(ctx context.Context, tenant, licenseID, key string, until time.Time) (bool, error)
	// ReapSeats deletes the license's seats with HeldUntil <= now and returns how many.
	ReapSeats(ctx context.Context, tenant, licenseID string, now time.Time) (int, error)
	CountLiveSeats(ctx context.Context, tenant, licenseID string, now time.Time) (int, error)
	// EarliestSeatRelease is the earliest HeldUntil after now of the license's seats: when
	// one may free at the soonest (zero time when none is held).
	EarliestSeatRelease(ctx context.Context, tenant, licenseID string, now time.Time) (time.Time, error)
	// CountExpiredSeats counts the license's seat rows with HeldUntil <= now (not reaped yet).
	CountExpiredSeats(ctx context.Context, tenant, licenseID string, now time.Time) (int, error)
	// UsersHoldingSeats returns which of users hold a live (or lingering) seat on the license.
	UsersHoldingSeats(ctx context.Context, tenant, licenseID string, users []string, now time.Time) (map[string]bool, error)
	// LicensesWithExpiredSeats lists (up to limit) licenses having seats with HeldUntil <= now.
	LicensesWithExpiredSeats(ctx context.Context, now time.Time, limit int) ([][2]string, error) // (tenant, license)
	// SeatsExpiredBetween lists seats whose HeldUntil is in (from, to] (restart grace).
	SeatsExpiredBetween(ctx context.Context, from, to time.Time, limit int) ([]domain.Seat, error)

	// Leases. A lease row is keyed by its Root; every id of its chain resolves to it.
	// A session key (tenant, license, session key) has one lease at most: InsertLease of a
	// second, even beside an expired one, is domain.ErrConflict (delete the old one first).
	InsertLease(ctx context.Context, l *domain.Lease) error
	// UpdateLease writes what a renewal changes of the lease with root l.Root (ids, times,
	// mode, version, names, overage, reserved use time, session); its identity (license,
	// item, seat and session keys, user, client, hw, process, issued_at) stays as inserted.
	// When l.ID is new it joins the chain.
	UpdateLease(ctx context.Context, l *domain.Lease) error
	// DeleteLease removes the lease and every id of its chain.
	DeleteLease(ctx context.Context, tenant, root string) (bool, error)
	// FindLease resolves any id of a chain (current or earlier) to its lease.
	FindLease(ctx context.Context, tenant, id string) (*domain.Lease, error) // domain.ErrNotFound
	// GetLeaseBySessionKey returns the lease of a session key (one at most), which is on
	// the seat seatKey: the seat key comes along so that one index of the seat's leases
	// serves both lookups (a new lease then writes one index entry for the two).
	GetLeaseBySessionKey(ctx context.Context, tenant, licenseID, seatKey, sessionKey string) (*domain.Lease, error) // domain.ErrNotFound
	// LockLease is GetLeaseBySessionKey in an Update that also row-locks the lease until the
	// transaction ends (PostgreSQL: FOR UPDATE). A renewal that changes no counter holds it
	// instead of the license lock; every change of a lease found by its session key takes it.
	LockLease(ctx context.Context, tenant, licenseID, seatKey, sessionKey string) (*domain.Lease, error) // domain.ErrNotFound
	// LockLiveLease is LockLease for a lease live at now only: when the session key has no
	// lease, or an expired one, it locks nothing and answers domain.ErrNotFound. A
	// renewal's first lookup (the engine, on a store whose writers run in parallel): a
	// live lease it finds is renewed under that lock alone, and on finding none the
	// decision takes the license lock with no lease lock held (the lock order stays
	// license, lease, seat). PostgreSQL locks and reads the seat in the same round trip.
	LockLiveLease(ctx context.Context, tenant, licenseID, seatKey, sessionKey string, now time.Time) (*domain.Lease, error) // domain.ErrNotFound
	CountLiveLeasesOnSeat(ctx context.Context, tenant, licenseID, seatKey string, now time.Time) (int, error)
	// CountLiveLeasesByHolder counts live leases on the license held by user (when client is
	// "") or by client (when user is "").
	CountLiveLeasesByHolder(ctx context.Context, tenant, licenseID, user, client string, now time.Time) (int, error)
	// LatestLiveExpiryOnSeat is the latest ExpiresAt of the seat's live leases other than
	// the one with root exceptRoot (zero time when none).
	LatestLiveExpiryOnSeat(ctx context.Context, tenant, licenseID, seatKey, exceptRoot string, now time.Time) (time.Time, error)
	ListLeases(ctx context.Context, tenant string, f LeaseFilter, now time.Time) ([]domain.Lease, error)
	// ExpiredLeases lists (up to limit) leases with ExpiresAt <= now, oldest first.
	ExpiredLeases(ctx context.Context, now time.Time, limit int) ([]domain.Lease, error)

	// Hardware locks (ConsumptionLockConstraint): one hw, one license per model.
	// LockHW records hw as locked to licenseID unless it is already locked, and returns the
	// license it is locked to (licenseID itself, or the earlier one).
	LockHW(ctx context.Context, tenant, model, hw, licenseID string) (string, error)
	GetHWLock(ctx context.Context, tenant, model, hw string) (string, error) // "" when none
	DeleteHWLocks(ctx context.Context, tenant, hw string) (int, error)

	// Usage history.
	AppendUsage(ctx context.Context, events []domain.UsageEvent) error
	ListUsage(ctx context.Context, tenant string, from, to time.Time) ([]domain.UsageEvent, error)

	// Liveness of server processes, for restart grace.
	Heartbeat(ctx context.Context, process string, at time.Time) error
	// LastHeartbeat is the latest beat of any process other than except (zero when none).
	LastHeartbeat(ctx context.Context, except string) (time.Time, error)

	// Sessions and tokens.
	InsertSession(ctx context.Context, s *domain.Session) error                 // domain.ErrConflict when the id exists
	GetSession(ctx context.Context, tenant, id string) (*domain.Session, error) // domain.ErrNotFound
	UpdateSession(ctx context.Context, s *domain.Session) error
	DeleteSession(ctx context.Context, tenant, id string) (bool, error) // also deletes its tokens
	ListSessions(ctx context.Context, tenant string, f LeaseFilter) ([]domain.Session, error)
	// Item leases a session holds besides its seat (a gateway's seat route with an item):
	// which lease (root) the session holds on each item, so that the session's extension
	// extends them and its end releases them. DeleteSession deletes them with the session.
	PutSessionLease(ctx context.Context, l SessionLease) error                               // insert, or replace the session's lease on that item
	ListSessionLeases(ctx context.Context, tenant, sessionID string) ([]SessionLease, error) // ordered by item
	DeleteSessionLease(ctx context.Context, tenant, sessionID, item string) error
	// CountSessionsByLease counts the sessions sharing one seat lease (root).
	CountSessionsByLease(ctx context.Context, tenant, leaseRoot string) (int, error)
	// ExpiredSessions lists (up to limit) sessions with ExpiresAt <= now.
	ExpiredSessions(ctx context.Context, now time.Time, limit int) ([]domain.Session, error)
	InsertToken(ctx context.Context, t *domain.Token) error
	GetToken(ctx context.Context, hash string) (*domain.Token, error) // domain.ErrNotFound
	DeleteToken(ctx context.Context, hash string) (bool, error)
	DeleteTokens(ctx context.Context, tenant, sessionID, familyID string) (int, error) // familyID "" = all of the session
	ListTokens(ctx context.Context, tenant, kind, user string) ([]domain.Token, error)
	DeleteExpiredTokens(ctx context.Context, now time.Time, limit int) (int, error)

	// Dashboard (SPEC §10): sign-ins, the seats of a license page by page, hourly usage.
	InsertUISession(ctx context.Context, s *UISession) error           // domain.ErrConflict when the hash exists
	GetUISession(ctx context.Context, hash string) (*UISession, error) // domain.ErrNotFound; expired ones too
	DeleteUISession(ctx context.Context, hash string) (bool, error)
	DeleteExpiredUISessions(ctx context.Context, now time.Time) (int, error)
	// ListHeldSeats lists the license's seats held at now (live or lingering), in seat key
	// order, starting after the key after ("" from the first), at most limit (0: no limit).
	ListHeldSeats(ctx context.Context, tenant, licenseID string, now time.Time, after string, limit int) ([]domain.Seat, error)
	// CountLingeringSeats counts the license's seats held at now by no live lease.
	CountLingeringSeats(ctx context.Context, tenant, licenseID string, now time.Time) (int, error)
	// ListLeasesOnSeats lists the live leases of the given seats, by seat key then root.
	ListLeasesOnSeats(ctx context.Context, tenant, licenseID string, seatKeys []string, now time.Time) ([]domain.Lease, error)
	// AddUsageHours merges rows into the hourly usage: denials are added, the peak is the
	// larger of the stored and the given one. Hour is truncated to the hour.
	AddUsageHours(ctx context.Context, rows []UsageHour) error
	// ListUsageHours lists a tenant's hours with from <= Hour < to, by hour then license.
	ListUsageHours(ctx context.Context, tenant string, from, to time.Time) ([]UsageHour, error)
	// PruneUsageHours deletes every hour before before.
	PruneUsageHours(ctx context.Context, before time.Time) (int, error)

	// Webhooks (SPEC §9): the outbox, one row per event and webhook, written in the
	// transaction of the change that caused the event, and the per-license markers that
	// make license.exhausted, license.available and license.expiring once per transition.
	//
	// InsertWebhookDeliveries adds rows; a row whose Dedup is not "" is skipped when its
	// webhook already has a row with that Dedup (coalescing). It returns how many it added.
	InsertWebhookDeliveries(ctx context.Context, rows []WebhookDelivery) (int, error)
	// ClaimWebhookDeliveries takes up to limit pending rows due at now (NextTry <= now),
	// oldest first, counts an attempt on each and moves its NextTry to until, so that no
	// other process takes it while this one delivers (PostgreSQL: FOR UPDATE SKIP LOCKED).
	ClaimWebhookDeliveries(ctx context.Context, now, until time.Time, limit int) ([]WebhookDelivery, error)
	// FinishWebhookDelivery records an attempt's outcome on the row (event id, webhook):
	// Status, LastStatus, LastError, NextTry and FinishedAt are written. false when the
	// row is gone (its webhook removed meanwhile).
	FinishWebhookDelivery(ctx context.Context, d *WebhookDelivery) (bool, error)
	// ListWebhookDeliveries lists a tenant's rows, newest first, at most limit.
	ListWebhookDeliveries(ctx context.Context, tenant string, limit int) ([]WebhookDelivery, error)
	// RetryWebhookDelivery makes every row of the event pending and due at now, with
	// until as its new deadline; it reports how many rows it found.
	RetryWebhookDelivery(ctx context.Context, tenant, eventID string, now, until time.Time) (int, error)
	// CancelWebhookDeliveries deletes the webhook's pending rows (the webhook was removed).
	CancelWebhookDeliveries(ctx context.Context, tenant, webhook string) (int, error)
	// PruneWebhookDeliveries deletes up to limit finished rows (delivered or failed) with
	// FinishedAt before before.
	PruneWebhookDeliveries(ctx context.Context, before time.Time, limit int) (int, error)
	// CountPendingWebhookDeliveries counts the pending rows of every tenant (queue depth).
	CountPendingWebhookDeliveries(ctx context.Context) (int, error)
	// SetLicenseExhausted sets the license's exhausted marker and reports whether it
	// changed (a conditional write: of two transactions setting it, one sees the change).
	SetLicenseExhausted(ctx context.Context, tenant, licenseID string, exhausted bool) (bool, error)
	// ExhaustedLicenses lists (up to limit) the licenses whose marker is set.
	ExhaustedLicenses(ctx context.Context, limit int) ([][2]string, error) // (tenant, license)
	// MarkLicenseExpiring records that license.expiring was written for validUntil under
	// key (the license id, or any key naming what was notified: package webhook uses the
	// license id and the webhook's); false when it already was for that very time.
	MarkLicenseExpiring(ctx context.Context, tenant, key string, validUntil time.Time) (bool, error)
}

// UISession is a dashboard sign-in. Only the hash of the cookie's random value is stored,
// so a copy of the database signs no one in.
type UISession struct {
	Hash      string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// UsageHour is one license's use in one hour: the most seats held at once (as sampled)
// and the consumptions refused.
type UsageHour struct {
	Tenant    string
	LicenseID string // "" for refusals no license was a candidate for
	Hour      time.Time
	PeakSeats int
	Denials   int
}

// Webhook delivery states.
const (
	WebhookPending   = "pending"
	WebhookDelivered = "delivered"
	WebhookFailed    = "failed" // retry_for ran out
)

// WebhookDelivery is one event to deliver to one webhook.
type WebhookDelivery struct {
	EventID string
	Tenant  string
	Webhook string
	Type    string
	Body    []byte // the exact JSON posted
	// Dedup, when not "", coalesces: one row per webhook and Dedup.
	Dedup      string
	Created    time.Time
	Deadline   time.Time // retried until then
	Status     string
	Attempts   int
	NextTry    time.Time
	LastStatus int // HTTP status of the last attempt (0: none, or no answer)
	LastError  string
	FinishedAt time.Time // when delivered or failed (zero while pending)
}

// Read runs fn in a read-only transaction and returns what it read.
func Read[T any](ctx context.Context, st Store, fn func(tx Tx) (T, error)) (T, error) {
	var out T
	err := st.View(ctx, func(tx Tx) error {
		var err error
		out, err = fn(tx)
		return err
	})
	return out, err
}

// Write runs fn in a read-write transaction and returns what it returned once committed.
func Write[T any](ctx context.Context, st Store, fn func(tx Tx) (T, error)) (T, error) {
	var out T
	err := st.Update(ctx, func(tx Tx) error {
		var err error
		out, err = fn(tx)
		return err
	})
	return out, err
}
